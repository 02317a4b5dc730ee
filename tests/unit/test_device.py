"""The device choice (one place: ``explorer.device``) and tensors that stay on their input's
device: metrics, attributions and attacks return every tensor on ``x``'s device, and none of
them creates a tensor without saying where (checked on the CPU under a ``meta`` default
device, which turns any such tensor into an error)."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest
import torch
import torch.nn as nn

from explorer import attacks, device, metrics
from explorer import attributions as A
from explorer.evaluation import runner

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


@pytest.fixture()
def no_gpu(monkeypatch):
    monkeypatch.delenv(device.FORCE_CPU_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture()
def gpu(monkeypatch):
    monkeypatch.delenv(device.FORCE_CPU_ENV, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: f"NVIDIA Test GPU {i}")


def test_auto_is_the_gpu_when_present(gpu):
    assert device.choose() == "cuda"
    assert device.choose("auto", local_rank=1) == "cuda:1"
    assert device.choose("cuda") == "cuda" and device.choose("cuda:2") == "cuda:2"
    assert device.choose("CPU") == "cpu"
    assert device.describe("cuda") == "Running on GPU: NVIDIA Test GPU 0"
    assert device.describe(torch.device("cuda:1")) == "Running on GPU: NVIDIA Test GPU 1"


def test_auto_is_the_cpu_without_a_gpu(no_gpu, monkeypatch):
    assert device.choose() == "cpu" and device.choose(local_rank=3) == "cpu"
    with pytest.raises(ValueError, match="'cuda' was asked but no CUDA GPU is available; use "
                                         "--device cpu or auto"):
        device.choose("cuda")
    with pytest.raises(ValueError, match="'cuda:0' was asked"):
        device.choose("cuda:0")
    assert device.choose("cuda", strict=False) == "cpu"  # the app falls back and says so
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert device.describe("cpu") == "Running on CPU (2 cores)"
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: {3}, raising=False)
    assert device.describe("cpu") == "Running on CPU (1 core)"


@pytest.mark.parametrize("value, forced", [("1", True), ("yes", True), ("0", False),
                                           ("", False), ("false", False)])
def test_the_environment_variable_forces_the_cpu(gpu, monkeypatch, value, forced):
    monkeypatch.setenv(device.FORCE_CPU_ENV, value)
    assert device.forced_cpu() is forced
    assert device.choose() == ("cpu" if forced else "cuda")
    if forced:
        with pytest.raises(ValueError, match="the CPU is forced \\(EXPLORER_FORCE_CPU is set\\)"):
            device.choose("cuda")


def test_bad_choice_is_refused():
    with pytest.raises(ValueError, match="device must be auto, cpu, cuda or cuda:N; got 'gpu'"):
        device.choose("gpu")
    with pytest.raises(ValueError, match="got 'cuda:x'"):
        device.choose("cuda:x")


def test_the_evaluation_runner_uses_the_one_choice(gpu, monkeypatch):
    assert runner._device_for("auto", 2) == "cuda:2"
    monkeypatch.setenv(device.FORCE_CPU_ENV, "1")
    assert runner._device_for("auto", 2) == "cpu"


def test_kind():
    assert [device.kind(d) for d in ("cpu", "cuda", "cuda:1", torch.device("cpu"))] == [
        "cpu", "cuda", "cuda", "cpu"]


# ------------------------------------------------------------------ tensors stay on x's device

def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Softplus(), nn.Flatten(),
                         nn.Linear(4 * 12 * 12, 3)).eval()


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            yield from _tensors(getattr(obj, f.name))
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


def _region(dev) -> torch.Tensor:
    r = torch.zeros(12, 12, dtype=torch.bool, device=dev)
    r[:4, :4] = True
    return r


def _outputs(dev, during=contextlib.nullcontext):
    """Every library entry point on inputs of ``dev``, run inside ``during()``: (name,
    result)."""
    net = _net().to(dev)
    gen = torch.Generator(device="cpu").manual_seed(1)
    x = torch.rand(2, 1, 12, 12, generator=gen, device="cpu").to(dev)
    a = torch.rand(2, 12, 12, generator=gen, device="cpu").to(dev)
    b = torch.rand(2, 12, 12, generator=gen, device="cpu").to(dev)
    regions = {key: _region(dev) for key, info in attacks.ATTACKS.items() if info.needs_region}
    with during():
        return _run_all(net, x, a, b, regions)


def _run_all(net, x, a, b, regions):
    out = [("compare", metrics.compare(a, b, 10, 1)),
           ("overlap_masks", metrics.overlap_masks(a, b, 10, 1)),
           ("diverse_topk_mask", metrics.diverse_topk_mask(a, 10, 1)),
           ("center_of_mass", metrics.center_of_mass(a))]
    small = {"integrated_gradients": {"steps": 4}, "smoothgrad": {"n_samples": 3}}
    for method in A.METHODS:
        out.append((method, A.attribution_map(net, x, method, small.get(method))))
    for key, info in attacks.ATTACKS.items():
        extra = {"region": regions[key]} if key in regions else {}
        out.append((key, attacks.attack(net, x, method="saliency", attack=key, epsilon=0.1,
                                        step_size=0.02, steps=2, attack_k=10, **extra)))
    return out


@pytest.mark.parametrize("dev", DEVICES)
def test_every_result_tensor_is_on_the_inputs_device(dev):
    want = torch.device(dev).type
    outputs = _outputs(dev)
    assert len(outputs) == 4 + len(A.METHODS) + len(attacks.ATTACKS)
    for name, result in outputs:
        tensors = list(_tensors(result))
        assert tensors, name
        assert {t.device.type for t in tensors} == {want}, name


def test_no_tensor_is_created_without_a_device():
    """Under a ``meta`` default device, a tensor made without ``device=`` lands on ``meta`` and
    any use with the CPU input fails: the same slip would put it on the wrong GPU or on the CPU
    beside CUDA inputs. Random draws are made on the CPU on purpose (same numbers on every
    device) and say so."""
    outputs = _outputs("cpu", during=lambda: torch.device("meta"))
    for name, result in outputs:
        assert {t.device.type for t in _tensors(result)} == {"cpu"}, name


@pytest.mark.cuda
def test_metrics_on_cuda_match_the_cpu():
    gen = torch.Generator(device="cpu").manual_seed(3)
    a = torch.rand(3, 224, 224, generator=gen)
    b = a + 0.05 * torch.rand(3, 224, 224, generator=gen)
    cpu = metrics.compare(a, b, 1000, 2)
    gpu = metrics.compare(a.cuda(), b.cuda(), 1000, 2)
    assert cpu.keys() == gpu.keys()
    for key in cpu:
        assert gpu[key].is_cuda, key
        torch.testing.assert_close(gpu[key].cpu(), cpu[key], atol=1e-5, rtol=1e-5,
                                   equal_nan=True, msg=key)
