"""Smooth surrogate of a ReLU-family network, for second derivatives (see docs/metrics.md).

A ReLU network is piecewise linear in its input, so the gradient of its saliency map with
respect to the input is zero almost everywhere and an attack on the map has nothing to climb.
Ghorbani et al. (2019) take the attack gradient through a copy of the model whose ReLUs are
replaced by softplus; this module builds that copy. With ``softplus_β(z) = log(1 + e^{βz}) / β``:

    ReLU(z)                 -> softplus_β(z)
    ReLU6(z)                -> softplus_β(z) - softplus_β(z - 6)
    Hardtanh(z; lo, hi)     -> lo + softplus_β(z - lo) - softplus_β(z - hi)     (ReLU6 = lo 0, hi 6)
    LeakyReLU(z; s)         -> s·z + (1 - s)·softplus_β(z)
    Hardsigmoid(z)          -> ReLU6~(z + 3) / 6
    Hardswish(z)            -> z · ReLU6~(z + 3) / 6

Every replacement tends to the original as β → ∞; the weights are the same.

How the copy is made (robustness notes)
---------------------------------------
1. ``copy.deepcopy`` of the model, so the original is never touched (the app shares one model
   object read-only between sessions). The copy's parameters are set to
   ``requires_grad=False``: attacks differentiate with respect to the input only.
2. Activation *modules* in the copy are swapped for smooth modules (visible in ``print(copy)``).
3. Activations called as *functions* inside some ``forward`` (``F.relu(x)``, ``torch.relu``,
   ``x.relu()``, ``F.relu6``, ``F.leaky_relu``, ``F.hardtanh``, ``F.hardswish``,
   ``F.hardsigmoid``, in-place variants included) are caught while the copy runs by a
   :class:`torch.overrides.TorchFunctionMode`, which sees every overridable torch call made
   in its dynamic scope, whatever module or helper makes it. This works on any eager model, with
   no tracing: unlike ``torch.fx`` it does not fail on data-dependent control flow.
4. What cannot be smoothed is refused up front with :class:`UnsupportedActivation` naming the
   module: TorchScript modules (their code runs outside Python, where neither step 2 nor 3
   reaches) and non-smooth activations with no smooth replacement here (PReLU, RReLU,
   Threshold, Hardshrink, Softshrink). Functional calls of those raise the same error when the
   copy first runs. Already-smooth activations (GELU, SiLU, ELU, Softplus, ...) are kept.
5. Speed only, same function (``smooth_model(..., fast=True)``, the default): every
   convolution with constant weights computes its input gradient as one transposed
   convolution (:class:`_Conv2dInputGrad`): plain ``nn.Conv2d`` modules are swapped, and
   ``F.conv2d`` calls made by other modules (TensorFlow-style "same" padding subclasses, as in
   EfficientNet) are caught by the function mode. Autograd's own double backward of a grouped
   (depthwise) convolution runs one convolution per group: ~9000 small convolutions per
   attack step on EfficientNet-Lite0 at 224×224. Eval-mode batch norms become one ``addcmul``
   (:func:`_eval_batch_norm`), and each smooth activation (softplus, smooth ReLU6 / clamp) is
   one autograd node whose backward, and that backward's backward, are analytic
   (:class:`_SmoothStep`, :class:`_SmoothStepGrad`); the copy's weights are channels-last
   (:class:`SmoothSurrogate`). ``fast=False`` keeps the earlier
   construction (module swaps and :class:`_Softplus` only) for benchmarks and cross-checks.
   Figures in ``benchmarks/README.md``.
"""

from __future__ import annotations

import copy
import math
from numbers import Real

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.utils import _pair
from torch.overrides import TorchFunctionMode

__all__ = ["DEFAULT_BETA", "UnsupportedActivation", "smooth_model", "SmoothSurrogate", "softplus_relu6"]


class UnsupportedActivation(ValueError):
    """The model contains a module or function that the surrogate cannot smooth."""


