"""Batch-evaluation speed, measured side by side in one run.

1. Batching: throughput (images/s) of ``explorer.evaluation`` on MNIST, Simple Gradients, top-k
   attack, 100 steps, with batches of ``--batch`` images against one image at a time (batches of
   1), same threads. Floor: batched >= 4x.
2. Sharding: the same work (``--shard-images`` images in batches of ``--shard-batch``) run by
   two gloo processes with one thread each (``torchrun --nproc_per_node=2``) against one process
   with two threads. Floor: two processes take <= 1.2x the time of one. Both runs are whole
   command lines (process start, imports, model load, merge included); the script also checks
   that both give the same rows.

Uses the shipped MNIST model when present (else the same architecture with random weights: the
cost does not depend on the weights) and the MNIST test set (``data/``).

    python benchmarks/bench_evaluate.py            # both parts
    python benchmarks/bench_evaluate.py --part batching --batch 32 --single 6
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from explorer.evaluation.backend import RegistryBackend  # noqa: E402
from explorer.evaluation.folder import load_results  # noqa: E402
from explorer.evaluation.plan import EvalConfig  # noqa: E402
from explorer.evaluation.runner import run  # noqa: E402
from explorer.evaluation.schema import TIMING_COLUMNS  # noqa: E402


class BenchBackend(RegistryBackend):
    """The registries, but a missing shipped model becomes a random-weight one (same cost)."""

    random_weights = False

    def check_model(self, dataset, name):
        pass  # a missing model is replaced below

    def load_model(self, dataset, name, device):
        from explorer import models

        try:
            return models.load(dataset, name, device=device)
        except models.ModelUnavailable:
            BenchBackend.random_weights = True
            torch.manual_seed(0)
            arch = models.default_architecture(dataset)
            return models.build_architecture(dataset, arch).to(device).eval()


def config(n_images: int, batch: int, steps: int) -> EvalConfig:
    return EvalConfig(datasets=("mnist",), models=("natural",), methods=("saliency",),
                         attacks=("topk",), w=(1,), n_images=n_images, batch_size=batch,
                         steps=steps)


def throughput(n_images: int, batch: int, steps: int) -> float:
    cfg = config(n_images, batch, steps)
    backend = BenchBackend()
    run(config(min(batch, 2), min(batch, 2), 2), None, backend=backend, progress=False)  # warm
    t0 = time.perf_counter()
    df = run(cfg, None, backend=backend, progress=False)
    dt = time.perf_counter() - t0
    assert len(df) == n_images
    return n_images / dt


def part_batching(args) -> dict:
    torch.set_num_threads(args.threads)
    single = throughput(args.single, 1, args.steps)
    batched = throughput(args.batch, args.batch, args.steps)
    out = {"threads": args.threads, "steps": args.steps, "batch": args.batch,
           "single_images": args.single, "single_img_s": single, "batched_img_s": batched,
           "ratio": batched / single, "random_weights": BenchBackend.random_weights}
    print(f"batching: one image at a time {single:.2f} img/s ({args.single} images), batches of "
          f"{args.batch} {batched:.2f} img/s -> {batched / single:.1f}x (floor 4x; "
          f"{args.threads} thread(s), {args.steps} steps"
          f"{', random weights' if BenchBackend.random_weights else ''})")
    return out


def _worker(args) -> int:
    """Run one evaluation into --out (used under torchrun and for the 1-process run)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = config(args.shard_images, args.shard_batch, args.steps)
    run(cfg, args.out, backend=BenchBackend(), device="cpu", progress=False)
    return 0


def part_sharding(args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench_eval_"))
    me = [sys.executable, str(Path(__file__).resolve()), "--worker", "--steps", str(args.steps),
          "--shard-images", str(args.shard_images), "--shard-batch", str(args.shard_batch)]
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = dict(os.environ)
    try:
        one_env = {**env, "OMP_NUM_THREADS": "2"}
        two_env = {**env, "OMP_NUM_THREADS": "1"}
        t0 = time.perf_counter()
        subprocess.run(me + ["--threads", "2", "--out", str(tmp / "one")], check=True,
                       env=one_env, cwd=ROOT)
        one = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run([torchrun, "--standalone", "--nproc_per_node=2",
                        str(Path(__file__).resolve()), "--worker", "--threads", "1",
                        "--steps", str(args.steps), "--shard-images", str(args.shard_images),
                        "--shard-batch", str(args.shard_batch), "--out", str(tmp / "two")],
                       check=True, env=two_env, cwd=ROOT)
        two = time.perf_counter() - t0
        a = load_results(tmp / "one", partial=False).drop(columns=list(TIMING_COLUMNS))
        b = load_results(tmp / "two", partial=False).drop(columns=list(TIMING_COLUMNS))
        same = a.equals(b)
        max_diff = float((a.select_dtypes("number") - b.select_dtypes("number")).abs()
                         .max().max()) if not same else 0.0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = {"one_process_2_threads_s": one, "two_processes_1_thread_s": two, "ratio": two / one,
           "images": args.shard_images, "batch": args.shard_batch, "steps": args.steps,
           "rows_equal": same, "max_abs_diff": max_diff}
    print(f"sharding: 1 process x 2 threads {one:.1f} s, 2 gloo processes x 1 thread {two:.1f} s "
          f"-> {two / one:.2f}x (ceiling 1.2x; {args.shard_images} images in batches of "
          f"{args.shard_batch}, {args.steps} steps); rows equal: {same}"
          + ("" if same else f" (largest difference {max_diff:.3g})"))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--part", choices=("all", "batching", "sharding"), default="all")
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch", type=int, default=32, help="batch size of the batched run")
    p.add_argument("--single", type=int, default=6, help="images of the one-at-a-time run")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--shard-images", type=int, default=256)
    p.add_argument("--shard-batch", type=int, default=32)
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return _worker(args)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPU(s), load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    results = {}
    if args.part in ("all", "batching"):
        results["batching"] = part_batching(args)
    if args.part in ("all", "sharding"):
        results["sharding"] = part_sharding(args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
