"""Batch evaluation: attack many images and record every SPEC §2 metric (issue 5).

One **row** per (image, dataset, model, method, attack, ε) holds the predictions before and after
the attack, whether the label held, ``‖x' − x‖∞``, timings, and every metric of
:data:`explorer.metrics.METRICS` for every requested ``(k, w)`` in **wide** columns named
``{metric}@k{k}_w{w}`` (e.g. ``topk_intersection@k100_w1``; see :func:`metric_column`). Metrics
that do not depend on ``k`` or ``w`` (Spearman, Kendall, centre shift; ``w`` for top-k
intersection) are repeated in each column of their family, so every (k, w) slice is complete on
its own. :func:`long_format` melts the table to one row per (row, metric, k, w).

Work is cut into **units**: one batch of ``batch_size`` consecutive images for one (dataset,
model, method, attack, ε). Batch boundaries are fixed by the image positions
(``[b·B, (b+1)·B)``), never by the number of processes, and the random seed of a unit
(:func:`unit_seed`) depends only on the configuration seed, the dataset, the image source and the
batch's first image. So a unit computes the same rows whichever process runs it, and a run split
over any number of processes gives the rows of a single-process run.

A results folder holds::

    config.json     the exact configuration (what it was asked) and its resolution per dataset
                    (paper ε, k, α, P filled in, method parameters with defaults)
    rows/*.csv      one file per finished unit, written to a temporary name and renamed: a file
                    is either complete or absent, so an interrupted run resumes at the first
                    missing unit without duplicates
    results.csv     all rows, merged in the canonical order when every unit is done
    runs.jsonl      one line per start and per end of an invocation (wall times, processes)

Scale-out: under ``torchrun --nproc_per_node=N -m explorer evaluate ...`` (or any launcher that
sets ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``) the pending units are dealt
round-robin to the processes (gloo on CPU; NCCL with one GPU per process, ``cuda:LOCAL_RANK``).
Each process writes its units' files into the shared results folder; rank 0 merges them after a
barrier. The folder must be on a file system every process sees (one machine, or a shared
mount).
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import math
import os
import re
import socket
import sys
import time
import uuid
import zlib
from dataclasses import asdict, dataclass, field, fields
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from . import metrics
from .attacks import ATTACKS, attack as run_attack
from .attributions import METHODS, attribution_map
from .params import resolve
from .surrogate import DEFAULT_BETA

__all__ = [
    "FORMAT",
    "EvalConfig",
    "Backend",
    "RegistryBackend",
    "Unit",
    "ResultsError",
    "ConfigMismatch",
    "metric_column",
    "parse_metric_column",
    "metric_columns",
    "BASE_COLUMNS",
    "TIMING_COLUMNS",
    "KEY_COLUMNS",
    "resolve_config",
    "plan_units",
    "unit_seed",
    "evaluate_unit",
    "run",
    "read_rows_csv",
    "load_results",
    "long_format",
    "export_compact",
    "parse_number",
    "parse_method_params",
]

FORMAT = "explorer-evaluate/1"
CONFIG_FILE = "config.json"
ROWS_DIR = "rows"
MERGED_FILE = "results.csv"
RUNS_FILE = "runs.jsonl"
SOURCES = ("test", "samples")
PAPER = "paper"

# Column -> type. The order is the order of the CSV files; metric columns follow, then timings.
BASE_COLUMNS: dict[str, type] = {
    "dataset": str, "model": str, "method": str, "attack": str, "epsilon": float,
    "image": int,            # index in the test set (source "test") or in the bundled samples
    "batch": int,            # batch number: images [batch·B, (batch+1)·B) of the selection
    "seed": int,             # seed given to the attack (random attacks) for this batch
    "label": int,            # true label (-1: unknown)
    "pred_orig": int, "conf_orig": float,   # prediction on x and its softmax probability
    "pred_adv": int, "conf_adv": float,     # prediction on the chosen x'
    "correct": bool,         # pred_orig == label
    "label_kept": bool, "found": bool,      # label held; a better label-preserving x' was found
    "linf": float,           # ‖x' − x‖∞ in [0, 1] pixel units
    "best_step": int, "steps_run": int,     # step of the chosen iterate (0: x itself)
    "sel_start": float, "sel_best": float,  # attack's selection measure at x and at x'
    "degenerate_orig": bool, "degenerate_adv": bool,  # map sums to 0 (no ranking)
}
TIMING_COLUMNS: dict[str, type] = {
    "attack_s": float,    # attack wall time of the batch / images in the batch
    "metrics_s": float,   # metric wall time of the batch / images in the batch
}
KEY_COLUMNS = ("dataset", "model", "method", "attack", "epsilon", "image")
_METRIC_COLUMN = re.compile(r"^(?P<key>[a-z_]+)@k(?P<k>\d+)_w(?P<w>\d+)$")


class ResultsError(ValueError):
    """A results file or folder cannot be read; the message names the file and the line."""


class ConfigMismatch(ValueError):
    """A results folder holds rows of a different configuration; the message lists the
    differences."""


# --------------------------------------------------------------------------------------------
# Columns
# --------------------------------------------------------------------------------------------

def metric_column(key: str, k: int, w: int) -> str:
    """Wide column name of metric ``key`` at ``(k, w)``: ``f"{key}@k{k}_w{w}"``."""
    return f"{key}@k{int(k)}_w{int(w)}"


def parse_metric_column(name: str) -> tuple[str, int, int] | None:
    """``(key, k, w)`` of a metric column, or None when ``name`` is not one."""
    m = _METRIC_COLUMN.match(name)
    if m is None or m.group("key") not in metrics.METRICS:
        return None
    return m.group("key"), int(m.group("k")), int(m.group("w"))


def metric_columns(ks: Sequence[int], ws: Sequence[int]) -> list[str]:
    """Every metric column for the (k, w) grid, k-major, then w, then METRIC_KEYS order."""
    return [metric_column(key, k, w) for k in ks for w in ws for key in metrics.METRIC_KEYS]


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------

def parse_number(text) -> float:
    """A float from ``0.3``, ``8/255`` or a number; ValueError saying what is accepted."""
    if isinstance(text, bool):
        raise ValueError(f"expected a number such as 0.3 or 8/255; got {text!r}")
    if isinstance(text, (int, float)):
        return float(text)
    s = str(text).strip()
    try:
        return float(Fraction(s)) if "/" in s else float(s)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"expected a number such as 0.3 or 8/255; got {text!r}") from None


def parse_method_params(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    """``["integrated_gradients.steps=100", ...]`` -> ``{"integrated_gradients": {"steps": 100}}``.

    Values are read as JSON when they parse (numbers, true/false), else kept as strings; the
    method's registry checks them later.
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items or ():
        m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)=(.*)$", str(item))
        if m is None:
            raise ValueError(f"method parameter {item!r} must look like METHOD.NAME=VALUE, e.g. "
                             "integrated_gradients.steps=100")
        method, name, raw = m.groups()
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r} in {item!r}; allowed: "
                             f"{', '.join(METHODS)}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(method, {})[name] = value
    return out


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate. Every list is crossed with every other (per dataset).

    ``eps`` / ``k`` entries are numbers or ``"paper"`` (the dataset's value from
    ``explorer.data.DATASETS[d].defaults``); ``steps``, ``step_size``, ``attack_k`` and
    ``attack_w`` default (None) to the dataset's paper values. ``method_params[m]`` sets the
    parameters of method ``m`` for the reported maps; ``attack_method_params[m]`` overrides some
    of them inside the attack loop (e.g. fewer Integrated-Gradients path steps while attacking:
    the chosen ``x'`` is then re-measured with the reported parameters). Images are the
    ``n_images`` consecutive items of the test set (``source="test"``) or of the bundled samples
    (``"samples"``) starting at ``image_offset``.
    """

    datasets: tuple[str, ...]
    models: tuple[str, ...] = ("natural", "pgd")
    methods: tuple[str, ...] = ("saliency",)
    attacks: tuple[str, ...] = ("random_sign", "topk", "mass_center")
    eps: tuple = (PAPER,)
    k: tuple = (PAPER,)
    w: tuple[int, ...] = (0, 1, 2, 3)
    n_images: int = 100
    source: str = "test"
    image_offset: int = 0
    batch_size: int = 50
    seed: int = 0
    steps: int | None = None
    step_size: float | None = None
    attack_k: int | None = None
    attack_w: int | None = None
    beta: float = DEFAULT_BETA
    measure: str = "topk_intersection"
    method_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    attack_method_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict:
        d = asdict(self)
        for key, value in d.items():
            if isinstance(value, tuple):
                d[key] = list(value)
        d["method_params"] = {m: dict(p) for m, p in self.method_params.items()}
        d["attack_method_params"] = {m: dict(p) for m, p in self.attack_method_params.items()}
        return d

    @classmethod
    def from_json(cls, d: Mapping) -> "EvalConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown configuration fields {sorted(unknown)}; allowed: "
                             f"{', '.join(sorted(names))}")
        kw = {key: (tuple(v) if isinstance(v, list) else v) for key, v in d.items()}
        return cls(**kw)


def _as_tuple(value, what: str) -> tuple:
    if isinstance(value, (str, int, float)):
        value = (value,)
    try:
        out = tuple(value)
    except TypeError:
        raise ValueError(f"{what} must be a list; got {value!r}") from None
    if not out:
        raise ValueError(f"{what} must not be empty")
    return out


def _check_names(values, allowed: Sequence[str], what: str) -> tuple[str, ...]:
    values = _as_tuple(values, what)
    bad = [v for v in values if v not in allowed]
    if bad:
        raise ValueError(f"unknown {what} {', '.join(repr(b) for b in bad)}; allowed: "
                         f"{', '.join(allowed)}")
    if len(set(values)) != len(values):
        raise ValueError(f"{what} lists a name twice: {list(values)}")
    return values


def _int_in(value, what: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int,)) and not (
            isinstance(value, float) and value.is_integer()):
        raise ValueError(f"{what} must be an integer >= {lo}; got {value!r}")
    value = int(value)
    if value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise ValueError(f"{what} must be an integer {rng}; got {value}")
    return value


def _unique(seq):
    out = []
    for v in seq:
        if v not in out:
            out.append(v)
    return out


def resolve_config(config: EvalConfig, backend: "Backend") -> dict:
    """Check ``config`` and fill in every default; returns the JSON-able resolution.

    Raises ``ValueError`` naming what is wrong and what is allowed (unknown dataset, model,
    method or attack names list the valid ones).
    """
    datasets = _check_names(config.datasets, list(backend.dataset_keys()), "dataset")
    methods = _check_names(config.methods, list(METHODS), "method")
    usable = [a for a, info in ATTACKS.items() if not info.needs_region]
    attacks = _as_tuple(config.attacks, "attack")
    for a in attacks:
        if a in ATTACKS and ATTACKS[a].needs_region:
            raise ValueError(f"attack {a!r} needs a hand-drawn region and cannot run in a batch "
                             f"evaluation; allowed: {', '.join(usable)}")
    attacks = _check_names(attacks, usable, "attack")
    models = _as_tuple(config.models, "model")
    if config.source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)}; got {config.source!r}")
    n_images = _int_in(config.n_images, "n_images", 1)
    offset = _int_in(config.image_offset, "image_offset", 0)
    batch_size = _int_in(config.batch_size, "batch_size", 1)
    seed = _int_in(config.seed, "seed", 0, 2 ** 31 - 1)
    if config.measure not in metrics.METRICS:
        raise ValueError(f"unknown measure {config.measure!r}; allowed: "
                         f"{', '.join(metrics.METRIC_KEYS)}")
    ws = [metrics.validate_w(w) for w in _as_tuple(config.w, "w")]
    if len(set(ws)) != len(ws):
        raise ValueError(f"w lists a value twice: {ws}")

    # Method parameters: report maps, and the attack loop's overrides.
    for what, params in (("method_params", config.method_params),
                         ("attack_method_params", config.attack_method_params)):
        for m in params:
            if m not in methods:
                raise ValueError(f"{what} names method {m!r}, which is not evaluated; evaluated "
                                 f"methods: {', '.join(methods)}")
    method_res = {}
    for m in methods:
        report = resolve(METHODS[m].params, dict(config.method_params.get(m, {})))
        attack_p = resolve(METHODS[m].params,
                           {**report, **dict(config.attack_method_params.get(m, {}))})
        method_res[m] = {"report": report, "attack": attack_p}

    per_dataset = {}
    for d in datasets:
        info = backend.dataset_info(d)
        h, w_ = info.size
        defaults = info.defaults
        known = list(backend.model_names(d))
        bad = [m for m in models if m not in known]
        if bad:
            raise ValueError(f"unknown model {', '.join(repr(b) for b in bad)} for dataset {d!r}; "
                             f"allowed: {', '.join(known) or '(none registered)'}")
        fingerprints = {}
        for m in models:
            backend.check_model(d, m)
            fp = backend.model_fingerprint(d, m)
            if fp is not None:
                fingerprints[m] = fp
        eps = _unique([defaults.epsilon if e == PAPER else parse_number(e)
                       for e in _as_tuple(config.eps, "eps")])
        for e in eps:
            if not 0.0 <= e <= 1.0 or math.isnan(e):
                raise ValueError(f"eps values must be in [0, 1] (pixel units) or 'paper'; got {e}")
        names = [f"{e:.6g}" for e in eps]
        if len(set(names)) != len(names):
            raise ValueError(f"eps values {eps} are equal to 6 significant digits; give distinct "
                             "values")
        ks = _unique([defaults.eval_k if k == PAPER else k for k in _as_tuple(config.k, "k")])
        ks = [metrics.validate_k(k, h, w_) for k in ks]
        attack_k = defaults.attack_k if config.attack_k is None else config.attack_k
        attack_k = metrics.validate_k(attack_k, h, w_)
        steps = defaults.steps if config.steps is None else _int_in(config.steps, "steps", 1)
        step_size = (defaults.step_size if config.step_size is None
                     else parse_number(config.step_size))
        if not step_size > 0:
            raise ValueError(f"step_size must be > 0; got {step_size}")
        attack_w = metrics.validate_w(defaults.w if config.attack_w is None else config.attack_w)
        available = backend.n_available(d, config.source)
        if available is not None and offset + n_images > available:
            raise ValueError(f"{d} has {available} images in source {config.source!r}; asked for "
                             f"images {offset}..{offset + n_images - 1} (n_images + image_offset "
                             f"must be at most {available})")
        per_dataset[d] = {"size": [h, w_], "eps": eps, "k": ks, "w": ws, "attack_k": attack_k,
                          "steps": steps, "step_size": step_size, "attack_w": attack_w}
        if fingerprints:
            per_dataset[d]["model_weights"] = fingerprints
    return {
        "datasets": list(datasets), "models": list(models), "methods": list(methods),
        "attacks": list(attacks), "n_images": n_images, "image_offset": offset,
        "source": config.source, "batch_size": batch_size, "seed": seed,
        "beta": float(config.beta), "measure": config.measure, "method_params": method_res,
        "per_dataset": per_dataset,
    }


# --------------------------------------------------------------------------------------------
# Backends: where datasets, models and images come from (tests pass small fakes)
# --------------------------------------------------------------------------------------------

class Backend:
    """The project registries seen by the evaluator. Subclass for tests."""

    def dataset_keys(self) -> Sequence[str]:
        raise NotImplementedError

    def dataset_info(self, dataset: str):
        """An object with ``size`` (H, W) and ``defaults`` (``PaperDefaults``)."""
        raise NotImplementedError

    def model_names(self, dataset: str) -> Sequence[str]:
        raise NotImplementedError

    def load_model(self, dataset: str, name: str, device: str) -> torch.nn.Module:
        raise NotImplementedError

    def check_model(self, dataset: str, name: str) -> None:
        """Raise (with a message saying what to do) when the model cannot be loaded; called
        before any work starts."""

    def model_fingerprint(self, dataset: str, name: str) -> str | None:
        """A digest of the model's weights (recorded in config.json, so that resuming with
        different weights is refused), or None when unknown."""
        return None

    def n_available(self, dataset: str, source: str) -> int | None:
        raise NotImplementedError

    def load_images(self, dataset: str, source: str, start: int, stop: int
                    ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """Images ``start..stop-1`` of the source: ``x (n, C, H, W)`` in [0, 1], labels ``(n,)``
        (-1 unknown), and each image's index (test-set index or sample number)."""
        raise NotImplementedError


