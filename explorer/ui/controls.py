"""The sidebar: widgets built from the registries' parameter specs, and the link applied to them.

Widgets never get a ``value=`` argument: their state lives in ``st.session_state`` under the
configuration keys of ``keys`` (``cfg.*``), initialised here from the registries' defaults (the
dataset's paper settings for attacks) or from the link's query parameters (read by
``link.from_query``). That keeps one source of truth per widget and lets the configuration survive
page switches. The image picker is in ``picker``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import streamlit as st

from explorer import attacks, attributions, data, metrics, models
from explorer import device as device_choice

from . import availability, keys, link, picker
from .state import DEVICES, Config, attack_specs

__all__ = ["PIXEL_PARAMS", "Sidebar", "apply_link", "attack_defaults", "attack_summary",
           "card_line", "choice_label", "keep_state", "link_warning", "write_query",
           "page_start", "param_widget", "pixel_scale", "resolved_device", "sidebar", "sync_query_params"]

# Attack parameters that are pixel budgets ([0, 1] units); shown in 1/255 units for RGB data.
PIXEL_PARAMS = ("epsilon", "step_size")


@dataclass(frozen=True)
class Sidebar:
    """What the sidebar decided: the configuration plus what pages need to warn about."""

    config: Config
    problems: tuple[link.LinkProblem, ...]  # what was wrong with the session's link
    upload_error: str | None
    device_note: str


def _init(key: str, default: Any) -> None:
    if key not in st.session_state:
        st.session_state[key] = default


def keep_state() -> None:
    """Re-assign every ``cfg.*`` value so Streamlit keeps it while another page is shown."""
    for key in [k for k in st.session_state if str(k).startswith(keys.CONFIG_PREFIX)]:
        st.session_state[key] = st.session_state[key]


def pixel_scale(dataset_info) -> float:
    """Display factor for pixel budgets: 255 for RGB data (ε in 1/255 units), else 1."""
    return 255.0 if dataset_info.channels == 3 else 1.0


def _first_advanced(specs, main_names):
    """The first selection parameter in ``specs`` (a caption goes above it)."""
    return next((p for p in specs if p.name not in main_names), None)


def attack_defaults(dataset_info, attack_info) -> dict[str, Any]:
    """The attack's declared defaults, overridden by the dataset's paper settings by name."""
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
        elif p.kind == "choice":
            text = choice_label(v)
        else:
            text = str(v)
        parts.append(f"{p.display_label} = {text}")
    return " · ".join(parts)


def choice_label(value: Any) -> str:
    """How a choice value is shown: a metric key by its readable name (the one table,
    ``metrics.METRICS``), anything else as its text."""
    return metrics.metric_label(value) if isinstance(value, str) else str(value)


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
                            format_func=choice_label)
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


# ------------------------------------------------------------------------------- the link

def apply_link() -> tuple[link.LinkProblem, ...]:
    """On a session's first run, copy the link's configuration into the widget state.

    Bad values are reported (returned) and left to their defaults; nothing raises. Later runs
    return the same problems (the pages show them until the session ends).
    """
    if keys.link_loaded() in st.session_state:
        return st.session_state.get(keys.link_problems(), ())
    st.session_state[keys.link_loaded()] = True
    query = {k: st.query_params[k] for k in st.query_params}
    problems: tuple[link.LinkProblem, ...] = ()
    if query:
        state, found = link.from_query(query)
        state, found = availability.restrict_link(query, state, found)
        _apply(state)
        problems = tuple(found)
    st.session_state[keys.link_problems()] = problems
    return problems


def _apply(state: link.LinkState) -> None:
    ss = st.session_state
    ds = state.dataset
    info = data.DATASETS[ds]
    ss[keys.dataset()] = ds
    if state.model is not None:
        ss[keys.model(ds)] = state.model
    ss[keys.source()] = state.source
    if state.image is not None:
        ss[keys.image(state.source, ds)] = state.image
    ss[keys.method()] = state.method
    for name, value in state.method_params.items():
        ss[keys.method_param(state.method, name)] = value
    ss[keys.attack()] = state.attack
    specs = {p.name: p for p in attack_specs(attacks.ATTACKS[state.attack])}
    scale = pixel_scale(info)
    for name, value in state.attack_params.items():
        ss[keys.attack_param(ds, state.attack, name)] = _widget_value(
            specs[name], value, scale if name in PIXEL_PARAMS else 1.0)
    if state.region is not None:
        r0, r1, c0, c1 = state.region
        ss[keys.region_rows(ds)] = (r0, r1)
        ss[keys.region_cols(ds)] = (c0, c1)
    for key, value in ((keys.seed(), state.seed), (keys.device(), state.device),
                       (keys.k(ds), state.k), (keys.w(ds), state.w)):
        if value is not None:
            ss[key] = value
    if state.run:
        ss[keys.autorun()] = True
    ss[keys.present()] = state.present
    if state.smooth is not None:
        ss[keys.smooth()] = state.smooth
    if state.zoom is not None:
        ss[keys.zoom()] = state.zoom
        ss[keys.zoom_open()] = True


def link_warning(problems: Sequence[link.LinkProblem]) -> None:
    """One warning box listing every problem of the link (its values as plain text)."""
    if problems:
        st.warning(link.problems_markdown(problems), icon=":material/link_off:")


def sync_query_params(cfg: Config, ran: bool, **view: Any) -> None:
    """Write the configuration into the URL (only when it changed); ``view``: how the page
    shows it (``present``, ``smooth``, ``zoom`` of ``link.link_state``)."""
    write_query(link.to_query(link.link_state(cfg, ran=ran, **view)))


def write_query(wanted: Mapping[str, str]) -> None:
    """Make the address hold exactly ``wanted`` (written only when it differs)."""
    current = {k: st.query_params[k] for k in st.query_params}
    if current != dict(wanted):
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


def _device_choice() -> tuple[str, str, str]:
    _init(keys.device(), "auto")
    choice = st.radio("Device", DEVICES, key=keys.device(), horizontal=True,
                      help="auto uses the GPU when one is available.")
    resolved = device_choice.choose(choice, strict=False)  # the library's one device choice
    note = device_choice.describe(resolved)
    if choice == "cuda" and resolved == "cpu":
        note = f"No CUDA GPU here: r{note[1:]}"
    return choice, resolved, note


def _region_controls(ds: str, info) -> tuple[int, int, int, int]:
    h, w = info.size
    _init(keys.region_rows(ds), (h // 4, (3 * h) // 4 - 1))
    _init(keys.region_cols(ds), (w // 4, (3 * w) // 4 - 1))
    rows = st.slider("Target region rows", 0, h - 1, key=keys.region_rows(ds),
                     help="The targeted attack pushes attribution into this rectangle.")
    cols = st.slider("Target region columns", 0, w - 1, key=keys.region_cols(ds))
    return int(rows[0]), int(rows[1]), int(cols[0]), int(cols[1])


def _reset_attack(ds: str, attack: str, defaults: dict, scale: float, specs) -> None:
    for p in specs:
        st.session_state[keys.attack_param(ds, attack, p.name)] = _widget_value(
            p, defaults[p.name], scale if p.name in PIXEL_PARAMS else 1.0)


def _model_controls(ds: str, info) -> str:
    """The model selector with its card line; "" when the dataset has no model."""
    model_infos = models.models_for(ds)
    model_names = [m.name for m in model_infos]
    if not model_names:
        st.warning(f"No model is registered for {info.name}.")
        return ""
    # Only usable models are offered; the others are named below with how to add them.
    usable = availability.usable_models(ds)
    labels = {m.name: m.label or m.name for m in model_infos}
    key = keys.model(ds)
    if not usable:
        st.warning(availability.dataset_hint(ds) or f"No model of {info.name} can be used here.")
        return ""
    _init(key, usable[0])
    if st.session_state[key] not in usable:
        st.session_state[key] = usable[0]
    model = st.selectbox("Model", usable, key=key, format_func=lambda n: labels.get(n, n))
    try:
        st.caption(card_line(models.card(ds, model)))
    except Exception as exc:  # noqa: BLE001 - a broken card must not hide the sidebar
        st.caption(f"model card unreadable: {exc}")
    _not_here([availability.model_hint(ds, n) for n in model_names if n not in usable])
    return model


def _not_here(hints: Sequence[str | None]) -> None:
    """A closed expander naming what cannot be used here; inside, one short line each on how
    to add it ("GTSRB — not installed: `python -m explorer data import gtsrb DIR`")."""
    lines = [h for h in hints if h]
    if lines:
        names = [line.split(" — ", 1)[0].removesuffix(" (ImageNet)") for line in lines]
        with st.expander(f"Not available here: {', '.join(names)}", icon=":material/block:"):
            st.caption("  \n".join(lines))


def _method_controls() -> tuple[str, dict[str, Any]]:
    method_keys = list(attributions.METHODS)
    _init(keys.method(), "saliency" if "saliency" in method_keys else method_keys[0])
    method = st.selectbox("Attribution method", method_keys, key=keys.method(),
                          format_func=lambda key: attributions.METHODS[key].name,
                          help=attributions.METHODS[st.session_state[keys.method()]].description)
    method_params = {}
    specs = attributions.METHODS[method].params
    if specs:
        with st.expander("Method parameters"):
            for p in specs:
                key = keys.method_param(method, p.name)
                _init(key, _widget_value(p, p.default, 1.0))
                method_params[p.name] = param_widget(p, key)
    return method, method_params


def _attack_controls(ds: str, info):
    """The attack selector and its parameters; returns (attack, parameters, region or None)."""
    attack_keys = list(attacks.ATTACKS)
    _init(keys.attack(), "topk" if "topk" in attack_keys else attack_keys[0])
    attack = st.selectbox("Attack", attack_keys, key=keys.attack(),
                          format_func=lambda key: attacks.ATTACKS[key].name,
                          help=attacks.ATTACKS[st.session_state[keys.attack()]].description)
    ainfo = attacks.ATTACKS[attack]
    specs = attack_specs(ainfo)
    defaults = attack_defaults(info, ainfo)
    scale = pixel_scale(info)
    attack_params = {}
    region = None
    main_names = {p.name for p in ainfo.params}
    first_advanced = _first_advanced(specs, main_names)
    with st.expander("Attack parameters (paper defaults)", expanded=False):
        for p in specs:
            if p is first_advanced:
                st.caption("Selection of the best iterate")
            key = keys.attack_param(ds, attack, p.name)
            s = scale if p.name in PIXEL_PARAMS else 1.0
            _init(key, _widget_value(p, defaults[p.name], s))
            attack_params[p.name] = param_widget(p, key, scale=s)
        if ainfo.needs_region:
            region = _region_controls(ds, info)
        st.button("Reset to the paper's settings", key=keys.reset_attack(ds, attack),
                  on_click=_reset_attack, args=(ds, attack, defaults, scale, specs))
        if info.defaults.notes:
            st.caption(info.defaults.notes)
    return attack, attack_params, region


def sidebar() -> Sidebar:
    """Render the sidebar; return the configuration (k and w from their saved state)."""
    problems = apply_link()
    keep_state()
    with st.sidebar:
        # Only usable datasets are offered; the others are named below with how to add them.
        usable = availability.usable_datasets() or ["mnist"]
        _init(keys.dataset(), usable[0])
        if st.session_state[keys.dataset()] not in usable:
            st.session_state[keys.dataset()] = usable[0]
        ds = st.selectbox("Dataset", usable, key=keys.dataset(),
                          format_func=lambda key: data.DATASETS[key].name)
        _not_here([availability.dataset_hint(d) for d in data.DATASETS if d not in usable])
        info = data.DATASETS[ds]
        model = _model_controls(ds, info)
        choice = picker.image_controls(ds, info)
        st.divider()
        method, method_params = _method_controls()
        attack, attack_params, region = _attack_controls(ds, info)
        _init(keys.seed(), 0)
        st.number_input("Seed", min_value=0, max_value=link.SEED_MAX, step=1, key=keys.seed(),
                        help="Seeds the random attacks and SmoothGrad noise.")
        device_choice, device, device_note = _device_choice()
        st.badge(device_note, icon=":material/memory:",
                 color="green" if device.startswith("cuda") else "gray")

    h, w = info.size
    _init(keys.k(ds), min(info.defaults.eval_k, h * w))
    _init(keys.w(ds), info.defaults.w)
    config = Config(
        dataset=ds, model=model, source=choice.source, image=choice.image,
        upload_sha=choice.upload_sha, method=method, method_params=method_params,
        attack=attack, attack_params=attack_params, region=region,
        seed=int(st.session_state[keys.seed()]), device=device_choice,
        k=int(st.session_state[keys.k(ds)]), w=int(st.session_state[keys.w(ds)]),
    )
    st.session_state[keys.resolved_device()] = device
    return Sidebar(config, problems, choice.upload_error, device_note)


def resolved_device() -> str:
    return st.session_state.get(keys.resolved_device(), "cpu")


def page_start(title: str):
    """What every page does first: render the sidebar, show the page title and one warning
    listing the problems of the shared link. Returns ``(sidebar, config, device,
    dataset_info)``."""
    sb = sidebar()
    cfg = sb.config
    st.markdown(f"#### {title}")
    link_warning(sb.problems)
    return sb, cfg, resolved_device(), data.DATASETS[cfg.dataset]
