"""explorer.viz (drawing only) and the app's export record, on hand-made arrays."""

from __future__ import annotations

import json
import math
from html import escape as html_escape

import numpy as np
import pytest
import torch

from explorer import metrics, viz


def test_to_rgb_gray_and_range():
    img = np.array([[[0.0, 0.5], [1.0, 2.0]]], dtype=np.float32)  # (1, 2, 2), one value > 1
    rgb = viz.to_rgb(img)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert rgb[0, 0].tolist() == [0, 0, 0]
    assert rgb[0, 1].tolist() == [128, 128, 128]
    assert rgb[1, 1].tolist() == [255, 255, 255]  # clipped
    with pytest.raises(ValueError, match="C = 1 or 3"):
        viz.to_rgb(np.zeros((2, 4, 4)))


def test_perturbation_is_amplified_to_full_range():
    x = np.full((1, 2, 2), 0.5, dtype=np.float32)
    x_adv = x.copy()
    x_adv[0, 0, 0] += 0.1
    x_adv[0, 1, 1] -= 0.05
    rgb, factor = viz.perturbation_rgb(x, x_adv)
    assert factor == pytest.approx(5.0)  # 0.5 / max|delta|
    assert rgb[0, 0, 0] == 255  # +max -> white
    assert rgb[1, 1, 0] == round(255 * (0.5 - 0.25))  # -max/2 -> quarter grey
    assert rgb[0, 1, 0] == 128  # unchanged -> mid grey
    same, zero = viz.perturbation_rgb(x, x)
    assert zero == 0.0 and (same == 128).all()


def test_composite_paints_masks_and_blends_alpha():
    m = np.zeros((3, 3), dtype=np.float32)
    opaque = np.zeros((3, 3), dtype=bool)
    opaque[0, 0] = True
    half = np.zeros((3, 3), dtype=bool)
    half[2, 2] = True
    out = viz.composite(m, 1.0, [(opaque, "#009E73"), (half, "rgba(255, 0, 0, 0.5)")])
    assert out[0, 0].tolist() == [0, 158, 115]
    background = out[1, 1].astype(int)
    assert background.tolist() == [242, 242, 242]  # zero map -> light grey (0.25 + 0.7)
    assert out[2, 2].tolist() == [round((0.95 * 0.5 + 0.5) * 255), round(0.95 * 0.5 * 255),
                                  round(0.95 * 0.5 * 255)]


def test_rgb_string():
    assert viz.rgb_string("#000004") == "rgb(0, 0, 4)"
    assert viz.rgb_string("rgba(1, 2, 3, 0.5)") == "rgba(1, 2, 3, 0.5)"


def test_square_outlines_clip_at_borders():
    mask = np.zeros((5, 5), dtype=bool)
    mask[0, 0] = True
    mask[2, 3] = True
    px, py = viz._square_outlines(mask, 1)
    # First square: pixel (row 0, col 0), clipped on the top and left: x -0.5..1.5, y -0.5..1.5.
    assert px[:5].tolist() == [-0.5, 1.5, 1.5, -0.5, -0.5]
    assert py[:5].tolist() == [-0.5, -0.5, 1.5, 1.5, -0.5]
    assert math.isnan(px[5])
    # Second: row 2, col 3 -> x 1.5..4.5, y 0.5..3.5.
    assert px[6:11].tolist() == [1.5, 4.5, 4.5, 1.5, 1.5]
    assert py[6:11].tolist() == [0.5, 0.5, 3.5, 3.5, 0.5]


def _pair():
    a = torch.zeros(6, 6)
    b = torch.zeros(6, 6)
    a[1, 1], a[4, 4], a[0, 5] = 3.0, 2.0, 1.0
    b[1, 2], b[4, 4], b[5, 0] = 3.0, 2.0, 1.0  # one shifted by 1, one exact, one far away
    return a, b


