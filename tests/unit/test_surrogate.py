"""Tests for explorer.surrogate: the smooth copy used for attack gradients."""

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from explorer.surrogate import UnsupportedActivation, smooth_model


def sp(z, beta):
    return torch.log1p(torch.exp(beta * z)) / beta


Z = torch.linspace(-8.0, 12.0, 41, dtype=torch.float64)


@pytest.mark.parametrize("beta", [0.5, 1.0, 5.0])
def test_relu_becomes_softplus(beta):
    s = smooth_model(nn.ReLU(), beta)
    torch.testing.assert_close(s(Z), sp(Z, beta))


@pytest.mark.parametrize("beta", [1.0, 3.0])
def test_relu6_becomes_difference_of_softplus(beta):
    s = smooth_model(nn.Sequential(nn.ReLU6(inplace=True)), beta)
    torch.testing.assert_close(s(Z), sp(Z, beta) - sp(Z - 6, beta))
    # Far from the kinks it is ReLU6 again.
    big = smooth_model(nn.ReLU6(), 50.0)
    torch.testing.assert_close(big(torch.tensor([-5.0, 3.0, 11.0])), torch.tensor([0.0, 3.0, 6.0]),
                               atol=1e-4, rtol=0)


def test_leaky_relu_formula():
    s = smooth_model(nn.Sequential(nn.LeakyReLU(0.2)), 2.0)
    torch.testing.assert_close(s(Z), 0.2 * Z + 0.8 * sp(Z, 2.0))


def test_hardtanh_hardswish_hardsigmoid():
    b = 4.0
    relu6 = sp(Z + 3, b) - sp(Z - 3, b)
    torch.testing.assert_close(smooth_model(nn.Hardtanh(-1.0, 2.0), b)(Z),
                               -1.0 + sp(Z + 1, b) - sp(Z - 2, b))
    torch.testing.assert_close(smooth_model(nn.Hardsigmoid(), b)(Z), relu6 / 6)
    torch.testing.assert_close(smooth_model(nn.Hardswish(), b)(Z), Z * relu6 / 6)


class Functional(nn.Module):
    """Activations called as functions (and in place) inside forward."""

    def __init__(self, which):
        super().__init__()
        self.which = which

    def forward(self, z):
        if self.which == "F.relu":
            return F.relu(z)
        if self.which == "torch.relu":
            return torch.relu(z)
        if self.which == "method":
            return z.relu()
        if self.which == "inplace":
            y = z * 1.0
            F.relu(y, inplace=True)  # return value ignored: in-place semantics must hold
            return y
        if self.which == "relu_":
            y = z * 1.0
            y.relu_()
            return y
        if self.which == "F.relu6":
            return F.relu6(z)
        if self.which == "F.leaky_relu":
            return F.leaky_relu(z, 0.1)
        raise AssertionError


@pytest.mark.parametrize("which", ["F.relu", "torch.relu", "method", "inplace", "relu_"])
def test_functional_relu_calls_are_smoothed(which):
    s = smooth_model(Functional(which), 1.5)
    torch.testing.assert_close(s(Z), sp(Z, 1.5))


def test_functional_relu6_and_leaky():
    torch.testing.assert_close(smooth_model(Functional("F.relu6"), 1.0)(Z), sp(Z, 1.0) - sp(Z - 6, 1.0))
    torch.testing.assert_close(smooth_model(Functional("F.leaky_relu"), 1.0)(Z), 0.1 * Z + 0.9 * sp(Z, 1.0))


def test_functional_mode_does_not_leak_outside_the_surrogate():
    s = smooth_model(Functional("F.relu"), 1.0)
    s(Z)
    torch.testing.assert_close(F.relu(Z), Z.clamp_min(0))
    torch.testing.assert_close(Functional("F.relu")(Z), Z.clamp_min(0))


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 8), nn.LeakyReLU(0.05), nn.Linear(8, 3)).eval()


def test_original_model_is_never_modified():
    net = small_net()
    before = copy.deepcopy(net.state_dict())
    x = torch.rand(2, 1, 6, 6)
    out_before = net(x)
    s = smooth_model(net, 1.0)
    s(x.clone().requires_grad_()).sum().backward()
    assert [type(m) for m in net.modules()] == [type(m) for m in small_net().modules()]
    for key, val in net.state_dict().items():
        assert torch.equal(val, before[key])
    assert all(p.requires_grad for p in net.parameters())
    assert all(p.grad is None for p in net.parameters())
    assert not any(p.requires_grad for p in s.parameters())
    torch.testing.assert_close(net(x), out_before)
    assert not s.training and isinstance(net[1], nn.ReLU)


def test_same_weights_and_converges_to_original_for_large_beta():
    net = small_net()
    x = torch.rand(3, 1, 6, 6)
    s = smooth_model(net, 1000.0)
    torch.testing.assert_close(s(x), net(x), atol=5e-3, rtol=0)
    far = (smooth_model(net, 0.5)(x) - net(x)).abs().max()
    assert far > 1e-2  # a soft surrogate really is different


