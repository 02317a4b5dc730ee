"""The set metrics at many k at once: hand-worked values on a 1×5 line, equality with
``metrics.set_metrics`` at every k on random maps (ties included), and the refusals.

Pixel c of the 1×5 line has flat index c; w = 1 puts c - 1 and c + 1 in its neighbourhood.
"""

import pytest
import torch

from explorer import metrics as M
from explorer import set_curves as S


def line(values):
    return torch.tensor([values], dtype=torch.float32)


def test_hand_worked_line_every_k_at_once():
    a = line([5.0, 4, 3, 2, 1])  # ranking 0, 1, 2, 3, 4; diverse walk (w = 1) accepts 0, 2, 4
    b = line([1.0, 2, 3, 4, 5])  # ranking 4, 3, 2, 1, 0; diverse walk accepts 4, 2, 0
    got = S.set_metrics_over_k(a, b, [1, 2, 3, 4], 1)
    # k = 3: S_3(a) = {0,1,2}, S_3(b) = {2,3,4}, N_1(S_3(a)) = {0..3}, N_1(S_3(b)) = {1..4}.
    assert got["topk_intersection"].tolist() == pytest.approx([0, 0, 1 / 3, 3 / 4])
    assert got["lens_recall"].tolist() == pytest.approx([0, 0, 2 / 3, 1])
    assert got["lens_precision"].tolist() == pytest.approx([0, 0, 2 / 3, 1])
    # D_2(a) = {0,2}, D_2(b) = {4,2}; D_3 = D_4 = {0,2,4} for both (the walk runs out at 3
    # picks, and the score still divides by k: 3/4 at k = 4).
    assert got["topk_div_intersection"].tolist() == pytest.approx([0, 1 / 2, 1, 3 / 4])
    # N_1(D_2(a)) = {0,1,2,3} holds 2 of D_2(b) = {2,4}.
    assert got["lens_recall_div"].tolist() == pytest.approx([0, 1 / 2, 1, 3 / 4])
    assert got["lens_precision_div"].tolist() == pytest.approx([0, 1 / 2, 1, 3 / 4])


def test_ranks_are_the_ranking_order_and_the_walks_order():
    m = line([5.0, 4, 3, 2, 1])
    r = S.set_ranks(m, 1, 5)
    assert r.top[0].tolist() == M.rank_positions(m).tolist() == [[0, 1, 2, 3, 4]]
    assert r.div[0].tolist() == [[0, 5, 1, 5, 2]]  # 5 = H*W: never accepted
    assert r.near_top[0].tolist() == [[0, 0, 1, 2, 3]]
    assert r.near_div[0].tolist() == [[0, 0, 1, 1, 2]]
    assert S.set_ranks(m, 1, 5, diverse=False).div is None


@pytest.mark.parametrize("seed", range(6))
def test_equals_set_metrics_at_every_k(seed):
    g = torch.Generator().manual_seed(seed)
    for trial in range(30):
        h, wd = torch.randint(2, 12, (2,), generator=g).tolist()
        a = torch.rand(3, h, wd, generator=g)
        b = torch.rand(3, h, wd, generator=g)
        if trial % 3 == 0:  # many ties, zero-valued ones too
            a, b = (a * 3).floor(), (b * 2).floor()
        w = int(torch.randint(0, 4, (1,), generator=g))
        ks = torch.randint(1, h * wd + 1, (5,), generator=g).tolist()
        got = S.set_metrics_over_k(a, b, ks, w)
        single = S.set_metrics_over_k(a[0], b[0], ks, w)
        for j, k in enumerate(ks):
            ref = M.set_metrics(a, b, k, w)
            for key in M.SET_METRIC_KEYS:
                assert torch.equal(got[key][j], ref[key]), (seed, trial, key, k, w)
                assert float(single[key][j]) == float(ref[key][0])


@pytest.mark.parametrize("case", ["float64", "half", "all zero", "one row", "one column",
                                  "w beyond the map"])
