"""Attribution methods and maps (definitions: docs/spec.md, "Attribution methods").

``model`` maps a batch ``x`` of shape ``(N, C, H, W)`` in ``[0, 1]`` to logits ``(N, classes)``
(normalisation lives inside the model). Attributions are ``(N, C, H, W)``; maps are ``(N, H, W)``.
The target class is the model's prediction on ``x`` unless given; attributions are taken of the
target's **logit**, not of the softmax.

Every method is batched, runs on ``x``'s device and, with ``create_graph=True``, returns an
attribution that is itself differentiable with respect to ``x`` (attacks back-propagate through
it, through all path points of Integrated Gradients included). The model is never modified:
no hooks, no ``eval()``/``train()`` calls, no parameter changes.

Methods (keys of :data:`METHODS`; their parameters are declared once, in the registry):

- ``saliency``: ``∂ logit_y / ∂x``.
- ``integrated_gradients``: ``(x - b) ⊙ mean_{i=1..m} ∇ logit_y(b + (i/m)(x - b))``, right
  Riemann sum, baseline ``b`` = zeros, a blurred ``x`` or seeded uniform noise; the ``N·m``
  path points are evaluated ``internal_batch_size`` at a time. :func:`completeness_gap`
  reports ``Σ attr - (logit_y(x) - logit_y(b))``.
- ``smoothgrad``: mean saliency over ``n`` copies ``x + ε``, ``ε ~ N(0, σ²)`` with
  ``σ = sigma × (input range)``; the input range is the pixel domain ``[0, 1]``, so
  ``σ = sigma``. Noisy copies are not clipped.
- ``input_x_gradient``: ``x ⊙ ∂ logit_y / ∂x``.

Attacks need ``∇_x L(to_map(A(x)))``; :func:`map_loss_gradient` computes it chunk by chunk
of noisy copies / path points, so that its peak memory is set by the chunk size, not by the
number of samples or steps.

Randomness (SmoothGrad noise, the uniform IG baseline) comes from a CPU ``torch.Generator``
seeded by the method's ``seed`` parameter, drawn once per call with shape ``(n, C, H, W)``
(resp. ``(C, H, W)``) and shared by every image of the batch: an image's attribution does not
depend on which batch it is in, nor on the device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .jobs import cancel_point
from .params import Param, resolve

__all__ = [
    "MethodInfo",
    "METHODS",
    "METHOD_KEYS",
    "attribute",
    "attribute_with_logits",
    "attribution_map",
    "to_map",
    "predict",
    "saliency",
    "integrated_gradients",
    "smoothgrad",
    "input_x_gradient",
    "make_baseline",
    "completeness_gap",
    "validate_input",
    "resolve_target",
    "map_loss_gradient",
    "chunked_rows",
    "forward_chunk_rows",
]

# Input values per forward chunk when internal_batch_size = 0 ("auto"). On the CPU 2**19
# values = 3 rows of 224×224×3: about 0.3 GB for EfficientNet-Lite0's forward + backward
# (93 MB per row, see explorer.cost); 2**21 took 1.2 GB per SmoothGrad / IG map.
_AUTO_CHUNK_VALUES = {"cpu": 2 ** 19, "cuda": 2 ** 23}
BASELINES = ("zeros", "blur", "uniform")


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------

def validate_input(x, name: str = "x") -> torch.Tensor:
    """Check that ``x`` is a finite float tensor ``(N, C, H, W)`` in ``[0, 1]``; return it."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch tensor of shape (N, C, H, W) with values in "
                         f"[0, 1]; got {type(x).__name__}")
    if x.dim() != 4 or min(x.shape) == 0:
        raise ValueError(f"{name} must have shape (N, C, H, W) with N, C, H, W >= 1; "
                         f"got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a float tensor with values in [0, 1]; got dtype "
                         f"{x.dtype} (divide uint8 images by 255)")
    with torch.no_grad():
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} contains NaN or infinite values; only finite values in "
                             "[0, 1] are allowed")
        lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name} must have values in [0, 1] (pixel space; normalisation lives "
                         f"inside the model); got values in [{lo:.4g}, {hi:.4g}]")
    return x


