"""Chance levels for the metric table, cached like the other stages.

Two references per metric (see docs/spec.md, "Reading a score: chance levels"):

- the **unrelated-image level**: the scores between the maps of the bundled samples of the
  dataset, under the same model and method (all ordered pairs of up to
  :data:`UNRELATED_SAMPLES` images spread over the gallery). It does not depend on the image
  shown, so it is computed once per (dataset, model, method, k, w); the set metrics per (k, w),
  the correlations and the centre shift per w only;
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

from .stages import model, samples

__all__ = ["UNRELATED_SAMPLES", "SMALL_MAP_PIXELS", "ChanceCell", "unrelated", "unrelated_count",
           "permutation", "table_chance"]

UNRELATED_SAMPLES = 10
SMALL_MAP_PIXELS = 64 * 64  # above this, only the exact permutation keys are computed
_EXACT_KEYS = ("topk_intersection", "lens_recall", "lens_precision", "spearman", "kendall")
_W_ONLY_KEYS = tuple(k for k, m in metrics.METRICS.items() if m.kind != "set")


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
def _unrelated_sets(model_key, method: str, method_items: tuple, k: int, w: int) -> dict:
    maps = _sample_maps(model_key, method, method_items)
    if len(maps) < 2:
        return {}
    return _summaries(maps, k, w, metrics.SET_METRIC_KEYS)


@st.cache_data(max_entries=64, show_spinner=False)
def _unrelated_w_only(model_key, method: str, method_items: tuple, w: int) -> dict:
    maps = _sample_maps(model_key, method, method_items)
    if len(maps) < 2:
        return {}
    return _summaries(maps, 1, w, _W_ONLY_KEYS)


def unrelated(model_key, method: str, method_items: tuple, k: int, w: int) -> dict:
    """``{key: (mean, std)}`` of the unrelated-image level (empty when no samples)."""
    return {**_unrelated_sets(model_key, method, method_items, k, w),
            **_unrelated_w_only(model_key, method, method_items, w)}


@st.cache_data(max_entries=512, show_spinner=False)
def permutation(pair_key: str, _a: np.ndarray, _b: np.ndarray, k: int, w: int) -> dict:
    """``{key: value}`` of the permutation level of one pair ``(H, W)``; exact keys only on
    large maps."""
    keys = None if _a.size <= SMALL_MAP_PIXELS else _EXACT_KEYS
    out = chance.permutation_chance(torch.from_numpy(_a), torch.from_numpy(_b), k, w, keys=keys)
    return {key: float(v) for key, v in out.items()}


def table_chance(model_key, method: str, method_items: tuple, pair_key: str, a: np.ndarray,
                 b: np.ndarray, k: int, w: int) -> dict[str, ChanceCell]:
    """One :class:`ChanceCell` per metric key for the table."""
    unrel = unrelated(model_key, method, method_items, k, w)
    perm = permutation(pair_key, a, b, k, w)
    nan = float("nan")
    return {key: ChanceCell(unrel.get(key, (nan, nan))[0], unrel.get(key, (nan, nan))[1],
                            perm.get(key, nan))
            for key in metrics.METRIC_KEYS}
