"""Fixtures of the study tests (defined in study_helpers.py, next to the helpers they use)."""

from study_helpers import db_url, pg_server, store  # noqa: F401 - pytest fixtures
