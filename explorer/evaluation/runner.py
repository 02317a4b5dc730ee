"""Running a batch evaluation: attack and measure each unit, on one process or many.

:func:`evaluate_unit` attacks one batch and returns one row per image (the columns of
:mod:`explorer.evaluation.schema`). :func:`run` resolves a configuration, deals the pending units
out and writes them into the results folder (:mod:`explorer.evaluation.folder`), or keeps the
rows in memory.

Scale-out: under ``torchrun --nproc_per_node=N -m explorer evaluate ...`` (or any launcher that
sets ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``) the pending units are dealt
round-robin to the processes (gloo on CPU; NCCL with one GPU per process, ``cuda:LOCAL_RANK``).
Each process writes its units' files into the shared results folder; rank 0 merges them after a
barrier. The folder must be on a file system every process sees (one machine, or a shared
mount).
"""

from __future__ import annotations

import datetime as _dt
import os
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import pandas as pd
import torch

from .. import chance, metrics
from .. import device as device_choice
from ..attacks import attack as run_attack
from ..attributions import attribution_map
from . import folder as results
from .backend import Backend, RegistryBackend
from .plan import EvalConfig, Plan, resolve_config
from .schema import extra_column, metric_column, typed_frame
from .units import Unit, plan_units, unit_cost, unit_seed

__all__ = ["Dist", "RunContext", "evaluate_unit", "run"]

Progress = Callable[[int, int, str], Any]


# --------------------------------------------------------------------------------------------
# One unit
# --------------------------------------------------------------------------------------------

def _exact_keys(w: int) -> tuple[str, ...]:
    """The metric keys whose permutation chance level is exact at radius ``w``."""
    if w == 0:
        return tuple(k for k in metrics.METRIC_KEYS if k != "center_shift")
    return tuple(k for k in ("topk_intersection", "lens_recall", "lens_precision", "spearman",
                             "kendall") if k in metrics.METRICS)


def _unrelated_by_k(map_orig, ks, w: int, pairs) -> list[dict[str, torch.Tensor]]:
    """The unrelated-image scores of every metric at each k of ``ks`` (one dict per k; empty
    without pairs): the set metrics of all k in one pass, the correlations and the centre
    shift, which do not depend on k, once."""
    if pairs is None:
        return [{} for _ in ks]
    _, sets = chance.unrelated_scores_over_k(map_orig, ks, w, pairs=pairs)
    _, rest = chance.unrelated_scores(map_orig, ks[0], w, pairs=pairs,
                                      keys=metrics.RANK_METRIC_KEYS)
    return [{**{key: v[j] for key, v in sets.items()}, **rest} for j in range(len(ks))]


def _scores(plan: Plan, dplan, map_orig, map_adv, seed: int) -> dict[str, torch.Tensor]:
    """Every metric, set count and chance column of the attacked images, ``{column: (m,)}``."""
    values: dict[str, torch.Tensor] = {}
    m = map_orig.shape[0]
    nan = torch.full((m,), float("nan"), dtype=torch.float64)
    pairs = chance.derangement(m, seed) if m >= 2 else None
    for w in dplan.w:
        full = metrics.compare(map_orig, map_adv, dplan.k[0], w)
        if plan.columns_version != 1:  # the chance levels of every k of this w at once
            keys = metrics.METRIC_KEYS if plan.chance_mc else _exact_keys(w)
            perms = chance.permutation_chance_over_k(map_orig, map_adv, list(dplan.k), w,
                                                     seed=seed, keys=keys)
            unrels = _unrelated_by_k(map_orig, list(dplan.k), w, pairs)
        for j, k in enumerate(dplan.k):
            part = full if k == dplan.k[0] else {
                **metrics.set_metrics(map_orig, map_adv, k, w),
                **{key: full[key] for key in metrics.METRIC_KEYS
                   if key not in metrics.SET_METRIC_KEYS}}
            for key in metrics.METRIC_KEYS:
                values[metric_column(key, k, w)] = part[key].detach().double().cpu()
            if plan.columns_version == 1:
                continue
            for key, v in metrics.pair_set_counts(map_orig, map_adv, k, w).items():
                values[extra_column("count", key, k, w)] = v.double().cpu()
            perm, unrel = perms[j].values, unrels[j]
            for key in metrics.METRIC_KEYS:
                score = values[metric_column(key, k, w)]
                c = perm[key].double().cpu() if key in perm else nan
                values[extra_column("perm", key, k, w)] = c
                values[extra_column("unrel", key, k, w)] = (
                    unrel[key].double().cpu() if key in unrel else nan)
                values[extra_column("norm", key, k, w)] = chance.normalise(
                    score, c, metrics.METRICS[key].higher_is_better)
    return values


