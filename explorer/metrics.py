"""Robustness metrics between two attribution maps (definitions: docs/spec.md, docs/metrics.md).

Pure torch (scipy only for Kendall's τ-b on the CPU). Imports nothing else of the project.

Conventions
-----------
- A map is ``(H, W)`` or ``(N, H, W)``, finite and non-negative (``attributions.to_map`` makes
  one). Every function is batched over ``N`` and runs on the map's device.
- Ranking: pixels by value, descending; equal values ordered by lower row-major flat index first.
  Every top-k and greedy choice uses this order, so results are the same on every device.
- ``S_k(m)``: the k top-ranked pixels. ``N_w(P)``: the union of the ``(2w+1)×(2w+1)`` squares
  around the pixels of ``P``, clipped at the borders (a max-pool dilation of a boolean mask).
- ``D_k(m)``: the greedy diverse top-k selection: walk pixels in ranking order and accept a pixel
  when it lies outside ``N_w`` of every pixel accepted so far, until k are accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "MetricInfo",
    "METRICS",
    "METRIC_KEYS",
    "metric_label",
    "validate_k",
    "validate_w",
    "validate_maps",
    "rank_order",
    "rank_positions",
    "topk_mask",
    "dilate",
    "maxpool_map",
    "diverse_topk_mask",
    "is_degenerate",
    "spearman",
    "kendall",
    "center_of_mass",
    "compare",
    "set_metrics",
    "rank_metrics",
    "SET_METRIC_KEYS",
    "RANK_METRIC_KEYS",
    "overlap_masks",
    "set_counts",
    "pair_set_counts",
    "set_flags",
    "set_warnings",
]


@dataclass(frozen=True)
class MetricInfo:
    """Display facts of one metric: the single source the UI, CLI and docs read."""

    key: str
    name: str
    formula: str
    description: str
    kind: str  # "set" | "rank" | "distance"
    higher_is_better: bool = True  # True: higher means a more robust (more similar) pair


_METRIC_LIST = (
    MetricInfo(
        "topk_intersection", "top-k intersection", "|S_k(a) ∩ S_k(b)| / k",
        "Fraction of the original top-k pixels that are still exactly in the attacked top-k.",
        "set"),
    MetricInfo(
        "lens_recall", "w-LENS-recall@k", "|N_w(S_k(a)) ∩ S_k(b)| / k",
        "Fraction of the attacked top-k pixels that lie within w pixels of an original top-k pixel.",
        "set"),
    MetricInfo(
        "lens_precision", "w-LENS-prec@k", "|S_k(a) ∩ N_w(S_k(b))| / k",
        "Fraction of the original top-k pixels that lie within w pixels of an attacked top-k pixel.",
        "set"),
    MetricInfo(
        "spearman", "Spearman ρ", "ρ(rank(a), rank(b)) over all H·W pixels, average ranks for ties",
        "Rank correlation of the two whole maps.", "rank"),
    MetricInfo(
        "kendall", "Kendall τ", "τ-b(a, b) over all H·W pixels",
        "Share of concordant minus discordant pixel pairs of the two whole maps, tie-corrected.",
        "rank"),
    MetricInfo(
        "lens_spearman", "w-LENS-Spearman", "ρ(maxpool_w(a), maxpool_w(b)) (this app's definition)",
        "Spearman ρ after replacing every pixel by the maximum over its (2w+1)×(2w+1) window "
        "(this app's definition; equals Spearman ρ at w = 0).", "rank"),
    MetricInfo(
        "lens_kendall", "w-LENS-Kendall", "τ-b(maxpool_w(a), maxpool_w(b)) (this app's definition)",
        "Kendall τ-b after replacing every pixel by the maximum over its (2w+1)×(2w+1) window "
        "(this app's definition; equals Kendall τ at w = 0).", "rank"),
    MetricInfo(
        "topk_div_intersection", "top-k-div intersection", "|D_k(a) ∩ D_k(b)| / k",
        "Top-k intersection of the diverse (mutually more than w apart) top-k selections.", "set"),
    MetricInfo(
        "lens_recall_div", "w-LENS-recall@k-div", "|N_w(D_k(a)) ∩ D_k(b)| / k",
        "w-LENS-recall@k of the diverse top-k selections.", "set"),
    MetricInfo(
        "lens_precision_div", "w-LENS-prec@k-div", "|D_k(a) ∩ N_w(D_k(b))| / k",
        "w-LENS-prec@k of the diverse top-k selections.", "set"),
    MetricInfo(
        "center_shift", "centre-of-mass shift (px)", "‖C(a) − C(b)‖₂, C(m) = Σ_p m[p]·p / Σ_p m[p]",
        "Distance in pixels between the map-weighted centroids of the two maps.", "distance",
        higher_is_better=False),
)

METRICS: dict[str, MetricInfo] = {m.key: m for m in _METRIC_LIST}
METRIC_KEYS: tuple[str, ...] = tuple(METRICS)


def metric_label(key: str) -> str:
    """The readable name of a metric key ("top-k intersection"); other text is returned as is."""
    info = METRICS.get(key)
    return info.name if info is not None else str(key)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------

def validate_k(k, height: int, width: int) -> int:
    """Return ``k`` as an int, or raise ``ValueError`` naming the allowed range ``1..H*W``."""
    n = int(height) * int(width)
    if isinstance(k, bool) or not isinstance(k, Integral):
        raise ValueError(f"k must be an integer between 1 and H*W = {n}; got {k!r}")
    if not 1 <= int(k) <= n:
        raise ValueError(
            f"k must be between 1 and H*W = {n} for a {height}×{width} map; got k = {k}")
    return int(k)


def validate_w(w) -> int:
    """Return ``w`` as an int, or raise ``ValueError``: ``w`` must be an integer ``>= 0``."""
    if isinstance(w, bool) or not isinstance(w, Integral):
        raise ValueError(f"w (neighbourhood radius) must be an integer >= 0; got {w!r}")
    if int(w) < 0:
        raise ValueError(f"w (neighbourhood radius) must be an integer >= 0; got w = {w}")
    return int(w)


def _as_batch(m, name: str = "map") -> tuple[torch.Tensor, bool]:
    """Check one map and return it as ``(N, H, W)`` plus whether it was a single ``(H, W)`` map."""
    if not isinstance(m, torch.Tensor):
        if isinstance(m, np.ndarray):
            m = torch.from_numpy(m)
        else:
            raise ValueError(f"{name} must be a torch tensor or numpy array of shape (H, W) or "
                             f"(N, H, W); got {type(m).__name__}")
    if m.dim() not in (2, 3):
        raise ValueError(f"{name} must have shape (H, W) or (N, H, W); got shape {tuple(m.shape)}")
    if m.dtype == torch.bool or not (m.is_floating_point() or m.dtype in
                                     (torch.int8, torch.int16, torch.int32, torch.int64,
                                      torch.uint8)):
        raise ValueError(f"{name} must hold real numbers (float or int); got dtype {m.dtype}")
    if m.shape[-1] == 0 or m.shape[-2] == 0 or (m.dim() == 3 and m.shape[0] == 0):
        raise ValueError(f"{name} must not be empty; got shape {tuple(m.shape)}")
    if not m.is_floating_point():
        m = m.float()
    if not torch.isfinite(m).all():
        raise ValueError(f"{name} contains NaN or infinite values; only finite values are allowed")
    if (m < 0).any():
        raise ValueError(f"{name} has negative values; maps must be non-negative "
                         "(use explorer.attributions.to_map to turn an attribution into a map)")
    single = m.dim() == 2
    return (m.unsqueeze(0) if single else m), single


def validate_maps(a, b) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Check a pair of maps; return both as ``(N, H, W)`` on ``a``'s device and the single flag."""
    a3, single_a = _as_batch(a, "map a")
    b3, single_b = _as_batch(b, "map b")
    if a3.shape != b3.shape or single_a != single_b:
        raise ValueError(f"maps a and b must have the same shape; got {tuple(a.shape)} and "
                         f"{tuple(b.shape)}")
    if a3.device != b3.device:
        b3 = b3.to(a3.device)
    dtype = torch.promote_types(a3.dtype, b3.dtype)
    return a3.to(dtype), b3.to(dtype), single_a


