"""The six set metrics at many k at once, from each map's ranks (definitions: docs/spec.md).

A chart against k, or the chance levels at the chart's k, needs the set metrics at several k
for the same maps and w. Both sets are prefixes of one ordering, so one pass serves every k:

- ``S_k(m)`` is the first k pixels of the ranking order, so ``p ∈ S_k`` iff ``rank(p) < k``;
- the greedy diverse walk accepts pixels in ranking order and stops at the k-th, so ``D_k(m)``
  is the first k pixels of the sequence ``D_K(m)`` accepts, for every ``k <= K``: with
  ``div(p)`` the position of p in that sequence (``H*W`` where p is not accepted),
  ``p ∈ D_k`` iff ``div(p) < k`` (also when the walk runs out of pixels before k);
- ``p ∈ N_w(P_k)`` iff some pixel of its window is in ``P_k``, i.e. iff the minimum of the
  position over the window is below k.

So every count is ``#{p : u(p) < k and v(p) < k}`` for two position maps u, v (for example
``|N_w(S_k(a)) ∩ S_k(b)|`` with u the window minimum of a's ranks and v b's ranks).
:class:`SetRanks` holds the positions of a batch of maps; one diverse walk per map (at the
largest k) then serves every k and every pair the map is in, which is what the unrelated-image
levels need (10 maps make 90 ordered pairs, whose counts at one k are one matrix product of the
maps' masks).

The results equal :func:`explorer.metrics.set_metrics` at each k exactly (a test compares them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from numbers import Integral

import torch

from explorer import metrics as M

__all__ = ["SetRanks", "set_ranks", "pair_scores_over_k", "set_metrics_over_k", "check_ks",
           "check_set_keys"]

_DIVERSE = ("topk_div_intersection", "lens_recall_div", "lens_precision_div")


@dataclass(frozen=True)
class SetRanks:
    """Positions of every pixel of ``(N, H, W)`` maps, int64 ``(N, H, W)`` each.

    ``top``: place in the ranking order (0 = best) of the ``k_max`` best pixels, ``H*W`` for
    the others (only "place < k" for k <= k_max is ever asked). ``near_top``: its minimum over
    the pixel's ``N_w`` window. ``div``: place in the diverse walk's accepted sequence, ``H*W``
    where the walk up to ``k_max`` acceptances does not accept the pixel; ``near_div``: its
    window minimum. ``div`` and ``near_div`` are None when built without the diverse walk.
    """

    top: torch.Tensor
    near_top: torch.Tensor
    div: torch.Tensor | None
    near_div: torch.Tensor | None
    w: int
    k_max: int


def _window_min(pos: torch.Tensor, w: int, hw: int) -> torch.Tensor:
    """Minimum of the non-negative positions ``pos`` (at most ``hw``) over each N_w window: the
    max-pool of ``hw - pos``, whose border padding (0) stands for ``hw``, i.e. never."""
    return pos if w == 0 else hw - M._pool(hw - pos, w)


def _ranks3(m3: torch.Tensor, w: int, k_max: int, diverse: bool) -> SetRanks:
    n, h, wd = m3.shape
    hw = h * wd
    keys = M._rank_keys(m3)  # the keys _topk3 and _diverse3 compare: the same order exactly
    flat = keys.reshape(n, -1)
    places = torch.arange(k_max, device=m3.device).expand(n, k_max)
    # Only places below k_max are ever asked for: a top-k_max, not a sort of every pixel.
    best = torch.topk(flat, k_max, dim=1, sorted=True).indices
    top = torch.full_like(flat, hw).scatter_(1, best, places).reshape(n, h, wd)
    div = near_div = None
    if diverse:
        accepted, count = M._diverse3(m3, k_max, w, keys)  # the first k_max accepted at most
        picked = torch.topk(torch.where(accepted.reshape(n, -1), flat, 0), k_max, dim=1,
                            sorted=True).indices  # the accepted pixels first, in ranking order
        place = torch.where(places < count.view(n, 1), places, hw)
        div = torch.full_like(flat, hw).scatter_(1, picked, place).reshape(n, h, wd)
        near_div = _window_min(div, w, hw)
    return SetRanks(top, _window_min(top, w, hw), div, near_div, w, k_max)


def set_ranks(m, w: int, k_max: int, diverse: bool = True) -> SetRanks:
    """:class:`SetRanks` of ``(H, W)`` or ``(N, H, W)`` maps (a single map becomes N = 1), for
    any k up to ``k_max`` at radius ``w``. ``diverse=False`` skips the diverse walk."""
    m3, _ = M._as_batch(m)
    return _ranks3(m3, M.validate_w(w), M.validate_k(k_max, m3.shape[1], m3.shape[2]), diverse)


def check_ks(ks, height: int, width: int) -> list[int]:
    """``ks`` as a list of valid k (one integer is one k); a clear error otherwise."""
    if isinstance(ks, torch.Tensor):
        ks = ks.reshape(-1).tolist()
    elif isinstance(ks, Integral) and not isinstance(ks, bool):
        ks = [ks]
    elif isinstance(ks, (str, bytes)) or not isinstance(ks, Iterable):
        raise ValueError(f"ks must be a sequence of integers k (1 <= k <= H*W); got {ks!r}")
    ks = [M.validate_k(k, height, width) for k in ks]
    if not ks:
        raise ValueError("ks must hold at least one k")
    return ks


def check_set_keys(keys) -> tuple[str, ...]:
    """``keys`` as a tuple of set-metric keys (one string is one key); a clear error otherwise."""
    keys = (keys,) if isinstance(keys, str) else tuple(keys)
    unknown = [key for key in keys if key not in M.SET_METRIC_KEYS]
    if unknown or not keys:
        raise ValueError(f"keys must be set metrics; got {unknown or 'none'}; allowed: "
                         f"{', '.join(M.SET_METRIC_KEYS)}")
    return keys


def _check_index(name: str, idx, n: int, dev) -> torch.Tensor:
    t = torch.as_tensor(idx)
    if t.dim() != 1 or t.is_floating_point() or t.dtype == torch.bool or t.is_complex():
        raise ValueError(f"{name} must be a 1-D sequence of integer map indices; got "
                         f"{'shape ' + str(tuple(t.shape)) if t.dim() != 1 else t.dtype}")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n):
        raise ValueError(f"{name} must index the {n} maps (0..{n - 1}); got {int(t.min())}.."
                         f"{int(t.max())}")
    return t.long().to(dev)


def _count_both(mu: torch.Tensor, mv: torch.Tensor, ia: torch.Tensor,
                ib: torch.Tensor) -> torch.Tensor:
    """``|mu[ia[j]] ∩ mv[ib[j]]|`` for boolean rows ``(Nu, L)``, ``(Nv, L)``: ``(P,)`` int64.

    When the pairs cover much of the Nu × Nv grid (all pairs of a set of maps, or a map against
    its shuffles) one float64 matrix product counts every intersection at once (exact: the
    counts are integers far below 2**53); otherwise each pair is counted on its own."""
    if 4 * ia.numel() >= mu.shape[0] * mv.shape[0]:
        grid = mu.double() @ mv.double().T
        return grid[ia, ib].round().long()
    return (mu[ia] & mv[ib]).sum(dim=1)


def pair_scores_over_k(ra: SetRanks, rb: SetRanks, ks, ia=None, ib=None,
                       keys=M.SET_METRIC_KEYS) -> dict[str, torch.Tensor]:
    """The set metrics ``keys`` between map ``ia[j]`` of ``ra`` (as a) and map ``ib[j]`` of
    ``rb`` (as b), at every k of ``ks``: ``{key: float64 (len(ks), P)}``.

    ``ia``/``ib``: index tensors of equal length P (None: 0..N-1, the maps paired in order).
    Both ranks must share w and reach every k (``k_max``); the diverse keys need both built
    with the diverse walk.
    """
    na, h, wd = ra.top.shape
    nb = rb.top.shape[0]
    ks = check_ks(ks, h, wd)
    keys = check_set_keys(keys)
    if ra.w != rb.w or ra.top.shape[1:] != rb.top.shape[1:]:
        raise ValueError(f"both ranks must have the same w and map size; got w = {ra.w} and "
                         f"{rb.w}, maps {tuple(ra.top.shape[1:])} and {tuple(rb.top.shape[1:])}")
    if max(ks) > min(ra.k_max, rb.k_max):
        raise ValueError(f"every k must be at most the ranks' k_max ({min(ra.k_max, rb.k_max)}); "
                         f"got {max(ks)}")
    dev = ra.top.device
    if ia is None and ib is None and na != nb:
        raise ValueError(f"without ia and ib the maps are paired in order, so both ranks need "
                         f"the same number of maps; got {na} and {nb}")
    ia = _check_index("ia", torch.arange(na) if ia is None else ia, na, dev)
    ib = _check_index("ib", torch.arange(nb) if ib is None else ib, nb, dev)
    if ia.numel() != ib.numel():
        raise ValueError(f"ia and ib must have the same length (one pair each); got {ia.numel()} "
                         f"and {ib.numel()}")
    # Only the maps the pairs use: their masks are built once per k.
    rows_a, ia = torch.unique(ia, return_inverse=True)
    rows_b, ib = torch.unique(ib, return_inverse=True)
    sources = {
        "topk_intersection": ("top", "top"), "lens_recall": ("near_top", "top"),
        "lens_precision": ("top", "near_top"), "topk_div_intersection": ("div", "div"),
        "lens_recall_div": ("near_div", "div"), "lens_precision_div": ("div", "near_div"),
    }
    for key in keys:
        if any(getattr(r, f) is None for r, f in zip((ra, rb), sources[key])):
            raise ValueError(f"{key} needs ranks built with the diverse walk (diverse=True)")
    out = {key: torch.empty(len(ks), ia.numel(), dtype=torch.float64, device=dev) for key in keys}
    sides = {(0, sources[key][0]) for key in keys} | {(1, sources[key][1]) for key in keys}
    for j, k in enumerate(ks):
        masks = {}  # p ∈ P_k iff its position < k
        for side, field in sides:
            pos = getattr(ra if side == 0 else rb, field)[rows_a if side == 0 else rows_b]
            masks[(side, field)] = (pos < k).reshape(pos.shape[0], -1)
        for key in keys:
            fa, fb = sources[key]
            out[key][j] = _count_both(masks[(0, fa)], masks[(1, fb)], ia, ib).double() / k
    return out


def set_metrics_over_k(a, b, ks, w: int, keys=M.SET_METRIC_KEYS) -> dict[str, torch.Tensor]:
    """:func:`explorer.metrics.set_metrics` at every k of ``ks`` in one pass:
    ``{key: float64 (len(ks),)}`` for an ``(H, W)`` pair, ``(len(ks), N)`` for a batch."""
    a3, b3, single, _, w = M._validate_pair(a, b, 1, w)
    ks = check_ks(ks, a3.shape[1], a3.shape[2])
    keys = check_set_keys(keys)
    diverse = any(key in _DIVERSE for key in keys)
    ranks = _ranks3(torch.cat([a3, b3]), w, max(ks), diverse)
    n = a3.shape[0]
    out = pair_scores_over_k(ranks, ranks, ks, torch.arange(n), torch.arange(n, 2 * n), keys)
    return {key: v[:, 0] if single else v for key, v in out.items()}
