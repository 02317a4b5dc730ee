"""The pipeline stages, cached for the app.

data -> model -> attribution -> attack -> scores. Every stage is a pure function of the previous
stage's output and a few parameters, so each is cached on small hashable keys (dataset, model
name, image key, method/attack parameter tuples, seed, device): inputs that are arrays are passed
as underscore arguments, which Streamlit does not hash, next to the key that identifies them.

- The model: ``st.cache_resource`` (one object shared by all sessions; never modified: the
  attack works on its own smooth copy).
- Everything else: ``st.cache_data`` with ``max_entries`` (so memory stays bounded), holding
  CPU numpy arrays, never tensors.
"""

from __future__ import annotations

import atexit
import contextvars
import time
import weakref
from typing import Any, Callable

import numpy as np
import streamlit as st

W_MAX = 10  # largest w offered by the slider (the charts sweep w = 0..5)
CHART_W = tuple(range(0, 6))


# ------------------------------------------------------------------------------- data

@st.cache_data(max_entries=8, show_spinner=False)
def samples(dataset: str) -> dict[str, Any]:
    """Bundled samples as numpy: x (N, C, H, W), labels (N,), names, indices, thumbnails."""
    from explorer import data
    from explorer.viz import to_rgb

    try:
        s = data.load_samples(dataset)
    except (RuntimeError, ValueError, OSError) as exc:
        return {"x": None, "labels": np.zeros(0, dtype=np.int64), "names": [], "indices": [],
                "thumbs": [], "error": str(exc)}
    x = s.x.detach().cpu().numpy().astype(np.float32)
    return {
        "x": x,
        "labels": s.labels.detach().cpu().numpy().astype(np.int64),
        "names": list(s.names),
        "indices": list(s.indices),
        "thumbs": [to_rgb(xi) for xi in x],
        "error": None,
    }


@st.cache_resource(max_entries=8, show_spinner=False)
def _test_set(dataset: str):
    from explorer import data

    return data.load_test_set(dataset)


def test_set_size(dataset: str) -> tuple[int | None, str | None]:
    """(size, None) when the test set is on this machine, else (None, why)."""
    from explorer import data

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
    """An accepted upload as ``(1, C, H, W)``; raises ``data.UploadError`` (not cached)."""
    from explorer import data

    x = data.load_upload(_raw, filename, dataset, invert=invert) if invert else \
        data.load_upload(_raw, filename, dataset)
    return x.detach().cpu().numpy().astype(np.float32)


# ------------------------------------------------------------------------------- model

@st.cache_resource(max_entries=6, show_spinner=False)
def model(dataset: str, name: str, device: str):
    """The registered model, eval mode, on ``device``. Shared read-only by all sessions."""
    from explorer import models

    m = models.load(dataset, name, device=device)
    return m.eval()


def model_info(dataset: str, name: str) -> dict[str, Any]:
    """Card facts for the export: sha256 and the card itself (None when missing)."""
    from explorer import models

    try:
        card = models.card(dataset, name)
    except Exception as exc:  # noqa: BLE001 - an unreadable card is reported, not fatal
        card = {"error": str(exc)}
    sha = None
    if isinstance(card, dict):
        sha = card.get("sha256") or card.get("weights_sha256")
    return {"card": card, "sha256": sha}


# ------------------------------------------------------------------------------- attribution

def _torch_input(x: np.ndarray, device: str):
    import torch

    return torch.from_numpy(np.ascontiguousarray(x)).to(device)


@st.cache_data(max_entries=64, show_spinner=False)
def attribution(model_key: tuple[str, str, str], image_key: str, _x: np.ndarray, method: str,
                method_items: tuple) -> dict[str, Any]:
    """Original map (H, W), predicted label and confidence. Keyed by (model, image, method)."""
    from explorer import attributions, metrics

    dataset, name, device = model_key
    net = model(dataset, name, device)
    x = _torch_input(_x, device)
    m = attributions.attribution_map(net, x, method=method, params=dict(method_items))
    labels, conf = attributions.predict(net, x)
    m = m.detach()
    return {
        "map": m[0].cpu().numpy().astype(np.float32),
        "rank": metrics.rank_positions(m[0]).cpu().numpy().astype(np.int32),
        "label": int(labels[0]),
        "conf": float(conf[0]),
        "degenerate": bool(metrics.is_degenerate(m[0])),
    }