def _validate_pair(a, b, k, w) -> tuple[torch.Tensor, torch.Tensor, bool, int, int]:
    """Check a map pair, k and w together: ``(a3, b3, single, k, w)``."""
    a3, b3, single = validate_maps(a, b)
    return a3, b3, single, validate_k(k, a3.shape[1], a3.shape[2]), validate_w(w)


def _unbatch(t: torch.Tensor, single: bool) -> torch.Tensor:
    return t[0] if single else t


# --------------------------------------------------------------------------------------------
# Ranking, top-k, neighbourhoods
# --------------------------------------------------------------------------------------------

def rank_order(m3: torch.Tensor) -> torch.Tensor:
    """Flat pixel indices of each ``(N, H, W)`` map in ranking order, ``(N, H*W)``.

    Descending by value; ties by lower flat index first (a stable sort of the negated values).
    """
    flat = m3.reshape(m3.shape[0], -1)
    # Stable ascending sort of -m keeps equal values in index order. (-0.0 == 0.0 compares equal.)
    return torch.sort(-flat, dim=1, stable=True).indices


def _rank_of(order: torch.Tensor) -> torch.Tensor:
    """Inverse permutation: ``rank[n, p]`` = position of pixel ``p`` in ``order[n]``."""
    rank = torch.empty_like(order)
    positions = torch.arange(order.shape[1], device=order.device).expand_as(order)
    rank.scatter_(1, order, positions)
    return rank


