"""Shared page helpers: the page-level error guard, citations, number formatting."""

from __future__ import annotations

import functools
import logging
import math
from typing import Callable

import streamlit as st

__all__ = ["APP_TITLE", "CITATIONS", "GHORBANI", "KAMATH", "NARROW_PX", "PAGE_CSS",
           "PRESENTER_CSS", "UserFacingError", "citation_caption", "fmt", "guarded", "page_style",
           "presenter_style", "show_problem"]

log = logging.getLogger("explorer.ui")

KAMATH = ('Kamath, Mittal, Deshpande, Balasubramanian, "Rethinking Robustness of Model '
          'Attributions", AAAI 2024 (arXiv 2312.10534)')
GHORBANI = ('Ghorbani, Abid, Zou, "Interpretation of Neural Networks is Fragile", AAAI 2019 '
            '(arXiv 1710.10547)')
CITATIONS = f"{KAMATH}; {GHORBANI}."

APP_TITLE = "Attribution robustness explorer"


class UserFacingError(Exception):
    """An expected problem with a message written for the user (shown as-is, no traceback)."""


def fmt(value: float | None, digits: int = 3) -> str:
    """A score for display: fixed digits, 'undefined' for NaN/None."""
    if value is None:
        return "undefined"
    value = float(value)
    if math.isnan(value):
        return "undefined"
    return f"{value:.{digits}f}"


def show_problem(exc: BaseException, what: str) -> None:
    """Show a library refusal (ValueError / RuntimeError with a clear message) in place."""
    st.error(f"**{what}.** {exc}", icon=":material/error:")


def guarded(render: Callable[[], None]) -> Callable[[], None]:
    """Wrap a page so that an unexpected error becomes a short message, never a traceback.

    Streamlit's own control flow (rerun, stop) derives from BaseException and passes through.
    The full traceback goes to the server log.
    """

    @functools.wraps(render)
    def page() -> None:
        try:
            render()
        except UserFacingError as exc:
            st.error(str(exc), icon=":material/error:")
        except Exception as exc:  # noqa: BLE001 - page-level net, by design
            log.exception("page %s failed", getattr(render, "__name__", "?"))
            st.error(
                "Something went wrong while drawing this page "
                f"({type(exc).__name__}: {exc}). The rest of the app still works: change a "
                "setting in the sidebar or reload the page. Details are in the server log.",
                icon=":material/error:",
            )

    return page


def citation_caption() -> None:
    st.caption(f"After {KAMATH} and {GHORBANI}.")


NARROW_PX = 700  # below this viewport width (phones) the explorer's panels stack

# The whole app. The explorer's picture row is a keyed container (``xp-panels``) of columns, one
# square panel each (``xp-p0`` ..), titled by a ``div.xp-title``; on a narrow screen the columns
# wrap to one panel per row and the metric table scrolls inside its own box.
PAGE_CSS = """
<style>
/* Less empty space above the page title on a laptop screen. */
[data-testid="stMainBlockContainer"] {padding-top: 2.2rem; padding-bottom: 2rem;}
[data-testid="stSidebarUserContent"] {padding-top: 0.5rem;}
.st-key-xp-panels [data-testid="stHorizontalBlock"] {gap: 0.6rem;}
.st-key-xp-panels [class*="st-key-xp-p"] {aspect-ratio: 1 / 1; width: 100%;}
div.xp-title {font-weight: 600; font-size: 0.95rem; line-height: 1.25; margin-bottom: 0.15rem;
  overflow-wrap: anywhere;}
div.xp-statement {font-size: 1.05rem; line-height: 1.45; margin: 0.1rem 0 0.4rem 0;
  padding: 0.45rem 0.7rem; border-left: 4px solid #E69F00; background: rgba(128,128,128,0.08);}
div.xp-tiles {display: flex; flex-wrap: wrap; gap: 0.8rem; margin: 0.3rem 0 0.6rem 0;}
div.xp-tile {flex: 1 1 14rem; padding: 0.5rem 0.8rem; border: 1px solid rgba(128,128,128,0.35);
  border-radius: 0.5rem;}
div.xp-tile .xp-tile-name {font-size: 0.95rem; opacity: 0.85;}
div.xp-tile .xp-tile-value {font-size: 2.2rem; font-weight: 700; font-variant-numeric: tabular-nums;}
div.xp-tile .xp-tile-chance {font-size: 0.95rem; opacity: 0.85;}
@media (max-width: __NARROW__px) {
  [data-testid="stMainBlockContainer"] {padding-left: 0.8rem; padding-right: 0.8rem;}
  .st-key-xp-panels [data-testid="stHorizontalBlock"] {flex-wrap: wrap;}
  .st-key-xp-panels [data-testid="stColumn"] {flex: 1 1 100% !important; min-width: 100% !important;
    width: 100% !important;}
  .st-key-xp-display [data-testid="stHorizontalBlock"] {flex-wrap: wrap; row-gap: 0.2rem;}
  .st-key-xp-display [data-testid="stColumn"] {flex: 1 1 calc(50% - 0.5rem) !important;
    min-width: calc(50% - 0.5rem) !important;}
  .st-key-xp-scale [data-testid="stHorizontalBlock"] {flex-direction: column-reverse;}
  div.xm-wrap {max-width: calc(100vw - 1.6rem); overflow-x: auto;}
  div.xp-statement {font-size: 1rem;}
}
</style>
""".replace("__NARROW__", str(NARROW_PX))

# Presenter mode (lesson and explorer pages): large type and no sidebar, for the back of a room
# at 1920×1080; the explorer's panels fill the width.
PRESENTER_CSS = """
<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"],
[data-testid="stExpandSidebarButton"], [data-testid="stHeader"] {display: none;}
[data-testid="stMainBlockContainer"] {max-width: 100%; padding: 1.2rem 3rem;}
[data-testid="stMarkdownContainer"] p, [data-testid="stMarkdownContainer"] li,
[data-testid="stTable"] td, [data-testid="stTable"] th {font-size: 1.55rem; line-height: 1.45;}
h1 {font-size: 3rem !important;}
h3 {font-size: 2rem !important;}
h4 {font-size: 2rem !important;}
[data-testid="stCaptionContainer"] p, [data-testid="stImageCaption"] {font-size: 1.45rem !important;
  line-height: 1.4;}
button p {font-size: 1.4rem !important;}
[data-testid="stWidgetLabel"] p {font-size: 1.3rem !important;}
.st-key-xp-panels [data-testid="stHorizontalBlock"] {gap: 0.4rem;}
div.xp-title {font-size: 1.6rem; font-weight: 700; color: inherit; opacity: 1;}
div.xp-statement {font-size: 1.75rem; line-height: 1.4; border-left-width: 8px;}
div.xp-tile .xp-tile-name, div.xp-tile .xp-tile-chance {font-size: 1.45rem;}
div.xp-tile .xp-tile-value {font-size: 3.4rem;}
table.xm-table {font-size: 1.3rem !important;}
</style>
"""


def page_style() -> None:
    st.markdown(PAGE_CSS, unsafe_allow_html=True)


def presenter_style() -> None:
    """Switch the current page to presenter mode (for this run of the page only)."""
    st.markdown(PRESENTER_CSS, unsafe_allow_html=True)
