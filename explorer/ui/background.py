"""Work that runs beside or between Streamlit script runs.

- :class:`AttackBoard`: which attacks are running and the best results of interrupted ones, so
  that the run started by a click can pick up what the interrupted run found.
- :class:`Progress`: the attack's progress callback; it draws the bar from inside a cached
  function and turns a click during the attack into an early stop.
- :class:`HeavySlot` and :class:`UserMoved`: a heavy job (an attack, attribution maps) waits for
  a slot of the server's ``explorer.jobs.heavy_pool`` (and its memory), showing its place in
  the queue, and stops at its next ``jobs.cancel_point`` once the user changed anything.
- :class:`RankScoreStore` and :func:`prefetch_without_k`: the k-independent scores of a pair per
  w, filled in by a background thread after a page is drawn.

Both stores are process-wide (``st.cache_resource``) and thread-safe: they are shared between
the script threads of a session and the prefetch threads, which run outside any script run.
"""

from __future__ import annotations

import atexit
import contextvars
import gc
import threading
import time
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np
import streamlit as st
import torch
from streamlit.runtime.scriptrunner import get_script_run_ctx

from explorer import cost, jobs, metrics

if TYPE_CHECKING:  # the stages import this module
    from .stages import AttackOutcome

__all__ = ["AttackBoard", "AttackInterrupted", "HeavySlot", "app_pool", "freeze_startup_heap",
           "start_prefetch", "start_store_job",
           "Progress", "RankScoreStore",
           "UserMoved", "attack_board", "prefetch_without_k", "rank_score_store",
           "request_waiting", "scores_without_k", "session_id"]


# ------------------------------------------------------------------------------- attacks

class AttackBoard:
    """Which attacks are running and the best results of interrupted ones, per session.

    Lives outside ``st.session_state`` on purpose: when the user clicks during an attack,
    Streamlit starts the next run in a new thread at once (``runner.fastReruns``) while the
    interrupted run finishes its current step, and the two must hand over the result safely.
    """

    MAX_PARTIAL = 16

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: dict[tuple, float] = {}
        self.partial: OrderedDict[tuple, AttackOutcome] = OrderedDict()

    def start(self, key: tuple) -> None:
        with self.lock:
            self.running[key] = time.monotonic()

    def finish(self, key: tuple, partial: AttackOutcome | None = None) -> None:
        with self.lock:
            self.running.pop(key, None)
            if partial is None:
                self.partial.pop(key, None)
            else:
                self.partial[key] = partial
                self.partial.move_to_end(key)
                while len(self.partial) > self.MAX_PARTIAL:
                    self.partial.popitem(last=False)

    def is_running(self, key: tuple) -> bool:
        with self.lock:
            return key in self.running

    def get_partial(self, key: tuple) -> AttackOutcome | None:
        with self.lock:
            return self.partial.get(key)


@st.cache_resource(show_spinner=False)
def attack_board() -> AttackBoard:
    return AttackBoard()


def session_id() -> str:
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "bare"


class AttackInterrupted(Exception):
    """The user interacted with the page while an attack ran: the attack stopped early.

    Carries the best result so far (not cached) and Streamlit's control exception (rerun /
    stop), which the page must re-raise so that Streamlit handles the interaction; ``control``
    is None when the interaction was a widget inside a fragment (the k slider), which Streamlit
    queues behind the running script instead of interrupting it: the page then asks for a
    rerun itself (``st.rerun``), which carries the new widget values.
    """

    def __init__(self, result: AttackOutcome, control: BaseException | None):
        super().__init__("attack interrupted by the user")
        self.result = result
        self.control = control


class Progress:
    """A progress callback ``(step, total, best) -> stop?`` that updates ``bar``.

    Streamlit records elements drawn inside a cached function to replay them on cache hits; the
    progress updates must not be replayed, so they run in the context captured here (outside the
    cached function). When the user clicks anything while the attack runs, Streamlit raises its
    rerun/stop signal inside the update: the callback keeps it (:attr:`interrupt`) and asks the
    attack to stop early, so the best iterate so far is kept.
    """

    def __init__(self, bar, measure_label: str) -> None:
        self.bar = bar
        self.measure_label = measure_label
        self.outer = contextvars.copy_context()
        self.last = 0.0
        self.start = time.perf_counter()
        self.interrupt: BaseException | None = None

    def __call__(self, step: int, total: int, best: float) -> bool:
        if self.interrupt is not None:
            return True
        now = time.perf_counter()
        if 0 < step < total and now - self.last < 0.1:
            return False  # at most ~10 updates a second
        self.last = now
        frac = min(max(step / max(total, 1), 0.0), 1.0)
        best_text = "n/a" if best is None or not np.isfinite(best) else f"{best:.3f}"
        text = f"step {step} / {total} · best {self.measure_label} so far: {best_text}"
        if step > 0:
            per_step = (now - self.start) / step
            left = per_step * (total - step)
            if left > 5:
                text += (f" · {per_step:.2g} s per step, about "
                         f"{left / 60:.0f} min left" if left > 90 else
                         f" · {per_step:.2g} s per step, about {left:.0f} s left")
            if left > 20:
                text += " · any click stops it and keeps the best so far"
        try:
            self.outer.run(self.bar.progress, frac, text=text)
        except BaseException as exc:  # Streamlit's rerun/stop signal (a BaseException)
            if isinstance(exc, Exception):
                raise
            self.interrupt = exc
            return True
        return False


