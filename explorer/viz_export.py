"""Matplotlib export of a view (offline-safe PNG / PDF): images, perturbation, maps on one robust
colour scale, the overlap panels, and a metrics footer in a band of its own.

Rendering only, like :mod:`explorer.viz` (which re-exports these names): the masks and scores
are computed by ``explorer.metrics`` on the raw maps and passed in.
"""

from __future__ import annotations

import io
import textwrap
from typing import Mapping

import numpy as np

from .viz_maps import DEFAULT_CLIP_PERCENTILE, expand_markers, map_scale, marker_radius

__all__ = ["export_panel", "figure_bytes"]

FOOTER_CHARS = 230  # characters per footer line at 7 pt on the 13.5-inch-wide figure


def export_panel(
    image: np.ndarray,
    image_adv: np.ndarray,
    map_orig: np.ndarray,
    map_adv: np.ndarray,
    masks: Mapping[str, np.ndarray],
    *,
    k: int,
    w: int,
    title: str,
    caption: str = "",
    clip_percentile: float | None = DEFAULT_CLIP_PERCENTILE,
):
    """A matplotlib figure of the whole view: images, perturbation, maps, and the overlap panels.

    Both maps share one colour scale, clipped at ``clip_percentile`` of their joint values
    (None: the full range); the colour bar says which. Overlap categories are drawn as markers
    sized to the image (:func:`explorer.viz_maps.marker_radius`). ``caption`` (the metrics) is
    wrapped into a footer band below the overlap panels, which it cannot overlap.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    # Here, not at the top: explorer.viz re-exports this module (a circular import).
    from .viz import EXACT, MAP_CMAP, MISSED, NEIGHBOURHOOD, WITHIN, _rgba, composite, \
        perturbation_rgb, to_rgb

    pert, factor = perturbation_rgb(image, image_adv)
    scale = map_scale(map_orig, map_adv, percentile=clip_percentile)
    lines = textwrap.wrap(caption, FOOTER_CHARS, break_on_hyphens=False,
                          break_long_words=False) if caption else []
    footer_ratio = 0.06 + 0.07 * len(lines) if lines else 0.0
    fig = Figure(figsize=(13.5, 6.2 + 0.9 * footer_ratio), dpi=110, layout="constrained")
    ratios = [1, 1.15] + ([footer_ratio] if lines else [])
    subs = fig.subfigures(len(ratios), 1, height_ratios=ratios)
    top, bottom = subs[0], subs[1]
    axes = top.subplots(1, 5)
    panels = [(to_rgb(image), "original"), (to_rgb(image_adv), "attacked"),
              (pert, f"perturbation (×{factor:.3g})" if factor else "perturbation (none)")]
    for ax, (im, t) in zip(axes[:3], panels):
        ax.imshow(im, interpolation="nearest")
        ax.set_title(t, fontsize=10)
    for ax, m, t in ((axes[3], map_orig, "original map"), (axes[4], map_adv, "attacked map")):
        handle = ax.imshow(m, cmap=MAP_CMAP, vmin=scale.cmin, vmax=scale.cmax,
                           interpolation="nearest")
        ax.set_title(t, fontsize=10)
    cbar = top.colorbar(handle, ax=list(axes[3:]), shrink=0.8,
                        extend="max" if scale.clipped else "neither")
    cbar.set_label(scale.label("\n") + "\n(one scale for both maps)", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    bax = bottom.subplots(1, 2)
    n = {key: int(np.asarray(masks[key]).sum()) for key in
         ("orig_exact", "orig_within", "orig_lost", "adv_exact", "adv_within", "adv_new")}
    radius = marker_radius(np.shape(map_orig))
    sides = [
        (bax[0], map_orig, "adv_neighbourhood", ("orig_exact", "orig_within", "orig_lost"),
         ("exact", "within w", "lost"), "original top-k", "LENS-prec"),
        (bax[1], map_adv, "orig_neighbourhood", ("adv_exact", "adv_within", "adv_new"),
         ("exact", "within w", "new"), "attacked top-k", "LENS-recall"),
    ]
    for ax, m, hood, keys, labels, name, score in sides:
        layers = [(masks[hood], NEIGHBOURHOOD)] + [
            (masks[key], c) for key, c in zip(keys, (EXACT, WITHIN, MISSED))]
        ax.imshow(composite(m, scale.cmax, expand_markers(layers, radius, keep=1)),
                  interpolation="nearest")
        frac = (n[keys[0]] + n[keys[1]]) / k
        ax.set_title(f"{name}: (exact + within)/k = {frac:.3f} ({score})", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        handles = [Patch(color=_rgba(c), label=f"{lab} {n[key]}")
                   for key, lab, c in zip(keys, labels, (EXACT, WITHIN, MISSED))]
        handles.append(Patch(color=_rgba(NEIGHBOURHOOD), label=f"N_w other top-k (w={w})"))
        if radius:
            handles.append(Patch(color="none", label=f"markers {2 * radius + 1}×{2 * radius + 1}"
                                                     " px per pixel"))
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                  frameon=False)
    fig.suptitle(title, fontsize=11)
    if lines:
        subs[2].text(0.01, 0.5, "\n".join(lines), fontsize=7, ha="left", va="center")
    return fig


def figure_bytes(fig, fmt: str) -> bytes:
    """Render a matplotlib figure to ``png`` or ``pdf`` bytes."""
    if fmt not in ("png", "pdf"):
        raise ValueError(f"format must be 'png' or 'pdf'; got {fmt!r}")
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt)
    return buf.getvalue()
