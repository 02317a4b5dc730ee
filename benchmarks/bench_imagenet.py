"""ImageNet attack speed on the CPU: the surrogate's earlier construction against the fast one.

Top-k attack, Simple Gradients, on the shipped ImageNet model (EfficientNet-Lite0, 224×224) and
one bundled ImageNet sample (assets/imagenet/). One attack step is one double backward through
the smooth surrogate (its map with ``create_graph=True``, the top-k loss, the gradient with
respect to the input) plus one real-model evaluation (forward + backward: the real map and the
label). Printed, measured side by side in one run, with rounds interleaved so that load changes
hit both paths alike (each figure is the median of its rounds):

1. the surrogate step and the evaluation, per path (``smooth_model(..., fast=False)`` is the
   earlier construction, ``fast=True`` the default), and the ratio;
2. ``--attack-steps`` steps of the real ``explorer.attacks.attack`` per path (the earlier path by
   handing the attack ``smooth_model(..., fast=False)``), and the projected 100-step time
   (floor: under 30 s on the fast path).
3. per-step time of the other gradient methods on the fast path (``--methods``), for time
   estimates before a run.

    python benchmarks/bench_imagenet.py [--threads 2] [--rounds 3] [--attack-steps 5]
        [--channels-last] [--methods input_x_gradient,...] [--device cuda]

Run with ``OMP_WAIT_POLICY=PASSIVE`` on a shared machine when using two or more threads.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from explorer import attacks, data, models  # noqa: E402
from explorer.attributions import attribute_with_logits, to_map  # noqa: E402
from explorer.metrics import topk_mask  # noqa: E402
from explorer.surrogate import DEFAULT_BETA, smooth_model  # noqa: E402


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, repeat):
    """Median (wall time, process CPU time) of ``fn()`` over ``repeat`` runs.

    The CPU time (all threads of this process) is less sensitive to other jobs on a shared
    machine than the wall time: a descheduled thread does not count."""
    walls, cpus = [], []
    for _ in range(repeat):
        sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        sync(device)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def med(pairs):
    """Median wall and median CPU time of a list of (wall, cpu) pairs."""
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def full_attack(net, x, d, args) -> None:
    """Whole ``attacks.attack`` runs of ``--full-steps`` steps (the app's defaults: one restart
    with the random-sign candidate), wall and CPU time of each run; floor 30 s at 100 steps."""
    cfg = dict(method="saliency", attack="topk", epsilon=d.epsilon, step_size=d.step_size,
               steps=args.full_steps, attack_k=d.attack_k, w=d.w, beta=DEFAULT_BETA)
    attacks.attack(net, x, **{**cfg, "steps": 1})  # warm-up: first-call allocations
    print(f"\nwhole attack, {args.full_steps} steps, default path, {args.full_runs} runs:")
    for r in range(args.full_runs):
        load = os.getloadavg()[0]
        wall, cpu = timed(lambda: attacks.attack(net, x, **cfg), torch.device(args.device), 1)
        flag = "PASS" if wall * 100 / args.full_steps < 30 else "FAIL"
        print(f"   run {r + 1}: {wall:6.1f} s wall [{cpu:6.1f} s CPU] = "
              f"{wall / args.full_steps * 1e3:6.1f} ms/step (load before {load:.1f}, after "
              f"{os.getloadavg()[0]:.1f}) {flag} (floor 30 s per 100 steps)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=2, help="timings per quantity per round")
    ap.add_argument("--attack-steps", type=int, default=5)
    ap.add_argument("--channels-last", action="store_true",
                    help="also time the fast path with the real model in channels-last memory "
                         "format (the fast surrogate's own copy is channels-last already)")
    ap.add_argument("--methods", default="",
                    help="comma-separated further methods to time per step on the fast path")
    ap.add_argument("--full-steps", type=int, default=0,
                    help="only time whole attacks of this many steps on the default (fast) "
                         "path, as the app runs them (measured, not projected)")
    ap.add_argument("--full-runs", type=int, default=2, help="whole attacks timed (--full-steps)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    net = models.load("imagenet", "efficientnet_lite0", device=device)
    samples = data.load_samples("imagenet")
    x = samples.x[:1].to(device)
    d = data.get_dataset("imagenet").defaults
    with torch.no_grad():
        target = net(x).argmax(1)
    map0 = to_map(attribute_with_logits(net, x, "saliency", None, target, validate=False)[0])
    weight = topk_mask(map0, d.attack_k).to(map0.dtype)
    load = os.getloadavg()[0]
    print(f"model: imagenet/efficientnet_lite0; input: 1 bundled sample {tuple(x.shape[1:])}; "
          f"device {device}, {torch.get_num_threads()} threads; load average {load:.1f}; "
          f"top-k attack, saliency, ε={d.epsilon:.4g}, α={d.step_size:.4g}, k'={d.attack_k}, "
          f"β={DEFAULT_BETA}")

    if args.full_steps:
        full_attack(net, x, d, args)
        return

    paths = {"before (fast=False)": (net, smooth_model(net, DEFAULT_BETA, fast=False)),
             "after (fast=True)": (net, smooth_model(net, DEFAULT_BETA))}
    if args.channels_last:
        net_cl = models.load("imagenet", "efficientnet_lite0", device=device).to(
            memory_format=torch.channels_last)
        paths["after + channels-last"] = (net_cl, smooth_model(net_cl, DEFAULT_BETA))

    def surrogate_step(sur, method="saliency"):
        xt = x.detach().requires_grad_(True)
        attr, _ = attribute_with_logits(sur, xt, method, None, target, True, validate=False)
        loss = -(to_map(attr) * weight).sum()
        (g,) = torch.autograd.grad(loss, xt)
        return g

    def evaluation(model, method="saliency"):
        attr, logits = attribute_with_logits(model, x, method, None, target, False,
                                             validate=False)
        if logits is None:
            with torch.no_grad():
                logits = model(x)
        return to_map(attr), logits.argmax(1)

    # The same input gradient on both paths (float rounding only).
    g_ref = surrogate_step(paths["before (fast=False)"][1])
    for name, (_, sur) in paths.items():
        g = surrogate_step(sur)
        rel = float((g - g_ref).abs().max() / g_ref.abs().max())
        agree = float((g.sign() == g_ref.sign()).float().mean())
        print(f"  {name}: max |Δ gradient| / max |gradient| = {rel:.2e}; "
              f"sign agreement {agree:.5f}")
        evaluation(paths[name][0])

    sur_t = {name: [] for name in paths}
    ev_t = {name: [] for name in paths}
    for r in range(args.rounds):
        for name, (model, sur) in paths.items():
            sur_t[name].append(timed(lambda: surrogate_step(sur), device, args.repeat))
            ev_t[name].append(timed(lambda: evaluation(model), device, args.repeat))
        print(f"   round {r + 1}/{args.rounds} done (load {os.getloadavg()[0]:.1f})", flush=True)
    print("\n1. one attack step (median of rounds; wall time, and CPU time in brackets):")
    base = base_cpu = None
    for name in paths:
        (s, sc), (e, ec) = med(sur_t[name]), med(ev_t[name])
        base, base_cpu = base or (s + e), base_cpu or (sc + ec)
        print(f"   {name:24s} surrogate step {s * 1e3:7.1f} ms [{sc * 1e3:7.1f}] + evaluation "
              f"{e * 1e3:6.1f} ms [{ec * 1e3:6.1f}] = {(s + e) * 1e3:7.1f} ms "
              f"[{(sc + ec) * 1e3:7.1f}] -> {base / (s + e):.2f}x [{base_cpu / (sc + ec):.2f}x]; "
              f"100 steps ≈ {100 * (s + e):.1f} s [{100 * (sc + ec):.1f} s]")

    # ---- 2. the real attack, n steps, per path ----------------------------------------------
    cfg = dict(method="saliency", attack="topk", epsilon=d.epsilon, step_size=d.step_size,
               steps=args.attack_steps, attack_k=d.attack_k, w=d.w, beta=DEFAULT_BETA)
    real = attacks.smooth_model
    att_t = {name: [] for name in paths}
    try:
        for _ in range(args.rounds):
            for name, (model, _) in paths.items():
                attacks.smooth_model = functools.partial(real, fast=not name.startswith("before"))
                att_t[name].append(timed(lambda: attacks.attack(model, x, **cfg), device, 1))
    finally:
        attacks.smooth_model = real
    print(f"\n2. explorer.attacks.attack, {args.attack_steps} steps (median of rounds; includes "
          "building the surrogate and the original map; CPU time in brackets):")
    base = None
    for name in paths:
        t, c = med(att_t[name])
        base = base or t
        per, per_c = t / args.attack_steps, c / args.attack_steps
        proj = 100 * per
        flag = ("PASS" if proj < 30 else "FAIL") if not name.startswith("before") else ""
        print(f"   {name:24s} {t:7.2f} s [{c:7.2f}] = {per * 1e3:7.1f} ms/step "
              f"[{per_c * 1e3:7.1f}] -> {base / t:.2f}x; projected 100 steps {proj:6.1f} s "
              f"[{100 * per_c:6.1f} s] {flag}")

    # ---- 3. other methods, fast path ---------------------------------------------------------
    model, sur = paths["after (fast=True)"]
    for method in [m for m in args.methods.split(",") if m]:
        (s, sc), (e, ec) = (timed(lambda: surrogate_step(sur, method), device, args.repeat),
                            timed(lambda: evaluation(model, method), device, args.repeat))
        print(f"3. {method}: surrogate step {s * 1e3:.1f} ms [{sc * 1e3:.1f}] + evaluation "
              f"{e * 1e3:.1f} ms [{ec * 1e3:.1f}] = {(s + e) * 1e3:.1f} ms/step "
              f"[{(sc + ec) * 1e3:.1f}]; 100 steps ≈ {100 * (s + e):.1f} s [{100 * (sc + ec):.1f} s]")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
