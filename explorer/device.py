"""Where the work runs: the one place that chooses the device, and its description.

``auto`` (the default everywhere: the app's sidebar, ``python -m explorer evaluate --device``)
is the CUDA GPU when PyTorch sees one, else the CPU. Setting :data:`FORCE_CPU_ENV`
(``EXPLORER_FORCE_CPU=1``) makes ``auto`` pick the CPU and refuses ``cuda``, for a server whose
GPU is kept for something else. Every other module receives the device chosen here and keeps
its tensors on the device of its input (attributions, attacks and metrics return tensors on
``x``'s device).
"""

from __future__ import annotations

import os

import torch

from . import jobs

__all__ = ["CHOICES", "FORCE_CPU_ENV", "choose", "cpu_cores", "cuda_available", "describe",
           "forced_cpu", "kind"]

CHOICES = ("auto", "cuda", "cpu")
FORCE_CPU_ENV = "EXPLORER_FORCE_CPU"
_FALSE = ("", "0", "false", "no", "off")


def forced_cpu() -> bool:
    """True when :data:`FORCE_CPU_ENV` is set to anything but 0 / false / no / off."""
    return os.environ.get(FORCE_CPU_ENV, "").strip().lower() not in _FALSE


def cuda_available() -> bool:
    """A CUDA GPU is visible to PyTorch and the CPU is not forced."""
    return not forced_cpu() and torch.cuda.is_available()


def _no_cuda_reason() -> str:
    if forced_cpu():
        return f"the CPU is forced ({FORCE_CPU_ENV} is set)"
    return "no CUDA GPU is available"


def choose(requested: str = "auto", *, local_rank: int | None = None,
           strict: bool = True) -> str:
    """The device for ``requested`` ("auto", "cuda", "cuda:N" or "cpu"): a string for
    ``torch.device``. ``local_rank`` picks ``cuda:LOCAL_RANK`` (one GPU per process).
    ``strict``: "cuda" without a usable GPU raises ValueError (the CLI); else it falls back to
    "cpu" (the app, which says so next to the device badge)."""
    requested = str(requested).strip().lower()
    cuda = "cuda" if local_rank is None else f"cuda:{int(local_rank)}"
    if requested == "auto":
        return cuda if cuda_available() else "cpu"
    if requested == "cpu":
        return "cpu"
    if requested == "cuda" or (requested.startswith("cuda:") and requested[5:].isdigit()):
        if cuda_available():
            return cuda if requested == "cuda" else requested
        if strict:
            raise ValueError(f"device {requested!r} was asked but {_no_cuda_reason()}; use "
                             "--device cpu or auto")
        return "cpu"
    raise ValueError(f"device must be auto, cpu, cuda or cuda:N; got {requested!r}")


def kind(device) -> str:
    """"cuda" or "cpu" for a device string or ``torch.device``."""
    return "cuda" if str(getattr(device, "type", device)).startswith("cuda") else "cpu"


def cpu_cores() -> int:
    """The CPU cores this process may use (its affinity mask where the OS has one)."""
    return jobs.cpu_count()


def describe(device) -> str:
    """One line for a badge: "Running on CPU (2 cores)" or "Running on GPU: NVIDIA …"."""
    if kind(device) == "cuda":
        dev = torch.device(device)
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return f"Running on GPU: {torch.cuda.get_device_name(index)}"
    n = cpu_cores()
    return f"Running on CPU ({n} core{'s' if n != 1 else ''})"
