"""Arrays -> figures (plotly for the page; matplotlib for exported files in explorer.viz_export).

Rendering only: every number drawn here is computed elsewhere (maps by
``explorer.attributions``, masks, ranks and scores by ``explorer.metrics``) and passed in as
numpy arrays. Shapes: an image is ``(C, H, W)`` in ``[0, 1]``; a map or mask is ``(H, W)``.

Colours follow the Okabe-Ito palette (readable with the common colour-vision deficiencies) and
work on light and dark backgrounds.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .viz_export import export_panel, figure_bytes
from .viz_maps import (DEFAULT_CLIP_PERCENTILE, MapScale, expand_markers, map_scale,
                       marker_radius, region_shapes, smooth_for_display)

__all__ = [
    "EXACT", "WITHIN", "MISSED", "NEIGHBOURHOOD", "TOPK", "DIVERSE", "SQUARE", "MAP_CMAP",
    "DEFAULT_CLIP_PERCENTILE", "MapScale", "map_scale", "smooth_for_display",
    "marker_radius", "rgb_string", "to_rgb", "perturbation_rgb", "composite", "png_data_uri",
    "side_by_side", "map_zoom", "MapPanels", "map_panels", "colour_bar", "overlap_figure", "diverse_figure",
    "export_panel", "figure_bytes",
]

# Category colours (Okabe-Ito).
EXACT = "#009E73"  # bluish green: the pixel is in both top-k sets
WITHIN = "#E69F00"  # orange: not in the other top-k, but within w of one of its pixels
MISSED = "#882255"  # wine: lost (original) / new (attacked)
NEIGHBOURHOOD = "rgba(86, 180, 233, 0.35)"  # translucent sky blue: N_w of the other top-k
NEIGHBOURHOOD_LEGEND = "rgb(187, 220, 239)"  # how it looks over an empty (light grey) pixel
TOPK = "#56B4E9"  # sky blue: a top-k pixel (diverse view)
DIVERSE = "#CC79A7"  # reddish purple: a diverse top-k pick
SQUARE = "#F0E442"  # yellow: exclusion square around a diverse pick
MAP_CMAP = "inferno"

_NAN = float("nan")


def rgb_string(colour: str) -> str:
    """``#rrggbb`` -> ``rgb(r, g, b)``; other strings unchanged.

    The plotly.js bundled with Streamlit 1.67 draws some hex stops wrongly (Inferno's first stop
    ``#000004`` comes out pink), so every colour handed to plotly goes as ``rgb()``.
    """
    if colour.startswith("#") and len(colour) == 7:
        r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
        return f"rgb({r}, {g}, {b})"
    return colour


def _map_colorscale() -> list:
    from plotly.colors import sequential

    stops = sequential.Inferno
    return [[i / (len(stops) - 1), rgb_string(c)] for i, c in enumerate(stops)]


# --------------------------------------------------------------------------------------------
# Array helpers (display conversions only)
# --------------------------------------------------------------------------------------------

def to_rgb(image: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` in [0, 1] (C = 1 or 3) -> ``(H, W, 3)`` uint8 for display."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise ValueError(f"image must have shape (C, H, W) with C = 1 or 3; got {image.shape}")
    hwc = np.clip(image, 0.0, 1.0).transpose(1, 2, 0)
    if hwc.shape[2] == 1:
        hwc = np.repeat(hwc, 3, axis=2)
    return (hwc * 255.0 + 0.5).astype(np.uint8)


def perturbation_rgb(x: np.ndarray, x_adv: np.ndarray) -> tuple[np.ndarray, float]:
    """Amplified perturbation for display, and the amplification factor.

    ``delta = x_adv - x`` is shown as ``0.5 + factor * delta`` (mid-grey = unchanged), with
    ``factor = 0.5 / max|delta|`` so the largest change reaches black or white. An unchanged
    image gives a flat grey picture and factor 0.
    """
    delta = np.asarray(x_adv, dtype=np.float32) - np.asarray(x, dtype=np.float32)
    peak = float(np.abs(delta).max()) if delta.size else 0.0
    factor = 0.5 / peak if peak > 0 else 0.0
    return to_rgb(0.5 + factor * delta), factor


def _axis_common() -> dict:
    return dict(showticklabels=False, showgrid=False, zeroline=False, ticks="")


def _grid_layout(titles: Sequence[str], height: int, *, spacing: float = 0.02,
                 legend: bool = False, bottom: int = 4, top: int = 28) -> dict:
    """Layout dict of one row of square image panels (x/x2/.., y/y2/..) with titles.

    Built as plain dicts (plotly's make_subplots + add_trace validate at every step and cost
    ~25 ms per figure; one Figure(data, layout) call costs ~2 ms).
    """
    n = len(titles)
    width = (1.0 - spacing * (n - 1)) / n
    layout: dict = dict(
        height=height, margin=dict(l=4, r=4, t=top, b=bottom),
        paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
        showlegend=legend, dragmode=False, annotations=[])
    for i, title in enumerate(titles):
        lo = i * (width + spacing)
        suffix = "" if i == 0 else str(i + 1)
        layout[f"xaxis{suffix}"] = dict(domain=[lo, lo + width], constrain="domain",
                                        anchor=f"y{suffix}", **_axis_common())
        layout[f"yaxis{suffix}"] = dict(domain=[0.0, 1.0], autorange="reversed",
                                        scaleanchor=f"x{suffix}", scaleratio=1,
                                        constrain="domain", anchor=f"x{suffix}",
                                        **_axis_common())
        layout["annotations"].append(dict(
            text=title, x=lo + width / 2, y=1.0, xref="paper", yref="paper", showarrow=False,
            xanchor="center", yanchor="bottom", font=dict(size=12)))
    return layout


def _on(trace: dict, col: int) -> dict:
    """Place a trace dict on panel ``col`` (1-based)."""
    suffix = "" if col == 1 else str(col)
    trace["xaxis"], trace["yaxis"] = f"x{suffix}", f"y{suffix}"
    return trace


def _figure(data: list[dict], layout: dict):
    import plotly.graph_objects as go

    return go.Figure(data=data, layout=layout)


def _rank_hover(name: str) -> str:
    return (f"<b>{name}</b><br>row %{{y}}, col %{{x}}<br>value %{{z:.4g}}"
            "<br>rank %{customdata} (1 = top)<extra></extra>")


# --------------------------------------------------------------------------------------------
# Plotly figures for the page
# --------------------------------------------------------------------------------------------

def _map_traces(m: np.ndarray, rank: np.ndarray | None, name: str, col: int, *,
                under: np.ndarray | None, overlay: float, smooth_sigma: float) -> list[dict]:
    """Heatmap trace (plus the image under it when ``overlay`` > 0) of one map on panel ``col``.

    Hover shows the raw value and rank of the pixel even when the display is smoothed."""
    shown = smooth_for_display(m, smooth_sigma) if smooth_sigma > 0 else \
        np.asarray(m, dtype=np.float32)
    n_pixels = shown.size
    rank_dtype = np.uint16 if n_pixels < 2 ** 16 else np.int32
    trace = dict(type="heatmap", z=shown, coloraxis="coloraxis",
                 opacity=(1.0 - overlay) if overlay > 0 else 1.0)
    if rank is not None and smooth_sigma > 0:
        trace["customdata"] = np.stack([np.asarray(rank, dtype=np.float32) + 1,
                                        np.asarray(m, dtype=np.float32)], axis=-1)
        trace["hovertemplate"] = (f"<b>{name}</b><br>row %{{y}}, col %{{x}}<br>value "
                                  "%{customdata[1]:.4g} (shown smoothed: %{z:.4g})"
                                  "<br>rank %{customdata[0]} (1 = top)<extra></extra>")
    elif rank is not None:
        trace["customdata"] = (np.asarray(rank) + 1).astype(rank_dtype)
        trace["hovertemplate"] = _rank_hover(name)
    else:
        trace["hovertemplate"] = (f"<b>{name}</b><br>row %{{y}}, col %{{x}}<br>value %{{z:.4g}}"
                                  "<extra></extra>")
    out = []
    if overlay > 0 and under is not None:
        out.append(_on(dict(type="image", source=png_data_uri(under), hoverinfo="skip"), col))
    out.append(_on(trace, col))
    return out


def _coloraxis(scale: MapScale, smooth_sigma: float) -> dict:
    title = scale.label("<br>")
    if smooth_sigma > 0:
        title += f"<br>display smoothed (σ = {smooth_sigma:g} px)"
    return dict(colorscale=_map_colorscale(), cmin=scale.cmin, cmax=scale.cmax,
                colorbar=dict(title=dict(text=title, side="right", font=dict(size=11)),
                              thickness=10, len=0.9, x=1.0, xpad=4))


def side_by_side(
    image: np.ndarray,
    image_adv: np.ndarray | None,
    map_orig: np.ndarray,
    map_adv: np.ndarray | None,
    rank_orig: np.ndarray,
    rank_adv: np.ndarray | None,
    *,
    titles: Sequence[str] = ("original", "attacked", "perturbation", "original map", "attacked map"),
    overlay: float = 0.0,
    height: int = 250,
    compact: bool = False,
    clip_percentile: float | None = DEFAULT_CLIP_PERCENTILE,
    smooth_sigma: float = 0.0,
    region: Sequence[int] | None = None,
):
    """Original image, attacked image, amplified perturbation, original and attacked maps.

    Both maps share one colour scale with one colour bar: from 0 to ``clip_percentile`` of the
    two maps' joint values (default the 99th; values above it are drawn in the top colour), or
    to the larger maximum when ``clip_percentile`` is None; the colour bar title states which
    (:func:`explorer.viz_maps.map_scale`). ``smooth_sigma`` > 0 blurs the maps for display only
    (hover still shows the raw value). Hovering a map pixel shows its value and rank
    (``rank_*`` are 0-based rank positions from ``explorer.metrics.rank_positions``; shown
    1-based). ``overlay`` in [0, 1): when > 0 each map is drawn over its image with that much
    opacity of the image showing through. Without an attacked input (``image_adv is None``),
    only the original image and map are drawn. ``compact`` leaves out the attacked image and
    the perturbation (image, map, attacked map). ``region`` (r0, r1, c0, c1), the targeted
    attack's rectangle, is outlined on the original image and on the maps
    (:func:`explorer.viz_maps.region_shapes`). Returns ``(figure, amplification factor or
    None)``.
    """
    has_adv = image_adv is not None and map_adv is not None
    if has_adv and compact:
        factor = None
        panel_titles = [titles[0], titles[3], titles[4]]
    elif has_adv:
        pert, factor = perturbation_rgb(image, image_adv)
        panel_titles = list(titles)
        panel_titles[2] = f"{titles[2]} (×{factor:.3g})" if factor else f"{titles[2]} (none)"
    else:
        factor = None
        panel_titles = [titles[0], titles[3]]
    scale = map_scale(map_orig, map_adv if has_adv else None, percentile=clip_percentile)
    rgb = to_rgb(image)
    data = [_on(_image_trace(rgb, "original")[0], 1)]
    col = 1
    if has_adv and not compact:
        col += 1
        data.append(_on(_image_trace(to_rgb(image_adv), "attacked")[0], col))
        col += 1
        data.append(_on(_image_trace(pert, "perturbation")[0], col))
    maps = [(map_orig, rank_orig, rgb, panel_titles[-2 if has_adv else -1])]
    if has_adv:
        maps.append((map_adv, rank_adv, to_rgb(image_adv), panel_titles[-1]))
    map_cols = []
    for m, r, under, name in maps:
        col += 1
        map_cols.append(col)
        data += _map_traces(m, r, name, col, under=under, overlay=overlay,
                            smooth_sigma=smooth_sigma)
    layout = _grid_layout(panel_titles, height)
    layout["coloraxis"] = _coloraxis(scale, smooth_sigma)
    layout["shapes"] = region_shapes(region, [1, *map_cols])
    return _figure(data, layout), factor


def map_zoom(
    map_orig: np.ndarray,
    map_adv: np.ndarray | None = None,
    *,
    rank_orig: np.ndarray | None = None,
    rank_adv: np.ndarray | None = None,
    image: np.ndarray | None = None,
    image_adv: np.ndarray | None = None,
    titles: Sequence[str] = ("original map", "attacked map"),
    clip_percentile: float | None = DEFAULT_CLIP_PERCENTILE,
    smooth_sigma: float = 0.0,
    overlay: float = 0.0,
    height: int = 560,
):
    """A large, zoomable view of one map, or of the pair with a linked zoom.

    Drag a box to zoom, double-click to reset; with two maps both panels always show the same
    region (matched axes). Colour scale, smoothing, hover and ``overlay`` (needs ``image`` /
    ``image_adv``) as in :func:`side_by_side`.
    """
    pair = map_adv is not None
    names = list(titles[:2]) if pair else [titles[0]]
    # the scale of the maps as drawn (as in map_panels): smoothing lowers the peaks
    scale = map_scale(*(None if m is None else
                        smooth_for_display(m, smooth_sigma) if smooth_sigma > 0 else m
                        for m in (map_orig, map_adv)), percentile=clip_percentile)
    data = _map_traces(map_orig, rank_orig, names[0], 1,
                       under=None if image is None else to_rgb(image), overlay=overlay,
                       smooth_sigma=smooth_sigma)
    if pair:
        under = image_adv if image_adv is not None else image
        data += _map_traces(map_adv, rank_adv, names[1], 2,
                            under=None if under is None else to_rgb(under), overlay=overlay,
                            smooth_sigma=smooth_sigma)
    layout = _grid_layout(names, height, spacing=0.03)
    layout["dragmode"] = "zoom"
    if pair:
        # Linked zoom: panel 2's axes follow panel 1's (its aspect comes with them).
        layout["xaxis2"]["matches"] = "x"
        layout["yaxis2"]["matches"] = "y"
        del layout["yaxis2"]["scaleanchor"], layout["yaxis2"]["scaleratio"]
    layout["coloraxis"] = _coloraxis(scale, smooth_sigma)
    return _figure(data, layout)


@dataclass(frozen=True, eq=False)
class MapPanels:
    """The explorer's image and map panels as separate square figures (the page lays them out,
    so that they can wrap onto several rows on a narrow screen). ``titles[i]`` names
    ``figures[i]``; ``colour_bar`` is the maps' shared colour scale; ``factor`` the perturbation's
    amplification (None without an attacked input)."""

    titles: tuple[str, ...]
    figures: tuple
    colour_bar: object
    scale: MapScale
    factor: float | None


def _panel_layout() -> dict:
    """One square image panel filling its figure: no margins, no title (the page titles it)."""
    return dict(margin=dict(l=0, r=0, t=0, b=0), paper_bgcolor="rgba(0,0,0,0)",
                plot_bgcolor="rgba(0,0,0,0)", showlegend=False, dragmode=False,
                xaxis=dict(constrain="domain", **_axis_common()),
                yaxis=dict(autorange="reversed", scaleanchor="x", scaleratio=1,
                           constrain="domain", **_axis_common()))


def map_panels(
    image: np.ndarray,
    image_adv: np.ndarray | None,
    map_orig: np.ndarray,
    map_adv: np.ndarray | None,
    rank_orig: np.ndarray,
    rank_adv: np.ndarray | None,
    *,
    titles: Sequence[str] = ("original", "attacked", "perturbation", "original map", "attacked map"),
    overlay: float = 0.0,
    clip_percentile: float | None = DEFAULT_CLIP_PERCENTILE,
    smooth_sigma: float = 0.0,
    font_size: int = 12,
    region: Sequence[int] | None = None,
) -> MapPanels:
    """The panels of :func:`side_by_side`, one figure each, with one shared colour scale.

    The scale is :func:`explorer.viz_maps.map_scale` of the maps as drawn (smoothed when
    ``smooth_sigma`` > 0, display only: hover shows each pixel's raw value and rank). Without an
    attacked input only the original image and map are drawn. ``region`` (r0, r1, c0, c1), the
    targeted attack's region, is outlined on the original image and on the maps.
    """
    has_adv = image_adv is not None and map_adv is not None
    shown = [smooth_for_display(m, smooth_sigma) if smooth_sigma > 0 else m
             for m in ((map_orig, map_adv) if has_adv else (map_orig,))]
    scale = map_scale(*shown, percentile=clip_percentile)
    rgb = to_rgb(image)
    names = [titles[0]]
    traces = [_image_trace(rgb, titles[0])]
    factor = None
    if has_adv:
        pert, factor = perturbation_rgb(image, image_adv)
        adv_rgb = to_rgb(image_adv)
        names += [titles[1], f"{titles[2]} (×{factor:.3g})" if factor else f"{titles[2]} (none)"]
        traces += [_image_trace(adv_rgb, titles[1]), _image_trace(pert, titles[2])]
    maps = [(map_orig, rank_orig, rgb, titles[3])]
    if has_adv:
        maps.append((map_adv, rank_adv, adv_rgb, titles[4]))
    coloraxis = dict(colorscale=_map_colorscale(), cmin=scale.cmin, cmax=scale.cmax,
                     showscale=False)
    for m, r, under, name in maps:
        names.append(name)
        traces.append(_map_traces(m, r, name, 1, under=under, overlay=overlay,
                                  smooth_sigma=smooth_sigma))
    outlined = {0, *range(len(traces) - len(maps), len(traces))}
    figures = []
    for i, data in enumerate(traces):
        layout = _panel_layout()
        if any(t.get("coloraxis") for t in data):
            layout["coloraxis"] = coloraxis
        if i in outlined:
            layout["shapes"] = region_shapes(region, [1])
        figures.append(_figure(data, layout))
    return MapPanels(tuple(names), tuple(figures),
                     colour_bar(scale, smooth_sigma=smooth_sigma, font_size=font_size),
                     scale, factor)


def colour_bar(scale: MapScale, *, smooth_sigma: float = 0.0, font_size: int = 12,
               height: int | None = None):
    """The maps' colour scale as a horizontal strip with value ticks, titled with what it is
    (``MapScale.label``: clipped at a percentile, or the full range)."""
    n = 256
    xs = np.linspace(scale.cmin, scale.cmax, n)
    title = scale.label(": ")
    if smooth_sigma > 0:
        title += f"<br>display smoothed (σ = {smooth_sigma:g} px)"
    data = [dict(type="heatmap", x=xs, y=[0], z=[xs], coloraxis="coloraxis",
                 hovertemplate="map value %{x:.4g}<extra></extra>")]
    layout = dict(
        height=height or int((6.6 if smooth_sigma > 0 else 5.4) * font_size + 20),
        margin=dict(l=8, r=8, t=int((3.4 if smooth_sigma > 0 else 2.2) * font_size),
                    b=int(1.8 * font_size) + 4),
        paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)", dragmode=False,
        font=dict(size=font_size),
        title=dict(text=title, x=0.0, xanchor="left", y=0.98, yanchor="top",
                   font=dict(size=font_size)),
        xaxis=dict(showgrid=False, zeroline=False, ticks="outside", nticks=6,
                   tickfont=dict(size=max(10, font_size - 2)),
                   tickformat=".3~g", range=[scale.cmin, scale.cmax]),
        yaxis=dict(visible=False),
        coloraxis=dict(colorscale=_map_colorscale(), cmin=scale.cmin, cmax=scale.cmax,
                       showscale=False))
    return _figure(data, layout)


HOVER_TEXT_MAX_PIXELS = 128 * 128  # per-pixel hover labels only up to this size (payload)


def _rgba(hex_or_rgba: str) -> tuple[float, float, float, float]:
    if hex_or_rgba.startswith("#"):
        h = hex_or_rgba.lstrip("#")
        return tuple(int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)) + (1.0,)
    inner = hex_or_rgba[hex_or_rgba.index("(") + 1:hex_or_rgba.index(")")]
    parts = [float(v) for v in inner.split(",")]
    r, g, b = parts[:3]
    a = parts[3] if len(parts) > 3 else 1.0
    return r / 255, g / 255, b / 255, a


def composite(m: np.ndarray, zmax: float, layers: Sequence[tuple[np.ndarray, str]]) -> np.ndarray:
    """``(H, W, 3)`` uint8: the map in grey (0 light .. zmax dark) with coloured masks on top.

    ``layers``: (mask, colour) pairs painted in order; a colour with alpha < 1 blends.
    """
    level = 1.0 - 0.75 * np.clip(np.asarray(m, dtype=np.float32) / max(zmax, 1e-12), 0.0, 1.0)
    out = np.repeat((0.25 + 0.7 * level)[..., None], 3, axis=2)
    for mask, colour in layers:
        r, g, b, a = _rgba(colour)
        sel = np.asarray(mask, dtype=bool)
        out[sel] = (1 - a) * out[sel] + a * np.array([r, g, b], dtype=np.float32)
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def png_data_uri(rgb: np.ndarray) -> str:
    """``(H, W, 3)`` uint8 -> a PNG data URI (compact, lossless) for ``go.Image(source=...)``."""
    import base64

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG", compress_level=3)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _image_trace(rgb: np.ndarray, name: str, text: np.ndarray | None = None) -> list[dict]:
    """A pixel-exact image; hover shows row/col (and a per-pixel label when ``text`` is given)."""
    if text is None:
        return [dict(type="image", source=png_data_uri(rgb),
                     hovertemplate=f"<b>{name}</b><br>row %{{y}}, col %{{x}}<extra></extra>")]
    h, w = text.shape
    return [dict(type="image", source=png_data_uri(rgb), hoverinfo="skip"),
            dict(type="heatmap", z=np.zeros((h, w), dtype=np.uint8), text=text, opacity=0,
                 showscale=False, colorscale=[[0, "rgba(0,0,0,0)"], [1, "rgba(0,0,0,0)"]],
                 hovertemplate=f"<b>{name}</b><br>row %{{y}}, col %{{x}}<br>%{{text}}"
                               "<extra></extra>")]


def _labels(shape, layers: Sequence[tuple[np.ndarray, str]]) -> np.ndarray | None:
    """Per-pixel hover labels (later layers win), or None for large images."""
    if shape[0] * shape[1] > HOVER_TEXT_MAX_PIXELS:
        return None
    text = np.full(shape, "", dtype=object)
    for mask, label in layers:
        text[np.asarray(mask, dtype=bool)] = label
    return text


def _legend_entry(label: str, colour: str, group: str, symbol: str = "square") -> dict:
    return dict(type="scatter", x=[None], y=[None], mode="markers", name=label,
                legendgroup=group, hoverinfo="skip",
                marker=dict(color=rgb_string(colour), size=11, symbol=symbol))


def _marker_note(radius: int) -> dict:
    """Legend line saying that markers are larger than the pixel they mark."""
    side = 2 * radius + 1
    return dict(type="scatter", x=[None], y=[None], mode="markers", hoverinfo="skip",
                name=f"each marked pixel drawn {side}×{side} px", legendgroup="m",
                marker=dict(color="rgba(0,0,0,0)", size=1))


def overlap_figure(
    map_orig: np.ndarray,
    map_adv: np.ndarray,
    masks: Mapping[str, np.ndarray],
    *,
    k: int,
    w: int,
    show_neighbourhood: bool = True,
    height: int = 330,
    clip_percentile: float | None = DEFAULT_CLIP_PERCENTILE,
    marker_radius_px: int | None = None,
):
    """Which top-k pixels matched exactly, moved within ``w``, or were lost / are new.

    ``masks`` are the numpy versions of ``explorer.metrics.overlap_masks(a, b, k, w)``. Left:
    the original map with ``S_k(a)`` split into exact / within / lost, over the translucent
    ``N_w(S_k(b))``. Right: the attacked map with ``S_k(b)`` split into exact / within / new,
    over ``N_w(S_k(a))``. Legend counts are pixel counts; (exact + within) / k is the LENS score.
    The grey map underneath uses the robust scale of :func:`side_by_side` (``clip_percentile``).
    Each marked pixel is drawn as a square marker of side ``2 r + 1`` (``marker_radius_px`` r;
    None: :func:`explorer.viz_maps.marker_radius`, about 1/48 of the image side, so markers look
    the same size on 28×28 and 224×224); the halo never hides another marked pixel.
    """
    shape = map_orig.shape
    zmax = map_scale(map_orig, map_adv, percentile=clip_percentile).cmax
    radius = marker_radius(shape) if marker_radius_px is None else int(marker_radius_px)
    n = {key: int(np.asarray(masks[key]).sum()) for key in
         ("orig_exact", "orig_within", "orig_lost", "adv_exact", "adv_within", "adv_new")}
    prec = (n["orig_exact"] + n["orig_within"]) / k
    rec = (n["adv_exact"] + n["adv_within"]) / k
    # two short lines each: the pair of titles fits side by side on a phone too
    titles = [f"original top-k · LENS-prec<br>(exact + within)/k = {prec:.3f}",
              f"attacked top-k · LENS-recall<br>(exact + within)/k = {rec:.3f}"]
    data: list[dict] = []
    panels = [
        (map_orig, "adv_neighbourhood", [("orig_exact", EXACT, "exact match"),
                                          ("orig_within", WITHIN, f"within w={w}"),
                                          ("orig_lost", MISSED, "lost")], "original map"),
        (map_adv, "orig_neighbourhood", [("adv_exact", EXACT, "exact match"),
                                          ("adv_within", WITHIN, f"within w={w}"),
                                          ("adv_new", MISSED, "new")], "attacked map"),
    ]
    for col, (m, hood_key, cats, name) in enumerate(panels, start=1):
        layers = []
        if show_neighbourhood:
            layers.append((masks[hood_key], NEIGHBOURHOOD,
                           "in N_w of the other map's top-k"))
        layers += [(masks[key], colour, label) for key, colour, label in cats]
        painted = expand_markers([(mk, c) for mk, c, _ in layers], radius,
                                 keep=1 if show_neighbourhood else 0)
        rgb = composite(m, zmax, painted)
        text = _labels(shape, [(mk, lab) for mk, _, lab in layers])
        data += [_on(t, col) for t in _image_trace(rgb, name, text)]
    entries = [
        (f"original: exact {n['orig_exact']}", EXACT, "o"),
        (f"original: within w {n['orig_within']}", WITHIN, "o"),
        (f"original: lost {n['orig_lost']}", MISSED, "o"),
        (f"attacked: exact {n['adv_exact']}", EXACT, "a"),
        (f"attacked: within w {n['adv_within']}", WITHIN, "a"),
        (f"attacked: new {n['adv_new']}", MISSED, "a"),
    ]
    if show_neighbourhood:
        entries.append((f"N_w of the other top-k (w={w})", NEIGHBOURHOOD_LEGEND, "n"))
    data += [_on(_legend_entry(label, colour, group), 1) for label, colour, group in entries]
    if radius > 0:
        data.append(_on(_marker_note(radius), 1))
    layout = _grid_layout(titles, height, spacing=0.04, legend=True, bottom=60, top=44)
    layout["legend"] = dict(orientation="h", yanchor="top", y=-0.02, x=0, font=dict(size=11))
    return _figure(data, layout)


def _square_outlines(mask: np.ndarray, w: int) -> tuple[np.ndarray, np.ndarray]:
    """x / y of the outline of the (2w+1)-square around every set pixel (clipped at the
    borders), as float arrays with NaN between squares (one line trace draws them all)."""
    ys, xs = np.nonzero(np.asarray(mask, dtype=bool))
    h, wd = mask.shape
    x0 = np.maximum(xs - w, 0) - 0.5
    x1 = np.minimum(xs + w, wd - 1) + 0.5
    y0 = np.maximum(ys - w, 0) - 0.5
    y1 = np.minimum(ys + w, h - 1) + 0.5
    nan = np.full_like(x0, np.nan, dtype=np.float64)
    px = np.stack([x0, x1, x1, x0, x0, nan], axis=1).ravel()
    py = np.stack([y0, y0, y1, y1, y0, nan], axis=1).ravel()
    return px.astype(np.float32), py.astype(np.float32)


def diverse_figure(
    map_orig: np.ndarray,
    map_adv: np.ndarray,
    masks: Mapping[str, np.ndarray],
    *,
    k: int,
    w: int,
    show_squares: bool = False,
    height: int = 330,
    clip_percentile: float | None = DEFAULT_CLIP_PERCENTILE,
    marker_radius_px: int | None = None,
):
    """Top-k picks and greedy diverse top-k picks ``D_k`` on both maps.

    ``masks`` as in :func:`overlap_figure` (``*_topk``, ``*_diverse``, ``*_diverse_count``).
    ``show_squares`` outlines the exclusion square (side 2w+1) around every diverse pick.
    ``clip_percentile`` and ``marker_radius_px`` as in :func:`overlap_figure` (diverse picks are
    painted last, so their markers stay visible among the top-k markers).
    """
    shape = map_orig.shape
    zmax = map_scale(map_orig, map_adv, percentile=clip_percentile).cmax
    radius = marker_radius(shape) if marker_radius_px is None else int(marker_radius_px)
    titles = []
    for side, label in (("orig", "original"), ("adv", "attacked")):
        found = int(np.asarray(masks[f"{side}_diverse_count"]))
        note = f"{found} of k = {k} found" if found < k else f"all k = {k} found"
        titles.append(f"{label}: diverse top-k<br>{note}")
    data: list[dict] = []
    for col, (m, side, name) in enumerate(((map_orig, "orig", "original map"),
                                           (map_adv, "adv", "attacked map")), start=1):
        topk = np.asarray(masks[f"{side}_topk"], dtype=bool)
        div = np.asarray(masks[f"{side}_diverse"], dtype=bool)
        layers = [(topk & ~div, TOPK, "top-k pixel"),
                  (div & topk, DIVERSE, "diverse pick (also in top-k)"),
                  (div & ~topk, DIVERSE, "diverse pick")]
        rgb = composite(m, zmax, expand_markers([(mk, c) for mk, c, _ in layers], radius))
        text = _labels(shape, [(mk, lab) for mk, _, lab in layers])
        data += [_on(t, col) for t in _image_trace(rgb, name, text)]
        if show_squares and w > 0:
            px, py = _square_outlines(div, w)
            data.append(_on(dict(type="scatter", x=px, y=py, mode="lines", hoverinfo="skip",
                                 line=dict(color=rgb_string(SQUARE), width=1),
                                 showlegend=False), col))
    data.append(_on(_legend_entry("top-k pixel", TOPK, "t"), 1))
    data.append(_on(_legend_entry("diverse top-k pick", DIVERSE, "d"), 1))
    if show_squares and w > 0:
        data.append(_on(_legend_entry(f"exclusion square ({2 * w + 1}×{2 * w + 1})", SQUARE,
                                      "s", symbol="square-open"), 1))
    if radius > 0:
        data.append(_on(_marker_note(radius), 1))
    layout = _grid_layout(titles, height, spacing=0.04, legend=True, bottom=40, top=44)
    layout["legend"] = dict(orientation="h", yanchor="top", y=-0.02, x=0, font=dict(size=11))
    return _figure(data, layout)
