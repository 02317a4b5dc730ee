"""The participant page of a human-perception study, reached by ``/study?study=ID``.

Consent, instructions, practice, then the trials (no scores, no labels), keyboard answers
(1-7; ← / →), a progress bar, and an end page with the completion code (and the study's
redirect link). The participant's code goes into the URL (``&p=CODE``) as soon as they agree,
so a reload, or an app server restarted behind them, continues at the same trial. An answer
is confirmed on screen only after its transaction has committed. Study-file texts are shown
as plain text (``st.text``), never as Markdown or HTML.

Everything but the widgets is ``explorer.study.session`` (the simulated participants use it
too). Response times: from the server sending the trial to the answer arriving.
"""

from __future__ import annotations

import time

import streamlit as st

from explorer.study import session, storage
from explorer.study.tasks import AnswerError

from .common import guarded

__all__ = ["render", "get_store", "HIDE_CHROME"]

# Participants see the study only: no sidebar, no page list, no toolbar.
HIDE_CHROME = """
<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"],
[data-testid="stSidebarNav"], [data-testid="stToolbar"], header {display: none !important;}
[data-testid="stMainBlockContainer"] {max-width: 60rem; padding-top: 1.5rem;}
</style>
"""


@st.cache_resource(show_spinner=False)
def _store(url: str) -> storage.SqlStore:
    return storage.open_store(url)


def get_store() -> storage.SqlStore:
    """The study store of this server (``$EXPLORER_STUDY_DB`` or the SQLite default)."""
    return _store(storage.default_url())


def _param(name: str) -> str | None:
    v = st.query_params.get(name)
    return v if isinstance(v, str) and v else None


def _consent(store, study_id: str, study: dict) -> None:
    st.subheader("Before you start")
    st.text(study["spec"]["consent"])
    st.caption("No personal data is asked for. Your answers are stored under a random code.")
    if st.button("I agree, continue", type="primary", key="study.consent", shortcut="Enter"):
        panel = session.clean_panel({k: st.query_params.get(k) for k in session.PANEL_KEYS})
        p = session.start(store, study_id, panel)
        st.query_params["p"] = p.participant_id
        st.rerun()


def _instructions(study: dict, p) -> bool:
    """True once the participant has read the instructions (this browser session)."""
    key = f"study.read.{p.participant_id}"
    if st.session_state.get(key):
        return True
    st.subheader("Instructions")
    st.text(study["spec"]["instructions"])
    if st.button("Start", type="primary", key="study.start", shortcut="Enter"):
        st.session_state[key] = True
        st.rerun()
    return False


def _end(study: dict, p) -> None:
    st.progress(1.0, text="Finished")
    st.subheader("Thank you")
    st.text(study["spec"]["completion_message"])
    st.write("Your completion code:")
    st.code(p.completion_code, language=None)
    url = study["spec"].get("redirect_url") or ""
    if url:
        st.link_button("Return to the panel", url.replace("{code}", p.completion_code),
                       type="primary")


def _images(store, study_id: str, ids, width: int) -> None:
    for col, sid in zip(st.columns(len(ids)), ids):
        with col:
            if sid:
                st.image(store.stimulus(study_id, sid), width=width)


def _trial(store, study: dict, p, pos: int) -> None:
    scr = session.screen(store, p, pos)
    shown_key = f"study.shown.{p.participant_id}.{pos}"
    st.session_state.setdefault(shown_key, time.time())
    st.progress(pos / scr.total, text=f"Trial {pos + 1} of {scr.total}"
                + (" · practice" if scr.practice else ""))
    ack = st.session_state.get(f"study.ack.{p.participant_id}")
    if ack is not None:
        st.caption(f"✓ Answer {ack + 1} saved.")
    st.write(scr.question)
    width = 260
    if scr.task == "choice":
        ref = st.columns([1, 1, 1])[1]
        with ref:
            st.image(store.stimulus(p.study_id, scr.stimuli[0]), width=width,
                     caption="reference")
            if scr.images[0]:
                st.image(store.stimulus(p.study_id, scr.images[0]), width=width)
        _images(store, p.study_id, scr.stimuli[1:], width)
        if any(scr.images[1:]):
            _images(store, p.study_id, scr.images[1:], width)
    else:
        _images(store, p.study_id, scr.stimuli, width)
        if any(scr.images):
            _images(store, p.study_id, scr.images, width)
    pressed = None
    cols = st.columns(len(scr.buttons))
    for col, (button, label) in zip(cols, scr.buttons):
        with col:
            shortcut = button.capitalize() if button in ("left", "right") else button
            if st.button(label, key=f"study.b.{pos}.{button}", shortcut=shortcut,
                         width="stretch"):
                pressed = button
    if scr.task == "rating":
        st.caption("1 = not at all similar · 7 = identical. Keys 1–7.")
    else:
        st.caption("Keys ← and →.")
    if pressed is not None:
        rt_ms = (time.time() - st.session_state[shown_key]) * 1000.0
        try:
            res = session.answer(store, p, pos, scr.trial_id, pressed, rt_ms)
        except (storage.StoreError, AnswerError) as exc:
            st.error(f"Your answer was not saved: {exc}")
            return
        # Only now, after the commit, is the answer confirmed on screen.
        st.session_state[f"study.ack.{p.participant_id}"] = res.response.position
        st.rerun()


@guarded
def render() -> None:
    st.markdown(HIDE_CHROME, unsafe_allow_html=True)
    study_id = _param("study")
    if study_id is None:
        st.info("This page is for study participants: open it with the link you were given "
                "(it ends in ?study=…).")
        return
    try:
        store = get_store()
        study = store.study(study_id)
    except storage.StoreError as exc:
        st.error(str(exc))
        return
    st.text(study["title"])  # study-file text: plain text, never Markdown (links, HTML)
    code = _param("p")
    if code is None:
        _consent(store, study_id, study)
        return
    try:
        p = session.resume(store, study_id, code)
    except storage.StoreError as exc:
        st.error(str(exc))
        return
    pos = session.next_position(store, p)
    if pos >= len(p.order):
        _end(study, p)
        return
    if pos == 0 and not _instructions(study, p):
        return
    _trial(store, study, p, pos)
