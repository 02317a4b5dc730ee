"""Attacks on attribution maps (SPEC §4; Ghorbani, Abid and Zou, AAAI 2019).

Iterative ℓ∞ sign steps that change the attribution map of ``x`` while keeping the predicted
label::

    x_t = clip01(x + clip(x_{t-1} + α·sign(∇ L(x_{t-1})) - x, -ε, ε)),   t = 1..P

``∇ L`` is taken through a smooth surrogate of the model (:func:`explorer.surrogate.smooth_model`,
ReLU -> softplus_β, ...): a ReLU network's map has zero gradient almost everywhere. Everything
the user sees is computed on the **real** model: after each step the iterate's real map and real
label are evaluated, and the result is the label-preserving iterate that is best under the
selection ``measure`` (any key of :data:`explorer.metrics.METRICS`; the direction comes from
``MetricInfo.higher_is_better``: similarities are minimised, ``center_shift`` is maximised).
If no label-preserving iterate beats ``x`` itself, the result is ``x`` with ``found = False``.

Per step the loop does exactly one surrogate double-backward (map with ``create_graph=True``,
loss, gradient) and one real-model evaluation (for saliency / input × gradient: one
forward + backward, whose logits also give the label; other methods add one no-grad forward for
the label), then the measure of the batch with torch ops. Images of a batch are independent and
each keeps its own best iterate. Deterministic attacks run once (no restarts); the random ones
draw from a CPU ``torch.Generator`` seeded with ``seed``.

Choice of ``DEFAULT_BETA`` (= 10, defined in :mod:`explorer.surrogate`)
-----------------------------------------------------------------------
β trades fidelity (large β: the surrogate is close to the real ReLU net, but its curvature is
concentrated on the few units near their kink) against smoothness (small β: a smooth loss, but
the surrogate's map differs from the real one). The authors' code uses β = 1. We measured the
top-k attack (Simple Gradients, 100 steps, the paper's settings of each dataset) on 64 correctly
classified test images of each shipped model, with ``benchmarks/beta_sweep.py``; mean
top-k intersection at k' (lower = stronger attack):

    β                     1      2      3      5      7      10     20     30
    MNIST natural        0.289  0.222  0.168  0.128  0.124  0.134  0.170  0.197  (ε 0.3, k' 200)
    Fashion-MNIST nat.   0.221  0.179    -    0.110  0.098  0.075  0.065  0.072  (ε 0.1, k' 100)
    MNIST PGD            0.746  0.750    -    0.737    -    0.738  0.741  0.745
    Fashion-MNIST PGD    0.565  0.549    -    0.507    -    0.493  0.466  0.455
    mean, natural        0.255  0.201    -    0.119  0.111  0.105  0.118  0.135
    mean, all four       0.455  0.425    -    0.371    -    0.360  0.361  0.367

β = 10 has the lowest mean on the natural models and ties with 20 over all four; β = 1 is the
weakest everywhere. Details in ``benchmarks/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, Callable, Mapping

import numpy as np
import torch

from . import metrics
from .attributions import (METHODS, attribute_with_logits, map_loss_gradient, resolve_target,
                           to_map, validate_input, _check_model, _method)
from .cost import default_chunk
from .params import Param, resolve
from .surrogate import DEFAULT_BETA, _check_beta, smooth_model

__all__ = [
    "DEFAULT_BETA",
    "AttackInfo",
    "ATTACKS",
    "ATTACK_KEYS",
    "SELECTION_PARAMS",
    "AttackResult",
    "PAPER_FIELDS",
    "attack_params",
    "attack",
]

# --------------------------------------------------------------------------------------------
# Parameter declarations (the single source for ranges, defaults and help texts)
# --------------------------------------------------------------------------------------------

_EPSILON = Param("epsilon", "float", 8 / 255, min=0.0, max=1.0, step=1 / 255, label="ε",
                 unit="[0, 1] pixel units",
                 help="ℓ∞ budget: no pixel moves by more than ε (the dataset's paper value is "
                      "the app's default).")
_STEP_SIZE = Param("step_size", "float", 1 / 255, min=1e-5, max=1.0, step=1 / 255, label="α",
                   unit="[0, 1] pixel units", help="Size of each sign step.")
_STEPS = Param("steps", "int", 100, min=1, max=5000, step=1, label="steps P",
               help="Number of iterations; the best label-preserving iterate is kept.")
_ATTACK_K = Param("attack_k", "int", 100, min=1, step=1, label="attack k'",
                  help="Size of the original top-k set the attack pushes away from, and the k of "
                       "the selection measure (at most H·W).")
_SEED = Param("seed", "int", 0, min=0, max=2 ** 31 - 1, label="seed",
              help="Seed of the random noise; the same seed gives the same result.")
_W = Param("w", "int", 1, min=0, max=32, step=1, label="w", unit="px",
           help="LENS neighbourhood radius: the (2w+1)×(2w+1) window, for the lens_topk loss and "
                "for LENS / diverse selection measures.")
_MEASURE = Param("measure", "choice", "topk_intersection", choices=metrics.METRIC_KEYS,
                 label="selection measure",
                 help="Metric used to pick the best label-preserving iterate (similarities are "
                      "minimised, the centre shift is maximised).")
_BETA = Param("beta", "float", DEFAULT_BETA, min=0.05, max=1000.0, label="surrogate β",
              help="Sharpness of the softplus that replaces ReLU in the surrogate used for "
                   "attack gradients.")

SELECTION_PARAMS: tuple[Param, ...] = (_MEASURE, _W, _BETA)
_ALL_PARAMS = {p.name: p for p in (_EPSILON, _STEP_SIZE, _STEPS, _ATTACK_K, _SEED, _W, _BETA)}


@dataclass(frozen=True)
class AttackInfo:
    """One attack. ``params`` are the knobs it uses (the UI renders them); ``iterative`` attacks
    use ``step_size`` and ``steps``; ``needs_region`` attacks need a ``region`` mask."""

    key: str
    name: str
    description: str
    params: tuple[Param, ...]
    iterative: bool
    needs_region: bool = False
    uses_gradient: bool = True


_ITER = (_EPSILON, _STEP_SIZE, _STEPS, _ATTACK_K)
ATTACKS: dict[str, AttackInfo] = {
    a.key: a for a in (
        AttackInfo("topk", "top-k attack",
                   "Pushes attribution mass off the original top-k' pixels.", _ITER, True),
        AttackInfo("mass_center", "mass-centre attack",
                   "Moves the attribution map's centre of mass away from the original one.",
                   _ITER, True),
        AttackInfo("targeted", "targeted attack",
                   "Pulls attribution mass into a region you choose.", _ITER, True,
                   needs_region=True),
        AttackInfo("lens_topk", "LENS-aware top-k attack",
                   "Pushes attribution mass off the w-neighbourhood of the original top-k' "
                   "pixels, so that small shifts do not count.", _ITER + (_W,), True),
        AttackInfo("random_sign", "random sign noise",
                   "One shot of ±ε noise (seeded): the baseline a real attack must beat.",
                   (_EPSILON, _ATTACK_K, _SEED), False, uses_gradient=False),
        AttackInfo("random_walk", "random sign walk",
                   "Random ±α sign steps projected into the ε-ball; the best label-preserving "
                   "iterate is kept.", _ITER + (_SEED,), True, uses_gradient=False),
    )
}
ATTACK_KEYS: tuple[str, ...] = tuple(ATTACKS)

# Fields of ``data.PaperDefaults`` that set the attack parameter of the same name.
PAPER_FIELDS = ("epsilon", "attack_k", "step_size", "steps", "w")


def attack_params(attack: str, paper=None, overrides: Mapping[str, Any] | None = None,
                  ) -> dict[str, Any]:
    """The parameters of ``attack`` (its own and the selection parameters it uses: measure, w,
    and β where gradients are taken): their registry defaults, then the dataset's paper settings
    ``paper`` (a ``data.PaperDefaults``; a value outside the attack's declared range keeps the
    default), then ``overrides`` (checked against the declared range; unknown names refused).

    The one place where defaults are merged: the app, the evaluator and library users call it.
    """
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; allowed: {', '.join(ATTACK_KEYS)}")
    info = ATTACKS[attack]
    specs = {p.name: p for p in info.params}
    for p in SELECTION_PARAMS:
        if p.name not in specs and (p.name != "beta" or info.uses_gradient):
            specs[p.name] = p
    out = {name: p.default for name, p in specs.items()}
    if paper is not None:
        for name, p in specs.items():
            if name in PAPER_FIELDS and hasattr(paper, name):
                try:
                    out[name] = p.check(getattr(paper, name))
                except ValueError:
                    pass  # the paper value lies outside this attack's declared range
    for name, value in dict(overrides or {}).items():
        if name not in specs:
            raise ValueError(f"attack {attack!r} has no parameter {name!r}; allowed: "
                             f"{', '.join(specs)}")
        out[name] = specs[name].check(value)
    return out


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------

@dataclass
class AttackResult:
    """Outcome of :func:`attack` for a batch of N images (all tensors on ``x``'s device).

    ``history[i, t]``: the selection measure of image i's best label-preserving iterate after
    step t (column 0 is ``x`` itself); it has ``steps_run + 1`` columns (fewer than
    ``steps + 1`` when the progress callback stopped the run early).
    ``found[i]``: a label-preserving iterate better than ``x`` was found; where False,
    ``x_adv[i]`` is ``x[i]``.
    """

    x_adv: torch.Tensor
    map_orig: torch.Tensor
    map_adv: torch.Tensor
    history: torch.Tensor
    label_orig: torch.Tensor
    label_adv: torch.Tensor
    conf_orig: torch.Tensor
    conf_adv: torch.Tensor
    label_kept: torch.Tensor
    linf: torch.Tensor
    found: torch.Tensor
    steps_run: int
    best_step: torch.Tensor = None  # (N,) step of the chosen iterate (0: x itself)
    attack: str = ""
    method: str = ""
    measure: str = "topk_intersection"
    attack_k: int = 0
    w: int = 1
    epsilon: float = 0.0
    steps: int = 0
    stopped_early: bool = False
    params: dict = field(default_factory=dict)

    def message(self, i: int = 0) -> str:
        """One human sentence about image ``i``."""
        info = metrics.METRICS[self.measure]
        name = ATTACKS[self.attack].name if self.attack in ATTACKS else self.attack
        start, end = float(self.history[i, 0]), float(self.history[i, -1])
        stop = " (stopped early)" if self.stopped_early else ""
        if not bool(self.found[i]):
            return (f"{name}, ε = {self.epsilon:.4g}, {self.steps_run} step(s){stop}: no "
                    f"label-preserving perturbation found that changes the {info.name} "
                    f"(k = {self.attack_k}) from {start:.3f}; the input is returned unchanged.")
        return (f"{name}, ε = {self.epsilon:.4g}, {self.steps_run} step(s){stop}: {info.name} "
                f"(k = {self.attack_k}) {start:.3f} → {end:.3f} at step {int(self.best_step[i])}; "
                f"label {int(self.label_orig[i])} kept (confidence {float(self.conf_orig[i]):.2f}"
                f" → {float(self.conf_adv[i]):.2f}); ‖x' − x‖∞ = {float(self.linf[i]):.4g}.")


# --------------------------------------------------------------------------------------------
# Selection measure: one metric of metrics.py, original side precomputed once
# --------------------------------------------------------------------------------------------

class _Measure:
    """``measure(b)`` = ``metrics.compare(a, b, k, w)[key]`` for a fixed original ``a``, computing
    only the requested key (the original map's masks are built once). Float64 ``(N,)``."""

    def __init__(self, key: str, a: torch.Tensor, k: int, w: int):
        self.key, self.a, self.k, self.w = key, a, k, w
        self.minimise = metrics.METRICS[key].higher_is_better
        if key in ("topk_intersection", "lens_recall", "lens_precision"):
            self.ta = metrics.topk_mask(a, k)
            self.nta = metrics.dilate(self.ta, w)
        elif key in ("topk_div_intersection", "lens_recall_div", "lens_precision_div"):
            self.da, _ = metrics.diverse_topk_mask(a, k, w)
            self.nda = metrics.dilate(self.da, w)
        elif key in ("lens_spearman", "lens_kendall"):
            self.pa = metrics.maxpool_map(a, w)
        elif key == "center_shift":
            self.ca = metrics.center_of_mass(a)

    def _frac(self, mask):
        return mask.sum(dim=(1, 2)).double() / self.k

    def __call__(self, b: torch.Tensor) -> torch.Tensor:
        key, k, w = self.key, self.k, self.w
        if key == "topk_intersection":
            return self._frac(self.ta & metrics.topk_mask(b, k))
        if key == "lens_recall":
            return self._frac(self.nta & metrics.topk_mask(b, k))
        if key == "lens_precision":
            return self._frac(self.ta & metrics.dilate(metrics.topk_mask(b, k), w))
        if key in ("topk_div_intersection", "lens_recall_div", "lens_precision_div"):
            db, _ = metrics.diverse_topk_mask(b, k, w)
            if key == "topk_div_intersection":
                return self._frac(self.da & db)
            if key == "lens_recall_div":
                return self._frac(self.nda & db)
            return self._frac(self.da & metrics.dilate(db, w))
        if key == "spearman":
            return metrics.spearman(self.a, b).double()
        if key == "kendall":
            return metrics.kendall(self.a, b).double()
        if key == "lens_spearman":
            return metrics.spearman(self.pa, metrics.maxpool_map(b, w)).double()
        if key == "lens_kendall":
            return metrics.kendall(self.pa, metrics.maxpool_map(b, w)).double()
        if key == "center_shift":
            return torch.linalg.vector_norm(self.ca - metrics.center_of_mass(b), dim=1).double()
        raise AssertionError(key)  # unreachable: keys are validated before

    def better(self, new: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
        """Strictly better (NaN never is)."""
        return new < best if self.minimise else new > best


# --------------------------------------------------------------------------------------------
# Losses (ascended; computed on the surrogate's map m of shape (N, H, W))
# --------------------------------------------------------------------------------------------

def _centroid(m: torch.Tensor) -> torch.Tensor:
    """Differentiable map-weighted centroid ``(N, 2)`` (row, col)."""
    h, w = m.shape[1], m.shape[2]
    total = m.sum(dim=(1, 2)).clamp_min(1e-12)
    rows = torch.arange(h, device=m.device, dtype=m.dtype)
    cols = torch.arange(w, device=m.device, dtype=m.dtype)
    cy = (m.sum(dim=2) * rows).sum(dim=1) / total
    cx = (m.sum(dim=1) * cols).sum(dim=1) / total
    return torch.stack([cy, cx], dim=1)


def _make_loss(kind: str, map_orig: torch.Tensor, k: int, w: int,
               region: torch.Tensor | None) -> Callable[[torch.Tensor], torch.Tensor]:
    if kind in ("topk", "lens_topk"):
        mask = metrics.topk_mask(map_orig, k)
        if kind == "lens_topk":
            mask = metrics.dilate(mask, w)
        weight = mask.to(map_orig.dtype)
        return lambda m: -(m * weight).sum(dim=(1, 2))
    if kind == "targeted":
        weight = region.to(map_orig.dtype)
        return lambda m: (m * weight).sum(dim=(1, 2))
    if kind == "mass_center":
        c0 = _centroid(map_orig)
        # Squared distance: same sign of gradient as the distance, and smooth at 0.
        return lambda m: ((_centroid(m) - c0) ** 2).sum(dim=1)
    raise AssertionError(kind)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

def _check_param(p: Param, value, attack_key: str, required: bool):
    if value is None:
        if required:
            raise ValueError(f"attack {attack_key!r} needs {p.name} ({p.allowed()})")
        return None
    return p.check(value)


def _check_region(region, x: torch.Tensor) -> torch.Tensor:
    n, _, h, w = x.shape
    if isinstance(region, np.ndarray):
        region = torch.from_numpy(region)
    if not isinstance(region, torch.Tensor):
        raise ValueError(f"region must be a boolean mask of shape ({h}, {w}) or ({n}, {h}, {w}); "
                         f"got {type(region).__name__}")
    if region.dtype != torch.bool:
        if region.is_floating_point() and not bool(torch.isfinite(region).all()):
            raise ValueError("region must be a boolean (or 0/1) mask; got NaN/inf values")
        if not bool(((region == 0) | (region == 1)).all()):
            raise ValueError("region must be a boolean (or 0/1) mask; got other values")
        region = region != 0
    if tuple(region.shape) == (h, w):
        region = region.unsqueeze(0).expand(n, h, w)
    if tuple(region.shape) != (n, h, w):
        raise ValueError(f"region must have shape ({h}, {w}) or ({n}, {h}, {w}) to match x; got "
                         f"{tuple(region.shape)}")
    empty = ~region.reshape(n, -1).any(dim=1)
    if bool(empty.any()):
        raise ValueError(f"region must select at least one pixel per image; empty for image(s) "
                         f"{torch.nonzero(empty).view(-1).tolist()}")
    return region.to(x.device)


# --------------------------------------------------------------------------------------------
# The attack
# --------------------------------------------------------------------------------------------

def _evaluate(model, x, method, mparams, target):
    """Real-model map ``(N, H, W)`` and logits at ``x`` (one forward+backward for gradient
    methods; an extra no-grad forward for the label otherwise)."""
    attr, logits = attribute_with_logits(model, x, method, mparams, target, False,
                                         validate=False)
    if logits is None:
        with torch.no_grad():
            logits = model(x)
    return to_map(attr).detach(), logits.detach()


def attack(model, x, *, method: str = "saliency", method_params: dict | None = None,
           attack: str = "topk", epsilon, step_size=None, steps=None, attack_k, w: int = 1,
           measure: str = "topk_intersection", beta: float = DEFAULT_BETA, seed: int = 0,
           progress: Callable[[int, int, float], bool | None] | None = None, target=None,
           region=None) -> AttackResult:
    """Attack the ``method`` attribution map of ``model`` at ``x`` ``(N, C, H, W)`` in ``[0, 1]``.

    ``model`` maps ``[0, 1]`` inputs to logits and must be in eval mode; it is not modified.
    ``epsilon`` (ℓ∞ budget), ``attack_k`` (k' of the loss and k of the selection measure) are
    always required; ``step_size`` and ``steps`` by the iterative attacks. ``w``: LENS radius
    (``lens_topk`` loss and LENS/diverse measures). ``measure``: key of ``metrics.METRICS``
    used to pick the best label-preserving iterate. ``beta``: softplus sharpness of the
    surrogate. ``seed``: random attacks. ``progress(step, total, best_measure)``: called after
    every step with the batch-mean best measure; return True to stop early. ``target``: class
    whose attribution is attacked (default: the prediction). ``region``: ``(H, W)`` or
    ``(N, H, W)`` boolean mask, required by (and only by) the ``targeted`` attack.
    """
    # ---- validation: everything before any computation -------------------------------------
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; allowed: {', '.join(ATTACK_KEYS)}")
    info = ATTACKS[attack]
    validate_input(x)
    _check_model(model, x)
    minfo = _method(method)
    mparams = resolve(minfo.params, method_params)
    if measure not in metrics.METRICS:
        raise ValueError(f"unknown measure {measure!r}; allowed: {', '.join(metrics.METRIC_KEYS)}")
    n, _, h, wd = x.shape
    epsilon = _check_param(_EPSILON, epsilon, attack, True)
    step_size = _check_param(_STEP_SIZE, step_size, attack, info.iterative)
    steps = _check_param(_STEPS, steps, attack, info.iterative)
    attack_k = _check_param(_ATTACK_K, attack_k, attack, True)
    attack_k = metrics.validate_k(attack_k, h, wd)
    w = metrics.validate_w(w)
    seed = _SEED.check(seed)
    beta = _check_beta(beta)
    if progress is not None and not callable(progress):
        raise ValueError("progress must be a callable (step, total, best_measure) -> bool, "
                         "or None")
    if info.needs_region:
        if region is None:
            raise ValueError(f"attack {attack!r} needs a region: a boolean mask of shape "
                             f"({h}, {wd}) or ({n}, {h}, {wd})")
        region = _check_region(region, x)
    elif region is not None:
        raise ValueError(f"region is only used by the targeted attack; attack {attack!r} takes "
                         "none (pass region=None)")
    total = steps if info.iterative else 1

    x0 = x.detach()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    surrogate = smooth_model(model, beta) if info.uses_gradient else None

    # ---- the original input, on the real model ---------------------------------------------
    with torch.no_grad():
        logits0 = model(x0)
    target = resolve_target(target, n, logits0.shape[1], x.device)
    label0 = logits0.argmax(dim=1)
    target = label0 if target is None else target
    conf0 = torch.softmax(logits0.float(), dim=1).gather(1, label0.view(-1, 1)).view(-1)
    map0, _ = _evaluate(model, x0, method, mparams, target)

    meas = _Measure(measure, map0, attack_k, w)
    start = meas(map0)
    best = start.clone()
    best_x, best_map = x0.clone(), map0.clone()
    best_label, best_conf = label0.clone(), conf0.clone()
    best_step = torch.zeros(n, dtype=torch.long, device=x.device)
    history = [start.clone()]
    loss_fn = _make_loss(attack, map0, attack_k, w, region) if info.uses_gradient else None

    def project(z):
        return (x0 + (z - x0).clamp(-epsilon, epsilon)).clamp(0.0, 1.0)

    def signs():
        s = torch.randint(0, 2, x0.shape, generator=gen, dtype=torch.int8).to(x0.device)
        return s.to(x0.dtype) * 2 - 1

    cur = x0
    steps_run, stopped = 0, False
    for t in range(1, total + 1):
        # ---- one move ----------------------------------------------------------------------
        if attack == "random_sign":
            cur = project(x0 + epsilon * signs())
        elif attack == "random_walk":
            cur = project(cur + step_size * signs())
        else:
            grad = map_loss_gradient(surrogate, cur, method, mparams, target,
                                     lambda m: loss_fn(m).sum(), validate=False,
                                     chunk=default_chunk(method, mparams, cur))
            cur = project(cur + step_size * grad.sign())
        # ---- evaluation on the real model ---------------------------------------------------
        map_t, logits_t = _evaluate(model, cur, method, mparams, target)
        label_t = logits_t.argmax(dim=1)
        value = meas(map_t)
        take = (label_t == label0) & meas.better(value, best)
        best = torch.where(take, value, best)
        tv = take.view(n, 1, 1)
        best_map = torch.where(tv, map_t, best_map)
        best_x = torch.where(tv.unsqueeze(1), cur, best_x)
        best_label = torch.where(take, label_t, best_label)
        conf_t = torch.softmax(logits_t.float(), dim=1).gather(1, label_t.view(-1, 1)).view(-1)
        best_conf = torch.where(take, conf_t, best_conf)
        best_step = torch.where(take, torch.full_like(best_step, t), best_step)
        history.append(best.clone())
        steps_run = t
        if progress is not None and progress(t, total, float(best.nanmean())):
            stopped = t < total
            break

    found = best_step > 0
    return AttackResult(
        x_adv=best_x.detach(), map_orig=map0, map_adv=best_map, history=torch.stack(history, 1),
        label_orig=label0, label_adv=best_label, conf_orig=conf0, conf_adv=best_conf,
        label_kept=best_label == label0,
        linf=(best_x - x0).abs().flatten(1).amax(dim=1), found=found, steps_run=steps_run,
        best_step=best_step, attack=attack, method=method, measure=measure, attack_k=attack_k,
        w=w, epsilon=float(epsilon), steps=total, stopped_early=stopped,
        params=dict(method_params=mparams, step_size=step_size, beta=beta, seed=seed))