# ------------------------------------------------------------------------------- attack

def _result_to_numpy(res) -> dict[str, Any]:
    from explorer import metrics

    def arr(t):
        return t.detach().cpu().numpy()

    map_adv = res.map_adv.detach()[0]
    return {
        "x_adv": arr(res.x_adv[0]).astype(np.float32),
        "map_orig": arr(res.map_orig[0]).astype(np.float32),
        "map_adv": map_adv.cpu().numpy().astype(np.float32),
        "rank_adv": metrics.rank_positions(map_adv).cpu().numpy().astype(np.int32),
        "history": arr(res.history[0]).astype(np.float64),
        "label_orig": int(res.label_orig[0]),
        "label_adv": int(res.label_adv[0]),
        "conf_orig": float(res.conf_orig[0]),
        "conf_adv": float(res.conf_adv[0]),
        "label_kept": bool(res.label_kept[0]),
        "linf": float(res.linf[0]),
        "found": bool(res.found[0]),
        "steps_run": int(res.steps_run),
        "message": str(res.message(0)),
        "degenerate": bool(metrics.is_degenerate(map_adv)),
    }


def region_mask(region: tuple[int, int, int, int] | None, height: int, width: int):
    """Boolean (1, H, W) tensor of the inclusive rectangle rows r0..r1, cols c0..c1."""
    if region is None:
        return None
    import torch

    r0, r1, c0, c1 = region
    mask = torch.zeros(1, height, width, dtype=torch.bool)
    mask[:, r0:r1 + 1, c0:c1 + 1] = True
    return mask


@st.cache_data(max_entries=32, show_spinner=False)
def attack(model_key: tuple[str, str, str], image_key: str, _x: np.ndarray, method: str,
           method_items: tuple, attack_key: str, attack_items: tuple, seed: int,
           region: tuple[int, int, int, int] | None = None,
           _progress: Callable[[int, int, float], bool] | None = None) -> dict[str, Any]:
    """Run one attack (library ``explorer.attacks.attack``) and keep its result as numpy.

    Cached on the small key (model, image, method, attack parameters, seed, region): returning
    to a configuration is instant. ``_progress`` (not hashed) receives (step, total, best).
    """
    from explorer import attacks

    dataset, name, device = model_key
    net = model(dataset, name, device)
    x = _torch_input(_x, device)
    kwargs = dict(attack_items)
    mask = region_mask(region, _x.shape[-2], _x.shape[-1])
    if mask is not None:
        kwargs["region"] = mask.to(device)
    t0 = time.perf_counter()
    res = attacks.attack(net, x, method=method, method_params=dict(method_items),
                         attack=attack_key, seed=seed, progress=_progress, **kwargs)
    out = _result_to_numpy(res)
    out["seconds"] = time.perf_counter() - t0
    out["stopped_early"] = bool(getattr(res, "stopped_early", False))
    interrupt = getattr(_progress, "interrupt", None)
    if interrupt is not None:
        raise AttackInterrupted(out, interrupt)  # not cached: a partial run
    return out


class AttackBoard:
    """Which attacks are running and the best results of interrupted ones, per session.

    Lives outside ``st.session_state`` on purpose: when the user clicks during an attack,
    Streamlit starts the next run in a new thread at once (``runner.fastReruns``) while the
    interrupted run finishes its current step, and the two must hand over the result safely.
    """

    MAX_PARTIAL = 16

    def __init__(self) -> None:
        import threading
        from collections import OrderedDict

        self.lock = threading.Lock()
        self.running: dict[tuple, float] = {}
        self.partial: OrderedDict[tuple, dict[str, Any]] = OrderedDict()

    def start(self, key: tuple) -> None:
        with self.lock:
            self.running[key] = time.monotonic()

    def finish(self, key: tuple, partial: dict[str, Any] | None = None) -> None:
        with self.lock:
            self.running.pop(key, None)
            if partial is None:
                self.partial.pop(key, None)
            else:
                self.partial[key] = partial
                self.partial.move_to_end(key)
                while len(self.partial) > self.MAX_PARTIAL:
                    self.partial.popitem(last=False)

    def is_running(self, key: tuple) -> bool:
        with self.lock:
            return key in self.running

    def get_partial(self, key: tuple) -> dict[str, Any] | None:
        with self.lock:
            return self.partial.get(key)