def _rank_keys(m3: torch.Tensor) -> torch.Tensor:
    """One int64 key per pixel, ``(N, H, W)``: unique, >= 1, larger = better-ranked.

    Every top-k and greedy choice compares these keys, so no sort is needed. For maps of at most
    32-bit floats the key packs the value's IEEE bits (monotone for non-negative floats) above
    ``H*W - index`` (the tie rule: lower index first). For float64 maps it is ``H*W - rank`` from
    a stable sort.
    """
    n, h, w = m3.shape
    hw = h * w
    if m3.dtype in (torch.float16, torch.bfloat16, torch.float32) and hw < 2 ** 31:
        v = m3.float() + 0.0  # canonical +0.0: the bits of -0.0 would compare as negative
        bits = v.contiguous().view(torch.int32).to(torch.int64)
        shift = hw.bit_length()
        tie = hw - torch.arange(hw, device=m3.device, dtype=torch.int64).view(1, h, w)
        return (bits << shift) + tie
    return hw - _rank_of(rank_order(m3)).reshape(n, h, w)


def rank_positions(m) -> torch.Tensor:
    """0-based rank of every pixel (0 = top-ranked) under the SPEC tie rule; same shape as ``m``."""
    m3, single = _as_batch(m)
    rank = _rank_of(rank_order(m3)).reshape(m3.shape)
    return _unbatch(rank, single)


def _topk3(m3: torch.Tensor, k: int, keys: torch.Tensor | None = None) -> torch.Tensor:
    n, h, w = m3.shape
    if keys is None:
        keys = _rank_keys(m3)
    top = torch.topk(keys.reshape(n, -1), k, dim=1, sorted=False).indices
    mask = torch.zeros(n, h * w, dtype=torch.bool, device=m3.device)
    mask.scatter_(1, top, True)
    return mask.reshape(n, h, w)


def topk_mask(m, k: int) -> torch.Tensor:
    """Boolean mask of ``S_k(m)``, the ``k`` top-ranked pixels; same shape as ``m``."""
    m3, single = _as_batch(m)
    k = validate_k(k, m3.shape[1], m3.shape[2])
    return _unbatch(_topk3(m3, k), single)


def _window_max_1d(x3: torch.Tensor, w: int, dim: int) -> torch.Tensor:
    """Running maximum over a window of ``2w+1`` along ``dim`` (1 = rows, 2 = columns).

    Padding is the identity of max (-inf; False for booleans; 0 for the non-negative integer rank
    keys), so the window is clipped at the
    borders. The window is built by doubling (max of the array and a shifted copy), which costs
    about log2(2w+1) elementwise maxima: an order of magnitude faster than ``F.max_pool2d`` on
    the CPU, and exactly equal to it.
    """
    pad = [w, w, 0, 0] if dim == 2 else [0, 0, w, w]
    if x3.dtype == torch.bool:
        y = F.pad(x3.to(torch.uint8), pad, value=0)
    elif x3.is_floating_point():
        y = F.pad(x3, pad, value=float("-inf"))
    else:  # non-negative integer keys: 0 is below every key
        y = F.pad(x3, pad, value=0)
    size, window = 1, 2 * w + 1
    while size < window:
        step = min(size, window - size)
        length = y.shape[dim] - step
        y = torch.maximum(y.narrow(dim, 0, length), y.narrow(dim, step, length))
        size += step
    return y.bool() if x3.dtype == torch.bool else y


