"""A view's shared link: the pure pair :func:`from_query` / :func:`to_query` (no streamlit).

``to_query(state)`` writes a :class:`LinkState` as the page's query parameters (short names keep
links readable; method / attack parameters are ``m.<name>`` / ``a.<name>``, in library units);
``from_query(params)`` reads them back and returns the state together with every problem it
found. A bad value never raises: it is reported as a :class:`LinkProblem` and left out of the
state, so the app uses its default there. :func:`problems_markdown` turns the problems into the
text of one warning box, with the link's values shown as plain text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from explorer import attacks, attributions, data, models

from .plain import literal
from .state import DEVICES, W_MAX, Config, attack_specs

__all__ = ["LINKABLE_SOURCES", "LinkProblem", "LinkState", "MAX_LISTED", "SEED_MAX",
           "SMOOTH_MAX", "ZOOM_VIEWS", "from_query", "link_state", "parse_region", "parse_value", "problem_markdown",
           "problems_markdown", "to_query"]

LINKABLE_SOURCES = ("sample", "index")  # an uploaded image cannot travel in a link
SEED_MAX = 2**31 - 1
MAX_LISTED = 10  # problems listed in the warning box; the rest are counted
SMOOTH_MAX = 3.0  # largest display smoothing σ (pixels) offered by the page
ZOOM_VIEWS = ("pair", "original", "perturbed")  # what the larger view shows


@dataclass(frozen=True)
class LinkState:
    """What a link says about the view. ``None`` (or an absent parameter name) means "not in
    the link": the sidebar's default applies. Parameter values are in library units."""

    dataset: str = "mnist"
    model: str | None = None
    source: str = "sample"
    image: int | None = None  # sample number or test-set index
    method: str = "saliency"
    method_params: Mapping[str, Any] = field(default_factory=dict)
    attack: str = "topk"
    attack_params: Mapping[str, Any] = field(default_factory=dict)
    region: tuple[int, int, int, int] | None = None  # rows r0..r1, cols c0..c1 (inclusive)
    seed: int | None = None
    device: str | None = None
    k: int | None = None
    w: int | None = None
    run: bool = False  # run the attack on open
    # How the view is shown (never what is computed):
    present: bool = False  # presenter mode: large type, no sidebar
    smooth: float | None = None  # display smoothing σ of the maps, in pixels
    zoom: str | None = None  # the larger view is open on one of ZOOM_VIEWS


@dataclass(frozen=True)
class LinkProblem:
    """One link parameter the app could not use: what was wrong and what is allowed.

    ``key`` and ``value`` are the link's own text (shown only as plain text); ``why``,
    ``allowed`` and ``instead`` are the app's words.
    """

    key: str
    value: str | None  # None when the parameter itself is the problem (an unknown name)
    why: str  # "is not a dataset here"
    allowed: str  # "allowed: mnist, fashion_mnist"
    instead: str = "using the default"  # what the app does in its place


def link_state(cfg: Config, *, ran: bool = False, present: bool = False,
               smooth: float | None = None, zoom: str | None = None) -> LinkState:
    """The link of a configuration (an uploaded image is not part of it) and of how the page
    shows it (presenter mode, display smoothing, the larger view)."""
    return LinkState(
        dataset=cfg.dataset, model=cfg.model, source=cfg.source,
        image=None if cfg.source == "upload" else cfg.image, method=cfg.method,
        method_params=dict(cfg.method_params), attack=cfg.attack,
        attack_params=dict(cfg.attack_params), region=cfg.region, seed=cfg.seed,
        device=cfg.device, k=cfg.k, w=cfg.w, run=ran, present=present, smooth=smooth,
        zoom=zoom)


def to_query(state: LinkState) -> dict[str, str]:
    """The query parameters of ``state``, in a fixed order; ``None`` fields are left out."""
    q: dict[str, str] = {"ds": state.dataset}
    if state.model is not None:
        q["model"] = state.model
    q["src"] = state.source
    if state.image is not None:
        q["img"] = str(state.image)
    q["method"] = state.method
    for name, value in state.method_params.items():
        q[f"m.{name}"] = _to_text(value)
    q["attack"] = state.attack
    for name, value in state.attack_params.items():
        q[f"a.{name}"] = _to_text(value)
    if state.region is not None:
        q["region"] = ",".join(str(v) for v in state.region)
    for key, value in (("seed", state.seed), ("dev", state.device), ("k", state.k),
                       ("w", state.w)):
        if value is not None:
            q[key] = str(value)
    if state.run:
        q["run"] = "1"
    if state.present:
        q["present"] = "1"
    if state.smooth is not None:
        q["smooth"] = _to_text(float(state.smooth))
    if state.zoom is not None:
        q["zoom"] = state.zoom
    return q


