"""Cost of the chance levels, and the chance levels of the shipped natural MNIST model.

Timings (one torch thread, interleaved rounds, best and median round):
  - permutation_chance for one 28×28 pair (Simple Gradients maps of two bundled MNIST samples,
    k = 100, w = 1 and 3): every key, and each group of keys alone (the exact set metrics, the
    three diverse variants, w-LENS-Spearman, w-LENS-Kendall, the centre shift), since the app's
    fragment asks again on every k or w move (100 ms budget for MNIST);
  - permutation_chance for one 224×224 pair (the gradient-like pair of bench_metrics.py,
    k = 1000, w = 3);
  - unrelated_baseline over the maps of 10 bundled samples (90 ordered pairs, k = 100, w = 1).

--curves: the set metrics and their chance levels at the 9 values of k of the app's chart
against k (k = 100 on 28×28), one call per k against one call for all k (explorer/set_curves.py),
side by side in interleaved rounds, with the ratio; the per-pair way (two diverse walks per
pair and per k, as before each map's ranks were shared) too.

--observation: the unrelated-image baseline and the permutation chance levels over the 200
bundled MNIST test samples (shipped natural model, Simple Gradients, k = 100, w = 1 and 3), the
figures of the "Chance levels" section of docs/metrics.md.

Usage: python benchmarks/bench_chance.py [--rounds 7] [--observation | --curves] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_metrics import saliency_like_pair  # noqa: E402

from explorer import attributions, chance, data, models, set_curves  # noqa: E402
from explorer import metrics as M  # noqa: E402

GROUPS = {
    "exact set metrics (top-k, LENS-recall, LENS-prec)": ["topk_intersection", "lens_recall",
                                                          "lens_precision"],
    "diverse variants (Monte-Carlo)": ["topk_div_intersection", "lens_recall_div",
                                       "lens_precision_div"],
    "w-LENS-Spearman (Monte-Carlo)": ["lens_spearman"],
    "w-LENS-Kendall (Monte-Carlo)": ["lens_kendall"],
    "centre shift (Monte-Carlo)": ["center_shift"],
    "every key": None,
    "k move (the set metrics)": list(M.SET_METRIC_KEYS),
}


def mnist_maps(n: int, device: str) -> torch.Tensor:
    model = models.load("mnist", "natural", device=device)
    x = data.load_samples("mnist").x[:n].to(device)
    return attributions.attribution_map(model, x, "saliency").detach()


def timed(f) -> tuple[float, float]:
    """(wall ms, CPU ms of this process): on a shared machine the CPU time is the steadier
    figure (the wall time also counts the time other jobs hold the cores)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t, c = time.perf_counter(), time.process_time()
    f()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000


def bench(rounds: int, device: str) -> None:
    maps = mnist_maps(10, device)
    a224, b224 = (t.to(device) for t in saliency_like_pair())
    cases = {}
    for w in (1, 3):
        for name, keys in GROUPS.items():
            cases[f"28×28, k = 100, w = {w}: {name}"] = (
                lambda keys=keys, w=w: chance.permutation_chance(maps[0], maps[1], 100, w,
                                                                 keys=keys))
    cases["224×224, k = 1000, w = 3: every key"] = (
        lambda: chance.permutation_chance(a224, b224, 1000, 3))
    cases["224×224, k = 1000, w = 3: exact set metrics"] = (
        lambda: chance.permutation_chance(a224, b224, 1000, 3, keys=GROUPS[
            "exact set metrics (top-k, LENS-recall, LENS-prec)"]))
    cases["unrelated_baseline, 10 MNIST maps (90 pairs), k = 100, w = 1"] = (
        lambda: chance.unrelated_baseline(maps, 100, 1))
    cases["unrelated_baseline, 10 MNIST maps, set metrics only (keys=)"] = (
        lambda: chance.unrelated_baseline(maps, 100, 1, keys=list(M.SET_METRIC_KEYS)))
    for f in cases.values():  # warm-up: imports, caches of the seeded permutations
        f()
    times = {name: [] for name in cases}
    for _ in range(rounds):
        for name, f in cases.items():
            times[name].append(timed(f))
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, device {device}, load average "
          f"{os.getloadavg()[0]:.1f}, {rounds} rounds; (draws, rank_draws) = "
          f"{chance.default_draws(28 * 28)} on 28×28, {chance.default_draws(224 * 224)} on 224×224")
    print("| case | wall best | wall median | CPU best | CPU median |\n|---|---|---|---|---|")
    for name, ts in times.items():
        wall, cpu = [t[0] for t in ts], [t[1] for t in ts]
        print(f"| {name} | {min(wall):.1f} ms | {statistics.median(wall):.1f} ms | "
              f"{min(cpu):.1f} ms | {statistics.median(cpu):.1f} ms |")


# The app's k grid on 28×28 with k = 100 (explorer.ui.stages.k_grid(784, 100); written out here
# because the benchmarks do not import the Streamlit pages).
CHART_KS = (4, 8, 15, 29, 55, 100, 106, 204, 392)


