"""benchmarks/gpu_check.py on a machine without a GPU: it refuses clearly, and its README
writer and figure table are checked on hand-made figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import gpu_check as G  # noqa: E402


def test_a_new_section_is_appended_and_then_replaced_in_place():
    text = "# Benchmarks\n\n## Metrics\n\nold figures\n"
    once = G.write_section(text, "first body")
    assert once == (text + f"\n{G.HEADING}\n\n{G.BEGIN}\nfirst body\n{G.END}\n")
    after = once + "\n## Later section\n\nkept\n"
    twice = G.write_section(after, "\nsecond body\n")
    assert twice == after.replace("first body", "second body")
    assert G.write_section(twice, "second body") == twice  # idempotent


@pytest.mark.parametrize("broken", [
    lambda b, e: f"x\n{b}\nbody\n",                 # no end marker
    lambda b, e: f"x\n{e}\nbody\n{b}\n",            # in the wrong order
    lambda b, e: f"{b}\n1\n{e}\n{b}\n2\n{e}\n",     # twice
])
def test_a_broken_section_is_refused(broken):
    with pytest.raises(ValueError, match="broken gpu-check section"):
        G.write_section(broken(G.BEGIN, G.END), "body")


def test_the_committed_readme_has_one_section():
    text = (ROOT / "benchmarks" / "README.md").read_text()
    assert text.count(G.BEGIN) == 1 and text.count(G.END) == 1
    assert G.write_section(text, "body").count("body") >= 1


def test_render_states_the_speed_ups():
    figs = G.Figures(gpu="NVIDIA Test", cpu_threads=2, model="EfficientNet-Lite0",
                     tests="12 passed in 30.0s",
                     attack={"saliency": (2.0, 0.05, 3, 20),
                             "integrated_gradients": (30.0, 0.25, 1, 20)},
                     compare_ms=(12.0, 0.5, 64), fragment_ms=(80.0, 70.0, 10))
    body = G.render(figs, when="2026-12-01 00:00 UTC")
    assert "Last run 2026-12-01 00:00 UTC on NVIDIA Test" in body
    assert "limited to 2 threads" in body and "cuda-marked tests: 12 passed in 30.0s." in body
    assert ("| attack step, Simple Gradients (mean of 3 CPU / 20 GPU steps) | 2.00 s | "
            "50.0 ms | ×40 |") in body
    assert "| attack step, Integrated Gradients (mean of 1 CPU / 20 GPU steps) | 30.00 s | " \
           "250.0 ms | ×120 |" in body
    assert "| 12.0 ms | 0.50 ms | ×24 |" in body
    assert "(median of 10; best 70 ms) | — | 80 ms | — |" in body


def test_refuses_without_cuda(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Benchmarks\n")
    env = {**os.environ, "EXPLORER_FORCE_CPU": "1"}
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"),
                          "--readme", str(readme)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 2
    assert "no CUDA GPU is usable here (EXPLORER_FORCE_CPU is set)" in run.stderr
    assert "Nothing was measured or written." in run.stderr
    assert "Traceback" not in run.stderr
    assert readme.read_text() == "# Benchmarks\n"


def test_refusal_names_the_missing_gpu(monkeypatch):
    monkeypatch.delenv("EXPLORER_FORCE_CPU", raising=False)
    monkeypatch.setattr(G.torch.cuda, "is_available", lambda: False)
    assert "(torch.cuda.is_available() is False)" in G.refusal()
    monkeypatch.setattr(G.torch.cuda, "is_available", lambda: True)
    assert G.refusal() is None


def test_compare_timing_runs_on_the_cpu():
    assert G.compare_ms_per_pair("cpu", 2, repeat=1) > 0