class RegistryBackend(Backend):
    """``explorer.data`` and ``explorer.models``: the shipped datasets and models."""

    def __init__(self, data_root=None):
        self.data_root = data_root
        self._test_sets: dict[str, Any] = {}

    def dataset_keys(self):
        from . import data
        return tuple(data.DATASETS)

    def dataset_info(self, dataset):
        from . import data
        return data.get_dataset(dataset)

    def model_names(self, dataset):
        from . import models
        return [m.name for m in models.models_for(dataset)]

    def load_model(self, dataset, name, device):
        from . import models
        return models.load(dataset, name, device=device)

    def check_model(self, dataset, name):
        from . import models
        if not models.is_available(dataset, name):
            models.load(dataset, name)  # raises ModelUnavailable saying what to do

    def model_fingerprint(self, dataset, name):
        from . import models
        path = models.MODELS[(dataset, name)].weights_path
        return f"sha256:{models.sha256_file(path)}" if path is not None and path.exists() else None

    def _test_set(self, dataset):
        if dataset not in self._test_sets:
            from . import data
            self._test_sets[dataset] = data.load_test_set(dataset, root=self.data_root)
        return self._test_sets[dataset]

    def n_available(self, dataset, source):
        if source == "samples":
            from . import data
            return int(data.load_samples(dataset).x.shape[0])
        return len(self._test_set(dataset))

    def load_images(self, dataset, source, start, stop):
        if source == "samples":
            from . import data
            s = data.load_samples(dataset)
            return s.x[start:stop].float(), s.labels[start:stop].long(), list(range(start, stop))
        ds = self._test_set(dataset)
        raw = getattr(ds, "data", None)
        targets = getattr(ds, "targets", None)
        if isinstance(raw, torch.Tensor) and raw.dim() == 3 and targets is not None:
            x = raw[start:stop].unsqueeze(1).float().div(255.0)
            y = torch.as_tensor(targets[start:stop]).long()
        else:
            items = [ds[i] for i in range(start, stop)]
            x = torch.stack([it[0] for it in items])
            y = torch.tensor([int(it[1]) for it in items], dtype=torch.long)
        return x, y, list(range(start, stop))


