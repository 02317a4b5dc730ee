"""The students' page of a class poll, ``/poll?code=CODE``, made for a phone (390×844).

A code box (or the code from the link), the question and one large button per choice, a
confirmation once the answer is stored, and a clear message for an unknown or closed code; an
open poll's page notices within a few seconds that the teacher closed it and says so.
Answers are anonymous: the page draws a random token for this browser and keeps it in the
address (``&me=TOKEN``), so a reload neither loses the answer nor counts it twice; a student
may change the answer while the poll is open. The question and choices come from a lesson file
and are shown as plain text (``plain.prose``), never as Markdown or HTML.
"""

from __future__ import annotations

import streamlit as st

from explorer.study import poll
from explorer.study.storage import StoreError
from explorer.ui.plain import prose
from explorer.ui.study_page import get_store

__all__ = ["render", "PHONE_CSS", "TOKEN_PARAM"]

TOKEN_PARAM = "me"
CLOSE_CHECK_S = 3.0  # how often an open poll's page checks whether the teacher closed it
# Students see the poll only: no sidebar, no page list, no toolbar; large touch targets.
PHONE_CSS = """
<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"],
[data-testid="stSidebarNav"], [data-testid="stToolbar"], header {display: none !important;}
[data-testid="stMainBlockContainer"] {max-width: 34rem; padding: 1rem 1rem 3rem;}
.st-key-poll-choices button {min-height: 3.6rem;}
.st-key-poll-choices button p {font-size: 1.25rem !important; line-height: 1.3;}
.st-key-poll-question p {font-size: 1.35rem; line-height: 1.4;}
.st-key-poll-join input {font-size: 1.6rem; letter-spacing: 0.3rem; text-transform: uppercase;}
</style>
"""


def _token() -> str:
    token = st.query_params.get(TOKEN_PARAM)
    if not poll.valid_token(token):
        token = poll.new_token()
        st.query_params[TOKEN_PARAM] = token
    return token


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _join_form(message: str | None = None) -> None:
    if message:
        st.error(prose(_sentence(message)), icon=":material/error:")
    with st.container(key="poll-join"):
        with st.form("poll.join.form", border=False):
            typed = st.text_input("Class code (shown on the teacher's screen)", max_chars=12,
                                  placeholder="e.g. K7QX4", key="poll.typed")
            go = st.form_submit_button("Join", type="primary", width="stretch")
    if go:
        try:
            found = poll.join(get_store(), typed)
        except StoreError as exc:
            st.error(prose(_sentence(str(exc))), icon=":material/error:")
            return
        st.query_params["code"] = found.code
        st.rerun()


def _answer(code: str, token: str, i: int) -> None:
    try:
        poll.answer(get_store(), code, token, i)
        st.session_state["poll.result"] = ("ok", code, i)
    except StoreError as exc:
        st.session_state["poll.result"] = ("error", code, str(exc))


def render() -> None:
    st.markdown(PHONE_CSS, unsafe_allow_html=True)
    st.title("Join a class poll", anchor=False)
    try:
        store = get_store()
    except StoreError as exc:
        st.error(f"Class polls are unavailable on this server: {prose(exc)}")
        return
    token = _token()
    wanted = st.query_params.get("code")
    if not wanted:
        _join_form()
        return
    result = st.session_state.pop("poll.result", None)
    refused = result[2] if result and result[0] == "error" else None
    try:
        p = poll.join(store, wanted)
    except StoreError as exc:
        # An answer refused just now (the poll closed meanwhile) says so; else why the code fails.
        st.query_params.pop("code", None)
        kept = _kept_answer(store, wanted, token, bool(refused)) \
            if isinstance(exc, poll.PollClosed) else ""
        _join_form((refused or str(exc)) + "." + kept)
        return
    st.caption(f"Class poll {p.code} · step {p.step}")
    with st.container(key="poll-question"):
        st.markdown(prose(p.prompt))
    if refused:
        st.error(prose(refused), icon=":material/error:")
    mine = poll.my_answer(store, p.code, token)
    with st.container(key="poll-choices"):
        for i, choice in enumerate(p.choices):
            st.button(prose(choice), key=f"poll.choice.{i}", width="stretch",
                      type="primary" if mine == i else "secondary",
                      icon=":material/check_circle:" if mine == i else None,
                      on_click=_answer, args=(p.code, token, i))
    if mine is not None:
        st.success(f"Your answer is counted: {prose(p.choices[mine])}. You can change it "
                   "until the teacher closes the poll.", icon=":material/task_alt:")
    else:
        st.caption("Tap one answer. Nobody sees who answered what.")
    _watch_close(p.code)


def _kept_answer(store, code: str, token: str, refused: bool) -> str:
    """The sentence saying which answer of this browser counts in a closed poll ('' if none)."""
    try:
        closed = poll.lookup(store, code)
        mine = poll.my_answer(store, closed.code, token)
    except StoreError:
        return ""
    if mine is None:
        return ""
    return f" Your {'earlier ' if refused else ''}answer counts: {closed.choices[mine]}."


@st.fragment(run_every=CLOSE_CHECK_S)
def _watch_close(code: str) -> None:
    """Every few seconds: when the teacher has closed the poll, redraw the page (which then
    says so and offers the code box for the next poll) without the student touching it."""
    try:
        still_open = poll.lookup(get_store(), code).is_open
    except StoreError:
        still_open = False
    if not still_open:
        st.rerun(scope="app")
