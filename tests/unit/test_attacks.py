"""Tests for explorer.attacks: budgets, label preservation, selection, seeding, validation."""

import pytest
import torch
import torch.nn as nn

from explorer import attacks, metrics
from explorer.attacks import ATTACKS, AttackResult, DEFAULT_BETA, attack
from explorer.attributions import attribution_map

SIZE = 16


def synthetic(n: int, gen: torch.Generator):
    """Three classes on 16×16: a horizontal bar, a vertical bar, a 4×4 blob; random positions."""
    x = 0.15 * torch.rand(n, 1, SIZE, SIZE, generator=gen)
    y = torch.arange(n) % 3
    pos = torch.randint(2, SIZE - 6, (n, 2), generator=gen)
    for i in range(n):
        r, c = pos[i].tolist()
        if y[i] == 0:
            x[i, 0, r:r + 2, 2:SIZE - 2] += 0.8
        elif y[i] == 1:
            x[i, 0, 2:SIZE - 2, c:c + 2] += 0.8
        else:
            x[i, 0, r:r + 4, c:c + 4] += 0.8
    return x.clamp(0, 1), y


@pytest.fixture(scope="module")
def trained():
    """A small CNN trained in a second or two on the synthetic classes."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    x, y = synthetic(768, gen)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for epoch in range(4):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    for p in net.parameters():
        p.grad = None
    xt, yt = synthetic(60, torch.Generator().manual_seed(1))
    with torch.no_grad():
        pred = net(xt).argmax(1)
    assert (pred == yt).float().mean() > 0.9, "fixture model failed to train"
    keep = pred == yt
    return net, xt[keep][:8]


def run(net, x, kind="topk", **kw):
    args = dict(epsilon=0.15, step_size=0.02, steps=15, attack_k=20, w=1)
    if kind == "targeted":
        region = torch.zeros(SIZE, SIZE, dtype=torch.bool)
        region[:4, :4] = True
        args["region"] = region
    args.update(kw)
    return attack(net, x, attack=kind, **args)


@pytest.mark.parametrize("kind", list(ATTACKS))
def test_budget_range_and_label_for_every_attack(trained, kind):
    net, x = trained
    eps = 0.1
    r = run(net, x, kind, epsilon=eps)
    assert isinstance(r, AttackResult)
    assert r.x_adv.shape == x.shape and r.map_adv.shape == (len(x), SIZE, SIZE)
    assert ((r.x_adv - x).abs().flatten(1).amax(1) <= eps + 1e-6).all()
    torch.testing.assert_close(r.linf, (r.x_adv - x).abs().flatten(1).amax(1))
    assert r.x_adv.min() >= 0 and r.x_adv.max() <= 1
    # The label never changes, checked on the real model.
    with torch.no_grad():
        assert torch.equal(net(r.x_adv).argmax(1), r.label_orig)
    assert torch.equal(r.label_adv, r.label_orig) and r.label_kept.all()
    # What the user sees is the real model's map of the returned input.
    torch.testing.assert_close(r.map_adv, attribution_map(net, r.x_adv))
    torch.testing.assert_close(r.map_orig, attribution_map(net, x))
    assert r.found.any()
    expected_cols = (15 if ATTACKS[kind].iterative else 1) + 1
    assert r.history.shape == (len(x), expected_cols) and r.steps_run == expected_cols - 1


def test_history_is_best_so_far_and_matches_metrics_compare(trained):
    net, x = trained
    r = run(net, x, "topk", steps=12)
    h = r.history
    assert torch.all(h[:, 0] == 1.0)  # x itself: its top-k intersects itself fully
    assert torch.all(h[:, 1:] <= h[:, :-1])  # best so far never gets worse
    final = metrics.compare(r.map_orig, r.map_adv, 20, 1)["topk_intersection"]
    torch.testing.assert_close(h[:, -1], final)
    # Each image keeps its own best iterate: the recorded step is where its history last dropped.
    for i in range(len(x)):
        drops = torch.nonzero(h[i, 1:] < h[i, :-1]).view(-1)
        assert int(r.best_step[i]) == (int(drops[-1]) + 1 if len(drops) else 0)


def test_topk_attack_beats_random_sign_at_same_epsilon(trained):
    net, x = trained
    eps, k = 0.2, 40
    real = run(net, x, "topk", epsilon=eps, step_size=0.02, steps=30, attack_k=k)
    rand = run(net, x, "random_sign", epsilon=eps, attack_k=k)
    real_score = metrics.compare(real.map_orig, real.map_adv, k, 1)["topk_intersection"].mean()
    rand_score = metrics.compare(rand.map_orig, rand.map_adv, k, 1)["topk_intersection"].mean()
    # Measured: about 0.28 vs 0.59.
    assert real_score < rand_score - 0.15 and real_score < 0.7 * rand_score, (real_score,
                                                                              rand_score)


def test_ig_attack_backpropagates_through_the_path(trained):
    net, x = trained
    r = run(net, x[:3], "topk", method="integrated_gradients",
            method_params={"steps": 8}, steps=8)
    assert r.found.all() and (r.history[:, -1] < 0.8).all()
    torch.testing.assert_close(
        r.map_adv, attribution_map(net, r.x_adv, "integrated_gradients", {"steps": 8}))


def test_mass_center_selection_maximises_center_shift(trained):
    net, x = trained
    r = run(net, x, "mass_center", measure="center_shift", steps=10)
    h = r.history
    assert torch.all(h[:, 0] == 0) and torch.all(h[:, 1:] >= h[:, :-1])
    assert r.found.all() and (h[:, -1] > 0.5).all()
    torch.testing.assert_close(h[:, -1], metrics.compare(r.map_orig, r.map_adv, 20, 1)["center_shift"])


def test_targeted_attack_moves_mass_into_region(trained):
    net, x = trained
    region = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    region[:4, :4] = True
    r = run(net, x, "targeted", region=region, steps=20)
    before = r.map_orig[:, region].sum(1)
    after = r.map_adv[:, region].sum(1)
    assert after.mean() > 2 * before.mean()


@pytest.mark.parametrize("measure", metrics.METRIC_KEYS)
def test_every_measure_selects_by_the_metrics_definition(trained, measure):
    net, x = trained
    r = run(net, x[:4], "random_walk", steps=4, measure=measure, attack_k=10, w=1)
    ref = metrics.compare(r.map_orig, r.map_adv, 10, 1)[measure]
    torch.testing.assert_close(r.history[:, -1], ref, equal_nan=True)
    start = metrics.compare(r.map_orig, r.map_orig, 10, 1)[measure]
    torch.testing.assert_close(r.history[:, 0], start, equal_nan=True)
    better = (r.history[:, -1] > start) if measure == "center_shift" else (r.history[:, -1] < start)
    assert torch.equal(r.found, better)


def test_same_seed_same_result_different_seed_different(trained):
    net, x = trained
    for kind in ("random_sign", "random_walk"):
        a = run(net, x, kind, seed=3, steps=5)
        b = run(net, x, kind, seed=3, steps=5)
        c = run(net, x, kind, seed=4, steps=5)
        assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.history, b.history)
        assert not torch.equal(a.x_adv, c.x_adv)
    a = run(net, x, "topk", steps=5)
    b = run(net, x, "topk", steps=5)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.history, b.history)


def test_progress_callback_and_early_stop(trained):
    net, x = trained
    calls = []

    def progress(step, total, best):
        calls.append((step, total, best))
        return step == 3

    r = run(net, x, "topk", steps=10, progress=progress)
    assert [c[:2] for c in calls] == [(1, 10), (2, 10), (3, 10)]
    assert all(isinstance(c[2], float) for c in calls)
    assert calls[-1][2] == pytest.approx(r.history[:, -1].mean().item())
    assert r.steps_run == 3 and r.history.shape == (len(x), 4) and r.stopped_early
    assert "stopped early" in r.message(0)


class Pinned(nn.Module):
    """Class 0 only at exactly ``x0``: any perturbation of ``x0`` flips the label to class 1."""

    def __init__(self, x0):
        super().__init__()
        self.register_buffer("x0", x0.clone())
        self.weight = nn.Parameter(torch.linspace(-1, 1, x0[0].numel()).view_as(x0[0]))

    def forward(self, x):
        dist = (x - self.x0).abs().flatten(1).sum(1)
        logit0 = 1.0 - 1e3 * dist + 0.1 * (x * self.weight).flatten(1).sum(1)
        return torch.stack([logit0, torch.full_like(logit0, 0.5)], 1)


@pytest.mark.parametrize("kind", ["topk", "random_sign", "random_walk"])
def test_no_label_preserving_perturbation_found(kind):
    x = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    model = Pinned(x).eval()
    assert torch.equal(model(x).argmax(1), torch.zeros(2, dtype=torch.long))
    r = attack(model, x, attack=kind, epsilon=0.05, step_size=0.01, steps=5, attack_k=5)
    assert not r.found.any()
    assert torch.equal(r.x_adv, x) and torch.equal(r.map_adv, r.map_orig)
    assert torch.all(r.history == 1.0) and torch.all(r.linf == 0)
    assert torch.equal(r.label_adv, r.label_orig) and torch.equal(r.conf_adv, r.conf_orig)
    assert "no label-preserving perturbation found" in r.message(1)


def test_found_message(trained):
    net, x = trained
    r = run(net, x[:1], "topk", steps=5)
    msg = r.message(0)
    assert r.found[0] and "top-k intersection" in msg and "→" in msg and "kept" in msg


def test_registry():
    assert list(ATTACKS) == ["topk", "mass_center", "targeted", "lens_topk", "random_sign",
                             "random_walk"]
    assert [k for k, a in ATTACKS.items() if a.needs_region] == ["targeted"]
    assert [k for k, a in ATTACKS.items() if not a.iterative] == ["random_sign"]
    for a in ATTACKS.values():
        names = [p.name for p in a.params]
        assert "epsilon" in names and "attack_k" in names
        assert ("steps" in names) == a.iterative and ("step_size" in names) == a.iterative
    assert DEFAULT_BETA > 0


# ---- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "kw, pattern",
    [
        (dict(epsilon=-0.1), r"'epsilon' must be a finite number in \[0.0, 1.0\]"),
        (dict(step_size=-0.01), r"'step_size' must be a finite number in"),
        (dict(step_size=0.0), r"'step_size' must be a finite number in"),
        (dict(steps=0), r"'steps' must be an integer in \[1, 5000\]"),
        (dict(steps=2.5), r"'steps' must be an integer"),
        (dict(steps=None), r"attack 'topk' needs steps \(an integer in \[1, 5000\]\)"),
        (dict(epsilon=float("nan")), "'epsilon' must be a finite number"),
        (dict(attack_k=0), r"'attack_k' must be an integer >= 1"),
        (dict(attack_k=SIZE * SIZE + 1), r"k must be between 1 and H\*W = 256"),
        (dict(w=-1), r"w \(neighbourhood radius\) must be an integer >= 0"),
        (dict(w=1.5), r"w \(neighbourhood radius\) must be an integer >= 0"),
        (dict(attack="fgsm"), "unknown attack 'fgsm'; allowed: topk, mass_center, targeted, "
                              "lens_topk, random_sign, random_walk"),
        (dict(measure="iou"), "unknown measure 'iou'; allowed: topk_intersection, lens_recall"),
        (dict(method="lime"), "unknown attribution method 'lime'; allowed: saliency"),
        (dict(method_params={"steps": 3}), "unknown parameter 'steps'"),
        (dict(beta=0), r"beta \(softplus sharpness\) must be a finite number > 0"),
        (dict(seed=-1), r"'seed' must be an integer in \[0, 2147483647\]"),
        (dict(progress="yes"), "progress must be a callable"),
        (dict(attack="targeted"), "attack 'targeted' needs a region: a boolean mask of shape "
                                  r"\(16, 16\)"),
        (dict(region=torch.ones(SIZE, SIZE, dtype=torch.bool)), "region is only used by the "
                                                                "targeted attack"),
        (dict(attack="targeted", region=torch.ones(4, 4, dtype=torch.bool)),
         r"region must have shape \(16, 16\) or \(\d+, 16, 16\)"),
        (dict(attack="targeted", region=torch.zeros(SIZE, SIZE, dtype=torch.bool)),
         "region must select at least one pixel per image"),
        (dict(attack="targeted", region=torch.full((SIZE, SIZE), 0.5)), "boolean"),
        (dict(target=7), r"target must be an integer class index in \[0, 2\]"),
    ],
)
def test_bad_arguments_raise_value_error_naming_what_is_allowed(trained, kw, pattern):
    net, x = trained
    args = dict(attack="topk", epsilon=0.1, step_size=0.01, steps=3, attack_k=10)
    args.update(kw)
    with pytest.raises(ValueError, match=pattern):
        attack(net, x[:2], **args)


@pytest.mark.parametrize(
    "bad, pattern",
    [
        (lambda x: x + 1.0, r"values in \[0, 1\]"),
        (lambda x: x - 0.5, r"values in \[0, 1\]"),
        (lambda x: x.masked_fill(x > 0.5, float("nan")), "NaN or infinite"),
        (lambda x: x[0], r"shape \(N, C, H, W\)"),
    ],
)
def test_bad_inputs(trained, bad, pattern):
    net, x = trained
    with pytest.raises(ValueError, match=pattern):
        attack(net, bad(x[:2]), epsilon=0.1, step_size=0.01, steps=2, attack_k=10)


def test_random_sign_needs_no_step_arguments_and_model_untouched(trained):
    net, x = trained
    before = {k: v.clone() for k, v in net.state_dict().items()}
    r = attack(net, x, attack="random_sign", epsilon=0.1, attack_k=10)
    assert r.steps_run == 1
    run(net, x, "topk", steps=3)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])
    assert all(p.grad is None for p in net.parameters())
    assert isinstance(net[1], nn.ReLU) and not net.training


@pytest.mark.cuda
@pytest.mark.parametrize("kind", ["topk", "random_walk"])
def test_runs_on_cuda(trained, kind):
    import copy

    net, x = trained
    gpu = copy.deepcopy(net).cuda()
    r = run(gpu, x.cuda(), kind, epsilon=0.1, steps=5)
    assert r.x_adv.is_cuda and r.map_adv.is_cuda and r.history.is_cuda
    assert ((r.x_adv - x.cuda()).abs().flatten(1).amax(1) <= 0.1 + 1e-6).all()
    with torch.no_grad():
        assert torch.equal(gpu(r.x_adv).argmax(1), r.label_orig)
    torch.testing.assert_close(r.map_adv, attribution_map(gpu, r.x_adv))


# ---- one place for an attack's parameters -----------------------------------------------------

def test_attack_params_merge_registry_then_paper_then_overrides():
    from explorer import data
    paper = data.DATASETS["mnist"].defaults
    p = attacks.attack_params("topk")
    assert p["epsilon"] == attacks.ATTACKS["topk"].params[0].default  # registry default
    p = attacks.attack_params("topk", paper)
    assert (p["epsilon"], p["attack_k"], p["steps"]) == (paper.epsilon, paper.attack_k,
                                                         paper.steps)
    assert p["w"] == paper.w and p["beta"] == attacks.DEFAULT_BETA
    p = attacks.attack_params("topk", paper, {"steps": 7, "epsilon": 0.1})
    assert (p["steps"], p["epsilon"], p["attack_k"]) == (7, 0.1, paper.attack_k)
    # random attacks take no surrogate beta
    assert "beta" not in attacks.attack_params("random_sign", paper)


def test_attack_params_refuse_unknown_names_and_out_of_range_values():
    with pytest.raises(ValueError, match="allowed: topk"):
        attacks.attack_params("nope")
    with pytest.raises(ValueError, match="no parameter 'gamma'"):
        attacks.attack_params("topk", None, {"gamma": 1})
    with pytest.raises(ValueError):
        attacks.attack_params("topk", None, {"epsilon": 2.0})


# ---- never weaker than noise, restarts, β sweep, the registry ----------------------------------

UNTARGETED = ["topk", "mass_center", "lens_topk"]


def _final(r):
    return r.history[:, -1]


def _no_worse(a, b, measure):
    """a is at least as good for the attacker as b, image by image (NaN equal to NaN)."""
    both_nan = a.isnan() & b.isnan()
    ok = (a >= b) if measure == "center_shift" else (a <= b)
    return bool((ok | both_nan).all())


@pytest.mark.parametrize("kind", UNTARGETED)
@pytest.mark.parametrize("measure", ["topk_intersection", "kendall", "center_shift"])
def test_attack_is_never_weaker_than_random_sign_noise_at_the_same_seed(trained, kind, measure):
    net, x = trained
    for seed, restarts in ((0, 1), (5, 2)):
        kw = dict(epsilon=0.2, steps=4, attack_k=30, measure=measure, seed=seed,
                  restarts=restarts)
        r = run(net, x, kind, **kw)
        noise = run(net, x, "random_sign", **kw)
        assert _no_worse(_final(r), _final(noise), measure), (_final(r), _final(noise))


@pytest.fixture(scope="module")
def shipped():
    """The shipped MNIST models on 8 bundled test digits (all correctly classified)."""
    from explorer import data, models

    samples = data.load_samples("mnist")
    x, y = samples.x[:8], samples.labels[:8]
    nets = {m: models.load("mnist", m) for m in ("natural", "pgd")}
    for net in nets.values():
        with torch.no_grad():
            assert torch.equal(net(x).argmax(1), y)
    return nets, x, data.DATASETS["mnist"].defaults


@pytest.mark.parametrize("model", ["natural", "pgd"])
@pytest.mark.parametrize("kind", ["topk", "mass_center"])
def test_shipped_models_attack_never_weaker_than_noise(shipped, model, kind):
    nets, x, paper = shipped
    net = nets[model]
    for method, mp in (("saliency", None), ("integrated_gradients", {"steps": 8})):
        p = attacks.attack_params(kind, paper, {"steps": 3, "seed": 2})
        r = attack(net, x, attack=kind, method=method, method_params=mp, **p)
        pn = attacks.attack_params("random_sign", paper, {"seed": 2})
        noise = attack(net, x, attack="random_sign", method=method, method_params=mp, **pn)
        assert _no_worse(_final(r), _final(noise), p["measure"])
        # Where the noise draw was chosen, x' is exactly that draw.
        won = r.noise_won
        assert torch.equal(r.x_adv[won], noise.x_adv[won])
        torch.testing.assert_close(_final(r)[won], _final(noise)[won])


def test_noise_candidate_wins_where_the_attack_is_weak_and_can_be_switched_off(trained):
    net, x = trained
    # Two tiny steps barely move the map; ±ε noise moves it much more.
    kw = dict(epsilon=0.2, step_size=1e-4, steps=2, attack_k=30)
    with_noise = run(net, x, "topk", **kw)
    without = run(net, x, "topk", noise_candidate=False, **kw)
    noise = run(net, x, "random_sign", **kw)
    won = with_noise.noise_won
    assert won.sum() >= len(x) // 2, won
    assert (_final(with_noise)[won] < _final(without)[won]).all()
    assert torch.equal(_final(with_noise)[won], _final(noise)[won])
    assert not without.noise_won.any()
    assert with_noise.params["noise_candidate"] and not without.params["noise_candidate"]
    # The noise enters at step 1: the history after step 1 already includes it.
    assert (with_noise.history[won, 1] == _final(noise)[won]).all()
    assert torch.equal(with_noise.best_step[won], torch.ones(int(won.sum()), dtype=torch.long))
    i = int(torch.nonzero(won)[0])
    assert "by random sign noise (draw 1)" in with_noise.message(i)


@pytest.mark.parametrize("kind", ["topk", "random_walk", "random_sign"])
def test_restarts_never_give_a_worse_result_than_one_restart(trained, kind):
    net, x = trained
    kw = dict(epsilon=0.15, steps=4, attack_k=20, seed=1)
    per = 4 if ATTACKS[kind].iterative else 1
    for noise in (True, False):
        one = run(net, x, kind, noise_candidate=noise, **kw)
        three = run(net, x, kind, restarts=3, noise_candidate=noise, **kw)
        assert three.history.shape == (len(x), 3 * per + 1) and three.steps_run == 3 * per
        assert three.restarts == 3 and three.steps == per
        assert (_final(three) <= _final(one)).all()
        assert (three.history[:, 1:] <= three.history[:, :-1]).all()
        if not noise or not ATTACKS[kind].uses_gradient:
            # The first restart is the one-restart run (with noise on, the noise candidates of
            # all three restarts enter at step 1).
            torch.testing.assert_close(three.history[:, :per + 1], one.history)
        improved = _final(three) < _final(one)
        assert improved.any()  # measured: the extra restarts help on some images
        assert (three.best_restart[improved] > 0).all()
        assert ((three.x_adv - x).abs().flatten(1).amax(1) <= 0.15 + 1e-6).all()
        with torch.no_grad():
            assert torch.equal(net(three.x_adv).argmax(1), three.label_orig)
        torch.testing.assert_close(_final(three),
                                   metrics.compare(three.map_orig, three.map_adv, 20, 1)
                                   ["topk_intersection"])


def test_random_start_starts_later_restarts_inside_the_ball(trained):
    net, x = trained
    kw = dict(epsilon=0.15, steps=3, attack_k=20, restarts=2, noise_candidate=False)
    # Without a random start a deterministic attack repeats itself: restart 2 adds nothing.
    same = run(net, x, "topk", random_start=False, **kw)
    assert torch.equal(same.history[:, 3:], same.history[:, 3:4].expand(-1, 4))
    assert not same.params["random_start"]
    moved = run(net, x, "topk", random_start=True, **kw)
    assert not torch.equal(moved.history, same.history)
    assert (moved.best_restart == 1).any()
    assert ((moved.x_adv - x).abs().flatten(1).amax(1) <= 0.15 + 1e-6).all()
    # The message names the restart of the chosen iterate.
    i = int(torch.nonzero(moved.best_restart == 1)[0])
    step = int(moved.best_step[i]) - 3
    msg = moved.message(i)
    assert f"at step {step} of restart 2" in msg and "× 2 restarts" in msg


def test_beta_sweep_uses_each_beta_in_turn(trained, monkeypatch):
    net, x = trained
    used = []
    real = attacks.smooth_model

    def spy(model, beta):
        used.append(beta)
        return real(model, beta)

    monkeypatch.setattr(attacks, "smooth_model", spy)
    kw = dict(epsilon=0.15, steps=4, attack_k=20, random_start=False, noise_candidate=False)
    sweep = run(net, x, "topk", beta=(1, 10, 30), restarts=3, **kw)
    assert used == [1.0, 10.0, 30.0] and sweep.params["beta"] == (1.0, 10.0, 30.0)
    singles = [run(net, x, "topk", beta=b, **kw) for b in (1, 10, 30)]
    # Restart r of the sweep is the single run at β[r]: same history block.
    for r, single in enumerate(singles):
        block = sweep.history[:, 4 * r + 1:4 * r + 5]
        assert (block <= single.history[:, 1:]).all()
    best_single = torch.stack([_final(s) for s in singles]).amin(0)
    torch.testing.assert_close(_final(sweep), best_single)
    assert len({tuple(_final(s).tolist()) for s in singles}) > 1  # the β differ in effect
    # β cycles when there are more restarts than values.
    used.clear()
    run(net, x[:2], "topk", beta=(2, 20), restarts=3, **kw)
    assert used == [2.0, 20.0]


def test_restarts_and_random_starts_are_deterministic_given_the_seed(trained):
    net, x = trained
    for kind in ("topk", "random_walk", "random_sign"):
        kw = dict(epsilon=0.15, steps=3, attack_k=20, restarts=3, beta=(1, 10))
        a = run(net, x, kind, seed=7, **kw)
        b = run(net, x, kind, seed=7, **kw)
        c = run(net, x, kind, seed=8, **kw)
        for field_ in ("x_adv", "history", "best_restart", "best_step", "noise_won",
                       "flip_share"):
            assert torch.equal(getattr(a, field_), getattr(b, field_)), (kind, field_)
        assert not torch.equal(a.x_adv, c.x_adv), kind


def test_flip_share_counts_the_iterates_whose_label_changed(trained):
    x = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    pinned = Pinned(x).eval()  # every perturbation flips the label
    r = attack(pinned, x, attack="random_walk", epsilon=0.05, step_size=0.01, steps=5,
               attack_k=5, restarts=2)
    assert torch.equal(r.flip_share, torch.ones(2, dtype=torch.float64))
    assert not r.found.any()
    net, xt = trained
    tiny = run(net, xt, "random_walk", epsilon=1e-3, steps=5)
    assert torch.equal(tiny.flip_share, torch.zeros(len(xt), dtype=torch.float64))


def test_flip_share_is_the_share_of_flipped_iterates_hand_counted():
    """A model whose label is 1 exactly when the mean pixel exceeds 0.5: a walk that brightens
    every pixel by α = 0.1 per step from 0.3 flips from step 3 on (0.6 > 0.5)."""

    class MeanThreshold(nn.Module):
        def forward(self, x):
            m = x.flatten(1).mean(1)
            return torch.stack([0.5 - m, m - 0.5], 1) * 10

    x = torch.full((1, 1, 4, 4), 0.3)
    toy = attacks.AttackInfo("brighten", "brighten", "adds α to every pixel",
                             ATTACKS["random_walk"].params, True, lambda s: s.current + s.step_size)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(ATTACKS, "brighten", toy)
        r = attack(MeanThreshold().eval(), x, attack="brighten", epsilon=0.45, step_size=0.1,
                   steps=5, attack_k=4, measure="center_shift")
    # Means 0.4, 0.5, 0.6, 0.7, 0.75 (ε caps the last): labels 0, 0, 1, 1, 1.
    assert r.flip_share.item() == pytest.approx(3 / 5)


def test_a_new_attack_is_only_a_registry_entry(trained, monkeypatch):
    net, x = trained
    darken = attacks.AttackInfo(
        "darken", "darkening walk", "Lowers every pixel by α per step.",
        ATTACKS["random_walk"].params, True, lambda s: s.current - s.step_size)
    monkeypatch.setitem(ATTACKS, "darken", darken)
    p = attacks.attack_params("darken", None, {"steps": 3, "step_size": 0.02, "epsilon": 0.05,
                                               "measure": "center_shift"})
    assert (p["steps"], p["step_size"], p["epsilon"]) == (3, 0.02, 0.05) and "beta" not in p
    r = attack(net, x, attack="darken", **p)
    # Hand-worked iterates: x - 0.02, x - 0.04, x - 0.05 (ε caps step 3), clipped at 0.
    expected = {t: (x - min(0.02 * t, 0.05)).clamp(0, 1) for t in (1, 2, 3)}
    for i in range(len(x)):
        t = int(r.best_step[i])
        if t:
            torch.testing.assert_close(r.x_adv[i], expected[t][i])
    assert r.found.any() and r.history.shape == (len(x), 4)
    # A gradient attack is an entry with a loss: the top-k loss under a new key gives the top-k
    # attack, bit for bit; another loss (push the map's total mass down) gives another result.
    def top_loss(map_orig, k, w, region):
        weight = metrics.topk_mask(map_orig, k).to(map_orig.dtype)
        return lambda m: -(m * weight).sum(dim=(1, 2))

    def mass_loss(map_orig, k, w, region):
        return lambda m: -m.sum(dim=(1, 2))

    for key, loss in (("top_copy", top_loss), ("mass_down", mass_loss)):
        monkeypatch.setitem(ATTACKS, key, attacks.AttackInfo(
            key, key, "a test attack", ATTACKS["topk"].params, True, attacks.sign_gradient_step,
            loss=loss))
    assert ATTACKS["mass_down"].uses_gradient and "beta" in attacks.attack_params("mass_down")
    ref = run(net, x, "topk", steps=5, restarts=2, seed=3)
    copy = run(net, x, "top_copy", steps=5, restarts=2, seed=3)
    for field_ in ("x_adv", "history", "best_restart", "noise_won"):
        assert torch.equal(getattr(copy, field_), getattr(ref, field_))
    other = run(net, x, "mass_down", steps=5, noise_candidate=False)
    assert other.found.any() and not torch.equal(other.x_adv, ref.x_adv)


def test_attack_params_know_the_new_options():
    from explorer import data
    paper = data.DATASETS["mnist"].defaults
    p = attacks.attack_params("topk", paper)
    assert (p["restarts"], p["random_start"], p["noise_candidate"], p["seed"]) == (1, True,
                                                                                   True, 0)
    p = attacks.attack_params("topk", paper, {"restarts": 3, "beta": [1, 10, 30]})
    assert p["restarts"] == 3 and p["beta"] == (1.0, 10.0, 30.0)
    assert "noise_candidate" not in attacks.attack_params("targeted")
    assert "noise_candidate" not in attacks.attack_params("random_walk")
    rs = attacks.attack_params("random_sign", paper, {"restarts": 3})
    assert rs["restarts"] == 3 and "random_start" not in rs
    with pytest.raises(ValueError, match=r"'restarts' must be an integer in \[1, 100\]"):
        attacks.attack_params("topk", None, {"restarts": 0})
    with pytest.raises(ValueError, match="non-empty list"):
        attacks.attack_params("topk", None, {"beta": []})
    with pytest.raises(ValueError, match="'beta' must be a finite number in"):
        attacks.attack_params("topk", None, {"beta": (1, 0)})


@pytest.mark.parametrize(
    "kw, pattern",
    [
        (dict(restarts=0), r"'restarts' must be an integer in \[1, 100\]"),
        (dict(restarts=1.5), r"'restarts' must be an integer"),
        (dict(beta=()), "beta must be a number > 0 or a non-empty list"),
        (dict(beta=(10, -1)), r"beta \(softplus sharpness\) must be a finite number > 0"),
        (dict(random_start="yes"), "'random_start' must be true or false"),
        (dict(noise_candidate=2), "'noise_candidate' must be true or false"),
    ],
)
def test_bad_restart_options_raise_value_error(trained, kw, pattern):
    net, x = trained
    with pytest.raises(ValueError, match=pattern):
        run(net, x[:2], "topk", **kw)


def test_select_k_sets_the_k_of_the_selection_measure_only(trained):
    net, x = trained
    kw = dict(epsilon=0.2, steps=4, attack_k=40, seed=0)
    r = run(net, x, "topk", select_k=15, **kw)
    noise = run(net, x, "random_sign", select_k=15, **kw)
    assert r.select_k == 15 and r.params["select_k"] == 15
    torch.testing.assert_close(_final(r), metrics.compare(r.map_orig, r.map_adv, 15, 1)
                               ["topk_intersection"])
    assert (_final(r) <= _final(noise)).all()  # the guarantee holds at the selection k
    assert "(k = 15)" in r.message(0)
    default = run(net, x, "topk", **kw)
    assert default.select_k == 40
    with pytest.raises(ValueError, match=r"k must be between 1 and H\*W = 256"):
        run(net, x, "topk", select_k=SIZE * SIZE + 1, **kw)
