"""GPU check: the ``cuda``-marked tests, then the GPU figures, written into benchmarks/README.md.

    make gpu-check
    python benchmarks/gpu_check.py [--skip-tests] [--cpu-threads 2] [--readme PATH] [--dry-run]

Refuses (exit status 2, saying why) where no CUDA GPU is usable (``torch.cuda.is_available()``
is False, or ``EXPLORER_FORCE_CPU`` is set). Measured side by side in one run on the GPU machine:

1. the ``cuda``-marked tests (``pytest -m cuda``): metrics, attributions, attacks and the app's
   stages on the GPU against the CPU;
2. one attack step at 224×224 (top-k attack; Simple Gradients, then Integrated Gradients with
   the method's default path points) on the CPU limited to ``--cpu-threads`` threads (2: the
   project's 2-core server) and on the GPU, and the speed-up; the model is the shipped
   EfficientNet-Lite0, or torchvision's ResNet-18 with untrained weights where the
   EfficientNet-Lite0 weights are not installed (the figures say which);
3. ``metrics.compare()`` per 224×224 pair (a batch of pairs, k = 1000, w = 1) on both;
4. the k-slider fragment of the Explorer page (``bench_app._fragment_once``: scores, table,
   masks, figure) on a 224×224 pair whose maps were computed on the GPU; the fragment's scores
   run on the CPU of the server (the maps are held as numpy arrays), so this is the latency a
   user of a GPU server sees.

The figures replace the part of benchmarks/README.md between the ``gpu-check`` markers (a new
section at the end when there is none); ``--dry-run`` prints them only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from explorer import attacks, data, device, metrics, models  # noqa: E402

README = ROOT / "benchmarks" / "README.md"
HEADING = "## GPU check: `make gpu-check`"
BEGIN = "<!-- gpu-check:begin (written by benchmarks/gpu_check.py; edits in here are replaced) -->"
END = "<!-- gpu-check:end -->"
REFUSAL = ("gpu_check: no CUDA GPU is usable here ({why}). The GPU check needs one: run "
           "`make gpu-check` on a machine where torch.cuda.is_available() is True (and "
           "EXPLORER_FORCE_CPU unset). Nothing was measured or written.")
SIZE = 224


# ----------------------------------------------------------------------------- README section

def write_section(text: str, body: str) -> str:
    """``text`` (benchmarks/README.md) with the part between :data:`BEGIN` and :data:`END`
    replaced by ``body``; without the markers, a new section (:data:`HEADING`) is appended.
    Anything outside the markers is kept as it is. ValueError for a half-marked file."""
    body = body.strip("\n")
    block = f"{BEGIN}\n{body}\n{END}"
    has_begin, has_end = text.count(BEGIN), text.count(END)
    if (has_begin, has_end) == (0, 0):
        return text.rstrip("\n") + f"\n\n{HEADING}\n\n{block}\n"
    if (has_begin, has_end) != (1, 1) or text.index(BEGIN) > text.index(END):
        raise ValueError("benchmarks/README.md holds a broken gpu-check section (one begin and "
                         "one end marker, in that order, are needed); fix it by hand")
    start, stop = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + block + text[stop:]


# ----------------------------------------------------------------------------- measurements

@dataclass
class Figures:
    gpu: str
    cpu_threads: int
    model: str
    tests: str = "not run (--skip-tests)"
    tests_ok: bool = True
    attack: dict = field(default_factory=dict)   # method -> (cpu s/step, gpu s/step, steps)
    compare_ms: tuple = ()                        # (cpu ms/pair, gpu ms/pair, pairs)
    fragment_ms: tuple = ()                       # (median, best, repeats)


def refusal() -> str | None:
    """The message when no CUDA GPU is usable, else None."""
    if device.cuda_available():
        return None
    why = ("EXPLORER_FORCE_CPU is set" if device.forced_cpu()
           else "torch.cuda.is_available() is False")
    return REFUSAL.format(why=why)


def run_cuda_tests() -> tuple[str, bool]:
    """``pytest -m cuda``: its summary line and whether it passed (and ran something)."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p",
                           "no:cacheprovider", "tests"], cwd=ROOT, capture_output=True,
                          text=True)
    lines = [ln for ln in proc.stdout.splitlines() if re.search(r"\d+ (passed|failed)", ln)]
    summary = lines[-1].strip("= ") if lines else "no summary (see the pytest output)"
    if proc.returncode != 0:
        print(proc.stdout[-4000:], proc.stderr[-2000:], sep="\n", file=sys.stderr)
    return summary, proc.returncode == 0 and "passed" in summary


