"""Chance levels of the robustness metrics: the score a pair of *unrelated* maps would get.

A score means little on its own: two saliency maps of different MNIST digits already share a
quarter of their top-100 pixels. This module gives every metric of :func:`metrics.compare` two
references and a normalised score (``docs/metrics.md``, section "Chance levels", has the
derivations):

- :func:`permutation_chance`: the expected score when ``b``'s values are permuted uniformly at
  random over the pixels (same values, no spatial relation to ``a``), under the tie rule of
  :mod:`explorer.metrics` (equal values ranked by lower flat index first).
  Exact, in closed form: top-k intersection, w-LENS-recall@k (linearity over the exact
  per-pixel inclusion probabilities), w-LENS-prec@k (exact window-miss probabilities), Spearman
  and Kendall (0), and every metric at ``w = 0`` except the centre shift. Seeded Monte-Carlo with
  its standard error: the three diverse variants at ``w >= 1`` (the inclusion probability of a
  pixel in a greedy independent set under a random order has no closed form on a grid), the
  LENS correlations at ``w >= 1`` (pooling gives both maps border structure, so they are not 0)
  and the centre shift (an expected Euclidean norm). :func:`permutation_chance_detail` returns
  the standard errors and the method of each key.
- :func:`unrelated_baseline`: the scores between maps of *different* images (same dataset, model
  and method), over all ordered pairs or given pairs (e.g. a :func:`derangement` of a batch),
  summarised as a :class:`Baseline` (mean, std, percentiles).
- :func:`normalise`: ``(s - c) / (1 - c)`` for similarities (1 = perfect, 0 = chance, < 0 = below
  chance), ``(c - s) / c`` for distances such as the centre shift (0 px is perfect); undefined
  (NaN) when the chance level already equals the perfect score.

Imports only :mod:`explorer.metrics` and :mod:`explorer.set_curves` of the project (also the
former's private batched helpers, so that the hundreds of permuted maps of one call are not
validated one by one).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import torch
from scipy.special import gammaln

from explorer import metrics as M
from explorer import set_curves as SC

__all__ = [
    "DEFAULT_DRAWS",
    "DEFAULT_RANK_DRAWS",
    "LARGE_MAP_PIXELS",
    "LARGE_MAP_DRAWS",
    "LARGE_MAP_RANK_DRAWS",
    "default_draws",
    "ChanceLevels",
    "Baseline",
    "permutation_chance",
    "permutation_chance_detail",
    "permutation_chance_over_k",
    "inclusion_probabilities",
    "all_pairs",
    "derangement",
    "random_pairs",
    "unrelated_scores",
    "unrelated_scores_over_k",
    "unrelated_baseline",
    "unrelated_baseline_over_k",
    "summarise",
    "normalise",
    "normalise_scores",
]

# Monte-Carlo permutations (draws=None): for the diverse variants, w-LENS-Spearman and the centre
# shift, and for w-LENS-Kendall at w >= 1 (scipy's τ-b, one call per draw). Maps above
# LARGE_MAP_PIXELS get fewer: each draw costs more and its score varies less between draws.
DEFAULT_DRAWS = 200
DEFAULT_RANK_DRAWS = 50
LARGE_MAP_PIXELS = 64 * 64
LARGE_MAP_DRAWS = 32
LARGE_MAP_RANK_DRAWS = 8


@dataclass(frozen=True)
class ChanceLevels:
    """Permutation chance levels of one batch of map pairs.

    ``values[key]``, ``se[key]``: float64 tensors ``(N,)`` (0-d for a single pair), one per metric
    key asked for; ``se`` is 0 for exact keys and the Monte-Carlo standard error
    (sample std / sqrt(draws)) otherwise. ``method[key]``: ``"closed form"``,
    ``"Monte-Carlo (R draws, ...)"``, or ``"not available"`` (NaN) for a metric this module
    does not know.
    """

    values: dict[str, torch.Tensor]
    se: dict[str, torch.Tensor]
    method: dict[str, str]
    draws: int
    rank_draws: int
    seed: int


@dataclass(frozen=True)
class Baseline:
    """Summary of a metric over pairs of unrelated maps. NaN scores (a degenerate or constant map)
    are left out and counted in ``n_undefined``; ``n`` is the number of defined scores."""

    mean: float
    std: float
    n: int
    p05: float
    p50: float
    p95: float
    min: float
    max: float
    n_undefined: int = 0


# --------------------------------------------------------------------------------------------
# Exact pieces: the tie structure of b and hypergeometric tails
# --------------------------------------------------------------------------------------------

def _log_ff(a, j):
    """log of the falling factorial a (a-1) ... (a-j+1); -inf where j > a (the product is 0)."""
    a = np.asarray(a, dtype=np.float64)
    j = np.asarray(j, dtype=np.float64)
    ok = (j <= a) & (j >= 0)
    out = gammaln(np.where(ok, a, 0) + 1) - gammaln(np.where(ok, a - j, 0) + 1)
    return np.where(ok, out, -np.inf)


def _log_comb(a, j):
    return _log_ff(a, j) - gammaln(np.asarray(j, dtype=np.float64) + 1)


def _rth_success_cdf(pop: int, succ: int, r: int) -> np.ndarray:
    """``c[g]`` = P(at least ``r`` successes among the first ``g`` items), ``g = 0..pop``, for a
    uniformly random order of ``pop`` items of which ``succ`` are successes (a hypergeometric
    tail). Computed as the CDF of the position ``T`` of the r-th success (negative
    hypergeometric): P(T = t) = C(t-1, r-1) C(pop-t, succ-r) / C(pop, succ)."""
    c = np.zeros(pop + 1)
    if succ < r or r < 1:
        if r < 1:
            c[:] = 1.0
        return c
    t = np.arange(r, pop - succ + r + 1)
    logp = _log_comb(t - 1, r - 1) + _log_comb(pop - t, succ - r) - _log_comb(pop, succ)
    c[r:pop - succ + r + 1] = np.cumsum(np.exp(logp))
    c[pop - succ + r:] = 1.0
    return np.minimum(c, 1.0)


@dataclass(frozen=True)
class _Ties:
    """How S_k(b') is formed: ``high`` pixels above the k-th value t (all in S_k), ``tied`` pixels
    equal to t of which the ``r`` lowest-indexed are in S_k, ``low`` pixels below t."""

    n: int
    high: int
    tied: int
    r: int

    @property
    def low(self) -> int:
        return self.n - self.high - self.tied


def _ties(values: np.ndarray, k: int) -> _Ties:
    n = values.size
    t = np.partition(values, n - k)[n - k]  # the k-th largest value
    high = int((values > t).sum())
    return _Ties(n, high, int((values == t).sum()), k - high)


def _inclusion(tie: _Ties) -> np.ndarray:
    """P(p ∈ S_k(b')) for every flat index p: a high value (prob high/n), or a tied value with
    fewer than r of the other tied values at lower indices (the other tied - 1 tied values fall
    uniformly on the other n - 1 pixels: a hypergeometric count over the p pixels before p)."""
    n = tie.n
    before = _rth_success_cdf(n - 1, tie.tied - 1, tie.r)[:n]  # P(>= r other ties before p)
    return tie.high / n + tie.tied / n * (1.0 - before)


def _window_miss(ys: np.ndarray, xs: np.ndarray, h: int, wd: int, w: int,
                 tie: _Ties) -> np.ndarray:
    """P(N_w(p) ∩ S_k(b') = ∅) for the pixels p = (ys, xs), exactly.

    Let the window's pixels in flat-index order be w_1 < ... < w_m. The window misses S_k(b')
    iff no window pixel gets a high value and no tied window pixel is among the r lowest-indexed
    tied pixels. Either every window pixel is low, or w_j is the first tied one (w_1..w_{j-1}
    low), u of the later m - j window pixels are tied and the rest low, and at least r tied
    values fall on the g_j = w_j - (j - 1) pixels outside the window that precede w_j (a
    hypergeometric tail over the n - m pixels outside the window, which hold the remaining
    tied - 1 - u tied values).
    """
    n, low, tied, r = tie.n, tie.low, tie.tied, tie.r
    y0, y1 = np.maximum(ys - w, 0), np.minimum(ys + w, h - 1)
    x0, x1 = np.maximum(xs - w, 0), np.minimum(xs + w, wd - 1)
    nr, nc = y1 - y0 + 1, x1 - x0 + 1
    out = np.empty(ys.size)
    for rows, cols in {(int(a), int(b)) for a, b in zip(nr, nc)}:
        sel = np.nonzero((nr == rows) & (nc == cols))[0]
        m = rows * cols
        jj = np.arange(m)
        flat = (y0[sel, None] + jj // cols) * wd + x0[sel, None] + jj % cols
        gaps = flat - jj  # pixels outside the window before its (j+1)-th pixel
        log_den = _log_ff(n, m)
        prob = np.full(sel.size, np.exp(_log_ff(low, m) - log_den))
        for u in range(0, min(m - 1, tied - 1 - r) + 1):
            if m - 1 - u > low:
                continue
            tail = _rth_success_cdf(n - m, tied - 1 - u, r)
            j_last = m - 1 - u  # 0-based j with at least u window pixels after it
            coef = np.exp(_log_comb(m - 1 - jj[:j_last + 1], u) + _log_ff(tied, 1 + u)
                          + _log_ff(low, m - 1 - u) - log_den)
            prob += (tail[gaps[:, :j_last + 1]] * coef).sum(axis=1)
        out[sel] = prob
    return np.clip(out, 0.0, 1.0)


def inclusion_probabilities(map_b, k: int) -> torch.Tensor:
    """P(pixel ∈ S_k(b')) under a uniform random permutation b' of b's values, exactly (tie rule
    included: when the k-th value is shared, low flat indices are likelier). Same shape as
    ``map_b``, float64; sums to k per map. Without ties at the k-th value every entry is k/HW."""
    b3, single = M._as_batch(map_b, "map b")
    k = M.validate_k(k, b3.shape[1], b3.shape[2])
    flat = b3.reshape(b3.shape[0], -1).detach().double().cpu().numpy()
    q = np.stack([_inclusion(_ties(v, k)) for v in flat]).reshape(b3.shape)
    out = torch.as_tensor(q, device=b3.device)
    return out[0] if single else out


# --------------------------------------------------------------------------------------------
# Permutation chance
# --------------------------------------------------------------------------------------------

_EXACT_ALWAYS = ("topk_intersection", "lens_recall", "lens_precision", "spearman", "kendall")
_DIVERSE = ("topk_div_intersection", "lens_recall_div", "lens_precision_div")
_LENS_RANK = ("lens_spearman", "lens_kendall")
_KNOWN = _EXACT_ALWAYS + _DIVERSE + _LENS_RANK + ("center_shift",)


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or int(value) < low:
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")
    return int(value)


def _check_keys(keys) -> tuple[str, ...]:
    if keys is None:
        return M.METRIC_KEYS
    keys = (keys,) if isinstance(keys, str) else tuple(keys)
    unknown = [key for key in keys if key not in M.METRICS]
    if unknown:
        raise ValueError(f"unknown metric key(s) {unknown}; allowed: {', '.join(M.METRIC_KEYS)}")
    return tuple(dict.fromkeys(keys))


def _mean_se(x: torch.Tensor) -> tuple[float, float]:
    x = x.double()
    x = x[~torch.isnan(x)]
    if x.numel() == 0:
        return float("nan"), float("nan")
    se = float(x.std(unbiased=True)) / x.numel() ** 0.5 if x.numel() > 1 else float("nan")
    return float(x.mean()), se


def default_draws(pixels: int) -> tuple[int, int]:
    """``(draws, rank_draws)`` used when they are not given, for maps of ``pixels`` = H*W pixels:
    (200, 50) up to 64×64 pixels, (32, 8) above."""
    if pixels <= LARGE_MAP_PIXELS:
        return DEFAULT_DRAWS, DEFAULT_RANK_DRAWS
    return LARGE_MAP_DRAWS, LARGE_MAP_RANK_DRAWS


def _double_sampling(tau: torch.Tensor, rho: torch.Tensor) -> tuple[float, float]:
    """Mean of τ over all draws from τ on the first ``len(tau)`` draws and ρ on all of them: the
    regression (double-sampling) estimator ``mean_s(τ) + β (mean(ρ) − mean_s(ρ))``, β the
    least-squares slope of τ on ρ over the small sample, and its standard error
    ``√(s²_res (1/n_s − 1/n) + s²_τ / n)`` (Cochran, *Sampling Techniques*, ch. 12, double
    sampling). Kendall's and Spearman's values of one draw are almost collinear, so this is
    tighter than the plain mean of ``n_s`` draws. Falls back to the plain mean where ρ does
    not vary or NaN occurs."""
    t, r_small = tau.double(), rho[:tau.numel()].double()
    ok = ~(torch.isnan(t) | torch.isnan(r_small))
    if not bool(ok.all()) or bool(torch.isnan(rho).any()) or float(r_small.var()) == 0:
        return _mean_se(t)
    n_s, n = t.numel(), rho.numel()
    beta = float(((t - t.mean()) * (r_small - r_small.mean())).sum() / ((r_small - r_small.mean())
                                                                      ** 2).sum())
    est = float(t.mean()) + beta * (float(rho.double().mean()) - float(r_small.mean()))
    resid = t - t.mean() - beta * (r_small - r_small.mean())
    s2_res = float((resid ** 2).sum()) / max(n_s - 2, 1)
    var = s2_res * (1 / n_s - 1 / n) + float(t.var()) / n
    return est, max(var, 0.0) ** 0.5


def _permutations(hw: int, draws: int, seed: int) -> torch.Tensor:
    """``draws`` seeded uniform permutations of ``0..hw-1``, ``(draws, hw)`` (the argsort of iid
    uniforms). Small ones are cached: the app asks again on every k or w move."""
    if hw * draws <= _PERM_CACHE_LIMIT:
        return _cached_permutations(hw, draws, seed)
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(draws, hw, generator=gen).argsort(dim=1)


_PERM_CACHE_LIMIT = 1 << 21  # elements (16 MiB of int64) per cached block


@functools.lru_cache(maxsize=8)
def _cached_permutations(hw: int, draws: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(draws, hw, generator=gen).argsort(dim=1)


def permutation_chance_detail(map_a, map_b, k: int, w: int, *, draws: int | None = None,
                              rank_draws: int | None = None, seed: int = 0,
                              keys=None) -> ChanceLevels:
    """The permutation chance level of every metric with its standard error and method.

    ``map_a``, ``map_b``: ``(H, W)`` or ``(N, H, W)`` as for :func:`metrics.compare`. The chance
    level of a pair is the expectation of the metric between ``a`` and ``b∘π`` over uniformly
    random permutations π of the pixels (``b``'s values scattered at random; ``a`` fixed).

    Exact (``se`` = 0):

    - top-k intersection ``Σ_{p ∈ S_k(a)} q(p) / k`` and w-LENS-recall@k
      ``Σ_{p ∈ N_w(S_k(a))} q(p) / k`` with ``q`` from :func:`inclusion_probabilities`
      (``k/HW`` and ``|N_w(S_k(a))|/HW`` when the k-th value of ``b`` is not tied);
    - w-LENS-prec@k ``Σ_{p ∈ S_k(a)} (1 - P(N_w(p) ∩ S_k(b') = ∅)) / k``, the miss probability
      exact (``C(HW - |N_w(p)|, k) / C(HW, k)`` without ties; with ties a hypergeometric sum,
      see ``docs/metrics.md``);
    - Spearman ρ and Kendall τ-b: 0 (the numerator's expectation vanishes by exchangeability
      and the denominators do not depend on π); NaN where a map is constant, as in ``compare``;
    - at ``w = 0`` the diverse variants equal top-k intersection and the LENS correlations
      equal the plain ones, so they are exact too.

    Monte-Carlo over ``draws`` seeded permutations (the first ``rank_draws`` of them for
    w-LENS-Kendall, whose τ-b costs a scipy call per draw, with w-LENS-Spearman over all draws
    as its control variate; ``None``: :func:`default_draws`), the same for every pair of the
    batch: the diverse variants and the LENS correlations at ``w >= 1``, and the centre shift
    (lower is better: its chance level is the expected centroid distance when b's mass is
    scattered at random, roughly the distance from C(a) to the image centre; a shift at or above
    it says nothing is left of a's location).
    """
    return permutation_chance_over_k(map_a, map_b, [k], w, draws=draws, rank_draws=rank_draws,
                                     seed=seed, keys=keys)[0]


def permutation_chance_over_k(map_a, map_b, ks, w: int, *, draws: int | None = None,
                              rank_draws: int | None = None, seed: int = 0,
                              keys=None) -> list[ChanceLevels]:
    """:func:`permutation_chance_detail` at every k of ``ks``: one :class:`ChanceLevels` per k,
    in order, equal to calling it once per k (same permutations, same values).

    What does not depend on k (the correlations, the centre shift) is computed once, and the
    diverse variants take one greedy walk per permuted map, at the largest k: the walk accepts
    pixels in ranking order, so the first k it accepts are ``D_k`` (:mod:`explorer.set_curves`).
    """
    a3, b3, single, _, w = M._validate_pair(map_a, map_b, 1, w)
    n, h, wd = a3.shape
    ks = SC.check_ks(ks, h, wd)
    auto_draws, auto_rank = default_draws(h * wd)
    draws = _check_int("draws", auto_draws if draws is None else draws, 2)
    rank_draws = _check_int("rank_draws", auto_rank if rank_draws is None else rank_draws, 2)
    seed = _check_int("seed", seed, 0)
    keys = _check_keys(keys)
    hw = h * wd
    dev = a3.device
    nan = float("nan")
    values = [{key: torch.full((n,), nan, dtype=torch.float64) for key in keys} for _ in ks]
    se = [{key: torch.zeros(n, dtype=torch.float64) for key in keys} for _ in ks]
    mc = f"Monte-Carlo ({draws} draws, seed {seed})"
    rank_draws = min(rank_draws, draws)
    mc_rank = (f"Monte-Carlo ({rank_draws} draws, w-LENS-Spearman over {draws} draws as control "
               f"variate, seed {seed})")
    method = {}
    for key in keys:
        if key not in _KNOWN:  # a metric added to metrics.METRICS without a chance level here
            method[key] = "not available"
        elif key in _EXACT_ALWAYS or (w == 0 and key in _DIVERSE + _LENS_RANK):
            method[key] = "closed form"
        else:
            method[key] = mc_rank if key == "lens_kendall" else mc

    need_mc = any(method[key].startswith("Monte-Carlo") for key in keys)
    if need_mc:
        perm = _permutations(hw, draws, seed).to(dev)
    a_np = a3.reshape(n, -1).detach().double().cpu().numpy()
    b_np = b3.reshape(n, -1).detach().double().cpu().numpy()
    exact_set = {"topk_intersection", "lens_recall", "lens_precision"}
    if w == 0:
        exact_set |= set(_DIVERSE)
    exact_set &= set(keys)
    mc_div = [key for key in _DIVERSE if method.get(key) == mc]
    ranks_a = (SC.set_ranks(a3, w, max(ks), diverse=bool(mc_div)) if exact_set or mc_div
               else None)
    for i in range(n):
        if exact_set:
            for j, k in enumerate(ks):
                _exact_set_levels(values[j], i, ranks_a, b_np[i], k, w, h, wd)
        const_a, const_b = np.ptp(a_np[i]) == 0, np.ptp(b_np[i]) == 0
        for key in ("spearman", "kendall") + (_LENS_RANK if w == 0 else ()):
            for j in range(len(ks)):
                if key in values[j]:
                    values[j][key][i] = nan if (const_a or const_b) else 0.0
        if not need_mc:
            continue
        bp = b3[i].reshape(-1)[perm].reshape(draws, h, wd)
        per_draw: dict[str, torch.Tensor] = {}  # the same at every k: (draws,)
        if mc_div:
            sc = SC.pair_scores_over_k(ranks_a, SC.set_ranks(bp, w, max(ks)), ks,
                                       torch.full((draws,), i), torch.arange(draws), mc_div)
            for key, v in sc.items():
                for j in range(len(ks)):
                    values[j][key][i], se[j][key][i] = _mean_se(v[j])
        if method.get("lens_spearman") == mc or method.get("lens_kendall") == mc_rank:
            pooled_a, pooled_b = M._pool(a3[i:i + 1], w), M._pool(bp, w)
            # Spearman: cheap (radix-sorted ranks), every draw; also the control variate of
            # Kendall, whose τ-b (one scipy call per draw) runs on the first rank_draws draws.
            ranks_pa = M._average_ranks(pooled_a).expand(draws, hw)
            rho = M._pearson_rows(ranks_pa, M._average_ranks(pooled_b))
            per_draw["lens_spearman"] = rho
            if "lens_kendall" in keys:
                sub = pooled_b[:rank_draws]
                tau = M._kendall3(pooled_a.expand_as(sub), sub)
                est = _double_sampling(tau, rho)
                for j in range(len(ks)):
                    values[j]["lens_kendall"][i], se[j]["lens_kendall"][i] = est
        if "center_shift" in keys:
            diff = M._centroid3(bp) - M._centroid3(a3[i:i + 1])
            per_draw["center_shift"] = torch.linalg.vector_norm(diff, dim=1)
        for key, x in per_draw.items():
            if key in keys and method[key] == mc:
                est = _mean_se(x)
                for j in range(len(ks)):
                    values[j][key][i], se[j][key][i] = est

    def shape(t: torch.Tensor) -> torch.Tensor:
        t = t.to(dev)
        return t[0] if single else t

    return [ChanceLevels({key: shape(v[key]) for key in keys}, {key: shape(s[key]) for key in keys},
                         method, draws, rank_draws, seed) for v, s in zip(values, se)]


def _exact_set_levels(out: dict, i: int, ranks_a, b_values: np.ndarray, k: int, w: int,
                      h: int, wd: int) -> None:
    """The closed-form set levels of pair ``i`` at ``k`` into ``out[key][i]`` (the keys of
    ``out`` that have one: top-k intersection and the two LENS directions, and at w = 0 the
    diverse variants, which then equal top-k intersection)."""
    tie = _ties(b_values, k)
    q = _inclusion(tie)
    ta = (ranks_a.top[i] < k).reshape(-1).cpu().numpy()
    topk = q[ta].sum() / k
    recall = q[(ranks_a.near_top[i] < k).reshape(-1).cpu().numpy()].sum() / k
    ys, xs = np.divmod(np.nonzero(ta)[0], wd)
    prec = (1.0 - _window_miss(ys, xs, h, wd, w, tie)).sum() / k if w > 0 else topk
    exact = {"topk_intersection": topk, "lens_recall": recall, "lens_precision": prec}
    if w == 0:
        exact.update({key: topk for key in _DIVERSE})
    for key, v in exact.items():
        if key in out:  # a set metric lies in [0, 1]; clip the rounding of the sums
            out[key][i] = min(max(float(v), 0.0), 1.0)


def permutation_chance(map_a, map_b, k: int, w: int, *, draws: int | None = None,
                       rank_draws: int | None = None, seed: int = 0,
                       keys=None) -> dict[str, torch.Tensor]:
    """The expected value of every metric of :func:`metrics.compare` when ``b``'s values are
    permuted uniformly at random over the pixels: ``{key: float64 tensor (N,)}`` (0-d for a
    single ``(H, W)`` pair, as ``compare``). ``keys`` restricts the metrics computed. See
    :func:`permutation_chance_detail` for the methods and the standard errors."""
    return permutation_chance_detail(map_a, map_b, k, w, draws=draws, rank_draws=rank_draws,
                                     seed=seed, keys=keys).values


# --------------------------------------------------------------------------------------------
# Unrelated-image baseline
# --------------------------------------------------------------------------------------------

def all_pairs(m: int) -> torch.Tensor:
    """Every ordered pair ``(i, j)`` with ``i != j`` of ``m`` items, ``(m(m-1), 2)`` LongTensor."""
    m = _check_int("the number of maps", m, 2)
    i, j = torch.meshgrid(torch.arange(m), torch.arange(m), indexing="ij")
    keep = i != j
    return torch.stack([i[keep], j[keep]], dim=1)


def derangement(n: int, seed: int = 0) -> torch.Tensor:
    """A uniformly random permutation ``d`` of ``0..n-1`` with ``d[i] != i`` for every i, seeded
    (rejection sampling: about e ≈ 2.7 tries). Pair image i with image d[i]: every image meets
    an unrelated one, each exactly once as first and once as second map. Needs ``n >= 2``."""
    n = _check_int("n (the number of images for a derangement)", n, 2)
    rng = np.random.default_rng(_check_int("seed", seed, 0))
    while True:
        d = rng.permutation(n)
        if not (d == np.arange(n)).any():
            return torch.as_tensor(d, dtype=torch.long)


def random_pairs(m: int, count: int, seed: int = 0) -> torch.Tensor:
    """``count`` distinct ordered pairs ``(i, j)``, ``i != j``, drawn without replacement from the
    ``m(m-1)`` pairs of ``m`` maps, seeded; ``(count, 2)``."""
    pairs = all_pairs(m)
    count = _check_int("count", count, 1)
    if count > pairs.shape[0]:
        raise ValueError(f"count must be at most m(m-1) = {pairs.shape[0]} for m = {m}; "
                         f"got {count}")
    rng = np.random.default_rng(_check_int("seed", seed, 0))
    return pairs[torch.as_tensor(np.sort(rng.choice(pairs.shape[0], count, replace=False)))]


def _check_pairs(pairs, m: int) -> torch.Tensor:
    if pairs is None:
        return all_pairs(m)
    p = pairs.detach().cpu() if isinstance(pairs, torch.Tensor) else torch.as_tensor(
        np.asarray(pairs))
    if p.dim() == 1:  # a derangement-style vector: image i against image p[i]
        p = torch.stack([torch.arange(p.numel()), p], dim=1)
    if p.dim() != 2 or p.shape[1] != 2 or p.shape[0] == 0 or p.is_floating_point():
        raise ValueError("pairs must be integer pairs (i, j) of shape (P, 2), or a vector d of "
                         f"length M pairing map i with map d[i]; got shape {tuple(p.shape)}")
    p = p.long()
    if bool(((p < 0) | (p >= m)).any()):
        raise ValueError(f"pairs must index the {m} maps (0..{m - 1})")
    if bool((p[:, 0] == p[:, 1]).any()):
        bad = int(torch.nonzero(p[:, 0] == p[:, 1])[0, 0])
        raise ValueError(f"pairs must join two different maps; pair {bad} is "
                         f"({int(p[bad, 0])}, {int(p[bad, 1])})")
    return p


def unrelated_scores(maps, k: int, w: int, *, pairs=None, keys=None,
                     chunk: int = 512) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``(pairs (P, 2), {key: float64 (P,)})``: :func:`metrics.compare` between map i (as ``a``)
    and map j (as ``b``) for every ordered pair ``i != j`` of the ``(M, H, W)`` maps, or for the
    given ``pairs`` (``(P, 2)``, or a vector ``d`` pairing i with ``d[i]``).

    The set metrics come from each map's ranks (:func:`unrelated_scores_over_k`: one diverse
    walk per map, not per pair). The correlations are computed once per unordered pair ((i, j)
    and (j, i) have the same correlations), in chunks of ``chunk`` pairs; ``keys`` restricts the
    metrics, and the set metrics alone skip the correlations (the costly part: two scipy τ-b per
    pair, about 1 ms per 28×28 pair).
    """
    m3, _ = M._as_batch(maps, "maps")
    p = _check_pairs(pairs, m3.shape[0])
    k = M.validate_k(k, m3.shape[1], m3.shape[2])
    w = M.validate_w(w)
    keys = _check_keys(keys)
    chunk = _check_int("chunk", chunk, 1)
    out: dict[str, torch.Tensor] = {}
    set_keys = [key for key in keys if key in M.SET_METRIC_KEYS]
    if set_keys:
        _, sets = unrelated_scores_over_k(m3, [k], w, pairs=p, keys=set_keys)
        out.update({key: v[0] for key, v in sets.items()})
    rank_keys = [key for key in keys if key in M.RANK_METRIC_KEYS]
    if rank_keys:
        lens_only = all(key in M.LENS_RANK_KEYS for key in rank_keys)
        lo, hi = torch.minimum(p[:, 0], p[:, 1]), torch.maximum(p[:, 0], p[:, 1])
        uniq, where = torch.unique(torch.stack([lo, hi], dim=1), dim=0, return_inverse=True)
        idx = uniq.to(m3.device)
        parts = [M.rank_metrics(m3[idx[s:s + chunk, 0]], m3[idx[s:s + chunk, 1]], w,
                                lens_only=lens_only) for s in range(0, idx.shape[0], chunk)]
        for key in rank_keys:
            out[key] = torch.cat([d[key] for d in parts]).cpu()[where].to(m3.device)
    return p, {key: out[key] for key in keys}


# Pair positions per chunk of the set metrics over k: (pairs × pixels) int64 elements.
_SET_CHUNK_ELEMENTS = 1 << 22


def unrelated_scores_over_k(maps, ks, w: int, *, pairs=None,
                            keys=M.SET_METRIC_KEYS) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The set metrics of :func:`unrelated_scores` at every k of ``ks``:
    ``(pairs (P, 2), {key: float64 (len(ks), P)})``, equal to one call per k.

    Each map's ranks and diverse walk (at the largest k) are computed once and serve every pair
    it is in and every k (:mod:`explorer.set_curves`); pairs go in chunks of at most
    ``2**22`` pair-pixels, so memory stays bounded for large maps and many pairs.
    """
    m3, _ = M._as_batch(maps, "maps")
    p = _check_pairs(pairs, m3.shape[0])
    w = M.validate_w(w)
    keys = _check_keys(keys)
    not_sets = [key for key in keys if key not in M.SET_METRIC_KEYS]
    if not_sets:
        raise ValueError(f"only set metrics depend on k; got {not_sets}; allowed: "
                         f"{', '.join(M.SET_METRIC_KEYS)}")
    ks = SC.check_ks(ks, m3.shape[1], m3.shape[2])
    ranks = SC.set_ranks(m3, w, max(ks), diverse=any(key in _DIVERSE for key in keys))
    step = max(1, _SET_CHUNK_ELEMENTS // (m3.shape[1] * m3.shape[2]))
    idx = p.to(m3.device)
    parts = [SC.pair_scores_over_k(ranks, ranks, ks, idx[s:s + step, 0], idx[s:s + step, 1], keys)
             for s in range(0, idx.shape[0], step)]
    return p, {key: torch.cat([d[key] for d in parts], dim=1) for key in keys}


def summarise(scores) -> Baseline:
    """A :class:`Baseline` of a 1-D set of scores (NaN left out and counted)."""
    if isinstance(scores, torch.Tensor):
        x = scores.detach().double().reshape(-1).cpu().numpy()
    else:
        x = np.asarray(scores, dtype=np.float64).reshape(-1)
    ok = x[~np.isnan(x)]
    if ok.size == 0:
        nan = float("nan")
        return Baseline(nan, nan, 0, nan, nan, nan, nan, nan, int(x.size))
    return _summarise_defined(ok.reshape(1, -1), int(x.size - ok.size))[0]


def _summarise_defined(x: np.ndarray, n_undefined: int = 0) -> list[Baseline]:
    """A :class:`Baseline` of each row of a NaN-free ``(K, P)`` array, ``P >= 1``, in one pass."""
    p05, p50, p95 = np.percentile(x, [5, 50, 95], axis=1)
    std = x.std(axis=1, ddof=1) if x.shape[1] > 1 else np.zeros(x.shape[0])
    mean, lo, hi = x.mean(axis=1), x.min(axis=1), x.max(axis=1)
    return [Baseline(float(mean[j]), float(std[j]), x.shape[1], float(p05[j]), float(p50[j]),
                     float(p95[j]), float(lo[j]), float(hi[j]), n_undefined)
            for j in range(x.shape[0])]


def unrelated_baseline(maps, k: int, w: int, *, pairs=None, keys=None) -> dict[str, Baseline]:
    """The unrelated-image baseline of every metric: ``{key: Baseline}`` over the scores of
    :func:`unrelated_scores` (all ordered pairs of different maps, or ``pairs``).

    ``maps`` ``(M, H, W)`` are the maps of M different images of one dataset under one model
    and method. The pairs share maps, so they are not independent: ``std`` and the percentiles
    describe the spread of a single unrelated pair's score, not an error of the mean.
    """
    _, scores = unrelated_scores(maps, k, w, pairs=pairs, keys=keys)
    return {key: summarise(v) for key, v in scores.items()}


def unrelated_baseline_over_k(maps, ks, w: int, *, pairs=None,
                              keys=M.SET_METRIC_KEYS) -> list[dict[str, Baseline]]:
    """:func:`unrelated_baseline` of the set metrics at every k of ``ks``: one ``{key:
    Baseline}`` per k, in order (from :func:`unrelated_scores_over_k`)."""
    _, scores = unrelated_scores_over_k(maps, ks, w, pairs=pairs, keys=keys)
    per_key = {key: _summarise_rows(v) for key, v in scores.items()}
    return [{key: rows[j] for key, rows in per_key.items()} for j in range(len(ks))]


def _summarise_rows(scores: torch.Tensor) -> list[Baseline]:
    """:func:`summarise` of each row of ``(K, P)`` scores, in one pass when none is NaN (set
    metrics never are)."""
    x = scores.detach().double().cpu().numpy()
    if np.isnan(x).any():
        return [summarise(row) for row in x]
    return _summarise_defined(x)


# --------------------------------------------------------------------------------------------
# Normalised scores
# --------------------------------------------------------------------------------------------

def normalise(score, chance, higher_is_better: bool = True):
    """The chance-normalised score: 1 = perfect, 0 = at chance, < 0 = below chance.

    Similarities (``higher_is_better``, perfect = 1): ``(s - c) / (1 - c)``. Distances (lower
    is better, perfect = 0, e.g. the centre shift): the mirrored ``(c - s) / c`` = ``1 - s/c``.
    Both are ``(s - c) / (perfect - c)``. Undefined (NaN) where ``c`` equals the perfect score
    (chance already scores perfectly: the metric cannot tell a related pair from an unrelated
    one), and where ``s`` or ``c`` is NaN. ``chance`` may be a :class:`Baseline` (its mean).
    Tensors in, a float64 tensor out (broadcast); numpy arrays in, a float64 array out; plain
    numbers in, a float out.
    """
    if isinstance(chance, Baseline):
        chance = chance.mean
    perfect = 1.0 if higher_is_better else 0.0
    as_tensor = isinstance(score, torch.Tensor) or isinstance(chance, torch.Tensor)
    s = torch.as_tensor(score, dtype=torch.float64)
    c = torch.as_tensor(chance, dtype=torch.float64, device=s.device)
    gap = perfect - c
    out = torch.where(gap == 0, torch.full_like(gap, float("nan")),
                      (s - c) / torch.where(gap == 0, torch.ones_like(gap), gap))
    if as_tensor:
        return out
    if isinstance(score, np.ndarray) or isinstance(chance, np.ndarray):
        return out.numpy()
    return float(out)


def normalise_scores(scores: dict, chance: dict) -> dict:
    """:func:`normalise` for every key present in both dicts, each metric in its direction
    (``metrics.METRICS[key].higher_is_better``); values may be tensors, floats or Baselines."""
    return {key: normalise(scores[key], chance[key], M.METRICS[key].higher_is_better)
            for key in scores if key in chance and key in M.METRICS}
