"""The teacher's side of a class poll, on the lesson page (the students' page is poll_page.py).

For a step with a question: "Open a class poll" shows the class code in large type, the join
address and a live count of the answers (refreshed every :data:`REFRESH_S` seconds by a
fragment, which re-reads only the count); "Close poll" stops the answers; after the reveal the
distribution (answers and share per choice) stands beside the reveal text. This browser session
keeps one poll per step: opening a new one closes the earlier one and gives a fresh code.

The join address: ``$EXPLORER_PUBLIC_URL`` when set (the address students can reach, e.g.
``http://192.168.1.20:8501``), else the address this browser uses for the app
(``st.context.url`` without the page's path). A ``localhost`` address cannot be reached from a
phone; the panel says so.
"""

from __future__ import annotations

import html
import os
from urllib.parse import urlsplit, urlunsplit

import streamlit as st

from explorer.lessons.spec import Lesson, Step
from explorer.study import poll
from explorer.study.storage import StoreError
from explorer.ui.plain import prose
from explorer.ui.study_page import get_store

__all__ = ["REFRESH_S", "PUBLIC_URL_ENV", "POLL_CSS", "app_base", "poll_panel", "distribution",
           "distribution_rows", "live_distribution", "poll_key"]

REFRESH_S = 1.5
PUBLIC_URL_ENV = "EXPLORER_PUBLIC_URL"
LESSON_PATH = "lesson"  # the lesson page's url_path in streamlit_app.py
BAR_WIDTH = 20          # characters of a full-share bar in the distribution table
POLL_CSS = """
<style>
.xp-code {font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-weight: 700;
  font-size: 5.5rem; letter-spacing: 0.6rem; line-height: 1.1; padding: 0.2rem 1.2rem;
  border: 3px solid currentColor; border-radius: 0.6rem; display: inline-block;}
.xp-label {font-size: 1.5rem; opacity: 0.8; margin-bottom: 0.2rem;}
.xp-join {font-size: 1.7rem; margin-top: 0.5rem; word-break: break-all;}
.xp-count {font-size: 4rem; font-weight: 700; line-height: 1.1;}
</style>
"""


def poll_key(lesson: Lesson, n: int) -> str:
    return f"lesson.poll.{lesson.id}.{n}"


def app_base() -> str:
    """The address students use to reach this app (see the module docstring)."""
    env = os.environ.get(PUBLIC_URL_ENV, "").strip()
    if env:
        return env.rstrip("/")
    url = st.context.url
    if not url:
        return "http://localhost:8501"
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if path.endswith("/" + LESSON_PATH) or path == LESSON_PATH:
        path = path[: -len(LESSON_PATH)].rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, path, "", "")).rstrip("/")


def _local_only(base: str) -> bool:
    host = urlsplit(base).hostname or ""
    return host in ("localhost", "127.0.0.1", "::1", "0.0.0.0")


def distribution_rows(c: poll.PollCounts, answer: int | None) -> list[dict]:
    """One row per choice: its text, answers, share, a bar. ``st.table`` renders its cells as
    Markdown, so the choice (lesson-file text) goes through :func:`prose`."""
    rows = []
    for i, (choice, n, share) in enumerate(zip(c.poll.choices, c.counts, c.shares)):
        rows.append({"choice": prose(choice) + ("  ✓" if answer == i else ""), "answers": n,
                     "share": f"{share:.0%}", "": "█" * round(share * BAR_WIDTH)})
    return rows


def distribution(code: str, answer: int | None) -> None:
    """The class's answers per choice (live while the poll is open)."""
    try:
        c = poll.counts(get_store(), code)
    except StoreError as exc:
        st.error(f"The poll's answers cannot be read: {prose(exc)}")
        return
    st.markdown(f"**The class answered** ({c.total} answer{'' if c.total == 1 else 's'}"
                f"{'' if c.poll.is_open else ', poll closed'})")
    st.table(distribution_rows(c, answer))


def _live(code: str) -> None:
    try:
        c = poll.counts(get_store(), code)
    except StoreError as exc:
        st.error(f"The poll's answers cannot be read: {prose(exc)}")
        return
    state = "answers so far" if c.poll.is_open else "answers · poll closed"
    st.markdown(f'<div class="xp-label">{state}</div><div class="xp-count" '
                f'data-testid="poll-count">{c.total}</div>', unsafe_allow_html=True)


def _open(lesson: Lesson, step: Step, n: int, key: str) -> None:
    q = step.question
    try:
        st.session_state[key] = poll.open_poll(get_store(), lesson.id, n, q.prompt, q.choices,
                                               replaces=st.session_state.get(key))
        st.session_state.pop(key + ".error", None)
    except StoreError as exc:
        st.session_state[key + ".error"] = str(exc)


def _close(key: str) -> None:
    try:
        poll.close_poll(get_store(), st.session_state[key])
    except StoreError as exc:
        st.session_state[key + ".error"] = str(exc)


def poll_panel(lesson: Lesson, step: Step, n: int) -> str | None:
    """The poll controls of step ``n``; returns the class code of its poll (open or closed) or
    None when none was opened in this session."""
    key = poll_key(lesson, n)
    if key + ".error" in st.session_state:
        st.error(f"The poll could not be changed: {prose(st.session_state[key + '.error'])}")
    code = st.session_state.get(key)
    if code is None:  # the database is opened only when a poll is asked for
        st.button("Open a class poll", key=f"lesson.{n}.poll.open", icon=":material/how_to_vote:",
                  on_click=_open, args=(lesson, step, n, key))
        return None
    try:
        store = get_store()
        is_open = poll.lookup(store, code).is_open
    except StoreError as exc:
        st.error(f"The poll cannot be read: {prose(exc)}")
        return None
    st.markdown(POLL_CSS, unsafe_allow_html=True)
    base = app_base()
    address = poll.join_address(base, code)
    left, right, buttons = st.columns([3, 1.4, 1.4], vertical_alignment="center")
    # The code comes from poll.ALPHABET only (checked by normalise_code): safe as HTML.
    code = poll.normalise_code(code)
    with left:
        if not is_open:  # closed: a short line, so the distribution below fits on the screen
            st.markdown(f'<div class="xp-join">Class poll <b data-testid="poll-code">{code}</b> '
                        'is closed.</div>', unsafe_allow_html=True)
        else:
            st.markdown(f'<div class="xp-label">Class poll · code</div>'
                        f'<div class="xp-code" data-testid="poll-code">{code}</div>'
                        f'<div class="xp-join">Join at <span data-testid="poll-address">'
                        f'{html.escape(address)}</span></div>', unsafe_allow_html=True)
        if is_open and _local_only(base):
            st.caption(f"Phones cannot reach localhost: open this page through the computer's "
                       f"network address, or set {PUBLIC_URL_ENV}.")
    with right:
        st.fragment(_live, run_every=REFRESH_S if is_open else None)(code)
    with buttons:
        if is_open:
            st.button("Close poll", key=f"lesson.{n}.poll.close", icon=":material/lock:",
                      on_click=_close, args=(key,), width="stretch")
        st.button("New poll", key=f"lesson.{n}.poll.new", icon=":material/refresh:",
                  on_click=_open, args=(lesson, step, n, key), width="stretch")
    return code


def live_distribution(code: str, answer: int | None) -> None:
    """:func:`distribution`, refreshed while the poll is open."""
    try:
        is_open = poll.lookup(get_store(), code).is_open
    except StoreError:
        is_open = False
    st.fragment(distribution, run_every=REFRESH_S if is_open else None)(code, answer)
