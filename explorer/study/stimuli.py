"""Freezing a study's stimuli: attack once, measure once, render once to PNG.

:func:`freeze` turns a :class:`~explorer.study.spec.StudySpec` into a :class:`FrozenStudy`:

1. The candidate pool: every bundled sample image chosen by the seed × model × method ×
   attack × ε gives one (original map, attacked map) pair.
2. Every pair's metrics (every key of :func:`explorer.metrics.compare` at the study's k and w),
   each with its chance level and chance-normalised score (``explorer.chance``).
3. Selection, stratified: a share ``disagreement_fraction`` of the main trials is taken where
   top-k intersection and w-LENS-recall@k disagree most (rating / same-different: the largest
   difference of the two metrics' percentile ranks; choice: the two metrics prefer different
   candidates); the rest spread evenly over the w-LENS-recall range (choice: at random).
4. Controls: identical pairs and unrelated pairs (the maps of two different images) as
   attention checks; practice trials from pool pairs not used as main trials.
5. Rendering: each trial's maps as PNG with one colour scale per trial (0 to the largest value
   among the maps it shows; inferno), upscaled with nearest-neighbour to at least 224 px, plus
   the images when ``show_images``; each PNG's SHA-256 is stored with it.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image
from scipy.stats import rankdata

from .. import attacks, data, metrics, models
from .records import FrozenStudy, Pair, Stimulus, Trial, new_study_id, sha256
from .spec import StudySpec

try:
    from .. import chance as _chance
except ImportError:  # the chance-level module arrives from its own branch; until then: None
    _chance = None

__all__ = ["Stimulus", "Pair", "Trial", "FrozenStudy", "freeze", "render_map_png",
           "render_image_png", "sha256", "new_study_id"]

MIN_SIDE = 224


def _png(rgb: np.ndarray) -> bytes:
    img = Image.fromarray(rgb, mode="RGB")
    scale = max(1, math.ceil(MIN_SIDE / min(rgb.shape[:2])))
    if scale > 1:
        img = img.resize((rgb.shape[1] * scale, rgb.shape[0] * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def render_map_png(m: np.ndarray, vmax: float) -> bytes:
    """An ``(H, W)`` non-negative map as an inferno PNG on the scale [0, vmax]."""
    m = np.asarray(m, dtype=np.float64)
    scaled = np.clip(m / vmax, 0.0, 1.0) if vmax > 0 else np.zeros_like(m)
    rgba = colormaps["inferno"](scaled)
    return _png((rgba[..., :3] * 255.0 + 0.5).astype(np.uint8))


def render_image_png(x: np.ndarray) -> bytes:
    """A ``(C, H, W)`` image in [0, 1] as PNG."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0).transpose(1, 2, 0)
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    return _png((x * 255.0 + 0.5).astype(np.uint8))


def _pick_images(spec: StudySpec, samples: data.Samples, rng: np.random.Generator) -> np.ndarray:
    """``spec.images`` sample indices, as evenly over the classes as possible, seeded."""
    labels = samples.labels.numpy()
    by_class = {c: rng.permutation(np.flatnonzero(labels == c)).tolist()
                for c in sorted(set(labels.tolist()))}
    chosen: list[int] = []
    while len(chosen) < min(spec.images, len(labels)):
        for c in list(by_class):
            if by_class[c] and len(chosen) < spec.images:
                chosen.append(by_class[c].pop())
    return np.array(sorted(chosen))


def _metric_records(a: torch.Tensor, b: torch.Tensor, k: int, w: int) -> list[dict]:
    """Per pair: {key: {"score", "chance": None, "normalised": None}} for every metric of
    compare (the chance levels are filled in by :func:`_add_chance` for the pairs kept)."""
    scores = metrics.compare(a, b, k=k, w=w)
    return [{key: {"score": _finite(float(scores[key][i])), "chance": None, "normalised": None}
             for key in metrics.METRIC_KEYS} for i in range(a.shape[0])]


def _add_chance(recs: list[dict], a: torch.Tensor, b: torch.Tensor, k: int, w: int) -> None:
    """Fill in each record's chance level and chance-normalised score, in one batch."""
    if _chance is None or not recs:
        return
    chance = _chance.permutation_chance(a, b, k, w)
    for i, rec in enumerate(recs):
        for key, c in chance.items():
            hib = metrics.METRICS[key].higher_is_better
            score = rec[key]["score"]
            rec[key]["chance"] = _finite(float(c[i]))
            rec[key]["normalised"] = None if score is None else _finite(float(
                _chance.normalise(float(score), float(c[i]), higher_is_better=hib)))