def evaluate_unit(unit: Unit, model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor,
                  indices: Sequence[int], plan: Plan,
                  step_callback: Callable[[int, int, float], Any] | None = None
                  ) -> list[dict[str, Any]]:
    """Attack the batch ``x`` ``(n, C, H, W)`` and measure it: one row dict per image.

    Unless ``plan.all_images``, only the correctly classified images (and those of unknown
    label) are attacked; the others get a row with ``attacked = False``, x' = x and empty
    score columns. The unrelated-image baseline pairs each attacked image with another attacked
    image of the batch (a derangement seeded by the unit's seed)."""
    dplan = plan.per_dataset[unit.dataset]
    mplan = plan.method_params[unit.method]
    seed = unit_seed(plan.seed, unit.dataset, plan.source, unit.start)
    n = x.shape[0]
    labels = labels.cpu()
    t0 = time.perf_counter()
    with torch.no_grad():
        logits = model(x)
    pred = logits.argmax(dim=1).cpu()
    conf = torch.softmax(logits.double(), dim=1).amax(dim=1).cpu()
    attacked = (torch.ones(n, dtype=torch.bool) if plan.all_images
                else (pred == labels) | (labels < 0))
    sel = torch.nonzero(attacked).flatten()
    res, values = None, {}
    if sel.numel():
        xs = x[sel.to(x.device)]
        res = run_attack(model, xs, method=unit.method, method_params=dict(mplan.attack),
                         attack=unit.attack, epsilon=unit.epsilon, step_size=dplan.step_size,
                         steps=dplan.steps, attack_k=dplan.attack_k, w=dplan.attack_w,
                         select_k=dplan.select_k,
                         measure=plan.measure, beta=plan.beta, seed=seed,
                         restarts=plan.restarts, progress=step_callback)
        map_orig, map_adv = res.map_orig, res.map_adv
        if mplan.attack != mplan.report:
            # The attack loop used cheaper method parameters: re-measure x and x' with the
            # reported ones.
            target = res.label_orig
            map_orig = attribution_map(model, xs, unit.method, dict(mplan.report), target=target)
            map_adv = attribution_map(model, res.x_adv, unit.method, dict(mplan.report),
                                      target=target)
    t1 = time.perf_counter()
    if res is not None:
        values = _scores(plan, dplan, map_orig, map_adv, seed)
        deg_o = metrics.is_degenerate(map_orig).cpu()
        deg_a = metrics.is_degenerate(map_adv).cpu()
        hist = res.history.detach().double().cpu()
        found = res.found.cpu()
        best_step = (res.best_step.cpu() if res.best_step is not None
                     else torch.zeros(sel.numel(), dtype=torch.long))
        restart = (res.best_restart.cpu() if res.best_restart is not None
                   else torch.zeros(sel.numel(), dtype=torch.long))
        noise = (res.noise_won.cpu() if res.noise_won is not None
                 else torch.zeros(sel.numel(), dtype=torch.bool))
        flips = (res.flip_share.double().cpu() if res.flip_share is not None
                 else torch.full((sel.numel(),), float("nan"), dtype=torch.float64))
    t2 = time.perf_counter()
    pos = {int(i): j for j, i in enumerate(sel.tolist())}
    rows = []
    for i in range(n):
        row = {
            "dataset": unit.dataset, "model": unit.model, "method": unit.method,
            "attack": unit.attack, "epsilon": unit.epsilon, "image": int(indices[i]),
            "batch": unit.batch, "seed": seed, "label": int(labels[i]),
            "pred_orig": int(pred[i]), "conf_orig": float(conf[i]),
            "correct": int(pred[i]) == int(labels[i]),
        }
        j = pos.get(i)
        if j is None:  # not attacked: x' = x, nothing measured
            row.update({"pred_adv": int(pred[i]), "conf_adv": float(conf[i]),
                        "label_kept": True, "found": False, "linf": 0.0, "best_step": 0,
                        "steps_run": 0, "sel_start": float("nan"), "sel_best": float("nan"),
                        "degenerate_orig": False, "degenerate_adv": False, "attacked": False,
                        "restart_won": -1, "noise_won": False, "flip_share": float("nan")})
        else:
            row.update({
                "pred_orig": int(res.label_orig[j]), "conf_orig": float(res.conf_orig[j]),
                "correct": int(res.label_orig[j]) == int(labels[i]),
                "pred_adv": int(res.label_adv[j]), "conf_adv": float(res.conf_adv[j]),
                "label_kept": bool(res.label_kept[j]), "found": bool(found[j]),
                "linf": float(res.linf[j]), "best_step": int(best_step[j]),
                "steps_run": int(res.steps_run), "sel_start": float(hist[j, 0]),
                "sel_best": float(hist[j, -1]), "degenerate_orig": bool(deg_o[j]),
                "degenerate_adv": bool(deg_a[j]), "attacked": True,
                "restart_won": int(restart[j]) if bool(found[j]) else -1,
                "noise_won": bool(noise[j]) and bool(found[j]),
                "flip_share": float(flips[j])})
            for col, v in values.items():
                row[col] = float(v[j])
        row["attack_s"] = (t1 - t0) / n
        row["metrics_s"] = (t2 - t1) / n
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------------
# Distributed context
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Dist:
    """This process's place in a torch.distributed run (rank 0 of 1 when there is none);
    ``owned``: this run created the process group and destroys it at the end."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owned: bool = False
    active: bool = False

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank."""
        if not self.active:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.owned and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _device_for(requested: str, local_rank: int) -> str:
    """The device of this process (chosen by :func:`explorer.device.choose`)."""
    return device_choice.choose(requested, local_rank=local_rank)


