"""explorer.viz (drawing only) and the app's export record, on hand-made arrays."""

from __future__ import annotations

import json
import math
from html import escape as html_escape

import numpy as np
import pytest
import torch

from explorer import metrics, viz, viz_charts


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
                                   metrics.rank_positions(b).numpy(), clip_percentile=None)
    heatmaps = [t for t in fig.data if t.type == "heatmap"]
    assert len(heatmaps) == 2 and all(t.coloraxis == "coloraxis" for t in heatmaps)
    assert fig.layout.coloraxis.cmax == pytest.approx(6.0)  # full range: max of both maps
    assert "full range 0 – 6" in fig.layout.coloraxis.colorbar.title.text
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


# --------------------------------------------------------------------------------------------
# Robust colour scale, display smoothing, markers, zoom, export layout
# --------------------------------------------------------------------------------------------

def _heavy_tailed_pair(seed=0, size=224):
    rng = np.random.default_rng(seed)
    a = rng.exponential(1.0, (size, size)) ** 3  # heavy tail: a few pixels dwarf the rest
    b = rng.exponential(1.0, (size, size)) ** 3
    return a.astype(np.float32), b.astype(np.float32)


def test_clip_value_is_numpys_percentile_of_the_joint_values():
    a, b = _heavy_tailed_pair()
    joint = np.concatenate([a.ravel(), b.ravel()]).astype(np.float64)
    for p in (99.0, 95.0, 99.9):
        scale = viz.map_scale(a, b, percentile=p)
        assert scale.cmax == pytest.approx(float(np.percentile(joint, p)), rel=1e-12)
        assert scale.peak == pytest.approx(float(joint.max()))
        assert scale.clipped and scale.cmax < scale.peak / 4  # the tail really is clipped
    # Hand-worked: 0..9 and 10..19 -> joint 0..19; 90th percentile = 0.9 * 19 = 17.1.
    lo, hi = np.arange(10.0).reshape(2, 5), np.arange(10.0, 20.0).reshape(2, 5)
    assert viz.map_scale(lo, hi, percentile=90).cmax == pytest.approx(17.1)
    assert viz.map_scale(lo, None, percentile=100).cmax == pytest.approx(9.0)


def test_colour_bar_states_the_clip_and_both_maps_share_it():
    a, b = _heavy_tailed_pair(1, 32)
    x = np.zeros((3, 32, 32), dtype=np.float32)
    ra = metrics.rank_positions(torch.from_numpy(a)).numpy()
    rb = metrics.rank_positions(torch.from_numpy(b)).numpy()
    fig, _ = viz.side_by_side(x, x + 0.1, a, b, ra, rb)  # default: robust scale
    clip = float(np.percentile(np.concatenate([a.ravel(), b.ravel()]).astype(np.float64), 99))
    axis = fig.layout.coloraxis
    assert axis.cmin == 0 and axis.cmax == pytest.approx(clip)
    assert f"clipped at 99th percentile = {clip:.3g}" in axis.colorbar.title.text
    assert all(t.coloraxis == "coloraxis" for t in fig.data if t.type == "heatmap")
    # The full-range option.
    full, _ = viz.side_by_side(x, x + 0.1, a, b, ra, rb, clip_percentile=None)
    assert full.layout.coloraxis.cmax == pytest.approx(float(max(a.max(), b.max())))
    assert "full range" in full.layout.coloraxis.colorbar.title.text
    # Other percentiles are named as such; bad ones are refused with the allowed range.
    assert "99.5th percentile" in viz.map_scale(a, b, percentile=99.5).label()
    for bad in (0, 101, float("nan"), "99", True):
        with pytest.raises(ValueError, match=r"number in \(0, 100\], or None"):
            viz.map_scale(a, b, percentile=bad)


def test_sparse_and_zero_maps_fall_back_to_a_stated_full_range():
    m = np.zeros((10, 10), dtype=np.float32)
    m[0, 0] = 5.0  # 99 % zeros: the 99th percentile is 0
    scale = viz.map_scale(m, percentile=50)
    assert scale.cmax == 5.0 and scale.percentile is None
    assert "the 50th percentile is 0" in scale.label()
    assert viz.map_scale(np.zeros((3, 3))).cmax == 1.0  # all zeros: 0 .. 1


