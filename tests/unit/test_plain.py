"""User text as plain prose inside Markdown: no construct of the text survives rendering."""

import pytest
from markdown_it import MarkdownIt

from explorer.ui.plain import WORD_JOINER, prose

MD = MarkdownIt("gfm-like")

HOSTILE = [
    "[win](http://evil.example)",
    "![t](http://tracker.example/p.png)",
    "see http://bare.example/x and www.example.com or mail a@b.example",
    "<img src=x onerror=alert(1)> <b>bold</b>",
    "*emphasis* __strong__ `code` ~~gone~~",
    "# heading",
    "1. a list\n- another",
    "| a | b |\n|---|---|",
    ":red[coloured] $x^2$",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_prose_renders_as_the_same_characters_with_no_markup(text):
    html = MD.render(prose(text))
    for tag in ("<a ", "<img", "<b>", "<em>", "<strong>", "<code>", "<h1", "<ol", "<ul",
                "<table", "<s>", "<del>"):
        assert tag not in html, (tag, html)
    shown = html.replace(WORD_JOINER, "").replace("<p>", "").replace("</p>", "").strip()
    shown = shown.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    assert shown.split() == text.split()


def test_prose_keeps_ordinary_sentences_readable():
    text = "Top-k intersection: about 0.25 (a quarter) for unrelated maps."
    assert MD.render(prose(text)).strip() == f"<p>{text}</p>"