def _to_text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)  # exact: float(repr(x)) == x
    return str(value)


def from_query(params: Mapping[str, str]) -> tuple[LinkState, list[LinkProblem]]:
    """The state a link describes and the problems found in it (dataset first, k and w last).

    Unknown dataset, method or attack names fall back to MNIST / the first registered one;
    every other bad value is left out of the state. Parameter names the app does not know
    outside the ``m.`` / ``a.`` families are ignored.
    """
    q = dict(params)
    problems: list[LinkProblem] = []

    ds = q.get("ds", "mnist")
    if ds not in data.DATASETS:
        problems.append(LinkProblem("ds", ds, "is not a dataset here",
                                    f"allowed: {', '.join(data.DATASETS)}", "using MNIST"))
        ds = "mnist"
    info = data.DATASETS[ds]
    h, w = info.size

    model = q.get("model")
    names = [m.name for m in models.models_for(ds)]
    if model is not None and model not in names:
        problems.append(LinkProblem("model", model, f"is not a model of {info.name}",
                                    f"allowed: {', '.join(names) or 'none'}",
                                    "using the default model"))
        model = None

    source = q.get("src", "sample")
    if source == "upload":
        problems.append(LinkProblem(
            "src", source, "refers to an uploaded image, which links cannot carry",
            f"allowed: {', '.join(LINKABLE_SOURCES)}",
            "showing a bundled sample instead (upload the file again)"))
        source = "sample"
    elif source not in LINKABLE_SOURCES:
        problems.append(LinkProblem("src", source, "is not an image source",
                                    f"allowed: {', '.join(LINKABLE_SOURCES)}",
                                    "using the bundled samples"))
        source = "sample"
    image = _parse_int(q, "img", problems, lo=0)

    method = _registered(q, "method", "saliency", attributions.METHODS,
                         "an attribution method", problems)
    method_params = _parse_params(attributions.METHODS[method].params, q, "m.",
                                  attributions.METHODS[method].name, problems)

    attack = _registered(q, "attack", "topk", attacks.ATTACKS, "an attack", problems)
    attack_params = _parse_params(attack_specs(attacks.ATTACKS[attack]), q, "a.",
                                  attacks.ATTACKS[attack].name, problems)

    region = None
    if "region" in q:
        try:
            region = parse_region(q["region"], h, w)
        except ValueError as exc:
            problems.append(LinkProblem("region", q["region"], str(exc),
                                        _region_allowed(h, w), "using the default region"))
    seed = _parse_int(q, "seed", problems, lo=0, hi=SEED_MAX)
    device = q.get("dev")
    if device is not None and device not in DEVICES:
        problems.append(LinkProblem("dev", device, "is not a device choice",
                                    f"allowed: {', '.join(DEVICES)}"))
        device = None
    k = _parse_int(q, "k", problems, lo=1, hi=h * w,
                   what=f"k is a pixel count; this {h}×{w} image allows")
    wv = _parse_int(q, "w", problems, lo=0, hi=W_MAX, what="w allowed")
    present, smooth, zoom = _view(q, problems)
    state = LinkState(dataset=ds, model=model, source=source, image=image, method=method,
                      method_params=method_params, attack=attack, attack_params=attack_params,
                      region=region, seed=seed, device=device, k=k, w=wv,
                      run=q.get("run") == "1", present=present, smooth=smooth, zoom=zoom)
    return state, problems


def _view(q: Mapping[str, str], problems: list[LinkProblem]
          ) -> tuple[bool, float | None, str | None]:
    """The display part of a link: presenter mode, smoothing σ, the larger view."""
    present = q.get("present", "0")
    if present not in ("0", "1"):
        problems.append(LinkProblem("present", present, "is not 0 or 1",
                                    "allowed: 1 (presenter mode) or 0", "presenter mode off"))
    smooth = None
    if "smooth" in q:
        try:
            smooth = float(q["smooth"])
        except ValueError:
            smooth = None
            why = "is not a number"
        else:
            why = "is out of range" if math.isfinite(smooth) else "is not a finite number"
        if smooth is None or not 0.0 <= smooth <= SMOOTH_MAX:  # NaN fails the range too
            problems.append(LinkProblem("smooth", q["smooth"], why,
                                        f"allowed: a smoothing σ in pixels, 0..{SMOOTH_MAX:g}",
                                        "no smoothing"))
            smooth = None
    zoom = q.get("zoom")
    if zoom is not None and zoom not in ZOOM_VIEWS:
        problems.append(LinkProblem("zoom", zoom, "is not a larger view",
                                    f"allowed: {', '.join(ZOOM_VIEWS)}", "larger view closed"))
        zoom = None
    return present == "1", smooth, zoom


