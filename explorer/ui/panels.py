"""The k / w fragment shared by the pages: metric table, overlap and diverse views, charts.

Everything here depends only on the maps already computed (cached upstream) and on k, w and
view toggles, so it lives in an ``st.fragment``: moving a slider reruns this panel only.
Numbers come from ``explorer.metrics`` (through the cached ``stages.scores`` / ``stages.masks``);
names, formulas and descriptions from ``explorer.metrics.METRICS``.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import streamlit as st
import torch

from explorer import metrics, viz, viz_charts

from explorer import chance

from . import background, chance_stages, explain, export, kcontrol, keys, stages
from .common import fmt
from .state import CHART_W, W_MAX, prefetch_ws

__all__ = ["CHART_DEFAULT", "FAMILIES", "NO_X_PRIME", "Missing", "Pair", "PanelInput",
           "UNDEFINED_WHY", "analysis", "chart_data", "metric_table_html"]

# Presentation only: which classical metric each LENS metric relaxes (rows of the table).
FAMILIES: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("top-k", ("topk_intersection",), ("lens_recall", "lens_precision")),
    ("Spearman", ("spearman",), ("lens_spearman",)),
    ("Kendall", ("kendall",), ("lens_kendall",)),
    ("diverse top-k", ("topk_div_intersection",), ("lens_recall_div", "lens_precision_div")),
    ("centre of mass", ("center_shift",), ()),
)
CHART_DEFAULT = ("topk_intersection", "lens_recall", "lens_precision", "spearman",
                 "lens_spearman")
UNDEFINED_WHY = {
    "rank": "undefined: a rank correlation needs two non-constant maps, and one of these maps "
            "is constant (for example all zeros), so it has no ranking",
    "distance": "undefined: a centre of mass needs a map with positive total, and one of these "
                "maps is all zeros",
    "set": "undefined",
}


@dataclass(frozen=True, eq=False)
class Pair:
    """One (original map, perturbed map) pair shown by the panel."""

    label: str  # column title: "attack", "random sign", "natural", "PGD", ...
    key: str  # cache identity of the pair (config fingerprint + what produced b)
    a: np.ndarray  # (H, W) original map
    b: np.ndarray  # (H, W) perturbed map
    note: str = ""  # shown under the table when set (e.g. "label changed")


NO_X_PRIME = "no label-preserving x′ found"


@dataclass(frozen=True)
class Missing:
    """A column with no perturbed map to score (no label-preserving x′ was found): its cells say
    so, with ``advice`` (what the user can change), and it enters no score, chart or export."""

    label: str
    advice: str = ""


@dataclass(frozen=True, eq=False)
class PanelInput:
    dataset: str
    height: int
    width: int
    pairs: list[Pair]
    histories: dict[str, np.ndarray] = field(default_factory=dict)
    measure: str = "topk_intersection"
    key: str = "exp"  # widget key prefix of the page
    sync_url: bool = True
    export: export.ExportContext | None = None
    # (model key, method, method items) of the maps: the table then shows chance levels
    chance_source: tuple | None = None
    # columns shown before the pairs with no scores (see Missing)
    missing: tuple[Missing, ...] = ()
    # called on every run of the panel with (k, w, values per pair, chance cells or None): the
    # page's statement above the pictures follows k and w this way
    on_scores: Callable[[int, int, list, dict | None], None] | None = None
    compact: bool = False  # fewer numbers on screen (presenter mode): the table in an expander


def _families():
    covered = {k for _, c, l in FAMILIES for k in c + l}
    extra = tuple(k for k in metrics.METRIC_KEYS if k not in covered)
    fams = [f for f in FAMILIES if all(k in metrics.METRICS for k in f[1] + f[2])]
    if extra:
        fams.append(("other", extra, ()))
    return fams


def _name_cell(key: str) -> str:
    info = metrics.METRICS[key]
    tip = html.escape(f"{info.formula} — {info.description}", quote=True)
    arrow = "↑" if info.higher_is_better else "↓"
    return (f'<td class="xm-name"><span title="{tip}">{html.escape(info.name)}</span> '
            f'<span class="xm-dir" title="{"higher" if info.higher_is_better else "lower"} means '
            f'a more similar pair">{arrow}</span><br>'
            f'<span class="xm-formula">{html.escape(info.formula)}</span></td>')


def _value_cell(key: str, pair_index: int, value: float, bold: bool,
                cell: chance_stages.ChanceCell | None = None) -> str:
    text = fmt(value)
    title = ""
    if isinstance(value, float) and math.isnan(value):
        title = f' title="{html.escape(UNDEFINED_WHY.get(metrics.METRICS[key].kind, "undefined"))}"'
    style = ' style="font-weight:600"' if bold else ""
    norm = ""
    if cell is not None and not math.isnan(cell.unrelated):
        n = chance.normalise(value, cell.unrelated, metrics.METRICS[key].higher_is_better)
        norm = (f'<br><span class="xm-norm" data-norm="{key}" title="chance-normalised against '
                f'the unrelated-image level: 0 = chance, 1 = perfect">norm {fmt(n, 2)}</span>')
    return (f'<td class="xm-num" data-metric="{key}" data-pair="{pair_index}"{title}{style}>'
            f"{text}{norm}</td>")


def _chance_cell(key: str, cell: chance_stages.ChanceCell) -> str:
    perm = "shuffled –" if math.isnan(cell.permutation) else f"shuffled {fmt(cell.permutation)}"
    tip = ("mean ± standard deviation of this metric between the maps of unrelated bundled "
           "images (same model and method); below: its expected value when the perturbed "
           "map's values are shuffled over the pixels"
           + (" (a Monte-Carlo estimate, not computed on large maps in the app: it would take "
              "seconds per move)" if math.isnan(cell.permutation) else ""))
    return (f'<td class="xm-chance" data-chance="{key}" title="{tip}">'
            f"{fmt(cell.unrelated)} ± {fmt(cell.unrelated_std, 2)}"
            f'<br><span class="xm-formula">{perm}</span></td>')


TABLE_CSS = """
<style>
div.xm-wrap {overflow-x: auto; max-width: 100%;}
table.xm-table {border-collapse: collapse; width: 100%; font-size: 0.86rem; table-layout: auto;}
table.xm-table th, table.xm-table td {padding: 0.2rem 0.3rem; vertical-align: middle;
  border-bottom: 1px solid rgba(128,128,128,0.25); border-left: none; border-right: none;}
