"""The explorer's display part: presenter mode, display smoothing and the larger view, each
reached by the page's controls and by the link, and the one-line statement above the pictures,
whose numbers are the table's."""

from __future__ import annotations

import html
import json
import re

from app_helpers import metric_table, metric_table_html, new_app, no_errors

STEPS = 4
_CHANCE_TOPK = re.compile(r'data-chance="topk_intersection"[^>]*>([0-9.]+)')


def _statement(at) -> str:
    found = [m.value for m in at.markdown if m.value.startswith('<div class="xp-statement">')]
    assert len(found) == 1, f"expected one statement, found {len(found)}"
    return html.unescape(re.sub(r"<[^>]+>", "", found[0]))


def _specs(at) -> list[str]:
    return [c.proto.spec for c in at.get("plotly_chart")]


def _presenter_css(at) -> list[str]:
    return [m.value for m in at.markdown if "stSidebar" in m.value and "display: none" in m.value]


def test_the_statement_quotes_the_table_and_follows_k():
    at = new_app(**{"a.steps": STEPS, "run": 1})
    at.run()
    no_errors(at)
    table = metric_table(at)
    chance_topk = _CHANCE_TOPK.search(metric_table_html(at)).group(1)
    line = _statement(at)
    assert line.startswith("Original vs attacked Simple Gradients map of an image classified "
                           "as 7 (model: MNIST CNN, natural training)")
    score = table["attack"]["topk_intersection"]
    assert f"top-k intersection {score:.2f} at k = 100, chance {float(chance_topk):.2f}" in line
    assert "while the prediction stayed 7" in line
    at.slider(key="cfg.k.mnist").set_value(40).run()
    table = metric_table(at)
    assert f"top-k intersection {table['attack']['topk_intersection']:.2f} at k = 40" \
        in _statement(at)


def test_before_the_attack_the_statement_is_about_random_sign_noise():
    at = new_app()
    at.run()
    line = _statement(at)
    assert "vs the map under random sign noise" in line and "Run the attack" in line
    assert f"{metric_table(at)['random sign']['topk_intersection']:.2f} at k = 100" in line


def test_presenter_mode_from_the_link_and_from_the_toggle():
    at = new_app(present=1, **{"a.steps": STEPS, "run": 1})
    at.run()
    no_errors(at)
    assert at.toggle(key="cfg.present").value is True
    assert _presenter_css(at)
    assert at.query_params["present"] == "1"
    # fewer numbers: three headline tiles with their chance levels; the table in an expander
    tiles = [m.value for m in at.markdown if 'class="xp-tiles"' in m.value]
    assert len(tiles) == 1 and tiles[0].count('class="xp-tile"') == 3
    assert tiles[0].count("chance 0.") == 3
    assert any(e.label == "Every score" for e in at.expander)
    at.toggle(key="cfg.present").set_value(False).run()
    assert not _presenter_css(at) and "present" not in at.query_params
    assert not [m for m in at.markdown if 'class="xp-tiles"' in m.value]


def test_smoothing_is_display_only_and_in_the_link():
    at = new_app(**{"a.steps": STEPS, "run": 1})
    at.run()
    before = metric_table(at)
    raw = [s for s in _specs(at) if '"heatmap"' in s]
    at.slider(key="cfg.smooth").set_value(1.5).run()
    no_errors(at)
    assert metric_table(at) == before  # the scores never see the smoothing
    bar = [s for s in _specs(at) if "map value" in s]
    assert len(bar) == 1
    assert "display smoothed (σ = 1.5 px)" in json.loads(bar[0])["layout"]["title"]["text"]
    assert [s for s in _specs(at) if '"heatmap"' in s] != raw  # the maps drawn did change
    assert at.query_params["smooth"] == "1.5"
    # and back from a link
    at = new_app(smooth="1.5")
    at.run()
    assert at.slider(key="cfg.smooth").value == 1.5


def test_the_larger_view_opens_from_the_link_with_a_linked_zoom():
    at = new_app(zoom="pair", **{"a.steps": STEPS, "run": 1})
    at.run()
    no_errors(at)
    assert at.radio(key="cfg.zoom").value == "pair"
    zoom = [s for s in _specs(at) if '"matches"' in s]
    assert len(zoom) == 1 and '"dragmode":"zoom"' in zoom[0].replace(" ", "")
    assert at.query_params["zoom"] == "pair"
    at.radio(key="cfg.zoom").set_value("perturbed").run()
    assert at.query_params["zoom"] == "perturbed"
    assert not [s for s in _specs(at) if '"matches"' in s]  # one map: nothing to link


def test_bad_view_values_in_a_link_are_one_warning():
    at = new_app(present="yes", smooth="9", zoom="all")
    at.run()
    boxes = [w.value for w in at.warning if "link" in w.value]
    assert len(boxes) == 1
    for word in ("present", "smooth", "zoom"):
        assert word in boxes[0]
    assert at.toggle(key="cfg.present").value is False and not _presenter_css(at)
