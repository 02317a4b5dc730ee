"""The explorer's metric table shows each score's chance levels and normalised value; a random
draw that changes the prediction is said in place, never scored as the unperturbed image."""

from __future__ import annotations

import re

import numpy as np
import torch

from explorer import attributions, chance, data, metrics, models
from explorer.ui import chance_stages
from explorer.ui.common import fmt

from app_helpers import metric_table_html, new_app, no_errors

_CHANCE = re.compile(r'data-chance="(\w+)"[^>]*>([^<]*)<br><span class="xm-formula">([^<]*)<')


def _sample_maps(dataset="mnist", model="natural"):
    s = data.load_samples(dataset)
    n = len(s.x)
    m = chance_stages.UNRELATED_SAMPLES
    idx = sorted({round(j * (n - 1) / (m - 1)) for j in range(m)})
    net = models.load(dataset, model)
    return attributions.attribution_map(net, s.x[idx], "saliency")


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
