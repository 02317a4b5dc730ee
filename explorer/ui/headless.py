"""The app without a browser, for the benchmarks that time it: Streamlit's AppTest on the real
entry point, its caches emptied between measurements, its log noise silenced. Kept in ``ui/``
so that the benchmarks time the page as it runs without importing Streamlit themselves.
"""

from __future__ import annotations

import logging
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

__all__ = ["APP", "clear_caches", "open_app", "quiet_logs"]

APP = Path(__file__).resolve().parents[2] / "streamlit_app.py"


def quiet_logs() -> None:
    """Silence the warnings Streamlit logs when its functions run outside a server."""
    for name in ("streamlit", "streamlit.runtime.scriptrunner_utils.script_run_context",
                 "streamlit.runtime.caching.cache_data_api"):
        logging.getLogger(name).setLevel(logging.ERROR)


def clear_caches() -> None:
    """Empty every ``st.cache_data`` cache (a measurement then misses them, as a new view does)."""
    st.cache_data.clear()


def open_app(dataset: str = "mnist", timeout: float = 600) -> AppTest:
    """The app's first page run headless to its end (``dataset`` other than MNIST through the
    link's ``ds`` value, as a shared link opens it)."""
    at = AppTest.from_file(str(APP), default_timeout=timeout)
    if dataset != "mnist":
        at.query_params["ds"] = dataset
    at.run()
    return at
