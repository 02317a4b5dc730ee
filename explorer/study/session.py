"""A participant's way through a study, as plain code: the participant page and the simulated
participants both call these functions (only the widgets differ).

- :func:`start`: a new participant with a random id, a seed, the trial order (practice first,
  in order; then main trials and attention checks shuffled with the participant's seed) and a
  left/right flip per position (half of the positions flipped, at random). Panel parameters
  (``PROLIFIC_PID``, ``STUDY_ID``, ``SESSION_ID``, ...) are stored; a panel participant id that
  has been seen before resumes that participant instead of starting a new one.
- :func:`resume`: the participant of a code (refused when the code is unknown or belongs to
  another study) at the first unanswered trial.
- :func:`screen`: what the page shows at a position: the stimulus ids in on-screen order, the
  task, the progress. No scores, no labels, no condition names.
- :func:`answer`: the on-screen button (e.g. ``"left"``, ``"3"``) converted back to the stored
  answer, then stored in one transaction; the acknowledgement comes after the commit.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass

import numpy as np

from .storage import ParticipantRecord, RefusedResponse, StoreError, StudyStore, SubmitResult
from .tasks import AnswerError, get_task

__all__ = ["PANEL_KEYS", "Screen", "start", "resume", "screen", "answer", "next_position",
           "clean_panel", "button_answer", "SessionError"]

PANEL_KEYS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID", "participant", "workerId",
              "assignmentId", "hitId")
_PANEL_VALUE = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")


class SessionError(StoreError):
    """A participant request that cannot be served (the message says why)."""


@dataclass(frozen=True)
class Screen:
    position: int          # index in the participant's order
    total: int             # number of trials, practice included
    trial_id: int
    practice: bool         # practice trials are not analysed (the page says "practice")
    task: str
    question: str
    roles: tuple[str, ...]  # stimulus roles in on-screen order (left to right; ref first)
    stimuli: tuple[str, ...]  # stimulus ids in the same order
    images: tuple[str, ...]   # image stimulus ids in the same order ('' where none)
    buttons: tuple[tuple[str, str], ...]  # (button id, label) in on-screen order
    flipped: bool


def clean_panel(params: dict) -> dict:
    """The panel parameters among ``params``, each a short token (others dropped)."""
    out = {}
    for key in PANEL_KEYS:
        v = params.get(key)
        if isinstance(v, list):
            v = v[0] if v else None
        if isinstance(v, str) and _PANEL_VALUE.match(v):
            out[key] = v
    return out


def _panel_pid(panel: dict) -> str | None:
    for key in ("PROLIFIC_PID", "participant", "workerId"):
        if key in panel:
            return f"{key}={panel[key]}"
    return None


def _order(trials: dict[int, dict], seed: int) -> tuple[list[int], list[int]]:
    rng = np.random.default_rng(seed)
    practice = sorted(t for t, rec in trials.items() if rec["kind"] == "practice")
    rest = sorted(t for t, rec in trials.items() if rec["kind"] != "practice")
    order = practice + [rest[i] for i in rng.permutation(len(rest))]
    flips = [0] * len(order)
    for i in rng.permutation(len(order))[: len(order) // 2]:
        flips[int(i)] = 1
    return order, flips


def start(store: StudyStore, study_id: str, panel: dict | None = None) -> ParticipantRecord:
    """A new participant of ``study_id`` (UnknownStudy when there is none), or the existing one
    with the same panel participant id."""
    store.study(study_id)
    panel = clean_panel(panel or {})
    pid = _panel_pid(panel)
    if pid is not None:
        found = store.participant_by_panel(study_id, pid)
        if found is not None:
            return found
    seed = secrets.randbits(48)
    order, flips = _order(store.trials(study_id), seed)
    rec = ParticipantRecord(study_id, "p" + secrets.token_urlsafe(12).replace("-", "x")
                            .replace("_", "y"), seed, tuple(order), tuple(flips), panel, pid,
                            "C" + secrets.token_hex(4).upper(), time.time(), None)
    return store.add_participant(rec)


def resume(store: StudyStore, study_id: str, participant_id: str) -> ParticipantRecord:
    if not isinstance(participant_id, str) or not re.fullmatch(r"[A-Za-z0-9]{1,64}",
                                                                participant_id):
        raise SessionError("the participant code in the link is malformed; start again from "
                           "the study link")
    return store.participant(study_id, participant_id)


def next_position(store: StudyStore, p: ParticipantRecord) -> int:
    """The first unanswered position (== len(order) when finished)."""
    return store.response_count(p.study_id, p.participant_id)


def _roles(task: str, flipped: bool) -> tuple[str, ...]:
    if task == "choice":
        return ("ref", "c1", "c0") if flipped else ("ref", "c0", "c1")
    return ("b", "a") if flipped else ("a", "b")


def screen(store: StudyStore, p: ParticipantRecord, position: int) -> Screen:
    study = store.study(p.study_id)
    if not 0 <= position < len(p.order):
        raise SessionError(f"trial index {position} is outside 0..{len(p.order) - 1}")
    tid = p.order[position]
    trial = store.trials(p.study_id)[tid]
    task = get_task(study["task"])
    flipped = bool(p.flips[position])
    roles = _roles(study["task"], flipped)
    stims = trial["stimuli"]
    buttons = tuple(zip(task.keys, task.labels))
    return Screen(position, len(p.order), tid, trial["kind"] == "practice", study["task"],
                  task.question, roles, tuple(stims[r] for r in roles),
                  tuple(stims.get(f"image_{r}", "") for r in roles), buttons, flipped)


def button_answer(task: str, button: str, flipped: bool) -> int:
    """The stored answer of an on-screen button (undoing the left/right flip of choice)."""
    t = get_task(task)
    if button not in t.keys:
        raise AnswerError(f"button {button!r} is not one of the {t.name} task's buttons; "
                          f"allowed: {', '.join(t.keys)}")
    if task == "rating":
        return int(button)
    if task == "choice":
        side = 0 if button == "left" else 1
        return 1 - side if flipped else side
    return 1 if button == "left" else 0


def answer(store: StudyStore, p: ParticipantRecord, position: int, trial_id: int,
           button: str, rt_ms: float) -> SubmitResult:
    """Store the answer given by ``button`` at ``position`` (one transaction). Refused with a
    message (nothing stored) when the trial index or trial does not match the participant's
    order or the button is not one of the task's."""
    study = store.study(p.study_id)
    if isinstance(position, bool) or not isinstance(position, int) or \
            not 0 <= position < len(p.order):
        raise RefusedResponse(f"trial index {position!r} is outside this participant's trials "
                              f"0..{len(p.order) - 1}; nothing was stored")
    value = button_answer(study["task"], button, bool(p.flips[position]))
    task = get_task(study["task"])
    if not isinstance(rt_ms, (int, float)) or not 0 <= rt_ms < 86_400_000:
        raise RefusedResponse(f"response time {rt_ms!r} ms is not a duration of at most a day")
    return store.submit(p.study_id, p.participant_id, position, trial_id, value, button,
                        float(rt_ms), lambda _trial, a: task.check_answer(a))
