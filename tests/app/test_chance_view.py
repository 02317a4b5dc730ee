"""The explorer's metric table shows each score's chance levels and normalised value; a random
draw that changes the prediction is said in place, never scored as the unperturbed image."""

from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest
import torch

from explorer import attacks, attributions, chance, data, metrics, models
from explorer.ui import chance_stages, flow, keys, panels, stages
from explorer.ui.common import fmt
from explorer.ui.state import CHART_W, W_MAX, prefetch_ws

from app_helpers import metric_table_html, new_app, no_errors

_CHANCE = re.compile(r'data-chance="(\w+)"[^>]*>([^<]*)<br><span class="xm-formula">([^<]*)<')


def _sample_maps(dataset="mnist", model="natural"):
    s = data.load_samples(dataset)
    n = len(s.x)
    m = chance_stages.UNRELATED_SAMPLES
    idx = sorted({round(j * (n - 1) / (m - 1)) for j in range(m)})
    net = models.load(dataset, model)
    return attributions.attribution_map(net, s.x[idx], "saliency")


def _random_sign_map(net, x, dataset="mnist"):
    """The random-sign column's map: the first label-preserving draw of seeds 0, 1, ..."""
    d = data.DATASETS[dataset].defaults
    for s in range(flow.NOISE_SEEDS):
        res = attacks.attack(net, x, attack="random_sign", epsilon=d.epsilon,
                             attack_k=d.attack_k, seed=s)
        if bool(res.found[0]):
            break
    return res.map_adv[0]


def test_every_metric_shows_the_unrelated_image_level_and_the_shuffled_level():
    at = new_app()
    at.run()
    no_errors(at)
    html = metric_table_html(at)
    cells = {key: (main, perm) for key, main, perm in _CHANCE.findall(html)}
    assert set(cells) == set(metrics.METRIC_KEYS)
    base = chance.unrelated_baseline(_sample_maps(), 100, 1)
    for key in metrics.METRIC_KEYS:
        assert cells[key][0].startswith(fmt(base[key].mean)), key
        assert f"± {fmt(base[key].std, 2)}" in cells[key][0], key
    # the shuffled level of the first pair (random sign before an attack is run)
    assert "shuffled 0.128" in cells["topk_intersection"][1]  # k / HW = 100 / 784, no ties
    assert 'data-norm="topk_intersection"' in html
    # w-LENS-Kendall's: τ-b on the app's RANK_DRAWS shuffles, Spearman on all as control variate
    net = models.load("mnist", "natural")
    x = data.load_samples("mnist").x[0:1]
    a, b = attributions.attribution_map(net, x)[0], _random_sign_map(net, x)
    want = float(chance.permutation_chance(a, b, 100, 1, keys=["lens_kendall"],
                                           rank_draws=chance_stages.RANK_DRAWS)["lens_kendall"])
    assert f"shuffled {fmt(want)}" in cells["lens_kendall"][1]


def test_the_normalised_score_is_against_the_unrelated_level():
    at = new_app()
    at.run()
    html = metric_table_html(at)
    score = float(re.search(r'data-metric="topk_intersection" data-pair="0"[^>]*>([^<]*)',
                            html).group(1))
    norm = re.search(r'data-norm="topk_intersection"[^>]*>norm ([^<]*)<', html).group(1)
    base = chance.unrelated_baseline(_sample_maps(), 100, 1)["topk_intersection"].mean
    assert norm == fmt((score - base) / (1 - base), 2)


def test_a_label_changing_random_draw_is_said_in_place_with_a_retry_button():
    # ε = 1 saturates every pixel to 0 or 1: no draw keeps the digit's label.
    at = new_app(**{"a.epsilon": "1.0"})
    at.run()
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "no label-preserving draw" in warnings
    assert "seeds 0 to 2" in warnings
    assert all("random sign" not in t.value for t in at.markdown if "xm-table" in t.value)
    at.button(key="exp.noise_next").click().run()
    assert at.number_input(key="cfg.seed").value == 3


def test_the_imagenet_view_opens_with_its_table_and_chance_levels():
    at = new_app(ds="imagenet", model="efficientnet_lite0")
    at.run()
    assert not at.exception
    no_errors(at)
    html = metric_table_html(at)
    cells = dict((key, perm) for key, _, perm in _CHANCE.findall(html))
    # exact keys only on 224×224 maps: the Monte-Carlo ones say they are not computed
    assert "shuffled" in cells["topk_intersection"] and "not computed" not in cells["topk_intersection"]
    assert cells["lens_recall_div"] == "shuffled –"
    assert "6 unrelated bundled images" in " ".join(c.value for c in at.caption)


def _colour_bar_spec(at) -> str:
    """The maps' colour bar (its own figure under the panels)."""
    specs = [c.proto.spec for c in at.get("plotly_chart") if "map value" in c.proto.spec]
    assert len(specs) == 1, f"expected one colour bar, found {len(specs)}"
    return specs[0]


def test_the_colour_scale_is_clipped_by_default_and_full_range_on_request():
    at = new_app()
    at.run()
    spec = _colour_bar_spec(at)
    assert "clipped at 99th percentile" in spec
    at.toggle(key="exp.fullrange").set_value(True).run()
    spec = _colour_bar_spec(at)
    assert "clipped at" not in spec and "full range" in spec


