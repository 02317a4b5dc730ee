"""Shared page helpers: the page-level error guard, citations, number formatting."""

from __future__ import annotations

import functools
import logging
import math
from typing import Callable

import streamlit as st

__all__ = ["APP_TITLE", "CITATIONS", "GHORBANI", "KAMATH", "PAGE_CSS", "UserFacingError",
           "citation_caption", "fmt", "guarded", "page_style", "show_problem"]

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


PAGE_CSS = """
<style>
/* Less empty space above the page title on a laptop screen. */
[data-testid="stMainBlockContainer"] {padding-top: 2.2rem; padding-bottom: 2rem;}
[data-testid="stSidebarUserContent"] {padding-top: 0.5rem;}
</style>
"""


def page_style() -> None:
    st.markdown(PAGE_CSS, unsafe_allow_html=True)
