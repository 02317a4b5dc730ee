"""Heavy work on a shared server: a bounded FIFO pool of job slots, and cooperative cancellation.

- :class:`SlotPool`: at most ``slots`` heavy jobs (attacks, attribution maps) run at once;
  the others wait in arrival order. A waiting :class:`Ticket` knows its place in the queue
  (:attr:`Ticket.position`, 1 = next) and an estimate of its wait (:meth:`SlotPool.wait_estimate`,
  from the estimated seconds of the jobs running and queued ahead of it). A ticket is released
  on every way out of its ``with`` block (exceptions and cancellation included), and a ticket
  that leaves the queue before its turn frees nothing it did not hold.
- :func:`heavy_pool`: the process-wide pool, sized by :func:`default_slots`
  (``EXPLORER_HEAVY_JOBS``); :func:`threads_per_job`: torch's intra-op threads for a job.
- :func:`cancel_scope` / :func:`cancel_point` / :class:`Cancelled`: a job's code calls
  :func:`cancel_point` between chunks of work (the attack steps, the chunks of a SmoothGrad or
  Integrated Gradients gradient); the caller installs a check that raises :class:`Cancelled`
  when the job's result is no longer wanted. Outside a scope :func:`cancel_point` does nothing.

Why one slot per core by default (``EXPLORER_HEAVY_JOBS`` unset: 2 on a 2-core server): with a
single slot, one user's long attack (minutes on 224×224) would hold every newcomer's first maps
back; with one per core, a second job still starts at once and a queue forms only when every
core has a job. torch's intra-op threads are shared per job instead of per process: a job that
starts alone uses every core, a job that starts beside others ``cores // running`` threads
(:func:`threads_per_job`, applied by the app in the job's own thread when it starts), so two
jobs on 2 cores run 1 thread each, never the 4 busy threads of two 2-thread jobs. Light work
(a slider move's metrics) never takes a slot. ``benchmarks/bench_concurrency.py --threads``
measures the choices side by side (figures in ``benchmarks/README.md``).
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import math
import os
import threading
import time
from collections import deque
from typing import Callable, Iterator

__all__ = ["Cancelled", "FifoQueue", "QueuedRequest", "SlotPool", "Ticket", "cancel_point", "cancel_scope", "cpu_count",
           "default_slots", "heavy_pool", "ordinal", "threads_per_job"]


# --------------------------------------------------------------------------------------------
# The slot pool
# --------------------------------------------------------------------------------------------

class QueuedRequest:
    """A place in a :class:`FifoQueue`. ``position`` is 0 once granted (or released), else its
    place in the queue (1 = next). Use as a context manager (waits, then releases on exit,
    exceptions included), or :meth:`wait` and :meth:`release`."""

    noun = "request"

    def __init__(self, queue: "FifoQueue"):
        self._owner = queue
        self.granted = False
        self.released = False

    @property
    def position(self) -> int:
        return self._owner._position(self)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until granted (True) or ``timeout`` seconds pass (False, still queued)."""
        return self._owner._wait(self, timeout)

    def release(self) -> None:
        """Give the share back (or leave the queue); idempotent."""
        self._owner._release(self)

    def __enter__(self):
        try:
            self.wait()
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class FifoQueue:
    """Requests granted strictly in arrival order while the head fits (a large request at the
    head is not overtaken by small ones behind it, so nobody starves). Subclasses say what
    fits (:meth:`_fits`) and what granting and releasing take and give back."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque = deque()

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)

    def _enqueue(self, r: QueuedRequest) -> QueuedRequest:
        with self._cond:
            self._queue.append(r)
            self._grant()
        return r

    # -- internals (under the condition's lock) ------------------------------------------------
    def _fits(self, r) -> bool:
        raise NotImplementedError

    def _take(self, r) -> None:
        raise NotImplementedError

    def _give(self, r) -> None:
        raise NotImplementedError

    def _grant(self) -> None:
        while self._queue and self._fits(self._queue[0]):
            r = self._queue.popleft()
            r.granted = True
            self._take(r)
        self._cond.notify_all()

    def _position(self, r: QueuedRequest) -> int:
        with self._cond:
            if r.granted or r.released:
                return 0
            return self._queue.index(r) + 1

    def _wait(self, r: QueuedRequest, timeout: float | None) -> bool:
        with self._cond:
            if r.released:
                raise RuntimeError(f"this {r.noun} was released; request a new one")
            return self._cond.wait_for(lambda: r.granted, timeout)

    def _release(self, r: QueuedRequest) -> None:
        with self._cond:
            if r.released:
                return
            r.released = True
            if r.granted:
                self._give(r)
            else:
                self._queue.remove(r)
            self._grant()


class Ticket(QueuedRequest):
    """A request for one slot of a :class:`SlotPool` (see :class:`QueuedRequest`).
    ``seconds``: the job's estimated run time (for the wait estimates of the tickets behind
    it)."""

    noun = "ticket"

    def __init__(self, pool: "SlotPool", seconds: float, label: str):
        super().__init__(pool)
        self.seconds, self.label = float(seconds), label
        self.started: float | None = None  # time.monotonic() when granted


class SlotPool(FifoQueue):
    """``slots`` heavy jobs at once; :meth:`request` queues a :class:`Ticket`, granted strictly
    in arrival order (like ``cost.MemoryBudget``, but counting jobs, not bytes)."""

    def __init__(self, slots: int):
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
            raise ValueError(f"slots must be a positive integer; got {slots!r}")
        super().__init__()
        self.slots = slots
        self._running: list[Ticket] = []

    @property
    def running(self) -> int:
        with self._cond:
            return len(self._running)

    def request(self, seconds: float = 1.0, label: str = "") -> Ticket:
        """Queue a ticket for a job of about ``seconds`` (granted at once when a slot is free
        and nobody waits)."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
                or not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"seconds must be a finite number >= 0; got {seconds!r}")
        return self._enqueue(Ticket(self, seconds, label))

    @contextlib.contextmanager
    def slot(self, seconds: float = 1.0, label: str = "",
             timeout: float | None = None) -> Iterator[Ticket]:
        """``with pool.slot(...)``: wait for a slot (TimeoutError, out of the queue, after
        ``timeout``), run the block, release."""
        t = self.request(seconds, label)
        try:
            if not t.wait(timeout):
                raise TimeoutError(f"no heavy-job slot free for {timeout} s (the server is busy)")
            yield t
        finally:
            t.release()

    def wait_estimate(self, ticket: Ticket) -> float:
        """Seconds until ``ticket`` is likely granted: the running jobs' estimated time left and
        the queued jobs ahead of it, spread over the slots (0 once granted)."""
        with self._cond:
            if ticket.granted or ticket.released or ticket not in self._queue:
                return 0.0
            now = time.monotonic()
            free = [max(0.0, t.seconds - (now - (t.started or now))) for t in self._running]
            free += [0.0] * (self.slots - len(free))
            heapq.heapify(free)
            for t in self._queue:
                if t is ticket:
                    break
                heapq.heappush(free, heapq.heappop(free) + t.seconds)
            return free[0]

    def _fits(self, t: Ticket) -> bool:
        return len(self._running) < self.slots

    def _take(self, t: Ticket) -> None:
        t.started = time.monotonic()
        self._running.append(t)

    def _give(self, t: Ticket) -> None:
        self._running.remove(t)