def _check_beta(beta) -> float:
    if isinstance(beta, bool) or not isinstance(beta, Real) or not math.isfinite(float(beta)) \
            or float(beta) <= 0:
        raise ValueError(f"beta (softplus sharpness) must be a finite number > 0; got {beta!r}")
    return float(beta)


class _Softplus(torch.autograd.Function):
    """``softplus_β(z) = log(1 + e^{βz}) / β`` with a fast, double-differentiable backward.

    ``F.softplus`` on the CPU evaluates ``log1p`` element by element (about 6× slower than this
    whole function on a 64×32×28×28 activation) and it was the largest cost of an attack step.
    Forward: ``max(z, 0) - log(sigmoid(β|z|)) / β`` (stable: ``sigmoid(β|z|)`` lies in
    ``[1/2, 1]``). Backward: ``g · sigmoid(βz)``, written with differentiable torch ops, so
    autograd differentiates it again (``create_graph=True``) with ``β·σ(1-σ)``.
    ``clamp_min`` rather than ``relu``: the surrogate's function mode would smooth ``relu``.
    """

    @staticmethod
    def forward(ctx, z, beta):
        ctx.save_for_backward(z)
        ctx.beta = beta
        # In place on temporaries: this runs without autograd, so nothing else holds them.
        return _sp_value(z, beta)

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        return grad * torch.sigmoid(z * ctx.beta), None


def _sp_value(z: torch.Tensor, beta: float) -> torch.Tensor:
    """``softplus_β(z)`` without autograd (the forward of :class:`_Softplus`)."""
    out = torch.sigmoid(z.abs().mul_(beta)).log_().mul_(-1.0 / beta)
    return out.add_(z.clamp_min(0))


class _SmoothStepGrad(torch.autograd.Function):
    """``grad · d(z)``, the backward of :class:`_SmoothStep`, with its own (second-order) backward.

    ``d(z) = σ(β(z - lo)) - σ(β(z - hi))`` (no second term when ``hi`` is None), the derivative
    of the smooth step. Its backward is analytic: ``∂/∂grad = gg · d`` and
    ``∂/∂z = gg · grad · β · e`` with ``e = σ₁(1 - σ₁) - σ₂(1 - σ₂)``: one autograd node per
    activation in the double backward instead of the five or six that autograd records for the
    same expression written with torch ops. When that backward itself is differentiated
    (``create_graph=True`` in the second pass: third derivatives), it is recomputed from ``z``
    with differentiable torch ops, so every order stays exact.
    """

    @staticmethod
    def forward(ctx, grad, z, lo, hi, beta):
        s1 = torch.sigmoid(z.mul(beta) if lo == 0 else (z - lo).mul_(beta))
        e = s1 - s1 * s1
        d = s1
        if hi is not None:
            s2 = torch.sigmoid((z - hi).mul_(beta))
            d = s1.sub_(s2)
            e.sub_(s2.sub_(s2 * s2))
        ctx.save_for_backward(grad, z, d, e)
        ctx.conf = (lo, hi, beta)
        return grad * d

    @staticmethod
    def backward(ctx, gg):
        grad, z, d, e = ctx.saved_tensors
        lo, hi, beta = ctx.conf
        if torch.is_grad_enabled():  # a higher derivative is wanted: differentiable ops
            s1 = torch.sigmoid(beta * (z - lo))
            d = s1
            e = s1 * (1 - s1)
            if hi is not None:
                s2 = torch.sigmoid(beta * (z - hi))
                d = s1 - s2
                e = e - s2 * (1 - s2)
            return gg * d, gg * grad * e * beta, None, None, None
        g_grad = gg * d if ctx.needs_input_grad[0] else None
        g_z = (gg * grad).mul_(e).mul_(beta) if ctx.needs_input_grad[1] else None
        return g_grad, g_z, None, None, None


