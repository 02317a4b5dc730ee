"""Browser benchmark: slider move -> new numbers on screen, and first page load.

    python benchmarks/bench_browser.py [--moves 10] [--imagenet]

Starts `streamlit run streamlit_app.py` on a free port (as the browser tests do), drives Debian's
chromium with Playwright at 1366×768 and measures, inside the page:

- *first load*: from `page.goto` on a freshly started server to the first maps and metric table
  on screen (MNIST; with --imagenet also ImageNet, in a second fresh server). Targets: < 10 s
  MNIST, < 20 s ImageNet.
- *k move*: from the key press that moves the k slider by one to the moment the metric table
  shows the new k (a MutationObserver in the page timestamps both; performance.now()). The table
  holds the attack and random-sign pairs after a 20-step attack. Median of ``--moves``.
  Target: < 500 ms for MNIST on a 2-core CPU. The w slider is measured the same way.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "browser"))

from conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, start_app, stop_app  # noqa: E402
from ui_driver import key_class, open_app, wait_idle  # noqa: E402

ARM_JS = """
([cls, label, target]) => {
  window.__latency = new Promise((resolve) => {
    let t0 = null;
    document.addEventListener('keydown', () => { t0 = performance.now(); },
                              {once: true, capture: true});
    const done = () => {
      const head = document.querySelector('table.xm-table thead');
      if (t0 !== null && head && head.textContent.includes('(' + label + ' = ' + target + ')')) {
        obs.disconnect();
        resolve(performance.now() - t0);
      }
    };
    const obs = new MutationObserver(done);
    obs.observe(document.body, {subtree: true, childList: true, characterData: true});
  });
  document.querySelector('.' + cls + ' input[type=range]').focus();
}
"""


def slider_latency(page, widget_key: str, label: str, moves: int) -> list[float]:
    out = []
    cls = key_class(widget_key)
    for i in range(moves):
        current = int(page.locator(f".{cls} input[type=range]").input_value())
        key, target = ("ArrowRight", current + 1) if i % 2 == 0 else ("ArrowLeft", current - 1)
        page.evaluate(ARM_JS, [cls, label, target])
        page.keyboard.press(key)
        out.append(page.evaluate("() => window.__latency"))
        wait_idle(page)
        page.wait_for_timeout(300)
    return out


def first_load(browser, dataset: str) -> tuple[float, float]:
    """(server start to healthy, page.goto to first maps + table) in seconds, fresh server."""
    t0 = time.perf_counter()
    url, proc, _ = start_app()
    t1 = time.perf_counter()
    try:
        ctx = browser.new_context(viewport=VIEWPORT)
        page = ctx.new_page()
        page.set_default_timeout(300_000)
        t2 = time.perf_counter()
        page.goto(url + ("/" if dataset == "mnist" else f"/?ds={dataset}"))
        page.wait_for_selector("table.xm-table")
        page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg')
        t3 = time.perf_counter()
        ctx.close()
    finally:
        stop_app(proc)
    return t1 - t0, t3 - t2


def compare_first_load(browser, other_app: str, rounds: int) -> None:
    """MNIST first loads of this checkout and of ``other_app`` (a ``streamlit_app.py`` of
    another checkout, which then imports its own ``explorer``), alternating, fresh servers."""
    import os

    times: dict[str, list[float]] = {"this": [], "other": []}
    for r in range(rounds):
        for name in ("other", "this"):
            if name == "other":
                os.environ["EXPLORER_APP"] = other_app
            else:
                os.environ.pop("EXPLORER_APP", None)
            start, load = first_load(browser, "mnist")
            times[name].append(load)
            print(f"round {r + 1}: {name:5s} server start {start:.1f} s, page -> first maps "
                  f"{load:.1f} s", flush=True)
    os.environ.pop("EXPLORER_APP", None)
    this, other = statistics.median(times["this"]), statistics.median(times["other"])
    print(f"first load MNIST, median of {rounds}: this {this:.1f} s, other ({other_app}) "
          f"{other:.1f} s: this/other = {this / other:.2f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--moves", type=int, default=10)
    p.add_argument("--imagenet", action="store_true", help="also time ImageNet's first load")
    p.add_argument("--first-load-only", action="store_true", help="skip the slider moves")
    p.add_argument("--compare-app", default="",
                   help="another checkout's streamlit_app.py: its MNIST first load is timed "
                        "alternately with this one's (--rounds each), side by side")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        if args.compare_app:
            compare_first_load(browser, args.compare_app, args.rounds)
        else:
            for ds in ["mnist"] + (["imagenet"] if args.imagenet else []):
                start, load = first_load(browser, ds)
                print(f"first load {ds:9s}: server start {start:.1f} s, page -> first maps "
                      f"{load:.1f} s (cold caches)", flush=True)
        if args.first_load_only:
            browser.close()
            return

        url, proc, _ = start_app()
        try:
            ctx = browser.new_context(viewport=VIEWPORT)
            page = ctx.new_page()
            page.set_default_timeout(300_000)
            open_app(page, url, "a.steps=20")
            page.get_by_role("button", name="Run attack").click()
            page.wait_for_function(
                "() => document.querySelectorAll('table.xm-table th.xm-pair:not([title])').length == 4")
            wait_idle(page)
            for widget, label in (("cfg.k.mnist", "k"), ("cfg.w.mnist", "w")):
                lat = slider_latency(page, widget, label, args.moves)
                print(f"MNIST {label} slider move -> new numbers shown: median "
                      f"{statistics.median(lat):.0f} ms (min {min(lat):.0f}, max {max(lat):.0f}, "
                      f"n = {len(lat)}; attack + random-sign pairs)", flush=True)
            ctx.close()
        finally:
            stop_app(proc)
        browser.close()


if __name__ == "__main__":
    main()