def cpu_count() -> int:
    """Cores this process may run on (its CPU affinity, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_slots() -> int:
    """``EXPLORER_HEAVY_JOBS`` when set, else the number of cores (see the module doc)."""
    env = os.environ.get("EXPLORER_HEAVY_JOBS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"EXPLORER_HEAVY_JOBS must be a whole number of jobs >= 1; "
                             f"got {env!r}")
        return n
    return cpu_count()


def threads_per_job(running: int, cores: int | None = None) -> int:
    """torch intra-op threads for a job that starts while ``running`` jobs (itself included)
    run, so that they use the cores without oversubscribing them: ``max(1, cores // running)``."""
    return max(1, (cores or cpu_count()) // max(1, int(running)))


_POOL: SlotPool | None = None
_POOL_LOCK = threading.Lock()


def heavy_pool() -> SlotPool:
    """The process-wide :class:`SlotPool` (created on first use, sized by
    :func:`default_slots`)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = SlotPool(default_slots())
        return _POOL


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


# --------------------------------------------------------------------------------------------
# Cooperative cancellation
# --------------------------------------------------------------------------------------------

class Cancelled(Exception):
    """The caller no longer wants this job's result (raised at a :func:`cancel_point`)."""


_CHECK: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "explorer_cancel_check", default=None)


@contextlib.contextmanager
def cancel_scope(check: Callable[[], None] | None) -> Iterator[None]:
    """Within the block, :func:`cancel_point` calls ``check`` (which raises :class:`Cancelled`
    to stop the job). Scopes nest: the inner check replaces the outer one."""
    token = _CHECK.set(check)
    try:
        yield
    finally:
        _CHECK.reset(token)


def cancel_point() -> None:
    """Raise :class:`Cancelled` if the current scope's check says so (no-op outside one)."""
    check = _CHECK.get()
    if check is not None:
        check()
