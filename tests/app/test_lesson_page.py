"""The lesson page under AppTest: every step of both shipped lessons renders, its table shows
the library's numbers for that state, controls re-score, navigation and bad links behave."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explorer import metrics
from explorer.lessons import results as lres
from explorer.lessons.spec import load_lesson, shipped_lessons
from explorer.ui.common import fmt
from explorer.ui.plain import prose
from markdown_it import MarkdownIt

MD = MarkdownIt("gfm-like")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from explorer.ui import lesson_page
lesson_page.render()
"""
SHIPPED = shipped_lessons()


def page(**query) -> AppTest:
    at = AppTest.from_string(SCRIPT, default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = str(value)
    at.run()
    assert not at.exception, at.exception
    return at


def table_rows(at: AppTest) -> dict[str, dict[str, str]]:
    if not at.table:
        return {}
    df = at.table[0].value
    return {row["score"]: row for row in df.to_dict("records")}


@pytest.mark.parametrize("key", sorted(SHIPPED))
def test_every_step_renders_with_the_library_numbers(key):
    lesson = load_lesson(SHIPPED[key])
    stored = lres.load_results(lesson)
    for n, step in enumerate(lesson.steps, start=1):
        at = page(lesson=key, step=n)
        assert at.title[0].value == prose(step.title)
        assert f"step {n} of {len(lesson.steps)}" in at.caption[0].value
        assert not at.error, [e.value for e in at.error]
        rows = table_rows(at)
        if step.state.view in ("maps",):
            assert rows == {}
            continue
        s = lres.scores(stored[step.state.attack_key()], step.state.k, step.state.w)
        r = stored[step.state.attack_key()]
        for mkey in ("topk_intersection", "lens_recall"):
            row = rows[metrics.METRICS[mkey].name]
            assert row["attack"] == (fmt(s["attack"][mkey]) if r.found_adv
                                     else "no label-preserving x′ found")
            assert row["random noise"] == (fmt(s["noise"][mkey]) if r.found_noise
                                           else "no label-preserving draw")
            assert row["unrelated images (chance)"].startswith(fmt(s["unrelated"][mkey]))
            assert row["shuffled map"] == fmt(s["permutation"][mkey])


def test_a_w_control_rescores_the_stored_maps():
    lesson = load_lesson(SHIPPED["fragile-or-measure"])
    n = next(i for i, s in enumerate(lesson.steps, 1) if any(c.name == "w" for c in s.controls))
    step = lesson.steps[n - 1]
    at = page(lesson="fragile-or-measure", step=n)
    at.segmented_control(key=f"lesson.{n}.w").set_value(3).run()
    r = lres.load_results(lesson)[step.state.attack_key()]
    want = lres.scores(r, step.state.k, 3)["attack"]["lens_recall"]
    assert table_rows(at)["w-LENS-recall@k"]["attack"] == fmt(want)


def test_next_and_previous_move_through_the_steps_and_the_address_follows():
    at = page(lesson="fragile-or-measure", step=1)
    at.button(key="lesson.next").click().run()
    assert at.query_params["step"] in ("2", ["2"])
    assert "step 2 of 8" in at.caption[0].value
    at.button(key="lesson.prev").click().run()
    assert "step 1 of 8" in at.caption[0].value


def test_question_reveal_shows_the_reveal_text_as_plain_text():
    lesson = load_lesson(SHIPPED["fragile-or-measure"])
    n = next(i for i, s in enumerate(lesson.steps, 1) if s.question is not None)
    at = page(lesson="fragile-or-measure", step=n)
    assert not at.info
    at.toggle(key=f"lesson.{n}.reveal").set_value(True).run()
    assert at.info and "noise" in at.info[0].value.lower()


@pytest.mark.parametrize("query, message", [
    ({"lesson": "fragile-or-measure", "step": "99"}, "Step 99 does not exist"),
    ({"lesson": "fragile-or-measure", "step": "[x](http://evil.example)"}, "does not exist"),
    ({"lesson": "nope", "step": "1"}, "There is no lesson nope"),
    ({"lesson": "![t](http://tracker.example/p.png)", "step": "1"}, "There is no lesson"),
])
def test_bad_link_values_give_a_warning_and_step_one(query, message):
    at = page(**query)
    text = " ".join(w.value for w in at.warning)
    rendered = MD.render(text)
    assert message in rendered.replace("<code>", "").replace("</code>", "")
    assert "<a " not in rendered and "<img" not in rendered  # shown as plain text
    assert "step 1 of" in at.caption[0].value


def test_presenter_mode_from_the_link_hides_the_sidebar():
    at = page(lesson="fragile-or-measure", step=1, present=1)
    css = [m.value for m in at.markdown if "stSidebar" in m.value]
    assert css and "display: none" in css[0]
    at = page(lesson="fragile-or-measure", step=1)
    assert not [m.value for m in at.markdown if "stSidebar" in m.value]


def test_the_page_offers_the_printable_handout():
    at = page(lesson="fragile-or-measure", step=1)
    buttons = [b for b in at.get("download_button") if "handout" in str(b.proto.label).lower()]
    assert buttons


def test_presenter_question_step_puts_the_question_beside_the_figures():
    lesson = load_lesson(SHIPPED["fragile-or-measure"])
    n = next(i for i, s in enumerate(lesson.steps, 1) if s.question is not None)
    at = page(lesson="fragile-or-measure", step=n, present=1)
    assert not at.exception
    left, right = at.columns[0], at.columns[1]
    assert left.get("plotly_chart") and not right.get("plotly_chart")
    assert any(r.key == f"lesson.{n}.answer" for r in right.get("radio"))
    assert not any(r.key == f"lesson.{n}.answer" for r in left.get("radio"))
    at.toggle(key=f"lesson.{n}.reveal").set_value(True).run()
    assert not at.exception and at.info
    # without presenter mode the question stays under the figures, full width
    at = page(lesson="fragile-or-measure", step=n)
    assert not at.exception
    assert not any(c.get("plotly_chart") for c in at.columns)
