"""The explorer's pictures: the image and map panels, their colour scale, the display controls
(overlay, full colour range, smoothing, presenter mode), the larger view with a linked zoom, and
the one-line statement above them.

Display only: nothing here changes a score. The panels are one figure each in a row of columns
(``xp-panels``), so that ``common.PAGE_CSS`` can stack them on a phone; the colour bar states
the clip of the shared scale.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import streamlit as st

from explorer import attributions, metrics, models, viz

from . import flow, headline, keys, link
from .common import fmt

__all__ = ["DisplayChoice", "display_controls", "headline_writer", "panels", "presenter_on",
           "zoom_view"]

SMOOTH_STEP = 0.5
PANEL_CONFIG = {"displayModeBar": False}
ZOOM_CONFIG = {"displayModeBar": True, "displaylogo": False,
               "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"]}


@dataclass(frozen=True)
class DisplayChoice:
    """How the pictures are drawn (never what is computed)."""

    overlay: bool
    full_range: bool
    smooth: float  # display smoothing σ in pixels, 0 = none
    present: bool

    @property
    def clip_percentile(self) -> float | None:
        return None if self.full_range else viz.DEFAULT_CLIP_PERCENTILE


def _init(key: str, value) -> None:
    if key not in st.session_state:
        st.session_state[key] = value


def presenter_on() -> bool:
    """Whether presenter mode is on (its switch is drawn by :func:`display_controls`)."""
    _init(keys.present(), False)
    return bool(st.session_state[keys.present()])


def display_controls(present: bool) -> DisplayChoice:
    """One row: overlay, full colour range, display smoothing, presenter mode (on the page:
    the sidebar is hidden in that mode)."""
    with st.container(key="xp-display"):
        return _display_row(present)


def _display_row(present: bool) -> DisplayChoice:
    c1, c2, c3, c4 = st.columns([3, 3, 4, 3], vertical_alignment="center")
    overlay = c1.toggle("Overlay on images", key="exp.overlay", value=False,
                        help="Draw each map over its image, the image showing through.")
    full = c2.toggle("Full colour range", key="exp.fullrange", value=False,
                     help="No clipping. By default the colour scale stops at the 99th percentile of both "
                          "maps' values, so that a few very bright pixels do not turn the rest "
                          "black. Display only: the scores never see it.")
    _init(keys.smooth(), 0.0)
    smooth = c3.slider("Display smoothing σ (px)", 0.0, link.SMOOTH_MAX, step=SMOOTH_STEP,
                       key=keys.smooth(), format="%.1f",
                       help="Blurs the maps on screen with a Gaussian of this standard "
                            "deviation, so that speckled 224×224 maps can be compared by eye. "
                            "Display only: every score, top-k set and hover value uses the "
                            "unsmoothed maps.")
    c4.toggle("Presenter mode", key=keys.present(),
              help="Large type, no sidebar, pictures across the screen and only the headline "
                   "scores, for a projector. The page address keeps it (present=1).")
    return DisplayChoice(bool(overlay), bool(full), float(smooth), present)


def _title(text: str) -> None:
    st.markdown(f'<div class="xp-title">{html.escape(text)}</div>', unsafe_allow_html=True)


def panels(image: np.ndarray, image_adv: np.ndarray | None, map_orig: np.ndarray,
           map_adv: np.ndarray | None, rank_orig: np.ndarray, rank_adv: np.ndarray | None,
           choice: DisplayChoice, region=None) -> viz.MapPanels:
    """The row of panels and, under the maps, the colour bar with what its scale is;
    ``region``, the targeted attack's region, outlined on the image and the maps."""
    mp = viz.map_panels(image, image_adv, map_orig, map_adv, rank_orig, rank_adv,
                        overlay=0.45 if choice.overlay else 0.0,
                        clip_percentile=choice.clip_percentile, smooth_sigma=choice.smooth,
                        font_size=20 if choice.present else 12, region=region)
    n = len(mp.figures)
    with st.container(key="xp-panels"):
        cols = st.columns([1] * n + ([3] if n < 5 else []), gap="small")
        for i, (title, fig) in enumerate(zip(mp.titles, mp.figures)):
            with cols[i]:
                _title(title)
                with st.container(key=f"xp-p{i}"):
                    st.plotly_chart(fig, width="stretch", height="stretch", config=PANEL_CONFIG,
                                    key=f"exp.panel.{i}")
        if n < 5:
            with cols[-1]:
                _colour_bar(mp, choice)
                _scale_caption(mp, choice)
    if n == 5:
        with st.container(key="xp-scale"):  # on a phone the colour bar comes first
            left, right = st.columns([3, 2], vertical_alignment="top")
            with right:
                _colour_bar(mp, choice)
            with left:
                _scale_caption(mp, choice)
    return mp


def _colour_bar(mp: viz.MapPanels, choice: DisplayChoice) -> None:
    with st.container(key="xp-colourbar"):
        st.plotly_chart(mp.colour_bar, width="stretch", config=PANEL_CONFIG,
                        key="exp.colourbar")


