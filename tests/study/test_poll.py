"""Class polls on the study store, on SQLite and on a real PostgreSQL server: hand-counted
answers, changed answers, refusals (unknown code, closed poll, bad choice or token), the
schema migration from a version-2 study database, and 40 students answering at once from 40
threads and from several processes, every answer counted."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
import sqlalchemy as sa

from explorer.study import poll, storage

from study_helpers import ROOT

CHOICES = ("Hardly at all", "About half as much", "Nearly as much as the attack")


@pytest.fixture
def pstore(db_url):
    st = storage.open_store(db_url)
    yield st
    st.close()


def _open(st, **kw) -> str:
    return poll.open_poll(st, "fragile-or-measure", 3, "How much will noise lower it?", CHOICES,
                          **kw)


def _tok(i: int) -> str:
    return f"token-{i:04d}-abcdefghijkl"


def test_codes_are_short_and_unambiguous(pstore):
    codes = {_open(pstore) for _ in range(30)}
    assert len(codes) == 30
    for code in codes:
        assert len(code) == poll.CODE_LENGTH == 5
        assert not set(code) & set("0O1I") and set(code) <= set(poll.ALPHABET)
    assert len(poll.ALPHABET) == 32 == len(set(poll.ALPHABET))


def test_hand_counted_answers_and_a_changed_answer(pstore):
    code = _open(pstore)
    c = poll.counts(pstore, code)
    assert c.counts == (0, 0, 0) and c.total == 0 and c.shares == (0.0, 0.0, 0.0)
    # five phones: choices 0, 2, 2, 1, 2; phone 0 then changes its mind to 2
    for i, ch in enumerate([0, 2, 2, 1, 2]):
        assert poll.answer(pstore, code, _tok(i), ch) is False
    assert poll.my_answer(pstore, code, _tok(0)) == 0
    assert poll.answer(pstore, code, _tok(0), 2) is True       # replaced, not added
    assert poll.my_answer(pstore, code, _tok(0)) == 2
    assert poll.my_answer(pstore, code, _tok(9)) is None
    c = poll.counts(pstore, code)
    assert c.counts == (0, 1, 4) and c.total == 5
    assert c.shares == (0.0, 0.2, 0.8)
    assert c.poll.choices == CHOICES and c.poll.step == 3 and c.poll.is_open


def test_typed_codes_are_read_leniently(pstore):
    code = _open(pstore)
    typed = f" {code[:2].lower()}-{code[2:]} "
    assert poll.join(pstore, typed).code == code
    poll.answer(pstore, typed, _tok(1), 1)
    assert poll.counts(pstore, code).counts == (0, 1, 0)


@pytest.mark.parametrize("typed, message", [
    ("", "no class code given"),
    ("ABC", "a class code is 5 letters and digits"),
    ("AB0CD", "never 0, O, 1 or I"),
    ("<b>x</b>", "a class code is 5"),
    (None, "no class code given"),
])
def test_malformed_codes_are_refused_with_what_a_code_looks_like(pstore, typed, message):
    with pytest.raises(poll.UnknownPoll, match=message):
        poll.join(pstore, typed)


def test_unknown_code(pstore):
    _open(pstore)
    with pytest.raises(poll.UnknownPoll, match="there is no class poll with the code ZZZZZ"):
        poll.join(pstore, "zzzzz")
    with pytest.raises(poll.UnknownPoll, match="no class poll"):
        poll.answer(pstore, "ZZZZZ", _tok(1), 0)
    with pytest.raises(poll.UnknownPoll):
        poll.close_poll(pstore, "ZZZZZ")


def test_a_closed_poll_refuses_answers_and_keeps_its_counts(pstore):
    code = _open(pstore)
    poll.answer(pstore, code, _tok(1), 1)
    poll.answer(pstore, code, _tok(2), 1)
    closed = poll.close_poll(pstore, code)
    assert not closed.is_open and closed.closed_at >= closed.opened_at
    with pytest.raises(poll.PollClosed, match=f"the class poll {code} is closed.*not counted"):
        poll.answer(pstore, code, _tok(3), 0)
    with pytest.raises(poll.PollClosed, match="is closed"):
        poll.answer(pstore, code, _tok(1), 0)                 # no change after the close
    with pytest.raises(poll.PollClosed):
        poll.join(pstore, code)
    assert poll.lookup(pstore, code).code == code              # still readable
    assert poll.counts(pstore, code).counts == (0, 2, 0)
    again = poll.close_poll(pstore, code)                      # idempotent
    assert again.closed_at == closed.closed_at


@pytest.mark.parametrize("choice, message", [
    (3, "choice 3 does not exist; this poll has choices 0 to 2"),
    (-1, "choice -1 does not exist"),
    ("1", "an answer is the number of a choice"),
    (True, "an answer is the number of a choice"),
])
def test_bad_choices_are_refused_and_nothing_is_stored(pstore, choice, message):
    code = _open(pstore)
    with pytest.raises(poll.BadAnswer, match=message):
        poll.answer(pstore, code, _tok(1), choice)
    assert poll.counts(pstore, code).total == 0


@pytest.mark.parametrize("token", ["", "short", "x" * 65, "bad token with spaces!", None])
def test_bad_tokens_are_refused(pstore, token):
    code = _open(pstore)
    with pytest.raises(poll.BadAnswer, match="token is malformed"):
        poll.answer(pstore, code, token, 0)
    assert poll.valid_token(poll.new_token())


def test_reopening_closes_the_step_s_earlier_poll_and_gives_a_fresh_code(pstore):
    first = _open(pstore)
    poll.answer(pstore, first, _tok(1), 0)
    second = _open(pstore, replaces=first)
    assert second != first
    assert not poll.lookup(pstore, first).is_open and poll.lookup(pstore, second).is_open
    assert poll.counts(pstore, second).total == 0              # fresh
    assert poll.counts(pstore, first).counts == (1, 0, 0)      # the old count is kept


@pytest.mark.parametrize("kwargs, message", [
    ({"choices": ("only one",)}, "2 to 12 choices"),
    ({"choices": ("a", "a")}, "must differ"),
    ({"choices": ("a", "")}, "2 to 12 choices"),
    ({"prompt": " "}, "the question's text"),
    ({"step": 0}, "whole number from 1"),
    ({"lesson_id": ""}, "lesson id"),
])
def test_bad_questions_are_refused(pstore, kwargs, message):
    args = {"lesson_id": "l", "step": 1, "prompt": "Q?", "choices": ("a", "b"), **kwargs}
    with pytest.raises(poll.PollError, match=message):
        poll.open_poll(pstore, **args)


def test_join_address():
    assert poll.join_address("http://10.0.0.5:8501/", "abcde") == \
        "http://10.0.0.5:8501/poll?code=ABCDE"


def test_a_version_2_study_database_gains_the_poll_tables(tmp_path):
    url = f"sqlite:///{tmp_path / 'v2.sqlite'}"
    eng = sa.create_engine(url)
    with eng.begin() as c:
        storage.schema_version.create(c)
        storage.MIGRATIONS[0](c)
        storage.MIGRATIONS[1](c)
        c.execute(storage.schema_version.insert().values(version=2))
        c.execute(storage.studies.insert().values(
            study_id="old", title="t", task="rating", spec_toml="", spec_json="{}",
            chance_note="", digest="d", created_at=1.0))
    eng.dispose()
    st = storage.open_store(url)
    assert st.schema_version() == storage.SCHEMA_VERSION == 3
    assert [s["study_id"] for s in st.list_studies()] == ["old"]   # the study is kept
    code = _open(st)
    poll.answer(st, code, _tok(1), 2)
    assert poll.counts(st, code).counts == (0, 0, 1)
    st.close()


# ------------------------------------------------------------------------------ concurrency

def _all_at_once(answer, n: int = 40, timeout: float = 120) -> None:
    """Run ``answer(i)`` for i = 0..n-1 in n threads released together by a barrier; fail on
    any exception a thread raised."""
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def student(i: int) -> None:
        try:
            barrier.wait(timeout=timeout)
            answer(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=student, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout + 60)
    assert not errors, errors


def test_forty_students_answering_at_once_from_forty_threads(pstore):
    code = _open(pstore)
    _all_at_once(lambda i: poll.answer(pstore, code, _tok(i), i % 3), timeout=60)
    c = poll.counts(pstore, code)
    assert c.total == 40
    assert c.counts == (14, 13, 13)                  # i % 3 over 0..39
    with pstore.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM poll_answers")).scalar_one() == 40


def test_forty_students_from_separate_stores_in_threads(db_url):
    """Each thread with its own engine, as several app servers on one database would be."""
    owner = storage.open_store(db_url)
    code = _open(owner)

    def student(i: int) -> None:
        st = storage.open_store(db_url)
        try:
            poll.answer(st, code, _tok(i), (i * 7) % 3)
        finally:
            st.close()

    _all_at_once(student)
    want = [0, 0, 0]
    for i in range(40):
        want[(i * 7) % 3] += 1
    assert poll.counts(owner, code).counts == tuple(want) and sum(want) == 40
    owner.close()


_WORKER = """
import sys, time
from explorer.study import poll, storage
url, code, first, n, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
st = storage.open_store(url)
while time.time() < start:
    time.sleep(0.005)
