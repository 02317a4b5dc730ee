"""Playwright helpers for the explorer page (used by the browser tests and bench_browser.py)."""

from __future__ import annotations

import math
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"

IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
TABLE = "table.xm-table"

READ_TABLE_JS = """
() => {
  const t = document.querySelector('table.xm-table');
  if (!t) return null;
  // pair columns only (the chance column's head carries a title)
  const heads = Array.from(t.querySelectorAll('th.xm-pair:not([title])')).map(e => e.textContent);
  const labels = heads.slice(0, heads.length / 2);
  const out = {};
  labels.forEach(l => out[l] = {});
  t.querySelectorAll('[data-metric]').forEach(c => {
    // the score is the cell's first text node; the normalised score follows on its own line
    out[labels[+c.dataset.pair]][c.dataset.metric] = c.firstChild.textContent.trim();
  });
  const caption = t.querySelector('thead').textContent;
  return {values: out, header: caption};
}
"""


def wait_idle(page, timeout: float = 180_000) -> None:
    """Wait until the script (or fragment) run has finished."""
    page.wait_for_timeout(150)
    page.wait_for_selector(IDLE, timeout=timeout)


def open_app(page, url: str, query: str = "") -> None:
    page.goto(url + (("/?" + query) if query else "/"))
    page.wait_for_selector(TABLE, timeout=180_000)
    wait_idle(page)


def read_table(page) -> dict:
    """{"values": {pair: {metric: float or nan}}, "header": text of the table head}."""
    raw = page.evaluate(READ_TABLE_JS)
    assert raw is not None, "no metric table on the page"
    values = {pair: {k: (math.nan if v == "undefined" else float(v)) for k, v in row.items()}
              for pair, row in raw["values"].items()}
    return {"values": values, "header": raw["header"]}


def key_class(widget_key: str) -> str:
    """CSS class Streamlit puts on a keyed element's container (``st-key-`` + key, . -> -)."""
    return "st-key-" + re.sub(r"[^A-Za-z0-9_-]", "-", widget_key)


def slider_input(page, widget_key: str):
    return page.locator(f".{key_class(widget_key)} input[type=range]")


def slider_value(page, widget_key: str) -> int:
    return int(slider_input(page, widget_key).input_value())


def move_slider(page, widget_key: str, target: int) -> None:
    """Move a keyed slider with the keyboard (as a user would) to ``target``."""
    thumb = slider_input(page, widget_key)
    thumb.focus()
    current = slider_value(page, widget_key)
    key = "ArrowRight" if target > current else "ArrowLeft"
    for _ in range(abs(target - current)):
        page.keyboard.press(key)
    page.wait_for_function(
        """([cls, target]) => {
            const el = document.querySelector('.' + cls + ' input[type=range]');
            return el && +el.value === target;
        }""", arg=[key_class(widget_key), target])


def wait_header(page, pattern: str, timeout: float = 60_000) -> None:
    """Wait until the metric table's head matches ``pattern`` (e.g. 'k = 40')."""
    page.wait_for_function(
        """(pattern) => {
            const t = document.querySelector('table.xm-table thead');
            return t && new RegExp(pattern).test(t.textContent);
        }""", arg=pattern, timeout=timeout)


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def tall_screenshot(page, name: str, height: int = 2600) -> Path:
    """The whole page: Streamlit scrolls inside its own container, so grow the viewport."""
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": height})
    page.wait_for_timeout(800)
    path = screenshot(page, name)
    page.set_viewport_size(size)
    return path


def horizontal_overflow(page) -> dict:
    """Scroll vs client widths of the document and the main area (equal = no horizontal bar)."""
    return page.evaluate("""() => {
        const d = document.documentElement;
        const m = document.querySelector('[data-testid="stMain"]');
        return {doc: [d.scrollWidth, d.clientWidth], main: m ? [m.scrollWidth, m.clientWidth] : null};
    }""")


def escape(text: str) -> str:
    return re.escape(text)
