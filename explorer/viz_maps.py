"""Display transforms of attribution maps: a robust colour scale, display-only smoothing, and
markers that stay visible on large images.

Display only: nothing here feeds a score. The scores (``explorer.metrics``) are computed on the
raw maps before any of this runs; these functions return new arrays and never modify their
inputs. Maps are numpy arrays of shape ``(H, W)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage

__all__ = [
    "DEFAULT_CLIP_PERCENTILE",
    "MARKER_FRACTION",
    "MapScale",
    "REGION_COLOUR",
    "region_shapes",
    "map_scale",
    "smooth_for_display",
    "marker_radius",
    "expand_markers",
]

# Colour scales end at this percentile of the pair's joint values by default: a saliency map of
# a photo is heavy-tailed, and a scale that runs to its single brightest pixel leaves the rest
# near-black.
DEFAULT_CLIP_PERCENTILE = 99.0

# A marker on a mask view covers about this fraction of the image side (at least one pixel), so
# that it looks the same size on screen on a 28×28 and on a 224×224 image.
MARKER_FRACTION = 1 / 48


def _ordinal(p: float) -> str:
    if float(p).is_integer():
        n = int(p)
        suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
        return f"{n}{suffix}"
    return f"{p:g}th"


@dataclass(frozen=True)
class MapScale:
    """A colour scale for one or more maps drawn together: values from ``cmin`` to ``cmax``.

    ``percentile``: the percentile of the maps' joint values that ``cmax`` is (None: the full
    range, ``cmax`` = the largest value). ``peak``: the largest value of the maps. ``note``: why
    a requested clip was not applied (empty otherwise).
    """

    cmin: float
    cmax: float
    percentile: float | None
    peak: float
    note: str = ""

    @property
    def clipped(self) -> bool:
        """True when values above ``cmax`` exist (they are drawn in the top colour)."""
        return self.percentile is not None and self.peak > self.cmax

    def label(self, sep: str = "\n") -> str:
        """The colour bar title: what the scale is, e.g. ``map value`` / ``clipped at 99th
        percentile = 0.0123 (max 0.31)``. ``sep`` separates the two lines (``<br>`` for
        plotly)."""
        if self.percentile is not None:
            scale = (f"clipped at {_ordinal(self.percentile)} percentile = {self.cmax:.3g} "
                     f"(max {self.peak:.3g})")
        else:
            scale = f"full range 0 – {self.cmax:.3g}"
            if self.note:
                scale += f" ({self.note})"
        return f"map value{sep}{scale}"


def map_scale(*maps: np.ndarray | None, percentile: float | None = DEFAULT_CLIP_PERCENTILE
              ) -> MapScale:
    """One scale for all ``maps`` (None entries are skipped): from 0 to ``percentile`` of their
    joint values (``numpy.percentile``, linear interpolation), or to their maximum when
    ``percentile`` is None. Maps are non-negative (``Σ_C |attr|``); a scale whose top would be
    0 (more than ``percentile`` % zeros) falls back to the full range, and all-zero maps get
    ``0 .. 1``.
    """
    if percentile is not None:
        if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) \
                or not math.isfinite(percentile) or not 0 < percentile <= 100:
            raise ValueError(f"clip percentile must be a number in (0, 100], or None for the full "
                             f"range; got {percentile!r}")
        percentile = float(percentile)
    arrays = [np.asarray(m, dtype=np.float64).ravel() for m in maps if m is not None]
    values = np.concatenate(arrays) if arrays else np.zeros(0)
    values = values[np.isfinite(values)]
    peak = float(values.max()) if values.size else 0.0
    note = ""
    if percentile is not None:
        top = float(np.percentile(values, percentile)) if values.size else 0.0
        if top <= 0:
            note = f"the {_ordinal(percentile)} percentile is 0"
            percentile, top = None, peak
    else:
        top = peak
    if top <= 0:
        top = 1.0
    return MapScale(0.0, top, percentile, peak, note)


def smooth_for_display(m: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian-blurred copy of map ``m`` (standard deviation ``sigma`` pixels, edges
    repeated) for display; ``sigma = 0`` returns an unblurred copy. ``m`` is never modified and
    nothing computed from the result is a score."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) \
            or not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"display smoothing sigma must be a number ≥ 0 (pixels); got {sigma!r}")
    arr = np.array(m, dtype=np.float32, copy=True)
    if arr.ndim != 2:
        raise ValueError(f"map must have shape (H, W); got {arr.shape}")
    if sigma == 0:
        return arr
    return ndimage.gaussian_filter(arr, sigma=float(sigma), mode="nearest")


def marker_radius(shape: Sequence[int], fraction: float = MARKER_FRACTION) -> int:
    """Radius r (pixels) of the square marker (side 2r + 1) drawn for one masked pixel on an
    image of ``shape`` ``(H, W)``: about ``fraction`` of the longer side, at least one pixel
    (r = 0). 28×28 -> 0 (1 px), 112×112 -> 1 (3 px), 224×224 -> 2 (5 px)."""
    side = max(int(shape[0]), int(shape[1])) * float(fraction)
    return max(0, int(round((side - 1) / 2)))


def expand_markers(layers: Sequence[tuple[np.ndarray, str]], radius: int, *, keep: int = 0,
                   ) -> list[tuple[np.ndarray, str]]:
    """Mask layers ``(mask, colour)`` with every marked pixel drawn as a (2r+1)-square marker.

    The first ``keep`` layers (regions such as a neighbourhood) are kept as they are. The halo
    a marker adds never covers a pixel that is itself marked by any layer, so every marked
    pixel keeps its own colour; where halos of different layers meet, the layer with fewer
    marked pixels wins (a handful of exact matches stays visible among hundreds of lost
    pixels). ``radius = 0`` returns the layers unchanged. The masks are not modified.
    """
    layers = [(np.asarray(mask, dtype=bool), colour) for mask, colour in layers]
    if radius <= 0 or len(layers) <= keep:
        return layers
    markers = layers[keep:]
    marked = np.zeros(markers[0][0].shape, dtype=bool)
    for mask, _ in markers:
        marked |= mask
    size = 2 * int(radius) + 1
    halos = [(ndimage.maximum_filter(mask, size=size, mode="constant", cval=False) & ~marked,
              colour, int(mask.sum())) for mask, colour in markers]
    halos.sort(key=lambda h: -h[2])  # painted largest first: the rarest is painted last, on top
    return layers[:keep] + [(h, c) for h, c, _ in halos] + markers


REGION_COLOUR = "#00E5FF"  # bright cyan: reads on the inferno maps and on grey or colour photos
REGION_HALO = "rgba(0, 0, 0, 0.85)"  # a dark line under it, for light backgrounds


def region_shapes(region: Sequence[int] | None, panels: Sequence[int]) -> list[dict]:
    """Plotly layout shapes outlining ``region`` = (r0, r1, c0, c1) (inclusive pixel rows and
    columns) on each of the 1-based image ``panels`` (axes x/y, x2/y2, ...).

    The outline runs along the pixels' outer edges (c0 − ½ .. c1 + ½), a 2-px cyan line over a
    4-px dark one: line widths are screen pixels, so it reads the same at 28×28 and 224×224.
    """
    if region is None:
        return []
    r0, r1, c0, c1 = (int(v) for v in region)
    if r1 < r0 or c1 < c0:
        raise ValueError(f"region rows {r0}..{r1}, columns {c0}..{c1}: "
                         "need r0 ≤ r1 and c0 ≤ c1")
    shapes = []
    for col in panels:
        suffix = "" if col == 1 else str(col)
        for colour, width in ((REGION_HALO, 4), (REGION_COLOUR, 2)):
            shapes.append(dict(type="rect", xref=f"x{suffix}", yref=f"y{suffix}",
                               x0=c0 - 0.5, x1=c1 + 0.5, y0=r0 - 0.5, y1=r1 + 0.5,
                               line=dict(color=colour, width=width), fillcolor="rgba(0,0,0,0)",
                               layer="above"))
    return shapes
