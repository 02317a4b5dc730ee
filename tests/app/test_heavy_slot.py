"""The app's gate to the heavy-job pool (explorer.ui.background.HeavySlot), outside a script run:
the place in the queue it shows, and that every way out gives the slot and the memory back."""

import threading
import time

import pytest

from explorer import cost, jobs
from explorer.ui import background


@pytest.fixture
def pool(monkeypatch):
    p = jobs.SlotPool(1)
    monkeypatch.setattr(jobs, "_POOL", p)
    monkeypatch.setattr(cost, "_SERVER", cost.MemoryBudget(100))
    return p


def test_waits_in_order_shows_its_place_and_releases(pool):
    holder = pool.request(3.0)
    ahead = pool.request(2.0)
    shown = []
    gate = background.HeavySlot(shown.append, seconds=1.0, nbytes=40, label="Map: ",
                                clear=lambda: shown.append("cleared"))
    gate.POLL_S = 0.02
    done = threading.Event()

    def run():
        with gate:
            assert cost.server_budget().in_use == 40
            assert pool.running == 1
        done.set()

    t = threading.Thread(target=run)
    t.start()
    time.sleep(0.15)
    assert not done.is_set()
    assert shown and shown[-1].startswith("Map: waiting for a free worker: 2nd in the queue")
    assert "about 5 s" in shown[-1]  # 3 s left for the holder + 2 s for the job ahead
    holder.release()
    time.sleep(0.1)
    assert "1st in the queue" in shown[-1]
    ahead.release()
    t.join(5)
    assert done.is_set() and shown[-1] == "cleared"
    assert pool.running == 0 and pool.waiting == 0 and cost.server_budget().in_use == 0


def test_a_change_while_waiting_leaves_the_queue(pool):
    holder = pool.request()
    gate = background.HeavySlot(lambda text: None)
    gate.POLL_S = 0.01
    calls = []

    def user_moved():
        calls.append(1)
        if len(calls) >= 3:
            gate.check.fired = True
            raise jobs.Cancelled("moved")

    gate.check = user_moved
    gate.check.fired = False
    with pytest.raises(jobs.Cancelled):
        with gate:
            pytest.fail("must not run")
    assert pool.waiting == 0 and pool.running == 1
    holder.release()
    assert pool.running == 0


def test_streamlit_signal_while_waiting_and_errors_inside_release(pool):
    holder = pool.request()

    def signal(text):  # Streamlit raises its rerun / stop signal at the next element update
        raise KeyboardInterrupt

    gate = background.HeavySlot(signal)
    gate.POLL_S = 0.01
    with pytest.raises(KeyboardInterrupt):
        with gate:
            pass
    assert pool.waiting == 0
    holder.release()
    gate = background.HeavySlot(lambda text: None, nbytes=30)
    with pytest.raises(ValueError, match="inside"):
        with gate:
            jobs.cancel_point()  # inside the scope: the check (no script run) never fires
            raise ValueError("inside")
    assert pool.running == 0 and cost.server_budget().in_use == 0


class _Requests:
    def __init__(self, name):
        self._state = type("State", (), {"name": name})()


class _Ctx:
    def __init__(self, name):
        self.script_requests = _Requests(name)


def test_request_waiting_reads_the_run_state():
    assert not background.request_waiting(_Ctx("CONTINUE"))
    assert background.request_waiting(_Ctx("RERUN"))  # e.g. a fragment widget, queued
    assert background.request_waiting(_Ctx("STOP"))  # fastReruns: a new run took over
    assert not background.request_waiting(None)
    check = background.UserMoved()
    check.ctx = _Ctx("CONTINUE")
    check()  # nothing waits: no exception
    assert not check.fired
    check.ctx = _Ctx("RERUN")
    with pytest.raises(jobs.Cancelled):
        check()
    check.ctx = _Ctx("CONTINUE")
    with pytest.raises(jobs.Cancelled):  # once fired it stays fired
        check()
    assert check.fired


def test_real_streamlit_request_states_are_named_as_read():
    from streamlit.runtime.scriptrunner_utils.script_requests import (ScriptRequests,
                                                                      ScriptRequestType)
    from streamlit.runtime.scriptrunner_utils.script_requests import RerunData

    req = ScriptRequests()
    ctx = type("Ctx", (), {"script_requests": req})()
    assert not background.request_waiting(ctx)
    req.request_rerun(RerunData(fragment_id="frag"))  # a slider inside a fragment
    assert req._state is ScriptRequestType.RERUN and background.request_waiting(ctx)
    assert req.on_scriptrunner_yield() is None  # ...which Streamlit does not let interrupt
    req.request_stop()
    assert background.request_waiting(ctx)


def test_job_threads_are_its_share_of_the_cores_and_restored(monkeypatch):
    import torch

    pool = jobs.SlotPool(2)
    monkeypatch.setattr(jobs, "_POOL", pool)
    monkeypatch.setattr(jobs, "cpu_count", lambda: 2)
    before = torch.get_num_threads()
    seen = []
    with background.HeavySlot(lambda text: None):  # alone: both cores
        seen.append(torch.get_num_threads())
        other = pool.request()
        other.wait()
    other.release()
    held = pool.request()  # another job runs: this one gets one thread
    with background.HeavySlot(lambda text: None):
        seen.append(torch.get_num_threads())
    held.release()
    assert seen == [2, 1]
    assert torch.get_num_threads() == before
