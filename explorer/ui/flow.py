"""Page-level orchestration shared by the pages: pick the input, load a model, run attacks.

Each helper shows its own clear message in place when something is unavailable or refused,
and returns ``None`` so that the page can carry on with what it has.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import streamlit as st

from explorer import attacks, cost, data, jobs, metrics, models, uploads

from . import background, keys, stages
from .common import show_problem
from .plain import prose
from .controls import Sidebar
from .stages import AttackOutcome, OriginalMap
from .state import Config

__all__ = ["Input", "STOP_WAIT_S", "attack_call_key", "attack_was_run", "choose_input",
           "class_name", "load_model", "original_map", "partial_attack", "random_sign",
           "run_attack"]

STOP_WAIT_S = 300  # longest wait for an interrupted attack to finish its current step


@dataclass(frozen=True, eq=False)
class Input:
    x: np.ndarray  # (1, C, H, W) in [0, 1]
    label: int  # true label, -1 unknown
    key: str  # cache key of the image
    name: str  # what to call it in captions and exports
    source: str  # the source actually used (after any fallback)
    index: int | None  # sample number / test index


def choose_input(sb: Sidebar) -> Input | None:
    """The image the configuration asks for, or a bundled sample with a message explaining why."""
    cfg = sb.config
    ds = cfg.dataset
    info = data.DATASETS[ds]
    s = stages.samples(ds)
    fallback_reason = None
    if cfg.source == "index":
        size, why = stages.test_set_size(ds)
        if size is None:
            fallback_reason = f"The {info.name} test set is not on this machine. {why}"
        else:
            try:
                x, label = stages.test_image(ds, int(cfg.image))
                return Input(x, label, cfg.image_key(), f"{info.name} test image #{cfg.image}",
                             "index", int(cfg.image))
            except (IndexError, RuntimeError, OSError, ValueError) as exc:
                fallback_reason = f"Test image #{cfg.image} could not be read: {exc}"
    elif cfg.source == "upload":
        accepted = st.session_state.get(keys.accepted_uploads(), {})
        if sb.upload_error:
            fallback_reason = f"Upload refused: {prose(sb.upload_error)}"
        elif cfg.upload_sha and ds in accepted:
            name, sha, raw = accepted[ds]
            try:
                x = stages.upload_image(ds, name, raw, sha, cfg.upload_sha.endswith(":inverted"))
                return Input(x, -1, cfg.image_key(), f"upload {name}", "upload", None)
            except uploads.UploadError as exc:
                fallback_reason = f"Upload refused: {prose(str(exc))}"
        else:
            fallback_reason = "No image uploaded yet: choose a file in the sidebar."
    if fallback_reason:
        stop = "" if fallback_reason.rstrip().endswith((".", "!", "?")) else "."
        text = f"{fallback_reason}{stop} Showing a bundled image meanwhile."
        if fallback_reason.startswith("Upload refused"):
            st.warning(text, icon=":material/block:")
        else:
            st.info(text, icon=":material/info:")
    if s.x is None or len(s.names) == 0:
        why = (s.error or "the assets are missing").rstrip(". ")
        st.error(f"No bundled images for {info.name}: {why}. Pick another dataset.",
                 icon=":material/error:")
        return None
    i = int(cfg.image) if cfg.source == "sample" else 0
    i = min(max(i, 0), len(s.names) - 1)
    return Input(s.x[i:i + 1], int(s.labels[i]), f"{ds}:sample:{i}",
                 f"bundled {info.name} image {i} ({s.names[i]})", "sample", i)


def load_model(dataset: str, name: str, device: str):
    """The cached model, or None with a message (offline weights, unknown model, ...)."""
    if not name:
        st.error("No model is registered for this dataset; pick another dataset.",
                 icon=":material/error:")
        return None
    try:
        return stages.model(dataset, name, device)
    except models.ModelUnavailable as exc:
        st.error(f"**Model unavailable.** {exc}", icon=":material/cloud_off:")
    except (ValueError, RuntimeError, OSError) as exc:
        show_problem(exc, f"The model {dataset}/{name} could not be loaded")
    return None


def _map_seconds(cfg: Config, device: str) -> float:
    try:
        return cost.estimate_map(cfg.dataset, cfg.method, dict(cfg.method_params),
                                 device=device).seconds
    except (ValueError, KeyError, RuntimeError, OSError):
        return 1.0


def _waiting_note(slot, icon: str = ":material/hourglass_top:"):
    """``show(text)`` for a :class:`background.HeavySlot`: the text in ``slot`` as a note."""
    return lambda text: slot.info(text, icon=icon)


def original_map(cfg: Config, device: str, inp: Input) -> OriginalMap | None:
    """The map of the unperturbed image; on a cache miss it waits for a heavy-job slot (the
    place in the queue shown) and a setting changed meanwhile reruns the page at once."""
    slot = st.empty()
    gate = background.HeavySlot(_waiting_note(slot), _map_seconds(cfg, device),
                                clear=slot.empty, label="Attribution map: ")
    try:
        return stages.attribution((cfg.dataset, cfg.model, device), inp.key, inp.x, cfg.method,
                                  cfg.method_items(), _gate=gate)
    except jobs.Cancelled:
        st.rerun()  # the user changed a setting while the map waited or ran: apply it
    except ValueError as exc:
        show_problem(exc, "The attribution method refused these settings")
    return None


def attack_call_key(cfg: Config, device: str, inp: Input, model: str | None = None) -> tuple:
    return ((cfg.dataset, model or cfg.model, device), inp.key, cfg.method, cfg.method_items(),
            cfg.attack, cfg.attack_items(), cfg.seed, cfg.region)


def attack_decision(cfg: Config, device: str) -> cost.Decision:
    """Run at once, ask for a click (with the estimated time) or refuse (saying why and what is
    allowed): the attack's estimated time and memory against ``cost.Budgets``."""
    info = attacks.ATTACKS[cfg.attack]
    p = cfg.attack_params
    per_run = int(p.get("steps", 1) or 1) if info.iterative else 1
    steps = per_run * int(p.get("restarts", 1) or 1)
    est = cost.estimate_attack(cfg.dataset, cfg.method, dict(cfg.method_params), steps=steps,
                               device=device, uses_gradient=info.uses_gradient)
    return cost.decide(est, cost.Budgets(job_bytes=cost.DEFAULT_JOB_BUDGET_BYTES[
        "cuda" if str(device).startswith("cuda") else "cpu"]))


