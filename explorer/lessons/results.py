"""A lesson's attack results: computed once, shipped in ``assets/lessons/``, scored live.

During a class nothing waits on an attack: every state a lesson can show (each step's own, and
one per choice of a method or model control) is attacked beforehand by
``python -m explorer lesson precompute LESSON.toml``, which writes ``<id>.npz`` (the arrays)
and ``<id>.json`` (which lesson version and which states they serve, with a SHA-256 digest of
every array). k and w are not part of a result: moving them only re-scores the stored maps,
which takes milliseconds.

``python -m explorer lesson check LESSON.toml`` (and a test) fails when the file is stale: the
lesson text changed, a state is missing, or an array no longer matches its digest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import attacks, chance, data, metrics, models
from ..attributions import attribution_map
from .spec import SHIPPED_DIR, Lesson, LessonError, StepState

__all__ = ["FORMAT", "StateResult", "compute_state", "precompute", "results_paths",
           "load_results", "check_results", "scores", "array_digest"]

FORMAT = "explorer-lesson-results/1"
_ARRAYS = ("x", "x_adv", "x_noise", "map_orig", "map_adv", "map_noise", "map_others")
MAX_OTHERS = 20  # maps of other bundled images kept for the unrelated-image baseline


@dataclass(frozen=True)
class StateResult:
    """What a step shows for one state: the image, the attacked image and random sign noise at
    the same ε, their maps ``(H, W)`` on the real model, labels and whether each perturbation
    kept the label and changed anything (``found``)."""

    x: np.ndarray          # (C, H, W) in [0, 1]
    x_adv: np.ndarray
    x_noise: np.ndarray
    map_orig: np.ndarray   # (H, W)
    map_adv: np.ndarray
    map_noise: np.ndarray
    map_others: np.ndarray  # (M, H, W): other bundled images, same model and method
    label_orig: int
    label_adv: int
    label_noise: int
    found_adv: bool
    found_noise: bool


def compute_state(state: StepState, device: str = "cpu") -> StateResult:
    """Attack the state's image now (what ``precompute`` stores)."""
    model = models.load(state.dataset, state.model, device)
    x = data.load_samples(state.dataset).x[state.image:state.image + 1].to(device)
    mparams = dict(state.method_params)
    res = attacks.attack(model, x, method=state.method, method_params=mparams,
                         attack=state.attack, seed=state.seed, **dict(state.attack_params))
    info = data.DATASETS[state.dataset]
    own = {p.name for p in attacks.ATTACKS["random_sign"].params} - {"seed"}
    noise_params = attacks.attack_params(
        "random_sign", info.defaults,
        {n: v for n, v in state.attack_params if n in own})
    noise_params.pop("seed", None)
    noise = attacks.attack(model, x, method=state.method, method_params=mparams,
                           attack="random_sign", seed=state.seed, **noise_params)

    def np1(t):
        return t[0].detach().cpu().numpy().astype(np.float32)

    return StateResult(np1(x), np1(res.x_adv), np1(noise.x_adv), np1(res.map_orig),
                       np1(res.map_adv), np1(noise.map_adv), _other_maps(model, state, device),
                       int(res.label_orig[0]),
                       int(res.label_adv[0]), int(noise.label_adv[0]), bool(res.found[0]),
                       bool(noise.found[0]))


def _other_maps(model, state: StepState, device: str) -> np.ndarray:
    """Maps of up to MAX_OTHERS other bundled images, evenly spread over the gallery."""
    x = data.load_samples(state.dataset).x
    idx = [i for i in range(len(x)) if i != state.image]
    if len(idx) > MAX_OTHERS:
        idx = [idx[round(j * (len(idx) - 1) / (MAX_OTHERS - 1))] for j in range(MAX_OTHERS)]
    maps = attribution_map(model, x[idx].to(device), state.method, dict(state.method_params))
    return maps.detach().cpu().numpy().astype(np.float32)