# ------------------------------------------------------------------------------- values

def _registered(query: Mapping[str, str], key: str, default: str, registry: Mapping[str, Any],
                what: str, problems: list[LinkProblem]) -> str:
    """The registry key the link names (``default`` when absent); an unknown one is reported
    and replaced by the registry's first entry."""
    name = query.get(key, default)
    if name in registry:
        return name
    fallback = next(iter(registry))
    problems.append(LinkProblem(key, name, f"is not {what} here",
                                f"allowed: {', '.join(registry)}", f"using {fallback}"))
    return fallback


def parse_value(param, text: str) -> Any:
    """URL text -> a valid value of an :class:`explorer.params.Param`.

    Raises ValueError saying what is wrong with the text (never echoing it); the allowed
    values are ``param.allowed()``.
    """
    if param.kind == "bool":
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError("is not true or false")
    if param.kind == "choice":
        for choice in param.choices:
            if str(choice) == text:
                return param.check(choice)
        raise ValueError("is not one of the choices")
    try:
        number = float(text) if param.kind == "float" else int(text)
    except ValueError:
        raise ValueError("is not a number" if param.kind == "float"
                         else "is not an integer") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise ValueError("is not a finite number")
    try:
        return param.check(number)
    except ValueError:
        raise ValueError("is out of range") from None


def _parse_params(specs: Sequence, query: Mapping[str, str], prefix: str, owner: str,
                  problems: list[LinkProblem]) -> dict[str, Any]:
    """Values of ``specs`` found in ``query`` under ``prefix``; bad ones reported."""
    by_name = {p.name: p for p in specs}
    out: dict[str, Any] = {}
    for key, text in query.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if name not in by_name:
            problems.append(LinkProblem(
                key, None, f"is not a parameter of {owner}",
                f"allowed: {', '.join(prefix + n for n in by_name) or 'none'}", "ignored"))
            continue
        try:
            out[name] = parse_value(by_name[name], text)
        except ValueError as exc:
            problems.append(LinkProblem(key, text, str(exc),
                                        f"allowed: {by_name[name].allowed()}"))
    return out


def _parse_int(query: Mapping[str, str], key: str, problems: list[LinkProblem], *,
               lo: int, hi: int | None = None, what: str = "allowed") -> int | None:
    if key not in query:
        return None
    text = query[key]
    rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
    try:
        value = int(text)
    except ValueError:
        problems.append(LinkProblem(key, text, "is not an integer", f"{what}: {rng}"))
        return None
    if value < lo or (hi is not None and value > hi):
        problems.append(LinkProblem(key, text, "is out of range", f"{what}: {rng}"))
        return None
    return value


def _region_allowed(height: int, width: int) -> str:
    return (f"allowed: four integers r0,r1,c0,c1 with 0 ≤ r0 ≤ r1 < {height} (rows) and "
            f"0 ≤ c0 ≤ c1 < {width} (columns)")


def parse_region(text: str, height: int, width: int) -> tuple[int, int, int, int]:
    """``"r0,r1,c0,c1"`` -> the inclusive rectangle; ValueError (not echoing the text) else."""
    try:
        r0, r1, c0, c1 = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError("is not four integers separated by commas") from None
    if not (0 <= r0 <= r1 < height and 0 <= c0 <= c1 < width):
        raise ValueError("does not lie inside the image")
    return r0, r1, c0, c1


# ------------------------------------------------------------------------------- display

def _shown(text: str) -> str:
    """A link value for the warning: plain digits as they are, anything else as a literal."""
    return text if text.isdigit() and text.isascii() and len(text) <= 12 else literal(text)


def problem_markdown(p: LinkProblem) -> str:
    """One problem as a Markdown line: the link's text as plain text, the rest the app's."""
    what = literal(p.key) if p.value is None else f"{literal(p.key)} = {_shown(p.value)}"
    return f"{what} {p.why} ({p.allowed}); {p.instead}."


def problems_markdown(problems: Sequence[LinkProblem]) -> str:
    """The text of the one warning box about a link: a heading and a list of the problems."""
    n = len(problems)
    head = ("**This link has a value the app could not use**" if n == 1 else
            f"**This link has {n} values the app could not use**")
    lines = [f"{head}; the rest of the link was applied.", ""]
    lines += [f"- {problem_markdown(p)}" for p in problems[:MAX_LISTED]]
    if n > MAX_LISTED:
        lines.append(f"- … and {n - MAX_LISTED} more.")
    return "\n".join(lines)
