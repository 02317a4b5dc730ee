"""Class polls under AppTest: the teacher's flow on the lesson page (open, live count, close,
distribution beside the reveal, a fresh code on re-opening) and the students' poll page (code
box, link code, answering, changing the answer, unknown and closed codes, lesson text shown
as plain text), against a fresh SQLite study store."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from explorer.lessons.spec import load_lesson, shipped_lessons
from explorer.study import poll, storage
from explorer.ui.plain import prose

ROOT = Path(__file__).resolve().parents[2]
LESSON_SCRIPT = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from explorer.ui import lesson_page
lesson_page.render()
"""
POLL_SCRIPT = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from explorer.ui import poll_page
poll_page.render()
"""
LESSON = load_lesson(shipped_lessons()["fragile-or-measure"])
N = next(i for i, s in enumerate(LESSON.steps, 1) if s.question is not None)
QUESTION = LESSON.steps[N - 1].question
MD = MarkdownIt("gfm-like")


@pytest.fixture
def db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'studies.sqlite'}"
    monkeypatch.setenv("EXPLORER_STUDY_DB", url)
    monkeypatch.delenv("EXPLORER_PUBLIC_URL", raising=False)
    st = storage.open_store(url)
    yield st
    st.close()


def run(script: str, **query) -> AppTest:
    at = AppTest.from_string(script, default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = str(value)
    at.run()
    assert not at.exception, at.exception
    return at


def shown_code(at: AppTest) -> str:
    found = [re.search(r'data-testid="poll-code">([A-Z0-9]+)<', m.value) for m in at.markdown]
    found = [f.group(1) for f in found if f]
    assert len(found) == 1, "expected one class code on the page"
    return found[0]


def shown_count(at: AppTest) -> tuple[int, str]:
    for m in at.markdown:
        f = re.search(r'xp-label">([^<]*)</div><div class="xp-count" data-testid="poll-count">'
                      r'(\d+)<', m.value)
        if f:
            return int(f.group(2)), f.group(1)
    raise AssertionError("no answer count on the page")


def distribution_table(at: AppTest) -> list[dict]:
    tables = [t.value for t in at.table if "choice" in t.value.columns]
    assert len(tables) == 1
    return tables[0].to_dict("records")


def test_teacher_opens_counts_closes_and_sees_the_distribution(db):
    at = run(LESSON_SCRIPT, lesson="fragile-or-measure", step=N)
    assert not [m for m in at.markdown if "poll-code" in m.value]
    at.button(key=f"lesson.{N}.poll.open").click().run()
    code = shown_code(at)
    p = poll.lookup(db, code)
    assert p.is_open and p.lesson_id == "fragile-or-measure" and p.step == N
    assert p.prompt == QUESTION.prompt and p.choices == QUESTION.choices
    address = [m.value for m in at.markdown if "poll-address" in m.value][0]
    assert f"/poll?code={code}" in address
    assert shown_count(at) == (0, "answers so far")

    # Three phones answer 0, 2, 2; one of them first said 1 and changed its mind.
    poll.answer(db, code, "phone-a-0123456789abc", 0)
    poll.answer(db, code, "phone-b-0123456789abc", 1)
    poll.answer(db, code, "phone-b-0123456789abc", 2)
    poll.answer(db, code, "phone-c-0123456789abc", 2)
    at.run()
    assert shown_count(at) == (3, "answers so far")

    at.button(key=f"lesson.{N}.poll.close").click().run()
    assert not poll.lookup(db, code).is_open
    assert shown_count(at) == (3, "answers · poll closed")
    assert not at.button(key=f"lesson.{N}.poll.new").disabled
    with pytest.raises(poll.PollClosed):
        poll.answer(db, code, "phone-d-0123456789abc", 0)

    at.toggle(key=f"lesson.{N}.reveal").set_value(True).run()
    assert at.info and prose(QUESTION.reveal) == at.info[0].value
    rows = distribution_table(at)
    assert [r["choice"] for r in rows] == [prose(c) for c in QUESTION.choices]  # no tick
    assert [r["answers"] for r in rows] == [1, 0, 2]
    assert [r["share"] for r in rows] == ["33%", "0%", "67%"]
    assert [len(r[""]) for r in rows] == [7, 0, 13]                # 20-character bars

    at.button(key=f"lesson.{N}.poll.new").click().run()
    fresh = shown_code(at)
    assert fresh != code and poll.lookup(db, fresh).is_open
    assert shown_count(at) == (0, "answers so far")
    assert [r["answers"] for r in distribution_table(at)] == [0, 0, 0]


def test_reopening_an_open_poll_closes_it(db):
    at = run(LESSON_SCRIPT, lesson="fragile-or-measure", step=N)
    at.button(key=f"lesson.{N}.poll.open").click().run()
    first = shown_code(at)
    at.button(key=f"lesson.{N}.poll.new").click().run()
    assert not poll.lookup(db, first).is_open and shown_code(at) != first


def test_the_answer_key_is_ticked_in_the_distribution(db):
    n = next(i for i, s in enumerate(LESSON.steps, 1)
             if s.question is not None and s.question.answer is not None)
    q = LESSON.steps[n - 1].question
    at = run(LESSON_SCRIPT, lesson="fragile-or-measure", step=n)
    at.button(key=f"lesson.{n}.poll.open").click().run()
    at.toggle(key=f"lesson.{n}.reveal").set_value(True).run()
    rows = distribution_table(at)
    assert rows[q.answer]["choice"] == prose(q.choices[q.answer]) + "  ✓"
    assert sum(r["choice"].endswith("✓") for r in rows) == 1


def test_a_step_without_a_question_has_no_poll(db):
    n = next(i for i, s in enumerate(LESSON.steps, 1) if s.question is None)
    at = run(LESSON_SCRIPT, lesson="fragile-or-measure", step=n)
    assert not [b for b in at.button if "poll" in str(b.key)]


def test_a_configured_public_address_is_the_join_address(db, monkeypatch):
    monkeypatch.setenv("EXPLORER_PUBLIC_URL", "http://192.168.1.20:8501/")
    at = run(LESSON_SCRIPT, lesson="fragile-or-measure", step=N)
    at.button(key=f"lesson.{N}.poll.open").click().run()
    code = shown_code(at)
    address = [m.value for m in at.markdown if "poll-address" in m.value][0]
    assert f"http://192.168.1.20:8501/poll?code={code}</span>" in address
    assert not [c for c in at.caption if "localhost" in c.value]


# ------------------------------------------------------------------------------- students

def test_student_types_a_code_answers_and_changes_the_answer(db):
    code = poll.open_poll(db, "fragile-or-measure", N, QUESTION.prompt, QUESTION.choices)
    at = run(POLL_SCRIPT)
    assert at.title[0].value == "Join a class poll"
    at.text_input(key="poll.typed").input(code.lower())
    at.button[0].click().run()                       # the form's Join button
    assert at.query_params["code"] in (code, [code])
    assert any(m.value == prose(QUESTION.prompt) for m in at.markdown)
    labels = [b.label for b in at.button if str(b.key).startswith("poll.choice.")]
    assert labels == [prose(c) for c in QUESTION.choices]
    assert not at.success
    at.button(key="poll.choice.1").click().run()
    assert poll.counts(db, code).counts == (0, 1, 0)
    assert at.success and prose(QUESTION.choices[1]) in at.success[0].value
    assert at.button(key="poll.choice.1").proto.type == "primary"
    at.button(key="poll.choice.2").click().run()     # changed: still one answer
    assert poll.counts(db, code).counts == (0, 0, 1)
    assert prose(QUESTION.choices[2]) in at.success[0].value
    token = at.query_params["me"]
    token = token[0] if isinstance(token, list) else token
    assert poll.my_answer(db, code, token) == 2


def test_student_link_with_the_code_and_a_reload_keep_the_answer(db):
    code = poll.open_poll(db, "l", 1, "Q?", ("yes", "no"))
    at = run(POLL_SCRIPT, code=code)
    at.button(key="poll.choice.0").click().run()
    token = at.query_params["me"]
    token = token[0] if isinstance(token, list) else token
    again = run(POLL_SCRIPT, code=code, me=token)    # a reload: same browser token
    assert again.button(key="poll.choice.0").proto.type == "primary" and again.success
    again.button(key="poll.choice.0").click().run()
    assert poll.counts(db, code).counts == (1, 0)    # counted once


@pytest.mark.parametrize("typed, message", [
    ("ZZZZZ", "there is no class poll with the code ZZZZZ"),
    ("AB0CD", "never 0, O, 1 or I"),
    ("[x](http://evil.example)", "a class code is 5 letters"),
])
def test_unknown_or_malformed_codes_get_a_clear_message(db, typed, message):
    at = run(POLL_SCRIPT, code=typed)
    text = " ".join(e.value for e in at.error)
    rendered = MD.render(text)
    assert message.lower() in rendered.lower() and "<a " not in rendered
    assert at.text_input(key="poll.typed")               # the code box is offered again
    at = run(POLL_SCRIPT)
    at.text_input(key="poll.typed").input(typed)
    at.button[0].click().run()
    assert message.lower() in MD.render(" ".join(e.value for e in at.error)).lower()


def test_a_closed_poll_is_refused_also_when_closed_while_the_page_is_open(db):
    code = poll.open_poll(db, "l", 1, "Q?", ("yes", "no"))
    at = run(POLL_SCRIPT, code=code)
    poll.close_poll(db, code)
    at.button(key="poll.choice.1").click().run()
    assert any("is closed" in e.value and "not counted" in e.value for e in at.error)
    assert poll.counts(db, code).total == 0
    at = run(POLL_SCRIPT, code=code)
    assert any(f"The class poll {code} is closed" in e.value for e in at.error)
    assert not [b for b in at.button if str(b.key).startswith("poll.choice.")]


def test_a_closed_poll_says_which_answer_of_this_browser_counts(db):
    code = poll.open_poll(db, "l", 1, "Q?", ("yes", "no"))
    at = run(POLL_SCRIPT, code=code)
    at.button(key="poll.choice.1").click().run()
    poll.close_poll(db, code)
    at.run()                       # what the page's close check does every few seconds
    text = MD.render(" ".join(e.value for e in at.error))
    assert f"The class poll {code} is closed" in text and "Your answer counts: no." in text
    assert at.text_input(key="poll.typed")               # ready for the next poll's code
    # A change tried after the close is refused; the earlier answer still counts.
    code2 = poll.open_poll(db, "l", 2, "Q2?", ("a", "b"))
    at = run(POLL_SCRIPT, code=code2)
    at.button(key="poll.choice.0").click().run()
    poll.close_poll(db, code2)
    at.button(key="poll.choice.1").click().run()
    text = MD.render(" ".join(e.value for e in at.error))
    assert "not counted" in text and "Your earlier answer counts: a." in text
    assert poll.counts(db, code2).counts == (1, 0)


def test_lesson_text_in_a_poll_is_shown_as_plain_text(db):
    prompt = "Is **this** bold? <b>no</b> [link](http://evil.example) ![i](http://x.example/p.png)"
    choices = ("*yes*", "<i>no</i> http://evil.example")
    code = poll.open_poll(db, "l", 1, prompt, choices)
    at = run(POLL_SCRIPT, code=code)
    question = [m.value for m in at.markdown if "bold" in m.value][0]
    html = MD.render(question)
    assert "<strong>" not in html and "<a " not in html and "<img" not in html
    assert "<b>" not in html
    for i, _ in enumerate(choices):
        label = MD.render(at.button(key=f"poll.choice.{i}").label)
        assert "<em>" not in label and "<a " not in label and "<i>" not in label


def test_viewing_a_question_step_opens_no_database(tmp_path, monkeypatch):
    path = tmp_path / "never.sqlite"
    monkeypatch.setenv("EXPLORER_STUDY_DB", f"sqlite:///{path}")
    at = run(LESSON_SCRIPT, lesson="fragile-or-measure", step=N)
    assert at.button(key=f"lesson.{N}.poll.open") and not path.exists()


def test_an_unusable_database_gives_a_message_not_a_traceback(monkeypatch):
    monkeypatch.setenv("EXPLORER_STUDY_DB", "mysql://nobody@nowhere/db")
    at = run(LESSON_SCRIPT, lesson="fragile-or-measure", step=N)
    at.button(key=f"lesson.{N}.poll.open").click().run()
    assert not at.exception
    text = " ".join(e.value for e in at.error)
    assert "The poll could not be changed" in text and "unsupported database URL" in text
    at = run(POLL_SCRIPT, code="ABCDE")
    assert not at.exception
    assert any("Class polls are unavailable on this server" in e.value for e in at.error)


def test_distribution_cells_show_lesson_text_as_plain_text():
    from explorer.ui.lesson_poll import distribution_rows

    p = poll.Poll("ABCDE", "l", 1, "Q?", ("*yes* [l](http://evil.example)", "<b>no</b>"), 0.0,
                  None)
    rows = distribution_rows(poll.PollCounts(p, (3, 1)), answer=None)
    for row, choice in zip(rows, p.choices):
        html = MD.render(row["choice"])
        assert "<em>" not in html and "<a " not in html and "<b>" not in html
    assert [r["share"] for r in rows] == ["75%", "25%"]
    assert [len(r[""]) for r in rows] == [15, 5]