def _finite(v):
    return None if v is None or not math.isfinite(v) else v


@dataclass
class _Pool:
    maps_orig: dict  # (model, method) -> (N, H, W) tensor over the chosen images
    x: torch.Tensor
    entries: list  # dicts: image (position in chosen), model, method, attack, eps, map, x_adv


def _attack_pool(spec: StudySpec, x: torch.Tensor, progress) -> _Pool:
    paper = data.get_dataset(spec.dataset).defaults
    maps_orig, entries = {}, []
    combos = [(mo, me, at, ep) for mo in spec.models for me in spec.methods
              for at in spec.attacks for ep in spec.epsilons]
    loaded = {}
    for i, (mo, me, at, ep) in enumerate(combos):
        if progress:
            progress(f"attack {i + 1}/{len(combos)}: {mo} {me} {at} ε={ep:g}")
        if mo not in loaded:
            loaded[mo] = models.load(spec.dataset, mo)
        specs = {p.name for p in attacks.ATTACKS[at].params}
        overrides = {"epsilon": ep, "seed": spec.seed} if "seed" in specs else {"epsilon": ep}
        if spec.steps is not None and "steps" in specs:
            overrides["steps"] = spec.steps
        if spec.attack_k is not None and "attack_k" in specs:
            overrides["attack_k"] = spec.attack_k
        params = attacks.attack_params(at, paper, overrides)
        res = attacks.attack(loaded[mo], x, method=me, attack=at, **params)
        maps_orig.setdefault((mo, me), res.map_orig.detach().cpu())
        for j in range(x.shape[0]):
            entries.append({"image": j, "model": mo, "method": me, "attack": at, "epsilon": ep,
                            "map": res.map_adv[j].detach().cpu(),
                            "x_adv": res.x_adv[j].detach().cpu()})
    return _Pool(maps_orig, x, entries)


def _select_rating(spec, recs, rng) -> list[tuple[int, str]]:
    """Main pair indices with their stratum (rating and same/different tasks)."""
    n = len(recs)
    topk = np.array([r["topk_intersection"]["score"] or 0.0 for r in recs])
    lens = np.array([r["lens_recall"]["score"] or 0.0 for r in recs])
    gap = np.abs(rankdata(topk) / n - rankdata(lens) / n) + rng.uniform(0, 1e-9, n)
    n_dis = int(round(spec.disagreement_fraction * spec.pairs))
    dis = [int(i) for i in np.argsort(-gap)[:n_dis]]
    rest = [i for i in np.argsort(lens + rng.uniform(0, 1e-9, n)) if i not in set(dis)]
    m = spec.pairs - n_dis
    spread = [int(rest[int(round(q))]) for q in np.linspace(0, len(rest) - 1, m)] if m else []
    spread = list(dict.fromkeys(spread))
    extra = [int(i) for i in rest if i not in set(spread)]
    spread += extra[:m - len(spread)]
    return [(i, "disagree") for i in dis] + [(i, "spread") for i in spread]


def _select_choice(spec, entries, recs, rng) -> list[tuple[tuple[int, int], str]]:
    """Main candidate pairs (two pool entries with the same original map) with their stratum."""
    groups: dict[tuple, list[int]] = {}
    for idx, e in enumerate(entries):
        groups.setdefault((e["image"], e["model"], e["method"]), []).append(idx)
    cands = [(g[i], g[j]) for g in groups.values() for i in range(len(g))
             for j in range(i + 1, len(g))]

    def disagree(c):
        a, b = (recs[c[0]], recs[c[1]])
        dt = (a["topk_intersection"]["score"] or 0) - (b["topk_intersection"]["score"] or 0)
        dl = (a["lens_recall"]["score"] or 0) - (b["lens_recall"]["score"] or 0)
        return dt * dl < 0

    order = rng.permutation(len(cands))
    dis = [cands[i] for i in order if disagree(cands[i])]
    agree = [cands[i] for i in order if not disagree(cands[i])]
    n_dis = min(len(dis), int(round(spec.disagreement_fraction * spec.pairs)))
    chosen = [(c, "disagree") for c in dis[:n_dis]]
    rest = agree + dis[n_dis:]
    chosen += [(c, "spread") for c in rest[:spec.pairs - n_dis]]
    if len(chosen) < spec.pairs:
        raise ValueError(f"[stimuli] pairs = {spec.pairs} choice trials requested but only "
                         f"{len(chosen)} candidate pairs exist; add images, attacks or ε values")
    return chosen