def test_overlap_figure_legend_counts_add_up_to_lens_scores():
    a, b = _pair()
    k, w = 3, 1
    masks = {key: v.numpy() for key, v in metrics.overlap_masks(a, b, k, w).items()}
    scores = metrics.compare(a, b, k, w)
    fig = viz.overlap_figure(a.numpy(), b.numpy(), masks, k=k, w=w)
    names = [t.name for t in fig.data if t.name]
    # Hand count: original top-3 {(1,1),(4,4),(0,5)}; attacked top-3 {(1,2),(4,4),(5,0)}.
    assert "original: exact 1" in names and "original: within w 1" in names
    assert "original: lost 1" in names
    assert "attacked: exact 1" in names and "attacked: within w 1" in names
    assert "attacked: new 1" in names
    titles = [a.text for a in fig.layout.annotations]
    assert f"{float(scores['lens_precision']):.3f}" in titles[0]
    assert f"{float(scores['lens_recall']):.3f}" in titles[1]
    assert float(scores["lens_precision"]) == pytest.approx(2 / 3)


def test_diverse_figure_reports_count_found():
    a, b = _pair()
    masks = {key: v.numpy() for key, v in metrics.overlap_masks(a, b, 30, 2).items()}
    fig = viz.diverse_figure(a.numpy(), b.numpy(), masks, k=30, w=2, show_squares=True)
    found = int(masks["orig_diverse_count"])
    assert found < 30
    assert f"{found} of k = 30 found" in fig.layout.annotations[0].text
    assert any(t.name and t.name.startswith("exclusion square (5×5)") for t in fig.data)


def test_side_by_side_shares_one_colour_scale():
    a, b = _pair()
    x = np.zeros((1, 6, 6), dtype=np.float32)
    ranks = metrics.rank_positions(a).numpy()
    fig, factor = viz.side_by_side(x, x + 0.1, a.numpy(), 2 * b.numpy(), ranks,
                                   metrics.rank_positions(b).numpy())
    heatmaps = [t for t in fig.data if t.type == "heatmap"]
    assert len(heatmaps) == 2 and all(t.coloraxis == "coloraxis" for t in heatmaps)
    assert fig.layout.coloraxis.cmax == pytest.approx(6.0)  # max of both maps
    assert factor == pytest.approx(5.0)
    assert int(np.asarray(heatmaps[0].customdata)[1, 1]) == 1  # top pixel shows rank 1


def test_export_json_and_figures():
    from explorer.ui import export

    a, b = _pair()
    vals = {key: float(v) for key, v in metrics.compare(a, b, 3, 1).items()}
    vals_nan = dict(vals, spearman=float("nan"))
    ctx = export.ExportContext(
        config={"dataset": "mnist", "model": "natural", "method": "saliency", "attack": "topk",
                "seed": 4, "k": 100, "w": 1},
        query={"ds": "mnist", "k": "100", "w": "1"}, model={"sha256": "abc", "card": None},
        input_name="hand-made", image=np.zeros((1, 6, 6), dtype=np.float32),
        images_b={"attack": np.full((1, 6, 6), 0.1, dtype=np.float32)})
    record = json.loads(export.view_json(ctx, k=3, w=1, labels=["attack"], values=[vals_nan]))
    assert record["config"]["k"] == 3 and record["seed"] == 4
    assert "k=3" in record["url_query"] and "w=1" in record["url_query"]
    assert record["scores"]["attack"]["lens_recall"] == pytest.approx(vals["lens_recall"])
    assert record["scores"]["attack"]["spearman"] is None  # NaN -> null, valid JSON
    assert record["model"]["sha256"] == "abc"
    assert set(record["versions"]) >= {"torch", "streamlit", "explorer"}
    masks = {key: v.numpy() for key, v in metrics.overlap_masks(a, b, 3, 1).items()}
    png = export.panel_bytes(ctx, label="attack", a=a.numpy(), b=b.numpy(), masks=masks, k=3,
                             w=1, values=vals, fmt="png")
    pdf = export.panel_bytes(ctx, label="attack", a=a.numpy(), b=b.numpy(), masks=masks, k=3,
                             w=1, values=vals, fmt="pdf")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and pdf[:5] == b"%PDF-"
    with pytest.raises(ValueError, match="png' or 'pdf"):
        viz.figure_bytes(None, "svg")


def test_metric_table_has_every_metric_and_formula():
    from explorer.ui import panels

    a, b = _pair()
    vals = {key: float(v) for key, v in metrics.compare(a, b, 3, 1).items()}
    html = panels.metric_table_html([vals, vals], ["attack", "random sign"], k=3, w=1)
    for key, info in metrics.METRICS.items():
        assert html.count(f'data-metric="{key}"') == 2
        assert html_escape(info.formula) in html  # shown under the name
        assert f'title="{html_escape(info.formula, quote=True)} — ' in html  # and on hover