def _scale_caption(mp: viz.MapPanels, choice: DisplayChoice) -> None:
    pert = (f"Perturbation shown as 0.5 + {mp.factor:.3g}·(x′ − x) (mid-grey = unchanged). "
            if mp.factor else "")
    pair = mp.factor is not None
    top = "the larger maximum" if pair else "the maximum"
    their = "their joint values" if pair else "its values"
    scale = (f"runs from 0 to {top}" if mp.scale.percentile is None else
             f"is clipped at a high percentile of {their} so that the structure stays visible "
             "(the colour bar says where)")
    smooth = (f" Smoothed on screen with σ = {choice.smooth:g} px; the scores use the raw maps."
              if choice.smooth > 0 else "")
    st.caption(pert + ("Both maps share one colour scale, which " if pair else
                       "The map's colour scale ") + f"{scale}; hover a map pixel for its "
               f"exact value and rank.{smooth}")


def zoom_view(image: np.ndarray, image_adv: np.ndarray | None, map_orig: np.ndarray,
              map_adv: np.ndarray | None, rank_orig: np.ndarray, rank_adv: np.ndarray | None,
              perturbed: str | None, choice: DisplayChoice) -> str | None:
    """An expander with a larger view of one map or of the pair with a linked zoom. Returns
    what it shows when open (one of ``link.ZOOM_VIEWS``), None when closed."""
    _init(keys.zoom_open(), False)
    box = st.expander("Larger view of the maps, with a linked zoom", key="exp.zoombox",
                      expanded=bool(st.session_state[keys.zoom_open()]), on_change="rerun",
                      icon=":material/zoom_in:")
    with box:
        if not box.open:
            return None
        views = ["original"] if map_adv is None else list(link.ZOOM_VIEWS)
        names = {"pair": f"original and {perturbed} maps (linked)", "original": "original map",
                 "perturbed": f"{perturbed} map"}
        _init(keys.zoom(), views[0])
        if st.session_state[keys.zoom()] not in views:
            st.session_state[keys.zoom()] = views[0]
        which = st.radio("Show", views, key=keys.zoom(), horizontal=True,
                         format_func=names.__getitem__)
        if which == "pair":
            fig = viz.map_zoom(map_orig, map_adv, rank_orig=rank_orig, rank_adv=rank_adv,
                               image=image, image_adv=image_adv,
                               titles=("original map", f"{perturbed} map"),
                               clip_percentile=choice.clip_percentile, smooth_sigma=choice.smooth,
                               overlay=0.45 if choice.overlay else 0.0, height=540)
        else:
            adv = which == "perturbed"
            fig = viz.map_zoom(map_adv if adv else map_orig,
                               rank_orig=rank_adv if adv else rank_orig,
                               image=image_adv if adv else image,
                               titles=(f"{perturbed} map" if adv else "original map",),
                               clip_percentile=choice.clip_percentile, smooth_sigma=choice.smooth,
                               overlay=0.45 if choice.overlay else 0.0, height=720)
        st.plotly_chart(fig, width="stretch", config=ZOOM_CONFIG, key="exp.zoom")
        st.caption("Drag a box to zoom in, double-click to zoom out; with the pair, both maps "
                   "always show the same region. Colour scale, smoothing and overlay as above.")
        return which


# ------------------------------------------------------------------------------- statement

def _model_label(dataset: str, model: str) -> str:
    for m in models.models_for(dataset):
        if m.name == model:
            return m.label or m.name
    return model


def headline_writer(slot, tiles_slot, cfg, orig, res
                    ) -> Callable[[int, int, list, dict | None], None]:
    """The ``on_scores`` hook of the k / w panel: on every run of the panel, writes the
    one-line statement into ``slot`` (a placeholder above the pictures) and, when
    ``tiles_slot`` is given (presenter mode), the headline scores with their chance levels
    into it."""
    ds = cfg.dataset
    base = dict(method=attributions.METHODS[cfg.method].name,
                predicted=flow.class_name(ds, orig.label), model=_model_label(ds, cfg.model))
    if res is not None:
        base.update(pair="attack", found=bool(res.found), label_kept=bool(res.label_kept),
                    attacked=flow.class_name(ds, res.label_adv))
    else:
        base.update(pair="random sign")

    def write(k: int, w: int, values: list, cells: dict | None) -> None:
        first = values[0]
        chance = cells[headline.HEADLINE_METRIC].unrelated if cells else math.nan
        line = headline.statement(headline.Headline(
            score=first[headline.HEADLINE_METRIC], chance=chance, k=k, **base))
        slot.markdown(f'<div class="xp-statement">{html.escape(line)}</div>',
                      unsafe_allow_html=True)
        if tiles_slot is not None:
            tiles_slot.markdown(_tiles(first, cells, k, w), unsafe_allow_html=True)

    return write


PRESENTER_METRICS = ("topk_intersection", "lens_recall", "spearman")


def _tiles(values: dict, cells: dict | None, k: int, w: int) -> str:
    out = ['<div class="xp-tiles">']
    for key in PRESENTER_METRICS:
        if key not in values:
            continue
        name = metrics.METRICS[key].name
        chance = cells.get(key) if cells else None
        chance_text = (f"chance {fmt(chance.unrelated, 2)}" if chance is not None
                       and not math.isnan(chance.unrelated) else "chance not computed")
        out.append(f'<div class="xp-tile" data-metric="{key}">'
                   f'<div class="xp-tile-name">{html.escape(name)}</div>'
                   f'<div class="xp-tile-value">{fmt(values[key], 2)}</div>'
                   f'<div class="xp-tile-chance">{chance_text} · k = {k}, w = {w}</div></div>')
    out.append("</div>")
    return "".join(out)
