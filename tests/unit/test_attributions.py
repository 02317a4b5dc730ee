"""Tests for explorer.attributions against models whose gradients are known in closed form."""

import math

import pytest
import torch
import torch.nn as nn

from explorer import attributions as A
from explorer.surrogate import smooth_model

C, H, W = 2, 3, 4
D = C * H * W


class Linear(nn.Module):
    """logits = W · flatten(x) + b with hand-set weights: ∂ logit_y / ∂x = W[y]."""

    def __init__(self):
        super().__init__()
        w = torch.arange(3 * D, dtype=torch.float32).reshape(3, D)
        w = torch.sin(w) * (1 + w % 5)  # distinct, signed, deterministic
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(torch.tensor([0.5, -1.0, 2.0]))

    def forward(self, x):
        return x.flatten(1) @ self.weight.T + self.bias


@pytest.fixture
def lin():
    return Linear().eval()


@pytest.fixture
def x():
    g = torch.Generator().manual_seed(1)
    return torch.rand(4, C, H, W, generator=g)


def weight_rows(model, target):
    return model.weight.detach()[target].reshape(-1, C, H, W)


def test_saliency_of_linear_model_is_its_weight_row(lin, x):
    target = torch.tensor([0, 1, 2, 1])
    torch.testing.assert_close(A.saliency(lin, x, target), weight_rows(lin, target))
    torch.testing.assert_close(A.attribute(lin, x, "saliency", target=2),
                               weight_rows(lin, torch.tensor([2, 2, 2, 2])))


def test_default_target_is_the_prediction(lin, x):
    pred = lin(x).argmax(1)
    torch.testing.assert_close(A.saliency(lin, x), weight_rows(lin, pred))


def test_input_x_gradient_is_x_times_weight(lin, x):
    target = torch.tensor([2, 0, 1, 0])
    torch.testing.assert_close(A.input_x_gradient(lin, x, target), x * weight_rows(lin, target))


@pytest.mark.parametrize("baseline", ["zeros", "blur", "uniform"])
def test_integrated_gradients_of_linear_model_is_exact(lin, x, baseline):
    # Constant gradient: IG = (x - b) ⊙ W[y] for any number of steps, zero completeness gap.
    target = torch.tensor([1, 1, 0, 2])
    attr = A.integrated_gradients(lin, x, target, steps=3, baseline=baseline)
    b = A.make_baseline(x, baseline)
    torch.testing.assert_close(attr, (x - b) * weight_rows(lin, target))
    gap = A.completeness_gap(lin, x, attr, target, baseline)
    assert gap.abs().max() < 1e-4


def test_smoothgrad_of_linear_model_is_its_weight_row(lin, x):
    target = torch.tensor([0, 2, 2, 1])
    attr = A.smoothgrad(lin, x, target, n_samples=7, sigma=0.3)
    torch.testing.assert_close(attr, weight_rows(lin, target))


def smooth_cnn():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(C, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 6, 3, padding=1),
                        nn.ReLU(), nn.Flatten(), nn.Linear(6 * H * W, 16), nn.ReLU(),
                        nn.Linear(16, 3)).eval()
    with torch.no_grad():
        net[0].weight.mul_(4.0)  # larger logit changes between input and baseline
        net[-1].weight.mul_(20.0)
    return smooth_model(net, beta=2.0)