def _init_dist(device_request: str) -> tuple[Dist, str]:
    dist = torch.distributed
    world_env = int(os.environ.get("WORLD_SIZE", "1"))
    if dist.is_available() and dist.is_initialized():
        ctx = Dist(dist.get_rank(), dist.get_world_size(),
                   int(os.environ.get("LOCAL_RANK", dist.get_rank())), False, True)
        return ctx, _device_for(device_request, ctx.local_rank)
    if world_env > 1:
        if not dist.is_available():
            raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = _device_for(device_request, local_rank)
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if device.startswith("cuda"):
            torch.cuda.set_device(torch.device(device))
        dist.init_process_group(backend, timeout=_dt.timedelta(hours=48))
        return Dist(dist.get_rank(), dist.get_world_size(), local_rank, True, True), device
    return Dist(), _device_for(device_request, 0)


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunContext:
    """Everything one invocation of :func:`run` works with. ``folder`` None keeps the rows in
    memory; ``started`` is the invocation's start (``time.time()``), ``run_id`` its id in the
    run log and the lock."""

    config: EvalConfig
    plan: Plan
    units: tuple[Unit, ...]
    folder: Path | None
    backend: Backend
    dist: Dist
    device: str
    progress: bool | Progress
    command: str
    started: float
    run_id: str


def run(config: EvalConfig, out_dir=None, *, backend: Backend | None = None,
        device: str = "auto", progress: bool | Progress = True,
        command: str = "") -> pd.DataFrame | None:
    """Run (or resume) the evaluation of ``config``.

    ``out_dir``: the results folder (created, or resumed when it holds the same configuration).
    None keeps the rows in memory (single process only; the app's live sweeps). ``progress``:
    True for a tqdm bar (rank 0), False for none, or a callable ``(rows_done, rows_total, text)``.
    Returns the merged rows as a DataFrame on rank 0 (all rows, resumed ones included), None on
    the other ranks.
    """
    backend = backend or RegistryBackend()
    plan = resolve_config(config, backend)
    units = tuple(plan_units(plan))
    if out_dir is None:
        dist, dev = Dist(), _device_for(device, 0)
    else:
        dist, dev = _init_dist(device)
    try:
        ctx = RunContext(config, plan, units, None if out_dir is None else Path(out_dir),
                         backend, dist, dev, progress, command, time.time(),
                         uuid.uuid4().hex[:12])
        return _run(ctx)
    finally:
        dist.close()


def _run(ctx: RunContext) -> pd.DataFrame | None:
    folder, dist = ctx.folder, ctx.dist
    if folder is not None:
        error = None
        if dist.rank == 0:
            try:
                results.prepare_folder(folder, ctx.config, ctx.plan, ctx.command)
                results.acquire_lock(folder, ctx.run_id)
                results.discard_partial_writes(folder)
            except (ValueError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}" if isinstance(exc, OSError) else str(exc)
        error = dist.broadcast(error)
        if error is not None:
            raise results.ConfigMismatch(error)
    try:
        return _work(ctx)
    finally:
        if folder is not None and dist.rank == 0:
            results.release_lock(folder, ctx.run_id)


