"""AppTest helpers: start the real app in-process and read its metric table."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "streamlit_app.py")
# torch, torchvision and the first model load are slow to import on a 2-core CI machine.
TIMEOUT = 180

_CELL = re.compile(r'data-metric="(\w+)" data-pair="(\d+)"[^>]*>([^<]*)')
_HEAD = re.compile(r"<thead>(.*?)</thead>", re.S)


def new_app(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in query.items():
        at.query_params[key] = str(value)
    return at


def metric_table_html(at: AppTest) -> str:
    tables = [m.value for m in at.markdown if 'class="xm-table"' in m.value]
    assert len(tables) == 1, f"expected one metric table, found {len(tables)}"
    return tables[0]


def metric_table(at: AppTest) -> dict[str, dict[str, float]]:
    """{pair label: {metric key: value}} as displayed (3 decimals; NaN for 'undefined')."""
    html = metric_table_html(at)
    head = _HEAD.search(html).group(1)
    labels = re.findall(r'<th class="xm-pair">([^<]*)</th>', head)
    # The header repeats the pair labels for the classical and the LENS halves.
    n = len(labels) // 2
    labels = labels[:n]
    out: dict[str, dict[str, float]] = {label: {} for label in labels}
    for key, pair, text in _CELL.findall(html):
        out[labels[int(pair)]][key] = math.nan if text == "undefined" else float(text)
    return out


def assert_table_matches(shown: dict[str, float], expected: dict, tol: float = 6e-4) -> None:
    """Every displayed value equals the library's (to the 3 displayed decimals)."""
    from explorer import metrics

    assert set(shown) == set(metrics.METRIC_KEYS)
    for key in metrics.METRIC_KEYS:
        want = float(expected[key])
        got = shown[key]
        if math.isnan(want):
            assert math.isnan(got), f"{key}: shown {got}, library says undefined"
        else:
            assert abs(got - want) <= tol, f"{key}: shown {got}, library {want:.6f}"


def no_errors(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


@pytest.fixture(autouse=True)
def fresh_streamlit_caches():
    """Each test starts with empty Streamlit caches (no result leaks between tests). Autouse in
    every test module that imports it."""
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()