def smooth_cnn_16():
    torch.manual_seed(5)
    net = nn.Sequential(nn.Conv2d(1, 8, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(8 * 8 * 8, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    with torch.no_grad():
        net[0].weight.mul_(2.0)
        net[3].weight.mul_(2.0)
        net[-1].weight.mul_(20.0)
    return smooth_model(net, beta=1.0)


def squares_16():
    """Bright squares at different places on a dark background, (3, 1, 16, 16)."""
    x = torch.full((3, 1, 16, 16), 0.1)
    for i, (r, c) in enumerate([(2, 3), (7, 8), (9, 1)]):
        x[i, 0, r:r + 5, c:c + 6] = 0.9
    return x


@pytest.mark.parametrize("baseline", ["zeros", "blur", "uniform"])
def test_ig_completeness_gap_below_one_percent_with_200_steps(baseline):
    model, x = smooth_cnn_16(), squares_16()
    attr = A.integrated_gradients(model, x, steps=200, baseline=baseline)
    gap = A.completeness_gap(model, x, attr, None, baseline)
    with torch.no_grad():
        fx = model(x)
        t = fx.argmax(1, keepdim=True)
        delta = (fx.gather(1, t) - model(A.make_baseline(x, baseline)).gather(1, t)).view(-1)
    assert delta.abs().min() > 0.05  # the test is meaningful
    assert (gap.abs() / delta.abs()).max() < 0.01
    # ... and the gap is larger with few steps (Riemann-sum error ~ 1/m).
    coarse = A.completeness_gap(model, x, A.integrated_gradients(model, x, steps=5,
                                                                 baseline=baseline), None, baseline)
    assert coarse.abs().sum() > gap.abs().sum()


def test_blur_baseline_is_a_gaussian_blur():
    x = squares_16()
    b = A.make_baseline(x, "blur")
    assert b.shape == x.shape
    torch.testing.assert_close(b.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=1e-2, rtol=0)  # mass kept
    assert (b - x).abs().max() > 0.1 and b.max() < x.max()  # edges smoothed
    u = A.make_baseline(x, "uniform", seed=3)
    assert torch.equal(u[0], u[1]) and 0 <= u.min() and u.max() <= 1
    assert torch.equal(u, A.make_baseline(x, "uniform", seed=3))
    with pytest.raises(ValueError, match="baseline must be one of zeros, blur, uniform"):
        A.make_baseline(x, "black")


def test_ig_chunking_does_not_change_the_result(x):
    model = smooth_cnn()
    full = A.integrated_gradients(model, x, steps=20)
    tiny = A.integrated_gradients(model, x, steps=20, internal_batch_size=3)
    torch.testing.assert_close(full, tiny, atol=1e-6, rtol=1e-5)


def test_smoothgrad_sigma_zero_is_saliency(x):
    model = smooth_cnn()
    torch.testing.assert_close(A.smoothgrad(model, x, n_samples=3, sigma=0.0), A.saliency(model, x))


def test_smoothgrad_is_seeded_and_batch_independent(x):
    model = smooth_cnn()
    a = A.smoothgrad(model, x, n_samples=5, seed=7)
    torch.testing.assert_close(a, A.smoothgrad(model, x, n_samples=5, seed=7))
    assert (a - A.smoothgrad(model, x, n_samples=5, seed=8)).abs().max() > 1e-6
    torch.testing.assert_close(A.smoothgrad(model, x[2:3], n_samples=5, seed=7), a[2:3])
    torch.testing.assert_close(A.smoothgrad(model, x, n_samples=5, seed=7, internal_batch_size=2), a)


def test_to_map_hand_worked():
    attr = torch.tensor([[[[1.0, -2.0], [0.0, 3.0]], [[-1.0, 0.0], [0.0, 1.0]]]])  # (1, 2, 2, 2)
    # Σ_C |attr| = [[2, 2], [0, 4]], sum 8, rescaled to sum H*W = 4.
    torch.testing.assert_close(A.to_map(attr), torch.tensor([[[1.0, 1.0], [0.0, 2.0]]]))


def test_to_map_degenerate_stays_zero_with_finite_gradient():
    attr = torch.zeros(2, 1, 3, 3, requires_grad=True)
    m = A.to_map(attr)
    assert torch.equal(m, torch.zeros(2, 3, 3))
    g, = torch.autograd.grad(m.sum(), attr)
    assert torch.isfinite(g).all()


def test_to_map_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"shape \(N, C, H, W\)"):
        A.to_map(torch.zeros(3, 3))


def test_attribution_map_sums_to_pixel_count(lin, x):
    for method in A.METHODS:
        m = A.attribution_map(lin, x, method)
        assert m.shape == (4, H, W)
        torch.testing.assert_close(m.sum(dim=(1, 2)), torch.full((4,), float(H * W)))


def test_predict(lin, x):
    labels, conf = A.predict(lin, x)
    logits = lin(x)
    assert torch.equal(labels, logits.argmax(1))
    torch.testing.assert_close(conf, torch.softmax(logits, 1).max(1).values)


@pytest.mark.parametrize("method", list(A.METHODS))
def test_create_graph_gives_second_derivative_through_surrogate_not_relu(method):
    """d(loss of the map)/dx has a curvature part (through ∂f/∂x) and, for IG and input × gradient,
    a product-rule part (through the factor x - b). A ReLU net has no curvature part; the
    smooth surrogate has one."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 25, 3)).eval()
    x = torch.rand(2, 1, 5, 5).clamp_min(0.01).requires_grad_()
    params = {"steps": 4} if method == "integrated_gradients" else \
        {"n_samples": 3} if method == "smoothgrad" else None

    def loss_of(m):
        return m[:, :2, :2].sum()  # attribution mass in a corner

    def full(model):
        g, = torch.autograd.grad(loss_of(A.attribution_map(model, x, method, params,
                                                           create_graph=True)), x,
                                 allow_unused=True)
        return torch.zeros_like(x) if g is None else g

    def product_rule_only(model):
        # The same loss with the gradient factor frozen: attr = x ⊙ (attr / x).detach().
        if method in ("saliency", "smoothgrad"):
            return torch.zeros_like(x)
        frozen = (A.attribute(model, x.detach(), method, params) / x.detach()).detach()
        g, = torch.autograd.grad(loss_of(A.to_map(x * frozen)), x)
        return g

    relu = full(net)
    torch.testing.assert_close(relu, product_rule_only(net), atol=1e-6, rtol=1e-5)
    if method in ("saliency", "smoothgrad"):
        assert relu.abs().max() == 0
    surrogate = smooth_model(net, 2.0)
    smooth = full(surrogate)
    assert torch.isfinite(smooth).all()
    assert (smooth - product_rule_only(surrogate)).abs().max() > 1e-4


def test_ig_create_graph_flows_through_all_path_points():
    # f(x) = Σ softplus(x) (a smooth "logit"); d IG / dx is known from autograd on an explicit sum.
    class F(nn.Module):
        def forward(self, x):
            s = nn.functional.softplus(3 * x).flatten(1).sum(1, keepdim=True)
            return torch.cat([s, -s], 1)

    x = torch.rand(2, 1, 3, 3, requires_grad=True)
    m = 4
    attr = A.integrated_gradients(F().eval(), x, target=0, create_graph=True, steps=m)
    g, = torch.autograd.grad(attr.pow(2).sum(), x)
    # Reference written out by hand: IG = x * mean_i 3·sigmoid(3·(i/m)·x).
    xr = x.detach().clone().requires_grad_()
    ref = xr * sum(3 * torch.sigmoid(3 * (i / m) * xr) for i in range(1, m + 1)) / m
    torch.testing.assert_close(attr.detach(), ref.detach())
    g_ref, = torch.autograd.grad(ref.pow(2).sum(), xr)
    torch.testing.assert_close(g, g_ref)


def test_methods_registry_declares_params_once():
    assert set(A.METHODS) == {"saliency", "integrated_gradients", "smoothgrad", "input_x_gradient"}
    ig = {p.name: p for p in A.METHODS["integrated_gradients"].params}
    assert ig["steps"].default == 50 and ig["baseline"].choices == ("zeros", "blur", "uniform")
    assert "internal_batch_size" in ig
    sg = {p.name: p for p in A.METHODS["smoothgrad"].params}
    assert {"n_samples", "sigma", "seed"} <= set(sg)
    for info in A.METHODS.values():
        assert info.name and info.description and callable(info.fn)


# ---- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "bad, pattern",
    [
        (torch.rand(C, H, W), r"shape \(N, C, H, W\)"),
        (torch.rand(1, C, H, W) + 1.0, r"values in \[0, 1\]"),
        (torch.full((1, C, H, W), float("nan")), "NaN or infinite"),
        (torch.ones(1, C, H, W, dtype=torch.uint8), "float tensor"),
        ([[0.5]], "torch tensor"),
    ],
)
def test_bad_inputs(lin, bad, pattern):
    with pytest.raises(ValueError, match=pattern):
        A.attribute(lin, bad)


def test_unknown_method_lists_allowed(lin, x):
    with pytest.raises(ValueError, match="unknown attribution method 'gradcam'; allowed: saliency, "
                                         "integrated_gradients, smoothgrad, input_x_gradient"):
        A.attribute(lin, x, "gradcam")


def test_bad_method_params(lin, x):
    with pytest.raises(ValueError, match=r"'steps' must be an integer in \[1, 1000\]"):
        A.attribute(lin, x, "integrated_gradients", {"steps": 0})
    with pytest.raises(ValueError, match="unknown parameter 'sigma'; allowed: steps, baseline"):
        A.attribute(lin, x, "integrated_gradients", {"sigma": 0.1})
    with pytest.raises(ValueError, match="takes no parameters"):
        A.attribute(lin, x, "saliency", {"steps": 3})


@pytest.mark.parametrize("target, pattern", [
    (3, r"out of range: the model has 3 classes \(allowed 0..2\)"),
    (-1, "non-negative integer"),
    ([0, 1], "one class index or 4 of them"),
    (1.5, "integers"),
])
def test_bad_target(lin, x, target, pattern):
    with pytest.raises(ValueError, match=pattern):
        A.attribute(lin, x, "saliency", target=target)


def test_model_in_training_mode_is_refused(x):
    with pytest.raises(ValueError, match=r"training mode; call model.eval\(\)"):
        A.attribute(Linear().train(), x)


@pytest.mark.cuda
@pytest.mark.parametrize("method", list(A.METHODS))
def test_cuda_matches_cpu(method, x):
    model = smooth_cnn()
    cpu = A.attribute(model, x, method)
    gpu = A.attribute(model.cuda(), x.cuda(), method)
    assert gpu.is_cuda
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-3)


# --------------------------------------------------------------------------------------------
# map_loss_gradient: the chunked attack gradient equals the one-graph gradient
# --------------------------------------------------------------------------------------------

class CountRows(nn.Module):
    """Wraps a model and records the batch size of every forward call."""

    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, []

    def forward(self, x):
        self.calls.append(x.shape[0])
        return self.net(x)


def softplus_net64():
    """A small smooth CNN in float64 (softplus: non-zero second derivatives everywhere)."""
    torch.manual_seed(11)
    net = nn.Sequential(nn.Conv2d(C, 5, 3, padding=1), nn.Softplus(beta=2.0),
                        nn.Conv2d(5, 4, 3, padding=1), nn.Softplus(beta=3.0), nn.Flatten(),
                        nn.Linear(4 * H * W, 3)).double().eval()
    with torch.no_grad():
        net[0].weight.mul_(3.0)
    return net


def nonlinear_loss(m):
    """A loss of the (N, H, W) map that is neither linear nor separable in the map."""
    weight = torch.linspace(-1.0, 2.0, H * W, dtype=m.dtype).view(H, W)
    return ((m * weight).sum(dim=(1, 2)) ** 2).sum() + (m[:, 0, :] ** 3).sum()


def one_graph_gradient(model, x, method, params, target, loss_fn):
    """The reference: the whole attribution with create_graph=True, then one backward."""
    xt = x.detach().clone().requires_grad_(True)
    attr = A.attribute(model, xt, method, params, target, create_graph=True)
    (g,) = torch.autograd.grad(loss_fn(A.to_map(attr)), xt)
    return g


CHUNK_CASES = [
    ("smoothgrad", {"n_samples": 7, "sigma": 0.2, "seed": 3}),
    ("integrated_gradients", {"steps": 6, "baseline": "zeros"}),
    ("integrated_gradients", {"steps": 6, "baseline": "blur"}),
    ("integrated_gradients", {"steps": 6, "baseline": "uniform", "seed": 5}),
]


@pytest.mark.parametrize("method,params", CHUNK_CASES,
                         ids=["smoothgrad", "ig-zeros", "ig-blur", "ig-uniform"])
@pytest.mark.parametrize("chunk", [1, 2, 5, 13])
@pytest.mark.parametrize("target", [None, "given"])
def test_chunked_map_loss_gradient_equals_one_graph(method, params, chunk, target):
    net = softplus_net64()
    x = torch.rand(3, C, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    t = torch.tensor([2, 0, 1]) if target == "given" else None
    ref = one_graph_gradient(net, x, method, params, t, nonlinear_loss)
    assert ref.abs().max() > 1e-2  # a real gradient, not a vanishing one
    got = A.map_loss_gradient(net, x, method, params, t, nonlinear_loss, chunk=chunk)
    assert got.dtype == torch.float64 and got.shape == x.shape
    assert torch.allclose(got, ref, rtol=1e-10, atol=1e-12), (got - ref).abs().max()


@pytest.mark.parametrize("method", ["saliency", "input_x_gradient"])
def test_single_pass_methods_keep_one_double_backward(method):
    net = CountRows(softplus_net64()).eval()
    x = torch.rand(3, C, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    t = torch.tensor([0, 1, 2])
    ref = one_graph_gradient(net, x, method, None, t, nonlinear_loss)
    net.calls.clear()
    got = A.map_loss_gradient(net, x, method, None, t, nonlinear_loss, chunk=1)
    assert net.calls == [3]  # one forward of the batch: one graph, one double backward
    assert torch.allclose(got, ref, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("method,params", CHUNK_CASES[:2], ids=["smoothgrad", "ig"])
def test_chunked_gradient_never_puts_more_rows_than_the_chunk_through_the_model(method, params):
    net = CountRows(softplus_net64()).eval()
    x = torch.rand(3, C, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    rows = 3 * (params.get("n_samples") or params["steps"])  # 21 or 18
    t = torch.tensor([1, 1, 0])
    A.map_loss_gradient(net, x, method, params, t, nonlinear_loss, chunk=4)
    assert max(net.calls) == 4
    assert sum(net.calls) == 2 * rows  # pass 1 and pass 2 each see every row once
    # chunk=None (or a chunk >= all rows) is the one-graph path: all rows, once.
    net.calls.clear()
    A.map_loss_gradient(net, x, method, {**params, "internal_batch_size": rows}, t,
                        nonlinear_loss, chunk=None)
    assert net.calls == [rows]


def test_chunked_smoothgrad_gradient_depends_on_the_seed():
    net = softplus_net64()
    x = torch.rand(2, C, H, W, dtype=torch.float64, generator=torch.Generator().manual_seed(8))
    p = {"n_samples": 5, "sigma": 0.3}
    a = A.map_loss_gradient(net, x, "smoothgrad", {**p, "seed": 1}, None, nonlinear_loss, chunk=2)
    b = A.map_loss_gradient(net, x, "smoothgrad", {**p, "seed": 1}, None, nonlinear_loss, chunk=3)
    c = A.map_loss_gradient(net, x, "smoothgrad", {**p, "seed": 2}, None, nonlinear_loss, chunk=2)
    assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
    assert (a - c).abs().max() > 1e-6


@pytest.mark.parametrize("chunk", [0, -2, 1.5, True, "4"])
def test_map_loss_gradient_bad_chunk(lin, x, chunk):
    with pytest.raises(ValueError, match="chunk must be a positive integer"):
        A.map_loss_gradient(lin, x, "smoothgrad", None, None, lambda m: m.sum(), chunk=chunk)


def test_chunked_rows_and_forward_chunk_rows():
    assert A.chunked_rows("smoothgrad", {"n_samples": 7}, 3) == 21
    assert A.chunked_rows("integrated_gradients", None, 2) == 100  # 50 steps by default
    assert A.chunked_rows("saliency", None, 5) == 0
    assert A.forward_chunk_rows(3 * 224 * 224) == 3  # 2**19 values on the CPU
    assert A.forward_chunk_rows(784) == 668
    assert A.forward_chunk_rows(784, internal_batch_size=5) == 5
    assert A.forward_chunk_rows(10 ** 7) == 1
