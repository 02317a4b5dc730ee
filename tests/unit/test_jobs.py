"""Tests for explorer.jobs: the heavy-job slot pool (FIFO, positions, wait estimates, release on
every way out) and cooperative cancellation inside attacks and chunked gradients."""

import threading
import time

import pytest
import torch
import torch.nn as nn

from explorer import attacks, attributions, jobs


# --------------------------------------------------------------------------------------------
# SlotPool
# --------------------------------------------------------------------------------------------

def test_fifo_positions_and_grants():
    pool = jobs.SlotPool(2)
    a, b, c, d = (pool.request(10, label) for label in "abcd")
    assert (a.granted, b.granted, c.granted, d.granted) == (True, True, False, False)
    assert [t.position for t in (a, b, c, d)] == [0, 0, 1, 2]
    assert pool.running == 2 and pool.waiting == 2
    b.release()
    assert c.granted and not d.granted and d.position == 1
    d.release()  # leaves the queue before its turn: frees nothing it did not hold
    assert pool.running == 2 and pool.waiting == 0
    a.release()
    c.release()
    c.release()  # idempotent
    assert pool.running == 0
    e = pool.request(1)
    assert e.granted  # the released tickets gave every slot back
    e.release()


def test_threads_are_served_in_arrival_order():
    pool = jobs.SlotPool(1)
    holder = pool.request()
    order, lock = [], threading.Lock()
    tickets = [pool.request(1, str(i)) for i in range(6)]
    assert [t.position for t in tickets] == [1, 2, 3, 4, 5, 6]

    def worker(i):
        with tickets[i]:
            with lock:
                order.append(i)
            time.sleep(0.005)

    threads = [threading.Thread(target=worker, args=(i,)) for i in reversed(range(6))]
    for t in threads:
        t.start()
    time.sleep(0.05)
    assert order == []
    holder.release()
    for t in threads:
        t.join(10)
    assert order == [0, 1, 2, 3, 4, 5]
    assert pool.running == 0 and pool.waiting == 0


def test_never_more_than_the_slots_run_at_once():
    pool = jobs.SlotPool(3)
    live, peak, lock = [0], [0], threading.Lock()

    def worker():
        for _ in range(15):
            with pool.slot(0.001):
                with lock:
                    live[0] += 1
                    peak[0] = max(peak[0], live[0])
                time.sleep(0.001)
                with lock:
                    live[0] -= 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert peak[0] == 3 and pool.running == 0 and pool.waiting == 0


def test_slot_released_when_the_job_raises_or_is_cancelled():
    pool = jobs.SlotPool(1)
    with pytest.raises(RuntimeError, match="job failed"):
        with pool.slot():
            behind = pool.request()
            assert behind.position == 1
            raise RuntimeError("job failed")
    assert behind.granted
    behind.release()
    # cancelled while running (the Streamlit signal is a BaseException, not an Exception)
    with pytest.raises(KeyboardInterrupt):
        with pool.request():
            raise KeyboardInterrupt
    assert pool.running == 0
    # cancelled while still waiting (Streamlit's signal raised inside the wait): the ticket
    # leaves the queue, the holder keeps its slot, the next request is served in order
    holder = pool.request()
    waiting = pool.request()

    def interrupted(timeout=None):
        raise KeyboardInterrupt

    waiting.wait = interrupted
    with pytest.raises(KeyboardInterrupt):
        with waiting:
            pass
    assert waiting.released and pool.waiting == 0 and pool.running == 1
    holder.release()
    assert pool.running == 0
    with pytest.raises(RuntimeError, match="released"):
        pool._wait(waiting, 0)


def test_slot_timeout_leaves_the_queue():
    pool = jobs.SlotPool(1)
    first = pool.request()
    with pytest.raises(TimeoutError, match="server is busy"):
        with pool.slot(timeout=0.05):
            pass
    assert pool.waiting == 0
    first.release()
    assert pool.running == 0


