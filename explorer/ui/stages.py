"""The pipeline stages, cached for the app.

data -> model -> attribution -> attack -> scores. Every stage is a pure function of the previous
stage's output and a few parameters, so each is cached on small hashable keys (dataset, model
name, image key, method/attack parameter tuples, seed, device): inputs that are arrays are passed
as underscore arguments, which Streamlit does not hash, next to the key that identifies them.

- The model: ``st.cache_resource`` (one object shared by all sessions; never modified: the
  attack works on its own smooth copy).
- Everything else: ``st.cache_data`` with ``max_entries`` (so memory stays bounded), holding
  frozen dataclasses of CPU numpy arrays, never tensors.

Work beside the script runs (the attack board, the progress callback, the prefetch of the
k-independent scores) is in ``background``.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st
import torch

from explorer import attacks, attributions, data, metrics, models, set_curves, uploads, viz

from .background import AttackInterrupted, HeavySlot, Progress, scores_without_k

__all__ = ["AttackOutcome", "OriginalMap", "Samples", "attack", "attribution", "k_grid",
           "k_grid_base", "masks", "model", "model_info", "region_mask", "samples", "scores",
           "scores_over_k", "test_image", "test_set_size", "upload_image"]


@dataclass(frozen=True, eq=False)
class Samples:
    """The bundled images of a dataset; ``x`` is None (and ``error`` says why) when missing."""

    x: np.ndarray | None  # (N, C, H, W) in [0, 1]
    labels: np.ndarray  # (N,) int64
    names: tuple[str, ...]
    indices: tuple[int | None, ...]  # test-set index, None for photos not from a test set
    thumbs: tuple[np.ndarray, ...]  # (H, W, 3) RGB for the gallery
    error: str | None = None


@dataclass(frozen=True, eq=False)
class OriginalMap:
    """The attribution map of the unperturbed image and the model's prediction."""

    map: np.ndarray  # (H, W) float32
    rank: np.ndarray  # (H, W) int32 rank positions (0 = most important)
    label: int
    conf: float
    degenerate: bool  # the map is constant (ranks nothing)


@dataclass(frozen=True, eq=False)
class AttackOutcome:
    """One attack (``explorer.attacks.AttackResult`` of a single image) as numpy and scalars."""

    x_adv: np.ndarray  # (C, H, W) the returned iterate
    map_orig: np.ndarray  # (H, W)
    map_adv: np.ndarray  # (H, W)
    rank_adv: np.ndarray  # (H, W) int32
    history: np.ndarray  # best selection measure per step
    label_orig: int
    label_adv: int
    conf_orig: float
    conf_adv: float
    label_kept: bool
    linf: float  # ‖x′ − x‖∞
    found: bool  # a label-preserving iterate better than x was found
    steps_run: int
    message: str  # the library's one-line summary
    degenerate: bool  # the attacked map is constant
    seconds: float  # wall time of the attack
    stopped_early: bool  # the user interrupted it


# ------------------------------------------------------------------------------- data

@st.cache_data(max_entries=8, show_spinner=False)
def samples(dataset: str) -> Samples:
    """The bundled samples as numpy, with their gallery thumbnails."""
    try:
        s = data.load_samples(dataset)
    except (RuntimeError, ValueError, OSError) as exc:
        return Samples(None, np.zeros(0, dtype=np.int64), (), (), (), str(exc))
    x = s.x.detach().cpu().numpy().astype(np.float32)
    return Samples(x=x, labels=s.labels.detach().cpu().numpy().astype(np.int64),
                   names=tuple(s.names), indices=tuple(None if i is None else int(i) for i in s.indices),
                   thumbs=tuple(viz.to_rgb(xi) for xi in x))


@st.cache_resource(max_entries=8, show_spinner=False)
def _test_set(dataset: str):
    return data.load_test_set(dataset)


def test_set_size(dataset: str) -> tuple[int | None, str | None]:
    """(size, None) when the test set is on this machine, else (None, why)."""
    count = data.test_set_count(dataset)  # from the file headers: no torchvision import
    if count is not None:
        return count, None
    try:
        return len(_test_set(dataset)), None
    except data.DatasetUnavailable as exc:
        return None, str(exc)
    except (RuntimeError, OSError, ValueError) as exc:
        return None, f"The test set could not be read: {exc}"


@st.cache_data(max_entries=64, show_spinner=False)
def test_image(dataset: str, index: int) -> tuple[np.ndarray, int]:
    ds = _test_set(dataset)
    x, label = ds[int(index)]
    return x.unsqueeze(0).numpy().astype(np.float32), int(label)