@st.cache_resource(show_spinner=False)
def attack_board() -> AttackBoard:
    return AttackBoard()


def session_id() -> str:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "bare"


class AttackInterrupted(Exception):
    """The user interacted with the page while an attack ran: the attack stopped early.

    Carries the best result so far (numpy dict, not cached) and Streamlit's control exception
    (rerun / stop), which the page must re-raise so that Streamlit handles the interaction.
    """

    def __init__(self, result: dict[str, Any], control: BaseException):
        super().__init__("attack interrupted by the user")
        self.result = result
        self.control = control


def progress_callback(bar, measure_label: str) -> Callable[[int, int, float], bool]:
    """A progress callback that updates ``bar`` from inside a cached function.

    Streamlit records elements drawn inside a cached function to replay them on cache hits; the
    progress updates must not be replayed, so they run in the context captured here (outside the
    cached function). When the user clicks anything while the attack runs, Streamlit raises its
    rerun/stop signal inside the update: the callback keeps it (``update.interrupt``) and asks the
    attack to stop early, so the best iterate so far is kept.
    """
    outer = contextvars.copy_context()
    state = {"last": 0.0, "start": time.perf_counter()}

    def update(step: int, total: int, best: float) -> bool:
        if update.interrupt is not None:
            return True
        now = time.perf_counter()
        if 0 < step < total and now - state["last"] < 0.1:
            return False  # at most ~10 updates a second
        state["last"] = now
        frac = min(max(step / max(total, 1), 0.0), 1.0)
        best_text = "n/a" if best is None or not np.isfinite(best) else f"{best:.3f}"
        text = f"step {step} / {total} · best {measure_label} so far: {best_text}"
        if step > 0:
            per_step = (now - state["start"]) / step
            left = per_step * (total - step)
            if left > 5:
                text += (f" · {per_step:.2g} s per step, about "
                         f"{left / 60:.0f} min left" if left > 90 else
                         f" · {per_step:.2g} s per step, about {left:.0f} s left")
            if left > 20:
                text += " · any click stops it and keeps the best so far"
        try:
            outer.run(bar.progress, frac, text=text)
        except BaseException as exc:  # Streamlit's rerun/stop signal (a BaseException)
            if isinstance(exc, Exception):
                raise
            update.interrupt = exc
            return True
        return False

    update.interrupt = None
    return update


# ------------------------------------------------------------------------------- scores

class RankScoreStore:
    """Bounded, thread-safe store of the k-independent scores of a pair, per w.

    The rank correlations need one ``metrics.compare`` per w (the slow part of a w move on a
    224×224 pair); after a page is drawn, a background thread fills in w = 0..5 so that moving
    the w slider there finds them ready. A plain store (not ``st.cache_data``) because the
    background thread runs outside any Streamlit script run.
    """

    MAX_ENTRIES = 512

    def __init__(self) -> None:
        import threading
        from collections import OrderedDict

        self.lock = threading.Lock()
        self.values: OrderedDict[tuple, dict[str, list]] = OrderedDict()
        self.busy: set[str] = set()

    def get(self, key: tuple) -> dict[str, list] | None:
        with self.lock:
            value = self.values.get(key)
            if value is not None:
                self.values.move_to_end(key)
            return value

    def put(self, key: tuple, value: dict[str, list]) -> None:
        with self.lock:
            self.values[key] = value
            self.values.move_to_end(key)
            while len(self.values) > self.MAX_ENTRIES:
                self.values.popitem(last=False)


@st.cache_resource(show_spinner=False)
def rank_score_store() -> RankScoreStore:
    return RankScoreStore()


