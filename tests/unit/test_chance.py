"""Chance levels: hand-worked values, exact enumeration over every permutation of tiny maps,
Monte-Carlo checks on small maps (tolerance from the standard error), the unrelated-image
baseline against a direct loop, and the normalised score's edge cases.

Pixel (r, c) of an H×W map has flat index r*W + c; ties are ranked by lower flat index first.
"""

import itertools
import math

import numpy as np
import pytest
import torch

from explorer import chance as C
from explorer import metrics as M

SET_EXACT = ("topk_intersection", "lens_recall", "lens_precision")
DIVERSE = ("topk_div_intersection", "lens_recall_div", "lens_precision_div")


def approx(x):
    return pytest.approx(x, abs=1e-9)


def all_permutations(b):
    """Every arrangement of b's values over its pixels, ``(HW!, H, W)``."""
    h, w = b.shape
    perms = torch.tensor(list(itertools.permutations(range(h * w))))
    return b.reshape(-1)[perms].reshape(-1, h, w)


def random_permutations(b, draws, seed):
    g = torch.Generator().manual_seed(seed)
    perm = torch.rand(draws, b.numel(), generator=g).argsort(dim=1)
    return b.reshape(-1)[perm].reshape(draws, *b.shape)


# ---------------------------------------------------------------------------------------------
# Hand-worked values, 2×3 maps
#   a = [[3, 0, 1], [0, 2, 0]]: S_2(a) = {(0,0), (1,1)}, S_3(a) = {(0,0), (1,1), (0,2)}
# ---------------------------------------------------------------------------------------------
A23 = torch.tensor([[3.0, 0, 1], [0, 2, 0]])


def test_hand_worked_without_ties():
    # b has six distinct values: S_2(b') is a uniform 2-subset of the 6 pixels.
    b = torch.tensor([[1.0, 2, 3], [4, 5, 6]])
    c0 = C.permutation_chance(A23, b, 2, 0)
    assert float(c0["topk_intersection"]) == approx(2 / 6)
    assert float(c0["lens_recall"]) == approx(2 / 6)
    c1 = C.permutation_chance(A23, b, 2, 1)
    # N_1((1,1)) is the whole 2×3 map: |N_1(S_2(a))| = 6, recall = 6/6.
    assert float(c1["lens_recall"]) == approx(1.0)
    # N_1((0,0)) has 4 pixels: missed with prob C(2,2)/C(6,2) = 1/15; N_1((1,1)) is never missed.
    assert float(c1["lens_precision"]) == approx((14 / 15 + 1) / 2)
    assert float(c1["spearman"]) == 0.0 and float(c1["kendall"]) == 0.0


def test_hand_worked_with_zero_ties():
    # b = [[1, 0, 0], [0, 2, 0]], k = 3: two values above the 3rd value 0, four zeros of which
    # the lowest-indexed one joins S_3(b'). Pixel 0 is always in S_3(b') (a high value, or the
    # first zero). Pixel p holding a zero joins iff none of the other 3 zeros lies on the p
    # pixels before it: C(5-p, 3)/C(5, 3) = 1, 2/5, 1/10, 0, ... so
    # q = 2/6 + 4/6 * (1, 2/5, 1/10, 0, 0, 0) = (1, 3/5, 2/5, 1/3, 1/3, 1/3).
    b = torch.tensor([[1.0, 0, 0], [0, 2, 0]])
    q = C.inclusion_probabilities(b, 3).reshape(-1).tolist()
    assert q == pytest.approx([1, 3 / 5, 2 / 5, 1 / 3, 1 / 3, 1 / 3], abs=1e-12)
    # S_3(a) = flat {0, 4, 2}: (1 + 1/3 + 2/5) / 3.
    c = C.permutation_chance(A23, b, 3, 0)
    assert float(c["topk_intersection"]) == approx((1 + 1 / 3 + 2 / 5) / 3)
    assert float(c["topk_div_intersection"]) == approx((1 + 1 / 3 + 2 / 5) / 3)  # w = 0: D_k = S_k