def freeze(spec: StudySpec, spec_toml: str, *, study_id: str | None = None,
           progress: Callable[[str], None] | None = None) -> FrozenStudy:
    """Attack, measure, select and render every stimulus of a study (see the module docstring).
    Deterministic for a given spec (the seed), except for the new study id."""
    rng = np.random.default_rng(spec.seed)
    torch.manual_seed(spec.seed)
    samples = data.load_samples(spec.dataset)
    chosen = _pick_images(spec, samples, rng)
    x = samples.x[chosen]
    labels = samples.labels[chosen].tolist()
    names = [samples.names[i] for i in chosen]
    pool = _attack_pool(spec, x, progress)
    if progress:
        progress(f"metrics of {len(pool.entries)} candidate pairs")
    a = torch.stack([pool.maps_orig[(e["model"], e["method"])][e["image"]] for e in pool.entries])
    b = torch.stack([e["map"] for e in pool.entries])
    recs = _metric_records(a.double(), b.double(), spec.k, spec.w)

    pairs: list[Pair] = []
    trials: list[Trial] = []
    stimuli: dict[str, Stimulus] = {}

    kept_maps: list[tuple[torch.Tensor, torch.Tensor]] = []

    def add_pair(kind, e, rec, stratum="", image_b=None, *, maps) -> int:
        rec = {key: dict(v) for key, v in rec.items()}
        kept_maps.append(maps)
        p = Pair(len(pairs), kind, int(chosen[e["image"]]),
                 int(chosen[image_b if image_b is not None else e["image"]]), names[e["image"]],
                 e["model"], e["method"], e["attack"], float(e["epsilon"]), rec, stratum)
        pairs.append(p)
        return p.id

    def add_stims(tid: int, maps: dict, images: dict) -> dict:
        vmax = max(float(m.max()) for m in maps.values())
        roles = {}
        for role, m in maps.items():
            png = render_map_png(m.numpy(), vmax)
            sid = f"t{tid}-{role}"
            stimuli[sid] = Stimulus(sid, png, sha256(png))
            roles[role] = sid
        if spec.show_images:
            for role, img in images.items():
                png = render_image_png(img.numpy())
                sid = f"t{tid}-image_{role}"
                stimuli[sid] = Stimulus(sid, png, sha256(png))
                roles[f"image_{role}"] = sid
        return roles

    def orig(e):
        return pool.maps_orig[(e["model"], e["method"])][e["image"]]

    used: set[int] = set()
    if spec.task == "choice":
        for (i0, i1), stratum in _select_choice(spec, pool.entries, recs, rng):
            e0, e1 = pool.entries[i0], pool.entries[i1]
            p0, p1 = (add_pair("candidate", e0, recs[i0], stratum, maps=(orig(e0), e0["map"])),
                      add_pair("candidate", e1, recs[i1], stratum, maps=(orig(e1), e1["map"])))
            tid = len(trials)
            st = add_stims(tid, {"ref": orig(e0), "c0": e0["map"], "c1": e1["map"]},
                           {"ref": x[e0["image"]], "c0": e0["x_adv"], "c1": e1["x_adv"]})
            trials.append(Trial(tid, "main", (p0, p1), st, None, stratum))
            used.update((i0, i1))
    else:
        for i, stratum in _select_rating(spec, recs, rng):
            e = pool.entries[i]
            pid = add_pair("candidate", e, recs[i], stratum, maps=(orig(e), e["map"]))
            tid = len(trials)
            st = add_stims(tid, {"a": orig(e), "b": e["map"]}, {"a": x[e["image"]], "b": e["x_adv"]})
            trials.append(Trial(tid, "main", (pid,), st, None, stratum))
            used.add(i)

    # Attention checks: identical pairs and unrelated pairs (another image of another class).
    n_img = len(chosen)
    for kind, count in (("identical", spec.identical), ("unrelated", spec.unrelated)):
        for c in range(count):
            j = int(rng.integers(n_img))
            others = [o for o in range(n_img) if labels[o] != labels[j]] or \
                [o for o in range(n_img) if o != j]
            o = int(rng.choice(others))
            mo, me = spec.models[c % len(spec.models)], spec.methods[c % len(spec.methods)]
            mj, mo_map = pool.maps_orig[(mo, me)][j], pool.maps_orig[(mo, me)][o]
            e = {"image": j, "model": mo, "method": me, "attack": "none", "epsilon": 0.0}
            tid = len(trials)
            if spec.task == "choice":
                ident = _metric_records(mj[None].double(), mj[None].double(), spec.k, spec.w)[0]
                unrel = _metric_records(mj[None].double(), mo_map[None].double(), spec.k, spec.w)[0]
                expected = int(rng.integers(2))
                ids = [None, None]
                ids[expected] = add_pair("identical", e, ident, maps=(mj, mj))
                ids[1 - expected] = add_pair("unrelated", e, unrel, image_b=o, maps=(mj, mo_map))
                cmaps = {f"c{expected}": mj, f"c{1 - expected}": mo_map}
                st = add_stims(tid, {"ref": mj, **dict(sorted(cmaps.items()))},
                               {"ref": x[j], f"c{expected}": x[j], f"c{1 - expected}": x[o]})
                trials.append(Trial(tid, kind, tuple(ids), st, expected))
            else:
                other = mj if kind == "identical" else mo_map
                rec = _metric_records(mj[None].double(), other[None].double(), spec.k, spec.w)[0]
                pid = add_pair(kind, e, rec, image_b=j if kind == "identical" else o,
                               maps=(mj, other))
                st = add_stims(tid, {"a": mj, "b": other},
                               {"a": x[j], "b": x[j] if kind == "identical" else x[o]})
                trials.append(Trial(tid, kind, (pid,), st))

    # Practice: pool pairs not used as main trials (not analysed).
    spare = [i for i in rng.permutation(len(pool.entries)).tolist() if i not in used]
    for c in range(spec.practice):
        i = spare[c % len(spare)] if spare else int(rng.integers(len(pool.entries)))
        e = pool.entries[i]
        tid = len(trials)
        if spec.task == "choice":
            same = [j for j in spare if j != i and pool.entries[j]["image"] == e["image"]
                    and pool.entries[j]["model"] == e["model"]
                    and pool.entries[j]["method"] == e["method"]]
            j = same[0] if same else next(j for j in range(len(pool.entries)) if j != i and
                                          pool.entries[j]["image"] == e["image"] and
                                          pool.entries[j]["model"] == e["model"] and
                                          pool.entries[j]["method"] == e["method"])
            e1 = pool.entries[j]
            p0 = add_pair("candidate", e, recs[i], maps=(orig(e), e["map"]))
            p1 = add_pair("candidate", e1, recs[j], maps=(orig(e1), e1["map"]))
            st = add_stims(tid, {"ref": orig(e), "c0": e["map"], "c1": e1["map"]},
                           {"ref": x[e["image"]], "c0": e["x_adv"], "c1": e1["x_adv"]})
            trials.append(Trial(tid, "practice", (p0, p1), st))
        else:
            pid = add_pair("candidate", e, recs[i], maps=(orig(e), e["map"]))
            st = add_stims(tid, {"a": orig(e), "b": e["map"]}, {"a": x[e["image"]], "b": e["x_adv"]})
            trials.append(Trial(tid, "practice", (pid,), st))

    if progress:
        progress(f"chance levels of the {len(pairs)} pairs kept")
    _add_chance([p.metrics for p in pairs], torch.stack([m[0] for m in kept_maps]).double(),
                torch.stack([m[1] for m in kept_maps]).double(), spec.k, spec.w)
    ordered = tuple(stimuli[k] for k in sorted(stimuli))
    digest = sha256("".join(s.sha256 for s in ordered).encode())
    note = ("chance levels: explorer.chance.permutation_chance (the expected score of a pair "
            "whose attacked map's pixels are permuted at random); normalised = "
            "explorer.chance.normalise(score, chance)") if _chance is not None else \
        "chance levels unavailable in this build (explorer.chance is missing)"
    return FrozenStudy(study_id or new_study_id(), spec, spec_toml, ordered, tuple(pairs),
                       tuple(trials), time.time(), note, digest)
