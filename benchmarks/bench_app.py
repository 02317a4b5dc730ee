"""App benchmarks: fragment rerun, first load, memory growth.

    python benchmarks/bench_app.py                  # all three parts
    python benchmarks/bench_app.py --part fragment  # k / w fragment, server side
    python benchmarks/bench_app.py --part firstload # cold process -> first maps (AppTest)
    python benchmarks/bench_app.py --part memory    # RSS growth, 200 slider moves + 20 attacks

*fragment*: what a k or w move costs on the server: the metric table (one batched
``metrics.compare`` of the attack and random-sign pairs), the overlap masks, the table HTML and
the open tab's figure serialised to JSON (what ``st.plotly_chart`` sends), with every cache
missed (each move uses a k not seen before). Real maps: the shipped MNIST model and
EfficientNet-Lite0 on a bundled 224×224 photo. Target: < 100 ms for the 224×224 pair.
*firstload*: a fresh Python process imports and runs the app (AppTest) until the first maps and
scores are on the page. Targets: < 10 s MNIST, < 20 s ImageNet.
*memory*: resident memory of one app process after the first page, then after 20 attacks and
200 k-slider moves (full reruns, every one a cache miss). Target: growth < 300 MB.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# ------------------------------------------------------------------------------------ fragment

def _pair(dataset: str, model: str, sample: int = 0):
    """(original map, attacked-stand-in map, random-sign map) as numpy, from the real library.

    The 'attacked' map is a 10-step top-k attack for MNIST; for ImageNet (where a step costs
    seconds on a CPU) it is a 2-step one.
    """
    import torch

    from explorer import attacks, attributions, data, models

    net = models.load(dataset, model)
    x = data.load_samples(dataset).x[sample:sample + 1]
    d = data.DATASETS[dataset].defaults
    a = attributions.attribution_map(net, x)[0]
    steps = 10 if dataset != "imagenet" else 2
    adv = attacks.attack(net, x, attack="topk", epsilon=d.epsilon, step_size=d.step_size,
                         steps=steps, attack_k=d.attack_k, seed=0)
    rnd = attacks.attack(net, x, attack="random_sign", epsilon=d.epsilon, attack_k=d.attack_k,
                         seed=0)
    with torch.no_grad():
        return (a.numpy(), adv.map_adv[0].numpy(), rnd.map_adv[0].numpy(),
                x[0].numpy(), adv.x_adv[0].numpy(), adv.history[0].numpy())


def _fragment_once(panel, k: int, w: int, tab: str) -> dict[str, float]:
    """One k / w move as the fragment does it; returns the time of each part in ms. With
    ``panel.chance_source`` set, the table's chance levels (``chance_stages.table_chance``) and
    the charts' chance bands (``panels.chart_data``) are part of it, as on the explorer page."""
    import numpy as np
    import plotly.io as pio

    from explorer import viz, viz_charts
    from explorer.ui import chance_stages, panels, stages

    t = {}
    t0 = time.perf_counter()
    key, a, b = panels._stacked(panel.pairs)
    values = panels._per_pair(stages.scores(key, a, b, k, w), len(panel.pairs))
    t1 = time.perf_counter()
    cells = None
    if panel.chance_source is not None:
        first = panel.pairs[0]
        cells = chance_stages.table_chance(*panel.chance_source, first.key, first.a, first.b,
                                           k, w)
    tc = time.perf_counter()
    html = panels.metric_table_html(values, [p.label for p in panel.pairs], k=k, w=w,
                                    chance_cells=cells)
    t2 = time.perf_counter()
    shown = panel.pairs[0]
    m = stages.masks(shown.key, shown.a, shown.b, k, w) if tab in ("overlap", "diverse") else None
    t3 = time.perf_counter()
    if tab == "overlap":
        fig = viz.overlap_figure(shown.a, shown.b, m, k=k, w=w)
    elif tab == "diverse":
        fig = viz.diverse_figure(shown.a, shown.b, m, k=k, w=w, show_squares=True)
    elif tab == "history":
        fig = viz_charts.history_chart(panel.histories, measure="top-k intersection")
    else:  # "vs_w" / "vs_k": the chart's scores and chance bands (cache misses), its figure
        axis = tab[-1]
        xs, series, bands, title, marker = panels.chart_data(panel, k, w, axis,
                                                             panels.CHART_DEFAULT)
        fig = viz_charts.metric_lines(xs, series, x_title=title, marker_x=marker, log_x=axis == "k",
                               bands=bands)
    payload = pio.to_json(fig, validate=False)
    t4 = time.perf_counter()
    t.update(scores=(t1 - t0) * 1e3, chance=(tc - t1) * 1e3, table=(t2 - tc) * 1e3,
             masks=(t3 - t2) * 1e3, figure=(t4 - t3) * 1e3, total=(t4 - t0) * 1e3,
             bytes=len(payload) + len(html))
    assert np.isfinite(values[0]["topk_intersection"])
    return t