def test_inclusion_probabilities_sum_to_k_and_are_flat_without_ties():
    g = torch.Generator().manual_seed(1)
    b = torch.rand(2, 7, 5, generator=g)
    b[1, :, 2:] = 0.0  # 21 zeros; k = 20 leaves the 20th value tied among the zeros
    q = C.inclusion_probabilities(b, 20)
    assert q.sum(dim=(1, 2)).tolist() == pytest.approx([20, 20], abs=1e-9)
    assert torch.allclose(q[0], torch.full((7, 5), 20 / 35, dtype=torch.float64))
    assert q[1].reshape(-1)[0] > q[1].reshape(-1)[-1]  # ties favour low indices


# ---------------------------------------------------------------------------------------------
# Exact enumeration over all 720 arrangements of 2×3 maps
# ---------------------------------------------------------------------------------------------
B23 = [
    torch.tensor([[1.0, 2, 3], [4, 5, 6]]),  # no ties
    torch.tensor([[1.0, 0, 0], [0, 2, 0]]),  # zero ties
    torch.tensor([[1.0, 1, 1], [0, 0, 0]]),  # ties above and at zero
    torch.zeros(2, 3),  # constant: S_k(b') is always the first k pixels
]


@pytest.mark.parametrize("bi", range(len(B23)))
@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("w", [0, 1])
def test_exact_keys_equal_the_mean_over_every_permutation(bi, k, w):
    b = B23[bi]
    bp = all_permutations(b)
    truth = M.set_metrics(A23.expand_as(bp).contiguous(), bp, k, w)
    detail = C.permutation_chance_detail(A23, b, k, w, draws=4000, seed=3)
    for key in SET_EXACT:
        assert detail.method[key] == "closed form"
        assert float(detail.values[key]) == approx(float(truth[key].mean())), key
    for key in DIVERSE:  # exact at w = 0, Monte-Carlo within 4 standard errors at w = 1
        got, want = float(detail.values[key]), float(truth[key].mean())
        if w == 0:
            assert detail.method[key] == "closed form" and got == approx(want), key
        else:
            se = float(detail.se[key])
            assert detail.method[key].startswith("Monte-Carlo")
            assert abs(got - want) <= 4 * se + 1e-12, (key, got, want, se)