def imagenet_model(dev: str):
    """The shipped EfficientNet-Lite0, else an untrained ResNet-18 (same input size)."""
    try:
        return models.load("imagenet", "efficientnet_lite0", device=dev).eval(), \
            "EfficientNet-Lite0 (shipped weights)"
    except models.ModelUnavailable:
        import torchvision  # only for the stand-in model

        net = torchvision.models.resnet18(weights=None).to(dev).eval()
        return net, "ResNet-18 with untrained weights (EfficientNet-Lite0 weights not installed)"


def _sync(dev: str) -> None:
    if device.kind(dev) == "cuda":
        torch.cuda.synchronize()


def _input(dev: str) -> torch.Tensor:
    try:
        x = data.load_samples("imagenet").x[:1]
    except Exception:  # noqa: BLE001 - no bundled photo: a fixed random image of the same size
        x = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    return x.to(dev)


def attack_step_seconds(dev: str, method: str, steps: int) -> float:
    """Wall time of a ``steps``-step top-k attack at 224×224 divided by ``steps`` (after one
    warm-up step)."""
    net, _ = imagenet_model(dev)
    x = _input(dev)
    d = data.DATASETS["imagenet"].defaults
    kw = dict(method=method, attack="topk", epsilon=d.epsilon, step_size=d.step_size,
              attack_k=d.attack_k, seed=0, noise_candidate=False)
    attacks.attack(net, x, steps=1, **kw)  # warm-up: first allocations, cuDNN choices
    _sync(dev)
    t0 = time.perf_counter()
    attacks.attack(net, x, steps=steps, **kw)
    _sync(dev)
    return (time.perf_counter() - t0) / steps


def compare_ms_per_pair(dev: str, pairs: int, repeat: int = 5) -> float:
    gen = torch.Generator().manual_seed(1)
    a = torch.rand(pairs, SIZE, SIZE, generator=gen).to(dev)
    b = (a + 0.1 * torch.rand(pairs, SIZE, SIZE, generator=gen).to(dev))
    metrics.compare(a, b, 1000, 1)
    times = []
    for _ in range(repeat):
        _sync(dev)
        t0 = time.perf_counter()
        metrics.compare(a, b, 1000, 1)
        _sync(dev)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3 / pairs