def bench_fragment(repeats: int, datasets=("mnist", "imagenet")) -> list[dict]:
    """Each (tab, move) case with and without the chance levels, the two measured in alternating
    moves (same k / w sequence) so that load changes hit both alike; the ratio is with/without."""
    import dataclasses

    from explorer.ui import background, chance_stages, headless, panels
    from explorer.ui.state import W_MAX, prefetch_ws

    headless.quiet_logs()
    out = []
    names = {"mnist": "natural", "imagenet": "efficientnet_lite0"}
    for dataset in datasets:
        model = names[dataset]
        a, b, r, x, x_adv, hist = _pair(dataset, model)
        h, w_ = a.shape
        plain = panels.PanelInput(
            dataset=dataset, height=h, width=w_,
            pairs=[panels.Pair("attack", f"bench-{dataset}-attack", a, b),
                   panels.Pair("random sign", f"bench-{dataset}-random", a, r)],
            histories={"attack": hist})
        with_chance = dataclasses.replace(
            plain, chance_source=((dataset, model, "cpu"), "saliency", ()))
        variants = {"without chance": plain, "with chance": with_chance}
        base_k = 100 if dataset == "mnist" else 1000
        store = background.rank_score_store()
        key, a_, b_ = panels._stacked(plain.pairs)
        for tab in ("overlap", "diverse", "vs_w", "vs_k", "history"):
            for move in ("k", "w", "w cold", "w prefetched"):
                if move != "k" and tab not in ("overlap", "vs_k"):
                    continue
                rows = {name: [] for name in variants}
                for name, panel in variants.items():
                    headless.clear_caches()
                    store.values.clear()
                    _fragment_once(panel, base_k, 1, tab)  # warm-up (imports, first allocations)
                for i in range(repeats):
                    # A k or w not seen by the scores cache, as for a new slider position; for
                    # "w" the rank correlations are not ready either (first visit of that w).
                    if move == "k":
                        k, w = base_k + 1 + i, 1
                    elif move in ("w", "w cold"):
                        k, w = base_k, 2 + i % 4
                    else:
                        k, w = base_k, (0, 2, 3, 4, 5)[i % 5]
                    for name, panel in variants.items():
                        headless.clear_caches()
                        store.values.clear()
                        chance_stages._LENS.values.clear()
                        # the unrelated-image maps are computed once per (model, method) by the
                        # app: keep them warm, as after the first view
                        _fragment_once(panel, base_k, 1, "history")
                        if move == "w prefetched":  # what the page does after drawing the table
                            ahead = prefetch_ws(1)  # the view before the move is at w = 1
                            background.prefetch_without_k(key, a_, b_, ahead)
                            if panel.chance_source is not None:
                                first = panel.pairs[0]
                                chance_stages.prefetch_lens(*panel.chance_source, first.key,
                                                            first.a, first.b, ahead)
                            while (any(store.get((key, wv)) is None for wv in ahead)
                                   or chance_stages._LENS.busy):
                                time.sleep(0.05)
                        elif move == "w" and panel.chance_source is not None:
                            # the pair's first visit of that w on a server that has shown this
                            # model and method before: the unrelated-image LENS levels of every
                            # w are there (the page's prefetch), the pair's numbers are not
                            first = panel.pairs[0]
                            chance_stages.prefetch_lens(*panel.chance_source, first.key, first.a,
                                                        first.b, (), unrelated_ws=range(W_MAX + 1))
                            while chance_stages._LENS.busy:
                                time.sleep(0.05)
                        _fragment_once(panel, base_k, 1, tab)  # the view before the move
                        rows[name].append(_fragment_once(panel, k, w, tab))
                meds = {}
                for name in variants:
                    med = {key: statistics.median(r[key] for r in rows[name])
                           for key in rows[name][0]}
                    best = min(r["total"] for r in rows[name])
                    meds[name] = med
                    out.append(dict(dataset=dataset, size=f"{h}x{w_}", tab=tab, move=move,
                                    variant=name, best_total=best, **med))
                    print(f"{dataset:9s} {h}x{w_} {move:>12s} move, tab={tab:8s} {name:15s} "
                          f"total median {med['total']:7.1f} ms, best {best:6.1f} ms  (median "
                          f"parts: scores {med['scores']:.1f}, chance {med['chance']:.1f}, "
                          f"masks {med['masks']:.1f}, table {med['table']:.1f}, figure+json "
                          f"{med['figure']:.1f}; {med['bytes'] / 1e3:.0f} kB)", flush=True)
                print(f"{'':9s} with/without chance: "
                      f"{meds['with chance']['total'] / meds['without chance']['total']:.2f}x",
                      flush=True)
    return out


