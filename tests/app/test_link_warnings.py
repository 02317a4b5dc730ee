"""A shared link with bad values, in the real app: one warning box above the page, the link's
values shown as plain text (never a link, an image or HTML), long values cut, the page usable.

The warning's Markdown is rendered with markdown-it-py's GitHub-like preset (autolinks on), as
Streamlit's renderer would treat it.
"""

from __future__ import annotations

import html
import re

import pytest
from markdown_it import MarkdownIt

from app_helpers import metric_table, new_app, no_errors

MD = MarkdownIt("gfm-like")
LINK_ICON = ":material/link_off:"


def link_warnings(at) -> list[str]:
    return [w.value for w in at.warning if w.proto.icon == LINK_ICON]


def rendered(markdown: str) -> str:
    return MD.render(markdown)


def code_spans(markdown: str) -> list[str]:
    return [html.unescape(c) for c in re.findall(r"<code>(.*?)</code>", rendered(markdown), re.S)]


@pytest.mark.parametrize("param, value, why, allowed, widget, default", [
    ("ds", "[win](http://evil.example)", "is not a dataset here",
     "(allowed: mnist, fashion_mnist", "cfg.dataset", "mnist"),  # a Markdown link
    ("model", "![t](http://tracker.example/p.png)", "is not a model of MNIST",
     "(allowed: natural, pgd); using the default model", "cfg.model.mnist",
     "natural"),  # an external image
], ids=["markdown-link", "image"])
def test_markdown_value_is_plain_text(param, value, why, allowed, widget, default):
    at = new_app(**{param: value})
    at.run()
    no_errors(at)
    (box,) = link_warnings(at)
    out = rendered(box)
    for tag in ("<a ", "href", "<img", "src="):
        assert tag not in out, out
    assert value in code_spans(box)  # shown, character for character, as inert text
    assert why in box and allowed in box
    assert at.selectbox(key=widget).value == default
    metric_table(at)  # the page still works


def test_very_long_value_is_cut_and_its_length_stated():
    value = "A" * 5000
    at = new_app(method=value)
    at.run()
    no_errors(at)
    (box,) = link_warnings(at)
    assert len(box) < 600
    assert "A" * 61 not in box
    assert code_spans(box) == ["method", "A" * 60 + "…"]
    assert "(5,000 characters)" in box
    assert "is not an attribution method here" in box and "allowed: saliency" in box
    metric_table(at)


def test_several_bad_values_make_one_box():
    at = new_app(ds="nope", **{"a.steps": "abc", "a.epsilon": "<b>9</b>"}, k=99999, dev="gpu",
                 region="1,2")
    at.run()
    no_errors(at)
    boxes = link_warnings(at)
    assert len(boxes) == 1, boxes
    assert len(at.warning) == 1  # nothing else stacks above the page either
    box = boxes[0]
    assert box.startswith("**This link has 6 values the app could not use**")
    items = [line for line in box.splitlines() if line.startswith("- ")]
    assert len(items) == 6
    for key, allowed in (("ds", "allowed: mnist"), ("a.steps", "an integer in [1, 5000]"),
                         ("a.epsilon", "a finite number in [0.0, 1.0]"),
                         ("k", "allows: 1..784"), ("dev", "auto, cuda, cpu"),
                         ("region", "four integers r0,r1,c0,c1")):
        (item,) = [i for i in items if i.startswith(f"- `{key}`")]
        assert allowed in item, item
    assert "<b>" not in rendered(box)
    metric_table(at)
