"""The k control: a plain slider on small images, a log-scale one on large images.

On a 224×224 image k runs from 1 to 50,176: a linear slider moves ~100 pixels per screen pixel,
so small k cannot be picked. Above :data:`LOG_THRESHOLD` pixels the control is a
``st.select_slider`` over the 1-2-5 grid of :func:`k_options` (plus the dataset's paper k, H·W
and the k the session already holds, so a k from a shared link is kept exactly, never snapped).
The widget's value is the k the table uses: the thumb and the table cannot disagree.
"""

from __future__ import annotations

import streamlit as st

from explorer import data

__all__ = ["LOG_THRESHOLD", "k_options", "k_slider", "uses_log_scale"]

LOG_THRESHOLD = 4096  # images with more pixels (64×64) get the log-scale control


def uses_log_scale(n_pixels: int) -> bool:
    return int(n_pixels) > LOG_THRESHOLD


def k_options(n_pixels: int, extra: tuple[int, ...] = ()) -> list[int]:
    """The k values offered on an image of ``n_pixels``: 1, 2, 5, 10, 20, 50, … below
    ``n_pixels``, then ``n_pixels`` itself, plus every value of ``extra`` within 1..n_pixels."""
    n = int(n_pixels)
    if n < 1:
        raise ValueError(f"an image has at least one pixel; got {n_pixels}")
    grid = {n}
    decade = 1
    while decade <= n:
        grid.update(v for v in (decade, 2 * decade, 5 * decade) if v <= n)
        decade *= 10
    grid.update(int(v) for v in extra if 1 <= int(v) <= n)
    return sorted(grid)


def k_slider(dataset: str, n_pixels: int, key: str, label: str = "k (top pixels compared)"
             ) -> int:
    """The k widget bound to ``st.session_state[key]`` (an int in 1..n_pixels); returns its value.
    ``dataset``: its paper k is always on the grid."""
    n = int(n_pixels)
    paper_k = int(data.DATASETS[dataset].defaults.eval_k)
    if not uses_log_scale(n):
        return int(st.slider(label, 1, n, key=key,
                             help=f"Size of the top-k sets, 1 .. H·W = {n}."))
    current = int(st.session_state.get(key, min(paper_k, n)))
    current = min(max(current, 1), n)
    st.session_state[key] = current
    base = k_options(n, (paper_k,))
    options = k_options(n, (paper_k, current))
    k = int(st.select_slider(
        label, options, key=key, format_func=lambda v: f"{v:,}",
        help=f"Size of the top-k sets, 1 .. H·W = {n:,}, on a log scale (1, 2, 5, 10, …; the "
             f"paper's k = {paper_k:,}). The label over the thumb is the exact k the table "
             "uses."))
    if k not in base:  # said only then: a caption on every run would push the w slider down
        st.caption(f"k = {k:,} of {n:,} pixels ({100 * k / n:.2g}%): this k (from the link) is "
                   "not on the 1-2-5 grid and is kept as it is")
    return k