# ----------------------------------------------------------------------------------- firstload

_FIRSTLOAD = r"""
import time, sys, json
t0 = float(sys.argv[1])
sys.path.insert(0, sys.argv[2])
import logging; logging.disable(logging.WARNING)
from explorer.ui.headless import open_app
at = open_app(sys.argv[3])
ok = any('class="xm-table"' in m.value for m in at.markdown) and not at.exception
print(json.dumps({"seconds": time.time() - t0, "ok": ok,
                  "errors": [e.value for e in at.error]}))
"""


def bench_firstload() -> list[dict]:
    out = []
    for dataset in ("mnist", "imagenet"):
        t0 = time.time()
        res = subprocess.run([sys.executable, "-c", _FIRSTLOAD, str(t0), str(ROOT), dataset],
                             capture_output=True, text=True, cwd=ROOT)
        line = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
        if not line:
            print(res.stdout[-2000:], res.stderr[-2000:])
            raise SystemExit(f"first-load run for {dataset} failed")
        r = json.loads(line[-1])
        out.append(dict(dataset=dataset, **r))
        print(f"first load {dataset:9s}: {r['seconds']:.1f} s (cold process -> first maps and "
              f"scores; ok={r['ok']}; errors={r['errors']})", flush=True)
    return out


# -------------------------------------------------------------------------------------- memory

def bench_memory(dataset: str, attacks_n: int, moves: int) -> dict:
    from explorer.ui import headless

    headless.quiet_logs()
    at = headless.open_app(dataset)
    assert not at.exception
    gc.collect()
    start = rss_mb()
    t0 = time.perf_counter()
    if dataset == "mnist":
        at.number_input(key=f"cfg.ap.{dataset}.topk.steps").set_value(10).run()
    else:  # a gradient attack step on ImageNet costs seconds on a CPU: random sign noise
        at.selectbox(key="cfg.attack").set_value("random_sign").run()
    for seed in range(attacks_n):
        at.number_input(key="cfg.seed").set_value(seed + 1).run()
        at.button(key="exp.run").click().run()
        assert not at.exception, at.exception
    after_attacks = rss_mb()
    slider = at.slider(key=f"cfg.k.{dataset}")
    hi = slider.max
    for i in range(moves):
        at.slider(key=f"cfg.k.{dataset}").set_value(1 + (i * 7919) % hi).run()
    assert not at.exception
    gc.collect()
    end = rss_mb()
    r = dict(dataset=dataset, start_mb=start, after_attacks_mb=after_attacks, end_mb=end,
             growth_mb=end - start, seconds=time.perf_counter() - t0)
    print(f"memory {dataset:9s}: {start:.0f} MB after first page -> {after_attacks:.0f} MB after "
          f"{attacks_n} attacks -> {end:.0f} MB after {moves} k moves: growth "
          f"{end - start:+.0f} MB ({r['seconds']:.0f} s)", flush=True)
    return r


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--part", choices=["fragment", "firstload", "memory", "all"], default="all")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--datasets", default="mnist,imagenet",
                   help="fragment part: comma-separated, of mnist and imagenet")
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    results: dict = {"threads": args.threads, "torch": torch.__version__}
    if args.part in ("fragment", "all"):
        results["fragment"] = bench_fragment(args.repeats, tuple(args.datasets.split(",")))
    if args.part in ("firstload", "all"):
        results["firstload"] = bench_firstload()
    if args.part in ("memory", "all"):
        results["memory"] = [bench_memory("mnist", 20, 200), bench_memory("imagenet", 20, 200)]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