class _SmoothStep(torch.autograd.Function):
    """``softplus_β(z - lo) - softplus_β(z - hi)`` (``hi`` None: ``softplus_β(z - lo)``) as one
    autograd node whose backward is :class:`_SmoothStepGrad`.

    Same function as composing :class:`_Softplus` twice (the smooth ReLU6 and clamp), with two
    to three times fewer autograd nodes and temporaries in the attack's double backward.
    """

    @staticmethod
    def forward(ctx, z, lo, hi, beta):
        ctx.save_for_backward(z)
        ctx.conf = (lo, hi, beta)
        out = _sp_value(z if lo == 0 else z - lo, beta)
        if hi is not None:
            out.sub_(_sp_value(z - hi, beta))
        return out

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        lo, hi, beta = ctx.conf
        return _SmoothStepGrad.apply(grad, z, lo, hi, beta), None, None, None


def _sp(z: torch.Tensor, beta: float, fast: bool = True) -> torch.Tensor:
    return _SmoothStep.apply(z, 0.0, None, beta) if fast else _Softplus.apply(z, beta)


def _smooth_clamp(z: torch.Tensor, lo: float, hi: float, beta: float,
                  fast: bool = True) -> torch.Tensor:
    """Smooth ``clamp(z, lo, hi)`` = ``lo + softplus(z - lo) - softplus(z - hi)``."""
    if fast:
        out = _SmoothStep.apply(z, float(lo), float(hi), beta)
    else:
        out = _sp(z - lo, beta, False) - _sp(z - hi, beta, False)
    return out + lo if lo != 0 else out


def softplus_relu6(z: torch.Tensor, beta: float, fast: bool = True) -> torch.Tensor:
    """Smooth ReLU6: ``softplus_β(z) - softplus_β(z - 6)``."""
    return _smooth_clamp(z, 0.0, 6.0, beta, fast)


def _smooth_leaky(z: torch.Tensor, slope: float, beta: float, fast: bool = True) -> torch.Tensor:
    return slope * z + (1.0 - slope) * _sp(z, beta, fast)


class SmoothReLU(nn.Module):
    def __init__(self, beta: float, fast: bool = True):
        super().__init__()
        self.beta, self.fast = beta, fast

    def forward(self, z):
        return _sp(z, self.beta, self.fast)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"


class SmoothHardtanh(nn.Module):
    """Smooth clamp to ``[lo, hi]``; ``lo=0, hi=6`` is the smooth ReLU6."""

    def __init__(self, lo: float, hi: float, beta: float, fast: bool = True):
        super().__init__()
        self.lo, self.hi, self.beta, self.fast = float(lo), float(hi), beta, fast

    def forward(self, z):
        return _smooth_clamp(z, self.lo, self.hi, self.beta, self.fast)

    def extra_repr(self) -> str:
        return f"lo={self.lo}, hi={self.hi}, beta={self.beta}"


class SmoothLeakyReLU(nn.Module):
    def __init__(self, slope: float, beta: float, fast: bool = True):
        super().__init__()
        self.slope, self.beta, self.fast = float(slope), beta, fast

    def forward(self, z):
        return _smooth_leaky(z, self.slope, self.beta, self.fast)

    def extra_repr(self) -> str:
        return f"negative_slope={self.slope}, beta={self.beta}"


class SmoothHardsigmoid(nn.Module):
    def __init__(self, beta: float, fast: bool = True):
        super().__init__()
        self.beta, self.fast = beta, fast

    def forward(self, z):
        return softplus_relu6(z + 3.0, self.beta, self.fast) / 6.0


class SmoothHardswish(nn.Module):
    def __init__(self, beta: float, fast: bool = True):
        super().__init__()
        self.beta, self.fast = beta, fast

    def forward(self, z):
        return z * softplus_relu6(z + 3.0, self.beta, self.fast) / 6.0