# ---------------------------------------------------------------------------------------------
# Monte-Carlo checks on 6×6 and 8×8 maps, with and without ties, w = 0..2
# ---------------------------------------------------------------------------------------------
def small_maps(size, ties, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(size, size, generator=g) ** 2
    b = torch.rand(size, size, generator=g) ** 2
    if ties:  # zeros over half of each map, and a plateau of equal values in b
        a[:, : size // 2] = 0.0
        b[size // 2:, :] = 0.0
        b[0, :3] = 0.5
    return a, b


CASES = [(6, False, 0, 5), (6, True, 1, 12), (8, False, 2, 10), (8, True, 3, 20), (8, True, 4, 40)]


@pytest.mark.parametrize("size,ties,seed,k", CASES)
@pytest.mark.parametrize("w", [0, 1, 2])
def test_set_chance_levels_against_monte_carlo(size, ties, seed, k, w):
    a, b = small_maps(size, ties, seed)
    draws = 6000
    bp = random_permutations(b, draws, seed + 100)
    mc = M.set_metrics(a.expand_as(bp).contiguous(), bp, k, w)
    detail = C.permutation_chance_detail(a, b, k, w, draws=400, seed=seed)
    for key in SET_EXACT + DIVERSE:
        x = mc[key]
        mc_se = float(x.std()) / math.sqrt(draws)
        tol = 4 * math.hypot(mc_se, float(detail.se[key])) + 1e-9
        assert abs(float(detail.values[key]) - float(x.mean())) <= tol, (key, detail.values[key],
                                                                         float(x.mean()), tol)


@pytest.mark.parametrize("w", [1, 2])
def test_tie_at_a_non_zero_plateau_against_monte_carlo(w):
    # 7×7 b: 10 distinct high values, a plateau of 8 equal values, the rest lower and distinct.
    # k = 14: G = 10, E = 8, r = 4 (4 of the 8 tied pixels, the lowest-indexed, enter S_k).
    g = torch.Generator().manual_seed(11)
    vals = torch.cat([2 + torch.rand(10, generator=g), torch.full((8,), 1.5),
                      torch.rand(31, generator=g)])
    b = vals[torch.randperm(49, generator=g)].reshape(7, 7)
    a = torch.rand(7, 7, generator=g)
    draws = 8000
    bp = random_permutations(b, draws, 12)
    mc = M.set_metrics(a.expand_as(bp).contiguous(), bp, 14, w)
    got = C.permutation_chance(a, b, 14, w, keys=list(SET_EXACT))
    for key in SET_EXACT:
        tol = 4 * float(mc[key].std()) / math.sqrt(draws) + 1e-9
        assert abs(float(got[key]) - float(mc[key].mean())) <= tol, key
    q = C.inclusion_probabilities(b, 14).reshape(-1)
    assert float(q.sum()) == approx(14) and float(q.max() - q.min()) > 0.1


@pytest.mark.parametrize("size,ties,seed,k", CASES[:4])
def test_rank_and_centre_chance_levels_against_monte_carlo(size, ties, seed, k):
    a, b = small_maps(size, ties, seed)
    draws = 400
    bp = random_permutations(b, draws, seed + 200)
    for w in (0, 2):
        mc = M.rank_metrics(a.expand_as(bp).contiguous(), bp, w)
        detail = C.permutation_chance_detail(a, b, k, w, draws=400, rank_draws=200, seed=seed)
        assert float(detail.values["spearman"]) == 0.0 and float(detail.values["kendall"]) == 0.0
        for key in M.RANK_METRIC_KEYS:
            x = mc[key]
            mc_se = float(x.std()) / math.sqrt(draws)
            tol = 4 * math.hypot(mc_se, float(detail.se[key])) + 1e-9
            assert abs(float(detail.values[key]) - float(x.mean())) <= tol, key


@pytest.mark.parametrize("size,ties,seed,k", CASES)
def test_exact_chance_levels_keep_the_metric_properties(size, ties, seed, k):
    # As for the metrics themselves: both LENS directions >= top-k and non-decreasing in w,
    # equal to top-k at w = 0, all in [0, 1].
    a, b = small_maps(size, ties, seed)
    prev = None
    for w in range(4):
        c = C.permutation_chance(a, b, k, w, keys=list(SET_EXACT))
        topk, rec, prec = (float(c[key]) for key in SET_EXACT)
        assert 0 <= topk <= rec <= 1 and topk <= prec <= 1
        if w == 0:
            assert rec == approx(topk) and prec == approx(topk)
        if prev is not None:
            assert rec >= prev[0] - 1e-12 and prec >= prev[1] - 1e-12
        prev = (rec, prec)


def test_lens_correlation_chance_is_not_zero_after_pooling():
    # Pooling gives both maps their border structure (border windows are smaller, so their
    # maxima are lower): the LENS correlations of unrelated maps are positive on average.
    a, b = small_maps(8, False, 7)
    detail = C.permutation_chance_detail(a, b, 10, 2, rank_draws=200)
    for key in ("lens_spearman", "lens_kendall"):
        assert float(detail.values[key]) > 5 * float(detail.se[key]) > 0, key


def test_batch_single_keys_and_determinism():
    a, b = small_maps(6, True, 1)
    single = C.permutation_chance(a, b, 5, 1)
    batch = C.permutation_chance(torch.stack([a, b]), torch.stack([b, a]), 5, 1)
    assert set(single) == set(M.METRIC_KEYS) == set(batch)
    assert all(v.shape == () for v in single.values())
    assert all(v.shape == (2,) and v.dtype == torch.float64 for v in batch.values())
    for key in M.METRIC_KEYS:
        assert float(batch[key][0]) == float(single[key])  # same seed: same draws
    only = C.permutation_chance(a, b, 5, 1, keys=["lens_recall", "center_shift"])
    assert set(only) == {"lens_recall", "center_shift"}
    assert float(only["center_shift"]) == float(single["center_shift"])


def test_constant_maps_give_nan_correlations():
    a, b = small_maps(6, False, 0)
    c = C.permutation_chance(a, torch.ones(6, 6), 5, 1)
    assert math.isnan(float(c["spearman"])) and math.isnan(float(c["kendall"]))
    assert math.isnan(float(C.permutation_chance(torch.zeros(6, 6), b, 5, 1)["center_shift"]))


def test_bad_arguments_are_refused_with_a_message():
    a, b = small_maps(6, False, 0)
    with pytest.raises(ValueError, match="unknown metric"):
        C.permutation_chance(a, b, 5, 1, keys=["topk"])
    with pytest.raises(ValueError, match="draws"):
        C.permutation_chance(a, b, 5, 1, draws=1)
    with pytest.raises(ValueError, match="k must be between 1 and"):
        C.permutation_chance(a, b, 37, 1)
    with pytest.raises(ValueError, match="same shape"):
        C.permutation_chance(a, b[:5], 5, 1)


# ---------------------------------------------------------------------------------------------
# Unrelated-image baseline
# ---------------------------------------------------------------------------------------------
def test_unrelated_baseline_equals_a_direct_loop():
    g = torch.Generator().manual_seed(5)
    maps = torch.rand(4, 6, 6, generator=g) ** 3
    maps[2, :3] = 0.0
    base = C.unrelated_baseline(maps, 6, 1)
    loop = {key: [] for key in M.METRIC_KEYS}
    for i in range(4):
        for j in range(4):
            if i != j:
                s = M.compare(maps[i], maps[j], 6, 1)
                for key in M.METRIC_KEYS:
                    loop[key].append(float(s[key]))
    for key, vals in loop.items():
        b = base[key]
        assert b.n == 12 and b.n_undefined == 0
        assert b.mean == approx(np.mean(vals)) and b.std == approx(np.std(vals, ddof=1))
        assert b.p05 == approx(np.percentile(vals, 5)) and b.p95 == approx(np.percentile(vals, 95))
        assert b.min == approx(min(vals)) and b.max == approx(max(vals))


def test_unrelated_scores_with_given_pairs_and_a_derangement():
    g = torch.Generator().manual_seed(6)
    maps = torch.rand(5, 6, 6, generator=g)
    d = C.derangement(5, seed=2)
    pairs, scores = C.unrelated_scores(maps, 4, 1, pairs=d)
    assert pairs[:, 0].tolist() == list(range(5)) and pairs[:, 1].tolist() == d.tolist()
    for row, (i, j) in enumerate(pairs.tolist()):
        assert float(scores["lens_recall"][row]) == approx(
            float(M.compare(maps[i], maps[j], 4, 1)["lens_recall"]))
    with pytest.raises(ValueError, match="two different maps"):
        C.unrelated_scores(maps, 4, 1, pairs=[(0, 1), (3, 3)])
    with pytest.raises(ValueError, match="index the 5 maps"):
        C.unrelated_baseline(maps, 4, 1, pairs=[(0, 5)])


def test_unrelated_scores_restricted_keys_and_mirrored_pairs():
    # (i, j) and (j, i) differ by the two LENS directions swapping.
    g = torch.Generator().manual_seed(8)
    maps = torch.rand(3, 7, 7, generator=g) * 0.1
    # map 0: top-5 along row 0 (cols 0-4); map 2: top-5 at (1,0), (3,3), (5,5), (6,0), (0,6).
    # w = 1: N_1(S_5(map 0)) holds only (1,0) of map 2's top-5, N_1(S_5(map 2)) holds (0,0) and
    # (0,1) of map 0's: lens_recall(2 -> 0) = 2/5, lens_recall(0 -> 2) = 1/5.
    maps[0, 0, :5] = torch.tensor([10.0, 9, 8, 7, 6])
    for v, (r, c) in enumerate([(1, 0), (3, 3), (5, 5), (6, 0), (0, 6)]):
        maps[2, r, c] = 10.0 - v
    pairs = [(2, 0), (0, 2), (1, 0), (2, 1)]
    keys = ["lens_recall", "lens_precision_div"]
    _, only = C.unrelated_scores(maps, 5, 1, pairs=pairs, keys=keys)
    assert set(only) == {"lens_recall", "lens_precision_div"}
    for row, (i, j) in enumerate(pairs):
        s = M.compare(maps[i], maps[j], 5, 1)
        for key in only:
            assert float(only[key][row]) == approx(float(s[key])), (key, i, j)
    assert float(only["lens_recall"][0]) == approx(2 / 5)
    assert float(only["lens_recall"][1]) == approx(1 / 5)


def test_derangement_and_pairs():
    for seed in range(20):
        d = C.derangement(6, seed)
        assert sorted(d.tolist()) == list(range(6)) and all(d[i] != i for i in range(6))
    assert C.derangement(9, 3).tolist() == C.derangement(9, 3).tolist()
    with pytest.raises(ValueError, match=">= 2"):
        C.derangement(1)
    assert C.all_pairs(3).tolist() == [[0, 1], [0, 2], [1, 0], [1, 2], [2, 0], [2, 1]]
    rp = C.random_pairs(5, 7, seed=1)
    assert rp.shape == (7, 2) and len({tuple(p) for p in rp.tolist()}) == 7
    assert bool((rp[:, 0] != rp[:, 1]).all())
    with pytest.raises(ValueError, match="at most"):
        C.random_pairs(3, 7)


def test_summarise_leaves_nan_out():
    b = C.summarise(torch.tensor([0.2, float("nan"), 0.4], dtype=torch.float64))
    assert (b.n, b.n_undefined) == (2, 1) and b.mean == approx(0.3)


# ---------------------------------------------------------------------------------------------
# Normalised scores
# ---------------------------------------------------------------------------------------------
def test_normalise_similarities():
    assert C.normalise(1.0, 0.25) == approx(1.0)
    assert C.normalise(0.25, 0.25) == approx(0.0)
    assert C.normalise(0.625, 0.25) == approx(0.5)
    assert C.normalise(0.0, 0.25) == approx(-1 / 3)  # below chance
    assert C.normalise(0.3, 0.0) == approx(0.3)  # correlations: chance 0 leaves the score as is
    assert math.isnan(C.normalise(1.0, 1.0))  # chance is perfect: undefined
    assert math.isnan(C.normalise(float("nan"), 0.2))


def test_normalise_distances_tensors_and_baselines():
    # centre shift: 0 px is perfect, the chance level scores 0.
    assert C.normalise(0.0, 4.0, higher_is_better=False) == approx(1.0)
    assert C.normalise(4.0, 4.0, higher_is_better=False) == approx(0.0)
    assert C.normalise(1.0, 4.0, higher_is_better=False) == approx(0.75)
    assert C.normalise(8.0, 4.0, higher_is_better=False) == approx(-1.0)
    assert math.isnan(C.normalise(1.0, 0.0, higher_is_better=False))
    out = C.normalise(torch.tensor([0.5, 1.0]), torch.tensor([0.5, 1.0]))
    assert out.dtype == torch.float64 and out[0] == 0 and torch.isnan(out[1])
    arr = C.normalise(np.array([0.5, 0.75]), 0.5)
    assert isinstance(arr, np.ndarray) and arr.tolist() == [0.0, 0.5]
    base = C.summarise([0.2, 0.4])
    assert C.normalise(0.65, base) == approx(0.5)
    scores = {"topk_intersection": 0.65, "center_shift": 1.0}
    norm = C.normalise_scores(scores, {"topk_intersection": 0.3, "center_shift": 4.0})
    assert norm == {"topk_intersection": approx(0.5), "center_shift": approx(0.75)}


# ---------------------------------------------------------------------------------------------
# Bookkeeping in metrics: zero-valued ties in S_k and D_k, the size of D_k, the warnings
# ---------------------------------------------------------------------------------------------
def test_set_counts_hand_worked():
    # 4×4, 5 at (1,1), 1 at (3,3), zeros elsewhere; k = 3.
    # S_3 = {(1,1), (3,3), (0,0)}: one zero (the lowest-indexed). w = 1: D_3 takes (1,1), (3,3)
    # (distance 2), then the first zero outside both windows in index order: (0,3).
    m = torch.zeros(4, 4)
    m[1, 1], m[3, 3] = 5.0, 1.0
    c = M.set_counts(m, 3, 1)
    assert {key: int(v) for key, v in c.items()} == {"topk_zeros": 1, "diverse_zeros": 1,
                                                     "diverse_count": 3}
    # 3×3, w = 1: every pixel is within 1 of the centre, so D_k stops at one pixel.
    m3 = torch.zeros(3, 3)
    m3[1, 1], m3[2, 2] = 5.0, 1.0
    c3 = M.set_counts(m3, 3, 1)
    assert (int(c3["topk_zeros"]), int(c3["diverse_zeros"]), int(c3["diverse_count"])) == (1, 0, 1)
    flags = M.set_flags(m3, 3, 1)
    assert (bool(flags["topk_mostly_zero"]), bool(flags["diverse_short"])) == (False, True)
    warn = M.set_warnings(m3, 3, 1, name="the original map")
    assert len(warn) == 1 and "only 1 of k = 3" in warn[0] and "at most 0.33" in warn[0]


def test_set_counts_batched_pairs_and_mostly_zero_warnings():
    m = torch.zeros(2, 6, 6)
    m[0, 0, 0] = 1.0  # one non-zero pixel: the other 9 of the top-10 are zeros
    m[1] = torch.arange(1.0, 37.0).reshape(6, 6)  # no zeros
    c = M.set_counts(m, 10, 0)
    assert c["topk_zeros"].tolist() == [9, 0] and c["diverse_count"].tolist() == [10, 10]
    pc = M.pair_set_counts(m[0], m[1], 10, 0)
    assert int(pc["orig_topk_zeros"]) == 9 and int(pc["adv_topk_zeros"]) == 0
    warn = M.set_warnings(m[0], 10, 0)
    assert len(warn) == 2 and warn[0].startswith("9 of the top-10 pixels")
    assert M.set_warnings(m[1], 10, 0) == []
    assert M.set_flags(m, 10, 0, zero_share=0.95)["topk_mostly_zero"].tolist() == [False, False]
    with pytest.raises(ValueError, match="zero_share"):
        M.set_flags(m, 10, 0, zero_share=1.0)
    with pytest.raises(ValueError, match="one \\(H, W\\) map"):
        M.set_warnings(m, 10, 0)


def test_centre_shift_chance_is_about_the_distance_to_the_image_centre():
    # a: all mass at the corner (0, 0) of a 9×9 map; b spread over every pixel, so the centroid
    # of a random scattering of b stays within a fraction of a pixel of the centre (4, 4).
    a = torch.zeros(9, 9)
    a[0, 0] = 1.0
    b = 1.0 + torch.rand(9, 9, generator=torch.Generator().manual_seed(0))
    c = C.permutation_chance_detail(a, b, 5, 1, keys=["center_shift"])
    assert float(c.values["center_shift"]) == pytest.approx(math.hypot(4, 4), abs=0.05)
    assert 0 < float(c.se["center_shift"]) < 0.01


def test_default_draws_depend_on_the_map_size():
    assert C.default_draws(28 * 28) == (C.DEFAULT_DRAWS, C.DEFAULT_RANK_DRAWS)
    assert C.default_draws(65 * 65) == (C.LARGE_MAP_DRAWS, C.LARGE_MAP_RANK_DRAWS)
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(65, 65, generator=g), torch.rand(65, 65, generator=g)
    d = C.permutation_chance_detail(a, b, 30, 1, keys=["lens_recall_div", "lens_kendall"])
    assert d.draws == C.LARGE_MAP_DRAWS and f"({C.LARGE_MAP_DRAWS} draws" in d.method[
        "lens_recall_div"]
    assert d.method["lens_kendall"].startswith(f"Monte-Carlo ({C.LARGE_MAP_RANK_DRAWS} draws")


# ---------------------------------------------------------------------------------------------
# Many k at once (the chart against k): the same values as one call per k
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("w", [0, 1, 2])
def test_permutation_chance_over_k_equals_one_call_per_k(w):
    g = torch.Generator().manual_seed(11 + w)
    a = torch.rand(5, 7, 6, generator=g)
    b = (torch.rand(5, 7, 6, generator=g) * 4).floor()  # ties at the k-th value
    ks = [1, 5, 12, 30]
    many = C.permutation_chance_over_k(a, b, ks, w, draws=24, rank_draws=6, seed=3)
    assert len(many) == len(ks)
    perm = random_permutations(torch.arange(42.0).reshape(7, 6), 24, 3).long().reshape(24, -1)
    for lv, k in zip(many, ks):
        one = C.permutation_chance_detail(a, b, k, w, draws=24, rank_draws=6, seed=3)
        assert lv.method == one.method
        for key in M.METRIC_KEYS:
            assert torch.equal(lv.values[key].nan_to_num(-9), one.values[key].nan_to_num(-9)), \
                (key, k)
            assert torch.equal(lv.se[key].nan_to_num(-9), one.se[key].nan_to_num(-9)), (key, k)
        if w == 0:
            continue
        # ... and the diverse variants are the mean over the same 24 shuffles of set_metrics
        for i in range(5):
            shuffled = b[i].reshape(-1)[perm].reshape(24, 7, 6)
            direct = M.set_metrics(a[i].expand(24, 7, 6), shuffled, k, w)
            for key in DIVERSE:
                assert float(lv.values[key][i]) == approx(float(direct[key].mean())), (key, k, i)
                assert float(lv.se[key][i]) == approx(float(direct[key].std() / 24 ** 0.5))


def test_unrelated_scores_over_k_equal_set_metrics_pair_by_pair_in_any_chunking(monkeypatch):
    g = torch.Generator().manual_seed(12)
    maps = torch.rand(5, 6, 6, generator=g) ** 2
    maps[1, 2:] = 0.0  # zero-valued ties
    maps[3] = 0.0  # an all-zero map: every pixel tied
    ks = [2, 9, 20, 36]
    pairs, many = C.unrelated_scores_over_k(maps, ks, 1)
    monkeypatch.setattr(C, "_SET_CHUNK_ELEMENTS", 36 * 3)  # three pairs per chunk
    _, chunked = C.unrelated_scores_over_k(maps, ks, 1)
    _, given = C.unrelated_scores_over_k(maps, ks, 1, pairs=[(4, 0), (0, 4), (2, 3)])
    bases = C.unrelated_baseline_over_k(maps, ks, 1)
    for j, k in enumerate(ks):
        for row, (i, jj) in enumerate(pairs.tolist()):
            s = M.set_metrics(maps[i], maps[jj], k, 1)
            for key in M.SET_METRIC_KEYS:
                assert float(many[key][j, row]) == float(s[key]), (key, k, i, jj)
                assert float(chunked[key][j, row]) == float(s[key]), (key, k, i, jj)
        for row, (i, jj) in enumerate([(4, 0), (0, 4), (2, 3)]):
            s = M.set_metrics(maps[i], maps[jj], k, 1)
            assert all(float(given[key][j, row]) == float(s[key]) for key in M.SET_METRIC_KEYS)
        base = C.unrelated_baseline(maps, k, 1, keys=M.SET_METRIC_KEYS)
        for key in M.SET_METRIC_KEYS:
            vals = many[key][j].numpy()
            assert bases[j][key] == base[key]
            assert bases[j][key].mean == approx(vals.mean())
            assert bases[j][key].p95 == approx(np.percentile(vals, 95))
    with pytest.raises(ValueError, match="only set metrics depend on k"):
        C.unrelated_scores_over_k(maps, ks, 1, keys=["spearman"])
    with pytest.raises(ValueError, match="ks must be a sequence of integers"):
        C.unrelated_scores_over_k(maps, "9", 1)