def _pool(x3: torch.Tensor, w: int) -> torch.Tensor:
    """Max over the (2w+1)×(2w+1) window of each pixel of ``(N, H, W)``, borders clipped.

    The same as ``F.max_pool2d(kernel_size=2w+1, stride=1, padding=w)``, computed separably.
    Works for float maps and boolean masks (where it is the dilation ``N_w``).
    """
    if w == 0:
        return x3
    return _window_max_1d(_window_max_1d(x3, w, 2), w, 1)


def _dilate3(mask3: torch.Tensor, w: int) -> torch.Tensor:
    return mask3.clone() if w == 0 else _pool(mask3, w)


def dilate(mask, w: int) -> torch.Tensor:
    """``N_w(mask)``: every pixel within Chebyshev distance ``w`` of a set pixel; same shape."""
    w = validate_w(w)
    if not isinstance(mask, torch.Tensor) or mask.dim() not in (2, 3):
        raise ValueError("mask must be a tensor of shape (H, W) or (N, H, W)")
    single = mask.dim() == 2
    mask3 = (mask.unsqueeze(0) if single else mask).bool()
    return _unbatch(_dilate3(mask3, w), single)


def maxpool_map(m, w: int) -> torch.Tensor:
    """Each pixel replaced by the maximum of ``m`` over its ``N_w`` window; same shape."""
    w = validate_w(w)
    m3, single = _as_batch(m)
    return _unbatch(_pool(m3, w), single)