def run_attack(cfg: Config, device: str, inp: Input, *, model: str | None = None,
               label: str = "", decision: cost.Decision | None = None) -> AttackOutcome | None:
    """Run (or fetch from the cache) the configured attack, with a progress bar. On a cache
    miss the attack waits for a heavy-job slot of the server and holds its estimated memory in
    the server-wide budget while it runs: when other users' jobs hold them, this one waits its
    turn (its place in the queue and the expected wait are shown). Any setting changed while it
    runs stops it within a chunk of its current step; the best iterate so far is kept.
    ``decision``: the page's :func:`attack_decision` for these settings, when it already made
    one."""
    key = attack_call_key(cfg, device, inp, model)
    measure = cfg.attack_params.get("measure", "topk_intersection")
    measure_name = metrics.metric_label(measure)
    slot = st.empty()
    bar = slot.progress(0.0, text=f"{label}starting the {attacks.ATTACKS[cfg.attack].name}…")
    board, board_key = background.attack_board(), (background.session_id(), key)
    board.start(board_key)
    partial = None
    decision = decision or attack_decision(cfg, device)
    est = decision.estimate
    gate = background.HeavySlot(lambda text: bar.progress(0.0, text=text), est.seconds,
                                est.peak_bytes, label=label)
    try:
        res = stages.attack(key[0], key[1], inp.x, key[2], key[3], key[4], key[5], key[6],
                            key[7], _progress=background.Progress(bar, measure_name),
                            _gate=gate)
    except background.AttackInterrupted as stop:
        # Keep the best iterate so far for this configuration, then let Streamlit handle the
        # interaction that stopped the attack: its own signal, or a rerun that carries the
        # new widget values when the widget sits in a fragment (the k and w sliders).
        partial = stop.result
        if stop.control is None:
            st.rerun()  # (the finally below hands the partial result over first)
        raise stop.control from None
    except jobs.Cancelled:  # a setting changed while the attack waited for its turn
        st.rerun()
    except ValueError as exc:
        slot.empty()
        show_problem(exc, f"{label}The attack refused these settings")
        return None
    finally:
        board.finish(board_key, partial)
    slot.empty()
    st.session_state.setdefault(keys.attacks_done(), set()).add(key)
    if gate.check.fired:
        st.rerun()  # it finished as the user moved a slider: show the page at the new values
    return res