def test_unsupported_module_is_named():
    net = nn.Sequential(nn.Linear(3, 3), nn.Sequential(nn.Linear(3, 3), nn.PReLU()))
    with pytest.raises(UnsupportedActivation, match=r"module '1\.1' is PReLU.*supported: ReLU"):
        smooth_model(net)
    assert issubclass(UnsupportedActivation, ValueError)


def test_unsupported_function_is_named():
    class UsesPrelu(nn.Module):
        def forward(self, z):
            return F.prelu(z, torch.tensor([0.25]))

    s = smooth_model(UsesPrelu())
    with pytest.raises(UnsupportedActivation, match=r"calls (F|torch)\.prelu inside forward.*supported: ReLU"):
        s(torch.randn(2, 3))


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_module_is_refused():
    scripted = torch.jit.script(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))
    with pytest.raises(UnsupportedActivation, match="TorchScript"):
        smooth_model(nn.Sequential(scripted))


@pytest.mark.parametrize("beta", [0, -1.0, float("nan"), float("inf"), "2", True])
def test_bad_beta(beta):
    with pytest.raises(ValueError, match="beta .* must be a finite number > 0"):
        smooth_model(small_net(), beta)


def test_not_a_module():
    with pytest.raises(ValueError, match="torch.nn.Module"):
        smooth_model(lambda x: x)


def test_second_derivative_nonzero_through_surrogate_zero_through_relu():
    net = small_net()
    x = torch.rand(2, 1, 6, 6, requires_grad=True)
    v = torch.randn(2, 1, 6, 6)

    def hvp(model):
        g, = torch.autograd.grad(model(x)[:, 0].sum(), x, create_graph=True)
        h, = torch.autograd.grad((g * v).sum(), x, allow_unused=True)
        return torch.zeros_like(x) if h is None else h

    assert hvp(net).abs().max() == 0
    assert hvp(smooth_model(net, 2.0)).abs().max() > 1e-4


def test_efficientnet_lite0_relu6_is_smoothed():
    from efficientnet_lite_pytorch import EfficientNet

    torch.manual_seed(0)
    net = EfficientNet.from_name("efficientnet-lite0").eval()
    n_relu6 = sum(isinstance(m, nn.ReLU6) for m in net.modules())
    assert n_relu6 > 0
    s = smooth_model(net, 10.0)
    assert not any(isinstance(m, nn.ReLU6) for m in s.modules())
    assert sum(isinstance(m, nn.ReLU6) for m in net.modules()) == n_relu6
    x = torch.rand(1, 3, 64, 64, requires_grad=True)
    g, = torch.autograd.grad(s(x)[0, 0], x, create_graph=True)
    h, = torch.autograd.grad(g.pow(2).sum(), x)
    assert torch.isfinite(h).all() and h.abs().max() > 0


@pytest.mark.parametrize("conv", [
    dict(in_channels=1, out_channels=4, kernel_size=5, padding=2),
    dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1),
    dict(in_channels=4, out_channels=4, kernel_size=3, stride=2, dilation=2, groups=2, padding=2),
    dict(in_channels=4, out_channels=4, kernel_size=(3, 2), stride=(2, 1), padding=(1, 0),
         groups=4, bias=False),
])
def test_fast_conv_backward_matches_autograd_to_second_order(conv):
    """The surrogate's convolutions use a hand-written input gradient: check first and second
    derivatives against autograd's own convolution, odd sizes and strides included."""
    from explorer.surrogate import _ConstConv2d

    torch.manual_seed(0)
    layer = nn.Conv2d(**conv).double()
    net = nn.Sequential(layer, nn.ReLU(), nn.Flatten()).eval()
    s = smooth_model(net, 2.0)
    assert isinstance(s.module[0], _ConstConv2d)
    ref = nn.Sequential(copy.deepcopy(layer), nn.Softplus(beta=2.0), nn.Flatten())
    x = torch.rand(2, conv["in_channels"], 9, 8, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(s(x), ref(x))
    v = torch.randn_like(s(x))

    def first_and_second(model):
        g, = torch.autograd.grad((model(x) * v).sum(), x, create_graph=True)
        h, = torch.autograd.grad(g.pow(2).sum(), x)
        return g, h

    for a, b in zip(first_and_second(s), first_and_second(ref)):
        torch.testing.assert_close(a, b)
    # Weights that require grad (someone fine-tuning the copy) take the standard path.
    s.module[0].weight.requires_grad_(True)
    s(x).sum().backward()
    assert s.module[0].weight.grad is not None


def test_conv_subclasses_keep_their_own_forward():
    class SamePad(nn.Conv2d):
        def forward(self, x):
            return super().forward(nn.functional.pad(x, (1, 1, 1, 1)))

    net = nn.Sequential(SamePad(1, 2, 3), nn.ReLU())
    s = smooth_model(net, 1.0)
    assert type(s.module[0]) is SamePad
    x = torch.rand(1, 1, 5, 5)
    torch.testing.assert_close(s(x), nn.functional.softplus(net[0](x)))


# ---- the fast construction (default) against the earlier one and against autograd -----------

def _first_and_second(model, x, v):
    out = model(x)
    g, = torch.autograd.grad((out * v).sum(), x, create_graph=True)
    h, = torch.autograd.grad((g.abs() * torch.linspace(0.5, 1.5, g.numel(), dtype=g.dtype)
                              .view_as(g)).sum(), x)
    return out, g, h


class TfSamePad(nn.Conv2d):
    """A TensorFlow-style "same" convolution: pads, then calls F.conv2d itself."""

    def forward(self, x):
        return F.conv2d(F.pad(x, (1, 1, 1, 1)), self.weight, self.bias, self.stride, 0,
                        self.dilation, self.groups)


def _block():
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
        TfSamePad(8, 8, 3, stride=2, groups=8, bias=False), nn.BatchNorm2d(8), nn.Hardswish(),
        nn.Conv2d(8, 4, 1), nn.LeakyReLU(0.1), nn.Hardtanh(-0.5, 1.5), nn.Flatten(),
        nn.Linear(4 * 5 * 5, 3), nn.ReLU(), nn.Hardsigmoid())
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.3, 0.3)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return net.double().eval()


