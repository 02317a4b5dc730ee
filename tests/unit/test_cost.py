"""Tests for explorer.cost: estimates worked by hand from the calibration table, admission, the
default chunk, and the FIFO memory reservation under threads."""

import math
import random
import threading
import time

import pytest
import torch
import torch.nn as nn

from explorer import attacks, cost

MB = 1024 * 1024
EFF = cost.CALIBRATION["efficientnet_lite0"]


def imagenet_x(n=1):
    return torch.zeros(n, 3, 224, 224)


# --------------------------------------------------------------------------------------------
# default chunk
# --------------------------------------------------------------------------------------------

def test_default_chunk_fits_the_job_budget():
    per_row = max(EFF.double_mb, EFF.surrogate_mb) * MB
    expected = int(cost.DEFAULT_JOB_BUDGET_BYTES["cpu"] // per_row)
    assert expected == 2  # 1.0 GB / 374 MB on EfficientNet-Lite0's 224×224 rows
    x = imagenet_x()
    assert cost.default_chunk("smoothgrad", None, x, arch="efficientnet_lite0") == expected
    assert cost.default_chunk("integrated_gradients", None, x, arch="efficientnet_lite0") == 2
    assert cost.default_chunk("smoothgrad", None, x, arch="efficientnet_lite0",
                              budget_bytes=10.5 * per_row) == 10
    # at least one row, at most internal_batch_size
    assert cost.default_chunk("smoothgrad", None, x, budget_bytes=1) == 1
    assert cost.default_chunk("smoothgrad", {"internal_batch_size": 1}, x,
                              arch="efficientnet_lite0") == 1


def test_default_chunk_is_none_when_one_graph_fits_or_for_single_pass_methods():
    assert cost.default_chunk("saliency", None, imagenet_x()) is None
    assert cost.default_chunk("input_x_gradient", None, imagenet_x(4)) is None
    # 50 noisy copies of one 28×28 image: a few MB, all rows fit at once.
    assert cost.default_chunk("smoothgrad", None, torch.zeros(1, 1, 28, 28)) is None
    assert cost.default_chunk("smoothgrad", {"n_samples": 4}, imagenet_x(),
                              budget_bytes=4 * EFF.double_mb * MB, arch="efficientnet_lite0") \
        is None


def test_unknown_architecture_is_estimated_conservatively():
    # An unknown model: the largest per-input-value figures of the table.
    worst = max(r.double_mb / r.values for r in cost.CALIBRATION.values())
    got = cost.default_chunk("smoothgrad", None, imagenet_x(), arch="somebody's net")
    assert got == max(1, int(cost.DEFAULT_JOB_BUDGET_BYTES["cpu"] // (worst * 3 * 224 * 224 * MB)))
    e = cost.estimate_attack("imagenet", "smoothgrad", steps=1, arch="somebody's net",
                             chunk=None)
    assert not e.calibrated
    assert e.peak_bytes >= cost.estimate_attack("imagenet", "smoothgrad", steps=1, chunk=None,
                                                arch="efficientnet_lite0").peak_bytes


# --------------------------------------------------------------------------------------------
# estimates, worked by hand from the table
# --------------------------------------------------------------------------------------------

def test_attack_estimate_chunked_smoothgrad_by_hand():
    e = cost.estimate_attack("imagenet", "smoothgrad", {"n_samples": 50}, steps=10,
                             arch="efficientnet_lite0")
    assert e.chunk == 2 and e.rows == 50 and e.calibrated
    assert e.peak_bytes == int(2 * EFF.double_mb * MB)  # above the 3-row evaluation chunk
    step = 50 * (EFF.surrogate_s + EFF.double_s) + 50 * EFF.real_s
    assert math.isclose(e.step_seconds, step)
    assert math.isclose(e.seconds, 10 * step + 50 * EFF.real_s)
    assert "50 rows per step, 2 rows per chunk" in e.summary


def test_attack_estimate_one_graph_grows_with_the_samples():
    e = cost.estimate_attack("imagenet", "integrated_gradients", {"steps": 20}, steps=1,
                             chunk=None, arch="efficientnet_lite0")
    assert e.chunk is None
    assert e.peak_bytes == int(20 * EFF.double_mb * MB)
    assert math.isclose(e.step_seconds, 20 * (EFF.double_s + EFF.real_s))


def test_attack_estimate_saliency_and_random_attacks():
    e = cost.estimate_attack("imagenet", "saliency", steps=300, n_images=2)
    assert e.chunk is None and e.rows == 2
    assert e.peak_bytes == int(2 * EFF.double_mb * MB)  # default model: EfficientNet-Lite0
    assert math.isclose(e.seconds, 300 * 2 * (EFF.double_s + EFF.real_s) + 2 * EFF.real_s)
    r = cost.estimate_attack("imagenet", "saliency", steps=300, uses_gradient=False)
    assert r.peak_bytes == int(EFF.real_mb * MB)
    assert math.isclose(r.seconds, 301 * EFF.real_s)


def test_map_estimate_uses_the_forward_chunk():
    e = cost.estimate_map("imagenet", "smoothgrad", {"n_samples": 50}, arch="efficientnet_lite0")
    assert e.peak_bytes == int(3 * EFF.real_mb * MB)  # 2**19 values: 3 rows of 224×224×3
    assert math.isclose(e.seconds, 50 * EFF.real_s)


def test_estimates_refuse_bad_names():
    with pytest.raises(ValueError, match="unknown attribution method"):
        cost.estimate_attack("imagenet", "lime", steps=1)
    with pytest.raises(ValueError, match="n_samples"):
        cost.estimate_attack("imagenet", "smoothgrad", {"n_samples": 0}, steps=1)


# --------------------------------------------------------------------------------------------
# admission
# --------------------------------------------------------------------------------------------

def test_decide_run_confirm_refuse():
    b = cost.Budgets(job_bytes=1e9, click_seconds=30, max_seconds=3600)
    quick = cost.estimate_attack("mnist", "saliency", steps=10, arch="efficientnet_lite0")
    # 28×28 scaled from the 224×224 row: well under a second
    assert cost.decide(quick, b).action == "run"
    slow = cost.estimate_attack("imagenet", "smoothgrad", steps=10, arch="efficientnet_lite0")
    d = cost.decide(slow, b)
    assert d.action == "confirm" and "Click to start" in d.message and "min" in d.message
    long = cost.estimate_attack("imagenet", "smoothgrad", steps=300, arch="efficientnet_lite0")
    d = cost.decide(long, b)
    most = int((3600 - 50 * EFF.real_s) // long.step_seconds)
    assert d.action == "refuse"
    assert f"at most {most} attack steps" in d.message and "60 min" in d.message
    big = cost.estimate_attack("imagenet", "smoothgrad", steps=1, chunk=None,
                               arch="efficientnet_lite0")
    d = cost.decide(big, b)
    assert d.action == "refuse" and "at most 1.00 GB per job" in d.message
    assert f"about {big.peak_gb:.2f} GB" in d.message and "2 row(s) per pass fit" in d.message


# --------------------------------------------------------------------------------------------
# the attack uses the budget's chunk and gets the one-graph result
# --------------------------------------------------------------------------------------------

def test_attack_with_chunked_gradient_matches_one_graph(monkeypatch):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                        nn.Linear(4 * 36, 3)).double().eval()
    x = torch.rand(2, 1, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    kw = dict(method="smoothgrad", method_params={"n_samples": 6}, attack="topk", epsilon=0.1,
              step_size=0.02, steps=4, attack_k=5)
    seen = []
    real = cost.default_chunk

    def spy(*a, **k):
        seen.append(real(*a, **k))
        return seen[-1]

    monkeypatch.setattr(attacks, "default_chunk", spy)
    monkeypatch.setitem(cost.DEFAULT_JOB_BUDGET_BYTES, "cpu", 1.0)  # one row per chunk
    chunked = attacks.attack(net, x, **kw)
    assert seen and set(seen) == {1}
    monkeypatch.setitem(cost.DEFAULT_JOB_BUDGET_BYTES, "cpu", 1e12)  # all rows at once
    seen.clear()
    whole = attacks.attack(net, x, **kw)
    assert set(seen) == {None}
    assert torch.equal(chunked.x_adv, whole.x_adv)
    assert torch.allclose(chunked.history, whole.history)


# --------------------------------------------------------------------------------------------
# MemoryBudget
# --------------------------------------------------------------------------------------------

def test_reservation_fifo_without_overtaking():
    budget = cost.MemoryBudget(10)
    a = budget.request(6)
    b = budget.request(5)
    c = budget.request(1)  # would fit now (7 <= 10) but must not overtake b
    assert a.granted and a.position == 0
    assert not b.granted and b.position == 1
    assert not c.granted and c.position == 2
    assert budget.in_use == 6 and budget.waiting == 2
    a.release()
    assert b.granted and c.granted and budget.in_use == 6
    b.release()
    c.release()
    c.release()  # idempotent
    assert budget.in_use == 0 and budget.waiting == 0


def test_reservation_threads_are_served_in_arrival_order():
    budget = cost.MemoryBudget(100)
    holder = budget.request(100)
    order, lock = [], threading.Lock()
    tickets = [budget.request(60) for _ in range(5)]  # one at a time fits
    assert [t.position for t in tickets] == [1, 2, 3, 4, 5]

    def worker(i):
        with tickets[i]:
            with lock:
                order.append(i)
            time.sleep(0.01)

    threads = [threading.Thread(target=worker, args=(i,)) for i in reversed(range(5))]
    for t in threads:
        t.start()
    time.sleep(0.05)
    assert order == []  # all wait behind the holder
    holder.release()
    for t in threads:
        t.join(10)
    assert order == [0, 1, 2, 3, 4]
    assert budget.in_use == 0


def test_reservation_never_exceeds_the_budget_under_contention():
    total = 1000
    budget = cost.MemoryBudget(total)
    held, peak, lock = [0], [0], threading.Lock()
    errors = []

    def worker(seed):
        rng = random.Random(seed)
        for _ in range(20):
            n = rng.randint(1, total)
            with budget.request(n):
                with lock:
                    held[0] += n
                    peak[0] = max(peak[0], held[0])
                    if held[0] > total:
                        errors.append(held[0])
                time.sleep(rng.random() * 0.002)
                with lock:
                    held[0] -= n

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == [] and 0 < peak[0] <= total
    assert budget.in_use == 0 and budget.waiting == 0


def test_reservation_released_when_the_job_raises():
    budget = cost.MemoryBudget(10)
    with pytest.raises(RuntimeError, match="job failed"):
        with budget.request(8):
            waiting = budget.request(5)
            assert waiting.position == 1
            raise RuntimeError("job failed")
    assert waiting.granted and budget.in_use == 5
    waiting.release()
    assert budget.in_use == 0


def test_reserve_timeout_leaves_the_queue():
    budget = cost.MemoryBudget(10)
    first = budget.request(10)
    behind = budget.request(1)
    with pytest.raises(TimeoutError, match="server is busy"):
        budget.reserve(4, timeout=0.05)  # queued between `behind`, then gives up
    assert budget.waiting == 1 and behind.position == 1
    first.release()
    assert behind.granted
    with pytest.raises(RuntimeError, match="released"):
        first.wait()


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), True, "3"])
def test_reservation_bad_sizes(bad):
    with pytest.raises(ValueError, match="nbytes must be a finite number"):
        cost.MemoryBudget(10).request(bad)


def test_reservation_larger_than_the_budget_is_refused_at_once():
    with pytest.raises(ValueError, match="more than the whole server budget of 0.00 GB"):
        cost.MemoryBudget(10).request(11)
    with pytest.raises(ValueError, match="total_bytes must be a positive number"):
        cost.MemoryBudget(0)


def test_server_budget_from_environment(monkeypatch):
    monkeypatch.setenv("EXPLORER_MEMORY_BUDGET_GB", "2.5")
    assert cost.default_server_budget_bytes() == int(2.5e9)
    monkeypatch.setenv("EXPLORER_MEMORY_BUDGET_GB", "lots")
    with pytest.raises(ValueError, match="EXPLORER_MEMORY_BUDGET_GB must be a positive number"):
        cost.default_server_budget_bytes()
    monkeypatch.delenv("EXPLORER_MEMORY_BUDGET_GB")
    assert 0 < cost.default_server_budget_bytes()
    assert cost.server_budget() is cost.server_budget()