# ------------------------------------------------------------------------------- heavy jobs

def request_waiting(ctx) -> bool:
    """Whether a rerun or stop request waits for the script run of ``ctx``: any widget change.

    A change outside a fragment interrupts the run at its next Streamlit call (or, with
    ``runner.fastReruns``, stops it); a change of a widget inside a fragment (the k and w
    sliders) is queued behind the running script and would wait for the whole attack. Both
    leave the request in the run's ``script_requests``; Streamlit 1.67 has no public accessor
    for it, hence the guarded read of its state.
    """
    requests = getattr(ctx, "script_requests", None)
    state = getattr(requests, "_state", None)
    return getattr(state, "name", "") in ("RERUN", "STOP")


_FROZEN = False


def freeze_startup_heap(again: bool = False) -> None:
    """Once per process, after the app's imports: take every object alive now out of the
    cyclic garbage collector's view (``gc.freeze``).

    Streamlit runs ``gc.collect(2)`` after every script run, fragment runs included
    (``runner.postScriptGC``), holding the GIL. Over the app's ~510,000 import-time objects
    (torch, torchvision, plotly, scipy, streamlit, every page: modules, classes, functions,
    never garbage) that took 0.3-1.2 s per run on the 2-core server, during which no other
    session's script could run: with ten users each slider move stalled everyone. After the
    freeze the same collection takes about a millisecond; objects created later (caches, each
    run's garbage) are still collected as before.

    ``again=True`` freezes once more after a page imported on its first visit (its modules are
    as permanent as the startup imports).
    """
    global _FROZEN
    if again or not _FROZEN:
        _FROZEN = True
        gc.collect()
        gc.freeze()


def app_pool() -> jobs.SlotPool:
    """The server's ``jobs.heavy_pool()``."""
    return jobs.heavy_pool()


class UserMoved:
    """The cancel check (``jobs.cancel_scope``) of a heavy job started by this script run:
    raises ``jobs.Cancelled`` once the user changed anything; :attr:`fired` says it did."""

    def __init__(self) -> None:
        self.ctx = get_script_run_ctx(suppress_warning=True)
        self.fired = False

    def __call__(self) -> None:
        if not self.fired and self.ctx is not None and request_waiting(self.ctx):
            self.fired = True
        if self.fired:
            raise jobs.Cancelled("the user changed a setting while this job ran")


class HeavySlot:
    """``with HeavySlot(show, seconds, nbytes):`` inside a cached stage, so only a cache miss
    waits: a slot of ``jobs.heavy_pool()`` (first come, first served), then ``nbytes`` of the
    server's memory budget, then the block runs inside a cancel scope (:class:`UserMoved`).

    While it waits, ``show(text)`` (e.g. a placeholder's ``progress``) is called about twice a
    second with the place in the queue and the expected wait, in the context captured here
    (outside the cached function, like :class:`Progress`), and ``clear()`` once it starts. A
    click while waiting ends the wait (Streamlit's signal, or ``jobs.Cancelled`` for a fragment
    widget) and the slot request leaves the queue: nothing is held after any way out.
    """

    POLL_S = 0.25

    def __init__(self, show, seconds: float = 1.0, nbytes: int = 0, clear=None,
                 label: str = "") -> None:
        self.show, self.clear = show, clear
        self.seconds, self.nbytes, self.label = float(seconds), int(nbytes), label
        self.outer = contextvars.copy_context()
        self.check = UserMoved()
        self.ticket: jobs.Ticket | None = None
        self.reservation: cost.Reservation | None = None
        self._scope = None
        self._shown = False
        self._threads = 0

    def _say(self, text: str) -> None:
        self._shown = True
        self.outer.run(self.show, text)

    def __enter__(self) -> "HeavySlot":
        pool = app_pool()
        self.ticket = pool.request(self.seconds, self.label)
        try:
            while not self.ticket.wait(timeout=self.POLL_S):
                self.check()
                place = self.ticket.position
                if place:
                    wait = pool.wait_estimate(self.ticket)
                    self._say(f"{self.label}waiting for a free worker: {jobs.ordinal(place)} in "
                              f"the queue of heavy jobs on this server, about "
                              f"{max(1, round(wait))} s")
            if self.nbytes:
                self.reservation = cost.server_budget().request(self.nbytes)
                while not self.reservation.wait(timeout=self.POLL_S):
                    self.check()
                    self._say(f"{self.label}waiting for memory: place "
                              f"{self.reservation.position} in the queue of jobs on this server")
            self.check()
            if self._shown and self.clear is not None:
                self.outer.run(self.clear)
            # torch's intra-op threads are per thread: this job's share of the cores, restored
            # on exit (the same script thread then does light work)
            self._threads = torch.get_num_threads()
            torch.set_num_threads(jobs.threads_per_job(pool.running))
            self._scope = jobs.cancel_scope(self.check)
            self._scope.__enter__()
        except BaseException:
            self._release()
            raise
        return self

    def _release(self) -> None:
        if self.reservation is not None:
            self.reservation.release()
        if self.ticket is not None:
            self.ticket.release()

    def __exit__(self, *exc) -> None:
        try:
            if self._scope is not None:
                self._scope.__exit__(*exc)
            if self._threads:
                torch.set_num_threads(self._threads)
        finally:
            self._release()