def test_equals_set_metrics_on_edge_maps(case):
    g = torch.Generator().manual_seed(7)
    shape, w = {"one row": (1, 9), "one column": (9, 1)}.get(case, (5, 6)), 1
    a = torch.rand(2, *shape, generator=g)
    b = torch.rand(2, *shape, generator=g)
    if case == "float64":  # the rank keys come from a sort, not from the float bits
        a, b = a.double(), (b * 3).floor().double()
    elif case == "half":
        a, b = a.half(), b.half()
    elif case == "all zero":
        a = torch.zeros_like(a)
    elif case == "w beyond the map":
        w = 8  # every window covers the whole map: the diverse set is one pixel
    hw = shape[0] * shape[1]
    ks = [1, 2, hw // 2, hw]  # up to every pixel
    got = S.set_metrics_over_k(a, b, ks, w)
    for j, k in enumerate(ks):
        ref = M.set_metrics(a, b, k, w)
        for key in M.SET_METRIC_KEYS:
            assert torch.equal(got[key][j], ref[key]), (case, key, k)
    if case == "w beyond the map":
        assert got["topk_div_intersection"][-1].tolist() == [
            float(int(M.rank_positions(a[i]).argmin() == M.rank_positions(b[i]).argmin())) / hw
            for i in range(2)]


def test_pairs_by_index_and_a_subset_of_keys():
    g = torch.Generator().manual_seed(3)
    maps = torch.rand(4, 6, 6, generator=g)
    ranks = S.set_ranks(maps, 2, 10)
    got = S.pair_scores_over_k(ranks, ranks, [3, 10], [0, 3, 2], [1, 0, 2],
                               keys=("lens_recall_div",))
    assert set(got) == {"lens_recall_div"} and got["lens_recall_div"].shape == (2, 3)
    for j, k in enumerate([3, 10]):
        for col, (i, jj) in enumerate([(0, 1), (3, 0), (2, 2)]):
            ref = M.set_metrics(maps[i], maps[jj], k, 2)["lens_recall_div"]
            assert float(got["lens_recall_div"][j, col]) == float(ref)


def test_refusals_say_what_is_allowed():
    m = torch.rand(2, 5, 5)
    ranks = S.set_ranks(m, 1, 4)
    with pytest.raises(ValueError, match="at most the ranks' k_max"):
        S.pair_scores_over_k(ranks, ranks, [5])
    with pytest.raises(ValueError, match="diverse walk"):
        no_walk = S.set_ranks(m, 1, 4, diverse=False)
        S.pair_scores_over_k(no_walk, no_walk, [2], keys=("topk_div_intersection",))
    with pytest.raises(ValueError, match="same w"):
        S.pair_scores_over_k(ranks, S.set_ranks(m, 2, 4), [2])
    with pytest.raises(ValueError, match="same length"):
        S.pair_scores_over_k(ranks, ranks, [2], [0, 1], [1])
    with pytest.raises(ValueError, match=r"must index the 2 maps \(0\.\.1\)"):
        S.pair_scores_over_k(ranks, ranks, [2], [0, 2], [1, 0])
    with pytest.raises(ValueError, match="integer map indices"):
        S.pair_scores_over_k(ranks, ranks, [2], [0.0], [1.0])
    with pytest.raises(ValueError, match="same number of maps"):
        S.pair_scores_over_k(ranks, S.set_ranks(m[:1], 1, 4), [2])
    with pytest.raises(ValueError, match="keys must be set metrics; got \\['spearman'\\]"):
        S.pair_scores_over_k(ranks, ranks, [2], keys=("spearman",))
    with pytest.raises(ValueError, match="at least one k"):
        S.set_metrics_over_k(m, m, [], 1)
    with pytest.raises(ValueError, match="ks must be a sequence of integers"):
        S.set_metrics_over_k(m, m, "2", 1)
    with pytest.raises(ValueError, match="keys must be set metrics"):
        S.set_metrics_over_k(m, m, [2], 1, keys=("spearman",))
    with pytest.raises(ValueError, match=r"k must be between 1 and H\*W = 25"):
        S.set_metrics_over_k(m, m, [26], 1)
    # one k, and one key given as a string, are accepted as such
    one = S.set_metrics_over_k(m, m, 3, 1, keys="lens_recall")
    assert set(one) == {"lens_recall"} and one["lens_recall"].shape == (1, 2)