threads = []
import threading
def one(i):
    poll.answer(st, code, f"token-{i:04d}-abcdefghijkl", i % 3)
for i in range(first, first + n):
    t = threading.Thread(target=one, args=(i,)); t.start(); threads.append(t)
for t in threads:
    t.join()
st.close()
print("ok", n)
"""


def test_forty_students_from_four_processes(pstore, db_url):
    code = _open(pstore)
    start = time.time() + 8   # every process imports first, then all answer at the same time
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, db_url, code, str(10 * p), "10",
                               str(start)], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
             for p in range(4)]
    outs = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0 and out.strip() == "ok 10", err[-2000:]
    c = poll.counts(pstore, code)
    assert c.total == 40 and c.counts == (14, 13, 13)


def test_answers_racing_a_close_are_either_counted_or_refused(pstore):
    """No answer is lost or half-stored when the teacher closes mid-burst: every answer either
    returned (and is counted) or was refused with PollClosed."""
    code = _open(pstore)
    barrier = threading.Barrier(21)
    ok, refused, other = [], [], []

    def student(i: int) -> None:
        barrier.wait(timeout=60)
        try:
            poll.answer(pstore, code, _tok(i), 0)
            ok.append(i)
        except poll.PollClosed:
            refused.append(i)
        except BaseException as exc:  # noqa: BLE001
            other.append(exc)

    threads = [threading.Thread(target=student, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    barrier.wait(timeout=60)
    poll.close_poll(pstore, code)
    for t in threads:
        t.join(timeout=120)
    assert not other, other
    assert len(ok) + len(refused) == 20
    assert poll.counts(pstore, code).total == len(ok)