class _Conv2dInputGrad(torch.autograd.Function):
    """``F.conv2d`` whose backward gives the input gradient only, as ``F.conv_transpose2d``.

    The surrogate's weights are constants (``requires_grad=False``), so only the input gradient
    is ever needed. Autograd's own double backward of a convolution also evaluates a
    weight-shaped term, and on the CPU the input gradient of a convolution with one input
    channel (a grey-scale first layer) is about 3× slower than the equivalent transposed
    convolution. The backward here is one differentiable ``conv_transpose2d``; its derivative is
    one ``conv2d``. Same numbers, up to float rounding.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        ctx.save_for_backward(weight)
        ctx.conf = (stride, padding, dilation, groups, tuple(x.shape[-2:]))
        return F.conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, grad):
        (weight,) = ctx.saved_tensors
        stride, padding, dilation, groups, in_hw = ctx.conf
        k = weight.shape[-2:]
        out_pad = [in_hw[i] - ((grad.shape[2 + i] - 1) * stride[i] - 2 * padding[i]
                               + dilation[i] * (k[i] - 1) + 1) for i in range(2)]
        gi = F.conv_transpose2d(grad, weight, None, stride, padding, out_pad, groups, dilation)
        return gi, None, None, None, None, None, None


class _ConstConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` with constant weights whose backward is :class:`_Conv2dInputGrad`."""

    def forward(self, x):
        if self.weight.requires_grad or (self.bias is not None and self.bias.requires_grad):
            return super().forward(x)  # someone wants weight gradients: the standard path
        return _Conv2dInputGrad.apply(x, self.weight, self.bias, self.stride, self.padding,
                                      self.dilation, self.groups)


def _fast_conv(mod: nn.Module) -> nn.Module | None:
    """The same convolution with a cheaper backward, for plain zero-padded ``nn.Conv2d``."""
    if type(mod) is not nn.Conv2d or mod.padding_mode != "zeros" or isinstance(mod.padding, str):
        return None  # subclasses may override forward (e.g. "same" padding helpers): keep them
    mod.__class__ = _ConstConv2d  # in place: ``mod`` belongs to the surrogate's own copy
    return mod


# Module types refused: non-smooth, with no replacement here.
_UNSUPPORTED_MODULES = (nn.PReLU, nn.RReLU, nn.Threshold, nn.Hardshrink, nn.Softshrink)


def _smooth_module(mod: nn.Module, beta: float, fast: bool = True) -> nn.Module | None:
    """The smooth replacement of an activation module, or None to keep it as it is."""
    # Order matters: ReLU6 is a subclass of Hardtanh.
    if isinstance(mod, nn.ReLU):
        return SmoothReLU(beta, fast)
    if isinstance(mod, nn.Hardtanh):
        return SmoothHardtanh(mod.min_val, mod.max_val, beta, fast)
    if isinstance(mod, nn.LeakyReLU):
        return SmoothLeakyReLU(mod.negative_slope, beta, fast)
    if isinstance(mod, nn.Hardsigmoid):
        return SmoothHardsigmoid(beta, fast)
    if isinstance(mod, nn.Hardswish):
        return SmoothHardswish(beta, fast)
    return None


def _arg(args, kwargs, index, name, default):
    if len(args) > index:
        return args[index]
    return kwargs.get(name, default)


def _never(args, kwargs) -> bool:
    return False


def _const(*tensors) -> bool:
    return not any(t is not None and t.requires_grad for t in tensors)


def _const_conv2d(args, kwargs):
    """``F.conv2d`` called anywhere in the surrogate (conv subclasses with "same" padding
    included): with constant weights, :class:`_Conv2dInputGrad`. Autograd's double backward of a
    grouped convolution runs one convolution per group (EfficientNet's depthwise layers: ~9000
    small convolutions per attack step at 224×224); the transposed convolution is one call."""
    names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
    x, weight, bias, stride, padding, dilation, groups = (
        _arg(args, kwargs, i, n, d) for i, (n, d) in enumerate(zip(names, (None, None, None, 1, 0, 1, 1))))
    if isinstance(padding, str) or weight.dim() != 4 or not _const(weight, bias):
        return F.conv2d(*args, **kwargs)
    return _Conv2dInputGrad.apply(x, weight, bias, _pair(stride), _pair(padding), _pair(dilation),
                                  int(groups))


