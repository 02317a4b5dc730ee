"""What a job will cost before it starts, and a server-wide memory budget that jobs queue on.

Four parts:

- :func:`estimate_attack` / :func:`estimate_map`: peak memory (bytes the job allocates on top
  of the loaded model) and wall time of an attack or of attribution maps, from the dataset's
  input size, the method and its samples / steps, the attack steps, the chunk and the device.
- :func:`default_chunk`: the rows (image × noisy copy / path point) whose double-backward graph
  an attack keeps at once, chosen so that the job fits :data:`DEFAULT_JOB_BUDGET_BYTES`.
- :func:`decide`: run / ask for a click (with the estimated time) / refuse (saying why and what
  is allowed) for an estimate against stated :class:`Budgets`.
- :class:`MemoryBudget`: a thread-safe reservation of bytes, like a counting semaphore, that
  grants requests in FIFO order and never lets the reserved total pass the budget; a waiting
  request knows its place in the queue. :func:`server_budget` is the process-wide one.

Typical use by a page (the queue position is shown while waiting)::

    est = cost.estimate_attack("imagenet", "smoothgrad", {"n_samples": 50}, steps=20)
    decision = cost.decide(est)             # "run" | "confirm" (show the time) | "refuse"
    ticket = cost.server_budget().request(est.peak_bytes)
    while not ticket.wait(timeout=0.5):
        show(f"waiting: place {ticket.position} in the queue")
    with ticket:                            # released on exit, exceptions included
        attacks.attack(...)

Calibration (``python benchmarks/bench_memory.py --calibrate``; this 2-core CPU shared with
other jobs, 1 torch thread, torch 2.14 CPU, float32, freshly initialised weights: memory and
time do not depend on them). Per input row, slope between 1 and 3 rows:

==========================  =====  =========  ======  =====  =========  ======
architecture (input)        real   surrogate  double  real   surrogate  double
                            MB     MB         MB      s      s          s
==========================  =====  =========  ======  =====  =========  ======
efficientnet_lite0 (224²)   93     171        374     0.37   0.53       0.85
squeezenet1_1 (224²)        26     37         62      0.21   0.18       0.29
resnet18 (224²)             35     52         106     1.00   0.35       1.75
resnet50 (224²)             97     125        328     0.51   3.24       6.86
cnn5 (Flowers-102, 128²)    17     25         46      0.18   0.25       0.37
cnn3 (GTSRB, 32²)           4.5    1.9        2.5     0.010  0.012      0.032
small_cnn (MNIST, 28²)      0.5    0.6        1.1     0.008  0.017      0.024
==========================  =====  =========  ======  =====  =========  ======

*real*: the real model's forward + backward without a graph (an attribution map, one row);
*surrogate*: the same on the smooth surrogate (pass 1 of a chunked attack gradient); *double*:
the surrogate's forward, backward with ``create_graph=True`` and the second backward (the graph
an attack keeps per row). The loaded model and torch themselves take about 0.65 GB of RSS for
EfficientNet-Lite0, 0.75–1.0 GB for the torchvision models, 0.55 GB for the small CNNs (not
counted in the job's bytes). Times were taken at load average 7–19 (other jobs running), so
they are upper bounds on a quiet machine and single figures are noisy (resnet18's real-model
time above its surrogate's is such noise); below 5 MB per row the figures are at the
resolution of ``ru_maxrss`` and only say "negligible". On CUDA the bytes are device memory and the times
are not calibrated: the CPU times are reported as an upper bound.

Architectures without a row in the table (a user model) are estimated from the input size
with the largest bytes and seconds per input value of the table (conservative).

Per-job budget: :data:`DEFAULT_JOB_BUDGET_BYTES` = 1.0 GB on the CPU (on top of the loaded
model: with EfficientNet-Lite0's 0.65 GB the process stays under 2 GB), 4 GB on CUDA.
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from . import data as _data
from . import models as _models
from .attributions import METHODS, _method, chunked_rows, forward_chunk_rows
from .jobs import FifoQueue, QueuedRequest
from .params import resolve

__all__ = [
    "RowCost",
    "CALIBRATION",
    "DEFAULT_JOB_BUDGET_BYTES",
    "JobEstimate",
    "Budgets",
    "Decision",
    "default_chunk",
    "estimate_attack",
    "estimate_map",
    "decide",
    "MemoryBudget",
    "Reservation",
    "server_budget",
    "default_server_budget_bytes",
]

MB = 1024 * 1024


@dataclass(frozen=True)
class RowCost:
    """Measured cost of one input row (one image, or one noisy copy / path point of it)."""

    values: int            # input values per row, C·H·W, of the calibration
    real_mb: float         # real model forward + backward, no graph
    surrogate_mb: float    # surrogate forward + backward, no graph
    double_mb: float       # surrogate double backward (the graph an attack keeps)
    real_s: float
    surrogate_s: float
    double_s: float
    model_mb: float = 0.0  # RSS of torch + the loaded model (for the report only)


_IMAGENET, _FLOWERS, _GTSRB, _MNIST = 3 * 224 * 224, 3 * 128 * 128, 3 * 32 * 32, 28 * 28
CALIBRATION: dict[str, RowCost] = {
    "efficientnet_lite0": RowCost(_IMAGENET, 93.2, 171.2, 374.3, 0.366, 0.529, 0.847, 650),
    "squeezenet1_1": RowCost(_IMAGENET, 25.5, 37.1, 62.4, 0.209, 0.179, 0.288, 740),
    "resnet18": RowCost(_IMAGENET, 34.9, 51.5, 106.1, 1.005, 0.348, 1.751, 790),
    "resnet50": RowCost(_IMAGENET, 96.6, 125.0, 328.2, 0.505, 3.236, 6.862, 920),
    "cnn5": RowCost(_FLOWERS, 16.8, 25.2, 46.3, 0.178, 0.253, 0.369, 550),
    "cnn3": RowCost(_GTSRB, 4.5, 1.9, 2.5, 0.0095, 0.0115, 0.0323, 530),
    "small_cnn": RowCost(_MNIST, 0.5, 0.6, 1.1, 0.0083, 0.0171, 0.024, 535),
}

DEFAULT_JOB_BUDGET_BYTES: dict[str, float] = {"cpu": 1.0e9, "cuda": 4.0e9}


def _device_kind(device) -> str:
    return "cuda" if str(getattr(device, "type", device)).startswith("cuda") else "cpu"


def _worst_per_value() -> RowCost:
    """A 1-value 'row' with the largest per-value figures of the table (unknown models)."""
    rows = list(CALIBRATION.values())

    def worst(attr):
        return max(getattr(r, attr) / r.values for r in rows)

    return RowCost(1, worst("real_mb"), worst("surrogate_mb"), worst("double_mb"),
                   worst("real_s"), worst("surrogate_s"), worst("double_s"))


def _row_cost(arch: str | None, values: int) -> RowCost:
    """The calibrated row of ``arch`` scaled to ``values`` input values per row."""
    base = CALIBRATION.get(arch) if arch else None
    if base is None:
        base = _worst_per_value()
    f = values / base.values
    return RowCost(values, base.real_mb * f, base.surrogate_mb * f, base.double_mb * f,
                   base.real_s * f, base.surrogate_s * f, base.double_s * f, base.model_mb)


def _values_of(x_or_shape) -> int:
    if isinstance(x_or_shape, torch.Tensor):
        return int(x_or_shape[0].numel())
    shape = tuple(int(s) for s in x_or_shape)
    return int(math.prod(shape[-3:]))


def _chunk_for(values: Mapping[str, Any], n_rows: int, per_row_values: int, budget_bytes: float,
               arch: str | None) -> int | None:
    rc = _row_cost(arch, per_row_values)
    chunk = max(1, int(budget_bytes // (max(rc.double_mb, rc.surrogate_mb) * MB)))
    if values.get("internal_batch_size", 0) > 0:
        chunk = min(chunk, int(values["internal_batch_size"]))
    return None if n_rows == 0 or chunk >= n_rows else chunk


def default_chunk(method: str, params: Mapping[str, Any] | None, x, *, arch: str | None = None,
                  budget_bytes: float | None = None) -> int | None:
    """Rows per chunk of an attack gradient through ``method`` at ``x`` (a tensor
    ``(N, C, H, W)``; its device picks the default budget) so that the job's graph fits
    ``budget_bytes`` (default :data:`DEFAULT_JOB_BUDGET_BYTES`). At least 1; at most the
    method's ``internal_batch_size`` when that is set. None for the single-pass methods
    (saliency, input × gradient: one graph of N rows) and whenever all rows fit at once.
    """
    values = resolve(_method(method).params, params)
    if budget_bytes is None:
        budget_bytes = DEFAULT_JOB_BUDGET_BYTES[_device_kind(x.device)]
    return _chunk_for(values, chunked_rows(method, values, x.shape[0]), _values_of(x),
                      budget_bytes, arch)


@dataclass(frozen=True)
class JobEstimate:
    """Estimated cost of one job. ``peak_bytes``: what the job allocates on top of the loaded
    model; ``seconds``: wall time; ``step_seconds``: one attack step (0 for maps)."""

    kind: str            # "attack" | "map"
    peak_bytes: int
    seconds: float
    step_seconds: float
    steps: int
    rows: int            # rows through the model per step (images × copies / points)
    chunk: int | None    # attack gradient rows per chunk (None: one graph)
    device: str
    calibrated: bool     # False: estimated from the worst per-value figures
    summary: str

    @property
    def peak_gb(self) -> float:
        return self.peak_bytes / 1e9


def _dataset_values(dataset: str) -> int:
    info = _data.get_dataset(dataset)
    return info.channels * info.size[0] * info.size[1]


def _arch_for(dataset: str, arch: str | None) -> str:
    """``arch``, or the architecture of the dataset's default model."""
    return arch if arch is not None else _models.default_model(dataset).arch


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _fmt_time(s: float) -> str:
    if s < 10:
        return f"{s:.1f} s"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def estimate_map(dataset: str, method: str, method_params: Mapping[str, Any] | None = None,
                 *, n_images: int = 1, arch: str | None = None, device: str = "cpu"
                 ) -> JobEstimate:
    """Attribution maps of ``n_images`` images of ``dataset`` (no graph; the forward chunk of
    :mod:`explorer.attributions`)."""
    values = resolve(_method(method).params, method_params)
    per = _dataset_values(dataset)
    arch = _arch_for(dataset, arch)
    rc = _row_cost(arch, per)
    rows = chunked_rows(method, values, n_images) or int(n_images)
    fwd = min(rows, forward_chunk_rows(per, values.get("internal_batch_size", 0), device))
    peak = int(fwd * rc.real_mb * MB)
    seconds = rows * rc.real_s
    return JobEstimate("map", peak, seconds, 0.0, 0, rows, None, _device_kind(device),
                       arch in CALIBRATION,
                       f"{METHODS[method].name} map of {_plural(n_images, 'image')}: about "
                       f"{peak / 1e9:.2f} GB, {_fmt_time(seconds)}")