def _check_model(model, x: torch.Tensor) -> None:
    if not isinstance(model, nn.Module) and not callable(model):
        raise ValueError(f"model must be a torch.nn.Module mapping [0, 1] inputs to logits; "
                         f"got {type(model).__name__}")
    if isinstance(model, nn.Module):
        if model.training:
            raise ValueError("model is in training mode; call model.eval() first (attributions "
                             "must not depend on the batch or update batch-norm statistics)")
        p = next(model.parameters(), None)
        if p is not None and p.device != x.device:
            raise ValueError(f"x is on {x.device} but the model is on {p.device}; move both to "
                             "the same device")


def _check_logits(logits, n: int) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != n:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"the model must return logits of shape (N, classes) = ({n}, classes); "
                         f"got {shape}")
    return logits


def resolve_target(target, n: int, num_classes: int | None, device) -> torch.Tensor | None:
    """``target`` (None, an int, a sequence or a LongTensor of N ints) as a LongTensor ``(N,)``.

    ``None`` stays None (meaning: the model's prediction). Raises ValueError naming the allowed
    class range when ``num_classes`` is known.
    """
    if target is None:
        return None
    allowed = f"an integer class index in [0, {num_classes - 1}]" if num_classes else \
        "a non-negative integer class index"
    if isinstance(target, bool):
        raise ValueError(f"target must be {allowed} or one per image; got {target!r}")
    if isinstance(target, Integral):
        t = torch.full((n,), int(target), dtype=torch.long)
    else:
        try:
            t = torch.as_tensor(target)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"target must be {allowed} or a sequence of {n} of them; "
                             f"got {target!r}") from None
        if t.dtype == torch.bool or t.is_floating_point() or t.is_complex():
            raise ValueError(f"target must hold integers ({allowed}); got dtype {t.dtype}")
        t = t.long().reshape(-1)
        if t.numel() == 1:
            t = t.expand(n).clone()
        if t.numel() != n:
            raise ValueError(f"target must be one class index or {n} of them (one per image); "
                             f"got {t.numel()}")
    if bool((t < 0).any()) or (num_classes is not None and bool((t >= num_classes).any())):
        raise ValueError(f"target must be {allowed}; got {t.tolist()}")
    return t.to(device)


