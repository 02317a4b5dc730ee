"""The explorer in a real browser (Playwright + Debian chromium, 1366×768).

Numbers shown in the page are compared with ``explorer.metrics.compare`` on maps the test
computes itself with the library. Screenshots land in test-artifacts/ for a human to look at.
"""

from __future__ import annotations

import math

import pytest

from ui_driver import (horizontal_overflow, move_slider, open_app, read_table, screenshot,
                       tall_screenshot, wait_header, wait_idle)

STEPS = 20  # attack steps, set through the link (also checks that links restore parameters)
QUERY = f"a.steps={STEPS}"


@pytest.fixture(scope="module")
def expected_maps():
    """Original, attacked and random-sign maps of the default view, computed by the library."""
    import torch

    from explorer import attacks, attributions, data, models

    torch.set_num_threads(2)
    net = models.load("mnist", "natural")
    x = data.load_samples("mnist").x[0:1]
    d = data.DATASETS["mnist"].defaults
    a = attributions.attribution_map(net, x, "saliency")[0]
    adv = attacks.attack(net, x, attack="topk", epsilon=d.epsilon, step_size=d.step_size,
                         steps=STEPS, attack_k=d.attack_k, w=d.w, seed=0)
    rnd = attacks.attack(net, x, attack="random_sign", epsilon=d.epsilon, attack_k=d.attack_k,
                         seed=0)
    return a, adv.map_adv[0], rnd.map_adv[0]


def _check(shown: dict, a, b, k: int, w: int, tol: float = 6e-4) -> None:
    from explorer import metrics

    want = metrics.compare(a, b, k, w)
    for key in metrics.METRIC_KEYS:
        expected = float(want[key])
        if math.isnan(expected):
            assert math.isnan(shown[key]), key
        else:
            assert abs(shown[key] - expected) <= tol, (key, shown[key], expected, k, w)


