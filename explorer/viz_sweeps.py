"""Figures of batch-evaluation summaries: matplotlib (report) and plotly (Sweeps page).

Drawing only: the inputs are the tables of :mod:`explorer.evaluation.summary`
(``curve_table``, ``summary_table``): a mean column per metric key plus ``KEY_lo`` /
``KEY_hi`` interval columns.
Metric display names come from :data:`explorer.metrics.METRICS`.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Sequence

from . import metrics

# matplotlib and plotly are imported inside the functions: the report needs only the one, the
# Sweeps page only the other (each takes about half a second to import).

__all__ = ["ATTACK_COLORS", "MODEL_COLORS", "TITLE_CHARS", "grid_shape", "mpl_curves",
           "mpl_models", "panel_title", "save", "plotly_curves", "plotly_models"]

ATTACK_COLORS = {"random_sign": "#7f7f7f", "topk": "#d62728", "mass_center": "#1f77b4",
                 "lens_topk": "#9467bd", "random_walk": "#8c564b", "targeted": "#2ca02c"}
MODEL_COLORS = {"natural": "#ff7f0e", "pgd": "#2ca02c"}
_FALLBACK = ["#17becf", "#bcbd22", "#e377c2", "#393b79", "#637939"]
AXIS_LABEL = {"epsilon": "ε (ℓ∞ budget, [0, 1] pixel units)",
              "w": "w (neighbourhood radius, px)"}


TITLE_CHARS = 26  # characters per line of a panel title (fits a panel of a phone-wide figure)
# Plotly layout, in pixels: one row of panels, the gap between rows (the x-axis title of the row
# above and the wrapped panel titles of the row below), the figure's top and bottom margins.
_ROW_PX, _GAP_PX, _TOP_PX, _BOTTOM_PX = 250, 150, 120, 110


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_on_hyphens=False) or [text]


def panel_title(key: str, html: bool, width: int = TITLE_CHARS) -> str:
    """A panel's title: the metric's name over its formula, each wrapped at ``width``
    characters so that neighbouring titles never run into each other. ``html``: plotly's
    markup (the formula in a smaller font), else matplotlib's lines."""
    info = metrics.METRICS[key]
    name, formula = _wrap(info.name, width), _wrap(info.formula, width)
    if not html:
        return "\n".join(name + formula)
    small = "<br>".join(f"<span style='font-size:11px'>{line}</span>" for line in formula)
    return "<br>".join(name) + "<br>" + small


def grid_shape(n: int) -> tuple[int, int]:
    """Rows and columns of ``n`` plotly panels: one row for one or two, else two columns (four
    panels side by side leave a phone or a laptop's half screen under 100 px each)."""
    if n <= 2:
        return 1, max(1, n)
    return math.ceil(n / 2), 2


def _color(table: dict, key: str, i: int) -> str:
    return table.get(key, _FALLBACK[i % len(_FALLBACK)])


def _attack_name(key: str) -> str:
    try:
        from .attacks import ATTACKS
        return ATTACKS[key].name if key in ATTACKS else key
    except ImportError:  # pragma: no cover - attacks always present in the package
        return key


def _y_range(key: str):
    kind = metrics.METRICS[key].kind
    if kind == "set":
        return (0.0, 1.02)
    if kind == "rank":
        return (None, 1.02)  # correlations can be negative: the bottom follows the data
    return None


# --------------------------------------------------------------------------------------------
# matplotlib
# --------------------------------------------------------------------------------------------