@st.cache_data(max_entries=16, show_spinner=False)
def upload_image(dataset: str, filename: str, _raw: bytes, sha: str,
                 invert: bool = False) -> np.ndarray:
    """An accepted upload as ``(1, C, H, W)``; raises ``uploads.UploadError`` (not cached)."""
    x = uploads.load_upload(_raw, filename, dataset, invert=invert)
    return x.detach().cpu().numpy().astype(np.float32)


# ------------------------------------------------------------------------------- model

@st.cache_resource(max_entries=6, show_spinner=False)
def model(dataset: str, name: str, device: str):
    """The registered model, eval mode, on ``device``. Shared read-only by all sessions."""
    m = models.load(dataset, name, device=device)
    return m.eval()


def model_info(dataset: str, name: str) -> dict[str, Any]:
    """Card facts for the export: sha256 and the card itself (None when missing)."""
    try:
        card = models.card(dataset, name)
    except Exception as exc:  # noqa: BLE001 - an unreadable card is reported, not fatal
        card = {"error": str(exc)}
    sha = None
    if isinstance(card, dict):
        sha = card.get("sha256") or card.get("weights_sha256")
    return {"card": card, "sha256": sha}


# ------------------------------------------------------------------------------- attribution

def _torch_input(x: np.ndarray, device: str) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).to(device)


@st.cache_data(max_entries=64, show_spinner=False)
def attribution(model_key: tuple[str, str, str], image_key: str, _x: np.ndarray, method: str,
                method_items: tuple, _gate: HeavySlot | None = None) -> OriginalMap:
    """Original map (H, W), predicted label and confidence. Keyed by (model, image, method).
    ``_gate`` (not hashed): on a cache miss the map waits for a heavy-job slot there and stops
    (``jobs.Cancelled``, not cached) when the user changes a setting meanwhile."""
    dataset, name, device = model_key
    net = model(dataset, name, device)
    x = _torch_input(_x, device)
    with _gate if _gate is not None else contextlib.nullcontext():
        m = attributions.attribution_map(net, x, method=method, params=dict(method_items))
        labels, conf = attributions.predict(net, x)
    m = m.detach()
    return OriginalMap(map=m[0].cpu().numpy().astype(np.float32),
                       rank=metrics.rank_positions(m[0]).cpu().numpy().astype(np.int32),
                       label=int(labels[0]), conf=float(conf[0]),
                       degenerate=bool(metrics.is_degenerate(m[0])))


# ------------------------------------------------------------------------------- attack

def _outcome(res, seconds: float) -> AttackOutcome:
    def arr(t):
        return t.detach().cpu().numpy()

    map_adv = res.map_adv.detach()[0]
    return AttackOutcome(
        x_adv=arr(res.x_adv[0]).astype(np.float32),
        map_orig=arr(res.map_orig[0]).astype(np.float32),
        map_adv=map_adv.cpu().numpy().astype(np.float32),
        rank_adv=metrics.rank_positions(map_adv).cpu().numpy().astype(np.int32),
        history=arr(res.history[0]).astype(np.float64),
        label_orig=int(res.label_orig[0]), label_adv=int(res.label_adv[0]),
        conf_orig=float(res.conf_orig[0]), conf_adv=float(res.conf_adv[0]),
        label_kept=bool(res.label_kept[0]), linf=float(res.linf[0]), found=bool(res.found[0]),
        steps_run=int(res.steps_run), message=str(res.message(0)),
        degenerate=bool(metrics.is_degenerate(map_adv)), seconds=float(seconds),
        stopped_early=bool(res.stopped_early))


def region_mask(region: tuple[int, int, int, int] | None, height: int, width: int):
    """Boolean (1, H, W) tensor of the inclusive rectangle rows r0..r1, cols c0..c1."""
    if region is None:
        return None
    r0, r1, c0, c1 = region
    mask = torch.zeros(1, height, width, dtype=torch.bool)
    mask[:, r0:r1 + 1, c0:c1 + 1] = True
    return mask


