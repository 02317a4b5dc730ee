"""Stopping means stopping, and several users on one server (Playwright + Debian chromium).

- A k-slider move during a long attack stops it, keeps the best iterate and shows the new k's
  numbers within STOP_S of what a full rerun of the page takes anyway (+ CI_MARGIN_S); the
  slider's thumb and the table agree on k. (Before the fix the move waited for the whole
  attack: a k slider sits in a fragment, whose reruns Streamlit queues behind the running
  script instead of interrupting it.)
- Four sessions at once: each opens the app and moves a slider while one of them runs an
  attack; every page gets its numbers and none shows an error.
"""

from __future__ import annotations

import re
import time

from ui_driver import (move_slider, open_app, read_table, screenshot, slider_value, wait_header,
                       wait_idle)
from conftest import VIEWPORT

STOP_S = 2.0  # the promise: a widget change during an attack is applied within 2 s
# The page then reruns in full (pictures, table, charts), which the browser must redraw; on the
# CI machine (2 cores shared by the server, chromium and pytest) that redraw alone takes 1-3 s
# and more when other jobs load the machine. So the bound is STOP_S on top of the time the same
# page takes to apply a change that needs a full rerun with no attack running (measured in the
# same test, just before), plus CI_MARGIN_S; and never more than ABS_LIMIT_S.
CI_MARGIN_S = 1.0
ABS_LIMIT_S = 15.0
K_KEY = "cfg.k.mnist"


def _table_k(page) -> int:
    header = read_table(page)["header"]
    return int(re.search(r"k = (\d+)", header).group(1))


def _errors(page) -> int:
    return page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]'
                        ).count()


def test_k_move_during_a_long_attack_stops_it_and_applies_k(page, app_url):
    open_app(page, app_url, "a.steps=5000&seed=5")  # about 2-3 minutes of attack on MNIST
    k0 = slider_value(page, K_KEY)
    assert _table_k(page) == k0
    full_s = []  # a full rerun without an attack: the overlay toggle, there and back
    for _ in range(2):
        t = time.perf_counter()
        page.locator(".st-key-exp-overlay label").click()
        wait_idle(page)
        full_s.append(time.perf_counter() - t)
    full = min(full_s)
    page.get_by_role("button", name="Run attack").click()
    page.get_by_text("any click stops it").wait_for()  # running, with its time left shown
    target = k0 + 1
    t0 = time.perf_counter()
    move_slider(page, K_KEY, target)  # one key press: the thumb is at the new k at once
    wait_header(page, rf"k = {target}\b", timeout=60_000)
    elapsed = time.perf_counter() - t0
    print(f"k move during the attack -> new numbers in {elapsed:.2f} s; a full rerun without "
          f"an attack: {full:.2f} s")
    assert elapsed < min(ABS_LIMIT_S, STOP_S + full + CI_MARGIN_S), \
        f"the new k's numbers took {elapsed:.1f} s (a full rerun alone: {full:.1f} s)"
    page.get_by_text("You stopped this attack after").wait_for(timeout=10_000)
    wait_idle(page)
    screenshot(page, "10-k-move-stops-attack")
    # the thumb and the table agree, and nothing moved them back afterwards
    page.wait_for_timeout(1500)
    wait_idle(page)
    assert slider_value(page, K_KEY) == _table_k(page) == target
    assert f"k={target}" in page.url
    text = page.locator('[data-testid="stMain"]').inner_text()
    steps_run = int(text.split("You stopped this attack after ")[1].split(" ")[0])
    assert 0 < steps_run < 5000
    assert list(read_table(page)["values"]) == ["attack", "random sign"]
    assert _errors(page) == 0
    # a second move, now that no attack runs, is applied too and still agrees
    move_slider(page, K_KEY, target + 2)
    wait_header(page, rf"k = {target + 2}\b")
    wait_idle(page)
    assert slider_value(page, K_KEY) == _table_k(page) == target + 2


def test_four_sessions_share_the_server(browser, app_url):
    contexts = [browser.new_context(viewport=VIEWPORT) for _ in range(4)]
    try:
        pages = [c.new_page() for c in contexts]
        for p in pages:
            p.set_default_timeout(180_000)
        # all four arrive together (navigation started before any is waited for)
        for i, p in enumerate(pages):
            p.goto(app_url + f"/?a.steps=400&seed={i}")
        for p in pages:
            p.wait_for_selector("table.xm-table", timeout=240_000)
            wait_idle(p, timeout=240_000)
        attacker, movers = pages[0], pages[1:]
        attacker.get_by_role("button", name="Run attack").click()
        attacker.wait_for_selector('[data-testid="stApp"][data-test-script-state="running"]')
        t0 = time.perf_counter()
        targets = [slider_value(p, K_KEY) + 1 + i for i, p in enumerate(movers)]
        for p, target in zip(movers, targets):
            move_slider(p, K_KEY, target)
        for p, target in zip(movers, targets):
            wait_header(p, rf"k = {target}\b", timeout=60_000)
        moved_s = time.perf_counter() - t0
        attacker.wait_for_selector('[data-testid="stAlertContentSuccess"], '
                                   '[data-testid="stAlertContentWarning"]', timeout=240_000)
        wait_idle(attacker, timeout=240_000)
        for p in pages:
            wait_idle(p)
            assert _errors(p) == 0
            assert slider_value(p, K_KEY) == _table_k(p)
        assert list(read_table(attacker)["values"]) == ["attack", "random sign"]
        for i, p in enumerate(pages):
            screenshot(p, f"11-session-{i}")
        # generous bound: three moves applied while another user's attack runs
        assert moved_s < 30, f"slider moves took {moved_s:.1f} s beside an attack"
    finally:
        for c in contexts:
            c.close()