def mpl_curves(curve, along: str, metric_keys: Sequence[str], title: str = ""):
    """One panel per metric, ``along`` on x, one line per attack (and line style per model when
    the table holds several models), with the 95 % interval as a band."""
    import matplotlib.pyplot as plt

    keys = [k for k in metric_keys if k in curve]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
    styles = ["-", "--", ":", "-."]
    models = list(dict.fromkeys(curve["model"]))
    for ax, key in zip(axes[0], keys):
        for i, att in enumerate(dict.fromkeys(curve["attack"])):
            for j, model in enumerate(models):
                c = curve[(curve["attack"] == att) & (curve["model"] == model)].sort_values(along)
                if c.empty:
                    continue
                label = _attack_name(att) + (f" ({model})" if len(models) > 1 else "")
                color = _color(ATTACK_COLORS, att, i)
                ax.plot(c[along], c[key], styles[j % len(styles)], marker="o", ms=3.5,
                        color=color, label=label)
                ax.fill_between(c[along], c[key + "_lo"], c[key + "_hi"], color=color,
                                alpha=0.15, linewidth=0)
        ax.set_title(panel_title(key, html=False), fontsize=9)
        ax.set_xlabel(AXIS_LABEL.get(along, along), fontsize=8)
        yr = _y_range(key)
        if yr:
            ax.set_ylim(bottom=yr[0], top=yr[1])
        ax.grid(alpha=0.3)
        if along == "w":
            ax.set_xticks(sorted(set(curve["w"])))
    axes[0][0].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def mpl_models(tab, metric_keys: Sequence[str], title: str = ""):
    """Grouped bars: one panel per metric, attacks on x, one bar per model with its interval."""
    import matplotlib.pyplot as plt
    import numpy as np

    keys = [k for k in metric_keys if k in tab]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.8 * len(keys), 3.4), squeeze=False)
    attacks = list(dict.fromkeys(tab["attack"]))
    models = list(dict.fromkeys(tab["model"]))
    width = 0.8 / max(1, len(models))
    for ax, key in zip(axes[0], keys):
        for j, model in enumerate(models):
            means, errs = [], [[], []]
            for att in attacks:
                r = tab[(tab["attack"] == att) & (tab["model"] == model)]
                if r.empty:
                    means.append(np.nan)
                    errs[0].append(0)
                    errs[1].append(0)
                    continue
                m, lo, hi = float(r[key].iloc[0]), float(r[key + "_lo"].iloc[0]), \
                    float(r[key + "_hi"].iloc[0])
                means.append(m)
                errs[0].append(max(0.0, m - lo))
                errs[1].append(max(0.0, hi - m))
            xs = np.arange(len(attacks)) + (j - (len(models) - 1) / 2) * width
            ax.bar(xs, means, width, yerr=errs, capsize=3, label=model,
                   color=_color(MODEL_COLORS, model, j))
        ax.set_title(panel_title(key, html=False), fontsize=9)
        ax.set_xticks(range(len(attacks)))
        ax.set_xticklabels([_attack_name(a) for a in attacks], fontsize=7, rotation=15)
        yr = _y_range(key)
        if yr:
            ax.set_ylim(bottom=yr[0], top=yr[1])
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def save(fig, path) -> Path:
    """Save a matplotlib figure as PNG and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


# --------------------------------------------------------------------------------------------
# plotly (interactive, for the Sweeps page)
# --------------------------------------------------------------------------------------------

def plotly_curves(curve, along: str, metric_keys: Sequence[str], title: str = ""):
    """The plotly twin of :func:`mpl_curves` (hover shows mean and interval)."""
    import plotly.graph_objects as go

    keys = [k for k in metric_keys if k in curve]
    fig, cells = _plotly_grid(keys)
    models = list(dict.fromkeys(curve["model"]))
    dashes = ["solid", "dash", "dot", "dashdot"]
    for panel, (key, (row, col)) in enumerate(zip(keys, cells)):
        for i, att in enumerate(dict.fromkeys(curve["attack"])):
            for j, model in enumerate(models):
                c = curve[(curve["attack"] == att) & (curve["model"] == model)].sort_values(along)
                if c.empty:
                    continue
                color = _color(ATTACK_COLORS, att, i)
                name = _attack_name(att) + (f" ({model})" if len(models) > 1 else "")
                fig.add_trace(go.Scatter(
                    x=c[along], y=c[key], mode="lines+markers", name=name, legendgroup=name,
                    showlegend=panel == 0, line=dict(color=color, dash=dashes[j % len(dashes)]),
                    error_y=dict(type="data", symmetric=False, array=c[key + "_hi"] - c[key],
                                 arrayminus=c[key] - c[key + "_lo"], thickness=1),
                    hovertemplate=f"{name}<br>{along} = %{{x}}<br>mean = %{{y:.3f}}"
                                  "<extra></extra>"), row=row, col=col)
        fig.update_xaxes(title_text="<br>".join(_wrap(AXIS_LABEL.get(along, along), 20)),
                         title_font_size=12, row=row, col=col)
        yr = _y_range(key)
        if yr and yr[0] is not None:
            fig.update_yaxes(range=list(yr), row=row, col=col)
    _plotly_layout(fig, len(cells), title)
    return fig


def plotly_models(tab, metric_keys: Sequence[str], title: str = ""):
    """The plotly twin of :func:`mpl_models`."""
    import plotly.graph_objects as go

    keys = [k for k in metric_keys if k in tab]
    fig, cells = _plotly_grid(keys)
    attacks = list(dict.fromkeys(tab["attack"]))
    for panel, (key, (row, col)) in enumerate(zip(keys, cells)):
        for j, model in enumerate(dict.fromkeys(tab["model"])):
            r = tab[tab["model"] == model].set_index("attack").reindex(attacks)
            fig.add_trace(go.Bar(
                x=[_attack_name(a) for a in attacks], y=r[key], name=model, legendgroup=model,
                showlegend=panel == 0, marker_color=_color(MODEL_COLORS, model, j),
                error_y=dict(type="data", symmetric=False, array=r[key + "_hi"] - r[key],
                             arrayminus=r[key] - r[key + "_lo"])), row=row, col=col)
        yr = _y_range(key)
        if yr and yr[0] is not None:
            fig.update_yaxes(range=list(yr), row=row, col=col)
    fig.update_layout(barmode="group")
    _plotly_layout(fig, len(cells), title)
    return fig


def _plotly_grid(keys: Sequence[str]):
    """An empty figure of :func:`grid_shape` panels titled by :func:`panel_title`, and the
    (row, column) of each key's panel."""
    from plotly.subplots import make_subplots

    rows, cols = grid_shape(len(keys))
    inner = rows * _ROW_PX + (rows - 1) * _GAP_PX
    fig = make_subplots(rows=rows, cols=cols, horizontal_spacing=0.14,
                        vertical_spacing=_GAP_PX / inner if rows > 1 else 0.3,
                        subplot_titles=[panel_title(k, html=True) for k in keys])
    fig.update_annotations(font_size=13, yanchor="bottom")
    return fig, [(1 + i // cols, 1 + i % cols) for i in range(len(keys))]


def _plotly_layout(fig, n_panels: int, title: str) -> None:
    """Height from the grid, the title wrapped, the legend under the panels (a legend at the
    side takes a phone's width from the panels)."""
    rows, _ = grid_shape(n_panels)
    inner = rows * _ROW_PX + (rows - 1) * _GAP_PX
    fig.update_layout(
        title=dict(text="<br>".join(_wrap(title, 48)), y=1.0, yanchor="top", pad=dict(t=12),
                   font_size=15),
        height=_TOP_PX + inner + _BOTTOM_PX, margin=dict(t=_TOP_PX, b=_BOTTOM_PX, l=45, r=10),
        legend=dict(orientation="h", x=0, xanchor="left", y=-70 / inner, yanchor="top"))
