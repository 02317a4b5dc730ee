"""The app says where it runs (a badge in the sidebar), and on a GPU its stages give the CPU's
numbers. The ``cuda`` tests are skipped, saying why, without a CUDA GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app_helpers import fresh_streamlit_caches, metric_table, new_app, no_errors  # noqa: F401

from explorer import attacks, data, device
from explorer.ui import stages


def _badges(at) -> list[str]:
    return [m.value for m in at.sidebar.markdown if "running on" in m.value.lower()]


def test_sidebar_badge_names_the_cpu(monkeypatch):
    monkeypatch.setenv(device.FORCE_CPU_ENV, "1")
    at = new_app()
    at.run()
    no_errors(at)
    want = f"Running on CPU ({device.cpu_cores()} core"
    assert any(want in b for b in _badges(at)), _badges(at)
    # Asking for the GPU where none is usable falls back to the CPU and says so.
    at.radio(key="cfg.device").set_value("cuda").run()
    no_errors(at)
    assert any(f"No CUDA GPU here: running on CPU ({device.cpu_cores()} core" in b
               for b in _badges(at)), _badges(at)


@pytest.mark.cuda
def test_sidebar_badge_names_the_gpu_and_the_numbers_match_the_cpu():
    at = new_app(dev="cuda")
    at.run()
    no_errors(at)
    name = torch.cuda.get_device_name(0)
    assert any(f"Running on GPU: {name}" in b for b in _badges(at)), _badges(at)
    gpu_table = metric_table(at)
    cpu = new_app(dev="cpu")
    cpu.run()
    no_errors(cpu)
    cpu_table = metric_table(cpu)
    assert gpu_table.keys() == cpu_table.keys()
    for pair, row in cpu_table.items():
        for key, value in row.items():
            got = gpu_table[pair][key]
            assert (np.isnan(value) and np.isnan(got)) or abs(got - value) <= 2e-3, (pair, key)


@pytest.mark.cuda
@pytest.mark.parametrize("method", ["saliency", "integrated_gradients"])
def test_stages_on_cuda_match_the_cpu(method):
    x = stages.samples("mnist").x[:1]
    params = (("steps", 8),) if method == "integrated_gradients" else ()
    cpu = stages.attribution(("mnist", "natural", "cpu"), "s0", x, method, params)
    gpu = stages.attribution(("mnist", "natural", "cuda"), "s0", x, method, params)
    assert gpu.label == cpu.label
    np.testing.assert_allclose(gpu.map, cpu.map, atol=1e-4, rtol=1e-3)
    params_topk = attacks.attack_params("topk", paper=data.DATASETS["mnist"].defaults,
                                        overrides={"steps": 3})
    params_topk.pop("seed")  # passed on its own
    items = tuple(sorted(params_topk.items()))
    out_cpu = stages.attack(("mnist", "natural", "cpu"), "s0", x, method, params, "topk",
                            items, 0)
    out_gpu = stages.attack(("mnist", "natural", "cuda"), "s0", x, method, params, "topk",
                            items, 0)
    assert out_gpu.steps_run == out_cpu.steps_run and out_gpu.linf <= out_cpu.linf + 1e-6
    assert out_gpu.map_adv.shape == out_cpu.map_adv.shape
