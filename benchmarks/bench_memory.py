"""Peak memory and time per attack step through SmoothGrad and IG, before and after chunking.

The attack's gradient ``∇_x L(to_map(A(x)))`` through SmoothGrad or Integrated Gradients used to
keep the double-backward graphs of all noisy copies / path points at once ("before": one graph,
``map_loss_gradient(..., chunk=None)``); it is now accumulated chunk by chunk ("after": the
chunk that :func:`explorer.cost.default_chunk` picks from the per-job memory budget).

Measured on the shipped ImageNet model (EfficientNet-Lite0, 224×224, one bundled photo), top-k
attack with the ImageNet paper settings (k' = 1000, α = 0.5/255, ε = 8/255), surrogate β = 10.
Every case runs in a fresh subprocess; its peak RSS is ``ru_maxrss`` of that process (model,
torch and everything included), and the time per step is one full attack step (surrogate
gradient + the real model's map and label of the iterate), timed after a first step.
The parent polls each child's RSS and kills it above ``--max-rss-gb`` (the machine is shared).

The before-cases would need many GB at 50 samples, so they run with fewer samples / steps
(``--before-n``, default 5 and 10) and are extrapolated linearly in n (memory and time of the
one-graph path are affine in the number of rows: each row's graph is kept); the after-case
is also measured at the largest before-n, for a ratio measured side by side without any
extrapolation.

    python benchmarks/bench_memory.py [--threads 1] [--sg-samples 50] [--ig-steps 50]
                                      [--before-n 5 10] [--attack-steps 2] [--max-rss-gb 8]
    python benchmarks/bench_memory.py --calibrate   # per-row figures for explorer/cost.py
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


# --------------------------------------------------------------------------------------------
# Child side: one case per process
# --------------------------------------------------------------------------------------------

def _child_attack(case: dict) -> dict:
    import torch

    from explorer import cost, data, metrics, models
    from explorer.attributions import attribute_with_logits, map_loss_gradient, to_map
    from explorer.surrogate import smooth_model

    torch.set_num_threads(case["threads"])
    net = models.load("imagenet", "efficientnet_lite0")
    surrogate = smooth_model(net, 10.0)
    x0 = data.load_samples("imagenet").x[:1]
    d = data.get_dataset("imagenet").defaults
    method = case["method"]
    params = {"n_samples": case["n"]} if method == "smoothgrad" else {"steps": case["n"]}
    chunk = None if case["chunk"] == "before" else cost.default_chunk(method, params, x0)
    with torch.no_grad():
        target = net(x0).argmax(1)
    base = _peak_mb()
    attr, _ = attribute_with_logits(net, x0, method, params, target, validate=False)
    map0 = to_map(attr)
    weight = metrics.topk_mask(map0, d.attack_k).to(x0.dtype)

    def loss(m):
        return -(m * weight).sum()

    cur, times = x0, []
    for _ in range(case["steps"]):
        t0 = time.perf_counter()
        grad = map_loss_gradient(surrogate, cur, method, params, target, loss, chunk=chunk,
                                 validate=False)
        step = (cur + d.step_size * grad.sign() - x0).clamp(-d.epsilon, d.epsilon)
        cur = (x0 + step).clamp(0, 1)
        attr, _ = attribute_with_logits(net, cur, method, params, target, validate=False)
        with torch.no_grad():
            net(cur)
        to_map(attr)
        times.append(time.perf_counter() - t0)
    return {"base_mb": base, "peak_mb": _peak_mb(), "step_s": times, "chunk": chunk}


def _child_calibrate(case: dict) -> dict:
    """One of: real / surrogate forward+backward without a graph, or the double backward, on
    ``rows`` random inputs of a freshly initialised architecture (memory and time do not depend
    on the weights)."""
    import torch

    from explorer import data, models
    from explorer.attributions import attribute_with_logits, map_loss_gradient
    from explorer.surrogate import smooth_model

    torch.set_num_threads(case["threads"])
    net = models.build_architecture(case["dataset"], case["arch"]).eval()
    info = data.get_dataset(case["dataset"])
    x = torch.rand((case["rows"], info.channels) + tuple(info.size),
                   generator=torch.Generator().manual_seed(0))
    model = net if case["kind"] == "real" else smooth_model(net, 10.0)
    with torch.no_grad():
        target = model(x[:1]).argmax(1).expand(case["rows"])
    weight = torch.rand(tuple(info.size))

    def run():
        if case["kind"] == "double":
            map_loss_gradient(model, x, "saliency", None, target, lambda m: (m * weight).sum(),
                              validate=False)
        else:
            attribute_with_logits(model, x, "saliency", None, target, validate=False)

    run_small = x[:1]
    attribute_with_logits(model, run_small, "saliency", None, target[:1], validate=False)
    base = _peak_mb()
    times = []
    for _ in range(case.get("repeat", 2)):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return {"base_mb": base, "peak_mb": _peak_mb(), "s": min(times)}


# --------------------------------------------------------------------------------------------
# Parent side
# --------------------------------------------------------------------------------------------

def run_case(case: dict, max_rss_gb: float) -> dict:
    """Run ``case`` in a fresh interpreter; kill it when its RSS passes ``max_rss_gb``."""
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    proc = subprocess.Popen([sys.executable, __file__, "--child", json.dumps(case)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    status = Path(f"/proc/{proc.pid}/status")
    killed = False
    while proc.poll() is None:
        try:
            rss_kb = next(int(line.split()[1]) for line in status.read_text().splitlines()
                          if line.startswith("VmRSS:"))
        except (OSError, StopIteration, ValueError):
            rss_kb = 0
        if rss_kb > max_rss_gb * 1024 * 1024:
            proc.kill()
            killed = True
            break
        time.sleep(0.1)
    out, err = proc.communicate()
    if killed:
        return {"error": f"killed above {max_rss_gb} GB RSS"}
    if proc.returncode != 0:
        return {"error": err.strip().splitlines()[-1] if err.strip() else f"rc {proc.returncode}"}
    return json.loads(out.strip().splitlines()[-1])


def _fmt_gb(mb: float) -> str:
    return f"{mb / 1024:.2f} GB"


def _extrapolate(points: dict[int, float], n: int) -> float:
    (n1, y1), (n2, y2) = sorted(points.items())[:1] + sorted(points.items())[-1:]
    return y2 + (y2 - y1) / (n2 - n1) * (n - n2)


def bench(args) -> None:
    import torch

    from explorer import cost

    print(f"EfficientNet-Lite0, 224×224, 1 image, top-k attack (ImageNet paper settings), "
          f"{args.threads} torch thread(s), {args.attack_steps} attack steps per case "
          f"(time: the last {args.attack_steps - 1}), torch {torch.__version__}; "
          f"per-job budget {cost.DEFAULT_JOB_BUDGET_BYTES['cpu'] / 1e9:g} GB; "
          f"load average {os.getloadavg()[0]:.1f}")
    rows = []
    for method, n_full in (("smoothgrad", args.sg_samples),
                           ("integrated_gradients", args.ig_steps)):
        label = "SmoothGrad" if method == "smoothgrad" else "IG"
        res = {}
        for chunk, n in [("after", n_full), ("after", max(args.before_n))] + \
                        [("before", b) for b in args.before_n]:
            case = dict(kind="attack", method=method, n=n, chunk=chunk, steps=args.attack_steps,
                        threads=args.threads)
            r = run_case(case, args.max_rss_gb)
            res[(chunk, n)] = r
            if "error" in r:
                print(f"  {label} {chunk} n={n}: {r['error']}", flush=True)
                continue
            step = min(r["step_s"][1:] or r["step_s"])
            r["step"] = step
            print(f"  {label} {chunk:6s} n={n:3d} chunk={r['chunk']}: peak {_fmt_gb(r['peak_mb'])}"
                  f" (model loaded: {_fmt_gb(r['base_mb'])}), {step:.1f} s/step", flush=True)
        ok = [b for b in args.before_n if "error" not in res[("before", b)]]
        after_full, after_small = res[("after", n_full)], res[("after", max(args.before_n))]
        if len(ok) >= 2 and "error" not in after_full:
            mem = _extrapolate({b: res[("before", b)]["peak_mb"] for b in ok}, n_full)
            sec = _extrapolate({b: res[("before", b)]["step"] for b in ok}, n_full)
            rows.append((f"{label}, n = {n_full}", f"{_fmt_gb(mem)} (extrapolated)",
                         _fmt_gb(after_full["peak_mb"]), mem / after_full["peak_mb"],
                         f"{sec:.1f} s (extrapolated)", f"{after_full['step']:.1f} s",
                         after_full["step"] / sec, after_full["chunk"]))
        nb = max(args.before_n)
        if nb in ok and "error" not in after_small:
            b = res[("before", nb)]
            rows.append((f"{label}, n = {nb}", _fmt_gb(b["peak_mb"]),
                         _fmt_gb(after_small["peak_mb"]), b["peak_mb"] / after_small["peak_mb"],
                         f"{b['step']:.1f} s", f"{after_small['step']:.1f} s",
                         after_small["step"] / b["step"], after_small["chunk"]))
    print("\n| case | peak RSS before | after | before / after | s per step before | after "
          "| after / before | chunk |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.1f}× | {r[4]} | {r[5]} | {r[6]:.2f}× "
              f"| {r[7]} |")
    target_ok = all(float(r[2].split()[0]) < 2.0 for r in rows)
    print(f"\ntarget: peak under 2 GB after: {'PASS' if target_ok and rows else 'FAIL'}")


def calibrate(args) -> None:
    archs = [("imagenet", "efficientnet_lite0"), ("imagenet", "squeezenet1_1"),
             ("imagenet", "resnet18"), ("imagenet", "resnet50"), ("mnist", "small_cnn"),
             ("gtsrb", "cnn3"), ("flowers102", "cnn5")]
    if args.arch:
        archs = [tuple(a.split("/")) for a in args.arch]
    print(f"{args.threads} thread(s); MB and s per input row (slope between "
          f"{args.rows[0]} and {args.rows[1]} rows), fixed MB over the loaded model")
    for dataset, arch in archs:
        fig = {}
        for kind in ("real", "surrogate", "double"):
            r = [run_case(dict(kind="calibrate", dataset=dataset, arch=arch, rows=k,
                               what=kind, threads=args.threads), args.max_rss_gb)
                 for k in args.rows]
            if any("error" in x for x in r):
                print(f"{dataset}/{arch} {kind}: {[x.get('error') for x in r]}", flush=True)
                continue
            d = args.rows[1] - args.rows[0]
            inc = [x["peak_mb"] - x["base_mb"] for x in r]
            slope = (inc[1] - inc[0]) / d
            fig[kind] = (round(slope, 1), round(inc[0] - slope * args.rows[0], 1),
                         round((r[1]["s"] - r[0]["s"]) / d, 4), round(r[0]["base_mb"]))
        print(f"{dataset}/{arch}: " + json.dumps(fig), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sg-samples", type=int, default=50)
    ap.add_argument("--ig-steps", type=int, default=50)
    ap.add_argument("--before-n", type=int, nargs="+", default=[5, 10])
    ap.add_argument("--attack-steps", type=int, default=2)
    ap.add_argument("--max-rss-gb", type=float, default=8.0)
    ap.add_argument("--calibrate", action="store_true")
    ap.add_argument("--arch", nargs="*", help="calibrate only these dataset/arch")
    ap.add_argument("--rows", type=int, nargs=2, default=[1, 3])
    args = ap.parse_args()
    if args.child:
        case = json.loads(args.child)
        if case["kind"] == "calibrate":
            case["kind"] = case.pop("what")
            print(json.dumps(_child_calibrate(case)))
        else:
            print(json.dumps(_child_attack(case)))
        return
    calibrate(args) if args.calibrate else bench(args)


if __name__ == "__main__":
    main()
