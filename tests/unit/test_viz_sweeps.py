"""Sweeps figures: panel titles wrapped so that neighbours never run into each other (measured
on the rendered matplotlib figure), and the plotly grid of panels."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from explorer import metrics, viz_sweeps  # noqa: E402

PANELS = ("topk_intersection", "lens_recall", "lens_recall_div", "spearman")


def _table() -> pd.DataFrame:
    rows = []
    for model in ("natural", "pgd"):
        for attack in ("random_sign", "topk", "mass_center"):
            r = {"model": model, "attack": attack}
            for key in metrics.METRIC_KEYS:
                r[key], r[key + "_lo"], r[key + "_hi"] = 0.5, 0.4, 0.6
            rows.append(r)
    return pd.DataFrame(rows)


@pytest.mark.parametrize("key", metrics.METRIC_KEYS)
def test_panel_title_lines_fit_the_width(key):
    info = metrics.METRICS[key]
    lines = viz_sweeps.panel_title(key, html=False).split("\n")
    assert " ".join(lines).split() == f"{info.name} {info.formula}".split()  # nothing lost
    assert all(len(line) <= viz_sweeps.TITLE_CHARS or " " not in line for line in lines)
    html = viz_sweeps.panel_title(key, html=True)
    assert html.startswith(info.name.split()[0]) and "font-size:11px" in html


def test_spearman_formula_is_wrapped():
    # 62 characters on one line before: wider than a panel of the report's figure.
    lines = viz_sweeps.panel_title("spearman", html=False).split("\n")
    assert lines[0] == "Spearman ρ" and len(lines) == 4


def test_grid_shape():
    assert [viz_sweeps.grid_shape(n) for n in (1, 2, 3, 4, 5)] == [
        (1, 1), (1, 2), (2, 2), (2, 2), (3, 2)]


def _boxes_overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_matplotlib_panel_titles_do_not_overlap():
    import matplotlib.pyplot as plt

    fig = viz_sweeps.mpl_models(_table(), PANELS, title="mnist / saliency")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [ax.title.get_window_extent(renderer) for ax in fig.axes]
    assert len(boxes) == len(PANELS)
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not _boxes_overlap(boxes[i], boxes[j]), (PANELS[i], PANELS[j])
    plt.close(fig)


def test_plotly_models_uses_a_two_column_grid():
    fig = viz_sweeps.plotly_models(_table(), PANELS, title="mnist / saliency")
    titles = [a.text for a in fig.layout.annotations]
    assert len(titles) == 4 and titles[3].startswith("Spearman ρ<br>")
    # Panels 1-2 on the top row, 3-4 below; bars of panel 4 on the second row's right axes.
    assert fig.layout.xaxis.domain[0] == 0 and fig.layout.xaxis2.domain[0] > 0.5
    assert fig.layout.yaxis3.domain[1] < fig.layout.yaxis.domain[0]
    assert {t.xaxis for t in fig.data} == {"x", "x2", "x3", "x4"}
    assert fig.layout.legend.orientation == "h"
    assert np.isclose(fig.layout.height, 120 + 2 * 250 + 150 + 110)