table.xm-table th {font-weight: 600; text-align: left; white-space: nowrap;}
table.xm-table td.xm-num {text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap;}
table.xm-table .xm-formula {font-family: monospace; font-size: 0.7rem; opacity: 0.72;
  overflow-wrap: anywhere;}
table.xm-table td.xm-name {min-width: 8.5rem;}
table.xm-table .xm-dir {opacity: 0.6; font-size: 0.75rem;}
table.xm-table td.xm-fam {font-weight: 600; opacity: 0.85; white-space: nowrap;}
table.xm-table th.xm-lens, table.xm-table td.xm-lens-start {border-left: 2px solid rgba(128,128,128,0.45);}
table.xm-table td.xm-chance {text-align: right; white-space: nowrap; opacity: 0.8;
  font-variant-numeric: tabular-nums; font-size: 0.8rem;}
table.xm-table .xm-norm {font-size: 0.72rem; opacity: 0.7;}
table.xm-table td.xm-missing {vertical-align: top; max-width: 7rem; white-space: normal;
  font-size: 0.8rem; font-style: italic; opacity: 0.85; text-align: center;}
table.xm-table .xm-advice {font-size: 0.74rem; font-style: normal; opacity: 0.8;}
</style>
"""


def _missing_cell(col: Missing, n_rows: int, lens: bool) -> str:
    advice = "" if lens or not col.advice else (
        f'<br><span class="xm-advice">{html.escape(col.advice)}</span>')
    return (f'<td class="xm-missing" rowspan="{n_rows}" data-missing="{html.escape(col.label)}">'
            f"{NO_X_PRIME}{advice}</td>")


def metric_table_html(values: Sequence[dict[str, float]], labels: Sequence[str], *, k: int,
                      w: int, chance_cells: dict | None = None,
                      missing: Sequence[Missing] = ()) -> str:
    """Classical metrics and their LENS relaxations side by side, one value column per pair.

    ``values[i][key]`` is the score of pair ``i``; cells carry ``data-metric`` / ``data-pair``
    attributes (used by the tests) and the formula shows on hover over each metric name. With
    ``chance_cells`` (``{key: ChanceCell}``) each half gains a chance column and every score its
    chance-normalised value. ``missing`` columns come first; each half shows one cell across all
    rows saying that no label-preserving x′ was found (and the advice, in the classical half).
    """
    miss_heads = "".join(f'<th class="xm-pair xm-missing">{html.escape(c.label)}</th>'
                         for c in missing)
    pair_heads = miss_heads + "".join(f'<th class="xm-pair">{html.escape(lab)}</th>'
                                      for lab in labels)
    if chance_cells:
        pair_heads += ('<th class="xm-pair" title="unrelated images (mean ± sd); shuffled map">'
                       "chance</th>")
    extra = 1 if chance_cells else 0
    rows = [TABLE_CSS, '<div class="xm-wrap"><table class="xm-table">',
            f'<thead><tr><th></th><th>classical (k = {k})</th>{pair_heads}'
            f'<th class="xm-lens">LENS (w = {w})</th>{pair_heads}</tr></thead><tbody>']
    empty_pairs = "<td></td>" * (len(labels) + extra)
    fams = _families()
    total_rows = sum(max(len(c), len(lo), 1) for _, c, lo in fams)
    first_row = True
    for fam, classical, lens in fams:
        n_rows = max(len(classical), len(lens), 1)
        for r in range(n_rows):
            cells = []
            if r == 0:
                cells.append(f'<td class="xm-fam" rowspan="{n_rows}">{html.escape(fam)}</td>')
            for group, is_lens in ((classical, False), (lens, True)):
                miss = ("".join(_missing_cell(c, total_rows, is_lens) for c in missing)
                        if first_row else "")
                if r < len(group):
                    key = group[r]
                    name = _name_cell(key)
                    if is_lens:
                        name = name.replace('<td class="xm-name">',
                                            '<td class="xm-name xm-lens-start">', 1)
                    cells.append(name + miss)
                    cell = chance_cells.get(key) if chance_cells else None
                    cells += [_value_cell(key, i, values[i][key], bold=(i == 0), cell=cell)
                              for i in range(len(labels))]
                    if chance_cells:
                        cells.append(_chance_cell(key, chance_cells[key]))
                else:
                    cls = ' class="xm-lens-start"' if is_lens else ""
                    cells.append(f"<td{cls}></td>" + miss + empty_pairs)
            first_row = False
            rows.append("<tr>" + "".join(cells) + "</tr>")
    rows.append("</tbody></table></div>")
    return "".join(rows)


# --------------------------------------------------------------------------------------------
# The fragment
# --------------------------------------------------------------------------------------------

def _stacked(pairs: Sequence[Pair]) -> tuple[str, np.ndarray, np.ndarray]:
    key = "|".join(p.key for p in pairs)
    a = np.stack([p.a for p in pairs])
    b = np.stack([p.b for p in pairs])
    return key, a, b


def _per_pair(batched: dict[str, list[float]], n: int) -> list[dict[str, float]]:
    return [{key: float(v[i]) for key, v in batched.items()} for i in range(n)]


def chart_data(panel: PanelInput, k: int, w: int, axis: str, chosen: Sequence[str]):
    """``(xs, series, bands, x_title, marker)`` of the chart against ``axis`` ("w" or "k"):
    one series per (metric, pair) and, when the panel has a chance source, one chance band per
    metric (:func:`chance_stages.chart_bands`: unrelated-image mean ± 1 sd, the first pair's
    shuffled-map level as the dotted line)."""
    key, a, b = _stacked(panel.pairs)
    n = len(panel.pairs)
    if axis == "w":
        xs = list(CHART_W)
        points = [(k, wv) for wv in xs]
        title, marker = "w (neighbourhood radius, px)", w
    else:
        xs = stages.k_grid(panel.height * panel.width, k)
        points = [(kv, w) for kv in xs]
        title, marker = "k (pixels)", k
    # Against k: the chart's fixed k in one pass, cached across k moves; the current k comes
    # from the table's cache.
    together: tuple[int, ...] = ()
    fixed: dict[int, dict] = {}
    if axis == "k":
        together = stages.k_grid_base(panel.height * panel.width)
        fixed = dict(zip(together, stages.scores_over_k(key, a, b, together, w)))
    per_x = [_per_pair(fixed[kv] if kv in fixed else stages.scores(key, a, b, kv, wv), n)
             for kv, wv in points]
    series = []
    for metric in chosen:
        for i, pair in enumerate(panel.pairs):
            name = f"{metrics.METRICS[metric].name} · {pair.label}"
            series.append(dict(name=name, y=[row[i][metric] for row in per_x], group=metric,
                               dashed=i > 0))
            if n == 2:  # one legend entry a metric; the caption says which line is which
                series[-1]["legend"] = metrics.METRICS[metric].name if i == 0 else None
    bands = []
    if panel.chance_source is not None:
        first = panel.pairs[0]
        levels = chance_stages.chart_bands(*panel.chance_source, first.key, first.a, first.b,
                                           points, chosen, together=together)
        bands = [dict(group=metric, name=metrics.METRICS[metric].name, lo=levels[metric].lo,
                      hi=levels[metric].hi, line=levels[metric].permutation)
                 for metric in chosen]
    return xs, series, bands, title, marker


def _chart(panel: PanelInput, k: int, w: int, axis: str, chosen: Sequence[str]) -> None:
    xs, series, bands, title, marker = chart_data(panel, k, w, axis, chosen)
    fig = viz_charts.metric_lines(xs, series, x_title=title, marker_x=marker,
                           log_x=(axis == "k"), bands=bands)
    st.plotly_chart(fig, width="stretch", config={"displayModeBar": False},
                    key=keys.widget(panel.key, "chart", axis))
    if len(panel.pairs) == 2:
        st.caption(f"Solid lines: {panel.pairs[0].label}; dashed: {panel.pairs[1].label}.")
    if bands:
        st.caption("Shaded: each metric's chance level, the mean ± 1 sd of the same metric "
                   "between the maps of unrelated bundled images (same model and method); "
                   f"dotted: its expected value when the {panel.pairs[0].label} map's values are "
                   "shuffled over the pixels (on large maps only where it has a closed form). "
                   "A line inside its band is no better than chance.")


def _notes(panel: PanelInput, values: list[dict[str, float]]) -> None:
    notes = []
    for pair, vals in zip(panel.pairs, values):
        undefined = [metrics.METRICS[key].name for key, v in vals.items() if math.isnan(v)]
        if undefined:
            kinds = {metrics.METRICS[key].kind for key, v in vals.items() if math.isnan(v)}
            why = "; ".join(UNDEFINED_WHY[kind] for kind in sorted(kinds))
            notes.append(f"**{pair.label}**: {', '.join(undefined)} {why}.")
        if pair.note:
            notes.append(f"**{pair.label}**: {pair.note}")
    for text in notes:
        st.caption(text)


def _set_warnings(panel: PanelInput, k: int, w: int) -> list[str]:
    """Mostly zero-valued top-k / diverse sets, and diverse sets smaller than k."""
    out = metrics.set_warnings(torch.from_numpy(panel.pairs[0].a), k, w, name="the original map")
    for p in panel.pairs:
        out += metrics.set_warnings(torch.from_numpy(p.b), k, w, name=f"the {p.label} map")
    return list(dict.fromkeys(out))


def _diverse_note(m: dict[str, np.ndarray], k: int, shown: Pair) -> None:
    found_a = int(m["orig_diverse_count"])
    found_b = int(m["adv_diverse_count"])
    if found_a < k or found_b < k:
        st.caption(
            f"Only {found_a} (original) and {found_b} ({shown.label}) pixels of k = {k} can be "
            "picked at least w+1 pixels apart: the image is exhausted first. The diverse "
            "scores still divide by k.")


@st.fragment
def analysis(panel: PanelInput) -> None:
    """k / w sliders, the metric table and the views; reruns alone when they change."""
    ds, h, wd = panel.dataset, panel.height, panel.width
    k_key, w_key = keys.k(ds), keys.w(ds)
    c1, c2, c3 = st.columns([3, 2, 2], vertical_alignment="bottom")
    with c1:
        k = kcontrol.k_slider(ds, h * wd, k_key)
    with c2:
        w = st.slider("w (neighbourhood radius, px)", 0, W_MAX, key=w_key,
                      help="LENS counts a top-k pixel as kept when it lies in the "
                           "(2w+1)×(2w+1) square around a top-k pixel of the other map.")
    labels = [p.label for p in panel.pairs]
    with c3:
        if len(panel.pairs) > 1:
            shown_label = st.radio("Pictures show", labels, key=keys.widget(panel.key, "shown"),
                                   horizontal=True)
        else:
            shown_label = labels[0]
            st.caption(f"Pictures show: {shown_label}")
    try:
        k = metrics.validate_k(int(k), h, wd)
        w = metrics.validate_w(int(w))
    except ValueError as exc:
        st.error(f"{exc}")
        return
    if panel.sync_url:
        if st.query_params.get("k") != str(k) or st.query_params.get("w") != str(w):
            st.query_params["k"] = str(k)
            st.query_params["w"] = str(w)

    key, a, b = _stacked(panel.pairs)
    values = _per_pair(stages.scores(key, a, b, k, w), len(panel.pairs))
    cells = None
    if panel.chance_source is not None:
        first = panel.pairs[0]
        cells = chance_stages.table_chance(*panel.chance_source, first.key, first.a, first.b, k, w)
    if panel.on_scores is not None:
        panel.on_scores(k, w, values, cells)
    box = st.expander("Every score", expanded=False) if panel.compact else st.container()
    box.markdown(metric_table_html(values, labels, k=k, w=w, chance_cells=cells,
                                   missing=panel.missing),
                 unsafe_allow_html=True)
    if cells is not None:
        n_maps = chance_stages.unrelated_count(panel.chance_source[0][0])
        box.caption(f"Chance: the same metric between the maps of {n_maps} "
                    "unrelated bundled images (mean ± standard deviation), and for the "
                    f"{panel.pairs[0].label} map with its values shuffled over the pixels. 'norm' "
                    "is (score − chance) / (1 − chance) against the unrelated images: 0 is chance "
                    "level, 1 a perfect match (for the centre shift, 1 − shift / chance).")
    for text in _set_warnings(panel, k, w):
        st.caption(f":material/warning: {text}")
    # Rank correlations depend on w only: have them ready for the next w moves.
    ahead = prefetch_ws(w)
    background.prefetch_without_k(key, a, b, ahead)
    if panel.chance_source is not None:  # and so do the LENS correlations' chance levels
        chance_stages.prefetch_lens(*panel.chance_source, panel.pairs[0].key, panel.pairs[0].a,
                                    panel.pairs[0].b, ahead, unrelated_ws=range(W_MAX + 1))

    shown = panel.pairs[labels.index(shown_label)]
    _notes(panel, values)
    explain.metrics_help()

    tab_names = ["Neighbourhood overlap", "Diverse pixels", "Scores vs w", "Scores vs k"]
    if panel.histories:
        tab_names.append("Attack history")
    tabs = st.tabs(tab_names, key=keys.widget(panel.key, "tabs"), on_change="rerun")
    with tabs[0]:
        if tabs[0].open:
            show_hood = st.toggle("Show the neighbourhood N_w translucent", value=True,
                                  key=keys.widget(panel.key, "hood"))
            m = stages.masks(shown.key, shown.a, shown.b, k, w)
            st.plotly_chart(viz.overlap_figure(shown.a, shown.b, m, k=k, w=w,
                                               show_neighbourhood=show_hood),
                            width="stretch", config={"displayModeBar": False},
                            key=keys.widget(panel.key, "overlap"))
            st.caption(
                "Left: the original top-k pixels, classed by where the other map's top-k lies: "
                "exact match, within w of one of its pixels, or lost. Right: the perturbed "
                "map's top-k, classed against the original's: exact, within w, or new. "
                "Exact + within, divided by k, is the LENS score in each panel's title.")
    with tabs[1]:
        if tabs[1].open:
            squares = st.toggle("Show exclusion squares", value=False,
                                key=keys.widget(panel.key, "squares"), disabled=(w == 0))
            m = stages.masks(shown.key, shown.a, shown.b, k, w)
            _diverse_note(m, k, shown)
            st.plotly_chart(viz.diverse_figure(shown.a, shown.b, m, k=k, w=w,
                                               show_squares=squares),
                            width="stretch", config={"displayModeBar": False},
                            key=keys.widget(panel.key, "diverse"))
            st.caption(
                "Diverse top-k walks the pixels from the top and keeps a pixel only when it is "
                "outside the (2w+1)×(2w+1) square of every pixel kept so far; at w = 0 it is "
                "the plain top-k.")
    for i, axis in ((2, "w"), (3, "k")):
        with tabs[i]:
            if tabs[i].open:
                chosen = st.multiselect(
                    "Metrics", list(metrics.METRIC_KEYS), default=list(CHART_DEFAULT),
                    format_func=lambda key: metrics.METRICS[key].name,
                    key=keys.widget(panel.key, "chartmetrics", axis))
                if chosen:
                    _chart(panel, k, w, axis, chosen)
                if len(panel.pairs) > 1:
                    st.caption(f"Solid: {panel.pairs[0].label}; dashed: "
                               + ", ".join(p.label for p in panel.pairs[1:]) + ".")
    if panel.histories:
        with tabs[-1]:
            if tabs[-1].open:
                st.plotly_chart(viz_charts.history_chart(panel.histories,
                                                  measure=metrics.METRICS[panel.measure].name),
                                width="stretch", config={"displayModeBar": False},
                                key=keys.widget(panel.key, "history"))
                st.caption("The selection measure of the best label-preserving iterate found "
                           "so far, per step (step 0 is the unperturbed input).")
    if panel.export is not None:
        _export_row(panel, k, w, labels, values, shown)


def _export_row(panel: PanelInput, k: int, w: int, labels: list[str],
                values: list[dict[str, float]], shown: Pair) -> None:
    ctx = panel.export
    stem = f"{ctx.config.get('dataset')}-{ctx.config.get('model')}-{ctx.config.get('method')}-" \
           f"{ctx.config.get('attack')}-k{k}-w{w}"
    shown_values = values[labels.index(shown.label)]

    def json_bytes() -> str:
        return export.view_json(ctx, k=k, w=w, labels=labels, values=values)

    def figure(fmt_name: str):
        def make() -> bytes:  # runs on download, in another thread: no Streamlit calls
            m = {key: v.numpy() for key, v in metrics.overlap_masks(
                torch.from_numpy(shown.a), torch.from_numpy(shown.b), k, w).items()}
            return export.panel_bytes(ctx, label=shown.label, a=shown.a, b=shown.b, masks=m,
                                      k=k, w=w, values=shown_values, fmt=fmt_name)
        return make

    st.markdown("**Export and share**")
    c1, c2, c3 = st.columns(3)
    c1.download_button("JSON: configuration + scores", data=json_bytes,
                       file_name=f"{stem}.json", mime="application/json", on_click="ignore",
                       icon=":material/data_object:", key=keys.widget(panel.key, "dl", "json"),
                       width="stretch")
    c2.download_button(f"Figure PNG ({shown.label})", data=figure("png"),
                       file_name=f"{stem}.png", mime="image/png", on_click="ignore",
                       icon=":material/image:", key=keys.widget(panel.key, "dl", "png"),
                       width="stretch")
    c3.download_button(f"Figure PDF ({shown.label})", data=figure("pdf"),
                       file_name=f"{stem}.pdf", mime="application/pdf", on_click="ignore",
                       icon=":material/picture_as_pdf:", key=keys.widget(panel.key, "dl", "pdf"),
                       width="stretch")
    st.caption("The page address reproduces this view (dataset, model, image, method, attack "
               "and its parameters, seed, k, w): copy it from the address bar to share it. "
               "Uploaded images are not part of links.")