def test_wait_estimate_spreads_the_queue_over_the_slots():
    pool = jobs.SlotPool(2)
    r1, r2 = pool.request(10), pool.request(4)  # running: 10 s and 4 s left (about)
    q1, q2, q3 = pool.request(6), pool.request(3), pool.request(1)
    # q1 starts when r2 ends (4), q2 when r1 ends (10) or q1 ends (4 + 6 = 10): 10,
    # q3 at min(10 + 3, 10) = 10 after q2 takes the earliest slot... by hand:
    # free = [4, 10]; q1 -> [10, 10]; q2 -> [10, 13]; q3 waits for 10.
    assert pool.wait_estimate(q1) == pytest.approx(4, abs=0.05)
    assert pool.wait_estimate(q2) == pytest.approx(10, abs=0.05)
    assert pool.wait_estimate(q3) == pytest.approx(10, abs=0.05)
    assert pool.wait_estimate(r1) == 0.0
    for t in (r1, r2, q1, q2, q3):
        t.release()
    assert pool.wait_estimate(q3) == 0.0


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_slot_counts(bad):
    with pytest.raises(ValueError, match="slots must be a positive integer"):
        jobs.SlotPool(bad)


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), True])
def test_bad_job_seconds(bad):
    with pytest.raises(ValueError, match="seconds must be a finite number"):
        jobs.SlotPool(1).request(bad)


def test_default_slots_from_environment(monkeypatch):
    monkeypatch.setenv("EXPLORER_HEAVY_JOBS", "3")
    assert jobs.default_slots() == 3
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("EXPLORER_HEAVY_JOBS", bad)
        with pytest.raises(ValueError, match="EXPLORER_HEAVY_JOBS must be a whole number"):
            jobs.default_slots()
    monkeypatch.delenv("EXPLORER_HEAVY_JOBS")
    assert jobs.default_slots() == jobs.cpu_count()
    assert jobs.heavy_pool() is jobs.heavy_pool()


def test_threads_per_job_and_ordinals():
    assert [jobs.threads_per_job(s, 2) for s in (1, 2, 3)] == [2, 1, 1]
    assert jobs.threads_per_job(2, 8) == 4
    assert [jobs.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == \
        ["1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th"]


# --------------------------------------------------------------------------------------------
# Cancellation
# --------------------------------------------------------------------------------------------

class After:
    """A cancel check that raises Cancelled from its ``n``-th call on; counts its calls."""

    def __init__(self, n):
        self.n, self.calls = n, 0

    def __call__(self):
        self.calls += 1
        if self.calls >= self.n:
            raise jobs.Cancelled("stop")


def test_cancel_point_outside_a_scope_is_a_no_op_and_scopes_nest():
    jobs.cancel_point()
    outer, inner = After(10 ** 9), After(1)
    with jobs.cancel_scope(outer):
        jobs.cancel_point()
        with jobs.cancel_scope(inner):
            with pytest.raises(jobs.Cancelled):
                jobs.cancel_point()
        jobs.cancel_point()
    jobs.cancel_point()
    assert (outer.calls, inner.calls) == (2, 1)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Softplus(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 3)).eval()


def test_chunked_ig_gradient_stops_between_its_chunks():
    net, x = _net(), torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    params = {"steps": 12}

    def loss(m):
        return m.sum()

    free = After(10 ** 9)
    with jobs.cancel_scope(free):
        attributions.map_loss_gradient(net, x, "integrated_gradients", params, None, loss,
                                       chunk=2)
    assert free.calls >= 12 // 2  # one check per chunk of path points, at least
    stop = After(3)
    with jobs.cancel_scope(stop), pytest.raises(jobs.Cancelled):
        attributions.map_loss_gradient(net, x, "integrated_gradients", params, None, loss,
                                       chunk=2)
    assert stop.calls == 3  # it stopped at the third chunk, not at the end of the step


def test_attack_cancelled_inside_a_step_keeps_the_best_so_far():
    net, x = _net(), torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    kw = dict(method="integrated_gradients", method_params={"steps": 8,
                                                            "internal_batch_size": 2},
              epsilon=0.1, step_size=0.02, steps=20, attack_k=8, w=1, seed=0)
    full = attacks.attack(net, x, **kw)
    counter = After(10 ** 9)
    with jobs.cancel_scope(counter):
        attacks.attack(net, x, **kw)
    per_step = counter.calls / 20
    stop = After(int(per_step * 5) + 2)  # a few points into the 6th step
    with jobs.cancel_scope(stop):
        part = attacks.attack(net, x, **kw)
    assert part.stopped_early and 0 < part.steps_run < 20
    assert part.history.shape[1] == part.steps_run + 1
    # the kept iterate is the best of the steps run: the prefix of the full run's history
    assert torch.allclose(part.history, full.history[:, :part.steps_run + 1])
    assert part.label_kept.all()
    assert (part.x_adv - x).abs().max() <= 0.1 + 1e-6
