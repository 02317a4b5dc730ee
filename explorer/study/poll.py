"""Class polls for the lesson page: a teacher opens a poll on a step's question, students answer
from their phones with a short class code, the teacher sees the count and the distribution.

Storage is the study store's database (:mod:`explorer.study.storage`, tables ``polls`` and
``poll_answers``, schema version 3): SQLite by default, PostgreSQL through the same URL setting
(``$EXPLORER_STUDY_DB``). Nothing here imports streamlit.

- A **class code** is :data:`CODE_LENGTH` characters from :data:`ALPHABET` (capital letters and
  digits without 0, O, 1 and I, which are easily confused when read off a projector). Codes are
  drawn with :mod:`secrets`; a clash with any earlier poll draws again. Typed codes are read
  case-insensitively, spaces and dashes ignored.
- **Answers are anonymous**: the only key is a random per-browser token (no name, no address).
  One answer per token and poll is counted; **a student may change their answer while the poll
  is open** (the latest answer replaces the earlier one, so a phone never counts twice).
- Every answer is **one transaction** that checks the poll is open and writes (insert or
  replace) the answer. On PostgreSQL the poll row is read ``FOR SHARE``, so answers run side by
  side while :func:`close_poll` (``FOR UPDATE``) waits for them and no answer lands after the
  close; on SQLite each write transaction takes the write lock at ``BEGIN IMMEDIATE``.
- Opening a poll with ``replaces=CODE`` closes that poll in the same transaction: the lesson
  page uses it so that one step has one open poll at a time, and re-opening gives a fresh code.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from .storage import SqlStore, StoreError, poll_answers_t, polls_t

__all__ = ["ALPHABET", "CODE_LENGTH", "PollError", "UnknownPoll", "PollClosed", "BadAnswer",
           "Poll", "PollCounts", "normalise_code", "new_token", "valid_token", "open_poll",
           "lookup", "join", "answer", "my_answer", "counts", "close_poll", "join_address", "MAX_CHOICES"]

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0, O, 1, I
CODE_LENGTH = 5                                # 32**5 = 33.5 million codes
MAX_CHOICES = 12
MAX_PROMPT_CHARS = 2000
MAX_CHOICE_CHARS = 300
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class PollError(StoreError):
    """A refused poll request; the message says what was wrong and nothing was stored."""


class UnknownPoll(PollError):
    pass


class PollClosed(PollError):
    pass


class BadAnswer(PollError):
    pass


@dataclass(frozen=True)
class Poll:
    code: str
    lesson_id: str
    step: int
    prompt: str
    choices: tuple[str, ...]
    opened_at: float
    closed_at: float | None

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


@dataclass(frozen=True)
class PollCounts:
    poll: Poll
    counts: tuple[int, ...]    # answers per choice, in the order of poll.choices

    @property
    def total(self) -> int:
        return sum(self.counts)

    @property
    def shares(self) -> tuple[float, ...]:
        """Share of the answers per choice (all 0 while nobody has answered)."""
        n = self.total
        return tuple(c / n if n else 0.0 for c in self.counts)


def normalise_code(text) -> str:
    """A typed class code in its stored form (upper case, no spaces or dashes), or
    :class:`UnknownPoll` saying what a class code looks like."""
    if not isinstance(text, str) or not text.strip():
        raise UnknownPoll(f"no class code given; a class code is {CODE_LENGTH} letters and "
                          "digits, shown on the teacher's screen")
    code = re.sub(r"[\s-]+", "", text).upper()
    if len(code) != CODE_LENGTH or any(ch not in ALPHABET for ch in code):
        raise UnknownPoll(f"a class code is {CODE_LENGTH} letters and digits from "
                          f"{ALPHABET} (never 0, O, 1 or I); check the code on the teacher's "
                          "screen")
    return code


def new_token() -> str:
    """A random anonymous browser token (22 URL-safe characters)."""
    return secrets.token_urlsafe(16)


def valid_token(token) -> bool:
    return isinstance(token, str) and bool(_TOKEN.match(token))


def _new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def _poll_row(r) -> Poll:
    return Poll(r.code, r.lesson_id, int(r.step), r.prompt, tuple(json.loads(r.choices)),
                float(r.opened_at), None if r.closed_at is None else float(r.closed_at))


def _check_question(lesson_id, step, prompt, choices) -> tuple[str, int, str, tuple[str, ...]]:
    if not isinstance(lesson_id, str) or not 1 <= len(lesson_id) <= 200:
        raise PollError(f"a poll needs the lesson id (1 to 200 characters); got {lesson_id!r:.80}")
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise PollError(f"the step of a poll is a whole number from 1; got {step!r:.40}")
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > MAX_PROMPT_CHARS:
        raise PollError(f"a poll needs the question's text (1 to {MAX_PROMPT_CHARS} "
                        "characters)")
    choices = tuple(choices) if isinstance(choices, (list, tuple)) else ()
    if not 2 <= len(choices) <= MAX_CHOICES or not all(
            isinstance(c, str) and c.strip() and len(c) <= MAX_CHOICE_CHARS for c in choices):
        raise PollError(f"a poll needs 2 to {MAX_CHOICES} choices, each a text of 1 to "
                        f"{MAX_CHOICE_CHARS} characters")
    if len(set(choices)) != len(choices):
        raise PollError("the choices of a poll must differ from each other")
    return lesson_id, step, prompt, choices


def open_poll(store: SqlStore, lesson_id: str, step: int, prompt: str, choices,
              replaces: str | None = None) -> str:
    """Open a poll on one step's question and return its fresh class code. ``replaces``: the
    code of this step's earlier poll, closed in the same transaction."""
    lesson_id, step, prompt, choices = _check_question(lesson_id, step, prompt, choices)
    old = normalise_code(replaces) if replaces is not None else None
    for _ in range(20):
        code = _new_code()
        try:
            with store._write() as conn:
                now = time.time()
                if old is not None:
                    conn.execute(polls_t.update().where(polls_t.c.code == old,
                                                        polls_t.c.closed_at.is_(None))
                                 .values(closed_at=now))
                conn.execute(polls_t.insert().values(
                    code=code, lesson_id=lesson_id, step=step, prompt=prompt,
                    choices=json.dumps(list(choices)), opened_at=now, closed_at=None))
            return code
        except sa_exc.IntegrityError:
            continue  # the code was taken (by an earlier poll): draw another
    raise PollError("could not draw a free class code in 20 tries; close old polls or "
                    "widen CODE_LENGTH")