def _diverse3(m3: torch.Tensor, k: int, w: int,
              keys: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy diverse top-k of ``(N, H, W)`` maps: ``(mask (N, H, W), count (N,))``.

    The greedy walk accepts a pixel iff no *accepted* pixel ranked above it lies in its
    neighbourhood, i.e. the accepted set is the lexicographically-first maximal independent set
    of the "within w" graph in ranking order. It is computed in parallel rounds: an undecided
    pixel whose window holds no better-ranked pixel that is still undecided or accepted is
    accepted; undecided pixels in the window of an accepted pixel are rejected. Rounds stop as
    soon as the first ``k`` accepted pixels in ranking order are final (every better-ranked pixel
    is decided) or nothing is undecided. The result equals the sequential walk exactly (a
    property test checks it against the plain loop).
    """
    n, h, wd = m3.shape
    if keys is None:
        keys = _rank_keys(m3)
    if w == 0:
        return _topk3(m3, k, keys), torch.full((n,), k, dtype=torch.long, device=m3.device)
    undecided = torch.ones(n, h, wd, dtype=torch.bool, device=m3.device)
    accepted = torch.zeros_like(undecided)
    zero = torch.zeros((), dtype=keys.dtype, device=m3.device)
    while True:
        live = torch.where(undecided | accepted, keys, zero)  # rejected pixels drop out (0)
        new = undecided & (_pool(live, w) == keys)
        accepted |= new
        undecided &= ~(new | _dilate3(accepted, w))
        # Finished when the k best accepted pixels all rank above every undecided pixel.
        best_undecided = torch.where(undecided, keys, zero).amax(dim=(1, 2), keepdim=True)
        final = (accepted & (keys > best_undecided)).sum(dim=(1, 2))
        if not bool(((best_undecided.view(n) > 0) & (final < k)).any()):
            break
    # Keep the first k accepted pixels in ranking order: the k largest accepted keys.
    count = accepted.sum(dim=(1, 2))
    kth = torch.ones(n, dtype=keys.dtype, device=m3.device)
    for i in torch.nonzero(count > k).flatten().tolist():
        kth[i] = torch.topk(keys[i][accepted[i]], k, sorted=False).values.min()
    keep = accepted & (keys >= kth.view(n, 1, 1))
    return keep, keep.sum(dim=(1, 2))


def diverse_topk_mask(m, k: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy diverse top-k ``D_k(m)`` with exclusion radius ``w``.

    Returns ``(mask, count)``: the boolean mask (same shape as ``m``) and how many pixels were
    found per map (fewer than ``k`` when the image is exhausted first).
    """
    m3, single = _as_batch(m)
    k = validate_k(k, m3.shape[1], m3.shape[2])
    w = validate_w(w)
    mask, count = _diverse3(m3, k, w)
    return _unbatch(mask, single), _unbatch(count, single)


def is_degenerate(m) -> torch.Tensor:
    """True where a map sums to 0 (an all-zero map: no ranking, no centroid)."""
    m3, single = _as_batch(m)
    return _unbatch(m3.sum(dim=(1, 2)) == 0, single)


# --------------------------------------------------------------------------------------------
# Correlations and centroid
# --------------------------------------------------------------------------------------------

def _average_ranks_sorted(values: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Average ranks (1-based, ties share their mean rank) from a row-wise sort of ``(N, L)``.

    ``values`` are the sorted rows and ``idx`` the permutation that sorted them (ascending or
    descending: a Pearson correlation of ranks is the same either way).
    """
    n, length = values.shape
    pos = torch.arange(length, device=values.device).expand(n, length)
    starts = torch.ones_like(values, dtype=torch.bool)
    starts[:, 1:] = values[:, 1:] != values[:, :-1]
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    first = torch.where(starts, pos, 0).cummax(dim=1).values
    last = torch.where(ends, pos, length).flip(1).cummin(dim=1).values.flip(1)
    avg = (first + last).double() / 2 + 1
    ranks = torch.empty_like(avg)
    ranks.scatter_(1, idx, avg)
    return ranks


def _average_ranks(m3: torch.Tensor) -> torch.Tensor:
    """Average ranks (1-based, ties share their mean rank) of the pixels of ``(N, H, W)`` maps,
    as float64 ``(N, H*W)``.

    Maps of at most 32-bit floats are sorted as the int64 of their IEEE bits (monotone for
    non-negative floats, below 2**31) plus the row number times 2**32, all rows in one 1-D sort:
    torch sorts a 1-D integer tensor by radix sort, several times faster than its float sort and
    twice as fast as one such sort per row. The order among equal values does not matter (they
    share their average rank). float64 maps are sorted as floats.
    """
    n = m3.shape[0]
    flat = m3.reshape(n, -1)
    if m3.dtype == torch.float64:
        values, idx = torch.sort(flat, dim=1)
        return _average_ranks_sorted(values, idx)
    length = flat.shape[1]
    bits = (flat.float() + 0.0).contiguous().view(torch.int32).to(torch.int64)
    rows = torch.arange(n, device=flat.device, dtype=torch.int64).view(n, 1) << 32
    s = torch.sort((bits + rows).reshape(-1))  # rows stay apart: their keys do not overlap
    return _average_ranks_sorted(s.values.view(n, length), (s.indices % length).view(n, length))


def _pearson_rows(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each row pair, NaN where a row is constant."""
    xc = x - x.mean(dim=1, keepdim=True)
    yc = y - y.mean(dim=1, keepdim=True)
    sxx = (xc * xc).sum(dim=1)
    syy = (yc * yc).sum(dim=1)
    r = (xc * yc).sum(dim=1) / torch.sqrt(sxx * syy)
    r = torch.where((sxx > 0) & (syy > 0), r, torch.full_like(r, float("nan")))
    return r.clamp(-1.0, 1.0)


def _spearman3(a3: torch.Tensor, b3: torch.Tensor) -> torch.Tensor:
    n = a3.shape[0]
    ranks = _average_ranks(torch.cat([a3, b3]))
    return _pearson_rows(ranks[:n], ranks[n:])


def _kendall3(a3: torch.Tensor, b3: torch.Tensor) -> torch.Tensor:
    """Kendall τ-b per map pair (exact, scipy on the CPU); NaN for a constant map."""
    from scipy.stats import kendalltau  # local import: scipy is only needed here

    n = a3.shape[0]
    a_np = a3.reshape(n, -1).detach().double().cpu().numpy()
    b_np = b3.reshape(n, -1).detach().double().cpu().numpy()
    out = np.full(n, np.nan)
    for i in range(n):
        if np.ptp(a_np[i]) == 0 or np.ptp(b_np[i]) == 0:
            continue  # τ-b is undefined for a constant map
        out[i] = kendalltau(a_np[i], b_np[i], variant="b").statistic
    return torch.as_tensor(out, device=a3.device)


def spearman(a, b) -> torch.Tensor:
    """Spearman ρ (average ranks for ties) of each map pair over all pixels; NaN if undefined."""
    a3, b3, single = validate_maps(a, b)
    return _unbatch(_spearman3(a3, b3), single)


def kendall(a, b) -> torch.Tensor:
    """Kendall τ-b of each map pair over all pixels; NaN if undefined."""
    a3, b3, single = validate_maps(a, b)
    return _unbatch(_kendall3(a3, b3), single)


def _centroid3(m3: torch.Tensor) -> torch.Tensor:
    n, h, w = m3.shape
    m = m3.double()
    total = m.sum(dim=(1, 2))
    rows = torch.arange(h, device=m.device, dtype=torch.float64)
    cols = torch.arange(w, device=m.device, dtype=torch.float64)
    cy = (m.sum(dim=2) * rows).sum(dim=1) / total
    cx = (m.sum(dim=1) * cols).sum(dim=1) / total
    c = torch.stack([cy, cx], dim=1)
    return torch.where((total > 0).view(n, 1), c, torch.full_like(c, float("nan")))


def center_of_mass(m) -> torch.Tensor:
    """Map-weighted centroid ``(row, col)`` in pixels, ``(N, 2)`` or ``(2,)``; NaN if degenerate."""
    m3, single = _as_batch(m)
    return _unbatch(_centroid3(m3), single)


# --------------------------------------------------------------------------------------------
# The panel
# --------------------------------------------------------------------------------------------

def _frac(mask3: torch.Tensor, k: int) -> torch.Tensor:
    return mask3.sum(dim=(1, 2)).double() / k


SET_METRIC_KEYS: tuple[str, ...] = tuple(k for k, m in METRICS.items() if m.kind == "set")


def _set_metrics3(a3: torch.Tensor, b3: torch.Tensor, k: int, w: int,
                  keys: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    n = a3.shape[0]
    both = torch.cat([a3, b3])
    if keys is None:
        keys = _rank_keys(both)  # one set of rank keys serves top-k and the diverse walk
    top = _topk3(both, k, keys)
    div, _ = _diverse3(both, k, w, keys)
    grown = _dilate3(torch.cat([top, div]), w)
    ta, tb, da, db = top[:n], top[n:], div[:n], div[n:]
    nta, ntb, nda, ndb = grown[:n], grown[n:2 * n], grown[2 * n:3 * n], grown[3 * n:]
    return {
        "topk_intersection": _frac(ta & tb, k),
        "lens_recall": _frac(nta & tb, k),
        "lens_precision": _frac(ta & ntb, k),
        "topk_div_intersection": _frac(da & db, k),
        "lens_recall_div": _frac(nda & db, k),
        "lens_precision_div": _frac(da & ndb, k),
    }


def set_metrics(a, b, k: int, w: int) -> dict[str, torch.Tensor]:
    """Only the six set metrics of :func:`compare` (top-k, LENS and their diverse variants).

    Cheaper than :func:`compare` (no correlations); same values, same validation.
    """
    a3, b3, single, k, w = _validate_pair(a, b, k, w)
    return {key: _unbatch(v, single) for key, v in _set_metrics3(a3, b3, k, w).items()}


RANK_METRIC_KEYS: tuple[str, ...] = tuple(k for k in METRIC_KEYS if k not in SET_METRIC_KEYS)
LENS_RANK_KEYS: tuple[str, ...] = ("lens_spearman", "lens_kendall")


def _rank_metrics3(a3: torch.Tensor, b3: torch.Tensor, w: int,
                   lens_only: bool = False) -> dict[str, torch.Tensor]:
    n = a3.shape[0]
    both = torch.cat([a3, b3])
    out: dict[str, torch.Tensor] = {}
    if not lens_only or w == 0:
        ranks = _average_ranks(both)
        out["spearman"] = _pearson_rows(ranks[:n], ranks[n:])
        out["kendall"] = _kendall3(a3, b3)
    if w == 0:
        out["lens_spearman"] = out["spearman"].clone()
        out["lens_kendall"] = out["kendall"].clone()
    else:
        pooled = _pool(both, w)
        out["lens_spearman"] = _spearman3(pooled[:n], pooled[n:])
        out["lens_kendall"] = _kendall3(pooled[:n], pooled[n:])
    if not lens_only:
        out["center_shift"] = torch.linalg.vector_norm(_centroid3(a3) - _centroid3(b3), dim=1)
    keys = LENS_RANK_KEYS if lens_only else RANK_METRIC_KEYS
    return {key: out[key].double() for key in keys}


def rank_metrics(a, b, w: int, lens_only: bool = False) -> dict[str, torch.Tensor]:
    """The metrics of :func:`compare` that do not depend on k: Spearman, Kendall, their LENS
    variants at ``w`` and the centre shift (``lens_only``: only the two LENS correlations, the
    part that changes with ``w``). Same values and validation as :func:`compare`."""
    a3, b3, single = validate_maps(a, b)
    w = validate_w(w)
    return {key: _unbatch(v, single) for key, v in _rank_metrics3(a3, b3, w, lens_only).items()}


def compare(a, b, k: int, w: int) -> dict[str, torch.Tensor]:
    """Every metric of :data:`METRICS` between original maps ``a`` and perturbed maps ``b``.

    ``a``, ``b``: ``(H, W)`` or ``(N, H, W)``, non-negative and finite. Returns a dict with exactly
    :data:`METRIC_KEYS`; each value is a float64 tensor ``(N,)`` (0-d for single maps) on ``a``'s
    device. Correlations of a constant/degenerate map and the centre shift of a degenerate map
    are NaN. ``compare`` = :func:`set_metrics` (depends on k and w) + :func:`rank_metrics`
    (depends on w only).
    """
    a3, b3, single, k, w = _validate_pair(a, b, k, w)
    out = _set_metrics3(a3, b3, k, w)
    out.update(_rank_metrics3(a3, b3, w))
    return {key: _unbatch(out[key].double(), single) for key in METRIC_KEYS}


def overlap_masks(a, b, k: int, w: int) -> dict[str, torch.Tensor]:
    """Masks for drawing which top-k pixels matched exactly, moved within ``w``, or were lost.

    Keys (boolean, same shape as ``a``):
      ``orig_topk``, ``adv_topk``: ``S_k(a)``, ``S_k(b)``;
      ``orig_exact``/``orig_within``/``orig_lost``: a partition of ``S_k(a)`` into pixels in
      ``S_k(b)``, in ``N_w(S_k(b)) \\ S_k(b)``, and outside ``N_w(S_k(b))``
      (``exact + within = lens_precision · k``);
      ``adv_exact``/``adv_within``/``adv_new``: the same partition of ``S_k(b)`` against ``S_k(a)``
      (``exact + within = lens_recall · k``);
      ``orig_neighbourhood``, ``adv_neighbourhood``: ``N_w(S_k(a))``, ``N_w(S_k(b))``;
      ``orig_diverse``, ``adv_diverse``: ``D_k(a)``, ``D_k(b)``.
    And LongTensor counts ``orig_diverse_count``, ``adv_diverse_count``.
    """
    a3, b3, single, k, w = _validate_pair(a, b, k, w)
    n = a3.shape[0]
    both = torch.cat([a3, b3])
    keys = _rank_keys(both)
    top = _topk3(both, k, keys)
    ta, tb = top[:n], top[n:]
    grown = _dilate3(top, w)
    nta, ntb = grown[:n], grown[n:]
    div, count = _diverse3(both, k, w, keys)
    out = {
        "orig_topk": ta,
        "adv_topk": tb,
        "orig_exact": ta & tb,
        "orig_within": ta & ntb & ~tb,
        "orig_lost": ta & ~ntb,
        "adv_exact": tb & ta,
        "adv_within": tb & nta & ~ta,
        "adv_new": tb & ~nta,
        "orig_neighbourhood": nta,
        "adv_neighbourhood": ntb,
        "orig_diverse": div[:n],
        "adv_diverse": div[n:],
        "orig_diverse_count": count[:n],
        "adv_diverse_count": count[n:],
    }
    return {key: _unbatch(v, single) for key, v in out.items()}


# --------------------------------------------------------------------------------------------
# Bookkeeping: zero-valued ties in the sets and the size of the diverse set
# --------------------------------------------------------------------------------------------

def _set_counts3(m3: torch.Tensor, k: int, w: int) -> dict[str, torch.Tensor]:
    keys = _rank_keys(m3)
    zero = m3 == 0
    div, count = _diverse3(m3, k, w, keys)
    return {"topk_zeros": (_topk3(m3, k, keys) & zero).sum(dim=(1, 2)),
            "diverse_zeros": (div & zero).sum(dim=(1, 2)), "diverse_count": count.long()}


def set_counts(m, k: int, w: int) -> dict[str, torch.Tensor]:
    """Per map, LongTensors ``(N,)`` (0-d for one map): ``topk_zeros`` and ``diverse_zeros``, the
    zero-valued pixels in ``S_k`` and ``D_k`` (chosen by the index tie rule, not by the
    attribution), and ``diverse_count`` = ``|D_k|`` (below k when the walk runs out of room)."""
    m3, single = _as_batch(m)
    k = validate_k(k, m3.shape[1], m3.shape[2])
    return {key: _unbatch(v, single) for key, v in _set_counts3(m3, k, validate_w(w)).items()}


def pair_set_counts(a, b, k: int, w: int) -> dict[str, torch.Tensor]:
    """:func:`set_counts` of both maps of each pair, prefixed ``orig_`` (a) and ``adv_`` (b)."""
    a3, b3, single, k, w = _validate_pair(a, b, k, w)
    n = a3.shape[0]
    out = {}
    for key, v in _set_counts3(torch.cat([a3, b3]), k, w).items():
        out["orig_" + key], out["adv_" + key] = _unbatch(v[:n], single), _unbatch(v[n:], single)
    return out


def set_flags(m, k: int, w: int, zero_share: float = 0.5) -> dict[str, torch.Tensor]:
    """Boolean per map: ``topk_mostly_zero`` (more than ``zero_share`` of ``S_k`` is zero-valued
    ties), ``diverse_mostly_zero`` (the same for ``D_k``), ``diverse_short`` (``|D_k| < k``)."""
    return _flags(set_counts(m, k, w), k, zero_share)


def _flags(c: dict[str, torch.Tensor], k: int, zero_share: float) -> dict[str, torch.Tensor]:
    if not 0 <= zero_share < 1:
        raise ValueError(f"zero_share must be in [0, 1); got {zero_share!r}")
    return {"topk_mostly_zero": c["topk_zeros"] > zero_share * k,
            "diverse_mostly_zero": c["diverse_zeros"] > zero_share * c["diverse_count"],
            "diverse_short": c["diverse_count"] < k}


def set_warnings(m, k: int, w: int, zero_share: float = 0.5, name: str = "the map") -> list[str]:
    """Plain-text warnings for one ``(H, W)`` map (empty when none): the top-k or diverse set is
    mostly zero-valued ties, or the diverse set is smaller than k."""
    m3, _ = _as_batch(m)
    if m3.shape[0] != 1:
        raise ValueError(f"set_warnings takes one (H, W) map; got shape {tuple(m.shape)}")
    counts = set_counts(m3, k, w)
    f = {key: bool(v[0]) for key, v in _flags(counts, k, zero_share).items()}
    c = {key: int(v[0]) for key, v in counts.items()}
    out = []
    if f["topk_mostly_zero"]:
        out.append(f"{c['topk_zeros']} of the top-{k} pixels of {name} are zero-valued: they are "
                   "ties picked by pixel order, not by the attribution.")
    if f["diverse_mostly_zero"]:
        out.append(f"{c['diverse_zeros']} of the {c['diverse_count']} diverse picks of {name} are "
                   "zero-valued ties picked by pixel order, not by the attribution.")
    if f["diverse_short"]:
        out.append(f"The diverse selection of {name} found only {c['diverse_count']} of k = {k} "
                   f"pixels at w = {w}: every *-div score is at most {c['diverse_count'] / k:.2f}, "
                   "even for identical maps.")
    return out