def _compute_without_k(pair_key: str, a: np.ndarray, b: np.ndarray, w: int) -> dict[str, list]:
    """The metrics that do not depend on k: the w-free part (Spearman, Kendall, centre shift)
    once per pair, the LENS correlations once per (pair, w) (``metrics.rank_metrics``)."""
    import torch

    from explorer import metrics

    store = rank_score_store()
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    plain = store.get((pair_key, "w-free"))
    if plain is None:
        plain = {key: v.tolist() for key, v in metrics.rank_metrics(ta, tb, 0).items()
                 if key not in ("lens_spearman", "lens_kendall")}
        store.put((pair_key, "w-free"), plain)
    lens = metrics.rank_metrics(ta, tb, w, lens_only=True)
    return {**plain, **{key: v.tolist() for key, v in lens.items()}}


def _scores_without_k(pair_key: str, a: np.ndarray, b: np.ndarray, w: int) -> dict[str, list]:
    """The metrics of ``compare`` that do not depend on k (rank correlations: on w only;
    centre shift: on neither), stored per (pair, w)."""
    store = rank_score_store()
    value = store.get((pair_key, w))
    if value is None:
        value = _compute_without_k(pair_key, a, b, w)
        store.put((pair_key, w), value)
    return value


def prefetch_without_k(pair_key: str, a: np.ndarray, b: np.ndarray, ws) -> None:
    """Fill the store for the w values ``ws`` in a background thread (no Streamlit calls)."""
    import threading

    store = rank_score_store()
    missing = [w for w in ws if store.get((pair_key, w)) is None]
    with store.lock:
        if not missing or pair_key in store.busy:
            return
        store.busy.add(pair_key)

    def work() -> None:
        try:
            for w in missing:
                if store.get((pair_key, w)) is None:
                    store.put((pair_key, w), _compute_without_k(pair_key, a, b, w))
        except Exception:  # noqa: BLE001 - a failed prefetch only costs the speed-up
            pass
        finally:
            with store.lock:
                store.busy.discard(pair_key)

    thread = threading.Thread(target=work, name="explorer-prefetch", daemon=True)
    _PREFETCH_THREADS.add(thread)
    thread.start()


_PREFETCH_THREADS: "weakref.WeakSet" = weakref.WeakSet()


@atexit.register
def _join_prefetch_threads() -> None:
    """Let running prefetches finish at interpreter exit (a daemon thread killed inside a torch
    kernel aborts the process)."""
    for thread in list(_PREFETCH_THREADS):
        thread.join(timeout=60)


@st.cache_data(max_entries=2048, show_spinner=False)
def scores(pair_key: str, _a: np.ndarray, _b: np.ndarray, k: int, w: int) -> dict[str, Any]:
    """Every value of ``explorer.metrics.compare(a, b, k, w)``, as python floats per key.

    ``_a``/``_b`` are ``(H, W)`` or ``(N, H, W)``; values are floats or lists of floats. A k move
    only recomputes the set metrics (``metrics.set_metrics``): the rank correlations do not
    depend on k (SPEC §2) and come from a ``compare`` call cached per w. The app tests check
    that the table equals ``compare(a, b, k, w)`` for every key.
    """
    import torch

    from explorer import metrics

    sets = metrics.set_metrics(torch.from_numpy(_a), torch.from_numpy(_b), k, w)
    rest = _scores_without_k(pair_key, _a, _b, w)
    return {key: (sets[key].tolist() if key in sets else rest[key])
            for key in metrics.METRIC_KEYS}


@st.cache_data(max_entries=256, show_spinner=False)
def masks(pair_key: str, _a: np.ndarray, _b: np.ndarray, k: int, w: int) -> dict[str, np.ndarray]:
    """``explorer.metrics.overlap_masks`` as numpy arrays."""
    import torch

    from explorer import metrics

    out = metrics.overlap_masks(torch.from_numpy(_a), torch.from_numpy(_b), k, w)
    return {key: v.cpu().numpy() for key, v in out.items()}


def k_grid(n_pixels: int, k: int, points: int = 8) -> list[int]:
    """k values for the 'scores vs k' chart: geometric from ~0.5% to 50% of the pixels, plus k."""
    lo = max(1, round(n_pixels * 0.005))
    hi = max(lo, n_pixels // 2)
    grid = {int(round(v)) for v in np.geomspace(lo, hi, points)}
    grid.add(int(k))
    return sorted(v for v in grid if 1 <= v <= n_pixels)
