"""AppTest fixtures (helpers live in app_helpers.py)."""

import pytest
import streamlit as st


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Each test starts with empty Streamlit caches (no result leaks between tests)."""
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()
