"""Real browsers on the lesson page and a class poll: the default lesson in presenter mode at
1920×1080, stepped through with the arrow keys (a screenshot per step), a poll opened on a
question step, three phones (390×844) joining through the address shown on the projector and
answering, the projector's live count reaching 3 without a reload, and the distribution after
the close and the reveal matching the answers. Screenshots: the test's tmp dir, copied to
$EXPLORER_POLL_SHOTS (default /tmp/poll-shots) for a human to look at."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from pathlib import Path

import pytest

from explorer.lessons.spec import load_lesson, shipped_lessons
from explorer.study import poll, storage

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("browser_conftest_poll",
                                               ROOT / "tests" / "browser" / "conftest.py")
bc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bc)

pytestmark = pytest.mark.browser

IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
PRESENTER = {"width": 1920, "height": 1080}
PHONE = {"width": 390, "height": 844}
SHOTS = Path(os.environ.get("EXPLORER_POLL_SHOTS", "/tmp/poll-shots"))
LESSON = load_lesson(shipped_lessons()["fragile-or-measure"])

READ_DISTRIBUTION_JS = """
() => {
  for (const t of document.querySelectorAll('[data-testid="stTable"] table')) {
    const head = [...t.querySelectorAll('thead th')].map(e => e.textContent.trim());
    if (!head.includes('choice')) continue;
    const idx = (name) => head.indexOf(name);
    return [...t.querySelectorAll('tbody tr')].map(tr => {
      const cells = [...tr.querySelectorAll('th, td')].map(e => e.textContent.trim());
      return {choice: cells[idx('choice')], answers: +cells[idx('answers')],
              share: cells[idx('share')]};
    });
  }
  return null;
}
"""


def _idle(page, timeout: float = 120_000) -> None:
    page.wait_for_timeout(200)
    page.wait_for_selector(IDLE, timeout=timeout)


def _shot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path))
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)
    return path


def _key(widget_key: str) -> str:
    return "." + "st-key-" + re.sub(r"[^A-Za-z0-9_-]", "-", widget_key)


@pytest.fixture(scope="module")
def poll_app(tmp_path_factory, chromium_path):
    """The app on a fresh SQLite study store (the polls' storage)."""
    tmp = tmp_path_factory.mktemp("poll-app")
    url = f"sqlite:///{tmp / 'studies.sqlite'}"
    base, proc, _ = bc.start_app({"EXPLORER_STUDY_DB": url, "EXPLORER_PUBLIC_URL": ""})
    store = storage.open_store(url)
    yield base, store
    store.close()
    bc.stop_app(proc)


def test_presenter_walks_the_lesson_and_three_phones_answer_a_poll(poll_app, browser, tmp_path):
    base, store = poll_app
    total = len(LESSON.steps)
    n_q = next(i for i, s in enumerate(LESSON.steps, 1) if s.question is not None)
    q = LESSON.steps[n_q - 1].question
    ctx = browser.new_context(viewport=PRESENTER, color_scheme="light")
    page = ctx.new_page()
    page.set_default_timeout(120_000)
    page.goto(f"{base}/lesson?lesson=fragile-or-measure&step=1&present=1")
    page.get_by_text(f"step 1 of {total}").wait_for(timeout=240_000)
    _idle(page, 240_000)
    assert not page.locator('[data-testid="stSidebar"]').is_visible()
    shots = [_shot(page, tmp_path, "lesson-step-1")]
    for n in range(2, total + 1):                       # forward with the arrow key
        page.locator("body").press("ArrowRight")
        page.get_by_text(f"step {n} of {total}").wait_for()
        _idle(page)
        assert page.locator("h1").first.inner_text().strip() == LESSON.steps[n - 1].title
        shots.append(_shot(page, tmp_path, f"lesson-step-{n}"))
    for n in range(total - 1, n_q - 1, -1):             # back to the question step
        page.locator("body").press("ArrowLeft")
        page.get_by_text(f"step {n} of {total}").wait_for()
        _idle(page)
    assert len(shots) == total and all(p.stat().st_size > 10_000 for p in shots)
    # On the projector the question and the poll button stand on the first screen, beside the
    # figures, and captions are large enough for the back of the room.
    for sel in (_key(f"lesson.{n_q}.answer"), _key(f"lesson.{n_q}.poll.open")):
        bottom = page.evaluate("(s) => document.querySelector(s).getBoundingClientRect().bottom"
                               " + window.scrollY", sel)
        assert bottom <= PRESENTER["height"], (sel, bottom)
    caption_px = page.evaluate("() => parseFloat(getComputedStyle(document.querySelector("
                               "'[data-testid=\"stCaptionContainer\"] p')).fontSize)")
    assert caption_px >= 22, caption_px

    page.locator(_key(f"lesson.{n_q}.poll.open") + " button").click()
    code_el = page.get_by_test_id("poll-code")
    code_el.wait_for()
    code = code_el.inner_text().strip()
    assert re.fullmatch(f"[{poll.ALPHABET}]{{{poll.CODE_LENGTH}}}", code)
    address = page.get_by_test_id("poll-address").inner_text().strip()
    assert address == f"{base}/poll?code={code}"
    # Readable from the back of the room: the code is at least 80 px tall on 1920×1080.
    box = code_el.bounding_box()
    assert box["height"] >= 80 and box["x"] >= 0 and box["x"] + box["width"] <= 1920
    code_el.scroll_into_view_if_needed()
    _idle(page)
    _shot(page, tmp_path, "lesson-poll-open")
    count = page.get_by_test_id("poll-count")
    assert count.inner_text().strip() == "0"

    phones, picks = [], [0, 2, 2]
    for i, pick in enumerate(picks):
        pctx = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True,
                                   color_scheme="light")
        ph = pctx.new_page()
        ph.set_default_timeout(120_000)
        if i == 0:                                      # one types the code in the box
            ph.goto(f"{base}/poll")
            box = ph.get_by_label("Class code (shown on the teacher's screen)")
            box.wait_for()
            _idle(ph)
            box.fill(f"{code[:2].lower()} {code[2:]}")
            _shot(ph, tmp_path, "phone-code-box")
            ph.get_by_role("button", name="Join").click()
        else:                                           # the others open the join address
            ph.goto(address)
        ph.get_by_text(q.prompt).wait_for()
        for choice in q.choices:
            ph.get_by_role("button", name=choice).wait_for()
        _idle(ph)
        ph.wait_for_timeout(500)  # let the page's style settle before the screenshot
        if i == 0:
            _shot(ph, tmp_path, "phone-question")
            width = ph.evaluate("() => document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"the poll page scrolls sideways ({width} px)"
        ph.get_by_role("button", name=q.choices[pick]).click()
        ph.get_by_text("Your answer is counted").wait_for()
        _idle(ph)
        if i == 0:
            _shot(ph, tmp_path, "phone-answered")
        phones.append((pctx, ph))

    # The projector's count follows without a reload (the fragment refreshes every 1.5 s).
    page.wait_for_function(
        "() => { const e = document.querySelector('[data-testid=\"poll-count\"]');"
        " return e && e.textContent.trim() === '3'; }", timeout=30_000)
    assert poll.counts(store, code).counts == (1, 0, 2)
    _shot(page, tmp_path, "lesson-poll-count-3")

    page.locator(_key(f"lesson.{n_q}.poll.close") + " button").click()
    page.get_by_text("answers · poll closed").wait_for()
    _idle(page)
    # Each phone notices the close by itself (its page checks every few seconds), says which
    # answer counts and takes the answer buttons away; nothing more is counted.
    for _, ph in phones:
        ph.get_by_text("is closed").first.wait_for(timeout=20_000)
        ph.get_by_text("answer counts").first.wait_for()
        assert ph.get_by_role("button", name=q.choices[1]).count() == 0
    _shot(phones[0][1], tmp_path, "phone-poll-closed")
    assert poll.counts(store, code).counts == (1, 0, 2)

    page.locator(_key(f"lesson.{n_q}.reveal") + " label").click()
    page.get_by_text("The class answered").wait_for()
    _idle(page)
    rows = page.evaluate(READ_DISTRIBUTION_JS)
    assert rows == [{"choice": c, "answers": n, "share": s}
                    for c, n, s in zip(q.choices, (1, 0, 2), ("33%", "0%", "67%"))]
    page.locator('[data-testid="stTable"]').last.scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    _shot(page, tmp_path, "lesson-poll-distribution")
    for pctx, _ in phones:
        pctx.close()
    ctx.close()