def partial_attack(cfg: Config, device: str, inp: Input, model: str | None = None
                   ) -> AttackOutcome | None:
    """The best result of an attack run that the user interrupted, if any."""
    key = attack_call_key(cfg, device, inp, model)
    board, board_key = background.attack_board(), (background.session_id(), key)
    if board.is_running(board_key):
        # Streamlit starts the new run at once while the interrupted one finishes its current
        # step (runner.fastReruns): wait for it to hand over its best result.
        with st.spinner("Stopping the attack after its current step…"):
            deadline = time.monotonic() + STOP_WAIT_S
            while board.is_running(board_key) and time.monotonic() < deadline:
                time.sleep(0.05)
    return board.get_partial(board_key)


def attack_was_run(cfg: Config, device: str, inp: Input, model: str | None = None) -> bool:
    return attack_call_key(cfg, device, inp, model) in st.session_state.get(keys.attacks_done(),
                                                                            set())


NOISE_SEEDS = 3  # random-sign draws tried (seeds s, s+1, ...) before saying none kept the label


@dataclass(frozen=True, eq=False)
class NoiseOutcome:
    """The random-sign column: the first label-preserving draw among NOISE_SEEDS seeds (``found``
    False when none kept the label) and the seed that gave it."""

    outcome: AttackOutcome
    seed: int
    tried: int

    @property
    def found(self) -> bool:
        return bool(self.outcome.found)


def random_sign(cfg: Config, device: str, inp: Input, model: str | None = None
                ) -> NoiseOutcome | None:
    """Random ±ε sign noise at the attack's ε (the paper's baseline), cached like an attack.
    A draw that changes the prediction is no label-preserving perturbation: the next seed is
    tried, up to NOISE_SEEDS draws."""
    info = data.DATASETS[cfg.dataset]
    own = [p.name for p in attacks.ATTACKS["random_sign"].params if p.name != "seed"]
    try:
        merged = attacks.attack_params(
            "random_sign", info.defaults,
            {n: cfg.attack_params[n] for n in own if n in cfg.attack_params})
    except ValueError as exc:
        show_problem(exc, "Random sign noise could not be computed")
        return None
    items = {n: merged[n] for n in own}
    h, w = info.size
    if "attack_k" in items:
        items["attack_k"] = min(int(items["attack_k"]), h * w)
    try:
        seconds = cost.estimate_attack(cfg.dataset, cfg.method, dict(cfg.method_params), steps=1,
                                       device=device, uses_gradient=False).seconds
    except (ValueError, KeyError, RuntimeError, OSError):
        seconds = 1.0
    out = None
    for i in range(NOISE_SEEDS):
        seed = (cfg.seed + i) % (2 ** 31)
        slot = st.empty()
        gate = background.HeavySlot(_waiting_note(slot), seconds, clear=slot.empty,
                                    label="Random sign noise: ")
        try:
            res = stages.attack((cfg.dataset, model or cfg.model, device), inp.key, inp.x,
                                cfg.method, cfg.method_items(), "random_sign",
                                tuple(sorted(items.items())), seed, _gate=gate)
        except jobs.Cancelled:
            st.rerun()
        except ValueError as exc:
            show_problem(exc, "Random sign noise could not be computed")
            return None
        out = NoiseOutcome(res, seed, i + 1)
        if res.found:
            break
    return out


def class_name(dataset: str, label: int) -> str:
    names = data.DATASETS[dataset].class_names
    if 0 <= label < len(names):
        name = names[label]
        return name if name == str(label) else f"{name} ({label})"
    return "unknown" if label < 0 else str(label)
