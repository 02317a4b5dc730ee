"""Sidebar controls, built from the registries' parameter specs, and the URL round trip.

Widgets never get a ``value=`` argument: their state lives in ``st.session_state`` under keys
starting with ``cfg.``, initialised here from the registries' defaults (the dataset's paper
settings for attacks) or from the link's query parameters. That keeps one source of truth per
widget and lets the configuration survive page switches.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any

import streamlit as st

from . import stages
from .state import DEVICES, SOURCES, Config, parse_int, parse_params, parse_region, to_query

# Attack parameters that are pixel budgets ([0, 1] units); shown in 1/255 units for RGB data.
PIXEL_PARAMS = ("epsilon", "step_size")
SOURCE_LABELS = {"sample": "Gallery", "index": "Test-set index", "upload": "Upload"}
UPLOAD_STATE = "upload.accepted"  # {dataset: (name, sha, bytes)} of the last accepted uploads


@dataclass
class Sidebar:
    """What the sidebar decided: the configuration plus what pages need to warn about."""

    config: Config
    problems: list[str]
    upload_error: str | None
    device_note: str


def _registries():
    from explorer import attacks, attributions, data, models

    return data, models, attributions, attacks


def _init(key: str, default: Any) -> None:
    if key not in st.session_state:
        st.session_state[key] = default


def keep_state() -> None:
    """Re-assign every ``cfg.*`` value so Streamlit keeps it while another page is shown."""
    for key in [k for k in st.session_state if str(k).startswith("cfg.")]:
        st.session_state[key] = st.session_state[key]


def pixel_scale(dataset_info) -> float:
    """Display factor for pixel budgets: 255 for RGB data (ε in 1/255 units), else 1."""
    return 255.0 if dataset_info.channels == 3 else 1.0


def attack_specs(attack_info) -> tuple:
    """The parameters the sidebar shows for an attack: its own (but ``seed``, which is the
    sidebar's global seed) plus the selection parameters (measure, w, β where gradients are used).
    """
    from explorer import attacks

    own = [p for p in attack_info.params if p.name != "seed"]
    names = {p.name for p in own}
    extra = [p for p in getattr(attacks, "SELECTION_PARAMS", ())
             if p.name not in names and p.name != "seed"
             and (p.name != "beta" or getattr(attack_info, "uses_gradient", True))]
    return tuple(own + extra)


def specs_first_advanced(specs, main_names):
    for p in specs:
        if p.name not in main_names:
            return p
    return None


def attack_defaults(dataset_info, attack_info) -> dict[str, Any]:
    """The attack's declared defaults, overridden by the dataset's paper settings by name."""
    from explorer import attacks

    merged = attacks.attack_params(attack_info.key, dataset_info.defaults)
    return {p.name: merged[p.name] for p in attack_specs(attack_info)}


def attack_summary(dataset_info, attack_info, values: dict[str, Any]) -> str:
    """'ε = 8/255 · α = 0.5/255 · steps P = 300 · …' in the units the sidebar shows."""
    scale = pixel_scale(dataset_info)
    parts = []
    for p in attack_specs(attack_info):
        if p.name not in values:
            continue
        v = values[p.name]
        if p.name in PIXEL_PARAMS and scale != 1.0:
            text = f"{v * scale:.3g}/255"
        elif isinstance(v, float):
            text = f"{v:.4g}"
        else:
            text = str(v)
        parts.append(f"{p.display_label} = {text}")
    return " · ".join(parts)


def _param_key(prefix: str, *parts: str) -> str:
    return ".".join((prefix,) + parts)


def param_widget(p, key: str, *, scale: float = 1.0, disabled: bool = False) -> Any:
    """One widget for one :class:`explorer.params.Param`; returns the value in library units."""
    label = p.display_label
    if scale != 1.0:
        label += " (×1/255)"
    elif p.unit:
        label += f" ({p.unit})"
    help_text = p.help or None
    if p.kind == "bool":
        value = st.checkbox(label, key=key, help=help_text, disabled=disabled)
        return bool(value)
    if p.kind == "choice":
        return st.selectbox(label, p.choices, key=key, help=help_text, disabled=disabled,
                            format_func=str)
    if p.kind == "int":
        value = st.number_input(
            label, key=key, help=help_text, disabled=disabled, step=int(p.step or 1),
            min_value=int(p.min) if p.min is not None else None,
            max_value=int(p.max) if p.max is not None else None)
        return int(value)
    step = float(p.step) * scale if p.step else None
    value = st.number_input(
        label, key=key, help=help_text, disabled=disabled, step=step, format="%.4g",
        min_value=float(p.min) * scale if p.min is not None else None,
        max_value=float(p.max) * scale if p.max is not None else None)
    value = float(value) / scale
    # Undo the float round trip through the display unit (e.g. 8/255*255/255).
    if p.max is not None and value > p.max:
        value = float(p.max)
    if p.min is not None and value < p.min:
        value = float(p.min)
    return value


def _widget_value(p, value: Any, scale: float) -> Any:
    """Library value -> the value the widget holds (scaled floats)."""
    if p.kind == "float":
        return float(value) * scale
    if p.kind == "int":
        return int(value)
    return value


# ------------------------------------------------------------------------------- query params

def apply_query_params() -> list[str]:
    """On a session's first run, copy the link's configuration into the widget state.

    Bad values are reported (returned as messages) and replaced by defaults; nothing raises.
    """
    if "cfg.loaded" in st.session_state:
        return st.session_state.get("cfg.link_problems", [])
    st.session_state["cfg.loaded"] = True
    query = {k: st.query_params[k] for k in st.query_params}
    problems: list[str] = []
    if not query:
        st.session_state["cfg.link_problems"] = problems
        return problems
    data, models, attributions, attacks = _registries()
    ds = query.get("ds", "mnist")
    if ds not in data.DATASETS:
        problems.append(f"link parameter `ds` = {ds!r} is not a dataset here "
                        f"(allowed: {', '.join(data.DATASETS)}); using MNIST")
        ds = "mnist"
    info = data.DATASETS[ds]
    st.session_state["cfg.dataset"] = ds
    names = [m.name for m in models.models_for(ds)]
    if "model" in query:
        if query["model"] in names:
            st.session_state[f"cfg.model.{ds}"] = query["model"]
        else:
            problems.append(f"link parameter `model` = {query['model']!r} is not a model of "
                            f"{info.name} (allowed: {', '.join(names) or 'none'})")
    src = query.get("src", "sample")
    if src not in SOURCES or src == "upload":
        if src == "upload":
            problems.append("the link refers to an uploaded image, which links cannot carry; "
                            "showing a bundled sample instead (upload the file again)")
        else:
            problems.append(f"link parameter `src` must be one of sample, index; got {src!r}")
        src = "sample"
    st.session_state["cfg.source"] = src
    img = parse_int(query, "img", problems, lo=0)
    if img is not None:
        st.session_state[f"cfg.{src}.{ds}"] = img
    method = query.get("method", "saliency")
    if method not in attributions.METHODS:
        problems.append(f"link parameter `method` = {method!r} is unknown "
                        f"(allowed: {', '.join(attributions.METHODS)})")
        method = next(iter(attributions.METHODS))
    st.session_state["cfg.method"] = method
    for name, value in parse_params(attributions.METHODS[method].params, query, "m.",
                                    problems).items():
        st.session_state[_param_key("cfg.mp", method, name)] = value
    attack = query.get("attack", "topk")
    if attack not in attacks.ATTACKS:
        problems.append(f"link parameter `attack` = {attack!r} is unknown "
                        f"(allowed: {', '.join(attacks.ATTACKS)})")
        attack = next(iter(attacks.ATTACKS))
    st.session_state["cfg.attack"] = attack
    scale = pixel_scale(info)
    aspecs = attack_specs(attacks.ATTACKS[attack])
    specs = {p.name: p for p in aspecs}
    for name, value in parse_params(aspecs, query, "a.", problems).items():
        p = specs[name]
        st.session_state[_param_key("cfg.ap", ds, attack, name)] = _widget_value(
            p, value, scale if name in PIXEL_PARAMS else 1.0)
    if "region" in query:
        h, w = info.size
        try:
            r0, r1, c0, c1 = parse_region(query["region"], h, w)
            st.session_state[f"cfg.region_rows.{ds}"] = (r0, r1)
            st.session_state[f"cfg.region_cols.{ds}"] = (c0, c1)
        except ValueError as exc:
            problems.append(f"link parameter `region`: {exc}; using the default")
    seed = parse_int(query, "seed", problems, lo=0, hi=2**31 - 1)
    if seed is not None:
        st.session_state["cfg.seed"] = seed
    dev = query.get("dev")
    if dev is not None:
        if dev in DEVICES:
            st.session_state["cfg.device"] = dev
        else:
            problems.append(f"link parameter `dev` must be one of {', '.join(DEVICES)}; got {dev!r}")
    h, w = info.size
    k = parse_int(query, "k", problems, lo=1, hi=h * w,
                  what=f"k is a pixel count; this {h}×{w} image allows")
    if k is not None:
        st.session_state[f"cfg.k.{ds}"] = k
    wv = parse_int(query, "w", problems, lo=0, hi=stages.W_MAX, what="w allowed")
    if wv is not None:
        st.session_state[f"cfg.w.{ds}"] = wv
    if query.get("run") == "1":
        st.session_state["cfg.autorun"] = True
    st.session_state["cfg.link_problems"] = problems
    return problems


def sync_query_params(cfg: Config, ran: bool) -> None:
    """Write the configuration into the URL (only when it changed)."""
    wanted = to_query(cfg, ran=ran)
    current = {k: st.query_params[k] for k in st.query_params}
    if current != wanted:
        st.query_params.from_dict(wanted)


# ------------------------------------------------------------------------------- sidebar

def card_line(card: dict | None) -> str:
    """One line of a model card: clean and robust accuracy (or the published top-1)."""
    if not card:
        return "no model card (not trained yet)"
    parts = []
    clean = card.get("clean_accuracy")
    robust = card.get("robust_accuracy")
    if isinstance(clean, (int, float)):
        n = card.get("clean_accuracy_n")
        parts.append(f"clean accuracy {_pct(clean)}" + (f" (n = {n})" if n else ""))
    if isinstance(robust, (int, float)):
        ev = card.get("robust_eval") if isinstance(card.get("robust_eval"), dict) else {}
        eps = ev.get("epsilon")
        parts.append(f"robust accuracy {_pct(robust)}"
                     + (f" (PGD, ε = {eps:.3g})" if isinstance(eps, (int, float)) else ""))
    top1 = card.get("reference_top1")
    if isinstance(top1, (int, float)) and top1 == top1:
        parts.append(f"published ImageNet top-1 {_pct(top1)}")
    if card.get("interim"):
        parts.append("interim weights")
    return " · ".join(parts) if parts else "the model card lists no accuracy"


def _pct(v: float) -> str:
    v = float(v)
    return f"{100 * v:.1f}%" if v <= 1.0 else f"{v:.1f}%"


def model_available(models, dataset: str, name: str) -> bool:
    try:
        return bool(models.is_available(dataset, name))
    except Exception:  # noqa: BLE001 - availability is a hint; load() gives the real message
        return True


def _device_choice() -> tuple[str, str, str]:
    import torch

    _init("cfg.device", "auto")
    choice = st.radio("Device", DEVICES, key="cfg.device", horizontal=True,
                      help="auto uses the GPU when one is available.")
    has_cuda = torch.cuda.is_available()
    if choice == "cuda" and not has_cuda:
        return choice, "cpu", "No CUDA device here: running on the CPU."
    resolved = "cuda" if (choice == "cuda" or (choice == "auto" and has_cuda)) else "cpu"
    return choice, resolved, f"Running on: **{resolved}**"


GALLERY_COLS = 4
GALLERY_ROWS = 3


@st.fragment
def _gallery(ds: str) -> None:
    """Thumbnails of the bundled images, a page at a time; clicking one picks it.

    A fragment: paging through thumbnails reruns only the gallery; picking an image reruns the app.
    """
    if st.session_state.pop("gallery.picked", False):
        st.rerun()
    samples = stages.samples(ds)
    n = len(samples["names"])
    per_page = GALLERY_COLS * GALLERY_ROWS
    pages = max(1, -(-n // per_page))
    page_key = f"gallery.page.{ds}"
    first = min(pages, 1 + int(st.session_state.get(f"cfg.sample.{ds}", 0)) // per_page)
    if pages > 1:
        page = st.pagination(pages, default=first, key=page_key, max_visible_pages=3,
                             width="stretch")
    else:
        page = 1
    start = (page - 1) * per_page
    current = int(st.session_state.get(f"cfg.sample.{ds}", 0))
    for row in range(start, min(start + per_page, n), GALLERY_COLS):
        cols = st.columns(GALLERY_COLS, gap="small")
        for j, col in enumerate(cols):
            i = row + j
            if i >= n:
                break
            with col:
                st.image(samples["thumbs"][i], width="stretch")
                st.button(str(i), key=f"gal.{ds}.{i}", help=samples["names"][i],
                          width="stretch", on_click=_pick_sample, args=(ds, i),
                          type="primary" if i == current else "secondary")


def _pick_sample(ds: str, i: int) -> None:
    st.session_state["cfg.source"] = "sample"
    st.session_state[f"cfg.sample.{ds}"] = i
    st.session_state["gallery.picked"] = True


def _random_image(ds: str, n_samples: int, test_size: int | None, seed: int) -> None:
    rng = random.Random()
    if test_size:
        st.session_state["cfg.source"] = "index"
        st.session_state[f"cfg.index.{ds}"] = rng.randrange(test_size)
    else:
        st.session_state["cfg.source"] = "sample"
        st.session_state[f"cfg.sample.{ds}"] = rng.randrange(max(n_samples, 1))


def _image_controls(ds: str, info) -> tuple[str, int, str | None, str | None]:
    """Returns (source, image number, upload sha or None, upload error or None)."""
    data = _registries()[0]
    samples = stages.samples(ds)
    n_samples = len(samples["names"])
    test_size, test_error = stages.test_set_size(ds)
    _init("cfg.source", "sample")
    _init(f"cfg.sample.{ds}", 0)
    _init(f"cfg.index.{ds}", 0)
    if st.session_state[f"cfg.sample.{ds}"] >= max(n_samples, 1):
        st.session_state[f"cfg.sample.{ds}"] = 0
    source = st.radio("Image", SOURCES, key="cfg.source", horizontal=True,
                      format_func=SOURCE_LABELS.get)
    upload_error = None
    upload_sha = None
    if source == "sample":
        if n_samples == 0:
            st.warning("No bundled images for this dataset.")
            return source, 0, None, None
        st.selectbox("Bundled image", range(n_samples), key=f"cfg.sample.{ds}",
                     format_func=lambda i: f"{i}: {samples['names'][i]}")
        with st.expander(f"Gallery ({n_samples} bundled images)", expanded=False):
            _gallery(ds)
        image = int(st.session_state[f"cfg.sample.{ds}"])
    elif source == "index":
        if test_size is None:
            st.info(test_error or "The test set is not on this machine.", icon=":material/info:")
            image = int(st.session_state[f"cfg.index.{ds}"])
        else:
            if st.session_state[f"cfg.index.{ds}"] >= test_size:
                st.session_state[f"cfg.index.{ds}"] = 0
            st.number_input(f"Test-set index (0..{test_size - 1})", min_value=0,
                            max_value=test_size - 1, step=1, key=f"cfg.index.{ds}")
            image = int(st.session_state[f"cfg.index.{ds}"])
    else:
        image = 0
        accepted = st.session_state.setdefault(UPLOAD_STATE, {})
        uploaded = st.file_uploader(
            f"Image file ({info.channels}-channel {info.size[0]}×{info.size[1]} after resizing)",
            type=None, key=f"upl.{ds}",
            help="PNG, JPEG, WebP, BMP or GIF. The image is converted to the dataset's channels, "
                 "resized and centre-cropped to its input size.")
        invert = False
        if info.channels == 1:
            _init(f"cfg.invert.{ds}", False)
            invert = st.checkbox("Invert (dark strokes on light paper)", key=f"cfg.invert.{ds}",
                                 help=f"{info.name} images are light on a dark background.")
        if uploaded is not None:
            raw = uploaded.getvalue()
            sha = hashlib.sha256(raw).hexdigest()[:16]
            try:
                stages.upload_image(ds, uploaded.name, raw, sha, invert)
                accepted[ds] = (uploaded.name, sha, raw)
            except data.UploadError as exc:
                upload_error = str(exc)
                st.error(f"Refused: {exc}", icon=":material/block:")
        if ds in accepted and upload_error is None:
            upload_sha = accepted[ds][1] + (":inverted" if invert else "")
            st.caption(f"Using {accepted[ds][0]}")
    st.button("Random image", key=f"rand.{ds}", icon=":material/casino:",
              on_click=_random_image,
              args=(ds, n_samples, test_size, int(st.session_state.get("cfg.seed", 0))),
              help="A random test-set image when the test set is on this machine, "
                   "else a random bundled image.")
    return source, image, upload_sha, upload_error


def _region_controls(ds: str, info) -> tuple[int, int, int, int]:
    h, w = info.size
    _init(f"cfg.region_rows.{ds}", (h // 4, (3 * h) // 4 - 1))
    _init(f"cfg.region_cols.{ds}", (w // 4, (3 * w) // 4 - 1))
    rows = st.slider("Target region rows", 0, h - 1, key=f"cfg.region_rows.{ds}",
                     help="The targeted attack pushes attribution into this rectangle.")
    cols = st.slider("Target region columns", 0, w - 1, key=f"cfg.region_cols.{ds}")
    return int(rows[0]), int(rows[1]), int(cols[0]), int(cols[1])


def _reset_attack(ds: str, attack: str, defaults: dict, scale: float, specs) -> None:
    for p in specs:
        st.session_state[_param_key("cfg.ap", ds, attack, p.name)] = _widget_value(
            p, defaults[p.name], scale if p.name in PIXEL_PARAMS else 1.0)


def sidebar() -> Sidebar:
    """Render the sidebar; return the configuration (k and w from their saved state)."""
    data, models, attributions, attacks = _registries()
    problems = list(apply_query_params())
    keep_state()
    sb = st.sidebar
    with sb:
        _init("cfg.dataset", "mnist")
        ds = st.selectbox("Dataset", list(data.DATASETS), key="cfg.dataset",
                          format_func=lambda key: data.DATASETS[key].name)
        info = data.DATASETS[ds]

        model_infos = models.models_for(ds)
        model_names = [m.name for m in model_infos]
        available = {m.name: model_available(models, ds, m.name) for m in model_infos}
        labels = {m.name: (m.label or m.name) + ("" if available[m.name] else " · not here")
                  for m in model_infos}
        if model_names:
            _init(f"cfg.model.{ds}", next((n for n in model_names if available[n]),
                                          model_names[0]))
            if st.session_state[f"cfg.model.{ds}"] not in model_names:
                st.session_state[f"cfg.model.{ds}"] = model_names[0]
            model = st.selectbox("Model", model_names, key=f"cfg.model.{ds}",
                                 format_func=lambda n: labels.get(n, n))
            try:
                st.caption(card_line(models.card(ds, model)))
            except Exception as exc:  # a broken card must not hide the sidebar
                st.caption(f"model card unreadable: {exc}")
        else:
            model = ""
            st.warning(f"No model is registered for {info.name}.")

        source, image, upload_sha, upload_error = _image_controls(ds, info)

        st.divider()
        method_keys = list(attributions.METHODS)
        _init("cfg.method", "saliency" if "saliency" in method_keys else method_keys[0])
        method = st.selectbox("Attribution method", method_keys, key="cfg.method",
                              format_func=lambda key: attributions.METHODS[key].name,
                              help=attributions.METHODS[st.session_state["cfg.method"]].description)
        method_params = {}
        specs = attributions.METHODS[method].params
        if specs:
            with st.expander("Method parameters"):
                for p in specs:
                    key = _param_key("cfg.mp", method, p.name)
                    _init(key, _widget_value(p, p.default, 1.0))
                    method_params[p.name] = param_widget(p, key)

        attack_keys = list(attacks.ATTACKS)
        _init("cfg.attack", "topk" if "topk" in attack_keys else attack_keys[0])
        attack = st.selectbox("Attack", attack_keys, key="cfg.attack",
                              format_func=lambda key: attacks.ATTACKS[key].name,
                              help=attacks.ATTACKS[st.session_state["cfg.attack"]].description)
        ainfo = attacks.ATTACKS[attack]
        specs = attack_specs(ainfo)
        defaults = attack_defaults(info, ainfo)
        scale = pixel_scale(info)
        attack_params = {}
        region = None
        main_names = {p.name for p in ainfo.params}
        with st.expander("Attack parameters (paper defaults)", expanded=False):
            for p in specs:
                if p.name not in main_names and p is specs_first_advanced(specs, main_names):
                    st.caption("Selection of the best iterate")
                key = _param_key("cfg.ap", ds, attack, p.name)
                s = scale if p.name in PIXEL_PARAMS else 1.0
                _init(key, _widget_value(p, defaults[p.name], s))
                attack_params[p.name] = param_widget(p, key, scale=s)
            if ainfo.needs_region:
                region = _region_controls(ds, info)
            st.button("Reset to the paper's settings", key=f"reset.{ds}.{attack}",
                      on_click=_reset_attack, args=(ds, attack, defaults, scale, specs))
            if info.defaults.notes:
                st.caption(info.defaults.notes)

        _init("cfg.seed", 0)
        st.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key="cfg.seed",
                        help="Seeds the random attacks and SmoothGrad noise.")
        device_choice, device, device_note = _device_choice()
        st.caption(device_note)

    h, w = info.size
    _init(f"cfg.k.{ds}", min(info.defaults.eval_k, h * w))
    _init(f"cfg.w.{ds}", info.defaults.w)
    config = Config(
        dataset=ds, model=model, source=source, image=image, upload_sha=upload_sha,
        method=method, method_params=method_params, attack=attack, attack_params=attack_params,
        region=region, seed=int(st.session_state["cfg.seed"]), device=device_choice,
        k=int(st.session_state[f"cfg.k.{ds}"]), w=int(st.session_state[f"cfg.w.{ds}"]),
    )
    config_device = device
    st.session_state["cfg.resolved_device"] = config_device
    return Sidebar(config, problems, upload_error, device_note)


def resolved_device() -> str:
    return st.session_state.get("cfg.resolved_device", "cpu")


def page_start(title: str):
    """What every page does first: render the sidebar, show the page title and any warnings
    about the shared link. Returns ``(sidebar, config, device, dataset_info)``."""
    data = _registries()[0]
    sb = sidebar()
    cfg = sb.config
    st.markdown(f"#### {title}")
    for problem in sb.problems:
        st.warning(problem, icon=":material/link_off:")
    return sb, cfg, resolved_device(), data.DATASETS[cfg.dataset]