def _no_traceback(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0


def test_load_attack_and_move_k_w(page, app_url, expected_maps):
    a, b_attack, b_random = expected_maps
    open_app(page, app_url, QUERY)
    screenshot(page, "01-loaded-light")
    table = read_table(page)
    assert list(table["values"]) == ["random sign"]
    _check(table["values"]["random sign"], a, b_random, 100, 1)

    page.get_by_role("button", name="Run attack").click()
    page.wait_for_selector('[data-testid="stAlertContentSuccess"], '
                           '[data-testid="stAlertContentWarning"]')
    wait_idle(page)
    page.wait_for_function("() => document.querySelectorAll('table.xm-table th.xm-pair:not([title])').length == 4")
    screenshot(page, "02-attacked-light")
    tall_screenshot(page, "02-attacked-light-full")
    table = read_table(page)
    assert list(table["values"]) == ["attack", "random sign"]
    _check(table["values"]["attack"], a, b_attack, 100, 1)
    _check(table["values"]["random sign"], a, b_random, 100, 1)
    before = table["values"]["attack"]

    move_slider(page, "cfg.k.mnist", 60)
    wait_header(page, r"k = 60\b")
    wait_idle(page)
    table = read_table(page)
    _check(table["values"]["attack"], a, b_attack, 60, 1)
    move_slider(page, "cfg.w.mnist", 2)
    wait_header(page, r"w = 2\b")
    wait_idle(page)
    table = read_table(page)
    _check(table["values"]["attack"], a, b_attack, 60, 2)
    _check(table["values"]["random sign"], a, b_random, 60, 2)
    assert table["values"]["attack"] != before
    # The address bar carries the view.
    assert "k=60" in page.url and "w=2" in page.url and "run=1" in page.url
    screenshot(page, "03-k60-w2-light")
    overflow = horizontal_overflow(page)
    assert overflow["doc"][0] <= overflow["doc"][1], overflow
    assert overflow["main"][0] <= overflow["main"][1], overflow
    _no_traceback(page)

    # Every view tab renders (tabs run lazily).
    for name in ("Diverse pixels", "Scores vs w", "Scores vs k", "Attack history",
                 "Neighbourhood overlap"):
        page.get_by_role("tab", name=name).click()
        wait_idle(page)
        page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg')
        screenshot(page, f"04-tab-{name.lower().replace(' ', '-')}")
    _no_traceback(page)


def test_link_reproduces_the_attacked_view(page, app_url, expected_maps):
    a, b_attack, _ = expected_maps
    open_app(page, app_url, f"{QUERY}&k=30&w=0&run=1")
    page.wait_for_function("() => document.querySelectorAll('table.xm-table th.xm-pair:not([title])').length == 4")
    table = read_table(page)
    _check(table["values"]["attack"], a, b_attack, 30, 0)


def test_bad_upload_shows_message(page, app_url):
    open_app(page, app_url)
    page.locator('[data-testid="stSidebar"]').get_by_text("Upload", exact=True).click()
    wait_idle(page)
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(
        files=[{"name": "broken.png", "mimeType": "image/png", "buffer": b"\x89PNG but not"}])
    page.locator('[data-testid="stSidebar"] [data-testid="stAlertContentError"]').wait_for()
    assert "broken.png" in page.locator('[data-testid="stSidebar"]').inner_text()
    page.get_by_text("Showing a bundled image meanwhile").wait_for()
    wait_idle(page)
    screenshot(page, "05-bad-upload")
    # The message is in place and the rest of the page keeps working.
    assert page.locator("table.xm-table").count() == 1
    _no_traceback(page)


def test_dark_theme_fits_laptop_screen(dark_page, app_url):
    open_app(dark_page, app_url, QUERY + "&run=1")
    dark_page.wait_for_function(
        "() => document.querySelectorAll('table.xm-table th.xm-pair:not([title])').length == 4")
    wait_idle(dark_page)
    bg = dark_page.evaluate(
        "() => getComputedStyle(document.querySelector('[data-testid=\"stApp\"]')).backgroundColor")
    rgb = [int(v) for v in bg[bg.index("(") + 1:bg.index(")")].split(",")[:3]]
    assert sum(rgb) < 200, f"dark theme expected, background is {bg}"
    screenshot(dark_page, "06-dark")
    tall_screenshot(dark_page, "06-dark-full")
    overflow = horizontal_overflow(dark_page)
    assert overflow["doc"][0] <= overflow["doc"][1], overflow
    assert overflow["main"][0] <= overflow["main"][1], overflow
    _no_traceback(dark_page)


def test_compare_page(page, app_url):
    page.goto(app_url + "/compare?" + QUERY)
    page.get_by_role("button", name="Run the attack on both models").click()
    page.wait_for_function("() => document.querySelectorAll('table.xm-table th.xm-pair:not([title])').length == 4",
                           timeout=300_000)
    wait_idle(page)
    table = read_table(page)
    assert len(table["values"]) == 2
    tall_screenshot(page, "07-compare-full", 2000)
    _no_traceback(page)


def test_click_during_attack_stops_it_and_keeps_the_best(page, app_url):
    open_app(page, app_url, "a.steps=5000&seed=3")
    page.get_by_role("button", name="Run attack").click()
    page.get_by_text("any click stops it").wait_for()
    page.locator(".st-key-exp-overlay label").click()  # any interaction
    page.get_by_text("You stopped this attack after").wait_for()
    wait_idle(page)
    text = page.locator('[data-testid="stMain"]').inner_text()
    steps_run = int(text.split("You stopped this attack after ")[1].split(" ")[0])
    assert 0 < steps_run < 5000
    # The partial result is on screen: the banner and the attack column.
    assert page.locator('[data-testid="stAlertContentSuccess"], '
                        '[data-testid="stAlertContentWarning"]').count() >= 1
    assert list(read_table(page)["values"]) == ["attack", "random sign"]
    screenshot(page, "08-stopped")
    _no_traceback(page)


def test_bad_link_values_are_plain_text_in_one_box(page, app_url):
    from urllib.parse import urlencode

    query = urlencode({"ds": "[win](http://evil.example)", "a.steps": "abc", "k": "99999",
                       "model": "![t](http://tracker.example/p.png)"})
    open_app(page, app_url, query)
    boxes = page.locator('[data-testid="stMain"] [data-testid="stAlertContentWarning"]')
    assert boxes.count() == 1
    box = boxes.first
    text = box.inner_text()
    assert "[win](http://evil.example)" in text and "![t](http://tracker.example/p.png)" in text
    # Shown as text: no link, no image, no element pointing outside the app.
    assert box.locator("a, img, [src*='tracker'], [href*='evil']").count() == 0
    assert page.locator("[src*='tracker.example'], [href*='evil.example']").count() == 0
    screenshot(page, "09-bad-link")
    _no_traceback(page)
