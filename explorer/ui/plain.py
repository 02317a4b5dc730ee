"""User-supplied text inside Markdown, shown as plain text (no streamlit import).

Streamlit renders the text of ``st.warning`` / ``st.caption`` as GitHub-flavoured Markdown:
a value such as ``[win](http://evil.example)`` would become a link, ``![t](http://x/p.png)`` an
external image, a bare ``http://…`` an autolink, ``:red[…]`` coloured text. Backslash escapes
do not stop autolinks, so a value from a link or an upload is put in a code span instead, whose
content Markdown shows verbatim, with invisible and control characters written as escapes and
long values cut to :data:`LIMIT` characters (the full length stated).

Longer texts that are read as prose (a lesson's paragraphs, a question and its choices) use
:func:`prose` instead: the same characters, every Markdown and HTML construct neutralised.
"""

from __future__ import annotations

import html
import re

__all__ = ["LIMIT", "literal", "printable", "prose"]

LIMIT = 60  # characters of a user value shown; the rest is replaced by an ellipsis


def printable(text: str) -> str:
    """``text`` with every non-printable character (newlines, bidi controls, zero-width
    characters…) written as a Python escape, so it can neither break the line nor hide."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def literal(text: str, limit: int = LIMIT) -> str:
    """Markdown that shows ``text`` verbatim as inline code, cut to ``limit`` characters.

    A longer text ends in "…" followed by its full length, e.g. ``aaa…` (5,000 characters)``.
    """
    text = str(text)
    if not text:
        return "(empty)"
    shown = printable(text[:limit]) + ("…" if len(text) > limit else "")
    # A fence longer than any run of backticks inside cannot be closed by the content.
    longest = max((len(run) for run in re.findall(r"`+", shown)), default=0)
    fence = "`" * (longest + 1)
    # CommonMark strips one space from each side when both are spaces, and a backtick next to
    # the fence would merge with it: pad with one space in those cases only.
    pad = " " if (shown[0] == "`" or shown[-1] == "`"
                  or (shown[0] == " " and shown[-1] == " " and shown.strip())) else ""
    code = f"{fence}{pad}{shown}{pad}{fence}"
    if len(text) > limit:
        code += f" ({len(text):,} characters)"
    return code


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$:])")
_AUTOLINK = re.compile(r"(?i)(://|www\.|@)")
WORD_JOINER = "\u2060"  # invisible; stops GFM from turning a bare URL or address into a link


def prose(text: str) -> str:
    """Markdown that shows ``text`` as plain prose: HTML escaped, every Markdown punctuation
    character backslash-escaped (no emphasis, links, images, headings, lists, colours, maths),
    and bare URLs, ``www.`` names and e-mail addresses broken by an invisible word joiner so
    they are not autolinked. Newlines stay paragraph breaks; other control characters are
    written as escapes."""
    lines = [printable(line) for line in str(text).split("\n")]
    out = []
    for line in lines:
        line = html.escape(line, quote=False)
        line = _MD_SPECIAL.sub(r"\\\1", line)
        line = _AUTOLINK.sub(lambda m: m.group(1)[0] + WORD_JOINER + m.group(1)[1:], line)
        out.append(line)
    return "\n".join(out)
