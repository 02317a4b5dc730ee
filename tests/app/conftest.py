"""AppTest fixtures (helpers live in app_helpers.py)."""

from app_helpers import fresh_streamlit_caches  # noqa: F401  (autouse: empty caches per test)