def forward_chunk_rows(values_per_row: int, internal_batch_size: int = 0,
                       device="cpu") -> int:
    """Rows per forward pass of SmoothGrad / IG maps: ``internal_batch_size`` when set, else
    about :data:`_AUTO_CHUNK_VALUES` input values (at least 1 row)."""
    if internal_batch_size > 0:
        return int(internal_batch_size)
    kind = "cuda" if str(getattr(device, "type", device)).startswith("cuda") else "cpu"
    return max(1, _AUTO_CHUNK_VALUES[kind] // int(values_per_row))


def _chunk_rows(x: torch.Tensor, internal_batch_size: int) -> int:
    return forward_chunk_rows(x[0].numel(), internal_batch_size, x.device)


def _seeded(shape, seed: int, x: torch.Tensor, kind: str) -> torch.Tensor:
    """Noise drawn on the CPU from a generator seeded with ``seed`` (device-independent)."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    if kind == "normal":
        noise = torch.randn(shape, generator=gen, dtype=torch.float32, device="cpu")
    else:
        noise = torch.rand(shape, generator=gen, dtype=torch.float32, device="cpu")
    return noise.to(device=x.device, dtype=x.dtype)


# --------------------------------------------------------------------------------------------
# Gradient core
# --------------------------------------------------------------------------------------------

def _grad_rows(model, points: torch.Tensor, target_rows: torch.Tensor | None,
               create_graph: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradient of each row's target logit w.r.t. its row of ``points``.

    Returns ``(grad, logits, target_rows)``; a None target becomes each row's argmax.
    ``points`` may be a non-leaf of ``x``'s graph (path points, noisy copies): with
    ``create_graph`` the returned gradient stays differentiable w.r.t. ``x``.
    """
    if not create_graph or not points.requires_grad:
        # A fresh leaf: never flip requires_grad on the caller's tensor.
        points = points.detach().requires_grad_(True)
    logits = _check_logits(model(points), points.shape[0])
    if target_rows is None:
        target_rows = logits.detach().argmax(dim=1)
    elif int(target_rows.max()) >= logits.shape[1]:
        raise ValueError(f"target class {int(target_rows.max())} is out of range: the model has "
                         f"{logits.shape[1]} classes (allowed 0..{logits.shape[1] - 1})")
    selected = logits.gather(1, target_rows.view(-1, 1)).sum()
    (grad,) = torch.autograd.grad(selected, points, create_graph=create_graph)
    return grad, logits, target_rows


def _target_for(model, x, target):
    """Prediction of ``model`` on ``x`` when ``target`` is None (one no-grad forward)."""
    if target is not None:
        return target
    with torch.no_grad():
        return _check_logits(model(x), x.shape[0]).argmax(dim=1)


# --------------------------------------------------------------------------------------------
# Methods. Each returns (attribution (N, C, H, W), logits at x (N, classes) or None).
# --------------------------------------------------------------------------------------------

def _saliency(model, x, target, create_graph):
    grad, logits, _ = _grad_rows(model, x, target, create_graph)
    return grad, logits.detach()


def _input_x_gradient(model, x, target, create_graph):
    grad, logits, _ = _grad_rows(model, x, target, create_graph)
    return x * grad, logits.detach()


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, C, H, W)``, reflect padding (differentiable)."""
    n, c, h, w = x.shape
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    kernel = kernel / kernel.sum()
    flat = x.reshape(n * c, 1, h, w)
    # Reflect padding needs pad < size: fall back to replicate for tiny images.
    mode_h = "reflect" if radius < h else "replicate"
    mode_w = "reflect" if radius < w else "replicate"
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode=mode_w), kernel.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode=mode_h), kernel.view(1, 1, -1, 1))
    return flat.reshape(n, c, h, w)


def make_baseline(x: torch.Tensor, baseline: str = "zeros", seed: int = 0) -> torch.Tensor:
    """The IG baseline for ``x`` ``(N, C, H, W)``.

    ``zeros``: all zeros. ``blur``: ``x`` blurred by a Gaussian of σ = min(H, W)/10 px (2.8 px on
    28×28, 22 px on 224×224), which removes edges while keeping colours. ``uniform``: uniform
    ``[0, 1]`` noise of shape ``(C, H, W)`` from a generator seeded with ``seed``, the same for
    every image.
    """
    if baseline == "zeros":
        return torch.zeros_like(x)
    if baseline == "blur":
        return _gaussian_blur(x, min(x.shape[2], x.shape[3]) / 10.0)
    if baseline == "uniform":
        return _seeded(tuple(x.shape[1:]), seed, x, "uniform").expand_as(x)
    raise ValueError(f"baseline must be one of {', '.join(BASELINES)}; got {baseline!r}")


def _path_gradients(model, x, base_points: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                    copies: int, target, create_graph, internal_batch_size):
    """Mean over ``copies`` per-image points of the target-logit gradient.

    Rows are image-major: row ``r`` is image ``r // copies``, copy ``r % copies``.
    ``base_points(image_index, copy_index)`` builds the rows' input points from ``x``.
    """
    n = x.shape[0]
    total_rows = n * copies
    chunk = _chunk_rows(x, internal_batch_size)
    total = None
    for start in range(0, total_rows, chunk):
        cancel_point()  # a long map or IG attack step stops between chunks when asked
        rows = torch.arange(start, min(start + chunk, total_rows), device=x.device)
        img, cp = rows // copies, rows % copies
        points = base_points(img, cp)
        grad, _, _ = _grad_rows(model, points, target[img], create_graph)
        part = torch.zeros_like(x if create_graph else x.detach()).index_add(0, img, grad)
        total = part if total is None else total + part
    return total / copies


def _integrated_gradients(model, x, target, create_graph, steps=50, baseline="zeros", seed=0,
                          internal_batch_size=0):
    target = _target_for(model, x, target)
    b = make_baseline(x, baseline, seed)
    if not create_graph:
        b = b.detach()
    diff = x - b
    alphas = torch.arange(1, steps + 1, device=x.device, dtype=x.dtype) / steps

    def points(img, cp):
        return b[img] + alphas[cp].view(-1, 1, 1, 1) * diff[img]

    mean_grad = _path_gradients(model, x, points, steps, target, create_graph,
                                internal_batch_size)
    return diff * mean_grad, None


def _smoothgrad(model, x, target, create_graph, n_samples=50, sigma=0.15, seed=0,
                internal_batch_size=0):
    target = _target_for(model, x, target)
    noise = _seeded((n_samples,) + tuple(x.shape[1:]), seed, x, "normal") * sigma

    def points(img, cp):
        return x[img] + noise[cp]

    return _path_gradients(model, x, points, n_samples, target, create_graph,
                           internal_batch_size), None


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MethodInfo:
    """One attribution method. ``fn(model, x, target, create_graph, **params)`` returns
    ``(attribution (N, C, H, W), logits at x or None)``; ``target`` is a LongTensor ``(N,)`` or
    None (the prediction)."""

    key: str
    name: str
    description: str
    params: tuple[Param, ...]
    fn: Callable


_CHUNK = Param("internal_batch_size", "int", 0, min=0, max=100_000, step=1,
               label="points per forward pass",
               help="How many path points / noisy copies go through the model at once; 0 picks "
                    "a size automatically (about 0.5 million input values on CPU, 8 million on "
                    "GPU). "
                    "Does not change the result.")

METHODS: dict[str, MethodInfo] = {
    m.key: m for m in (
        MethodInfo(
            "saliency", "Simple Gradients",
            "Gradient of the target class logit with respect to the input pixels.",
            (), _saliency),
        MethodInfo(
            "integrated_gradients", "Integrated Gradients",
            "Input minus baseline, times the mean gradient along the straight path from the "
            "baseline to the input.",
            (Param("steps", "int", 50, min=1, max=1000, step=1, label="path steps m",
                   help="Number of points on the path from baseline to input (the paper uses "
                        "100); more steps shrink the completeness gap."),
             Param("baseline", "choice", "zeros", choices=BASELINES, label="baseline",
                   help="Reference input: black (zeros), a blurred copy of the input, or "
                        "uniform noise (seeded)."),
             Param("seed", "int", 0, min=0, max=2 ** 31 - 1, label="noise seed",
                   help="Seed of the uniform-noise baseline (unused by the other baselines)."),
             _CHUNK),
            _integrated_gradients),
        MethodInfo(
            "smoothgrad", "SmoothGrad",
            "Mean gradient over noisy copies of the input (Gaussian noise).",
            (Param("n_samples", "int", 50, min=1, max=1000, step=1, label="noisy copies n",
                   help="Number of noisy copies averaged."),
             Param("sigma", "float", 0.15, min=0.0, max=1.0, step=0.01, label="noise σ",
                   help="Noise standard deviation as a fraction of the input range [0, 1]."),
             Param("seed", "int", 0, min=0, max=2 ** 31 - 1, label="noise seed",
                   help="Seed of the noise; the same seed gives the same map."),
             _CHUNK),
            _smoothgrad),
        MethodInfo(
            "input_x_gradient", "Input × Gradient",
            "The input times the gradient of the target class logit.",
            (), _input_x_gradient),
    )
}
METHOD_KEYS: tuple[str, ...] = tuple(METHODS)


def _method(method: str) -> MethodInfo:
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; allowed: "
                         f"{', '.join(METHOD_KEYS)}")
    return METHODS[method]


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------

def _prepare(model, x, method: str, params, target, validate: bool):
    """The method's entry, its resolved parameters and (when ``validate``) the checked input
    and target: the common start of every entry point."""
    info = _method(method)
    values = resolve(info.params, params)
    if validate:
        validate_input(x)
        _check_model(model, x)
        target = resolve_target(target, x.shape[0], None, x.device)
    return info, values, target


def attribute_with_logits(model, x, method: str = "saliency", params: dict | None = None,
                          target=None, create_graph: bool = False, *, validate: bool = True
                          ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Like :func:`attribute`, also returning the logits at ``x`` when the method computed them
    anyway (saliency, input × gradient), else None. ``validate=False`` skips the input checks
    (for callers that already checked, e.g. the attack loop)."""
    info, values, target = _prepare(model, x, method, params, target, validate)
    with torch.enable_grad():
        attr, logits = info.fn(model, x, target, create_graph, **values)
    if not create_graph:
        attr = attr.detach()
    return attr, logits