@pytest.mark.parametrize("beta", [2.0, 10.0])
def test_fast_surrogate_equals_the_earlier_one_to_second_order(beta):
    """Fused smooth activations, F.conv2d calls of conv subclasses (a depthwise "same" conv) and
    eval-mode batch norms: value, gradient and second derivative as before (float64)."""
    net = _block()
    x = torch.rand(2, 3, 9, 9, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 3, dtype=torch.float64)
    slow = _first_and_second(smooth_model(net, beta, fast=False), x, v)
    fast = _first_and_second(smooth_model(net, beta), x, v)
    for a, b in zip(slow, fast):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-13)
    assert fast[2].abs().max() > 1e-6  # the second derivative is really exercised


def test_fused_smooth_step_matches_the_closed_form_to_second_order():
    from explorer.surrogate import _SmoothStep

    z = torch.linspace(-8.0, 12.0, 81, dtype=torch.float64, requires_grad=True)
    b, lo, hi = 3.0, -1.0, 2.0
    ref = lambda t: sp(t - lo, b) - sp(t - hi, b)  # noqa: E731
    out = _SmoothStep.apply(z, lo, hi, b)
    torch.testing.assert_close(out, ref(z))
    g, = torch.autograd.grad(out.sum(), z, create_graph=True)
    s1, s2 = torch.sigmoid(b * (z - lo)), torch.sigmoid(b * (z - hi))
    torch.testing.assert_close(g, s1 - s2)  # closed-form first derivative
    c = torch.cos(z.detach())  # a constant weight
    h, = torch.autograd.grad((g * c).sum(), z)
    torch.testing.assert_close(h, c * b * (s1 * (1 - s1) - s2 * (1 - s2)))
    # Third derivative (the second pass itself with create_graph=True): still exact.
    g2, = torch.autograd.grad(out.sum(), z, create_graph=True)
    h2, = torch.autograd.grad((g2 * c).sum(), z, create_graph=True)
    t, = torch.autograd.grad(h2.sum(), z)
    torch.testing.assert_close(t, c * b ** 2 * (s1 * (1 - s1) * (1 - 2 * s1)
                                                - s2 * (1 - s2) * (1 - 2 * s2)))


def test_fast_paths_leave_trainable_layers_on_the_standard_path():
    net = _block()
    s = smooth_model(net, 2.0)
    s.module[4].weight.requires_grad_(True)  # someone fine-tunes a batch norm of the copy
    s.module[3].weight.requires_grad_(True)  # and the depthwise convolution
    s(torch.rand(1, 3, 9, 9, dtype=torch.float64)).sum().backward()
    assert s.module[4].weight.grad is not None and s.module[3].weight.grad is not None
    assert "fast=False" in repr(smooth_model(net, 2.0, fast=False))


class UsesView(nn.Module):
    """Flattens with Tensor.view, which a channels-last activation cannot do."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 5 * 5, 2)

    def forward(self, x):
        z = torch.relu(self.conv(x))
        return self.fc(z.view(z.shape[0], -1))


def test_channels_last_copy_returns_contiguous_gradients_and_falls_back_for_view():
    net = _block()
    s = smooth_model(net, 2.0)
    assert s.module[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert net[0].weight.is_contiguous()  # the original keeps its layout
    x = torch.rand(2, 3, 9, 9, dtype=torch.float64, requires_grad=True)
    g, = torch.autograd.grad(s(x).sum(), x)
    assert g.is_contiguous()
    # A model that needs the standard layout: the copy falls back once and gives the same
    # numbers as the earlier construction.
    v = UsesView().double().eval()
    fast, slow = smooth_model(v, 2.0), smooth_model(v, 2.0, fast=False)
    x = torch.rand(2, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 2, dtype=torch.float64)
    a, b = _first_and_second(fast, x, w), _first_and_second(slow, x, w)
    assert not fast.channels_last
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-13)