def _eval_batch_norm(args, kwargs):
    """``F.batch_norm`` in eval mode with constant statistics and affine parameters: the same
    per-channel affine map ``x·s + t`` (``s = γ / sqrt(var + eps)``, ``t = b - mean·s``) as one
    ``addcmul``, whose first and second derivatives are single multiplications."""
    names = ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps")
    x, mean, var, weight, bias, training, _, eps = (
        _arg(args, kwargs, i, n, d) for i, (n, d) in
        enumerate(zip(names, (None, None, None, None, None, False, 0.1, 1e-5))))
    if training or mean is None or var is None or x.dim() < 2 or not _const(mean, var, weight, bias):
        return F.batch_norm(*args, **kwargs)
    scale = torch.rsqrt(var + eps)
    if weight is not None:
        scale = scale * weight
    shift = -mean * scale
    if bias is not None:
        shift = shift + bias
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return torch.addcmul(shift.view(shape), x, scale.view(shape))


class _SmoothFunctions(TorchFunctionMode):
    """Replaces functional ReLU-family calls by their smooth versions while active."""

    def __init__(self, beta: float, fast: bool = True):
        super().__init__()
        self.beta, self.fast = beta, fast
        b = beta
        relu = lambda z: _sp(z, b, fast)  # noqa: E731
        relu6 = lambda z: softplus_relu6(z, b, fast)  # noqa: E731
        # func -> (smooth function of (args, kwargs), in-place?)
        self.table = {}
        for f in (F.relu, torch.relu, torch.Tensor.relu):
            self.table[f] = (lambda a, k: relu(a[0]), lambda a, k: bool(_arg(a, k, 1, "inplace", False)))
        for f in (F.relu_, torch.relu_, torch.Tensor.relu_):
            self.table[f] = (lambda a, k: relu(a[0]), lambda a, k: True)
        self.table[F.relu6] = (lambda a, k: relu6(a[0]),
                               lambda a, k: bool(_arg(a, k, 1, "inplace", False)))
        self.table[F.leaky_relu] = (
            lambda a, k: _smooth_leaky(a[0], float(_arg(a, k, 1, "negative_slope", 0.01)), b, fast),
            lambda a, k: bool(_arg(a, k, 2, "inplace", False)))
        self.table[F.leaky_relu_] = (
            lambda a, k: _smooth_leaky(a[0], float(_arg(a, k, 1, "negative_slope", 0.01)), b, fast),
            lambda a, k: True)
        self.table[F.hardtanh] = (
            lambda a, k: _smooth_clamp(a[0], float(_arg(a, k, 1, "min_val", -1.0)),
                                       float(_arg(a, k, 2, "max_val", 1.0)), b, fast),
            lambda a, k: bool(_arg(a, k, 3, "inplace", False)))
        self.table[F.hardtanh_] = (
            lambda a, k: _smooth_clamp(a[0], float(_arg(a, k, 1, "min_val", -1.0)),
                                       float(_arg(a, k, 2, "max_val", 1.0)), b, fast),
            lambda a, k: True)
        self.table[F.hardsigmoid] = (lambda a, k: relu6(a[0] + 3.0) / 6.0,
                                     lambda a, k: bool(_arg(a, k, 1, "inplace", False)))
        self.table[F.hardswish] = (lambda a, k: a[0] * relu6(a[0] + 3.0) / 6.0,
                                   lambda a, k: bool(_arg(a, k, 1, "inplace", False)))
        self.refused = {F.prelu: "F.prelu", F.rrelu: "F.rrelu", F.threshold: "F.threshold",
                        F.hardshrink: "F.hardshrink", F.softshrink: "F.softshrink",
                        torch.prelu: "torch.prelu", torch.rrelu: "torch.rrelu",
                        torch.threshold: "torch.threshold"}
        if fast:
            self.table[F.conv2d] = (_const_conv2d, _never)
            self.table[F.batch_norm] = (_eval_batch_norm, _never)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        entry = self.table.get(func)
        if entry is not None:
            smooth, inplace = entry
            if inplace(args, kwargs):
                # Keep in-place semantics (callers may ignore the return value): compute from a
                # copy, then write into the input, as the original in-place op would.
                z = args[0]
                out = smooth((z.clone(),) + tuple(args[1:]), kwargs)
                return z.copy_(out)
            return smooth(args, kwargs)
        if func in self.refused:
            raise UnsupportedActivation(
                f"the model calls {self.refused[func]} inside forward, which the smooth surrogate "
                "cannot smooth; supported: ReLU, ReLU6, LeakyReLU, Hardtanh, Hardsigmoid, "
                "Hardswish (as modules or functions) and already-smooth activations")
        return func(*args, **kwargs)


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward returns the gradient in the standard (contiguous) layout: the
    surrogate's channels-last activations would otherwise hand the caller a channels-last input
    gradient. Differentiable to any order (``contiguous`` is an identity to autograd)."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()


