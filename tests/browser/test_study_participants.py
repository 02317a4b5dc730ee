"""Real browsers (Playwright + Debian chromium) on the participant page: three participants at
once answering with the keyboard, one reloading mid-study, and the app server killed
(SIGKILL) and restarted on the same port mid-study: everyone reloads and continues at the
trial they were on, nothing is lost."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from explorer.study import spec as spec_mod, stimuli, storage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "study"))
from study_helpers import ROOT, spec_text  # noqa: E402

_spec = importlib.util.spec_from_file_location("browser_conftest",
                                               ROOT / "tests" / "browser" / "conftest.py")
bc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bc)

pytestmark = pytest.mark.browser


def _start(port: int, env: dict) -> subprocess.Popen:
    bc.ARTIFACTS.mkdir(exist_ok=True)
    log = open(bc.ARTIFACTS / f"study-streamlit-{port}.log", "a")
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"),
           "--server.port", str(port), "--server.address", "127.0.0.1",
           "--server.headless", "true", "--server.fileWatcherType", "none",
           "--browser.gatherUsageStats", "false"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "OMP_NUM_THREADS": "1", **env})
    bc._wait_healthy(f"http://127.0.0.1:{port}", proc, Path(log.name), bc.STARTUP_TIMEOUT_S)
    return proc


@pytest.fixture(scope="module")
def browser_study(tmp_path_factory, browser):
    """The suite's one chromium (tests/browser/conftest.py: a second Playwright instance cannot
    run beside it) and a frozen study in a fresh SQLite store."""
    tmp = tmp_path_factory.mktemp("browser-study")
    url = f"sqlite:///{tmp / 'studies.sqlite'}"
    text = spec_text(pairs=4).replace("images = 10", "images = 4")
    frozen = stimuli.freeze(spec_mod.parse_spec(text), text)
    store = storage.open_store(url)
    store.save_study(frozen)
    yield store, frozen, url, browser


def _progress(page) -> str:
    return page.get_by_text(re.compile(r"^Trial \d+ of \d+")).first.inner_text(timeout=120_000)


def _wait_trial(page, n: int, total: int, timeout: float = 120_000) -> None:
    page.get_by_text(re.compile(rf"^Trial {n} of {total}")).first.wait_for(timeout=timeout)
    # Keys pressed while the script still runs may be dropped: wait until it has finished.
    page.wait_for_timeout(150)
    page.wait_for_selector(_IDLE, timeout=120_000)


_IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'


def test_three_participants_a_reload_and_a_server_restart(browser_study):
    store, study, url, browser = browser_study
    port = bc.free_port()
    env = {"EXPLORER_STUDY_DB": url}
    proc = _start(port, env)
    total = len(study.trials)
    pages = []
    try:
        for i in range(3):
            ctx = browser.new_context(viewport={"width": 1280, "height": 900})
            page = ctx.new_page()
            page.set_default_timeout(120_000)
            page.goto(f"http://127.0.0.1:{port}/study?study={study.id}&PROLIFIC_PID=bp{i}"
                      "&STUDY_ID=x&SESSION_ID=y")
            page.get_by_text("Before you start").wait_for()
            # The study file's markup is shown as text, not rendered.
            page.get_by_text("<script>alert(1)</script> and **stars**.", exact=False).wait_for()
            page.get_by_role("button", name="I agree, continue").click()
            page.get_by_text("Rate the maps.").wait_for()
            page.get_by_role("button", name="Start").click()
            _wait_trial(page, 1, total)
            pages.append(page)
        bc.ARTIFACTS.mkdir(exist_ok=True)
        pages[0].screenshot(path=str(bc.ARTIFACTS / "study-participant.png"))

        def stored(i: int) -> int:
            """How many responses participant ``bp{i}`` has in the database."""
            parts = {p.panel["PROLIFIC_PID"]: p for p in store.participants(study.id)}
            return len(store.responses(study.id, parts[f"bp{i}"].participant_id))

        def answer(page, pos: int) -> None:
            i = pages.index(page)
            for _ in range(3):
                page.keyboard.press(str((pos % 7) + 1))
                try:
                    if pos + 1 < total:
                        _wait_trial(page, pos + 2, total, timeout=30_000)
                        page.get_by_text(f"Answer {pos + 1} saved.").wait_for()
                    else:
                        page.get_by_text("Your completion code:").wait_for(timeout=30_000)
                    return
                except PlaywrightTimeout:
                    # A key pressed before the page's key listener is attached is lost: press
                    # again only when the database has no answer for this trial yet.
                    if stored(i) > pos:  # stored, only slow to show
                        if pos + 1 < total:
                            _wait_trial(page, pos + 2, total)
                        return
            raise AssertionError(f"participant {i}: answer {pos + 1} was never stored")

        half = total // 2
        for pos in range(half):
            for page in pages:                       # the three answer in turn, all open
                answer(page, pos)
        pages[1].reload()                            # one participant reloads mid-study
        _wait_trial(pages[1], half + 1, total)
        answer(pages[1], half)

        proc.kill()                                  # the app server dies mid-study...
        proc.wait(timeout=30)
        proc = _start(port, env)                     # ...and comes back on the same address
        for i, page in enumerate(pages):
            done = half + (1 if i == 1 else 0)
            page.reload()                            # the participant reloads the page:
            _wait_trial(page, done + 1, total)       # each continues where they were
            for pos in range(done, total):
                answer(page, pos)
        codes = [page.locator("code").first.inner_text() for page in pages]
    finally:
        bc.stop_app(proc)
    parts = {p.panel["PROLIFIC_PID"]: p for p in store.participants(study.id)}
    assert sorted(parts) == ["bp0", "bp1", "bp2"]
    for i in range(3):
        p = parts[f"bp{i}"]
        rs = store.responses(study.id, p.participant_id)
        assert [r.position for r in rs] == list(range(total))     # none lost, none twice
        assert [r.side for r in rs] == [str(pos % 7 + 1) for pos in range(total)]
        assert p.finished_at is not None and codes[i] == p.completion_code
    assert store.integrity_check() == "ok"
