"""Metrics against maps whose scores were worked out by hand (see the comments), plus bad input.

Pixel (r, c) of an H×W map has flat index r*W + c. N_w is the Chebyshev square of radius w,
clipped at the borders. Ranking: value descending, ties by lower flat index.
"""

import math

import numpy as np
import pytest
import torch

from explorer import metrics as M


def grid(h, w, values):
    """An h×w float map of zeros with ``values = {(r, c): v}`` set."""
    m = torch.zeros(h, w, dtype=torch.float64)
    for (r, c), v in values.items():
        m[r, c] = v
    return m


def pixels(mask):
    """Set of (r, c) where a 2-D mask is True."""
    return {tuple(p) for p in torch.nonzero(mask).tolist()}


def approx(x):
    return pytest.approx(x, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# Case A, 5×5, k = 3: three isolated peaks.
#   a: 9 at (0,0), 8 at (2,2), 7 at (4,4)        S_k(a) = {(0,0), (2,2), (4,4)}
#   b: 9 at (0,1), 8 at (2,2), 7 at (3,0)        S_k(b) = {(0,1), (2,2), (3,0)}
# w = 1: N_1(S_k(a)) covers rows 0-1/cols 0-1, rows 1-3/cols 1-3, rows 3-4/cols 3-4:
#   (0,1) in, (2,2) in, (3,0) out                 -> lens_recall = 2/3
# N_1(S_k(b)) covers rows 0-1/cols 0-2, rows 1-3/cols 1-3, rows 2-4/cols 0-1:
#   (0,0) in, (2,2) in, (4,4) out                 -> lens_precision = 2/3
# The peaks are > 1 apart in both maps, so D_k = S_k and the -div metrics equal the plain ones.
# Centroids: a = (44/24, 44/24); b = (37/24, 25/24) -> shift = sqrt(7² + 19²) / 24.
# w = 2: N_2((2,2)) is the whole 5×5 image -> both LENS = 1.
# ---------------------------------------------------------------------------------------------
A = grid(5, 5, {(0, 0): 9, (2, 2): 8, (4, 4): 7})
B = grid(5, 5, {(0, 1): 9, (2, 2): 8, (3, 0): 7})


def test_case_a_isolated_peaks():
    r = M.compare(A, B, k=3, w=1)
    assert r["topk_intersection"].item() == approx(1 / 3)
    assert r["lens_recall"].item() == approx(2 / 3)
    assert r["lens_precision"].item() == approx(2 / 3)
    assert r["topk_div_intersection"].item() == approx(1 / 3)
    assert r["lens_recall_div"].item() == approx(2 / 3)
    assert r["lens_precision_div"].item() == approx(2 / 3)
    assert r["center_shift"].item() == approx(math.sqrt(7 ** 2 + 19 ** 2) / 24)
    assert pixels(M.topk_mask(A, 3)) == {(0, 0), (2, 2), (4, 4)}
    mask, count = M.diverse_topk_mask(B, 3, 1)
    assert pixels(mask) == {(0, 1), (2, 2), (3, 0)} and count.item() == 3


def test_case_a_w0_and_w2():
    r0 = M.compare(A, B, k=3, w=0)
    for key in ("lens_recall", "lens_precision", "lens_recall_div", "lens_precision_div"):
        assert r0[key].item() == approx(1 / 3)
    r2 = M.compare(A, B, k=3, w=2)
    assert r2["lens_recall"].item() == approx(1.0)
    assert r2["lens_precision"].item() == approx(1.0)


# ---------------------------------------------------------------------------------------------
# Case B, 5×5, k = 4, w = 1: ties among zeros and border pixels.
#   a: 5 at (4,4) [idx 24], 3 at (0,4) [idx 4], zeros elsewhere.
#      S_k(a) = {24, 4, 0, 1} (the zeros are taken in index order).
#   b: 5 at (4,3) [idx 23].  S_k(b) = {23, 0, 1, 2}.
#   intersection {0, 1} -> 2/4.
#   N_1(S_k(a)) ⊇ {18,19,23,24}, {3,4,8,9}, {0,1,5,6}, {0,1,2,5,6,7}: holds 23, 0, 1, 2 -> recall 1.
#   N_1(S_k(b)) = {17,18,19,22,23,24} ∪ {0,1,2,3,5,6,7,8}: holds 24, 0, 1 but not 4 -> prec 3/4.
#   D_k(a): 24 ok; 4 ok (4 rows away); 0 ok; 1 next to 0 -> no; 2 ok (2 from 0 and from 4).
#      D_k(a) = {24, 4, 0, 2}
#   D_k(b): 23 ok; 0 ok; 1 no; 2 ok; 3 next to 2 -> no; 4 ok.  D_k(b) = {23, 0, 2, 4}
#   div intersection {0, 2, 4} -> 3/4; recall_div: 23 ∈ N_1(24) -> 1; prec_div: 24 ∈ N_1(23) -> 1.
#   Centroids: a = (20/8, 32/8) = (2.5, 4); b = (4, 3) -> shift = sqrt(1.5² + 1²).
# ---------------------------------------------------------------------------------------------
def test_case_b_ties_and_borders():
    a = grid(5, 5, {(4, 4): 5, (0, 4): 3})
    b = grid(5, 5, {(4, 3): 5})
    r = M.compare(a, b, k=4, w=1)
    assert r["topk_intersection"].item() == approx(0.5)
    assert r["lens_recall"].item() == approx(1.0)
    assert r["lens_precision"].item() == approx(0.75)
    assert r["topk_div_intersection"].item() == approx(0.75)
    assert r["lens_recall_div"].item() == approx(1.0)
    assert r["lens_precision_div"].item() == approx(1.0)
    assert r["center_shift"].item() == approx(math.sqrt(3.25))
    da, ca = M.diverse_topk_mask(a, 4, 1)
    db, cb = M.diverse_topk_mask(b, 4, 1)
    assert pixels(da) == {(4, 4), (0, 4), (0, 0), (0, 2)} and ca.item() == 4
    assert pixels(db) == {(4, 3), (0, 0), (0, 2), (0, 4)} and cb.item() == 4
    assert pixels(M.topk_mask(a, 4)) == {(4, 4), (0, 4), (0, 0), (0, 1)}


# ---------------------------------------------------------------------------------------------
# Case C, 6×6, k = 4, w = 1: a 2×2 block shifted one column right.
#   a: 4 at (1,1), 3 at (1,2), 2 at (2,1), 1 at (2,2);  b: the same one column to the right.
#   intersection {(1,2), (2,2)} -> 1/2; both LENS -> 1 (each block lies in the other's N_1).
#   D_k(a): (1,1); then zeros in index order: (0,3) [2 from (1,1)], (0,5), (2,3).
#   D_k(b): (1,2); then (0,0), (0,4), (2,0).
#   div intersection 0; every pick of each lies within 1 of a pick of the other -> 1 and 1.
#   Centroid of a: rows (4+3+4+2)/10 = 1.3, cols (4+6+2+2)/10 = 1.4; b is one column right: shift 1.
# ---------------------------------------------------------------------------------------------
def test_case_c_shifted_block():
    a = grid(6, 6, {(1, 1): 4, (1, 2): 3, (2, 1): 2, (2, 2): 1})
    b = grid(6, 6, {(1, 2): 4, (1, 3): 3, (2, 2): 2, (2, 3): 1})
    r = M.compare(a, b, k=4, w=1)
    assert r["topk_intersection"].item() == approx(0.5)
    assert r["lens_recall"].item() == approx(1.0)
    assert r["lens_precision"].item() == approx(1.0)
    assert r["topk_div_intersection"].item() == approx(0.0)
    assert r["lens_recall_div"].item() == approx(1.0)
    assert r["lens_precision_div"].item() == approx(1.0)
    assert r["center_shift"].item() == approx(1.0)
    assert pixels(M.diverse_topk_mask(a, 4, 1)[0]) == {(1, 1), (0, 3), (0, 5), (2, 3)}
    assert pixels(M.diverse_topk_mask(b, 4, 1)[0]) == {(1, 2), (0, 0), (0, 4), (2, 0)}
    np.testing.assert_allclose(M.center_of_mass(a).numpy(), [1.3, 1.4])


# ---------------------------------------------------------------------------------------------
# Case D, 8×8, k = 1: neighbourhoods clip at borders and never wrap across row ends.
#   a: top pixel (0,7) (idx 7). b: top pixel (1,0) (idx 8): adjacent in flat order, 7 columns
#   apart on the image -> LENS 0 for w < 7, 1 from w = 7.
#   a2: top pixel (0,0); b at (3,3) is within w = 3 but not w = 2; (4,4) is not within 3.
# ---------------------------------------------------------------------------------------------
def test_case_d_no_wrap_and_border_clipping():
    a = grid(8, 8, {(0, 7): 1})
    b = grid(8, 8, {(1, 0): 1})
    for w in range(0, 7):
        assert M.compare(a, b, k=1, w=w)["lens_recall"].item() == 0.0
    assert M.compare(a, b, k=1, w=7)["lens_recall"].item() == 1.0
    a2 = grid(8, 8, {(0, 0): 1})
    assert M.compare(a2, grid(8, 8, {(3, 3): 1}), k=1, w=3)["lens_recall"].item() == 1.0
    assert M.compare(a2, grid(8, 8, {(3, 3): 1}), k=1, w=2)["lens_precision"].item() == 0.0
    assert M.compare(a2, grid(8, 8, {(4, 4): 1}), k=1, w=3)["lens_precision"].item() == 0.0
    # N_1 of the corner pixel is the clipped 2×2 square.
    assert pixels(M.dilate(a2.bool(), 1)) == {(0, 0), (0, 1), (1, 0), (1, 1)}


# ---------------------------------------------------------------------------------------------
# Case E, 5×5 constant map, w = 2, k = 5: the diverse walk runs out of pixels.
#   In index order: (0,0) ok; (0,1), (0,2) within 2; (0,3) ok (3 away); (0,4) no; rows 1-2 are all
#   within 2 of (0,0) or (0,3); (3,0) ok; (3,1), (3,2) no; (3,3) ok; (3,4) and row 4 no.
#   D_k = {(0,0), (0,3), (3,0), (3,3)}: 4 found < k = 5; denominators stay k -> 4/5.
#   A constant map has no rank correlation: NaN.
# ---------------------------------------------------------------------------------------------
def test_case_e_exhausted_diverse_selection():
    c = torch.ones(5, 5)
    mask, count = M.diverse_topk_mask(c, 5, 2)
    assert pixels(mask) == {(0, 0), (0, 3), (3, 0), (3, 3)}
    assert count.item() == 4
    r = M.compare(c, c, k=5, w=2)
    assert r["topk_div_intersection"].item() == approx(4 / 5)
    assert r["lens_recall_div"].item() == approx(4 / 5)
    assert r["topk_intersection"].item() == 1.0
    assert math.isnan(r["spearman"].item()) and math.isnan(r["kendall"].item())
    assert math.isnan(r["lens_spearman"].item())


# ---------------------------------------------------------------------------------------------
# Case F, 5×5, k = H*W: every pixel is in both top-k sets -> every set metric is 1.
# ---------------------------------------------------------------------------------------------
def test_case_f_k_equals_all_pixels():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(5, 5, generator=g), torch.rand(5, 5, generator=g)
    r = M.compare(a, b, k=25, w=0)
    for key in ("topk_intersection", "lens_recall", "lens_precision", "topk_div_intersection"):
        assert r[key].item() == 1.0


# ---------------------------------------------------------------------------------------------
# Correlations by hand.
# ---------------------------------------------------------------------------------------------
def test_correlations_hand_worked_2x2():
    # a = [4 3; 2 1], b = [3 4; 1 2]: ranks 4,3,2,1 vs 3,4,1,2, Σd² = 4 -> ρ = 1 - 6·4/(4·15) = 0.6
    # pairs: (0,1) and (2,3) discordant, the other four concordant -> τ = (4 - 2)/6 = 1/3.
    a = torch.tensor([[4.0, 3.0], [2.0, 1.0]])
    b = torch.tensor([[3.0, 4.0], [1.0, 2.0]])
    assert M.spearman(a, b).item() == approx(0.6)
    assert M.kendall(a, b).item() == approx(1 / 3)


def test_correlations_hand_worked_with_ties():
    # a = [2 1; 1 0] -> average ranks 4, 2.5, 2.5, 1;  b = [2 2; 1 0] -> 3.5, 3.5, 2, 1.
    # centred: (1.5, 0, 0, -1.5) and (1, 1, -0.5, -1.5): ρ = 3.75 / sqrt(4.5 · 4.5) = 5/6.
    # τ-b: 4 concordant, 0 discordant, one pair tied in a only, one in b only:
    #   τ_b = 4 / sqrt((6 - 1)(6 - 1)) = 0.8.
    a = torch.tensor([[2.0, 1.0], [1.0, 0.0]])
    b = torch.tensor([[2.0, 2.0], [1.0, 0.0]])
    assert M.spearman(a, b).item() == approx(5 / 6)
    assert M.kendall(a, b).item() == approx(0.8)


def test_correlations_5x5_swap():
    # a holds 1..25. Swapping the values 25 and 23 (rank distance 2): Σd² = 2·2² = 8 ->
    # ρ = 1 - 6·8/(25·624) = 1 - 48/15600; three pairs turn discordant -> τ = (300 - 6)/300.
    a = torch.arange(1, 26, dtype=torch.float64).reshape(5, 5)
    b = a.clone()
    b[4, 4], b[4, 2] = 23.0, 25.0
    r = M.compare(a, b, k=3, w=0)
    assert r["spearman"].item() == approx(1 - 48 / 15600)
    assert r["kendall"].item() == approx(294 / 300)
    assert r["lens_spearman"].item() == r["spearman"].item()


def test_lens_correlations_use_maxpool():
    # maxpool_1 of a single peak at the centre of a 3×3 map is constant -> undefined (NaN).
    a = grid(3, 3, {(1, 1): 1})
    assert torch.equal(M.maxpool_map(a, 1), torch.ones(3, 3, dtype=torch.float64))
    r = M.compare(a, grid(3, 3, {(0, 0): 1}), k=1, w=1)
    assert math.isnan(r["lens_spearman"].item())
    # Three peaks per map: the LENS correlations equal scipy's on the max-pooled maps.
    from scipy.stats import kendalltau, spearmanr
    a = grid(4, 6, {(0, 0): 3, (3, 5): 2, (2, 2): 1})
    b = grid(4, 6, {(0, 1): 3, (3, 3): 2, (1, 4): 1})
    pa, pb = M.maxpool_map(a, 1).flatten().numpy(), M.maxpool_map(b, 1).flatten().numpy()
    r = M.compare(a, b, k=2, w=1)
    assert r["lens_spearman"].item() == approx(spearmanr(pa, pb).statistic)
    assert r["lens_kendall"].item() == approx(kendalltau(pa, pb).statistic)


# ---------------------------------------------------------------------------------------------
# Batching, overlap masks, degenerate maps.
# ---------------------------------------------------------------------------------------------
def test_batched_equals_single():
    g = torch.Generator().manual_seed(3)
    a = torch.randint(0, 5, (4, 7, 6), generator=g).float()
    b = torch.randint(0, 5, (4, 7, 6), generator=g).float()
    batched = M.compare(a, b, k=9, w=1)
    for i in range(4):
        single = M.compare(a[i], b[i], k=9, w=1)
        for key in M.METRIC_KEYS:
            torch.testing.assert_close(batched[key][i], single[key], equal_nan=True)
    assert set(batched) == set(M.METRIC_KEYS)
    assert all(v.shape == (4,) for v in batched.values())


def test_overlap_masks_add_up_to_lens_scores():
    a = grid(5, 5, {(4, 4): 5, (0, 4): 3})
    b = grid(5, 5, {(4, 3): 5})
    o = M.overlap_masks(a, b, k=4, w=1)
    r = M.compare(a, b, k=4, w=1)
    # original top-k partition: exact {0,1}, within {24}, lost {4}
    assert pixels(o["orig_exact"]) == {(0, 0), (0, 1)}
    assert pixels(o["orig_within"]) == {(4, 4)}
    assert pixels(o["orig_lost"]) == {(0, 4)}
    assert pixels(o["adv_within"]) == {(4, 3), (0, 2)}
    assert not o["adv_new"].any()
    k = 4
    assert (o["orig_exact"].sum() + o["orig_within"].sum()).item() == r["lens_precision"].item() * k
    assert (o["adv_exact"].sum() + o["adv_within"].sum()).item() == r["lens_recall"].item() * k
    assert o["orig_diverse_count"].item() == 4


def test_degenerate_maps():
    z = torch.zeros(5, 5)
    a = grid(5, 5, {(2, 2): 1})
    assert M.is_degenerate(z).item() and not M.is_degenerate(a).item()
    r = M.compare(a, z, k=3, w=1)
    assert math.isnan(r["spearman"].item()) and math.isnan(r["kendall"].item())
    assert math.isnan(r["center_shift"].item())
    assert 0.0 <= r["topk_intersection"].item() <= 1.0


def test_rank_positions_tie_rule():
    m = torch.tensor([[0.0, 2.0, 0.0], [2.0, 1.0, 0.0]])
    # order: idx1 (2), idx3 (2), idx4 (1), then zeros idx0, idx2, idx5
    assert M.rank_positions(m).tolist() == [[3, 0, 4], [1, 2, 5]]
    # -0.0 ties with 0.0 (index order decides), in float32 and float64 alike.
    for dtype in (torch.float32, torch.float64):
        z = torch.tensor([[0.0, -0.0, 0.0], [1.0, -0.0, 0.0]], dtype=dtype)
        assert pixels(M.topk_mask(z, 3)) == {(1, 0), (0, 0), (0, 1)}
        assert pixels(M.diverse_topk_mask(z, 2, 1)[0]) == {(1, 0), (0, 2)}


def test_metric_registry_has_spec_keys_and_formulas():
    assert M.METRIC_KEYS == (
        "topk_intersection", "lens_recall", "lens_precision", "spearman", "kendall",
        "lens_spearman", "lens_kendall", "topk_div_intersection", "lens_recall_div",
        "lens_precision_div", "center_shift")
    for info in M.METRICS.values():
        assert info.name and info.formula and info.description
    assert M.METRICS["lens_recall"].formula == "|N_w(S_k(a)) ∩ S_k(b)| / k"
    assert not M.METRICS["center_shift"].higher_is_better


# ---------------------------------------------------------------------------------------------
# Bad input: each raises ValueError saying what is allowed.
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", [0, -1, 26, 2.5, "3", True])
def test_bad_k(k):
    with pytest.raises(ValueError, match=r"k must be .*between 1 and H\*W = 25"):
        M.compare(torch.rand(5, 5), torch.rand(5, 5), k=k, w=1)


@pytest.mark.parametrize("w", [-1, 1.5, None])
def test_bad_w(w):
    with pytest.raises(ValueError, match=r"w \(neighbourhood radius\) must be an integer >= 0"):
        M.compare(torch.rand(5, 5), torch.rand(5, 5), k=3, w=w)


def test_bad_maps():
    with pytest.raises(ValueError, match="same shape"):
        M.compare(torch.rand(5, 5), torch.rand(5, 6), k=3, w=1)
    with pytest.raises(ValueError, match="same shape"):
        M.compare(torch.rand(2, 5, 5), torch.rand(5, 5), k=3, w=1)
    nan = torch.rand(5, 5)
    nan[1, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite.*only finite"):
        M.compare(nan, torch.rand(5, 5), k=3, w=1)
    inf = torch.rand(5, 5)
    inf[0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        M.compare(torch.rand(5, 5), inf, k=3, w=1)
    with pytest.raises(ValueError, match="non-negative"):
        M.compare(-torch.rand(5, 5), torch.rand(5, 5), k=3, w=1)
    with pytest.raises(ValueError, match=r"shape \(H, W\) or \(N, H, W\)"):
        M.compare(torch.rand(5), torch.rand(5), k=3, w=1)
    with pytest.raises(ValueError, match=r"shape \(H, W\) or \(N, H, W\)"):
        M.topk_mask(torch.rand(1, 1, 5, 5), 3)


def test_compare_is_set_metrics_plus_rank_metrics():
    g = torch.Generator().manual_seed(5)
    a = torch.randint(0, 6, (3, 9, 8), generator=g).float()
    b = torch.randint(0, 6, (3, 9, 8), generator=g).float()
    for w in (0, 2):
        full = M.compare(a, b, k=10, w=w)
        parts = {**M.set_metrics(a, b, 10, w), **M.rank_metrics(a, b, w)}
        assert set(parts) == set(M.METRIC_KEYS)
        lens = M.rank_metrics(a, b, w, lens_only=True)
        assert set(lens) == {"lens_spearman", "lens_kendall"}
        for key in M.METRIC_KEYS:
            torch.testing.assert_close(parts[key].double(), full[key], equal_nan=True)
        for key, value in lens.items():
            torch.testing.assert_close(value, full[key], equal_nan=True)
