"""What to evaluate: the configuration as asked (:class:`EvalConfig`) and its resolution
(:class:`Plan`).

:func:`resolve_config` checks a configuration against the registries and fills in every default:
the dataset's paper settings (``explorer.data.DATASETS[d].defaults``: ε, evaluation k, attack
k', step α, steps P, w) where the configuration says ``"paper"`` or leaves a value unset, and the
methods' parameters with their declared defaults. The result is a frozen :class:`Plan` with one
:class:`DatasetPlan` per dataset and one :class:`MethodPlan` per method; ``Plan.to_json`` is the
``"resolved"`` entry of a results folder's ``config.json`` and ``Plan.from_json`` reads it back.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from fractions import Fraction
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from .. import metrics
from ..attacks import ATTACKS
from ..attributions import METHODS
from ..params import resolve
from ..surrogate import DEFAULT_BETA
from . import schema

if TYPE_CHECKING:  # annotation only: the backend module is not needed to read a plan
    from .backend import Backend

__all__ = [
    "PAPER",
    "SOURCES",
    "parse_number",
    "parse_method_params",
    "EvalConfig",
    "MethodPlan",
    "DatasetPlan",
    "Plan",
    "resolve_config",
]

PAPER = "paper"              # "use the dataset's paper value"
SOURCES = ("test", "samples")  # the test set, or the bundled sample images


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
    ``attack_w`` default (None) to the dataset's paper values. ``select_k``: the k at which the
    selection measure picks the chosen ``x'`` among the candidates (None: the first reported k,
    so that the chosen ``x'`` is never weaker than the random-sign candidates at the k the report
    judges; the attack's loss still uses ``attack_k``). ``method_params[m]`` sets the
    parameters of method ``m`` for the reported maps; ``attack_method_params[m]`` overrides some
    of them inside the attack loop (e.g. fewer Integrated-Gradients path steps while attacking:
    the chosen ``x'`` is then re-measured with the reported parameters). Images are the
    ``n_images`` consecutive items of the test set (``source="test"``) or of the bundled samples
    (``"samples"``) starting at ``image_offset``.

    ``restarts``: runs of each attack, the worst case for the explanation kept (the random-sign
    draws of the same seed are candidates of the gradient attacks, so they are never weaker than
    noise). ``beta``: the surrogate's softplus β, or several (restart r uses ``beta[r % len]``).
    ``all_images``: attack every image; False: only correctly classified ones (and those of
    unknown label), the others recorded with ``attacked = False`` and no scores. The defaults
    here (1 restart, every image) are those of the app's live sweeps; ``python -m explorer
    evaluate`` defaults to the authors' setting (3 restarts, correctly classified images).
    ``chance_mc``: also record the Monte-Carlo permutation chance levels (diverse variants and
    LENS correlations at w >= 1, the centre shift; about 45 ms per 28×28 pair and (k, w)).
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
    select_k: int | None = None
    beta: Any = DEFAULT_BETA
    measure: str = "topk_intersection"
    method_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    attack_method_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    restarts: int = 1
    all_images: bool = True
    chance_mc: bool = False

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


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class MethodPlan:
    """The parameters of one attribution method: ``report`` for the reported maps of x and x',
    ``attack`` inside the attack loop (equal unless the configuration overrides some)."""

    report: Mapping[str, Any]
    attack: Mapping[str, Any]

    def to_json(self) -> dict:
        return {"report": dict(self.report), "attack": dict(self.attack)}

    @classmethod
    def from_json(cls, d: Mapping) -> "MethodPlan":
        return cls(_frozen(d["report"]), _frozen(d["attack"]))


@dataclass(frozen=True)
class DatasetPlan:
    """The settings of one dataset: its map ``size`` (H, W), the ε budgets, the evaluation k
    and w grids, the attack's k', steps P, step α and w, and the models' weight digests (where
    known)."""

    size: tuple[int, int]
    eps: tuple[float, ...]
    k: tuple[int, ...]
    w: tuple[int, ...]
    attack_k: int
    steps: int
    step_size: float
    attack_w: int
    model_weights: Mapping[str, str] = field(default_factory=lambda: _frozen({}))
    select_k: int = 0  # 0: the selection measure at attack_k (runs recorded before this field)

    def to_json(self) -> dict:
        out = {"size": list(self.size), "eps": list(self.eps), "k": list(self.k),
               "w": list(self.w), "attack_k": self.attack_k, "steps": self.steps,
               "step_size": self.step_size, "attack_w": self.attack_w}
        if self.select_k:  # absent in runs recorded before it (= at attack_k)
            out["select_k"] = self.select_k
        if self.model_weights:
            out["model_weights"] = dict(self.model_weights)
        return out

    @classmethod
    def from_json(cls, d: Mapping) -> "DatasetPlan":
        return cls(tuple(d["size"]), tuple(d["eps"]), tuple(d["k"]), tuple(d["w"]),
                   d["attack_k"], d["steps"], d["step_size"], d["attack_w"],
                   _frozen(d.get("model_weights", {})), int(d.get("select_k", 0)))


@dataclass(frozen=True)
class Plan:
    """A checked configuration with every default filled in (see the module docstring)."""

    datasets: tuple[str, ...]
    models: tuple[str, ...]
    methods: tuple[str, ...]
    attacks: tuple[str, ...]
    n_images: int
    image_offset: int
    source: str
    batch_size: int
    seed: int
    beta: float
    measure: str
    method_params: Mapping[str, MethodPlan]
    per_dataset: Mapping[str, DatasetPlan]
    restarts: int = 1
    all_images: bool = True
    chance_mc: bool = False
    columns_version: int = 1

    @property
    def betas(self) -> tuple[float, ...]:
        """The surrogate β values, cycled over the restarts."""
        return self.beta if isinstance(self.beta, tuple) else (float(self.beta),)

    def columns(self, dataset: str) -> list[str]:
        """The columns of ``dataset``'s rows, in file order (of this plan's column version)."""
        p = self.per_dataset[dataset]
        return schema.columns_for(p.k, p.w, self.columns_version)

    def to_json(self) -> dict:
        """The ``"resolved"`` entry of ``config.json``."""
        extra = {} if self.columns_version == 1 else {
            "restarts": self.restarts, "all_images": self.all_images,
            "chance_mc": self.chance_mc, "columns_version": self.columns_version}
        return {**extra,
            "datasets": list(self.datasets), "models": list(self.models),
            "methods": list(self.methods), "attacks": list(self.attacks),
            "n_images": self.n_images, "image_offset": self.image_offset,
            "source": self.source, "batch_size": self.batch_size, "seed": self.seed,
            "beta": (list(self.betas) if len(self.betas) > 1 else self.betas[0]),
            "measure": self.measure,
            "method_params": {m: p.to_json() for m, p in self.method_params.items()},
            "per_dataset": {d: p.to_json() for d, p in self.per_dataset.items()},
        }

    @classmethod
    def from_json(cls, d: Mapping) -> "Plan":
        """Read :meth:`to_json`'s output back; KeyError names a missing entry. Entries older
        folders lack take the values those runs used (one restart, every image attacked,
        column version 1)."""
        beta = d["beta"]
        beta = tuple(float(b) for b in beta) if isinstance(beta, list) else float(beta)
        return cls(
            tuple(d["datasets"]), tuple(d["models"]), tuple(d["methods"]), tuple(d["attacks"]),
            d["n_images"], d["image_offset"], d["source"], d["batch_size"], d["seed"],
            beta, d["measure"],
            _frozen({m: MethodPlan.from_json(p) for m, p in d["method_params"].items()}),
            _frozen({k: DatasetPlan.from_json(p) for k, p in d["per_dataset"].items()}),
            int(d.get("restarts", 1)), bool(d.get("all_images", True)),
            bool(d.get("chance_mc", False)), int(d.get("columns_version", 1)))


# --------------------------------------------------------------------------------------------
# Checking and resolving a configuration
# --------------------------------------------------------------------------------------------

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


def _method_plans(config: EvalConfig, methods: Sequence[str]) -> dict[str, MethodPlan]:
    for what, params in (("method_params", config.method_params),
                         ("attack_method_params", config.attack_method_params)):
        for m in params:
            if m not in methods:
                raise ValueError(f"{what} names method {m!r}, which is not evaluated; evaluated "
                                 f"methods: {', '.join(methods)}")
    out = {}
    for m in methods:
        report = resolve(METHODS[m].params, dict(config.method_params.get(m, {})))
        attack_p = resolve(METHODS[m].params,
                           {**report, **dict(config.attack_method_params.get(m, {}))})
        out[m] = MethodPlan(_frozen(report), _frozen(attack_p))
    return out


def _dataset_plan(config: EvalConfig, backend: "Backend", d: str, models: Sequence[str],
                  ws: list[int], n_images: int, offset: int) -> DatasetPlan:
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
    eps = list(dict.fromkeys(defaults.epsilon if e == PAPER else parse_number(e)
                             for e in _as_tuple(config.eps, "eps")))
    for e in eps:
        if not 0.0 <= e <= 1.0 or math.isnan(e):
            raise ValueError(f"eps values must be in [0, 1] (pixel units) or 'paper'; got {e}")
    names = [f"{e:.6g}" for e in eps]
    if len(set(names)) != len(names):
        raise ValueError(f"eps values {eps} are equal to 6 significant digits; give distinct "
                         "values")
    ks = list(dict.fromkeys(defaults.eval_k if k == PAPER else k
                            for k in _as_tuple(config.k, "k")))
    ks = [metrics.validate_k(k, h, w_) for k in ks]
    attack_k = defaults.attack_k if config.attack_k is None else config.attack_k
    attack_k = metrics.validate_k(attack_k, h, w_)
    select_k = ks[0] if config.select_k is None else metrics.validate_k(config.select_k, h, w_)
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
    return DatasetPlan((h, w_), tuple(eps), tuple(ks), tuple(ws), attack_k, steps, step_size,
                       attack_w, _frozen(fingerprints), select_k)


def resolve_config(config: EvalConfig, backend: "Backend") -> Plan:
    """Check ``config`` and fill in every default; returns the :class:`Plan`.

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
    method_plans = _method_plans(config, methods)
    per_dataset = {d: _dataset_plan(config, backend, d, models, ws, n_images, offset)
                   for d in datasets}
    restarts = _int_in(config.restarts, "restarts", 1)
    betas = _as_tuple(config.beta, "beta")
    for b in betas:
        if isinstance(b, bool) or not isinstance(b, (int, float)) or not b > 0 or math.isinf(b):
            raise ValueError(f"beta values must be finite numbers > 0; got {b!r}")
    if len(set(betas)) != len(betas):
        raise ValueError(f"beta lists a value twice: {list(betas)}")
    beta = float(betas[0]) if len(betas) == 1 else tuple(float(b) for b in betas)
    for flag in ("all_images", "chance_mc"):
        if not isinstance(getattr(config, flag), bool):
            raise ValueError(f"{flag} must be True or False; got {getattr(config, flag)!r}")
    return Plan(tuple(datasets), tuple(models), tuple(methods), tuple(attacks), n_images,
                offset, config.source, batch_size, seed, beta, config.measure,
                _frozen(method_plans), _frozen(per_dataset), restarts, config.all_images,
                config.chance_mc, schema.COLUMNS_VERSION)