# ------------------------------------------------------------------------------- scores

class RankScoreStore:
    """Bounded (least recently used out), thread-safe store of what a background prefetch
    computes: here the k-independent scores of a pair, per w; ``chance_stages`` keeps the LENS
    correlations' chance levels in one too.

    The rank correlations need one ``metrics.rank_metrics`` per w (the slow part of a w move on
    a 224×224 pair); after a page is drawn, a background thread fills in w = 0..5 so that moving
    the w slider there finds them ready. A plain store (not ``st.cache_data``) because the
    background thread runs outside any Streamlit script run.
    """

    MAX_ENTRIES = 512

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self.lock = threading.Lock()
        self.values: OrderedDict[tuple, dict[str, list]] = OrderedDict()
        self.busy: set = set()  # the prefetch jobs running now

    def get(self, key: tuple) -> dict[str, list] | None:
        with self.lock:
            value = self.values.get(key)
            if value is not None:
                self.values.move_to_end(key)
            return value

    def put(self, key: tuple, value: dict[str, list]) -> None:
        with self.lock:
            self.values[key] = value
            self.values.move_to_end(key)
            while len(self.values) > self.max_entries:
                self.values.popitem(last=False)


@st.cache_resource(show_spinner=False)
def rank_score_store() -> RankScoreStore:
    return RankScoreStore()


def _compute_without_k(pair_key: str, a: np.ndarray, b: np.ndarray, w: int) -> dict[str, Any]:
    """The metrics that do not depend on k: the w-free part (Spearman, Kendall, centre shift)
    once per pair, the LENS correlations once per (pair, w) (``metrics.rank_metrics``)."""
    store = rank_score_store()
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    plain = store.get((pair_key, "w-free"))
    if plain is None:
        plain = {key: v.tolist() for key, v in metrics.rank_metrics(ta, tb, 0).items()
                 if key not in ("lens_spearman", "lens_kendall")}
        store.put((pair_key, "w-free"), plain)
    lens = metrics.rank_metrics(ta, tb, w, lens_only=True)
    return {**plain, **{key: v.tolist() for key, v in lens.items()}}


def scores_without_k(pair_key: str, a: np.ndarray, b: np.ndarray, w: int) -> dict[str, Any]:
    """The metrics of ``compare`` that do not depend on k (rank correlations: on w only;
    centre shift: on neither), from the store or computed and stored per (pair, w)."""
    store = rank_score_store()
    value = store.get((pair_key, w))
    if value is None:
        value = _compute_without_k(pair_key, a, b, w)
        store.put((pair_key, w), value)
    return value


def prefetch_without_k(pair_key: str, a: np.ndarray, b: np.ndarray, ws) -> None:
    """Fill the store for the w values ``ws`` in a background thread (no Streamlit calls)."""
    store = rank_score_store()
    missing = [w for w in ws if store.get((pair_key, w)) is None]
    if not missing:
        return

    def one(w: int) -> None:
        if store.get((pair_key, w)) is None:
            store.put((pair_key, w), _compute_without_k(pair_key, a, b, w))

    start_store_job(store, pair_key, missing, one, "explorer-prefetch")


def start_store_job(store: RankScoreStore, job, ws, work_one, name: str) -> None:
    """Run ``work_one(w)`` for each w of ``ws`` in a background thread (:func:`start_prefetch`),
    unless ``job`` is already running for ``store``; a failure only ends the job (a prefetch
    only saves time later)."""
    with store.lock:
        if job in store.busy:
            return
        store.busy.add(job)

    def work() -> None:
        try:
            for w in ws:
                work_one(w)
        except Exception:  # noqa: BLE001 - a failed prefetch only costs the speed-up
            pass
        finally:
            with store.lock:
                store.busy.discard(job)

    start_prefetch(work, name)


def start_prefetch(work, name: str) -> None:
    """Run ``work`` in a daemon thread that the interpreter waits for at exit (see
    :func:`_join_prefetch_threads`)."""
    thread = threading.Thread(target=work, name=name, daemon=True)
    _PREFETCH_THREADS.add(thread)
    thread.start()


_PREFETCH_THREADS: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _join_prefetch_threads() -> None:
    """Let running prefetches finish at interpreter exit (a daemon thread killed inside a torch
    kernel aborts the process)."""
    for thread in list(_PREFETCH_THREADS):
        thread.join(timeout=60)
