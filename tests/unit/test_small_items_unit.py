"""Pure parts of the smaller explorer fixes: the Compare page's link and verdict, the log-scale
k grid, readable measure names and the outline of the targeted attack's region."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer import attacks, data, metrics, viz, viz_maps
from explorer.ui import compare_page, kcontrol, link
from explorer.ui.controls import attack_summary, choice_label
from explorer.ui.state import Config


# ------------------------------------------------------------------------------ compare link

def _config(**kw) -> Config:
    base = dict(dataset="mnist", model="pgd", source="index", image=17, method="saliency",
                attack="topk", attack_params={"steps": 7, "epsilon": 0.25}, seed=3, k=40, w=2)
    base.update(kw)
    return Config(**base)


def test_compare_link_round_trips_configuration_and_second_model():
    cfg = _config()
    query = compare_page.compare_query(cfg, "natural", ran=True)
    assert query["vs"] == "natural" and query["model"] == "pgd" and query["run"] == "1"
    state, problems = link.from_query(query)
    assert problems == []  # `vs` is the page's own parameter, not a problem of the shared link
    assert state == link.link_state(cfg, ran=True)
    vs, vs_problems = compare_page.compare_from_query(query, state.dataset, state.model,
                                                      ["natural", "pgd"])
    assert (vs, vs_problems) == ("natural", [])


@pytest.mark.parametrize("vs, why", [
    ("pgd", "is the sidebar's model itself"),
    ("resnet18", "is not a model of MNIST"),
])
def test_compare_link_refuses_a_bad_second_model(vs, why):
    got, problems = compare_page.compare_from_query({"vs": vs}, "mnist", "pgd",
                                                    ["natural", "pgd"])
    assert got is None
    (p,) = problems
    assert p.key == "vs" and p.value == vs and why in p.why and p.allowed == "allowed: natural"


def test_no_vs_in_the_link_means_the_default_partner():
    assert compare_page.compare_from_query({}, "mnist", "natural", ["natural", "pgd"]) == (None, [])
    assert compare_page.default_partner("natural", ["natural", "pgd"]) == "pgd"
    assert compare_page.default_partner("pgd", ["natural", "pgd"]) == "natural"
    assert compare_page.default_partner("resnet18", ["efficientnet_lite0", "resnet18"]) \
        == "efficientnet_lite0"
    assert compare_page.default_partner("natural", ["natural"]) is None


# ------------------------------------------------------------------------------ verdict

def test_chance_level_of_top_k_intersection_matches_monte_carlo():
    # Two unrelated maps: two random k-subsets of n pixels; their mean intersection / k is k / n.
    rng = np.random.default_rng(0)
    n, k, trials = 784, 100, 4000
    shared = [len(np.intersect1d(rng.choice(n, k, replace=False),
                                 rng.choice(n, k, replace=False))) / k for _ in range(trials)]
    assert abs(np.mean(shared) - k / n) < 0.005
    assert compare_page.normalised_intersection(k / n, k, n) == pytest.approx(0.0)
    assert compare_page.normalised_intersection(1.0, k, n) == pytest.approx(1.0)


def test_verdict_names_the_more_robust_model_by_the_stated_rule():
    # k = 100 of 784 pixels: chance 100/784 = 0.12755; (0.6 - c) / (1 - c) = 0.5415,
    # (0.3 - c) / (1 - c) = 0.1977; the difference 0.34 is above the margin 0.05.
    scores = {"natural": 0.3, "PGD": 0.6}
    line = compare_page.verdict(scores, k=100, n_pixels=784, attack="top-k attack")
    assert line == ("The **PGD** model's explanation is the more robust under the top-k attack: "
                    "normalised top-k intersection 0.54 against 0.20 for natural.")
    assert compare_page.verdict_facts(scores, k=100, n_pixels=784) == (
        "Top-k intersection at k = 100 of 784 pixels: natural 0.300, PGD 0.600; chance level "
        "k/n = 0.128.")


def test_verdict_within_noise_below_the_margin():
    # (0.52 - c) / (1 - c) = 0.4498, (0.50 - c) / (1 - c) = 0.4269: 0.0229 < 0.05
    line = compare_page.verdict({"natural": 0.50, "PGD": 0.52}, k=100, n_pixels=784,
                                attack="top-k attack")
    assert line == ("Within noise: under the top-k attack the two models' explanations are about "
                    "equally robust (normalised top-k intersection natural 0.43, PGD 0.45; a "
                    "difference below 0.05).")
    line = compare_page.verdict({"natural": 1.0, "PGD": 1.0}, k=784, n_pixels=784,
                                attack="top-k attack")
    assert line.startswith("No verdict")


# ------------------------------------------------------------------------------ k control

def test_k_grid_on_imagenet_is_1_2_5_plus_the_image_size():
    n = 224 * 224
    assert kcontrol.uses_log_scale(n) and not kcontrol.uses_log_scale(28 * 28)
    assert not kcontrol.uses_log_scale(64 * 64) and kcontrol.uses_log_scale(64 * 64 + 1)
    assert kcontrol.k_options(n) == [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000,
                                     10000, 20000, 50000, 50176]
    # A link's k and the paper's k are kept exactly; values outside 1..n are not offered.
    got = kcontrol.k_options(n, (1234, 1000, 0, 60000))
    assert 1234 in got and 0 not in got and 60000 not in got and got == sorted(set(got))
    assert kcontrol.k_options(1) == [1]
    with pytest.raises(ValueError, match="at least one pixel"):
        kcontrol.k_options(0)


# ------------------------------------------------------------------------------ names

def test_measure_shows_its_readable_name():
    assert metrics.metric_label("topk_intersection") == "top-k intersection"
    assert metrics.metric_label("kendall") == "Kendall τ"
    assert metrics.metric_label("not_a_metric") == "not_a_metric"
    assert choice_label("lens_recall") == "w-LENS-recall@k" and choice_label("zeros") == "zeros"
    info = data.DATASETS["mnist"]
    text = attack_summary(info, attacks.ATTACKS["topk"], {"measure": "spearman", "steps": 5})
    assert "selection measure = Spearman ρ" in text and "spearman" not in text


# ------------------------------------------------------------------------------ region outline

def test_region_outline_runs_along_the_pixel_edges_on_each_panel():
    shapes = viz_maps.region_shapes((2, 5, 3, 7), [1, 4])
    assert len(shapes) == 4  # a dark halo and the cyan line per panel
    assert [(s["xref"], s["yref"]) for s in shapes] == [("x", "y")] * 2 + [("x4", "y4")] * 2
    for s in shapes:
        assert (s["x0"], s["x1"], s["y0"], s["y1"]) == (2.5, 7.5, 1.5, 5.5)
    assert shapes[1]["line"]["color"] == viz_maps.REGION_COLOUR
    assert viz_maps.region_shapes(None, [1]) == []
    with pytest.raises(ValueError, match="r0 ≤ r1"):
        viz_maps.region_shapes((5, 2, 0, 0), [1])


def test_side_by_side_outlines_the_region_on_the_image_and_both_maps():
    rng = np.random.default_rng(1)
    x = rng.random((1, 8, 8)).astype(np.float32)
    m = rng.random((8, 8)).astype(np.float32)
    rank = metrics.rank_positions(torch.from_numpy(m)).numpy()
    fig, _ = viz.side_by_side(x, x * 0.9, m, m[::-1].copy(), rank, rank, region=(0, 3, 1, 2))
    refs = sorted({s.xref for s in fig.layout.shapes})
    assert refs == ["x", "x4", "x5"]  # original image, original map, attacked map
    fig, _ = viz.side_by_side(x, x * 0.9, m, m, rank, rank, compact=True, region=(0, 3, 1, 2))
    assert sorted({s.xref for s in fig.layout.shapes}) == ["x", "x2", "x3"]
    fig, _ = viz.side_by_side(x, None, m, None, rank, None)
    assert len(fig.layout.shapes) == 0
