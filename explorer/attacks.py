"""Attacks on attribution maps (Ghorbani, Abid and Zou, AAAI 2019).

Iterative ℓ∞ steps that change the attribution map of ``x`` while keeping the predicted label::

    x_t = clip01(x + clip(move(x_{t-1}) - x, -ε, ε)),   t = 1..P

Each attack of the registry :data:`ATTACKS` is an :class:`AttackInfo` that carries its **move**
(a function ``(AttackState) -> proposed next iterate``; the loop projects the proposal onto the
ε-ball and ``[0, 1]``) and, for gradient attacks, its **loss** (ascended on the map). A new attack
is one more entry; the loop knows none of them by name. The gradient attacks take the sign step
``x_{t-1} + α·sign(∇ L(x_{t-1}))``; ``∇ L`` is taken through a smooth surrogate of the model
(:func:`explorer.surrogate.smooth_model`, ReLU -> softplus_β, ...): a ReLU network's map has zero
gradient almost everywhere.

Everything the user sees is computed on the **real** model: after each step the iterate's real
map and real label are evaluated, and the result is the label-preserving candidate that is best
under the selection ``measure`` (any key of :data:`explorer.metrics.METRICS`; the direction comes
from ``MetricInfo.higher_is_better``: similarities are minimised, ``center_shift`` is maximised).
If no label-preserving candidate beats ``x`` itself, the result is ``x`` with ``found = False``.

Restarts and candidates
-----------------------
``restarts = R`` runs the walk R times; per image the best candidate over all runs is kept (the
worst case for the explanation, as the authors did with 3 runs of every attack). The first run
starts at ``x``; with ``random_start`` the later ones start at a uniformly random point of the
ε-ball (Madry-style). With ``noise_candidate`` (the untargeted gradient attacks, on by default)
the R draws of random ±ε sign noise that ``attack="random_sign"`` makes with the same seed are
candidates too, so the chosen x′ is never weaker than that noise under the selection measure,
by construction.
``beta`` may be a tuple: restart r uses the surrogate with ``beta[r % len(beta)]`` (against
gradient masking at one β). ``random_walk`` is the authors' random baseline: P random ±α sign
steps in the ε-ball, best label-preserving iterate kept, with restarts; ``random_sign`` is
one-shot noise (one draw per restart). Every random draw comes from a CPU ``torch.Generator``
seeded from ``seed`` and the restart index: the same seed gives the same result, and all attacks
share their random starts.

Cost: per step one surrogate double-backward (:func:`_loss_gradient`: map with
``create_graph=True``, loss, gradient) and one real-model evaluation (for saliency / input ×
gradient: one forward + backward, whose logits also give the label; other methods add one
no-grad forward for the label), then the measure of the batch with torch ops; each noise
candidate costs one evaluation. Images of a batch are independent and each keeps its own best.

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

import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch

from . import metrics
from .attack_selection import SelectionMeasure
from .attributions import (attribute_with_logits, map_loss_gradient, resolve_target, to_map,
                           validate_input, _check_model, _method)
from .cost import default_chunk
from .jobs import Cancelled, cancel_point
from .params import Param, resolve
from .surrogate import DEFAULT_BETA, _check_beta, smooth_model

__all__ = [
    "DEFAULT_BETA",
    "AttackState",
    "AttackInfo",
    "ATTACKS",
    "ATTACK_KEYS",
    "SELECTION_PARAMS",
    "AttackResult",
    "PAPER_FIELDS",
    "attack_params",
    "attack",
    "sign_gradient_step",
    "random_sign_draw",
    "random_sign_step",
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
               help="Number of iterations per restart; the best label-preserving iterate is "
                    "kept.")
_ATTACK_K = Param("attack_k", "int", 100, min=1, step=1, label="attack k'",
                  help="Size of the original top-k set the attack pushes away from, and the k of "
                       "the selection measure (at most H·W).")
_SEED = Param("seed", "int", 0, min=0, max=2 ** 31 - 1, label="seed",
              help="Seed of the random draws (noise, random starts); the same seed gives the "
                   "same result.")
_RESTARTS = Param("restarts", "int", 1, min=1, max=100, step=1, label="restarts R",
                  help="Runs of the attack; per image the best candidate over all runs (the "
                       "worst case for the explanation) is kept. The authors used 3.")
_RANDOM_START = Param("random_start", "bool", True, label="random start",
                      help="Restarts after the first start from a uniformly random point of the "
                           "ε-ball (the first run always starts at the input).")
_NOISE = Param("noise_candidate", "bool", True, label="random-sign candidate",
               help="Also try the random ±ε sign noise of the same seed and restarts, so that "
                    "the result is never weaker than that noise under the selection measure.")
_W = Param("w", "int", 1, min=0, max=32, step=1, label="w", unit="px",
           help="LENS neighbourhood radius: the (2w+1)×(2w+1) window, for the lens_topk loss and "
                "for LENS / diverse selection measures.")
_MEASURE = Param("measure", "choice", "topk_intersection", choices=metrics.METRIC_KEYS,
                 label="selection measure",
                 help="Metric used to pick the best label-preserving iterate (similarities are "
                      "minimised, the centre shift is maximised).")
_SELECT_K = Param("select_k", "int", 0, min=0, step=1, label="selection k",
                  help="k of the selection measure; 0: the attack k'. Set it to the k you report "
                       "so that the result is never weaker than noise at that k.")
_BETA = Param("beta", "float", DEFAULT_BETA, min=0.05, max=1000.0, label="surrogate β",
              help="Sharpness of the softplus that replaces ReLU in the surrogate used for "
                   "attack gradients.")

SELECTION_PARAMS: tuple[Param, ...] = (_MEASURE, _SELECT_K, _W, _BETA)


# --------------------------------------------------------------------------------------------
# Moves: (state) -> proposed next iterate (the loop projects it)
# --------------------------------------------------------------------------------------------

@dataclass
class AttackState:
    """What a move sees at step ``step`` (1..P) of restart ``restart`` (0..R-1).

    ``x``: the original input; ``current``: the previous iterate (``x`` or the random start at
    step 1). ``gradient(z)``: the gradient of the attack's loss at ``z`` through the surrogate
    (None for attacks without a loss). ``generator``: the CPU generator of this restart.
    """

    x: torch.Tensor
    current: torch.Tensor
    step: int
    restart: int
    epsilon: float
    step_size: float | None
    generator: torch.Generator
    gradient: Callable[[torch.Tensor], torch.Tensor] | None = None

    def signs(self) -> torch.Tensor:
        """Independent uniform ±1 per element, shaped like ``x`` (from this restart's stream)."""
        s = torch.randint(0, 2, self.x.shape, generator=self.generator, dtype=torch.int8,
                          device="cpu")
        return s.to(device=self.x.device, dtype=self.x.dtype) * 2 - 1

    def project(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` moved into the ε-ball around ``x`` and into ``[0, 1]``."""
        return (self.x + (z - self.x).clamp(-self.epsilon, self.epsilon)).clamp(0.0, 1.0)


def sign_gradient_step(s: AttackState) -> torch.Tensor:
    """``x_{t-1} + α·sign(∇ L(x_{t-1}))``: the gradient attacks' step."""
    return s.current + s.step_size * s.gradient(s.current).sign()


def random_sign_draw(s: AttackState) -> torch.Tensor:
    """``x + ε·s`` with random signs ``s``: one-shot noise at the full budget."""
    return s.x + s.epsilon * s.signs()


def random_sign_step(s: AttackState) -> torch.Tensor:
    """``x_{t-1} + α·s`` with random signs ``s``: one step of the random walk."""
    return s.current + s.step_size * s.signs()


# --------------------------------------------------------------------------------------------
# Losses (ascended; built from the original map, computed on the surrogate's map (N, H, W))
# --------------------------------------------------------------------------------------------

Loss = Callable[[torch.Tensor], torch.Tensor]


def _centroid(m: torch.Tensor) -> torch.Tensor:
    """Differentiable map-weighted centroid ``(N, 2)`` (row, col)."""
    h, w = m.shape[1], m.shape[2]
    total = m.sum(dim=(1, 2)).clamp_min(1e-12)
    rows = torch.arange(h, device=m.device, dtype=m.dtype)
    cols = torch.arange(w, device=m.device, dtype=m.dtype)
    cy = (m.sum(dim=2) * rows).sum(dim=1) / total
    cx = (m.sum(dim=1) * cols).sum(dim=1) / total
    return torch.stack([cy, cx], dim=1)


def _topk_loss(map_orig, k, w, region) -> Loss:
    weight = metrics.topk_mask(map_orig, k).to(map_orig.dtype)
    return lambda m: -(m * weight).sum(dim=(1, 2))


def _lens_topk_loss(map_orig, k, w, region) -> Loss:
    weight = metrics.dilate(metrics.topk_mask(map_orig, k), w).to(map_orig.dtype)
    return lambda m: -(m * weight).sum(dim=(1, 2))


def _targeted_loss(map_orig, k, w, region) -> Loss:
    weight = region.to(map_orig.dtype)
    return lambda m: (m * weight).sum(dim=(1, 2))


def _mass_center_loss(map_orig, k, w, region) -> Loss:
    c0 = _centroid(map_orig)
    # Squared distance: same sign of gradient as the distance, and smooth at 0.
    return lambda m: ((_centroid(m) - c0) ** 2).sum(dim=1)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AttackInfo:
    """One attack. ``params``: the knobs it uses (the UI renders them; :func:`attack_params`
    merges their defaults). ``move(state)``: the proposed next iterate. ``loss(map_orig, k, w,
    region)``: the loss the gradient ascends (None: the move takes no gradient). ``iterative``
    attacks use ``step_size`` and ``steps``, the others make one move per restart;
    ``needs_region`` attacks need a ``region`` mask."""

    key: str
    name: str
    description: str
    params: tuple[Param, ...]
    iterative: bool
    move: Callable[[AttackState], torch.Tensor]
    loss: Callable[..., Loss] | None = None
    needs_region: bool = False

    @property
    def uses_gradient(self) -> bool:
        return self.loss is not None


_ITER = (_EPSILON, _STEP_SIZE, _STEPS, _ATTACK_K)
_GRAD = _ITER + (_SEED, _RESTARTS, _RANDOM_START, _NOISE)


def _gradient_attack(key, name, description, loss, params=_GRAD, **kw) -> AttackInfo:
    return AttackInfo(key, name, description, params, True, sign_gradient_step, loss, **kw)


ATTACKS: dict[str, AttackInfo] = {
    a.key: a for a in (
        _gradient_attack("topk", "top-k attack",
                         "Pushes attribution mass off the original top-k' pixels.", _topk_loss),
        _gradient_attack("mass_center", "mass-centre attack",
                         "Moves the attribution map's centre of mass away from the original one.",
                         _mass_center_loss),
        _gradient_attack("targeted", "targeted attack",
                         "Pulls attribution mass into a region you choose.", _targeted_loss,
                         params=_GRAD[:-1], needs_region=True),  # noise cannot aim at a region
        _gradient_attack("lens_topk", "LENS-aware top-k attack",
                         "Pushes attribution mass off the w-neighbourhood of the original top-k' "
                         "pixels, so that small shifts do not count.", _lens_topk_loss,
                         params=_ITER + (_W,) + _GRAD[len(_ITER):]),
        AttackInfo("random_sign", "random sign noise",
                   "One shot of ±ε noise per restart (seeded): the baseline a real attack must "
                   "beat.", (_EPSILON, _ATTACK_K, _SEED, _RESTARTS), False, random_sign_draw),
        AttackInfo("random_walk", "random sign walk",
                   "The authors' random baseline: random ±α sign steps projected into the "
                   "ε-ball, the best label-preserving iterate kept, with restarts.",
                   _ITER + (_SEED, _RESTARTS, _RANDOM_START), True, random_sign_step),
    )
}
ATTACK_KEYS: tuple[str, ...] = tuple(ATTACKS)

# Fields of ``data.PaperDefaults`` that set the attack parameter of the same name.
PAPER_FIELDS = ("epsilon", "attack_k", "step_size", "steps", "w")


def _info(attack: str) -> AttackInfo:
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; allowed: {', '.join(ATTACKS)}")
    return ATTACKS[attack]


def _check_betas(beta, check: Callable[[Any], float]) -> float | tuple[float, ...]:
    """One β, or a non-empty tuple of them (a sweep over restarts), each passed to ``check``."""
    if isinstance(beta, (list, tuple)):
        if not beta:
            raise ValueError("beta must be a number > 0 or a non-empty list of them (one per "
                             "restart, cycled); got an empty list")
        return tuple(check(b) for b in beta)
    return check(beta)


def attack_params(attack: str, paper=None, overrides: Mapping[str, Any] | None = None,
                  ) -> dict[str, Any]:
    """The parameters of ``attack`` (its own and the selection parameters it uses: measure, w,
    and β where gradients are taken): their registry defaults, then the dataset's paper settings
    ``paper`` (a ``data.PaperDefaults``; a value outside the attack's declared range keeps the
    default), then ``overrides`` (checked against the declared range; unknown names refused;
    ``beta`` may be a list or tuple, a sweep over restarts).

    The one place where defaults are merged: the app, the evaluator and library users call it;
    the result can be passed on as ``attack(model, x, attack=attack, **params)``.
    """
    info = _info(attack)
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
        out[name] = (_check_betas(value, specs[name].check) if name == "beta"
                     else specs[name].check(value))
    return out


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------

@dataclass
class AttackResult:
    """Outcome of :func:`attack` for a batch of N images (all tensors on ``x``'s device).

    ``history[i, c]``: the selection measure of image i's best label-preserving candidate after
    c steps in all (column 0 is ``x`` itself; the restarts follow each other, restart r's step t
    is column ``r·steps + t``; the noise candidates enter at column 1). It has
    ``steps_run + 1`` columns (fewer than ``restarts·steps + 1`` when the progress callback
    stopped the run early).
    ``found[i]``: a label-preserving candidate better than ``x`` was found; where False,
    ``x_adv[i]`` is ``x[i]``. ``best_step[i]``: the column of ``history`` where the chosen
    candidate entered (0: x itself); ``best_restart[i]``: its restart (or noise draw) index;
    ``noise_won[i]``: it is a random-sign noise candidate, not an iterate of the attack.
    ``flip_share[i]``: share of the attack's own evaluated iterates whose label changed.
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
    best_step: torch.Tensor = None
    best_restart: torch.Tensor = None
    noise_won: torch.Tensor = None
    flip_share: torch.Tensor = None
    attack: str = ""
    method: str = ""
    measure: str = "topk_intersection"
    attack_k: int = 0
    select_k: int = 0
    w: int = 1
    epsilon: float = 0.0
    steps: int = 0
    restarts: int = 1
    stopped_early: bool = False
    params: dict = field(default_factory=dict)

    def message(self, i: int = 0) -> str:
        """One human sentence about image ``i``."""
        info = metrics.METRICS[self.measure]
        name = ATTACKS[self.attack].name if self.attack in ATTACKS else self.attack
        start, end = float(self.history[i, 0]), float(self.history[i, -1])
        runs = f" × {self.restarts} restarts" if self.restarts > 1 else ""
        stop = " (stopped early)" if self.stopped_early else ""
        head = f"{name}, ε = {self.epsilon:.4g}, {self.steps_run} step(s){runs}{stop}"
        if not bool(self.found[i]):
            return (f"{head}: no label-preserving perturbation found that changes the "
                    f"{info.name} (k = {self.select_k}) from {start:.3f}; the input is returned "
                    "unchanged.")
        r, col = int(self.best_restart[i]), int(self.best_step[i])
        if bool(self.noise_won[i]):
            where = f"by random sign noise (draw {r + 1}), better than the attack's iterates"
        elif self.restarts > 1:
            where = f"at step {col - r * self.steps} of restart {r + 1}"
        else:
            where = f"at step {col}"
        return (f"{head}: {info.name} (k = {self.select_k}) {start:.3f} → {end:.3f} {where}; "
                f"label {int(self.label_orig[i])} kept (confidence "
                f"{float(self.conf_orig[i]):.2f} → {float(self.conf_adv[i]):.2f}); "
                f"‖x' − x‖∞ = {float(self.linf[i]):.4g}.")


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
# The loop's parts
# --------------------------------------------------------------------------------------------

def _loss_gradient(surrogate, x, method, params, target, loss_fn) -> torch.Tensor:
    """Gradient w.r.t. ``x`` of the batch-summed ``loss_fn`` of the surrogate's ``method`` map:
    :func:`explorer.attributions.map_loss_gradient` (one double-backward; SmoothGrad and IG in
    chunks of :func:`explorer.cost.default_chunk` rows, so memory stays bounded)."""
    return map_loss_gradient(surrogate, x, method, params, target,
                             lambda m: loss_fn(m).sum(), validate=False,
                             chunk=default_chunk(method, params, x))


def _evaluate(model, x, method, mparams, target):
    """Real-model map ``(N, H, W)`` and logits at ``x`` (one forward+backward for gradient
    methods; an extra no-grad forward for the label otherwise)."""
    attr, logits = attribute_with_logits(model, x, method, mparams, target, False,
                                         validate=False)
    if logits is None:
        with torch.no_grad():
            logits = model(x)
    return to_map(attr).detach(), logits.detach()


def _confidence(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits.float(), dim=1).gather(1, label.view(-1, 1)).view(-1)


def _generator(seed: int, restart: int, purpose: str = "walk") -> torch.Generator:
    """A random stream of one restart: ``seed`` itself for the first walk, otherwise a seed
    derived from (seed, restart, purpose), so that the random start of a restart is
    independent of its walk's draws (and of the noise candidates, which are walks too)."""
    if restart or purpose != "walk":
        entropy = [seed, restart, zlib.crc32(purpose.encode())]
        seed = int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> 1)
    return torch.Generator(device="cpu").manual_seed(seed)


def _iterates(info: AttackInfo, x0, epsilon, step_size, steps: int, restarts: int,
              random_start: bool, seed: int,
              gradient_for: Callable[[int], Callable | None]) -> Iterator[tuple[int, torch.Tensor]]:
    """The walk of ``info`` over all restarts: yields (restart, projected iterate)."""
    for r in range(restarts):
        state = AttackState(x0, x0, 0, r, epsilon, step_size, _generator(seed, r),
                            gradient_for(r))
        if r and random_start:
            u = torch.rand(x0.shape, generator=_generator(seed, r, "start"), dtype=torch.float32,
                           device="cpu")
            u = u.to(device=x0.device, dtype=x0.dtype)
            state.current = state.project(x0 + epsilon * (2 * u - 1))
        for t in range(1, steps + 1):
            state.step = t
            state.current = state.project(info.move(state)).detach()
            yield r, state.current


class _Best:
    """Per image, the best label-preserving candidate so far (starting with ``x`` itself)."""

    def __init__(self, meas: SelectionMeasure, x0, map0, label0, conf0):
        n = x0.shape[0]
        self.meas, self.label0 = meas, label0
        self.value = meas(map0)
        self.x, self.map = x0.clone(), map0.clone()
        self.label, self.conf = label0.clone(), conf0.clone()
        self.step = torch.zeros(n, dtype=torch.long, device=x0.device)
        self.restart = torch.zeros_like(self.step)
        self.noise = torch.zeros(n, dtype=torch.bool, device=x0.device)

    def offer(self, cand, map_c, logits, step: int, restart: int, noise: bool) -> torch.Tensor:
        """Keep ``cand`` where it keeps the label and is strictly better; returns its labels."""
        label = logits.argmax(dim=1)
        value = self.meas(map_c)
        take = (label == self.label0) & self.meas.better(value, self.value)
        tv = take.view(-1, 1, 1)
        self.value = torch.where(take, value, self.value)
        self.map = torch.where(tv, map_c, self.map)
        self.x = torch.where(tv.unsqueeze(1), cand, self.x)
        self.label = torch.where(take, label, self.label)
        self.conf = torch.where(take, _confidence(logits, label), self.conf)
        self.step = torch.where(take, torch.full_like(self.step, step), self.step)
        self.restart = torch.where(take, torch.full_like(self.restart, restart), self.restart)
        self.noise = torch.where(take, torch.full_like(self.noise, noise), self.noise)
        return label


# --------------------------------------------------------------------------------------------
# The attack
# --------------------------------------------------------------------------------------------

def attack(model, x, *, method: str = "saliency", method_params: dict | None = None,
           attack: str = "topk", epsilon, step_size=None, steps=None, attack_k, w: int = 1,
           measure: str = "topk_intersection", select_k: int = 0, beta=DEFAULT_BETA,
           seed: int = 0, restarts: int = 1, random_start: bool = True,
           noise_candidate: bool = True,
           progress: Callable[[int, int, float], bool | None] | None = None, target=None,
           region=None) -> AttackResult:
    """Attack the ``method`` attribution map of ``model`` at ``x`` ``(N, C, H, W)`` in ``[0, 1]``.

    ``model`` maps ``[0, 1]`` inputs to logits and must be in eval mode; it is not modified.
    ``epsilon`` (ℓ∞ budget) and ``attack_k`` (k' of the loss) are always required;
    ``step_size`` and ``steps`` by the iterative attacks. ``w``: LENS radius (``lens_topk`` loss
    and LENS/diverse measures). ``measure``: key of ``metrics.METRICS`` used to pick the best
    label-preserving candidate, at ``select_k`` (0: at ``attack_k``). ``beta``: softplus
    sharpness of the surrogate, or a tuple cycled over the restarts. ``seed``: the random
    draws. ``restarts``: runs of the attack, the best candidate over all kept; ``random_start``
    (attacks that declare it): restarts after the first start at a random point of the ε-ball;
    ``noise_candidate`` (untargeted gradient attacks): the ``random_sign`` draws of the same
    seed and restarts are candidates too. ``progress(step, total, best_measure)``: called after
    every step (``total = restarts·steps``) with the batch-mean best measure; return True to
    stop early. Inside a ``jobs.cancel_scope`` whose check raises ``jobs.Cancelled``, the
    attack also stops early, within a chunk of its current step's gradient. ``target``: class whose attribution is attacked (default: the prediction).
    ``region``: ``(H, W)`` or ``(N, H, W)`` boolean mask, required by (and only by) the
    ``targeted`` attack.
    """
    # ---- validation: everything before any computation -------------------------------------
    info = _info(attack)
    declared = {p.name for p in info.params}
    validate_input(x)
    _check_model(model, x)
    mparams = resolve(_method(method).params, method_params)
    if measure not in metrics.METRICS:
        raise ValueError(f"unknown measure {measure!r}; allowed: {', '.join(metrics.METRIC_KEYS)}")
    n, _, h, wd = x.shape
    epsilon = _check_param(_EPSILON, epsilon, attack, True)
    step_size = _check_param(_STEP_SIZE, step_size, attack, info.iterative)
    steps = _check_param(_STEPS, steps, attack, info.iterative)
    attack_k = metrics.validate_k(_check_param(_ATTACK_K, attack_k, attack, True), h, wd)
    select_k = _SELECT_K.check(select_k)
    select_k = metrics.validate_k(select_k, h, wd) if select_k else attack_k
    w = metrics.validate_w(w)
    seed = _SEED.check(seed)
    restarts = _RESTARTS.check(restarts)
    random_start = _RANDOM_START.check(random_start) and "random_start" in declared
    noise = _NOISE.check(noise_candidate) and "noise_candidate" in declared
    betas = _check_betas(beta, _check_beta)
    betas = betas if isinstance(betas, tuple) else (betas,)
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
    per_restart = steps if info.iterative else 1
    total = restarts * per_restart

    # ---- the original input, on the real model ---------------------------------------------
    x0 = x.detach()
    with torch.no_grad():
        logits0 = model(x0)
    target = resolve_target(target, n, logits0.shape[1], x.device)
    label0 = logits0.argmax(dim=1)
    target = label0 if target is None else target
    conf0 = _confidence(logits0, label0)
    map0, _ = _evaluate(model, x0, method, mparams, target)
    meas = SelectionMeasure(measure, map0, select_k, w)
    best = _Best(meas, x0, map0, label0, conf0)
    history = [best.value.clone()]

    loss_fn = info.loss(map0, attack_k, w, region) if info.uses_gradient else None
    surrogates: dict[float, torch.nn.Module] = {}

    def gradient_for(r: int):
        if loss_fn is None:
            return None
        b = betas[r % len(betas)]
        if b not in surrogates:
            surrogates[b] = smooth_model(model, b)
        sur = surrogates[b]
        return lambda z: _loss_gradient(sur, z, method, mparams, target, loss_fn)

    noise_draws = (_iterates(ATTACKS["random_sign"], x0, epsilon, None, 1, restarts, False,
                             seed, lambda r: None) if noise else iter(()))
    flips = torch.zeros(n, dtype=torch.float64, device=x.device)
    steps_run, stopped = 0, False
    walk = _iterates(info, x0, epsilon, step_size, per_restart, restarts, random_start, seed,
                     gradient_for)
    try:
        for col, (r, cur) in enumerate(walk, start=1):
            map_t, logits_t = _evaluate(model, cur, method, mparams, target)
            flips += best.offer(cur, map_t, logits_t, col, r, False) != label0
            if col == 1:
                for rn, cand in noise_draws:
                    map_c, logits_c = _evaluate(model, cand, method, mparams, target)
                    best.offer(cand, map_c, logits_c, 1, rn, True)
            history.append(best.value.clone())
            steps_run = col
            if progress is not None and progress(col, total, float(best.value.nanmean())):
                stopped = col < total
                break
            cancel_point()
    except Cancelled:
        # Asked to stop inside a step (between the chunks of a SmoothGrad / IG gradient, see
        # ``jobs.cancel_scope``): that step is dropped, the best iterate so far is kept.
        stopped = steps_run < total

    return AttackResult(
        x_adv=best.x.detach(), map_orig=map0, map_adv=best.map,
        history=torch.stack(history, 1), label_orig=label0, label_adv=best.label,
        conf_orig=conf0, conf_adv=best.conf, label_kept=best.label == label0,
        linf=(best.x - x0).abs().flatten(1).amax(dim=1), found=best.step > 0,
        steps_run=steps_run, best_step=best.step, best_restart=best.restart,
        noise_won=best.noise, flip_share=flips / max(steps_run, 1), attack=attack,
        method=method, measure=measure, attack_k=attack_k, select_k=select_k, w=w,
        epsilon=float(epsilon), steps=per_restart, restarts=restarts, stopped_early=stopped,
        params=dict(method_params=mparams, step_size=step_size, select_k=select_k,
                    beta=betas[0] if len(betas) == 1 else betas, seed=seed, restarts=restarts,
                    random_start=random_start, noise_candidate=noise))
