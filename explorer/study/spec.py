"""A study's specification: read from TOML (``tomllib``) and checked field by field.

Every refusal is a :class:`SpecError` whose message names the field, says what was wrong and
what is allowed. The example file ``examples/study_mnist.toml`` shows every field.

Sections and fields (defaults in brackets)::

    [study]     title, task ("rating" | "choice" | "same_different"), seed [0],
                consent, instructions, completion_message, redirect_url [""]
    [stimuli]   dataset, models, methods, attacks, epsilons, images [16], steps [None: the
                dataset's paper setting], attack_k [None: paper], k [paper eval_k], w [paper w],
                pairs [12], disagreement_fraction [0.5], show_images [false]
    [controls]  identical [2], unrelated [2], practice [2]
    [exclusion] max_failed_checks [0]
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

from .tasks import TASKS

__all__ = ["SpecError", "StudySpec", "parse_spec", "load_spec", "spec_from_dict"]


class SpecError(ValueError):
    """A study file that cannot be used; the message names the field and what is allowed."""


@dataclass(frozen=True)
class StudySpec:
    """A checked study specification (every field present; see the module docstring)."""

    title: str
    task: str
    seed: int
    consent: str
    instructions: str
    completion_message: str
    redirect_url: str
    dataset: str
    models: tuple[str, ...]
    methods: tuple[str, ...]
    attacks: tuple[str, ...]
    epsilons: tuple[float, ...]
    images: int
    steps: int | None
    attack_k: int | None
    k: int
    w: int
    pairs: int
    disagreement_fraction: float
    show_images: bool
    identical: int
    unrelated: int
    practice: int
    max_failed_checks: int

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


_TEXT_MAX = 20_000

# section -> field -> (kind, default); default _REQUIRED means the field must be given.
_REQUIRED = object()
_FIELDS: dict[str, dict[str, tuple[str, Any]]] = {
    "study": {
        "title": ("text", _REQUIRED),
        "task": ("task", _REQUIRED),
        "seed": ("int>=0", 0),
        "consent": ("text", _REQUIRED),
        "instructions": ("text", _REQUIRED),
        "completion_message": ("text", "Thank you for taking part."),
        "redirect_url": ("url", ""),
    },
    "stimuli": {
        "dataset": ("dataset", _REQUIRED),
        "models": ("models", _REQUIRED),
        "methods": ("methods", _REQUIRED),
        "attacks": ("attacks", _REQUIRED),
        "epsilons": ("epsilons", _REQUIRED),
        "images": ("int>=2", 16),
        "steps": ("int>=1|none", None),
        "attack_k": ("int>=1|none", None),
        "k": ("int>=1|none", None),
        "w": ("int>=0|none", None),
        "pairs": ("int>=2", 12),
        "disagreement_fraction": ("fraction", 0.5),
        "show_images": ("bool", False),
    },
    "controls": {
        "identical": ("int>=0", 2),
        "unrelated": ("int>=0", 2),
        "practice": ("int>=0", 2),
    },
    "exclusion": {
        "max_failed_checks": ("int>=0", 0),
    },
}


def _where(section: str, name: str) -> str:
    return f"[{section}] {name}"


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_int(where: str, v, lo: int) -> int:
    if not _is_int(v):
        raise SpecError(f"{where} must be a whole number >= {lo}; got {v!r}")
    if v < lo:
        raise SpecError(f"{where} must be >= {lo}; got {v}")
    return v


def _list_of_str(where: str, v, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
        raise SpecError(f"{where} must be a non-empty list of names; got {v!r}; allowed: "
                        f"{', '.join(allowed)}")
    bad = [x for x in v if x not in allowed]
    if bad:
        raise SpecError(f"{where}: unknown {', '.join(map(repr, bad))}; allowed: "
                        f"{', '.join(allowed)}")
    if len(set(v)) != len(v):
        raise SpecError(f"{where} lists a name twice: {v!r}")
    return tuple(v)


def _check(section: str, name: str, kind: str, v, ctx: dict) -> Any:
    from .. import attacks, attributions, data, models  # noqa: PLC0415 - registries; torch

    where = _where(section, name)
    if kind == "text":
        if not isinstance(v, str) or not v.strip():
            raise SpecError(f"{where} must be a non-empty text (a TOML string); got {v!r}")
        if len(v) > _TEXT_MAX:
            raise SpecError(f"{where} is {len(v)} characters long; at most {_TEXT_MAX} allowed")
        return v.strip()
    if kind == "url":
        if not isinstance(v, str):
            raise SpecError(f"{where} must be a text (a URL or empty); got {v!r}")
        v = v.strip()
        if v and not (v.startswith("https://") or v.startswith("http://")):
            raise SpecError(f"{where} must start with https:// or http:// (or be empty); got {v!r}")
        return v
    if kind == "task":
        if v not in TASKS:
            raise SpecError(f"{where} must be one of {', '.join(TASKS)}; got {v!r}")
        return v
    if kind == "bool":
        if not isinstance(v, bool):
            raise SpecError(f"{where} must be true or false; got {v!r}")
        return v
    if kind == "fraction":
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= v <= 1.0:
            raise SpecError(f"{where} must be a number from 0 to 1; got {v!r}")
        return float(v)
    if kind.startswith("int>="):
        lo_text, _, none_ok = kind[5:].partition("|")
        if none_ok and v is None:
            return None
        return _check_int(where, v, int(lo_text))
    if kind == "dataset":
        keys = tuple(data.DATASETS)
        if v not in keys:
            raise SpecError(f"{where} must be one of {', '.join(keys)}; got {v!r}")
        return v
    if kind == "models":
        names = tuple(m.name for m in models.models_for(ctx["dataset"]))
        return _list_of_str(where, v, names)
    if kind == "methods":
        return _list_of_str(where, v, tuple(attributions.METHODS))
    if kind == "attacks":
        allowed = tuple(k for k, a in attacks.ATTACKS.items() if not a.needs_region)
        return _list_of_str(where, v, allowed)
    if kind == "epsilons":
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            v = [v]
        if (not isinstance(v, list) or not v
                or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)):
            raise SpecError(f"{where} must be a non-empty list of numbers in (0, 1]; got {v!r}")
        bad = [x for x in v if not 0.0 < x <= 1.0]
        if bad:
            raise SpecError(f"{where}: {bad!r} outside (0, 1]; ε is in [0, 1] pixel units")
        return tuple(float(x) for x in v)
    raise AssertionError(kind)


def spec_from_dict(raw: Mapping[str, Any]) -> StudySpec:
    """Check a parsed TOML document and fill in the defaults."""
    from .. import data  # noqa: PLC0415 - registry (imports torch)

    if not isinstance(raw, Mapping):
        raise SpecError("a study file must be a TOML document with [study] and [stimuli] sections")
    unknown = [s for s in raw if s not in _FIELDS]
    if unknown:
        raise SpecError(f"unknown section(s) {', '.join(map(repr, unknown))}; allowed: "
                        f"{', '.join(f'[{s}]' for s in _FIELDS)}")
    out: dict[str, Any] = {}
    ctx: dict[str, Any] = {}
    for section, fields in _FIELDS.items():
        given = raw.get(section, {})
        if not isinstance(given, Mapping):
            raise SpecError(f"[{section}] must be a table (a [{section}] header with fields)")
        extra = [f for f in given if f not in fields]
        if extra:
            raise SpecError(f"[{section}]: unknown field(s) {', '.join(map(repr, extra))}; "
                            f"allowed: {', '.join(fields)}")
        for name, (kind, default) in fields.items():
            if name not in given:
                if default is _REQUIRED:
                    raise SpecError(f"{_where(section, name)} is missing; it is required")
                value = default
            else:
                value = _check(section, name, kind, given[name], ctx)
            out[name] = value
            if name == "dataset":
                ctx["dataset"] = value
    paper = data.get_dataset(out["dataset"]).defaults
    if out["k"] is None:
        out["k"] = paper.eval_k
    if out["w"] is None:
        out["w"] = paper.w
    h, wd = data.get_dataset(out["dataset"]).size
    if out["k"] > h * wd:
        raise SpecError(f"[stimuli] k = {out['k']} exceeds the {h}×{wd} = {h * wd} pixels of "
                        f"{out['dataset']}")
    pool = out["images"] * len(out["models"]) * len(out["methods"]) * len(out["attacks"]) * \
        len(out["epsilons"])
    if out["pairs"] > pool:
        raise SpecError(f"[stimuli] pairs = {out['pairs']} exceeds the {pool} candidate pairs "
                        "(images × models × methods × attacks × epsilons); lower pairs or add "
                        "images, attacks or ε values")
    if out["task"] == "choice" and len(out["attacks"]) * len(out["epsilons"]) < 2:
        raise SpecError("[study] task = 'choice' needs at least two perturbed maps per image: "
                        "give two or more [stimuli] attacks or epsilons")
    if out["practice"] > out["pairs"]:
        raise SpecError(f"[controls] practice = {out['practice']} exceeds [stimuli] pairs = "
                        f"{out['pairs']}; practice trials reuse frozen pairs")
    if out["identical"] + out["unrelated"] > 0 and out["max_failed_checks"] >= \
            out["identical"] + out["unrelated"]:
        raise SpecError(f"[exclusion] max_failed_checks = {out['max_failed_checks']} would never "
                        f"exclude anyone with {out['identical'] + out['unrelated']} check "
                        "trial(s); allowed: fewer than the number of check trials")
    for key in ("models", "methods", "attacks", "epsilons"):
        out[key] = tuple(out[key])
    return StudySpec(**out)


def parse_spec(text: str, source: str = "study file") -> StudySpec:
    """Parse and check TOML text; SpecError (naming ``source``) when it cannot be used."""
    if not isinstance(text, str):
        raise SpecError(f"{source}: expected text")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{source} is not valid TOML: {exc}") from None
    try:
        return spec_from_dict(raw)
    except SpecError as exc:
        raise SpecError(f"{source}: {exc}") from None


def load_spec(path: str | Path) -> StudySpec:
    """Read and check a study TOML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"study file {str(path)!r} does not exist") from None
    except UnicodeDecodeError:
        raise SpecError(f"study file {str(path)!r} is not UTF-8 text") from None
    except OSError as exc:
        raise SpecError(f"study file {str(path)!r} cannot be read: {exc.strerror}") from None
    return parse_spec(text, source=f"study file {path.name!r}")