class SmoothSurrogate(nn.Module):
    """Wraps the smoothed copy; its forward runs inside the functional-activation mode.

    With ``fast``, the copy's 4-D weights are channels-last, so its convolutions and activations
    run channels-last (measured ~10 % faster per attack step on the CPU, same numbers up to
    float rounding); the input gradient is still returned contiguous. A model whose forward
    calls ``Tensor.view`` on an activation cannot run channels-last: on that error the copy goes
    back to the standard layout once, for good, and the call is repeated.
    """

    def __init__(self, module: nn.Module, beta: float, fast: bool = True):
        super().__init__()
        self.module = module
        self.beta, self.fast = beta, fast
        self.channels_last = fast
        if fast:
            module.to(memory_format=torch.channels_last)

    def forward(self, *args, **kwargs):
        with _SmoothFunctions(self.beta, self.fast):
            if self.channels_last and args and isinstance(args[0], torch.Tensor) \
                    and args[0].dim() == 4:
                try:
                    return self.module(_ContiguousGrad.apply(args[0]), *args[1:], **kwargs)
                except RuntimeError as exc:
                    if "view size is not compatible" not in str(exc):
                        raise
                    self.channels_last = False
                    self.module.to(memory_format=torch.contiguous_format)
            return self.module(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"beta={self.beta}" + ("" if self.fast else ", fast=False")


DEFAULT_BETA = 10.0  # chosen by measurement: see explorer/attacks.py and benchmarks/README.md


def smooth_model(model: nn.Module, beta: float = DEFAULT_BETA, *, fast: bool = True) -> nn.Module:
    """A smooth copy of ``model`` (same weights, same train/eval flags), the original untouched.

    ``fast`` (default): the same function with cheaper derivatives (fused smooth activations,
    convolutions and eval-mode batch norms with input-only backwards; see the module notes).
    ``fast=False`` keeps the earlier, slower construction, for benchmarks and cross-checks.

    Raises :class:`UnsupportedActivation` (a ValueError) naming the first module it cannot
    smooth, and ValueError for a bad ``beta``.
    """
    beta = _check_beta(beta)
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    for name, mod in model.named_modules():
        where = name or "the model itself"
        if isinstance(mod, torch.jit.ScriptModule):
            raise UnsupportedActivation(
                f"module {where!r} ({type(mod).__name__}) is TorchScript: its activations run "
                "outside Python and cannot be smoothed; pass the eager (non-scripted) model")
        if isinstance(mod, _UNSUPPORTED_MODULES):
            raise UnsupportedActivation(
                f"module {where!r} is {type(mod).__name__}, which the smooth surrogate cannot "
                "smooth; supported: ReLU, ReLU6, LeakyReLU, Hardtanh, Hardsigmoid, Hardswish and "
                "already-smooth activations (GELU, SiLU, ELU, Softplus, ...)")
    smooth = copy.deepcopy(model)
    for p in smooth.parameters():
        p.requires_grad_(False)
    root = _smooth_module(smooth, beta, fast)
    if root is not None:  # the model is a bare activation
        smooth = root
    else:
        _replace(smooth, beta, fast)
    return SmoothSurrogate(smooth, beta, fast).train(model.training)


def _replace(parent: nn.Module, beta: float, fast: bool) -> None:
    for name, child in list(parent.named_children()):
        new = _smooth_module(child, beta, fast) or _fast_conv(child)
        if new is not None:
            new.train(child.training)
            setattr(parent, name, new)
        else:
            _replace(child, beta, fast)