@st.cache_data(max_entries=32, show_spinner=False)
def attack(model_key: tuple[str, str, str], image_key: str, _x: np.ndarray, method: str,
           method_items: tuple, attack_key: str, attack_items: tuple, seed: int,
           region: tuple[int, int, int, int] | None = None,
           _progress: Progress | None = None, _gate: HeavySlot | None = None) -> AttackOutcome:
    """Run one attack (library ``explorer.attacks.attack``) and keep its result as numpy.

    Cached on the small key (model, image, method, attack parameters, seed, region): returning
    to a configuration is instant. ``_progress`` (not hashed) receives (step, total, best);
    when the user interrupted the run through it, the partial result is raised as
    :class:`background.AttackInterrupted` instead of being cached. ``_gate`` (not hashed): the
    run waits for a heavy-job slot and memory there, and stops early within a chunk of its
    current step when the user changes any setting (the k slider included), likewise raised as
    :class:`background.AttackInterrupted`.
    """
    dataset, name, device = model_key
    net = model(dataset, name, device)
    x = _torch_input(_x, device)
    kwargs = dict(attack_items)
    mask = region_mask(region, _x.shape[-2], _x.shape[-1])
    if mask is not None:
        kwargs["region"] = mask.to(device)
    with _gate if _gate is not None else contextlib.nullcontext():
        t0 = time.perf_counter()
        res = attacks.attack(net, x, method=method, method_params=dict(method_items),
                             attack=attack_key, seed=seed, progress=_progress, **kwargs)
        out = _outcome(res, time.perf_counter() - t0)
    if _progress is not None and _progress.interrupt is not None:
        raise AttackInterrupted(out, _progress.interrupt)  # not cached: a partial run
    if _gate is not None and _gate.check.fired and res.stopped_early:
        raise AttackInterrupted(out, None)  # stopped for a fragment widget: not cached either
    return out


@st.cache_data(max_entries=2048, show_spinner=False)
def scores(pair_key: str, _a: np.ndarray, _b: np.ndarray, k: int, w: int) -> dict[str, Any]:
    """Every value of ``explorer.metrics.compare(a, b, k, w)``, as python floats per key.

    ``_a``/``_b`` are ``(H, W)`` or ``(N, H, W)``; values are floats or lists of floats. A k move
    only recomputes the set metrics (``metrics.set_metrics``): the rank correlations and the
    centre shift do not depend on k (see docs/metrics.md) and come from the store of
    ``background.scores_without_k``, filled per w. The app tests check that the table equals
    ``compare(a, b, k, w)`` for every key.
    """
    sets = metrics.set_metrics(torch.from_numpy(_a), torch.from_numpy(_b), k, w)
    rest = scores_without_k(pair_key, _a, _b, w)
    return {key: (sets[key].tolist() if key in sets else rest[key])
            for key in metrics.METRIC_KEYS}


@st.cache_data(max_entries=256, show_spinner=False)
def scores_over_k(pair_key: str, _a: np.ndarray, _b: np.ndarray, ks: tuple[int, ...],
                  w: int) -> tuple[dict[str, Any], ...]:
    """:func:`scores` at every k of ``ks`` (the chart against k), one dict per k: the set
    metrics of all k from one pass over each map's ranks (``explorer.set_curves``), the rest
    once for the w."""
    sets = set_curves.set_metrics_over_k(torch.from_numpy(_a), torch.from_numpy(_b), ks, w)
    rest = scores_without_k(pair_key, _a, _b, w)
    return tuple({key: (sets[key][j].tolist() if key in sets else rest[key])
                  for key in metrics.METRIC_KEYS} for j in range(len(ks)))


@st.cache_data(max_entries=256, show_spinner=False)
def masks(pair_key: str, _a: np.ndarray, _b: np.ndarray, k: int, w: int) -> dict[str, np.ndarray]:
    """``explorer.metrics.overlap_masks`` as numpy arrays."""
    out = metrics.overlap_masks(torch.from_numpy(_a), torch.from_numpy(_b), k, w)
    return {key: v.cpu().numpy() for key, v in out.items()}


def k_grid_base(n_pixels: int, points: int = 8) -> tuple[int, ...]:
    """The fixed k values of the 'scores vs k' chart: geometric from ~0.5% to 50% of the
    pixels. They do not move with k, so a k move finds their scores cached."""
    lo = max(1, round(n_pixels * 0.005))
    hi = max(lo, n_pixels // 2)
    grid = {int(round(v)) for v in np.geomspace(lo, hi, points)}
    return tuple(sorted(v for v in grid if 1 <= v <= n_pixels))


def k_grid(n_pixels: int, k: int, points: int = 8) -> list[int]:
    """k values for the 'scores vs k' chart: :func:`k_grid_base` plus k."""
    extra = {int(k)} if 1 <= k <= n_pixels else set()
    return sorted(set(k_grid_base(n_pixels, points)) | extra)