def fragment_ms(dev: str, repeats: int) -> tuple[float, float]:
    """Median and best k-move fragment time (overlap tab) on a 224×224 pair mapped on ``dev``."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_app  # the fragment as the page runs it

    from explorer.attributions import attribution_map
    from explorer.ui import headless, panels

    headless.quiet_logs()
    net, _ = imagenet_model(dev)
    x = _input(dev)
    d = data.DATASETS["imagenet"].defaults
    a = attribution_map(net, x)[0]
    adv = attacks.attack(net, x, attack="topk", epsilon=d.epsilon, step_size=d.step_size,
                         steps=5, attack_k=d.attack_k, seed=0)
    rnd = attacks.attack(net, x, attack="random_sign", epsilon=d.epsilon, attack_k=d.attack_k,
                         seed=0)
    a_np = a.detach().cpu().numpy()
    panel = panels.PanelInput(
        dataset="imagenet", height=SIZE, width=SIZE,
        pairs=[panels.Pair("attack", "gpu-attack", a_np, adv.map_adv[0].detach().cpu().numpy()),
               panels.Pair("random sign", "gpu-random", a_np,
                           rnd.map_adv[0].detach().cpu().numpy())],
        histories={"attack": adv.history[0].cpu().numpy()})
    headless.clear_caches()
    bench_app._fragment_once(panel, 1000, 1, "overlap")  # warm-up
    totals = []
    for i in range(repeats):
        headless.clear_caches()
        totals.append(bench_app._fragment_once(panel, 1001 + i, 1, "overlap")["total"])
    return statistics.median(totals), min(totals)


def measure(args) -> Figures:
    torch.set_num_threads(args.cpu_threads)
    gpu = device.describe("cuda").removeprefix("Running on GPU: ")
    figs = Figures(gpu=gpu, cpu_threads=args.cpu_threads, model=imagenet_model("cpu")[1])
    if not args.skip_tests:
        print("cuda-marked tests ...", flush=True)
        figs.tests, figs.tests_ok = run_cuda_tests()
        print("  " + figs.tests, flush=True)
    for method, cpu_steps, gpu_steps in (("saliency", args.cpu_steps, args.gpu_steps),
                                         ("integrated_gradients", 1, args.gpu_steps)):
        print(f"attack step, {method} ...", flush=True)
        cpu = attack_step_seconds("cpu", method, cpu_steps)
        gpu_s = attack_step_seconds("cuda", method, gpu_steps)
        figs.attack[method] = (cpu, gpu_s, cpu_steps, gpu_steps)
        print(f"  CPU {cpu:.3f} s/step, GPU {gpu_s:.4f} s/step, x{cpu / gpu_s:.1f}", flush=True)
    figs.compare_ms = (compare_ms_per_pair("cpu", 8), compare_ms_per_pair("cuda", 64), 64)
    print(f"compare(): CPU {figs.compare_ms[0]:.2f} ms/pair, GPU {figs.compare_ms[1]:.3f} "
          "ms/pair", flush=True)
    med, best = fragment_ms("cuda", args.fragment_repeats)
    figs.fragment_ms = (med, best, args.fragment_repeats)
    print(f"fragment: median {med:.1f} ms, best {best:.1f} ms", flush=True)
    return figs


def render(figs: Figures, when: str | None = None) -> str:
    """The README section's text for ``figs``."""
    when = when or dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    names = {"saliency": "Simple Gradients", "integrated_gradients": "Integrated Gradients"}
    lines = [f"Last run {when} on {figs.gpu} (torch {torch.__version__}, "
             f"{platform.machine()}); CPU figures on the same machine limited to "
             f"{figs.cpu_threads} threads (as on the project's 2-core server). Model: "
             f"{figs.model}, one 224×224 image, top-k attack with the ImageNet paper settings.",
             "", f"cuda-marked tests: {figs.tests}.", "",
             "| quantity (224×224) | CPU | GPU | speed-up |", "|---|---|---|---|"]
    for method, (cpu, gpu, cpu_steps, gpu_steps) in figs.attack.items():
        lines.append(f"| attack step, {names.get(method, method)} (mean of {cpu_steps} CPU / "
                     f"{gpu_steps} GPU steps) | {cpu:.2f} s | {gpu * 1e3:.1f} ms | "
                     f"×{cpu / gpu:.0f} |")
    if figs.compare_ms:
        cpu, gpu, n = figs.compare_ms
        lines.append(f"| `metrics.compare()` per pair (k = 1000, w = 1; batch of {n} on the "
                     f"GPU, 8 on the CPU) | {cpu:.1f} ms | {gpu:.2f} ms | ×{cpu / gpu:.0f} |")
    if figs.fragment_ms:
        med, best, n = figs.fragment_ms
        lines.append(f"| k-slider fragment, overlap tab (median of {n}; best {best:.0f} ms) | "
                     f"— | {med:.0f} ms | — |")
    lines += ["", "The fragment's scores run on the server's CPU (the maps are kept as numpy "
              "arrays), so its figure is what a user of a GPU server sees after a k move; the "
              "target is under 100 ms."]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-tests", action="store_true", help="measure only")
    ap.add_argument("--cpu-threads", type=int, default=2)
    ap.add_argument("--cpu-steps", type=int, default=3, help="Simple-Gradients steps on the CPU")
    ap.add_argument("--gpu-steps", type=int, default=20)
    ap.add_argument("--fragment-repeats", type=int, default=10)
    ap.add_argument("--readme", type=Path, default=README)
    ap.add_argument("--dry-run", action="store_true", help="print the section, write nothing")
    args = ap.parse_args(argv)
    message = refusal()
    if message:
        print(message, file=sys.stderr)
        return 2
    figs = measure(args)
    body = render(figs)
    print("\n" + body)
    if not args.dry_run:
        args.readme.write_text(write_section(args.readme.read_text(), body))
        print(f"\nwritten into {args.readme}")
    return 0 if figs.tests_ok else 1


if __name__ == "__main__":
    sys.exit(main())