# --------------------------------------------------------------------------------------------
# Units
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, order=True)
class Unit:
    """One batch of images for one (dataset, model, method, attack, ε); ``order`` is its place
    in the canonical order (the order of the merged rows)."""

    order: tuple
    dataset: str
    model: str
    method: str
    attack: str
    epsilon: float
    batch: int
    start: int   # position in the selection (0 = image_offset)
    stop: int

    @property
    def name(self) -> str:
        return (f"{self.dataset}__{self.model}__{self.method}__{self.attack}__"
                f"eps{self.epsilon:.6g}__b{self.batch:05d}")

    @property
    def n(self) -> int:
        return self.stop - self.start


def plan_units(resolved: dict) -> list[Unit]:
    """Every unit of the configuration, in the canonical order."""
    units = []
    n, bs = resolved["n_images"], resolved["batch_size"]
    batches = [(b, b * bs, min(n, (b + 1) * bs)) for b in range((n + bs - 1) // bs)]
    for di, d in enumerate(resolved["datasets"]):
        pd_ = resolved["per_dataset"][d]
        for mi, model in enumerate(resolved["models"]):
            for hi, method in enumerate(resolved["methods"]):
                for ai, att in enumerate(resolved["attacks"]):
                    for ei, eps in enumerate(pd_["eps"]):
                        for b, start, stop in batches:
                            units.append(Unit((di, mi, hi, ai, ei, b), d, model, method, att,
                                              float(eps), b, start, stop))
    return units


def unit_cost(unit: Unit, resolved: dict) -> float:
    """Rough relative cost of a unit, for the progress bar's ETA only: images × model passes.

    An iterative gradient attack step costs about 4 passes (a double backward and the real
    model's map) per point of the method (path points, noisy copies); a random step 2; the maps
    of x and of x' with the reported parameters add 2 each.
    """
    info = ATTACKS[unit.attack]
    mres = resolved["method_params"][unit.method]

    def points(params):
        return max(1, int(params.get("steps", params.get("n_samples", 1))))

    steps = resolved["per_dataset"][unit.dataset]["steps"] if info.iterative else 1
    per_step = 4 if info.uses_gradient else 2
    return unit.n * (points(mres["attack"]) * (per_step * steps + 2) + 4 * points(mres["report"]))


def unit_seed(seed: int, dataset: str, source: str, first_image: int) -> int:
    """Seed of the batch that starts at selection position ``first_image``: independent of the
    model, method, attack, ε and of which process runs it (so random noise is paired)."""
    return zlib.crc32(f"{seed}|{dataset}|{source}|{first_image}".encode()) & 0x7FFFFFFF


# --------------------------------------------------------------------------------------------
# One unit
# --------------------------------------------------------------------------------------------

def _fmt(value, kind: type) -> str:
    if kind is float:
        return repr(float(value))
    if kind is bool:
        return "True" if bool(value) else "False"
    if kind is int:
        return str(int(value))
    return str(value)


def _columns_for(pd_: dict) -> list[str]:
    return list(BASE_COLUMNS) + metric_columns(pd_["k"], pd_["w"]) + list(TIMING_COLUMNS)


def _column_type(name: str) -> type | None:
    if name in BASE_COLUMNS:
        return BASE_COLUMNS[name]
    if name in TIMING_COLUMNS:
        return TIMING_COLUMNS[name]
    if parse_metric_column(name) is not None:
        return float
    return None


def evaluate_unit(unit: Unit, model: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor,
                  indices: Sequence[int], resolved: dict,
                  step_callback: Callable[[int, int, float], Any] | None = None
                  ) -> list[dict[str, Any]]:
    """Attack the batch ``x`` ``(n, C, H, W)`` and measure it: one row dict per image."""
    pd_ = resolved["per_dataset"][unit.dataset]
    mres = resolved["method_params"][unit.method]
    seed = unit_seed(resolved["seed"], unit.dataset, resolved["source"], unit.start)
    n = x.shape[0]
    t0 = time.perf_counter()
    res = run_attack(model, x, method=unit.method, method_params=mres["attack"],
                     attack=unit.attack, epsilon=unit.epsilon, step_size=pd_["step_size"],
                     steps=pd_["steps"], attack_k=pd_["attack_k"], w=pd_["attack_w"],
                     measure=resolved["measure"], beta=resolved["beta"], seed=seed,
                     progress=step_callback)
    map_orig, map_adv = res.map_orig, res.map_adv
    if mres["attack"] != mres["report"]:
        # The attack loop used cheaper method parameters: measure x and x' with the reported ones.
        target = res.label_orig
        map_orig = attribution_map(model, x, unit.method, mres["report"], target=target)
        map_adv = attribution_map(model, res.x_adv, unit.method, mres["report"], target=target)
    t1 = time.perf_counter()
    values: dict[str, torch.Tensor] = {}
    rank_keys = ("spearman", "kendall", "center_shift")
    for w in pd_["w"]:
        full = metrics.compare(map_orig, map_adv, pd_["k"][0], w)
        for k in pd_["k"]:
            part = full if k == pd_["k"][0] else {
                **metrics.set_metrics(map_orig, map_adv, k, w),
                **{key: full[key] for key in metrics.METRIC_KEYS
                   if key not in metrics.SET_METRIC_KEYS}}
            for key in metrics.METRIC_KEYS:
                values[metric_column(key, k, w)] = part[key].detach().double().cpu()
    deg_o = metrics.is_degenerate(map_orig).cpu()
    deg_a = metrics.is_degenerate(map_adv).cpu()
    t2 = time.perf_counter()
    hist = res.history.detach().double().cpu()
    base = {
        "label_orig": res.label_orig.cpu(), "label_adv": res.label_adv.cpu(),
        "conf_orig": res.conf_orig.detach().double().cpu(),
        "conf_adv": res.conf_adv.detach().double().cpu(),
        "label_kept": res.label_kept.cpu(), "found": res.found.cpu(),
        "linf": res.linf.detach().double().cpu(),
        "best_step": (res.best_step.cpu() if res.best_step is not None
                      else torch.zeros(n, dtype=torch.long)),
    }
    labels = labels.cpu()
    rows = []
    for i in range(n):
        row = {
            "dataset": unit.dataset, "model": unit.model, "method": unit.method,
            "attack": unit.attack, "epsilon": unit.epsilon, "image": int(indices[i]),
            "batch": unit.batch, "seed": seed, "label": int(labels[i]),
            "pred_orig": int(base["label_orig"][i]), "conf_orig": float(base["conf_orig"][i]),
            "pred_adv": int(base["label_adv"][i]), "conf_adv": float(base["conf_adv"][i]),
            "correct": int(base["label_orig"][i]) == int(labels[i]),
            "label_kept": bool(base["label_kept"][i]), "found": bool(base["found"][i]),
            "linf": float(base["linf"][i]), "best_step": int(base["best_step"][i]),
            "steps_run": int(res.steps_run), "sel_start": float(hist[i, 0]),
            "sel_best": float(hist[i, -1]), "degenerate_orig": bool(deg_o[i]),
            "degenerate_adv": bool(deg_a[i]),
        }
        for col, v in values.items():
            row[col] = float(v[i])
        row["attack_s"] = (t1 - t0) / n
        row["metrics_s"] = (t2 - t1) / n
        rows.append(row)
    return rows


def _rows_to_csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    types = [_column_type(c) for c in columns]
    for row in rows:
        writer.writerow(["" if row.get(c) is None else _fmt(row[c], t)
                         for c, t in zip(columns, types)])
    return buf.getvalue()


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# --------------------------------------------------------------------------------------------
# Reading rows back (with the path and line of anything malformed)
# --------------------------------------------------------------------------------------------

def _parse_cell(text: str, kind: type, path, line: int, column: str):
    if kind is str:
        if text == "":
            raise ResultsError(f"{path}, line {line}: column {column!r} is empty")
        return text
    if kind is float:
        if text == "":
            return float("nan")
        try:
            return float(text)
        except ValueError:
            raise ResultsError(f"{path}, line {line}: column {column!r} holds {text!r}, which is "
                               "not a number") from None
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ResultsError(f"{path}, line {line}: column {column!r} holds {text!r}, which is "
                               "not an integer") from None
    if text in ("True", "1", "true"):
        return True
    if text in ("False", "0", "false"):
        return False
    raise ResultsError(f"{path}, line {line}: column {column!r} holds {text!r}; expected True or "
                       "False")


def read_rows_csv(path) -> tuple[list[str], list[list]]:
    """Read one results CSV (a unit file or ``results.csv``): ``(columns, rows)``.

    Every problem raises :class:`ResultsError` with the file's path and the 1-based line.
    """
    path = Path(path)
    try:
        f = open(path, encoding="utf-8", newline="")
    except OSError as exc:
        raise ResultsError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    with f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            if header is None:
                raise ResultsError(f"{path}, line 1: the file is empty; expected a header row "
                                   f"starting with {', '.join(list(BASE_COLUMNS)[:3])}, ...")
            missing = [c for c in BASE_COLUMNS if c not in header]
            if missing:
                raise ResultsError(f"{path}, line 1: the header lacks column(s) "
                                   f"{', '.join(missing)}; this is not a results file of "
                                   "`python -m explorer evaluate`")
            types = []
            for c in header:
                t = _column_type(c)
                if t is None:
                    raise ResultsError(f"{path}, line 1: unknown column {c!r}; allowed: "
                                       f"{', '.join(BASE_COLUMNS)}, metric columns "
                                       "'METRIC@kK_wW' and " + ", ".join(TIMING_COLUMNS))
                types.append(t)
            if len(set(header)) != len(header):
                raise ResultsError(f"{path}, line 1: a column name appears twice")
            rows = []
            for fields_ in reader:
                line = reader.line_num
                if not fields_:
                    continue
                if len(fields_) != len(header):
                    raise ResultsError(f"{path}, line {line}: {len(fields_)} fields, expected "
                                       f"{len(header)} (one per header column)")
                rows.append([_parse_cell(v, t, path, line, c)
                             for v, t, c in zip(fields_, types, header)])
        except csv.Error as exc:
            raise ResultsError(f"{path}, line {reader.line_num}: malformed CSV ({exc})") from None
        except UnicodeDecodeError:
            raise ResultsError(f"{path}: not a UTF-8 text file") from None
    return header, rows


def _unit_path(folder: Path, unit: Unit) -> Path:
    return folder / ROWS_DIR / f"{unit.name}.csv"


def _read_unit(path: Path, unit: Unit, resolved: dict) -> tuple[list[str], list[list]]:
    header, rows = read_rows_csv(path)
    expected = _columns_for(resolved["per_dataset"][unit.dataset])
    if header != expected:
        raise ResultsError(f"{path}, line 1: the columns differ from this configuration's "
                           f"(missing: {sorted(set(expected) - set(header)) or 'none'}, extra: "
                           f"{sorted(set(header) - set(expected)) or 'none'}); delete the file to "
                           "recompute it")
    if len(rows) != unit.n:
        raise ResultsError(f"{path}: {len(rows)} rows, expected {unit.n} (one per image of the "
                           "batch); delete the file to recompute it")
    return header, rows


def _merge(folder: Path, units: list[Unit], resolved: dict) -> Path:
    all_cols: list[str] = []
    for d in resolved["datasets"]:
        for c in _columns_for(resolved["per_dataset"][d]):
            if c not in all_cols:
                all_cols.append(c)
    # Timings last, whatever the datasets' metric columns.
    all_cols = [c for c in all_cols if c not in TIMING_COLUMNS] + list(TIMING_COLUMNS)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(all_cols)
    for unit in sorted(units):
        header, rows = _read_unit(_unit_path(folder, unit), unit, resolved)
        pos = {c: i for i, c in enumerate(header)}
        types = [_column_type(c) for c in all_cols]
        for r in rows:
            writer.writerow(["" if c not in pos else _fmt(r[pos[c]], t)
                             for c, t in zip(all_cols, types)])
    out = folder / MERGED_FILE
    _atomic_write(out, buf.getvalue())
    return out


# --------------------------------------------------------------------------------------------
# Results folder: configuration check and resume
# --------------------------------------------------------------------------------------------

def _identity(config: EvalConfig, resolved: dict) -> dict:
    return json.loads(json.dumps({"config": config.to_json(), "resolved": resolved}))


def _diff(old, new, prefix="") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in _unique(list(old) + list(new)):
            where = f"{prefix}.{key}" if prefix else str(key)
            if key not in old:
                out.append(f"{where}: absent in the folder, {json.dumps(new[key])} now")
            elif key not in new:
                out.append(f"{where}: {json.dumps(old[key])} in the folder, absent now")
            else:
                out.extend(_diff(old[key], new[key], where))
        return out
    if old != new:
        return [f"{prefix}: {json.dumps(old)} in the folder, {json.dumps(new)} now"]
    return []


def _read_config_file(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ResultsError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ResultsError(f"{path}, line 1: not a configuration written by `python -m explorer "
                           f"evaluate` (expected \"format\": \"{FORMAT}\")")
    for key in ("config", "resolved"):
        if not isinstance(data.get(key), dict):
            raise ResultsError(f"{path}: the entry {key!r} is missing or not an object")
    return data


def prepare_folder(folder: Path, config: EvalConfig, resolved: dict, command: str = "") -> None:
    """Create ``folder`` with its ``config.json``, or check that an existing folder holds the
    same configuration (:class:`ConfigMismatch` listing the differences otherwise)."""
    folder = Path(folder)
    cfg_path = folder / CONFIG_FILE
    identity = _identity(config, resolved)
    if cfg_path.exists():
        stored = _read_config_file(cfg_path)
        diffs = _diff({"config": stored["config"], "resolved": stored["resolved"]}, identity)
        if diffs:
            shown = "; ".join(diffs[:8]) + (f"; and {len(diffs) - 8} more" if len(diffs) > 8
                                             else "")
            raise ConfigMismatch(f"{folder} holds results of a different configuration, so it "
                                 f"cannot be resumed: {shown}. Use another --out folder, or "
                                 "repeat the folder's own configuration (see its config.json).")
        return
    if folder.exists() and any(folder.iterdir()):
        raise ConfigMismatch(f"{folder} is not empty and has no {CONFIG_FILE}: it is not a "
                             "results folder of `python -m explorer evaluate`; choose an empty "
                             "or new folder")
    (folder / ROWS_DIR).mkdir(parents=True, exist_ok=True)
    doc = {"format": FORMAT, **identity, "command": command,
           "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
           "environment": {"python": sys.version.split()[0], "torch": torch.__version__,
                           "host": socket.gethostname()},
           "columns": "wide: one column per metric, k and w, named METRIC@kK_wW; see "
                      "explorer/evaluate.py"}
    _atomic_write(cfg_path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def _done_units(folder: Path, units: list[Unit]) -> set[str]:
    rows_dir = folder / ROWS_DIR
    if not rows_dir.is_dir():
        return set()
    present = {p.stem for p in rows_dir.glob("*.csv")}
    return {u.name for u in units if u.name in present}


LOCK_FILE = ".lock"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _acquire_lock(folder: Path, run_id: str) -> None:
    """One run at a time per folder: a lock file naming the writer (host, pid). A lock left by
    a process of this host that no longer exists is taken over."""
    path = folder / LOCK_FILE
    me = {"host": socket.gethostname(), "pid": os.getpid(), "run": run_id,
          "time": _dt.datetime.now().astimezone().isoformat(timespec="seconds")}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                other = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                other = {}
            same_host = other.get("host") == me["host"]
            if same_host and isinstance(other.get("pid"), int) and not _pid_alive(other["pid"]):
                path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            raise ConfigMismatch(
                f"{folder} is being written by another run (pid {other.get('pid', '?')} on "
                f"{other.get('host', '?')}, since {other.get('time', '?')}); wait for it to "
                f"finish, or delete {path} if that run no longer exists") from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(me))
        return
    raise ConfigMismatch(f"{folder}: could not take the lock {path}; delete it and retry")


def _release_lock(folder: Path, run_id: str) -> None:
    path = folder / LOCK_FILE
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("run") == run_id:
            path.unlink()
    except (OSError, json.JSONDecodeError):
        pass


def _append_run_log(folder: Path, record: dict) -> None:
    with open(folder / RUNS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


# --------------------------------------------------------------------------------------------
# Distributed context
# --------------------------------------------------------------------------------------------

@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owned: bool = False
    active: bool = False

    def barrier(self):
        if self.active:
            torch.distributed.barrier()

    def broadcast(self, obj):
        if not self.active:
            return obj
        box = [obj]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def close(self):
        if self.owned and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _device_for(requested: str, local_rank: int) -> str:
    if requested == "auto":
        return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked but no CUDA GPU is available; use "
                             "--device cpu or auto")
        return f"cuda:{local_rank}"
    if requested == "cpu" or requested.startswith("cuda:"):
        return requested
    raise ValueError(f"device must be auto, cpu, cuda or cuda:N; got {requested!r}")


def _init_dist(device_request: str) -> tuple[_Dist, str]:
    dist = torch.distributed
    world_env = int(os.environ.get("WORLD_SIZE", "1"))
    if dist.is_available() and dist.is_initialized():
        ctx = _Dist(dist.get_rank(), dist.get_world_size(),
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
        return _Dist(dist.get_rank(), dist.get_world_size(), local_rank, True, True), device
    return _Dist(), _device_for(device_request, 0)


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------

def run(config: EvalConfig, out_dir=None, *, backend: Backend | None = None,
        device: str = "auto", progress: bool | Callable[[int, int, str], Any] = True,
        command: str = "") -> "pandas.DataFrame | None":  # noqa: F821
    """Run (or resume) the evaluation of ``config``.

    ``out_dir``: the results folder (created, or resumed when it holds the same configuration).
    None keeps the rows in memory (single process only; the app's live sweeps). ``progress``:
    True for a tqdm bar (rank 0), False for none, or a callable ``(rows_done, rows_total, text)``.
    Returns the merged rows as a DataFrame on rank 0 (all rows, resumed ones included), None on
    the other ranks.
    """
    backend = backend or RegistryBackend()
    resolved = resolve_config(config, backend)
    units = plan_units(resolved)
    if out_dir is None:
        ctx, dev = _Dist(), _device_for(device, 0)
    else:
        ctx, dev = _init_dist(device)
    try:
        return _run(config, resolved, units, None if out_dir is None else Path(out_dir), backend,
                    ctx, dev, progress, command)
    finally:
        ctx.close()


def _run(config, resolved, units, folder, backend, ctx, dev, progress, command):
    started = time.time()
    run_id = uuid.uuid4().hex[:12]
    if folder is not None:
        error = None
        if ctx.rank == 0:
            try:
                prepare_folder(folder, config, resolved, command)
                _acquire_lock(folder, run_id)
                for tmp in (folder / ROWS_DIR).glob(".*.tmp"):
                    tmp.unlink(missing_ok=True)  # leftovers of an interrupted write
            except (ValueError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}" if isinstance(exc, OSError) else str(exc)
        error = ctx.broadcast(error)
        if error is not None:
            raise ConfigMismatch(error)
    try:
        return _work(config, resolved, units, folder, backend, ctx, dev, progress, command,
                     started, run_id)
    finally:
        if folder is not None and ctx.rank == 0:
            _release_lock(folder, run_id)


def _work(config, resolved, units, folder, backend, ctx, dev, progress, command, started,
          run_id):
    import pandas as pd

    if folder is not None:
        done = _done_units(folder, units)
        if ctx.rank == 0:
            _append_run_log(folder, {
                "event": "start", "run": run_id, "time": started, "world_size": ctx.world,
                "threads": torch.get_num_threads(), "device": dev, "command": command,
                "units_total": len(units), "units_done_before": len(done)})
    else:
        done = set()
    pending = [u for u in units if u.name not in done]
    mine = pending[ctx.rank::ctx.world]

    total_rows = sum(u.n for u in mine)
    bar = None
    report: Callable[[int, int, str], Any] | None = None
    if callable(progress):
        report = progress
    elif progress and ctx.rank == 0 and total_rows:
        from tqdm.auto import tqdm

        # The bar advances by estimated work (so the ETA holds when cheap random-noise batches
        # come before 100-step attacks) and shows rows done beside it.
        bar = tqdm(total=sum(unit_cost(u, resolved) for u in mine), dynamic_ncols=True,
                   smoothing=0.02, mininterval=1.0,
                   bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining} {postfix}",
                   desc=f"evaluate ({ctx.world} proc)" if ctx.world > 1 else "evaluate")
        if done:
            bar.write(f"resuming: {len(done)} of {len(units)} batches already done in {folder}")

    model_cache: dict[tuple[str, str], torch.nn.Module] = {}
    image_cache: dict[str, tuple] = {}
    memory_rows: list[dict] = []
    rows_done = 0
    for unit in mine:
        key = (unit.dataset, unit.model)
        if key not in model_cache:
            model_cache.clear()  # one model at a time: units are ordered by (dataset, model)
            model_cache[key] = backend.load_model(unit.dataset, unit.model, dev).eval()
        if unit.dataset not in image_cache:
            image_cache.clear()
            off = resolved["image_offset"]
            image_cache[unit.dataset] = backend.load_images(
                unit.dataset, resolved["source"], off, off + resolved["n_images"])
        xs, ys, idx = image_cache[unit.dataset]
        x = xs[unit.start:unit.stop].to(dev)
        text = f"{unit.dataset}/{unit.model}/{unit.method}/{unit.attack} ε={unit.epsilon:.4g}"

        cost = unit_cost(unit, resolved)
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
                             idx[unit.start:unit.stop], resolved, on_step)
        if folder is not None:
            columns = _columns_for(resolved["per_dataset"][unit.dataset])
            _atomic_write(_unit_path(folder, unit), _rows_to_csv(rows, columns))
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
        df = pd.DataFrame(memory_rows)
        return _typed(df)
    ctx.barrier()
    result = None
    if ctx.rank == 0:
        merged = _merge(folder, units, resolved)
        ended = time.time()
        _append_run_log(folder, {
            "event": "end", "run": run_id, "time": ended, "wall_s": round(ended - started, 3),
            "world_size": ctx.world, "units_run": len(pending), "units_total": len(units)})
        result = load_results(folder)
        if progress is True:
            print(f"{len(result)} rows in {merged} ({ended - started:.1f} s this run)",
                  file=sys.stderr)
    ctx.barrier()
    return result


# --------------------------------------------------------------------------------------------
# Loading results
# --------------------------------------------------------------------------------------------

def _typed(df):
    import pandas as pd

    for c in df.columns:
        t = _column_type(c)
        if t is bool:
            df[c] = df[c].astype(bool)
        elif t is int:
            df[c] = df[c].astype("int64")
        elif t is float:
            df[c] = pd.to_numeric(df[c]).astype("float64")
    return df


def load_config(folder) -> dict:
    """The ``config.json`` of a results folder (ResultsError when absent or malformed)."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not path.exists():
        raise ResultsError(f"{folder} is not a results folder: it has no {CONFIG_FILE} (make one "
                           "with `python -m explorer evaluate --out FOLDER ...`)")
    return _read_config_file(path)


def load_results(folder, *, partial: bool = True):
    """All rows of a results folder as a pandas DataFrame (typed columns).

    Reads the unit files under ``rows/`` (so a running or interrupted run shows what is done;
    ``partial=False`` refuses an incomplete folder), or ``results.csv`` when there is no
    ``rows/`` folder (e.g. a folder committed without its unit files). Malformed files raise
    :class:`ResultsError` with the path and line.
    """
    import pandas as pd

    folder = Path(folder)
    cfg = load_config(folder)
    try:
        EvalConfig.from_json(cfg["config"])
    except (TypeError, ValueError) as exc:
        raise ResultsError(f"{folder / CONFIG_FILE}: the configuration cannot be read ({exc})"
                           ) from None
    resolved = cfg["resolved"]
    try:
        units = plan_units(resolved)
    except (KeyError, TypeError) as exc:
        raise ResultsError(f"{folder / CONFIG_FILE}: the resolved configuration is incomplete "
                           f"(missing {exc})") from None
    rows_dir = folder / ROWS_DIR
    frames = []
    if rows_dir.is_dir():
        missing = []
        for unit in units:
            path = _unit_path(folder, unit)
            if not path.exists():
                missing.append(unit.name)
                continue
            header, rows = _read_unit(path, unit, resolved)
            frames.append(pd.DataFrame(rows, columns=header))
        if missing and not partial:
            raise ResultsError(f"{folder}: {len(missing)} of {len(units)} batches are not done "
                               f"yet (first: {missing[0]}); resume the run to finish them")
    else:
        merged = folder / MERGED_FILE
        gz = folder / (MERGED_FILE + ".gz")
        if merged.exists():
            header, rows = read_rows_csv(merged)
        elif gz.exists():
            header, rows = _read_gz(gz)
        else:
            raise ResultsError(f"{folder} holds no rows yet ({ROWS_DIR}/ and {MERGED_FILE} are "
                               "absent)")
        frames.append(pd.DataFrame(rows, columns=header))
    if not frames:
        cols = list(BASE_COLUMNS)
        return _typed(pd.DataFrame(columns=cols))
    return _typed(pd.concat(frames, ignore_index=True))


def _read_gz(path: Path):
    import gzip
    import tempfile

    try:
        text = gzip.decompress(path.read_bytes()).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: not a readable gzip-compressed UTF-8 CSV ({exc})") from None
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, encoding="utf-8") as f:
        f.write(text)
        tmp = Path(f.name)
    try:
        return read_rows_csv(tmp)
    except ResultsError as exc:
        raise ResultsError(str(exc).replace(str(tmp), str(path))) from None
    finally:
        tmp.unlink(missing_ok=True)


def export_compact(folder, dest) -> Path:
    """Copy a finished results folder to ``dest`` as ``config.json``, ``runs.jsonl`` and one
    gzip-compressed ``results.csv.gz`` (no unit files): small enough to commit, and readable by
    :func:`load_results` and the Sweeps page. Refuses an unfinished folder."""
    import gzip
    import shutil

    folder, dest = Path(folder), Path(dest)
    cfg = load_config(folder)
    units = plan_units(cfg["resolved"])
    if (folder / ROWS_DIR).is_dir():
        _merge(folder, units, cfg["resolved"])  # also checks that every unit is there
    merged = folder / MERGED_FILE
    if not merged.exists():
        raise ResultsError(f"{folder}: no {MERGED_FILE}; finish the run first")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / CONFIG_FILE, dest / CONFIG_FILE)
    if (folder / RUNS_FILE).exists():
        shutil.copyfile(folder / RUNS_FILE, dest / RUNS_FILE)
    data = gzip.compress(merged.read_bytes(), compresslevel=9, mtime=0)
    tmp = dest / f".{MERGED_FILE}.gz.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, dest / (MERGED_FILE + ".gz"))
    return dest


def long_format(df):
    """Melt the wide metric columns: one row per (row, metric, k, w) with column ``value``."""
    import pandas as pd

    mcols = [c for c in df.columns if parse_metric_column(c) is not None]
    ids = [c for c in df.columns if c not in mcols]
    long = df.melt(id_vars=ids, value_vars=mcols, var_name="column", value_name="value")
    parsed = long["column"].map(parse_metric_column)
    long["metric"] = parsed.map(lambda t: t[0])
    long["k"] = parsed.map(lambda t: t[1]).astype("int64")
    long["w"] = parsed.map(lambda t: t[2]).astype("int64")
    return long.drop(columns="column")


def run_log(folder) -> list[dict]:
    """The start/end records of ``runs.jsonl`` (empty when absent); malformed lines are reported
    with their line number."""
    path = Path(folder) / RUNS_FILE
    if not path.exists():
        return []
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ResultsError(f"{path}, line {i}: not valid JSON ({exc.msg})") from None
    return out


# --------------------------------------------------------------------------------------------
# Command line: `python -m explorer evaluate ...` (registered in explorer/__main__.py)
# --------------------------------------------------------------------------------------------

def add_arguments(p) -> None:
    """Arguments of the ``evaluate`` subcommand."""
    p.add_argument("--datasets", nargs="+", required=True, metavar="DATASET",
                   help="dataset keys, e.g. mnist fashion_mnist")
    p.add_argument("--models", nargs="+", default=["natural", "pgd"], metavar="MODEL",
                   help="model names of each dataset (default: natural pgd)")
    p.add_argument("--methods", nargs="+", default=["saliency"], metavar="METHOD",
                   help=f"attribution methods ({', '.join(METHODS)}; default saliency)")
    p.add_argument("--attacks", nargs="+", default=["random_sign", "topk", "mass_center"],
                   metavar="ATTACK", help="attacks (default: random_sign topk mass_center)")
    p.add_argument("--eps", nargs="+", default=[PAPER], metavar="EPS",
                   help="ℓ∞ budgets in [0, 1] pixel units (0.3, 8/255) or 'paper' (default)")
    p.add_argument("--k", nargs="+", default=[PAPER], metavar="K",
                   help="evaluation k values (pixels) or 'paper' (default)")
    p.add_argument("--w", nargs="+", type=int, default=[0, 1, 2, 3], metavar="W",
                   help="LENS radii (default 0 1 2 3)")
    p.add_argument("--n-images", type=int, default=100, help="images per dataset (default 100)")
    p.add_argument("--source", choices=SOURCES, default="test",
                   help="test set (default) or the bundled sample images")
    p.add_argument("--image-offset", type=int, default=0,
                   help="first image position in the source (default 0)")
    p.add_argument("--batch-size", type=int, default=50,
                   help="images attacked together (default 50); part of the configuration")
    p.add_argument("--seed", type=int, default=0, help="seed of the random attacks (default 0)")
    p.add_argument("--steps", type=int, default=None, help="attack steps P (default: paper)")
    p.add_argument("--step-size", default=None, help="attack step α (default: paper)")
    p.add_argument("--attack-k", type=int, default=None, help="attack k' (default: paper)")
    p.add_argument("--attack-w", type=int, default=None,
                   help="w of the lens_topk loss and LENS selection measures (default: paper)")
    p.add_argument("--beta", type=float, default=DEFAULT_BETA,
                   help=f"softplus β of the attack surrogate (default {DEFAULT_BETA:g})")
    p.add_argument("--measure", default="topk_intersection",
                   help="metric that picks the best iterate (default topk_intersection)")
    p.add_argument("--method-param", action="append", default=[], metavar="METHOD.NAME=VALUE",
                   help="parameter of a method for the reported maps, e.g. "
                        "integrated_gradients.steps=100 (repeatable)")
    p.add_argument("--attack-method-param", action="append", default=[],
                   metavar="METHOD.NAME=VALUE",
                   help="override inside the attack loop only, e.g. "
                        "integrated_gradients.steps=20 (repeatable)")
    p.add_argument("--out", required=True, help="results folder (created, or resumed)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads of each process (default: torch's choice; torchrun "
                        "sets 1 per process)")
    p.add_argument("--data-root", default=None, help="dataset root (default $EXPLORER_DATA or "
                                                     "data/)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _numbers_or_paper(values, what, conv):
    out = []
    for v in values:
        if v == PAPER:
            out.append(PAPER)
            continue
        try:
            out.append(conv(v))
        except ValueError:
            raise ValueError(f"{what} values must be numbers (0.3, 8/255) or 'paper'; "
                             f"got {v!r}") from None
    return tuple(out)


def config_from_args(args) -> EvalConfig:
    def to_int(v):
        return int(v)

    return EvalConfig(
        datasets=tuple(args.datasets), models=tuple(args.models), methods=tuple(args.methods),
        attacks=tuple(args.attacks), eps=_numbers_or_paper(args.eps, "--eps", parse_number),
        k=_numbers_or_paper(args.k, "--k", to_int), w=tuple(args.w), n_images=args.n_images,
        source=args.source, image_offset=args.image_offset, batch_size=args.batch_size,
        seed=args.seed, steps=args.steps,
        step_size=None if args.step_size is None else parse_number(args.step_size),
        attack_k=args.attack_k, attack_w=args.attack_w, beta=args.beta, measure=args.measure,
        method_params=parse_method_params(args.method_param),
        attack_method_params=parse_method_params(args.attack_method_param))


def main(args) -> int:
    """Entry point of ``python -m explorer evaluate``."""
    import shlex

    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1; got {args.threads}")
        torch.set_num_threads(args.threads)
    config = config_from_args(args)
    launcher = "python"
    if os.environ.get("TORCHELASTIC_RUN_ID"):
        launcher = f"torchrun --nproc_per_node={os.environ.get('LOCAL_WORLD_SIZE', '?')}"
    argv = sys.argv[1:] if sys.argv and sys.argv[0].endswith(("__main__.py", "explorer")) else []
    command = f"{launcher} -m explorer " + " ".join(shlex.quote(a) for a in argv) if argv else ""
    try:
        run(config, args.out, backend=RegistryBackend(args.data_root), device=args.device,
            progress=not args.no_progress, command=command)
    except KeyboardInterrupt:
        print(f"\ninterrupted: the finished batches are kept in {args.out}; run the same command "
              "again to resume", file=sys.stderr)
        return 130
    return 0