def estimate_attack(dataset: str, method: str, method_params: Mapping[str, Any] | None = None,
                    *, steps: int, n_images: int = 1, chunk: int | None | str = "auto",
                    arch: str | None = None, device: str = "cpu",
                    uses_gradient: bool = True) -> JobEstimate:
    """An attack of ``steps`` steps on ``n_images`` images of ``dataset`` through ``method``.

    ``chunk``: ``"auto"`` (what the attack uses: :func:`default_chunk`), None (one graph of
    all rows) or a number of rows. Per step: the surrogate gradient (for SmoothGrad / IG in
    chunks: pass 1 without a graph, then the double backward, chunk by chunk) and the real
    model's map of the iterate; plus the original map once. ``uses_gradient=False``
    (random attacks): the evaluations only.
    """
    values = resolve(_method(method).params, method_params)
    per = _dataset_values(dataset)
    arch = _arch_for(dataset, arch)
    rc = _row_cost(arch, per)
    kind = _device_kind(device)
    n_rows = chunked_rows(method, values, n_images)
    rows = n_rows or int(n_images)
    if chunk == "auto":
        chunk = _chunk_for(values, n_rows, per, DEFAULT_JOB_BUDGET_BYTES[kind], arch)
    if n_rows == 0 or (chunk is not None and chunk >= n_rows):
        chunk = None
    fwd = min(rows, forward_chunk_rows(per, values.get("internal_batch_size", 0), kind))
    evaluation = fwd * rc.real_mb
    eval_s = rows * rc.real_s
    if not uses_gradient:
        grad_mb, grad_s = 0.0, 0.0
    elif chunk is None:  # one graph of all rows
        grad_mb, grad_s = rows * rc.double_mb, rows * rc.double_s
    else:
        grad_mb = chunk * max(rc.double_mb, rc.surrogate_mb)
        grad_s = rows * (rc.surrogate_s + rc.double_s)
    peak = int(max(evaluation, grad_mb) * MB)
    step_s = grad_s + eval_s
    seconds = steps * step_s + eval_s
    how = "" if chunk is None or not uses_gradient else f", {_plural(chunk, 'row')} per chunk"
    return JobEstimate("attack", peak, seconds, step_s, int(steps), rows, chunk, kind,
                       arch in CALIBRATION,
                       f"{steps}-step attack through {METHODS[method].name} on "
                       f"{_plural(n_images, 'image')} ({_plural(rows, 'row')} per step{how}): "
                       f"about {peak / 1e9:.2f} GB, {_fmt_time(step_s)} per step, "
                       f"{_fmt_time(seconds)} in all")


