"""The explorer's picture row as separate square figures (``viz.map_panels``) with one shared
colour scale and its colour bar (``viz.colour_bar``), on hand-made arrays."""

from __future__ import annotations

import numpy as np
import pytest

from explorer import viz


def _pair(seed=0, size=32):
    rng = np.random.default_rng(seed)
    a = (rng.exponential(1.0, (size, size)) ** 3).astype(np.float32)
    b = (rng.exponential(1.0, (size, size)) ** 3).astype(np.float32)
    return a, b


def _ranks(m):
    order = np.argsort(-m.ravel(), kind="stable")
    r = np.empty(m.size, dtype=np.int64)
    r[order] = np.arange(m.size)
    return r.reshape(m.shape)


def _image(size=32, value=0.5):
    return np.full((1, size, size), value, dtype=np.float32)


def test_five_square_panels_share_the_clipped_scale():
    a, b = _pair()
    x, x_adv = _image(), _image()
    x_adv[0, 0, 0] += 0.1
    mp = viz.map_panels(x, x_adv, a, b, _ranks(a), _ranks(b))
    assert mp.titles == ("original", "attacked", "perturbation (×5)", "original map",
                         "attacked map")
    assert mp.factor == pytest.approx(5.0)
    joint = np.concatenate([a.ravel(), b.ravel()]).astype(np.float64)
    top = float(np.percentile(joint, 99.0))
    for fig in mp.figures[3:]:
        assert fig.layout.coloraxis.cmax == pytest.approx(top, rel=1e-6)
        assert fig.layout.coloraxis.showscale is False  # one colour bar, drawn apart
        assert fig.layout.yaxis.scaleanchor == "x"  # square pixels
        assert not fig.layout.annotations  # titled by the page, so titles can wrap
    bar = mp.colour_bar
    assert bar.layout.title.text.startswith("map value: clipped at 99th percentile")
    assert bar.layout.xaxis.range == (0.0, pytest.approx(top, rel=1e-6))
    assert bar.data[0].z[0][0] == 0 and bar.data[0].z[0][-1] == pytest.approx(top, rel=1e-6)


def test_without_an_attack_two_panels_and_full_range_on_request():
    a, _ = _pair(1)
    mp = viz.map_panels(_image(), None, a, None, _ranks(a), None, clip_percentile=None)
    assert mp.titles == ("original", "original map") and mp.factor is None
    assert mp.figures[1].layout.coloraxis.cmax == pytest.approx(float(a.max()))
    assert "full range" in mp.colour_bar.layout.title.text


def test_smoothing_changes_the_drawing_never_the_hover_values():
    a, b = _pair(2)
    mp = viz.map_panels(_image(), _image(value=0.6), a, b, _ranks(a), _ranks(b), smooth_sigma=1.5)
    heat = [t for t in mp.figures[3].data if t.type == "heatmap"][0]
    blurred = viz.smooth_for_display(a, 1.5)
    np.testing.assert_allclose(np.asarray(heat.z), blurred, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(heat.customdata)[..., 1], a, rtol=1e-6)  # raw value
    # the scale is that of the maps as drawn (blurring lowers the peaks), and it says so
    shown = np.concatenate([blurred.ravel(), viz.smooth_for_display(b, 1.5).ravel()])
    assert mp.figures[3].layout.coloraxis.cmax == pytest.approx(
        float(np.percentile(shown.astype(np.float64), 99.0)), rel=1e-6)
    assert "display smoothed (σ = 1.5 px)" in mp.colour_bar.layout.title.text
    zoom = viz.map_zoom(a, b, smooth_sigma=1.5)
    assert zoom.layout.coloraxis.cmax == pytest.approx(mp.figures[3].layout.coloraxis.cmax)
