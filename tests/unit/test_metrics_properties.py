"""Property tests (hypothesis) of the metrics (docs/spec.md), plus agreement with plain references."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import kendalltau, spearmanr

from explorer import metrics as M

SET_KEYS = ("topk_intersection", "lens_recall", "lens_precision", "topk_div_intersection",
            "lens_recall_div", "lens_precision_div")


@st.composite
def map_pairs(draw, max_side=9):
    """Two integer-valued maps (many ties, like MNIST maps), a valid k and w."""
    h = draw(st.integers(2, max_side))
    w_ = draw(st.integers(2, max_side))
    levels = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2 ** 31 - 1))
    # float32 ranks through packed integer keys, float64 through a stable sort: test both.
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, levels + 1, (h, w_), generator=g).to(dtype)
    b = torch.randint(0, levels + 1, (h, w_), generator=g).to(dtype)
    k = draw(st.integers(1, h * w_))
    w = draw(st.integers(0, 4))
    return a, b, k, w


def sequential_diverse(m, k, w):
    """The greedy diverse walk written as plainly as possible (reference for the batched one)."""
    height, width = m.shape
    flat = m.flatten().tolist()
    accepted = []
    for p in sorted(range(height * width), key=lambda i: (-flat[i], i)):
        r, c = divmod(p, width)
        if all(max(abs(r - q // width), abs(c - q % width)) > w for q in accepted):
            accepted.append(p)
            if len(accepted) == k:
                break
    return set(accepted)


@settings(max_examples=150, deadline=None)
@given(map_pairs())
def test_ranges_and_w0(pair):
    a, b, k, w = pair
    r = M.compare(a, b, k, w)
    for key in SET_KEYS:
        assert 0.0 <= r[key].item() <= 1.0
    r0 = M.compare(a, b, k, 0)
    assert r0["lens_recall"].item() == r0["topk_intersection"].item()
    assert r0["lens_precision"].item() == r0["topk_intersection"].item()


@settings(max_examples=150, deadline=None)
@given(map_pairs())
def test_lens_at_least_intersection_and_monotone_in_w(pair):
    a, b, k, _ = pair
    prev = None
    for w in range(0, 5):
        r = M.compare(a, b, k, w)
        assert r["lens_recall"].item() >= r["topk_intersection"].item()
        assert r["lens_precision"].item() >= r["topk_intersection"].item()
        if prev is not None:
            assert r["lens_recall"].item() >= prev["lens_recall"].item()
            assert r["lens_precision"].item() >= prev["lens_precision"].item()
        prev = r


@settings(max_examples=150, deadline=None)
@given(map_pairs())
def test_identical_maps_score_one(pair):
    a, _, k, w = pair
    r = M.compare(a, a.clone(), k, w)
    for key in ("topk_intersection", "lens_recall", "lens_precision"):
        assert r[key].item() == 1.0
    _, count = M.diverse_topk_mask(a, k, w)
    for key in ("topk_div_intersection", "lens_recall_div", "lens_precision_div"):
        # Exhausted diverse selections keep the denominator k: count/k, else 1.
        assert r[key].item() == pytest.approx(count.item() / k)
    if float(a.max()) != float(a.min()):
        assert r["spearman"].item() == pytest.approx(1.0)
        assert r["kendall"].item() == pytest.approx(1.0)
    else:
        assert math.isnan(r["spearman"].item())
    assert r["center_shift"].item() == 0.0 or math.isnan(r["center_shift"].item())


@settings(max_examples=100, deadline=None)
@given(map_pairs(), st.sampled_from([0.5, 2.0, 3.0, 7.0]), st.sampled_from([0.25, 4.0, 5.0]))
def test_invariant_to_rescaling(pair, ca, cb):
    a, b, k, w = pair
    r1 = M.compare(a, b, k, w)
    r2 = M.compare(a * ca, b * cb, k, w)
    for key in M.METRIC_KEYS:
        torch.testing.assert_close(r1[key], r2[key], equal_nan=True)


@settings(max_examples=150, deadline=None)
@given(map_pairs())
def test_diverse_equals_sequential_walk(pair):
    a, _, k, w = pair
    mask, count = M.diverse_topk_mask(a, k, w)
    expected = sequential_diverse(a, k, w)
    width = a.shape[1]
    got = {r * width + c for r, c in torch.nonzero(mask).tolist()}
    assert got == expected
    assert count.item() == len(expected)


@settings(max_examples=100, deadline=None)
@given(map_pairs())
def test_correlations_match_scipy(pair):
    a, b, k, w = pair
    r = M.compare(a, b, k, w)
    x, y = a.flatten().numpy(), b.flatten().numpy()
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        assert math.isnan(r["spearman"].item()) and math.isnan(r["kendall"].item())
        return
    assert r["spearman"].item() == pytest.approx(spearmanr(x, y).statistic, abs=1e-9)
    assert r["kendall"].item() == pytest.approx(kendalltau(x, y).statistic, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(map_pairs())
def test_topk_and_dilation_match_plain_python(pair):
    a, _, k, w = pair
    height, width = a.shape
    flat = a.flatten().tolist()
    top = sorted(range(height * width), key=lambda i: (-flat[i], i))[:k]
    mask = M.topk_mask(a, k)
    assert {r * width + c for r, c in torch.nonzero(mask).tolist()} == set(top)
    grown = M.dilate(mask, w)
    for r in range(height):
        for c in range(width):
            near = any(max(abs(r - p // width), abs(c - p % width)) <= w for p in top)
            assert bool(grown[r, c]) == near