def test_smoothing_is_for_display_only_and_leaves_the_input_untouched():
    a, b = _heavy_tailed_pair(2, 24)
    before = a.copy()
    blurred = viz.smooth_for_display(a, 1.5)
    assert np.array_equal(a, before)  # input untouched
    assert blurred is not a and blurred.shape == a.shape
    assert blurred.max() < a.max()
    delta = np.zeros((41, 41), dtype=np.float32)
    delta[20, 20] = 1.0
    g = viz.smooth_for_display(delta, 1.5)  # a Gaussian of σ = 1.5 px: peak 1 / (2π σ²)
    assert g.sum() == pytest.approx(1.0, rel=1e-5)
    assert g[20, 20] == pytest.approx(1 / (2 * math.pi * 1.5 ** 2), rel=0.02)
    assert g[20, 23] == pytest.approx(g[20, 20] * math.exp(-9 / (2 * 1.5 ** 2)), rel=0.05)
    assert delta.sum() == 1.0 and delta[20, 20] == 1.0
    assert np.array_equal(viz.smooth_for_display(a, 0), a)
    with pytest.raises(ValueError, match="sigma must be a number ≥ 0"):
        viz.smooth_for_display(a, -1)
    # In the figure: the heatmap is smoothed, the hover keeps the raw value and rank.
    x = np.zeros((1, 24, 24), dtype=np.float32)
    ra = metrics.rank_positions(torch.from_numpy(a)).numpy()
    fig, _ = viz.side_by_side(x, None, a, None, ra, None, smooth_sigma=1.5)
    (heat,) = [t for t in fig.data if t.type == "heatmap"]
    np.testing.assert_allclose(np.asarray(heat.z), blurred, rtol=1e-6)
    raw = np.asarray(heat.customdata)
    np.testing.assert_array_equal(raw[..., 1], a)
    np.testing.assert_array_equal(raw[..., 0], ra + 1)
    assert "smoothed" in fig.layout.coloraxis.colorbar.title.text
    assert np.array_equal(a, before)


