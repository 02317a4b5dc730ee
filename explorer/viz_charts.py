"""Score charts (plotly): metric lines against k or w with their chance bands, and the attack's
history. Rendering only, like :mod:`explorer.viz`, whose colour helpers they share."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from .viz import _figure, _rgba, rgb_string

__all__ = ["PALETTE", "metric_lines", "history_chart"]


PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000",
           "#999999", "#F0E442", "#882255", "#44AA99")


def metric_lines(
    xs: Sequence[float],
    series: Sequence[Mapping],
    *,
    x_title: str,
    y_title: str = "score",
    marker_x: float | None = None,
    log_x: bool = False,
    height: int = 300,
    bands: Sequence[Mapping] = (),
):
    """Lines of scores against ``xs``.

    ``series``: dicts with ``name``, ``y`` (values; NaN gaps allowed), ``group`` (series of the
    same group share a colour) and ``dashed`` (bool). ``marker_x`` draws a vertical line at the
    current setting. ``bands``: chance levels, dicts with ``group`` (the metric's series group,
    whose colour they take), ``name``, ``lo`` / ``hi`` (a translucent band, drawn under the
    lines) and ``line`` (a dotted line); one legend entry each for all bands and all lines.
    A series' optional ``legend`` is its text in the legend (default its ``name``); ``None``
    leaves it out of the legend, where it toggles with its group's entry. The legend runs
    horizontally under the plot (wrapping on a narrow screen; ``height`` grows with the
    number of entries) and a log axis is labelled at 1-3-10 steps, so its labels never run
    together.
    """
    data: list[dict] = []
    groups: dict = {}
    for s in series:
        groups.setdefault(s.get("group", s["name"]), len(groups))
    data += _band_traces(xs, bands, groups, x_title)
    for s in series:
        colour = rgb_string(
            PALETTE[groups.setdefault(s.get("group", s["name"]), len(groups)) % len(PALETTE)])
        ys = _nan_none(s["y"])
        legend = s.get("legend", s["name"])
        data.append(dict(
            type="scatter", x=list(xs), y=ys, mode="lines+markers",
            name=legend if legend is not None else s["name"], showlegend=legend is not None,
            legendgroup=str(s.get("group", s["name"])),
            line=dict(color=colour, dash="dash" if s.get("dashed") else "solid", width=2),
            marker=dict(size=5, color=colour),
            hovertemplate=f"{s['name']}<br>{x_title} = %{{x}}<br>%{{y:.3f}}<extra></extra>"))
    entries = sum(1 for t in data if t.get("showlegend", True))
    xaxis = dict(title=dict(text=x_title), type="log" if log_x else "linear")
    if log_x:
        xaxis.update(_log_ticks(xs))
    # Under the plot, left-aligned, wrapping; about two entries a row on a phone.
    layout = dict(height=height + 20 * math.ceil(entries / 2),
                  margin=dict(l=4, r=4, t=10, b=4), xaxis=xaxis,
                  yaxis=dict(title=dict(text=y_title)),
                  legend=dict(font=dict(size=11), orientation="h", x=0, xanchor="left",
                              y=-0.22, yanchor="top"),
                  hovermode="closest")
    if marker_x is not None:
        layout["shapes"] = [dict(type="line", x0=marker_x, x1=marker_x, y0=0, y1=1,
                                 xref="x", yref="paper",
                                 line=dict(color="grey", width=1, dash="dot"))]
    return _figure(data, layout)


def _log_ticks(xs: Sequence[float]) -> dict:
    """Tick values at 1, 3, 10, 30, ... within the range of ``xs`` (1k for 1000), or at the
    ends of ``xs`` where the range holds fewer than two such steps."""
    lo, hi = min(xs), max(xs)
    steps = [m * 10 ** e for e in range(int(math.floor(math.log10(max(lo, 1e-12)))),
                                        int(math.ceil(math.log10(max(hi, 1e-12)))) + 1)
             for m in (1, 3)]
    vals = [v for v in steps if lo <= v <= hi]
    if len(vals) < 2:
        vals = sorted({lo, hi})
    text = [f"{v / 1000:g}k" if v >= 1000 else f"{v:g}" for v in vals]
    return dict(tickmode="array", tickvals=vals, ticktext=text)


def _nan_none(values) -> list:
    return [None if (v is None or np.isnan(v)) else float(v) for v in values]


def _band_traces(xs, bands: Sequence[Mapping], groups: dict, x_title: str) -> list[dict]:
    """Chance bands (fill between ``lo`` and ``hi``) and dotted chance lines, in the colour of
    their metric's group; the legend names each kind once."""
    out: list[dict] = []
    legend_band = legend_line = True
    for b in bands:
        colour = PALETTE[groups.setdefault(b["group"], len(groups)) % len(PALETTE)]
        r, g, bl, _ = _rgba(colour)
        fill = f"rgba({int(r * 255)},{int(g * 255)},{int(bl * 255)},0.16)"
        lo, hi = _nan_none(b["lo"]), _nan_none(b["hi"])
        if any(v is not None for v in lo):
            out.append(dict(type="scatter", x=list(xs), y=hi, mode="lines", hoverinfo="skip",
                            line=dict(width=0, color=fill), showlegend=False,
                            legendgroup="chance band", name=b["name"]))
            out.append(dict(
                type="scatter", x=list(xs), y=lo, mode="lines", fill="tonexty", fillcolor=fill,
                line=dict(width=0, color=fill), legendgroup="chance band",
                showlegend=legend_band, meta=b["group"],
                name="chance: unrelated images, mean ± 1 sd (band)",
                customdata=hi, hovertemplate=f"{b['name']}: unrelated images<br>{x_title} = "
                                             "%{x}<br>%{y:.3f} to %{customdata:.3f}"
                                             "<extra></extra>"))
            legend_band = False
        line = _nan_none(b.get("line", ()))
        if any(v is not None for v in line):
            out.append(dict(
                type="scatter", x=list(xs), y=line, mode="lines", legendgroup="chance line",
                line=dict(color=rgb_string(colour), dash="dot", width=1.5), meta=b["group"],
                showlegend=legend_line, name="chance: shuffled map (dotted)",
                hovertemplate=f"{b['name']}: shuffled map<br>{x_title} = %{{x}}<br>%{{y:.3f}}"
                              "<extra></extra>"))
            legend_line = False
    return out


def history_chart(histories: Mapping[str, np.ndarray], *, measure: str, height: int = 260):
    """Selection measure of the best label-preserving iterate so far, per attack step."""
    data = []
    for name, h in histories.items():
        h = np.asarray(h, dtype=np.float64).ravel()
        data.append(dict(type="scatter", x=np.arange(h.size), y=h, mode="lines", name=name,
                         hovertemplate=f"{name}<br>step %{{x}}<br>%{{y:.4f}}<extra></extra>"))
    layout = dict(height=height, margin=dict(l=4, r=4, t=10, b=4),
                  xaxis=dict(title=dict(text="attack step (0 = unperturbed input)")),
                  yaxis=dict(title=dict(text=f"best {measure} so far")),
                  showlegend=len(histories) > 1)
    return _figure(data, layout)