def _chart_spec(at, axis_title: str) -> dict:
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    found = [s for s in specs if axis_title in json.dumps(s["layout"].get("xaxis", {}))]
    assert len(found) == 1, f"expected one chart against {axis_title}"
    return found[0]


def _bands(spec: dict) -> tuple[dict, dict]:
    """{metric: (x, lo, hi)} of the shaded bands and {metric: (x, y)} of the dotted lines."""
    bands, lines = {}, {}
    for t in spec["data"]:
        if t.get("fill") == "tonexty":
            bands[t["meta"]] = (t["x"], t["y"], t["customdata"])
        elif t.get("line", {}).get("dash") == "dot" and "meta" in t:
            lines[t["meta"]] = (t["x"], t["y"])
    return bands, lines


@pytest.mark.parametrize("axis", ["w", "k"])
def test_the_charts_draw_each_metric_s_chance_band_at_the_library_levels(axis):
    tab = {"w": "Scores vs w", "k": "Scores vs k"}[axis]
    at = new_app(k=100, w=3)
    at.session_state[keys.widget("exp", "tabs")] = tab
    at.run()
    no_errors(at)
    chosen = list(panels.CHART_DEFAULT) + ["lens_recall_div"]
    at.multiselect(key=keys.widget("exp", "chartmetrics", axis)).set_value(chosen).run()
    no_errors(at)
    spec = _chart_spec(at, "neighbourhood radius" if axis == "w" else "k (pixels)")
    bands, lines = _bands(spec)
    assert set(bands) == set(chosen)
    names = [t["name"] for t in spec["data"] if t.get("showlegend", True)]
    assert "chance: unrelated images, mean ± 1 sd (band)" in names
    assert "chance: shuffled map (dotted)" in names
    maps = _sample_maps()
    net = models.load("mnist", "natural")
    x = data.load_samples("mnist").x[0:1]
    a = attributions.attribution_map(net, x)[0]
    b = _random_sign_map(net, x)  # the first pair before an attack is run
    for metric in chosen:
        xs, lo, hi = bands[metric]
        assert xs == (list(CHART_W) if axis == "w" else stages.k_grid(784, 100))
        for i, xv in enumerate(xs):
            k, w = (100, xv) if axis == "w" else (xv, 3)
            base = chance.unrelated_baseline(maps, k, w, keys=[metric])[metric]
            assert lo[i] == pytest.approx(base.mean - base.std, abs=1e-9), (metric, xv)
            assert hi[i] == pytest.approx(base.mean + base.std, abs=1e-9), (metric, xv)
            draws = chance_stages.SET_DRAWS if metric in metrics.SET_METRIC_KEYS else None
            want = float(chance.permutation_chance(a, b, k, w, keys=[metric],
                                                   draws=draws)[metric])
            assert lines[metric][1][i] == pytest.approx(want, abs=1e-9), (metric, xv)
    # the closed form, by hand: top-k at chance is k / HW; at w = 3 diverse LENS-recall's
    # band reaches the attack-free pair's score range (the point of drawing it)
    xs, perm = lines["topk_intersection"]
    if axis == "k":
        assert perm == pytest.approx([kv / 784 for kv in xs], abs=1e-12)
    else:
        assert perm == pytest.approx([100 / 784] * len(xs), abs=1e-12)


def test_the_w_values_computed_ahead_cover_the_chart_and_the_next_slider_steps():
    assert prefetch_ws(0) == (0, 1, 2, 3, 4, 5)
    # At w = 8 the nearest come first; the chart's values stay covered.
    assert prefetch_ws(8) == (8, 7, 9, 6, 10, 5, 4, 3, 2, 1, 0)
    assert prefetch_ws(W_MAX)[:3] == (W_MAX, W_MAX - 1, W_MAX - 2)
    assert all(0 <= w <= W_MAX for w in prefetch_ws(W_MAX))


def test_after_the_first_view_every_slider_w_has_its_unrelated_lens_levels():
    # They do not depend on the image: the page's background prefetch fills them for every w of
    # the slider, so a w move later only computes the pair's own permutation level.
    def wait_prefetch():
        deadline = time.monotonic() + 120
        while chance_stages._LENS.busy and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not chance_stages._LENS.busy, "the chance prefetch did not finish in 120 s"

    wait_prefetch()  # a job left running by an earlier test would refill what is cleared
    with chance_stages._LENS.lock:
        chance_stages._LENS.values.clear()
    at = new_app()
    at.run()
    no_errors(at)
    wait_prefetch()
    unrel = {key[-1]: v for key, v in chance_stages._LENS.values.items() if key[0] == "u"}
    assert set(unrel) == set(range(W_MAX + 1))
    pair_ws = {key[-1] for key in chance_stages._LENS.values if key[0] == "p"}
    w_now = int(at.slider(key=keys.w("mnist")).value)
    assert pair_ws == set(prefetch_ws(w_now))  # the pair's levels only near the slider's w
    maps = _sample_maps()
    for w in (0, 7, W_MAX):
        base = chance.unrelated_baseline(maps, 1, w, keys=["lens_kendall"])["lens_kendall"]
        assert unrel[w]["lens_kendall"] == pytest.approx((base.mean, base.std), abs=1e-12)
