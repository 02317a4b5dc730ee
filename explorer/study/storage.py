"""Study storage: one small interface (:class:`StudyStore`), two real backends through
SQLAlchemy 2 Core: SQLite (embedded default) and PostgreSQL (a URL, for several app servers).

- SQLite: the file ``studies.sqlite`` in ``$EXPLORER_STUDY_DIR`` (default: the user's data
  directory, e.g. ``~/.local/share/attribution-robustness-explorer/studies``; never inside the
  repository), WAL journal, ``synchronous=FULL``, every write transaction ``BEGIN IMMEDIATE``
  (no lock upgrades between concurrent writers) with a 30 s busy timeout.
- PostgreSQL: ``postgresql+psycopg://user@host/db`` (or ``postgresql://``, mapped to psycopg).
- ``$EXPLORER_STUDY_DB``: a database URL that overrides the SQLite default.

One transaction per response. The key (study, participant, position) is unique, so a second
submission of the same trial stores nothing and returns the first answer. The schema carries
its version in ``schema_version``; :data:`MIGRATIONS` bring an older database up to date when it
is opened (serialised by a lock, so many processes can open a new database at once). The class
polls of the lesson page keep their tables here too (version 3; the logic is
:mod:`explorer.study.poll`).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import platformdirs
import sqlalchemy as sa
from sqlalchemy import event, exc as sa_exc

from .records import FrozenStudy, sha256

__all__ = ["StoreError", "UnknownStudy", "UnknownParticipant", "RefusedResponse",
           "StudyStore", "SqlStore", "open_store", "default_url", "study_dir",
           "SCHEMA_VERSION", "MIGRATIONS", "StoredResponse", "ParticipantRecord",
           "SubmitResult", "iter_json_lines"]

APP_DIR_NAME = "attribution-robustness-explorer"


class StoreError(ValueError):
    """A refused storage request (the message says why; nothing was stored)."""


class UnknownStudy(StoreError):
    pass


class UnknownParticipant(StoreError):
    pass


class RefusedResponse(StoreError):
    pass


@dataclass(frozen=True)
class ParticipantRecord:
    study_id: str
    participant_id: str
    seed: int
    order: tuple[int, ...]     # trial ids in presentation order
    flips: tuple[int, ...]     # per position: 1 = sides swapped
    panel: dict                # PROLIFIC_PID, STUDY_ID, SESSION_ID, ... as given
    panel_pid: str | None
    completion_code: str
    started_at: float
    finished_at: float | None


@dataclass(frozen=True)
class StoredResponse:
    study_id: str
    participant_id: str
    position: int
    trial_id: int
    kind: str
    answer: int
    side: str                  # the on-screen button that was pressed ("left", "right", "3")
    rt_ms: float
    created_at: float


@dataclass(frozen=True)
class SubmitResult:
    response: StoredResponse
    created: bool              # False: the trial was already answered; the first answer kept
    finished: bool             # the participant has answered every trial


def study_dir() -> Path:
    """Where the SQLite database lives: ``$EXPLORER_STUDY_DIR`` or the user's data dir."""
    env = os.environ.get("EXPLORER_STUDY_DIR")
    return Path(env) if env else Path(platformdirs.user_data_dir(APP_DIR_NAME)) / "studies"


def default_url() -> str:
    url = os.environ.get("EXPLORER_STUDY_DB")
    if url:
        return url
    return f"sqlite:///{study_dir() / 'studies.sqlite'}"


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------

SCHEMA_VERSION = 3
md = sa.MetaData()