def array_digest(a: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes."""
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def results_paths(lesson: Lesson, folder=None) -> tuple[Path, Path]:
    folder = Path(folder) if folder is not None else SHIPPED_DIR
    return folder / f"{lesson.id}.npz", folder / f"{lesson.id}.json"


def precompute(lesson: Lesson, folder=None, progress=None) -> tuple[Path, Path]:
    """Attack every state of ``lesson`` and write its results file pair; returns the paths."""
    npz_path, json_path = results_paths(lesson, folder)
    arrays, states = {}, {}
    variants = lesson.variants()
    for i, state in enumerate(variants, start=1):
        if progress is not None:
            progress(i, len(variants), state)
        r = compute_state(state)
        key = state.attack_key()
        entry = {"labels": [r.label_orig, r.label_adv, r.label_noise],
                 "found": [r.found_adv, r.found_noise], "digests": {}}
        for name in _ARRAYS:
            a = getattr(r, name)
            arrays[f"{key}.{name}"] = a
            entry["digests"][name] = array_digest(a)
        states[key] = entry
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(npz_path, **arrays)
    meta = {"format": FORMAT, "lesson": lesson.id, "lesson_sha256": lesson.sha256,
            "torch": torch.__version__, "states": states}
    json_path.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return npz_path, json_path


def _read_meta(json_path: Path) -> dict:
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LessonError(f"no precomputed results for this lesson ({json_path.name} is missing); "
                          "run: python -m explorer lesson precompute LESSON.toml") from None
    except (OSError, ValueError) as exc:
        raise LessonError(f"{json_path.name} is damaged ({exc.__class__.__name__}); run: python -m "
                          "explorer lesson precompute LESSON.toml") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise LessonError(f"{json_path.name} is not a lesson results file ({FORMAT})")
    return meta


def check_results(lesson: Lesson, folder=None) -> list[str]:
    """Why the precomputed results do not serve ``lesson`` (empty list: they do)."""
    npz_path, json_path = results_paths(lesson, folder)
    try:
        meta = _read_meta(json_path)
    except LessonError as exc:
        return [str(exc)]
    problems = []
    if meta.get("lesson_sha256") != lesson.sha256:
        problems.append(f"{json_path.name} was computed for another version of the lesson file")
    try:
        with np.load(npz_path) as f:
            stored = {name: f[name] for name in f.files}
    except (OSError, ValueError, EOFError) as exc:
        return problems + [f"{npz_path.name} cannot be read ({exc.__class__.__name__})"]
    for state in lesson.variants():
        key = state.attack_key()
        entry = meta["states"].get(key)
        if entry is None:
            problems.append(f"no result for {state.dataset}/{state.model}/{state.method}/"
                            f"{state.attack} on image {state.image}")
            continue
        for name in _ARRAYS:
            a = stored.get(f"{key}.{name}")
            if a is None or array_digest(a) != entry["digests"][name]:
                problems.append(f"array {key}.{name} is missing or does not match its digest")
    return problems


def load_results(lesson: Lesson, folder=None) -> dict[str, StateResult]:
    """The precomputed results by ``StepState.attack_key()``; LessonError when stale."""
    problems = check_results(lesson, folder)
    if problems:
        raise LessonError("the precomputed results are stale: " + "; ".join(problems[:3]) +
                          ". Run: python -m explorer lesson precompute LESSON.toml")
    npz_path, json_path = results_paths(lesson, folder)
    meta = _read_meta(json_path)
    out = {}
    with np.load(npz_path) as f:
        for key, entry in meta["states"].items():
            arr = {name: f[f"{key}.{name}"] for name in _ARRAYS}
            lo, la, ln = entry["labels"]
            fa, fn = entry["found"]
            out[key] = StateResult(label_orig=lo, label_adv=la, label_noise=ln, found_adv=fa,
                                   found_noise=fn, **arr)
    return out


def scores(result: StateResult, k: int, w: int) -> dict[str, dict[str, float]]:
    """Every metric at (k, w) of the original map against: the attacked map (``attack``), the
    random-sign map (``noise``), and the maps of other images (``unrelated``: the mean over
    them, with ``unrelated_std`` their standard deviation) — the unrelated-image baseline; the
    permutation chance level of the attacked pair (``permutation``) and the attack's score
    normalised against the unrelated-image level (``normalised``: 0 = chance, 1 = perfect)."""
    a = torch.from_numpy(result.map_orig)
    out = {}
    for name, b in (("attack", result.map_adv), ("noise", result.map_noise)):
        vals = metrics.compare(a, torch.from_numpy(b), k, w)
        out[name] = {key: float(v) for key, v in vals.items()}
    others = torch.from_numpy(result.map_others)
    vals = metrics.compare(a.expand_as(others).contiguous(), others, k, w)
    out["unrelated"] = {key: float(v.nanmean()) for key, v in vals.items()}
    out["unrelated_std"] = {key: float(v[~v.isnan()].std()) if int((~v.isnan()).sum()) > 1
                            else float("nan") for key, v in vals.items()}
    perm = chance.permutation_chance(a, torch.from_numpy(result.map_adv), k, w)
    out["permutation"] = {key: float(v) for key, v in perm.items()}
    out["normalised"] = {key: chance.normalise(out["attack"][key], out["unrelated"][key],
                                               metrics.METRICS[key].higher_is_better)
                         for key in out["attack"]}
    return out