def lookup(store: SqlStore, code: str) -> Poll:
    """The poll with class code ``code`` (open or closed); :class:`UnknownPoll` otherwise."""
    code = normalise_code(code)
    with store.engine.connect() as conn:
        r = conn.execute(sa.select(polls_t).where(polls_t.c.code == code)).first()
    if r is None:
        raise UnknownPoll(f"there is no class poll with the code {code}; check the code on the "
                          "teacher's screen")
    return _poll_row(r)


def _closed_message(code: str) -> str:
    return (f"the class poll {code} is closed: the teacher has stopped taking answers (a new "
            "poll gets a new code)")


def join(store: SqlStore, code: str) -> Poll:
    """Like :func:`lookup`, but a closed poll is refused with :class:`PollClosed`."""
    poll = lookup(store, code)
    if not poll.is_open:
        raise PollClosed(_closed_message(poll.code))
    return poll


def _upsert(backend: str):
    return (pg_dialect.insert if backend == "postgresql" else sqlite_dialect.insert)(
        poll_answers_t)


def answer(store: SqlStore, code: str, token: str, choice) -> bool:
    """Record (or replace) this browser's answer in one transaction. ``choice`` is the index of
    the chosen choice. Returns True when the token had answered this poll before (the answer
    was changed), False for a first answer. Refuses an unknown or closed poll, a bad token and
    a choice outside the poll's choices; nothing is stored then."""
    code = normalise_code(code)
    if not valid_token(token):
        raise BadAnswer("this browser's answer token is malformed (16 to 64 letters, digits, "
                        "'-' or '_'); reload the poll page to get a new one")
    if isinstance(choice, bool) or not isinstance(choice, int):
        raise BadAnswer(f"an answer is the number of a choice; got {choice!r:.40}")
    with store._write() as conn:
        r = conn.execute(sa.select(polls_t.c.choices, polls_t.c.closed_at)
                         .where(polls_t.c.code == code).with_for_update(read=True)).first()
        if r is None:
            raise UnknownPoll(f"there is no class poll with the code {code}; check the code on "
                              "the teacher's screen")
        if r.closed_at is not None:
            raise PollClosed(_closed_message(code) + "; your answer was not counted")
        n = len(json.loads(r.choices))
        if not 0 <= choice < n:
            raise BadAnswer(f"choice {choice} does not exist; this poll has choices 0 to {n - 1}")
        before = conn.execute(sa.select(poll_answers_t.c.choice).where(
            poll_answers_t.c.code == code, poll_answers_t.c.token == token)).first()
        stmt = _upsert(store.backend).values(code=code, token=token, choice=choice,
                                             answered_at=time.time())
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[poll_answers_t.c.code, poll_answers_t.c.token],
            set_={"choice": stmt.excluded.choice, "answered_at": stmt.excluded.answered_at}))
    return before is not None


def my_answer(store: SqlStore, code: str, token: str) -> int | None:
    """The choice this browser token gave in the poll, or None (not answered, bad token)."""
    code = normalise_code(code)
    if not valid_token(token):
        return None
    with store.engine.connect() as conn:
        r = conn.execute(sa.select(poll_answers_t.c.choice).where(
            poll_answers_t.c.code == code, poll_answers_t.c.token == token)).first()
    return None if r is None else int(r.choice)


def counts(store: SqlStore, code: str) -> PollCounts:
    """The poll and its answers per choice (each browser token counted once)."""
    poll = lookup(store, code)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(poll_answers_t.c.choice, sa.func.count())
                            .where(poll_answers_t.c.code == poll.code)
                            .group_by(poll_answers_t.c.choice)).all()
    per = dict.fromkeys(range(len(poll.choices)), 0)
    for choice, n in rows:
        per[int(choice)] = int(n)
    return PollCounts(poll, tuple(per[i] for i in range(len(poll.choices))))


def close_poll(store: SqlStore, code: str) -> Poll:
    """Close the poll (idempotent: closing a closed poll keeps its first closing time)."""
    code = normalise_code(code)
    with store._write() as conn:
        r = conn.execute(sa.select(polls_t.c.code).where(polls_t.c.code == code)
                         .with_for_update()).first()
        if r is None:
            raise UnknownPoll(f"there is no class poll with the code {code}")
        conn.execute(polls_t.update().where(polls_t.c.code == code,
                                            polls_t.c.closed_at.is_(None))
                     .values(closed_at=time.time()))
    return lookup(store, code)


def join_address(base: str, code: str) -> str:
    """The address students open: the app's base address, the poll page, the code."""
    return f"{base.rstrip('/')}/poll?code={normalise_code(code)}"
