"""Bad uploads through the app (Streamlit AppTest): the app's own message, saying what is
allowed, reaches the page for a file above the app's limit but below Streamlit's, and the page
keeps working on a bundled image."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import streamlit as st
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
from app_helpers import fresh_streamlit_caches, metric_table, new_app  # noqa: E402,F401

from explorer import uploads  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_streamlit_lets_files_above_the_app_limit_reach_the_app():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 2**20 > uploads.MAX_UPLOAD_BYTES
    assert config["server"]["address"] == "127.0.0.1"
    assert config["server"]["enableXsrfProtection"] is True
    assert config["browser"]["gatherUsageStats"] is False
    assert config["client"]["showErrorDetails"] == "none"


def test_21_mb_upload_shows_the_apps_message():
    at = new_app()
    at.run()
    at.radio(key="cfg.source").set_value("upload").run()
    blob = b"\x89PNG\r\n\x1a\n" + bytes(21 * 2**20)
    at.file_uploader(key="upl.mnist").upload("scan.png", blob, "image/png").run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error).replace("\\", "")  # plain text, escaped
    assert "scan.png is 21.0 MB; uploads must be at most 20 MB" in errors
    assert "sides at most 10:1" in errors and "PNG, JPEG, WebP, BMP or GIF" in errors
    # then a strip that used to take gigabytes: refused in place, page still works
    buf = io.BytesIO()
    Image.new("L", (4000, 20), 128).save(buf, "PNG")
    at.file_uploader(key="upl.mnist").upload("strip.png", buf.getvalue(), "image/png").run()
    assert not at.exception
    assert "4000×20 pixels, 200:1" in " ".join(e.value for e in at.error).replace("\\", "")
    metric_table(at)