def curves(rounds: int, device: str) -> None:
    maps = mnist_maps(10, device)
    pairs = chance.all_pairs(10)
    sets = list(M.SET_METRIC_KEYS)
    diverse = ["topk_div_intersection", "lens_recall_div", "lens_precision_div"]
    rows = []
    for w in (1, 3):
        rows.append((f"unrelated level, 90 pairs, w = {w}", {
            "per pair and per k (set_metrics of the 90 pairs)": lambda w=w: [
                M.set_metrics(maps[pairs[:, 0]], maps[pairs[:, 1]], k, w) for k in CHART_KS],
            "per k (unrelated_scores: each map's ranks)": lambda w=w: [
                chance.unrelated_scores(maps, k, w, keys=sets) for k in CHART_KS],
            "all k at once (unrelated_scores_over_k)": lambda w=w: chance.unrelated_scores_over_k(
                maps, CHART_KS, w)}))
        rows.append((f"permutation level, diverse variants, 64 draws, w = {w}", {
            "per k (permutation_chance)": lambda w=w: [
                chance.permutation_chance(maps[0], maps[1], k, w, keys=diverse, draws=64)
                for k in CHART_KS],
            "all k at once (permutation_chance_over_k)": lambda w=w: (
                chance.permutation_chance_over_k(maps[0], maps[1], CHART_KS, w, keys=diverse,
                                                 draws=64))}))
        rows.append((f"one pair's set metrics, w = {w}", {
            "per k (set_metrics)": lambda w=w: [M.set_metrics(maps[0], maps[1], k, w)
                                                for k in CHART_KS],
            "all k at once (set_metrics_over_k)": lambda w=w: set_curves.set_metrics_over_k(
                maps[0], maps[1], CHART_KS, w)}))
    for _, cases in rows:
        for f in cases.values():
            f()  # warm-up
    times = {(title, name): [] for title, cases in rows for name in cases}
    for _ in range(rounds):
        for title, cases in rows:
            for name, f in cases.items():
                times[(title, name)].append(timed(f)[0])
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}, device {device}, load average {os.getloadavg()[0]:.1f}, "
          f"{rounds} rounds; k = {', '.join(map(str, CHART_KS))}")
    print("| case | way | wall best | wall median | median / all-at-once median |")
    print("|---|---|---|---|---|")
    for title, cases in rows:
        last = statistics.median(times[(title, list(cases)[-1])])
        for name in cases:
            ts = times[(title, name)]
            print(f"| {title} | {name} | {min(ts):.1f} ms | {statistics.median(ts):.1f} ms | "
                  f"{statistics.median(ts) / last:.1f}× |")


def observation(device: str) -> None:
    maps = mnist_maps(200, device)
    pairs = chance.random_pairs(200, 2000, seed=0)
    print("200 bundled MNIST test samples, natural model, Simple Gradients, k = 100; "
          "unrelated baseline over 2000 random ordered pairs; permutation chance averaged over "
          "the first 100 of them (each pair: (draws, rank_draws) = "
          f"{chance.default_draws(28 * 28)})")
    for w in (1, 3):
        base = chance.unrelated_baseline(maps, 100, w, pairs=pairs)
        sub = pairs[:100]
        perm = chance.permutation_chance_detail(maps[sub[:, 0]], maps[sub[:, 1]], 100, w)
        counts = M.set_counts(maps, 100, w)
        print(f"\nw = {w}: |D_k| mean {counts['diverse_count'].double().mean():.1f} "
              f"(min {int(counts['diverse_count'].min())}, max "
              f"{int(counts['diverse_count'].max())}); zeros in S_k: "
              f"{int(counts['topk_zeros'].sum())} in all; |N_w(S_k)| mean "
              f"{M.dilate(M.topk_mask(maps, 100), w).sum(dim=(1, 2)).double().mean():.0f}")
        print("| metric | unrelated mean | std | 5th–95th pct | permutation chance "
              "(mean over pairs) | its MC s.e. |\n|---|---|---|---|---|---|")
        for key in M.METRIC_KEYS:
            b = base[key]
            c = perm.values[key].double()
            se = perm.se[key].double().mean()
            print(f"| {M.METRICS[key].name} | {b.mean:.3f} | {b.std:.3f} | "
                  f"{b.p05:.3f}–{b.p95:.3f} | {c.nanmean():.3f} | "
                  f"{'exact' if perm.method[key] == 'closed form' else f'{se:.4f}'} |")


def ig_bookkeeping(device: str) -> None:
    """Zero-valued ties and |D_k| of Integrated Gradients maps (first 20 bundled samples)."""
    model = models.load("mnist", "natural", device=device)
    x = data.load_samples("mnist").x[:20].to(device)
    maps = attributions.attribution_map(model, x, "integrated_gradients").detach()
    nonzero = (maps > 0).sum(dim=(1, 2))
    print(f"\nIntegrated Gradients, first 20 bundled samples, k = 100: non-zero pixels "
          f"{int(nonzero.min())}–{int(nonzero.max())} of 784")
    for w in (1, 3):
        c = M.set_counts(maps, 100, w)
        print(f"w = {w}: zeros in S_k {int(c['topk_zeros'].min())}–{int(c['topk_zeros'].max())}, "
              f"zeros in D_k {int(c['diverse_zeros'].min())}–{int(c['diverse_zeros'].max())}, "
              f"|D_k| {int(c['diverse_count'].min())}–{int(c['diverse_count'].max())}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--device", default="cpu")
    p.add_argument("--observation", action="store_true")
    p.add_argument("--curves", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.curves:
        curves(args.rounds, args.device)
    elif args.observation:
        observation(args.device)
        ig_bookkeeping(args.device)
    else:
        bench(args.rounds, args.device)


if __name__ == "__main__":
    main()