def test_marker_size_in_pixels_at_224_and_28():
    assert viz.marker_radius((28, 28)) == 0  # a 28-px image: one pixel is already large
    assert viz.marker_radius((224, 224)) == 2  # 5×5 markers: the same on-screen size
    # Marker side as a fraction of the image side stays within a factor 2 from 28 to 224.
    frac28 = (2 * viz.marker_radius((28, 28)) + 1) / 28
    frac224 = (2 * viz.marker_radius((224, 224)) + 1) / 224
    assert 0.5 < frac224 / frac28 < 2
    # Drawn: one lost pixel in the middle of a 224×224 overlap view covers a 5×5 square; at
    # 28×28 exactly one pixel.
    for size, side in ((224, 5), (28, 1)):
        a = np.zeros((size, size), dtype=np.float32)
        empty = np.zeros((size, size), dtype=bool)
        lost = empty.copy()
        lost[size // 2, size // 2] = True
        layers = viz.expand_markers([(lost, viz.MISSED)], viz.marker_radius((size, size)))
        painted = viz.composite(a, 1.0, layers)
        wine = np.all(painted == painted[size // 2, size // 2], axis=2)
        assert wine.sum() == side * side


def test_marker_halos_never_hide_another_marked_pixel():
    exact = np.zeros((9, 9), dtype=bool)
    lost = np.zeros((9, 9), dtype=bool)
    exact[4, 4] = True
    lost[4, 5] = True  # right next to it: its halo must not paint over the exact pixel
    out = viz.expand_markers([(exact, viz.EXACT), (lost, viz.MISSED)], 1)
    painted = viz.composite(np.zeros((9, 9)), 1.0, out)
    assert painted[4, 4].tolist() == [0, 158, 115]  # still exact green
    assert painted[4, 6].tolist() == list(int(viz.MISSED[i:i + 2], 16) for i in (1, 3, 5))
    assert np.array_equal(exact.sum(), 1)  # masks untouched
    # Where halos meet, the rarer layer wins: one exact pixel among many lost ones.
    many = np.zeros((9, 9), dtype=bool)
    many[:, 0] = many[:, 8] = True
    many[4, 2] = True  # its halo reaches (4, 3), which is also in the exact pixel's halo
    out = viz.expand_markers([(exact, viz.EXACT), (many, viz.MISSED)], 1)
    assert viz.composite(np.zeros((9, 9)), 1.0, out)[4, 3].tolist() == [0, 158, 115]
    out = viz.expand_markers([(many, viz.MISSED), (exact, viz.EXACT)], 1)  # order irrelevant
    assert viz.composite(np.zeros((9, 9)), 1.0, out)[4, 3].tolist() == [0, 158, 115]


def test_overlap_view_draws_markers_on_224_and_keeps_counts():
    a = torch.zeros(224, 224)
    b = torch.zeros(224, 224)
    a[50, 50], b[150, 150] = 3.0, 3.0
    masks = {key: v.numpy() for key, v in metrics.overlap_masks(a, b, 1, 1).items()}
    fig = viz.overlap_figure(a.numpy(), b.numpy(), masks, k=1, w=1)
    names = [t.name for t in fig.data if t.name]
    assert "original: lost 1" in names and "attacked: new 1" in names  # pixel counts
    assert "each marked pixel drawn 5×5 px" in names
    small = viz.overlap_figure(a.numpy()[:28, :28], b.numpy()[:28, :28],
                               {k: (v[:28, :28] if np.ndim(v) == 2 else v)
                                for k, v in masks.items()}, k=1, w=1)
    assert not any(t.name and t.name.startswith("each marked") for t in small.data)


def test_map_zoom_links_the_two_panels():
    a, b = _heavy_tailed_pair(3, 32)
    fig = viz.map_zoom(a, b)
    assert fig.layout.xaxis2.matches == "x" and fig.layout.yaxis2.matches == "y"
    assert fig.layout.dragmode == "zoom" and fig.layout.height >= 500
    assert "clipped at 99th percentile" in fig.layout.coloraxis.colorbar.title.text
    single = viz.map_zoom(a)
    assert len([t for t in single.data if t.type == "heatmap"]) == 1


def test_export_footer_does_not_overlap_any_panel():
    a, b = _heavy_tailed_pair(4, 224)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    masks = {key: v.numpy() for key, v in metrics.overlap_masks(ta, tb, 1000, 3).items()}
    caption = "   ".join(f"{info.name} = 0.123" for info in metrics.METRICS.values())
    x = np.zeros((3, 224, 224), dtype=np.float32)
    fig = viz.export_panel(x, x + 0.02, a, b, masks, k=1000, w=3, title="t", caption=caption)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    texts = [t for sub in fig.subfigs for t in sub.texts]
    assert texts and "\n".join(t.get_text() for t in texts).replace("\n", " ").split() == \
        caption.split()
    fig_box = fig.bbox
    for t in texts:
        box = t.get_window_extent(renderer)
        assert fig_box.x0 <= box.x0 and box.x1 <= fig_box.x1 and fig_box.y0 <= box.y0
        for ax in fig.get_axes():
            assert not box.overlaps(ax.get_tightbbox(renderer)), ax.get_title()
    labels = [ax.get_ylabel() for ax in fig.get_axes()]
    clip = float(np.percentile(np.concatenate([a.ravel(), b.ravel()]).astype(np.float64), 99))
    assert any(f"clipped at 99th percentile = {clip:.3g}" in lab for lab in labels)


@pytest.mark.parametrize("xs, vals, text", [
    ([4, 7, 14, 25, 100, 392], [10, 30, 100, 300], ["10", "30", "100", "300"]),
    ([251, 1000, 25088], [300, 1000, 3000, 10000], ["300", "1k", "3k", "10k"]),
    ([40, 60], [40, 60], ["40", "60"]),  # no two 1-3-10 steps inside: the ends
])
def test_metric_lines_labels_a_log_axis_at_one_three_ten_steps(xs, vals, text):
    fig = viz_charts.metric_lines(xs, [dict(name="s", y=[0.5] * len(xs))], x_title="k", log_x=True)
    axis = fig.layout.xaxis
    assert axis.type == "log" and list(axis.tickvals) == vals and list(axis.ticktext) == text


def test_metric_lines_legend_under_the_plot_one_entry_per_group():
    series = [dict(name="A · attack", y=[0.1, 0.2], group="a", legend="A"),
              dict(name="A · noise", y=[0.2, 0.3], group="a", legend=None, dashed=True),
              dict(name="B · attack", y=[0.3, 0.4], group="b")]
    fig = viz_charts.metric_lines([1, 2], series, x_title="w", height=300)
    shown = [t.name for t in fig.data if t.showlegend is not False]
    assert shown == ["A", "B · attack"]
    groups = [t.legendgroup for t in fig.data]
    assert groups == ["a", "a", "b"]  # the hidden series toggles with its group's entry
    assert "A · noise" in fig.data[1].hovertemplate
    legend = fig.layout.legend
    assert legend.orientation == "h" and legend.y < 0 and legend.yanchor == "top"
    assert fig.layout.height == 300 + 20  # two entries: one more row of legend
