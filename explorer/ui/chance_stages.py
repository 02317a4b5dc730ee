"""Chance levels for the metric table, cached like the other stages.

Two references per metric (see docs/spec.md, "Reading a score: chance levels"):

- the **unrelated-image level**: the scores between the maps of the bundled samples of the
  dataset, under the same model and method (all ordered pairs of up to
  :data:`UNRELATED_SAMPLES` images spread over the gallery). It does not depend on the image
  shown, so it is computed once per (dataset, model, method, k, w) and cached; the set metrics
  per (k, w) (the chart against k asks for its fixed grid of k at once: one diverse walk per
  sample map serves them all), the correlations and the centre shift per w only, the LENS
  correlations' filled in the background for every w of the slider after the first view;
- the **permutation level** of the pair shown (b's values shuffled over the pixels): the exact
  keys always; the Monte-Carlo keys only on small maps, where they take tens of milliseconds
  (on 224×224 they would take seconds per k or w move, so the table leaves them out and says so).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st
import torch

from explorer import attributions, chance, metrics

from . import background
from .stages import model, samples

__all__ = ["UNRELATED_SAMPLES", "SET_DRAWS", "RANK_DRAWS", "SMALL_MAP_PIXELS", "ChanceBand",
           "ChanceCell", "chart_bands", "prefetch_lens", "unrelated", "unrelated_count",
           "permutation_keys", "table_chance"]

UNRELATED_SAMPLES = 10
SMALL_MAP_PIXELS = 64 * 64  # above this, only the exact permutation keys are computed
# Shuffles for the diverse variants' permutation level (they change with every k move): 64
# instead of the library's 200 halve a k move's cost; standard error about 0.004 on 28×28.
SET_DRAWS = 64
# τ-b draws for w-LENS-Kendall's permutation level (with w-LENS-Spearman over all the draws as
# the control variate): 16 instead of the library's 50 save two thirds of its cost on a w move;
# on an MNIST saliency pair the standard error stays within 0.001 of the 50-draw one, because
# it comes from Spearman's own spread over the draws.
RANK_DRAWS = 16
_EXACT_KEYS = ("topk_intersection", "lens_recall", "lens_precision", "spearman", "kendall")
_LENS_RANK_KEYS = ("lens_spearman", "lens_kendall")  # depend on w, not on k
_FREE_KEYS = tuple(k for k, m in metrics.METRICS.items()  # depend on neither k nor w
                   if m.kind != "set" and k not in _LENS_RANK_KEYS)


@dataclass(frozen=True)
class ChanceCell:
    """What the table shows beside one metric: the unrelated-image mean and spread (NaN when
    unavailable), the permutation level of the pair (NaN where not computed)."""

    unrelated: float
    unrelated_std: float
    permutation: float


@st.cache_data(max_entries=16, show_spinner=False)
def _sample_maps(model_key: tuple[str, str, str], method: str, method_items: tuple) -> np.ndarray:
    """Maps ``(M, H, W)`` of up to UNRELATED_SAMPLES bundled images, evenly spread."""
    s = samples(model_key[0])
    if s.x is None or len(s.x) < 2:
        return np.zeros((0, 1, 1), dtype=np.float32)
    n = len(s.x)
    idx = sorted({round(j * (n - 1) / (UNRELATED_SAMPLES - 1)) for j in range(UNRELATED_SAMPLES)})
    net = model(*model_key)
    x = torch.from_numpy(np.ascontiguousarray(s.x[idx])).to(model_key[2])
    maps = attributions.attribution_map(net, x, method=method, params=dict(method_items))
    return maps.detach().cpu().numpy().astype(np.float32)


def unrelated_count(dataset: str) -> int:
    """How many bundled images the unrelated-image level uses for ``dataset``."""
    s = samples(dataset)
    return 0 if s.x is None else min(len(s.x), UNRELATED_SAMPLES)


def _summaries(maps: np.ndarray, k: int, w: int, keys) -> dict[str, tuple[float, float]]:
    base = chance.unrelated_baseline(torch.from_numpy(maps), k, w, keys=keys)
    return {key: (float(b.mean), float(b.std)) for key, b in base.items()}


@st.cache_data(max_entries=256, show_spinner=False)
def _unrelated_sets(model_key, method: str, method_items: tuple, ks: tuple[int, ...],
                    w: int) -> tuple[dict, ...]:
    """The set metrics' unrelated-image level at each k of ``ks`` (one ``{key: (mean, std)}``
    per k): one diverse walk per sample map serves every pair and every k."""
    maps = _sample_maps(model_key, method, method_items)
    if len(maps) < 2:
        return tuple({} for _ in ks)
    bases = chance.unrelated_baseline_over_k(torch.from_numpy(maps), list(ks), w)
    return tuple({key: (float(b.mean), float(b.std)) for key, b in base.items()}
                 for base in bases)


# The w-dependent, k-free chance levels (the two LENS correlations: their τ-b make them the
# costly part of a w move), in a plain store that the background prefetch can fill without
# Streamlit calls: ("u", model_key, method, items, w) -> unrelated-image level,
# ("p", pair_key, w) -> the pair's permutation level.
_LENS = background.RankScoreStore(max_entries=1024)


def _lens_unrelated(model_key, method: str, method_items: tuple, w: int,
                    maps: np.ndarray | None = None) -> dict:
    key = ("u", model_key, method, method_items, w)
    out = _LENS.get(key)
    if out is None:
        maps = _sample_maps(model_key, method, method_items) if maps is None else maps
        out = _summaries(maps, 1, w, _LENS_RANK_KEYS) if len(maps) >= 2 else {}
        _LENS.put(key, out)
    return out


def _lens_permutation(pair_key: str, a: np.ndarray, b: np.ndarray, w: int) -> dict:
    key = ("p", pair_key, w)
    out = _LENS.get(key)
    if out is None:
        out = _permutation_levels(a, b, (1,), w, _LENS_RANK_KEYS)[0]
        _LENS.put(key, out)
    return out


def prefetch_lens(model_key, method: str, method_items: tuple, pair_key: str, a: np.ndarray,
                  b: np.ndarray, ws, unrelated_ws=()) -> None:
    """Compute the LENS correlations' chance levels for the w values ``ws`` in a background
    thread (no Streamlit calls in it), as ``background.prefetch_without_k`` does for the
    scores: a later w move then finds them ready. The unrelated-image level does not depend on
    the image, so a second job (one per model and method, not per pair, so that it never holds
    up a pair's) fills it for ``unrelated_ws`` too: a w move then only computes the pair's
    permutation level."""
    ws = list(ws)
    model = (model_key, method, method_items)
    pair_ws = [w for w in ws if _LENS.get(("u", *model, w)) is None
               or _LENS.get(("p", pair_key, w)) is None]
    more = [w for w in unrelated_ws if w not in ws and _LENS.get(("u", *model, w)) is None]
    if not pair_ws and not more:
        return
    maps = _sample_maps(*model)  # cached; in the script thread

    def pair_work(w: int) -> None:
        _lens_unrelated(*model, w, maps)
        _lens_permutation(pair_key, a, b, w)

    if pair_ws:
        background.start_store_job(_LENS, (*model, pair_key), pair_ws, pair_work,
                                   "explorer-chance-prefetch")
    if more:
        background.start_store_job(_LENS, (*model, "unrelated"), more,
                                   lambda w: _lens_unrelated(*model, w, maps),
                                   "explorer-chance-prefetch")


@st.cache_data(max_entries=16, show_spinner=False)
def _unrelated_free(model_key, method: str, method_items: tuple) -> dict:
    maps = _sample_maps(model_key, method, method_items)
    if len(maps) < 2:
        return {}
    return _summaries(maps, 1, 0, _FREE_KEYS)


def _unrelated_at(model_key, method: str, method_items: tuple, ks: tuple[int, ...],
                  w: int) -> list[dict]:
    """:func:`unrelated` at each k of ``ks`` (one w): the set metrics of all k in one pass."""
    rest = {**_lens_unrelated(model_key, method, method_items, w),
            **_unrelated_free(model_key, method, method_items)}
    return [{**sets, **rest} for sets in _unrelated_sets(model_key, method, method_items, ks, w)]


def unrelated(model_key, method: str, method_items: tuple, k: int, w: int) -> dict:
    """``{key: (mean, std)}`` of the unrelated-image level (empty when no samples); each group
    of metrics cached on what it depends on (set metrics: k and w; LENS correlations: w;
    plain correlations and the centre shift: neither)."""
    return _unrelated_at(model_key, method, method_items, (k,), w)[0]


def _permutation_levels(a: np.ndarray, b: np.ndarray, ks: tuple[int, ...], w: int,
                        keys) -> list[dict]:
    """The permutation level of ``keys`` for one pair ``(H, W)`` at each k of ``ks`` (one dict
    per k): the Monte-Carlo keys only on small maps (on large ones they would take seconds per
    k or w move; left out, NaN in the table), over :data:`SET_DRAWS` shuffles when ``keys`` are
    set metrics only."""
    if a.size > SMALL_MAP_PIXELS:
        keys = tuple(key for key in keys if key in _EXACT_KEYS)
    if not keys:
        return [{} for _ in ks]
    draws = SET_DRAWS if all(key in metrics.SET_METRIC_KEYS for key in keys) else None
    out = chance.permutation_chance_over_k(torch.from_numpy(a), torch.from_numpy(b), list(ks), w,
                                           keys=list(keys), draws=draws,
                                           rank_draws=RANK_DRAWS)
    return [{key: float(v) for key, v in levels.values.items()} for levels in out]


@st.cache_data(max_entries=2048, show_spinner=False)
def permutation_keys(pair_key: str, _a: np.ndarray, _b: np.ndarray, ks: tuple[int, ...], w: int,
                     keys: tuple[str, ...]) -> tuple[dict, ...]:
    """``({key: value}, ...)`` per k of ``ks``: :func:`_permutation_levels` cached per (pair,
    ks, w, key set), so a point costs its own keys only."""
    return tuple(_permutation_levels(_a, _b, ks, w, keys))


def _permutation_at(pair_key: str, a: np.ndarray, b: np.ndarray, ks: tuple[int, ...], w: int,
                    keys) -> list[dict]:
    """The permutation level of ``keys`` at each k of ``ks`` (one w), each group cached on what
    it depends on: the set metrics on (k, w), computed for all of ``ks`` at once; the LENS
    correlations on w; the plain correlations and the centre shift on neither (a k move then
    recomputes only the set metrics)."""
    sets = tuple(key for key in keys if key in metrics.SET_METRIC_KEYS)
    lens = tuple(key for key in keys if key in _LENS_RANK_KEYS)
    free = tuple(key for key in keys if key in _FREE_KEYS)
    rest = {**({key: v for key, v in _lens_permutation(pair_key, a, b, w).items() if key in lens}
               if lens else {}),
            **(permutation_keys(pair_key, a, b, (1,), 0, free)[0] if free else {})}
    per_k = permutation_keys(pair_key, a, b, ks, w, sets) if sets else tuple({} for _ in ks)
    return [{**levels, **rest} for levels in per_k]


@dataclass(frozen=True)
class ChanceBand:
    """The chance level of one metric along a chart's x axis: the unrelated-image mean and
    its mean ± 1 sd band, and the permutation level of the first pair (NaN where not computed
    or unavailable)."""

    key: str
    mean: tuple[float, ...]
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    permutation: tuple[float, ...]


def chart_bands(model_key, method: str, method_items: tuple, pair_key: str, a: np.ndarray,
                b: np.ndarray, points: list[tuple[int, int]], chosen,
                together=()) -> dict[str, ChanceBand]:
    """:class:`ChanceBand` of each ``chosen`` metric at the chart's ``points`` ``[(k, w), ...]``.

    Every value comes from the same cached computations as the table: per w, the set metrics'
    levels at the k of ``together`` in one pass (the chart against k: its fixed grid, where one
    diverse walk per map serves every point, cached across k moves) and at each other k on its
    own (the current k: the table's), the LENS correlations' once per w, the w-free keys' once."""
    nan = float("nan")
    chosen = tuple(chosen)
    ks_of: dict[int, list[int]] = {}
    for k, w in points:
        ks_of.setdefault(w, []).append(k)
    at: dict[tuple[int, int], tuple[dict, dict]] = {}
    for w, ks in ks_of.items():
        joint = tuple(k for k in sorted(set(ks)) if k in together)
        groups = ([joint] if joint else []) + [(k,) for k in sorted(set(ks)) if k not in joint]
        for group in groups:
            unrel = _unrelated_at(model_key, method, method_items, group, w)
            perm = _permutation_at(pair_key, a, b, group, w, chosen)
            at.update({(k, w): (u, p) for k, u, p in zip(group, unrel, perm)})
    cols: dict[str, list[tuple[float, float, float]]] = {key: [] for key in chosen}
    for point in points:
        unrel, perm = at[point]
        for key in chosen:
            mean, sd = unrel.get(key, (nan, nan))
            cols[key].append((mean, sd, perm.get(key, nan)))
    return {key: ChanceBand(key, tuple(m for m, _, _ in c), tuple(m - s for m, s, _ in c),
                            tuple(m + s for m, s, _ in c), tuple(p for _, _, p in c))
            for key, c in cols.items()}


def table_chance(model_key, method: str, method_items: tuple, pair_key: str, a: np.ndarray,
                 b: np.ndarray, k: int, w: int) -> dict[str, ChanceCell]:
    """One :class:`ChanceCell` per metric key for the table."""
    unrel = unrelated(model_key, method, method_items, k, w)
    perm = _permutation_at(pair_key, a, b, (k,), w, metrics.METRIC_KEYS)[0]
    nan = float("nan")
    return {key: ChanceCell(unrel.get(key, (nan, nan))[0], unrel.get(key, (nan, nan))[1],
                            perm.get(key, nan))
            for key in metrics.METRIC_KEYS}