def _progress_bar(ctx: RunContext, mine: list[Unit], done: set[str]):
    """The tqdm bar of rank 0 (None when not asked for or nothing to do)."""
    if callable(ctx.progress) or not ctx.progress or ctx.dist.rank != 0 or not mine:
        return None
    from tqdm.auto import tqdm  # tqdm.auto probes for notebook widgets (~0.2 s): CLI bar only

    # The bar advances by estimated work (so the ETA holds when cheap random-noise batches
    # come before 100-step attacks) and shows rows done beside it.
    world = ctx.dist.world
    bar = tqdm(total=sum(unit_cost(u, ctx.plan) for u in mine), dynamic_ncols=True,
               smoothing=0.02, mininterval=1.0,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}",
               desc=f"evaluate ({world} proc)" if world > 1 else "evaluate")
    if done:
        bar.write(f"resuming: {len(done)} of {len(ctx.units)} batches already done in "
                  f"{ctx.folder}")
    return bar


def _work(ctx: RunContext) -> pd.DataFrame | None:
    folder, dist, plan = ctx.folder, ctx.dist, ctx.plan
    if folder is not None:
        done = results.done_units(folder, list(ctx.units))
        if dist.rank == 0:
            results.append_run_log(folder, {
                "event": "start", "run": ctx.run_id, "time": ctx.started,
                "world_size": dist.world, "threads": torch.get_num_threads(),
                "device": ctx.device, "command": ctx.command, "units_total": len(ctx.units),
                "units_done_before": len(done)})
    else:
        done = set()
    pending = [u for u in ctx.units if u.name not in done]
    mine = pending[dist.rank::dist.world]

    total_rows = sum(u.n for u in mine)
    bar = _progress_bar(ctx, mine, done)
    report: Progress | None = ctx.progress if callable(ctx.progress) else None
    model_cache: dict[tuple[str, str], torch.nn.Module] = {}
    image_cache: dict[str, tuple] = {}
    memory_rows: list[dict] = []
    rows_done = 0
    for unit in mine:
        key = (unit.dataset, unit.model)
        if key not in model_cache:
            model_cache.clear()  # one model at a time: units are ordered by (dataset, model)
            model_cache[key] = ctx.backend.load_model(unit.dataset, unit.model, ctx.device).eval()
        if unit.dataset not in image_cache:
            image_cache.clear()
            off = plan.image_offset
            image_cache[unit.dataset] = ctx.backend.load_images(
                unit.dataset, plan.source, off, off + plan.n_images)
        xs, ys, idx = image_cache[unit.dataset]
        x = xs[unit.start:unit.stop].to(ctx.device)
        text = f"{unit.dataset}/{unit.model}/{unit.method}/{unit.attack} ε={unit.epsilon:.4g}"

        cost = unit_cost(unit, plan)
        advanced = [0.0]

        def on_step(step, total, best, _text=text, _cost=cost, _done=rows_done):
            if bar is not None:
                target = 0.95 * _cost * step / total  # the metrics take the last share
                bar.update(target - advanced[0])
                advanced[0] = target
                bar.set_postfix_str(f"rows {_done}/{total_rows} · {_text} step {step}/{total}",
                                    refresh=False)
            return None

        rows = evaluate_unit(unit, model_cache[key], x, ys[unit.start:unit.stop],
                             idx[unit.start:unit.stop], plan, on_step)
        if folder is not None:
            results.write_unit(folder, unit, rows, plan)
        else:
            memory_rows.extend(rows)
        rows_done += unit.n
        if bar is not None:
            bar.update(cost - advanced[0])
            bar.set_postfix_str(f"rows {rows_done}/{total_rows} · {text} done", refresh=False)
        if report is not None:
            report(rows_done, total_rows, text)
    if bar is not None:
        bar.close()

    if folder is None:
        return typed_frame(pd.DataFrame(memory_rows))
    return _finish(ctx, len(pending))


def _finish(ctx: RunContext, units_run: int) -> pd.DataFrame | None:
    """After every rank is done: rank 0 merges the rows, logs the end and loads the rows."""
    ctx.dist.barrier()
    result = None
    if ctx.dist.rank == 0:
        merged = results.merge(ctx.folder, list(ctx.units), ctx.plan)
        ended = time.time()
        results.append_run_log(ctx.folder, {
            "event": "end", "run": ctx.run_id, "time": ended,
            "wall_s": round(ended - ctx.started, 3), "world_size": ctx.dist.world,
            "units_run": units_run, "units_total": len(ctx.units)})
        result = results.load_results(ctx.folder)
        if ctx.progress is True:
            print(f"{len(result)} rows in {merged} ({ended - ctx.started:.1f} s this run)",
                  file=sys.stderr)
    ctx.dist.barrier()
    return result