def attribute(model, x, method: str = "saliency", params: dict | None = None, target=None,
              create_graph: bool = False) -> torch.Tensor:
    """Attribution ``(N, C, H, W)`` of ``model`` at ``x`` ``(N, C, H, W)`` in ``[0, 1]``.

    ``method``: a key of :data:`METHODS`; ``params``: its parameters (defaults filled in,
    unknown names refused); ``target``: None (the prediction), one class index, or one per
    image. ``create_graph=True`` keeps the result differentiable with respect to ``x``.
    """
    return attribute_with_logits(model, x, method, params, target, create_graph)[0]


def to_map(attribution: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` attribution -> ``(N, H, W)`` map: ``Σ_C |attr|`` rescaled to sum ``H·W``.

    A map that sums to 0 stays all zeros (degenerate). Differentiable (no NaN gradients for
    degenerate maps).
    """
    if not isinstance(attribution, torch.Tensor) or attribution.dim() != 4:
        shape = tuple(attribution.shape) if isinstance(attribution, torch.Tensor) else \
            type(attribution).__name__
        raise ValueError(f"attribution must be a tensor of shape (N, C, H, W); got {shape}")
    m = attribution.abs().sum(dim=1)
    h, w = m.shape[1], m.shape[2]
    total = m.sum(dim=(1, 2), keepdim=True)
    safe = torch.where(total > 0, total, torch.ones_like(total))
    return torch.where(total > 0, m * (h * w) / safe, torch.zeros_like(m))


def attribution_map(model, x, method: str = "saliency", params: dict | None = None, target=None,
                    create_graph: bool = False) -> torch.Tensor:
    """``to_map(attribute(...))``: the ``(N, H, W)`` map, mean 1 (or all zeros)."""
    return to_map(attribute(model, x, method, params, target, create_graph))


def predict(model, x) -> tuple[torch.Tensor, torch.Tensor]:
    """``(labels LongTensor (N,), confidences (N,))``: argmax class and its softmax probability."""
    validate_input(x)
    _check_model(model, x)
    with torch.no_grad():
        logits = _check_logits(model(x), x.shape[0])
        prob = torch.softmax(logits.float(), dim=1)
        conf, labels = prob.max(dim=1)
    return labels, conf


def integrated_gradients(model, x, target=None, create_graph=False, **params):
    """Integrated Gradients attribution ``(N, C, H, W)`` (see the module docstring)."""
    return attribute(model, x, "integrated_gradients", params, target, create_graph)


def saliency(model, x, target=None, create_graph=False):
    """Simple Gradients ``∂ logit_y / ∂x``, ``(N, C, H, W)``."""
    return attribute(model, x, "saliency", None, target, create_graph)


def smoothgrad(model, x, target=None, create_graph=False, **params):
    """SmoothGrad attribution ``(N, C, H, W)`` (see the module docstring)."""
    return attribute(model, x, "smoothgrad", params, target, create_graph)


def input_x_gradient(model, x, target=None, create_graph=False):
    """Input × Gradient ``x ⊙ ∂ logit_y / ∂x``, ``(N, C, H, W)``."""
    return attribute(model, x, "input_x_gradient", None, target, create_graph)


def completeness_gap(model, x, attribution, target=None, baseline="zeros",
                     seed: int = 0) -> torch.Tensor:
    """``Σ attribution - (logit_y(x) - logit_y(b))`` per image, ``(N,)``.

    ``baseline``: a tensor like ``x`` or a baseline name (see :func:`make_baseline`, with
    ``seed`` for ``uniform``). For exact IG the gap is 0; the Riemann sum leaves a gap that
    shrinks as the number of steps grows.
    """
    validate_input(x)
    _check_model(model, x)
    if not isinstance(attribution, torch.Tensor) or attribution.shape != x.shape:
        raise ValueError(f"attribution must have the shape of x {tuple(x.shape)}")
    if isinstance(baseline, str):
        b = make_baseline(x, baseline, seed)
    elif isinstance(baseline, torch.Tensor) and baseline.shape == x.shape:
        b = baseline.to(x.device, x.dtype)
    else:
        raise ValueError(f"baseline must be one of {', '.join(BASELINES)} or a tensor of shape "
                         f"{tuple(x.shape)}")
    with torch.no_grad():
        fx = _check_logits(model(x), x.shape[0])
        t = resolve_target(target, x.shape[0], fx.shape[1], x.device)
        if t is None:
            t = fx.argmax(dim=1)
        fb = model(b)
        delta = fx.gather(1, t.view(-1, 1)) - fb.gather(1, t.view(-1, 1))
        return attribution.detach().flatten(1).sum(dim=1) - delta.view(-1)


# --------------------------------------------------------------------------------------------
# Gradient of a loss of the map, chunk by chunk (memory bounded by the chunk size)
# --------------------------------------------------------------------------------------------

_CHUNKED = ("smoothgrad", "integrated_gradients")


def chunked_rows(method: str, params: dict | None, n_images: int) -> int:
    """Rows (image × noisy copy / path point) that SmoothGrad / IG push through the model for
    ``n_images`` images; 0 for the single-pass methods (saliency, input × gradient)."""
    values = resolve(_method(method).params, params)
    copies = values.get("n_samples", values.get("steps", 0)) if method in _CHUNKED else 0
    return int(n_images) * int(copies)


def _rows(n_rows: int, chunk: int, device):
    for start in range(0, n_rows, chunk):
        cancel_point()  # the chunked attack gradient stops between chunks when asked
        yield torch.arange(start, min(start + chunk, n_rows), device=device)


def _smoothgrad_vjp(model, x0, target, v, chunk, n_samples=50, sigma=0.15, seed=0,
                    internal_batch_size=0):
    """``∇_x <v, SmoothGrad(x)>`` = mean over copies of the Hessian-vector products
    ``H(x + ε_s) v``, one chunk of rows (image-major) at a time."""
    noise = _seeded((n_samples,) + tuple(x0.shape[1:]), seed, x0, "normal") * sigma
    out = torch.zeros_like(x0)
    for rows in _rows(x0.shape[0] * n_samples, chunk, x0.device):
        img, cp = rows // n_samples, rows % n_samples
        points = (x0[img] + noise[cp]).requires_grad_(True)  # a leaf: d points / dx = I
        grad, _, _ = _grad_rows(model, points, target[img], True)
        (h,) = torch.autograd.grad((v[img] * grad).sum(), points)
        out.index_add_(0, img, h)
        del grad, h, points  # this chunk's graph is gone before the next one is built
    return out / n_samples


def _ig_parts(model, x0, target, steps, baseline, seed, internal_batch_size):
    """Pass 1 of IG without a graph: ``(x - b, mean path gradient)``."""
    b = make_baseline(x0, baseline, seed).detach()
    diff = x0 - b
    alphas = torch.arange(1, steps + 1, device=x0.device, dtype=x0.dtype) / steps
    mean_grad = _path_gradients(
        model, x0, lambda img, cp: b[img] + alphas[cp].view(-1, 1, 1, 1) * diff[img],
        steps, target, False, internal_batch_size)
    return diff, mean_grad


def _ig_vjp(model, x0, target, v, diff, mean_grad, chunk, steps=50, baseline="zeros", seed=0,
            internal_batch_size=0):
    """``∇_x <v, (x - b(x)) ⊙ M(x)>`` by the product rule: ``J_{x-b}ᵀ (v ⊙ M)`` plus
    ``∇_x <v ⊙ (x - b), M(x)>``, the latter summed over chunks of path points
    ``b(x) + α (x - b(x))``. Each chunk rebuilds ``b(x)`` from a fresh leaf, so a baseline that
    depends on ``x`` (blur) is differentiated too; its graph is freed with the chunk's."""
    alphas = torch.arange(1, steps + 1, device=x0.device, dtype=x0.dtype) / steps
    u, wv = v * mean_grad, v * diff
    xl = x0.detach().requires_grad_(True)
    (out,) = torch.autograd.grad((u * (xl - make_baseline(xl, baseline, seed))).sum(), xl)
    for rows in _rows(x0.shape[0] * steps, chunk, x0.device):
        img, cp = rows // steps, rows % steps
        xl = x0.detach().requires_grad_(True)
        b = make_baseline(xl, baseline, seed)
        points = b[img] + alphas[cp].view(-1, 1, 1, 1) * (xl - b)[img]
        grad, _, _ = _grad_rows(model, points, target[img], True)
        (h,) = torch.autograd.grad((wv[img] * grad).sum() / steps, xl)
        out = out + h
        del grad, h, points, b, xl
    return out


def map_loss_gradient(model, x, method: str, params: dict | None, target,
                      loss_fn: Callable[[torch.Tensor], torch.Tensor], *,
                      chunk: int | None = None, validate: bool = True) -> torch.Tensor:
    """``∇_x loss_fn(to_map(A(x)))`` for the ``method`` attribution ``A``, ``(N, C, H, W)``.

    ``loss_fn`` maps the ``(N, H, W)`` map to a scalar tensor. Second-order terms through the
    model are included (use a smooth model: a ReLU net has none). ``target``: a LongTensor
    ``(N,)`` or None (the prediction at ``x``, held fixed).

    Saliency and input × gradient: one graph, one double-backward (their graph is one image's
    size). SmoothGrad and IG, with ``chunk`` rows (image × noisy copy / path point) at a time:

    1. ``A(x)`` without a graph, ``chunk`` rows per forward pass;
    2. ``v = ∂L/∂A`` by autograd through :func:`to_map` and ``loss_fn`` only;
    3. ``∇_x <v, A(x)>`` accumulated chunk by chunk, each chunk's graph (with
       ``create_graph=True`` for its gradients) freed after its backward.

    Equal to the one-graph gradient up to rounding; peak memory is one chunk's double-backward
    graph instead of all rows'. ``chunk=None`` (or ≥ all rows) builds the one graph of all rows
    at once (the old path: fastest, memory grows with samples / steps); see
    :mod:`explorer.cost` for a chunk that fits a memory budget.
    """
    info, values, target = _prepare(model, x, method, params, target, validate)
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, Integral)
                              or chunk < 1):
        raise ValueError(f"chunk must be a positive integer (rows per backward) or None; "
                         f"got {chunk!r}")
    x0 = x.detach()
    n_rows = chunked_rows(method, values, x0.shape[0])
    with torch.enable_grad():
        if chunk is None or chunk >= n_rows:
            xt = x.detach().requires_grad_(True)
            attr, _ = info.fn(model, xt, target, True, **values)
            (grad,) = torch.autograd.grad(loss_fn(to_map(attr)), xt)
            return grad
        target = _target_for(model, x0, target)
        chunk = int(chunk)
        if method == "smoothgrad":
            attr, _ = info.fn(model, x0, target, False, **{**values, "internal_batch_size": chunk})
        else:
            diff, mean_grad = _ig_parts(model, x0, target, values["steps"], values["baseline"],
                                        values["seed"], chunk)
            attr = diff * mean_grad
        a = attr.detach().requires_grad_(True)
        (v,) = torch.autograd.grad(loss_fn(to_map(a)), a)
        del a, attr
        if method == "smoothgrad":
            return _smoothgrad_vjp(model, x0, target, v, chunk, **values)
        return _ig_vjp(model, x0, target, v, diff, mean_grad, chunk, **values)
