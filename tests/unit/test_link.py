"""The shared link: the pure pair ``link.from_query`` / ``link.to_query`` and its refusals, and
user text shown as plain text inside Markdown (``plain.literal``).

Markdown is rendered here with markdown-it-py's GitHub-like preset (CommonMark plus tables,
strikethrough and autolinked bare URLs, as Streamlit's renderer does) to check that a crafted
value never becomes a link, an image or HTML.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from explorer import attacks, attributions, data, models
from explorer.params import Param
from explorer.ui import link, plain
from explorer.ui.state import DEVICES, W_MAX, Config, attack_specs

MD = MarkdownIt("gfm-like")


def html_of(markdown: str) -> str:
    return MD.render(markdown)


def assert_inert(markdown: str) -> None:
    """No link, image, raw HTML element or heading came out of ``markdown``."""
    out = html_of(markdown)
    for tag in ("<a ", "<img", "<script", "<h1", "<h2", "<iframe"):
        assert tag not in out, (tag, out)


# ------------------------------------------------------------------------------ strategies

def _value(p: Param):
    if p.kind == "bool":
        return st.booleans()
    if p.kind == "choice":
        return st.sampled_from(p.choices)
    if p.kind == "int":
        return st.integers(min_value=int(p.min) if p.min is not None else -10**9,
                           max_value=int(p.max) if p.max is not None else 10**9)
    return st.floats(min_value=p.min, max_value=p.max, allow_nan=False, allow_infinity=False)


def _params(specs):
    """A dict of some of ``specs``, each with a valid value."""
    if not specs:
        return st.just({})
    return st.fixed_dictionaries({}, optional={p.name: _value(p) for p in specs})


def _optional(strategy):
    return st.none() | strategy


@st.composite
def link_states(draw) -> link.LinkState:
    """Any state a link can carry: registered names, valid values, each optional part absent
    or present."""
    ds = draw(st.sampled_from(list(data.DATASETS)))
    h, w = data.DATASETS[ds].size
    method = draw(st.sampled_from(list(attributions.METHODS)))
    attack = draw(st.sampled_from(list(attacks.ATTACKS)))
    region = None
    if draw(st.booleans()):
        r0 = draw(st.integers(0, h - 1))
        c0 = draw(st.integers(0, w - 1))
        region = (r0, draw(st.integers(r0, h - 1)), c0, draw(st.integers(c0, w - 1)))
    return link.LinkState(
        dataset=ds,
        model=draw(_optional(st.sampled_from([m.name for m in models.models_for(ds)]))),
        source=draw(st.sampled_from(link.LINKABLE_SOURCES)),
        image=draw(_optional(st.integers(0, 10**6))),
        method=method,
        method_params=draw(_params(attributions.METHODS[method].params)),
        attack=attack,
        attack_params=draw(_params(attack_specs(attacks.ATTACKS[attack]))),
        region=region,
        seed=draw(_optional(st.integers(0, 2**31 - 1))),
        device=draw(_optional(st.sampled_from(DEVICES))),
        k=draw(_optional(st.integers(1, h * w))),
        w=draw(_optional(st.integers(0, W_MAX))),
        run=draw(st.booleans()),
        present=draw(st.booleans()),
        smooth=draw(_optional(st.floats(0.0, link.SMOOTH_MAX, allow_nan=False))),
        zoom=draw(_optional(st.sampled_from(link.ZOOM_VIEWS))),
    )


# ------------------------------------------------------------------------------ round trip

@settings(max_examples=300, deadline=None)
@given(link_states())
def test_round_trip_over_valid_states(state):
    query = link.to_query(state)
    assert all(isinstance(v, str) for v in query.values())
    back, problems = link.from_query(query)
    assert problems == []
    assert back == state
    assert link.to_query(back) == query


def test_query_of_a_configuration_is_the_app_link_format():
    cfg = Config(dataset="mnist", model="natural", source="sample", image=3,
                 method="smoothgrad", method_params={"n_samples": 10, "sigma": 0.15},
                 attack="topk", attack_params={"epsilon": 0.3, "steps": 4, "measure": "spearman"},
                 seed=7, device="auto", k=100, w=1)
    assert list(link.to_query(link.link_state(cfg, ran=True)).items()) == [
        ("ds", "mnist"), ("model", "natural"), ("src", "sample"), ("img", "3"),
        ("method", "smoothgrad"), ("m.n_samples", "10"), ("m.sigma", "0.15"),
        ("attack", "topk"), ("a.epsilon", "0.3"), ("a.steps", "4"), ("a.measure", "spearman"),
        ("seed", "7"), ("dev", "auto"), ("k", "100"), ("w", "1"), ("run", "1")]
    targeted = Config(dataset="mnist", model="natural", attack="targeted",
                      region=(7, 20, 0, 27), source="upload", upload_sha="abc")
    q = link.to_query(link.link_state(targeted))
    assert q["region"] == "7,20,0,27" and q["src"] == "upload"
    assert "img" not in q and "run" not in q  # an upload has no number; not run


def test_empty_link_is_the_default_state():
    assert link.from_query({}) == (link.LinkState(), [])


def test_float_values_survive_exactly():
    eps = 8 / 255
    state, problems = link.from_query(link.to_query(
        link.LinkState(dataset="imagenet", attack_params={"epsilon": eps})))
    assert problems == [] and state.attack_params["epsilon"] == eps


# ------------------------------------------------------------------------------ refusals

# (query, bad key, words of what was wrong, words of what is allowed, check of the state)
REFUSALS = [
    ({"ds": "cifar10"}, "ds", "is not a dataset", "mnist, fashion_mnist",
     lambda s: s.dataset == "mnist"),
    ({"ds": "mnist", "model": "resnet18"}, "model", "is not a model of MNIST",
     "natural, pgd", lambda s: s.model is None),
    ({"src": "upload"}, "src", "links cannot carry", "sample, index",
     lambda s: s.source == "sample"),
    ({"src": "camera"}, "src", "is not an image source", "sample, index",
     lambda s: s.source == "sample"),
    ({"img": "-1"}, "img", "out of range", ">= 0", lambda s: s.image is None),
    ({"img": "two"}, "img", "not an integer", ">= 0", lambda s: s.image is None),
    ({"method": "lime"}, "method", "is not an attribution method", "saliency, integrated",
     lambda s: s.method == next(iter(attributions.METHODS))),
    ({"method": "integrated_gradients", "m.steps": "0"}, "m.steps", "out of range",
     "an integer in [1, 1000]", lambda s: s.method_params == {}),
    ({"method": "integrated_gradients", "m.baseline": "noise"}, "m.baseline",
     "not one of the choices", "'zeros', 'blur', 'uniform'", lambda s: s.method_params == {}),
    ({"m.steps": "5"}, "m.steps", "is not a parameter of", "allowed: none",
     lambda s: s.method_params == {}),
    ({"attack": "fgsm"}, "attack", "is not an attack", "topk",
     lambda s: s.attack == next(iter(attacks.ATTACKS))),
    ({"a.epsilon": "nan"}, "a.epsilon", "not a finite number", "[0.0, 1.0]",
     lambda s: s.attack_params == {}),
    ({"a.epsilon": "2"}, "a.epsilon", "out of range", "[0.0, 1.0]",
     lambda s: s.attack_params == {}),
    ({"a.steps": "1.5"}, "a.steps", "not an integer", "[1, 5000]",
     lambda s: s.attack_params == {}),
    ({"attack": "random_sign", "a.beta": "2"}, "a.beta", "is not a parameter of",
     "a.epsilon, a.attack_k", lambda s: s.attack_params == {}),
    ({"region": "1,2"}, "region", "not four integers", "0 ≤ r0 ≤ r1 < 28",
     lambda s: s.region is None),
    ({"region": "0,28,0,5"}, "region", "inside the image", "< 28 (rows)",
     lambda s: s.region is None),
    ({"seed": str(2**31)}, "seed", "out of range", "0..2147483647", lambda s: s.seed is None),
    ({"dev": "gpu"}, "dev", "not a device choice", "auto, cuda, cpu",
     lambda s: s.device is None),
    ({"k": "785"}, "k", "out of range", "28×28 image allows: 1..784", lambda s: s.k is None),
    ({"ds": "imagenet", "k": "0"}, "k", "out of range", "1..50176", lambda s: s.k is None),
    ({"w": "11"}, "w", "out of range", f"0..{W_MAX}", lambda s: s.w is None),
    ({"present": "yes"}, "present", "is not 0 or 1", "1 (presenter mode) or 0",
     lambda s: s.present is False),
    ({"smooth": "-1"}, "smooth", "out of range", "0..3", lambda s: s.smooth is None),
    ({"smooth": "nan"}, "smooth", "not a finite number", "0..3", lambda s: s.smooth is None),
    ({"smooth": "lots"}, "smooth", "not a number", "σ in pixels", lambda s: s.smooth is None),
    ({"zoom": "all"}, "zoom", "is not a larger view", "pair, original, perturbed",
     lambda s: s.zoom is None),
]


@pytest.mark.parametrize("query, key, why, allowed, check", REFUSALS,
                         ids=[next(iter(r[0].items()))[0] + "=" + r[0][r[1]] if r[1] in r[0]
                              else r[1] for r in REFUSALS])
def test_each_bad_value_is_refused_with_what_is_allowed(query, key, why, allowed, check):
    state, problems = link.from_query(query)
    assert [p.key for p in problems] == [key]
    p = problems[0]
    assert why in p.why and allowed in p.allowed
    assert p.instead  # says what the app does instead
    assert check(state)
    line = link.problem_markdown(p)
    assert line.startswith(f"`{key}`") and why in line and allowed in line


def test_good_values_beside_bad_ones_still_apply():
    state, problems = link.from_query({"ds": "fashion_mnist", "k": "5000", "w": "2",
                                       "a.steps": "abc", "a.epsilon": "0.05", "seed": "7"})
    assert [p.key for p in problems] == ["a.steps", "k"]
    assert (state.dataset, state.w, state.seed, state.k) == ("fashion_mnist", 2, 7, None)
    assert state.attack_params == {"epsilon": 0.05}


def test_view_part_of_the_link():
    """Presenter mode, display smoothing and the larger view travel in the link; the page's
    configuration (and so its cache keys) does not depend on them."""
    cfg = Config(dataset="mnist", model="natural")
    q = link.to_query(link.link_state(cfg, present=True, smooth=1.5, zoom="pair"))
    assert (q["present"], q["smooth"], q["zoom"]) == ("1", "1.5", "pair")
    assert list(q)[-3:] == ["present", "smooth", "zoom"]
    plain_q = link.to_query(link.link_state(cfg))
    assert not {"present", "smooth", "zoom"} & set(plain_q)
    state, problems = link.from_query({"present": "1", "smooth": "0.5", "zoom": "original"})
    assert problems == [] and (state.present, state.smooth, state.zoom) == (True, 0.5, "original")
    assert link.from_query({"present": "0"}) == (link.LinkState(), [])


def test_run_only_on_one():
    assert link.from_query({"run": "1"})[0].run
    assert not link.from_query({"run": "yes"})[0].run


def test_parse_value_kinds():
    flag = Param("flag", "bool", False)
    assert link.parse_value(flag, "On") is True and link.parse_value(flag, "0") is False
    with pytest.raises(ValueError, match="true or false"):
        link.parse_value(flag, "maybe")
    steps = Param("steps", "int", 5, min=1, max=10)
    assert link.parse_value(steps, "10") == 10
    with pytest.raises(ValueError, match="out of range"):
        link.parse_value(steps, "11")


# ------------------------------------------------------------------------------ plain text

HOSTILE = [
    "[win](http://evil.example)",
    "![t](http://tracker.example/p.png)",
    "<img src=x onerror=alert(1)>",
    "<a href='http://evil.example'>x</a>",
    "http://evil.example/login",
    "www.evil.example",
    "`` ` ``[x](http://evil.example)",
    "a\n\n# Heading\n\n[x](http://evil.example)",
    "x`\n\n![t](http://tracker.example/p.png)",
    ":red[alarm] :material/warning: $x^2$",
    "[x]: http://evil.example\n\n[x]",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_render_as_inert_text(value):
    state, problems = link.from_query({"ds": value})
    text = link.problems_markdown(problems)
    assert_inert(text)
    out = html_of(text)
    shown = plain.printable(value)
    # The whole value is inside one <code> element, character for character.
    codes = re.findall(r"<code>(.*?)</code>", out, re.S)
    import html as html_module

    assert shown in [html_module.unescape(c) for c in codes]


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80))
def test_literal_shows_any_text_verbatim_and_inert(text):
    md = "value " + plain.literal(text)
    assert_inert(md)
    if not text:
        return
    import html as html_module

    codes = [html_module.unescape(c) for c in re.findall(r"<code>(.*?)</code>", html_of(md),
                                                         re.S)]
    want = plain.printable(text[:plain.LIMIT]) + ("…" if len(text) > plain.LIMIT else "")
    assert codes == [want]


def test_long_values_are_cut_with_their_length():
    value = "x" * 5000
    md = plain.literal(value)
    assert md == "`" + "x" * 60 + "…` (5,000 characters)"
    state, problems = link.from_query({"method": value})
    line = link.problem_markdown(problems[0])
    assert len(line) < 300 and "5,000 characters" in line and "x" * 61 not in line


def test_invisible_and_control_characters_are_written_out():
    assert plain.printable("a\nb\u202ec\u200bd") == "a\\nb\\u202ec\\u200bd"


def test_one_box_lists_every_problem_and_counts_the_rest():
    query = {f"a.bad{i}": "1" for i in range(15)}
    state, problems = link.from_query(query)
    assert len(problems) == 15
    text = link.problems_markdown(problems)
    assert text.startswith("**This link has 15 values the app could not use**")
    items = [ln for ln in text.splitlines() if ln.startswith("- ")]
    assert len(items) == link.MAX_LISTED + 1 and items[-1] == "- … and 5 more."
    single = link.problems_markdown(problems[:1])
    assert single.startswith("**This link has a value the app could not use**")