schema_version = sa.Table("schema_version", md, sa.Column("version", sa.Integer, nullable=False))
studies = sa.Table(
    "studies", md,
    sa.Column("study_id", sa.String(64), primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("task", sa.String(32), nullable=False),
    sa.Column("spec_toml", sa.Text, nullable=False),
    sa.Column("spec_json", sa.Text, nullable=False),
    sa.Column("chance_note", sa.Text, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)
stimuli_t = sa.Table(
    "stimuli", md,
    sa.Column("study_id", sa.String(64), sa.ForeignKey("studies.study_id"), primary_key=True),
    sa.Column("stimulus_id", sa.String(64), primary_key=True),
    sa.Column("png", sa.LargeBinary, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
)
pairs_t = sa.Table(
    "pairs", md,
    sa.Column("study_id", sa.String(64), sa.ForeignKey("studies.study_id"), primary_key=True),
    sa.Column("pair_id", sa.Integer, primary_key=True),
    sa.Column("record", sa.Text, nullable=False),  # JSON of stimuli.Pair
)
trials_t = sa.Table(
    "trials", md,
    sa.Column("study_id", sa.String(64), sa.ForeignKey("studies.study_id"), primary_key=True),
    sa.Column("trial_id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("record", sa.Text, nullable=False),  # JSON of stimuli.Trial
)
participants_t = sa.Table(
    "participants", md,
    sa.Column("participant_id", sa.String(64), primary_key=True),
    sa.Column("study_id", sa.String(64), sa.ForeignKey("studies.study_id"), nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),
    sa.Column("trial_order", sa.Text, nullable=False),
    sa.Column("flips", sa.Text, nullable=False),
    sa.Column("panel", sa.Text, nullable=False),
    sa.Column("panel_pid", sa.String(200)),
    sa.Column("completion_code", sa.String(64), nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float),
    sa.UniqueConstraint("study_id", "panel_pid", name="uq_participant_panel"),
)
responses_t = sa.Table(
    "responses", md,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study_id", sa.String(64), sa.ForeignKey("studies.study_id"), nullable=False),
    sa.Column("participant_id", sa.String(64), sa.ForeignKey("participants.participant_id"),
              nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("trial_id", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("answer", sa.Integer, nullable=False),
    sa.Column("side", sa.String(16), nullable=False),
    sa.Column("rt_ms", sa.Float, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("study_id", "participant_id", "position", name="uq_response_trial"),
)
_V1_TABLES = [studies, stimuli_t, pairs_t, trials_t, participants_t, responses_t]
# Class polls (version 3): one row per poll, one per (poll, browser token); see poll.py.
polls_t = sa.Table(
    "polls", md,
    sa.Column("code", sa.String(8), primary_key=True),
    sa.Column("lesson_id", sa.String(200), nullable=False),
    sa.Column("step", sa.Integer, nullable=False),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("choices", sa.Text, nullable=False),  # JSON list of the choice texts
    sa.Column("opened_at", sa.Float, nullable=False),
    sa.Column("closed_at", sa.Float),
)
poll_answers_t = sa.Table(
    "poll_answers", md,
    sa.Column("code", sa.String(8), sa.ForeignKey("polls.code"), primary_key=True),
    sa.Column("token", sa.String(64), primary_key=True),
    sa.Column("choice", sa.Integer, nullable=False),
    sa.Column("answered_at", sa.Float, nullable=False),
)
_V3_TABLES = [polls_t, poll_answers_t]


def _migrate_1(conn) -> None:
    """Version 1: the tables."""
    for t in _V1_TABLES:
        t.create(conn, checkfirst=True)


def _migrate_2(conn) -> None:
    """Version 2: an index for the monitor (responses of a study by time)."""
    conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_responses_study_time "
                         "ON responses (study_id, created_at)"))


def _migrate_3(conn) -> None:
    """Version 3: the class polls of the lesson page (new tables; the study tables are
    untouched, so a version-2 database keeps every study and response)."""
    for t in _V3_TABLES:
        t.create(conn, checkfirst=True)


MIGRATIONS: tuple[Callable, ...] = (_migrate_1, _migrate_2, _migrate_3)  # MIGRATIONS[v-1] makes version v


# --------------------------------------------------------------------------------------------
# Interface
# --------------------------------------------------------------------------------------------

class StudyStore:
    """What the pages, the session logic, the bots and the analysis need from storage."""

    url: str
    backend: str  # "sqlite" | "postgresql"

    def save_study(self, study: FrozenStudy) -> None: raise NotImplementedError
    def study(self, study_id: str) -> dict: raise NotImplementedError
    def list_studies(self) -> list[dict]: raise NotImplementedError
    def trials(self, study_id: str) -> dict[int, dict]: raise NotImplementedError
    def pairs(self, study_id: str) -> dict[int, dict]: raise NotImplementedError
    def stimulus(self, study_id: str, stimulus_id: str) -> bytes: raise NotImplementedError
    def add_participant(self, rec: ParticipantRecord) -> ParticipantRecord: raise NotImplementedError
    def participant(self, study_id: str, participant_id: str) -> ParticipantRecord: raise NotImplementedError
    def participant_by_panel(self, study_id: str, panel_pid: str) -> ParticipantRecord | None: raise NotImplementedError
    def participants(self, study_id: str) -> list[ParticipantRecord]: raise NotImplementedError
    def submit(self, study_id: str, participant_id: str, position: int, trial_id: int,
               answer: int, side: str, rt_ms: float, check: Callable[[dict, int], int]
               ) -> SubmitResult: raise NotImplementedError
    def responses(self, study_id: str, participant_id: str | None = None) -> list[StoredResponse]: raise NotImplementedError
    def close(self) -> None: raise NotImplementedError


def _sqlite_engine(url: str) -> sa.Engine:
    path = sa.engine.make_url(url).database
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                              pool_size=8, max_overflow=32)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Writers take the write lock at BEGIN (no upgrade deadlock); readers never wait (WAL).
        write = conn.get_execution_options().get("explorer_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _pg_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _participant_row(r) -> ParticipantRecord:
    return ParticipantRecord(r.study_id, r.participant_id, int(r.seed),
                             tuple(json.loads(r.trial_order)), tuple(json.loads(r.flips)),
                             json.loads(r.panel), r.panel_pid, r.completion_code,
                             float(r.started_at), r.finished_at)


def _response_row(r) -> StoredResponse:
    return StoredResponse(r.study_id, r.participant_id, int(r.position), int(r.trial_id), r.kind,
                          int(r.answer), r.side, float(r.rt_ms), float(r.created_at))


def _pair_json(p) -> str:
    return json.dumps({"id": p.id, "kind": p.kind, "image": p.image, "image_b": p.image_b,
                       "image_name": p.image_name, "model": p.model, "method": p.method,
                       "attack": p.attack, "epsilon": p.epsilon, "metrics": p.metrics,
                       "stratum": p.stratum})


def _trial_json(t) -> str:
    return json.dumps({"id": t.id, "kind": t.kind, "pairs": list(t.pairs), "stimuli": t.stimuli,
                       "expected": t.expected, "stratum": t.stratum})


class SqlStore(StudyStore):
    """:class:`StudyStore` on SQLite or PostgreSQL."""

    def __init__(self, url: str | None = None):
        url = url or default_url()
        if url.startswith("sqlite:"):
            self.backend = "sqlite"
            self.engine = _sqlite_engine(url)
        elif url.startswith(("postgresql", "postgres:")):
            self.backend = "postgresql"
            self.engine = sa.create_engine(_pg_url(url), pool_pre_ping=True, pool_size=5,
                                           max_overflow=20)
        else:
            raise StoreError(f"unsupported database URL {url!r}; allowed: sqlite:///PATH or "
                             "postgresql://USER@HOST/DB")
        self.url = url
        self._cache: dict[tuple, Any] = {}
        self._writer = self.engine.execution_options(explorer_write=True)
        # SQLite has one writer at a time: threads of this process queue here instead of
        # sleeping in SQLite's busy handler (other processes still meet the busy timeout).
        self._lock = threading.Lock() if self.backend == "sqlite" else contextlib.nullcontext()
        try:
            self._upgrade()
        except sa_exc.OperationalError as exc:
            raise StoreError(f"cannot open the study database {self._safe_url()}: "
                             f"{exc.orig}") from None

    def _safe_url(self) -> str:
        return sa.engine.make_url(_pg_url(self.url)).render_as_string(hide_password=True)

    @contextlib.contextmanager
    def _write(self):
        with self._lock, self._writer.begin() as conn:
            yield conn

    # -- schema ---------------------------------------------------------------------------
    def _upgrade(self) -> None:
        with self._write() as conn:
            if self.backend == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(724101)"))
            schema_version.create(conn, checkfirst=True)
            row = conn.execute(sa.select(schema_version.c.version)).first()
            current = row[0] if row else 0
            if current > SCHEMA_VERSION:
                raise StoreError(f"the study database is at schema version {current}, newer "
                                 f"than this program's {SCHEMA_VERSION}; update the program")
            for v in range(current + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[v - 1](conn)
            if row is None:
                conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
            elif current != SCHEMA_VERSION:
                conn.execute(schema_version.update().values(version=SCHEMA_VERSION))

    def schema_version(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(schema_version.c.version)).scalar_one())

    # -- studies --------------------------------------------------------------------------
    def save_study(self, study: FrozenStudy) -> None:
        spec_json = json.dumps(study.spec.to_dict())
        with self._write() as conn:
            conn.execute(studies.insert().values(
                study_id=study.id, title=study.spec.title, task=study.spec.task,
                spec_toml=study.spec_toml, spec_json=spec_json, chance_note=study.chance_note,
                digest=study.digest, created_at=study.created_at))
            conn.execute(stimuli_t.insert(), [
                {"study_id": study.id, "stimulus_id": s.id, "png": s.png, "sha256": s.sha256}
                for s in study.stimuli])
            conn.execute(pairs_t.insert(), [
                {"study_id": study.id, "pair_id": p.id, "record": _pair_json(p)}
                for p in study.pairs])
            conn.execute(trials_t.insert(), [
                {"study_id": study.id, "trial_id": t.id, "kind": t.kind, "record": _trial_json(t)}
                for t in study.trials])

    def study(self, study_id: str) -> dict:
        key = ("study", study_id)
        if key not in self._cache:
            if not isinstance(study_id, str) or not study_id:
                raise UnknownStudy("no study id given; a participant link ends in ?study=ID")
            with self.engine.connect() as conn:
                r = conn.execute(sa.select(studies).where(studies.c.study_id == study_id)).first()
            if r is None:
                raise UnknownStudy(f"there is no study {study_id!r} on this server; check the "
                                   "link you were given")
            self._cache[key] = {"study_id": r.study_id, "title": r.title, "task": r.task,
                                "spec_toml": r.spec_toml, "spec": json.loads(r.spec_json),
                                "chance_note": r.chance_note, "digest": r.digest,
                                "created_at": r.created_at}
        return self._cache[key]

    def list_studies(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(studies.c.study_id, studies.c.title, studies.c.task,
                                          studies.c.created_at)
                                .order_by(studies.c.created_at.desc())).all()
        return [dict(r._mapping) for r in rows]

    def trials(self, study_id: str) -> dict[int, dict]:
        key = ("trials", study_id)
        if key not in self._cache:
            self.study(study_id)
            with self.engine.connect() as conn:
                rows = conn.execute(sa.select(trials_t.c.trial_id, trials_t.c.record)
                                    .where(trials_t.c.study_id == study_id)).all()
            self._cache[key] = {int(r.trial_id): json.loads(r.record) for r in rows}
        return self._cache[key]

    def pairs(self, study_id: str) -> dict[int, dict]:
        key = ("pairs", study_id)
        if key not in self._cache:
            self.study(study_id)
            with self.engine.connect() as conn:
                rows = conn.execute(sa.select(pairs_t.c.pair_id, pairs_t.c.record)
                                    .where(pairs_t.c.study_id == study_id)).all()
            self._cache[key] = {int(r.pair_id): json.loads(r.record) for r in rows}
        return self._cache[key]

    def stimulus(self, study_id: str, stimulus_id: str) -> bytes:
        key = ("stim", study_id, stimulus_id)
        if key not in self._cache:
            with self.engine.connect() as conn:
                r = conn.execute(sa.select(stimuli_t.c.png, stimuli_t.c.sha256).where(
                    stimuli_t.c.study_id == study_id, stimuli_t.c.stimulus_id == stimulus_id)
                ).first()
            if r is None:
                raise StoreError(f"study {study_id!r} has no stimulus {stimulus_id!r}")
            if sha256(r.png) != r.sha256:
                raise StoreError(f"stimulus {stimulus_id!r} of study {study_id!r} does not match "
                                 "its SHA-256: the database was altered after the study was "
                                 "created")
            self._cache[key] = bytes(r.png)
        return self._cache[key]

    # -- participants ---------------------------------------------------------------------
    def add_participant(self, rec: ParticipantRecord) -> ParticipantRecord:
        """Insert; when a participant with the same panel id exists already, return that one."""
        self.study(rec.study_id)
        try:
            with self._write() as conn:
                conn.execute(participants_t.insert().values(
                    participant_id=rec.participant_id, study_id=rec.study_id, seed=rec.seed,
                    trial_order=json.dumps(list(rec.order)), flips=json.dumps(list(rec.flips)),
                    panel=json.dumps(rec.panel), panel_pid=rec.panel_pid,
                    completion_code=rec.completion_code, started_at=rec.started_at,
                    finished_at=None))
        except sa_exc.IntegrityError:
            if rec.panel_pid is not None:
                found = self.participant_by_panel(rec.study_id, rec.panel_pid)
                if found is not None:
                    return found
            raise
        return rec

    def participant(self, study_id: str, participant_id: str) -> ParticipantRecord:
        self.study(study_id)
        if not isinstance(participant_id, str):
            raise UnknownParticipant(f"participant code {participant_id!r} is not a text")
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(participants_t).where(
                participants_t.c.participant_id == participant_id)).first()
        if r is None:
            raise UnknownParticipant(f"there is no participant {participant_id!r}; start again "
                                     "from the study link")
        if r.study_id != study_id:
            raise UnknownParticipant(f"participant code {participant_id!r} belongs to another "
                                     f"study, not to {study_id!r}; use the link of your study")
        return _participant_row(r)

    def participant_by_panel(self, study_id: str, panel_pid: str) -> ParticipantRecord | None:
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(participants_t).where(
                participants_t.c.study_id == study_id,
                participants_t.c.panel_pid == panel_pid)).first()
        return _participant_row(r) if r is not None else None

    def participants(self, study_id: str) -> list[ParticipantRecord]:
        self.study(study_id)
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(participants_t)
                                .where(participants_t.c.study_id == study_id)
                                .order_by(participants_t.c.started_at)).all()
        return [_participant_row(r) for r in rows]

    # -- responses ------------------------------------------------------------------------
    def submit(self, study_id, participant_id, position, trial_id, answer, side, rt_ms, check):
        """Store one response in one transaction; refuse (RefusedResponse, nothing stored) a
        trial index that is not the participant's next trial, or an answer ``check`` refuses.
        A trial answered already returns the stored response with ``created=False``."""
        key = ("part", study_id, participant_id)
        p = self._cache.get(key) or self.participant(study_id, participant_id)
        self._cache[key] = p  # order and flips never change; finished_at is not used here
        if isinstance(position, bool) or not isinstance(position, int) or \
                not 0 <= position < len(p.order):
            raise RefusedResponse(f"trial index {position!r} is outside this participant's "
                                  f"trials 0..{len(p.order) - 1}; nothing was stored")
        if trial_id != p.order[position]:
            raise RefusedResponse(f"trial {trial_id!r} is not the trial shown at index "
                                  f"{position}; nothing was stored")
        trial = self.trials(study_id)[trial_id]
        answer = check(trial, answer)  # AnswerError when out of range
        q = sa.select(responses_t).where(responses_t.c.study_id == study_id,
                                         responses_t.c.participant_id == participant_id)
        try:
            with self._write() as conn:
                done = conn.execute(sa.select(sa.func.count()).select_from(responses_t).where(
                    responses_t.c.study_id == study_id,
                    responses_t.c.participant_id == participant_id)).scalar_one()
                if position < done:
                    r = conn.execute(q.where(responses_t.c.position == position)).first()
                    if r is not None:
                        return SubmitResult(_response_row(r), False, done >= len(p.order))
                if position > done:
                    raise RefusedResponse(f"trial index {position} skips ahead: this participant's "
                                          f"next trial is {done}; nothing was stored")
                now = time.time()
                conn.execute(responses_t.insert().values(
                    study_id=study_id, participant_id=participant_id, position=position,
                    trial_id=trial_id, kind=trial["kind"], answer=answer, side=str(side)[:16],
                    rt_ms=float(rt_ms), created_at=now))
                finished = position + 1 >= len(p.order)
                if finished:
                    conn.execute(participants_t.update().where(
                        participants_t.c.participant_id == participant_id).values(finished_at=now))
        except sa_exc.IntegrityError:
            # A concurrent copy of the same submission won the unique key: return it.
            with self.engine.connect() as conn:
                r = conn.execute(q.where(responses_t.c.position == position)).first()
            return SubmitResult(_response_row(r), False, position + 1 >= len(p.order))
        return SubmitResult(StoredResponse(study_id, participant_id, position, trial_id,
                                           trial["kind"], answer, str(side)[:16], float(rt_ms),
                                           now), True, finished)

    def responses(self, study_id: str, participant_id: str | None = None) -> list[StoredResponse]:
        self.study(study_id)
        q = sa.select(responses_t).where(responses_t.c.study_id == study_id)
        if participant_id is not None:
            q = q.where(responses_t.c.participant_id == participant_id)
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(responses_t.c.participant_id,
                                           responses_t.c.position)).all()
        return [_response_row(r) for r in rows]

    def response_count(self, study_id: str, participant_id: str) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(responses_t).where(
                responses_t.c.study_id == study_id,
                responses_t.c.participant_id == participant_id)).scalar_one())

    def integrity_check(self) -> str:
        """SQLite: ``PRAGMA integrity_check`` ('ok' when sound); PostgreSQL: 'ok' when the
        unique keys hold (a duplicate (participant, position) would be reported)."""
        with self.engine.connect() as conn:
            if self.backend == "sqlite":
                return str(conn.exec_driver_sql("PRAGMA integrity_check").scalar_one())
            dup = conn.execute(sa.text(
                "SELECT count(*) FROM (SELECT 1 FROM responses GROUP BY study_id, "
                "participant_id, position HAVING count(*) > 1) d")).scalar_one()
            return "ok" if dup == 0 else f"{dup} duplicated responses"

    def close(self) -> None:
        self.engine.dispose()


def open_store(url: str | None = None) -> SqlStore:
    """The study store at ``url`` (default: ``$EXPLORER_STUDY_DB`` or the SQLite file in
    :func:`study_dir`)."""
    return SqlStore(url)


def iter_json_lines(path: str | os.PathLike) -> Iterable[dict]:
    """The complete JSON lines of an acknowledgement log (a torn last line is skipped)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.endswith("\n"):
                yield json.loads(line)