# --------------------------------------------------------------------------------------------
# Admission
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Budgets:
    """Limits for one job: below ``click_seconds`` it runs at once; up to ``max_seconds`` it
    needs a click; above, or above ``job_bytes`` of memory (on top of the loaded model), it is
    refused. On CUDA pass ``job_bytes=DEFAULT_JOB_BUDGET_BYTES["cuda"]``."""

    job_bytes: float = DEFAULT_JOB_BUDGET_BYTES["cpu"]
    click_seconds: float = 30.0
    max_seconds: float = 3600.0


@dataclass(frozen=True)
class Decision:
    """``action``: ``"run"``, ``"confirm"`` (show ``message`` and ask for a click) or
    ``"refuse"`` (``message`` says why and what is allowed)."""

    action: str
    message: str
    estimate: JobEstimate


def decide(estimate: JobEstimate, budgets: Budgets = Budgets()) -> Decision:
    """Run, ask for a click, or refuse ``estimate`` against ``budgets``."""
    e = estimate
    if e.peak_bytes > budgets.job_bytes:
        allowed = f"at most {budgets.job_bytes / 1e9:.2f} GB per job"
        if e.rows > 1:
            per_row = e.peak_bytes / (e.chunk or e.rows)
            fit = int(budgets.job_bytes // per_row)
            allowed += (f": about {fit} row(s) per pass fit (fewer images, or fewer "
                        f"samples / steps)" if fit >= 1 else ": not even one row fits")
        return Decision("refuse", f"Refused: this job needs about {e.peak_gb:.2f} GB of memory, "
                        f"{allowed}.", e)
    if e.seconds > budgets.max_seconds:
        if e.step_seconds > 0:
            most = int((budgets.max_seconds - (e.seconds - e.steps * e.step_seconds))
                       // e.step_seconds)
            allowed = (f"at most {max(most, 0)} attack steps at these settings (or fewer "
                       f"samples / path steps)")
        else:
            allowed = "fewer images, samples or path steps"
        return Decision("refuse", f"Refused: this job would take about {_fmt_time(e.seconds)}, "
                        f"more than the limit of {_fmt_time(budgets.max_seconds)}; allowed: "
                        f"{allowed}.", e)
    if e.seconds > budgets.click_seconds:
        return Decision("confirm", f"This will take about {_fmt_time(e.seconds)} "
                        f"({e.summary}). Click to start.", e)
    return Decision("run", e.summary, e)


# --------------------------------------------------------------------------------------------
# Server-wide memory budget
# --------------------------------------------------------------------------------------------

class Reservation(QueuedRequest):
    """A request for ``nbytes`` of a :class:`MemoryBudget` (see ``jobs.QueuedRequest``)."""

    noun = "reservation"

    def __init__(self, budget: "MemoryBudget", nbytes: int):
        super().__init__(budget)
        self.nbytes = int(nbytes)


class MemoryBudget(FifoQueue):
    """``total_bytes`` shared by jobs. :meth:`request` queues a reservation; requests are
    granted strictly in arrival order (a large request at the head is not overtaken by small
    ones behind it, so nobody starves), and only while the granted total stays within
    ``total_bytes``. A request larger than ``total_bytes`` is refused at once (ValueError)."""

    def __init__(self, total_bytes: float):
        if not (isinstance(total_bytes, (int, float)) and total_bytes > 0):
            raise ValueError(f"total_bytes must be a positive number; got {total_bytes!r}")
        super().__init__()
        self.total = int(total_bytes)
        self._in_use = 0

    @property
    def in_use(self) -> int:
        with self._cond:
            return self._in_use

    def request(self, nbytes: float) -> Reservation:
        """Queue a reservation of ``nbytes`` (granted at once when nothing waits and it fits)."""
        if isinstance(nbytes, bool) or not isinstance(nbytes, (int, float)) or nbytes < 0 \
                or not math.isfinite(nbytes):
            raise ValueError(f"nbytes must be a finite number >= 0; got {nbytes!r}")
        if nbytes > self.total:
            raise ValueError(f"this job needs about {nbytes / 1e9:.2f} GB, more than the whole "
                             f"server budget of {self.total / 1e9:.2f} GB; it can never run")
        return self._enqueue(Reservation(self, int(nbytes)))

    def reserve(self, nbytes: float, timeout: float | None = None) -> Reservation:
        """:meth:`request` then wait; TimeoutError (and out of the queue) after ``timeout``."""
        r = self.request(nbytes)
        if not r.wait(timeout):
            r.release()
            raise TimeoutError(f"no memory freed for {timeout} s (the server is busy)")
        return r

    def _fits(self, r: Reservation) -> bool:
        return self._in_use + r.nbytes <= self.total

    def _take(self, r: Reservation) -> None:
        self._in_use += r.nbytes

    def _give(self, r: Reservation) -> None:
        self._in_use -= r.nbytes


def default_server_budget_bytes() -> int:
    """``EXPLORER_MEMORY_BUDGET_GB`` when set, else half of this machine's physical memory."""
    env = os.environ.get("EXPLORER_MEMORY_BUDGET_GB", "").strip()
    if env:
        try:
            gb = float(env)
        except ValueError:
            gb = -1.0
        if not (math.isfinite(gb) and gb > 0):
            raise ValueError(f"EXPLORER_MEMORY_BUDGET_GB must be a positive number of GB; "
                             f"got {env!r}")
        return int(gb * 1e9)
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2)


_SERVER: MemoryBudget | None = None
_SERVER_LOCK = threading.Lock()


def server_budget() -> MemoryBudget:
    """The process-wide :class:`MemoryBudget` (created on first use, sized by
    :func:`default_server_budget_bytes`)."""
    global _SERVER
    with _SERVER_LOCK:
        if _SERVER is None:
            _SERVER = MemoryBudget(default_server_budget_bytes())
        return _SERVER
