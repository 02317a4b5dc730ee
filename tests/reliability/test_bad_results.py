"""Damaged results folders and unwritable outputs: a message naming the file, never a
traceback, in the CLI and on the Sweeps page."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explorer.evaluation.roots import ROOTS_ENV
from explorer.ui import sweeps

ROOT = Path(__file__).resolve().parents[2]
GOOD = ROOT / "docs" / "results" / "repro-eps-mnist-wide"  # the smallest committed folder
SCRIPT = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from explorer.ui import sweeps
sweeps.render()
"""


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "explorer", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture()
def damaged(tmp_path) -> Path:
    folder = tmp_path / "damaged"
    shutil.copytree(GOOD, folder)
    gz = folder / "results.csv.gz"
    blob = bytearray(gz.read_bytes())
    blob[200:260] = b"x" * 60  # corrupt the deflate stream, keep the gzip header
    gz.write_bytes(bytes(blob))
    return folder


@pytest.fixture()
def truncated(tmp_path) -> Path:
    folder = tmp_path / "truncated"
    shutil.copytree(GOOD, folder)
    gz = folder / "results.csv.gz"
    gz.write_bytes(gz.read_bytes()[:100])
    return folder


@pytest.mark.parametrize("which", ["damaged", "truncated"])
def test_report_on_a_damaged_results_file_names_it(which, request, tmp_path):
    folder = request.getfixturevalue(which)
    run = _cli("report", str(folder), "--out", str(tmp_path / "out"))
    assert run.returncode == 2
    assert "results.csv.gz" in run.stderr and "damaged" in run.stderr
    assert "Traceback" not in run.stderr


def test_report_into_an_unwritable_folder_says_so(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    run = _cli("report", str(GOOD), "--out", str(blocker / "sub"))
    assert run.returncode == 2
    assert "cannot write" in run.stderr and "writable --out" in run.stderr
    assert "Traceback" not in run.stderr
    # and the CLI still works afterwards
    ok = _cli("report", str(GOOD), "--out", str(tmp_path / "fine"))
    assert ok.returncode == 0, ok.stderr


def test_sweeps_page_shows_a_message_for_a_damaged_folder(damaged, monkeypatch):
    monkeypatch.setenv(ROOTS_ENV, str(damaged.parent))  # the page reads only under its roots
    at = AppTest.from_string(SCRIPT, default_timeout=120)
    at.run()
    at.multiselect(key=sweeps.FOLDERS).set_value([])
    at.text_input(key=sweeps.PATH).set_value(str(damaged))
    at.run()
    assert not at.exception
    text = " ".join(e.value for e in at.error) + " ".join(w.value for w in at.warning)
    assert "results.csv.gz" in text and "damaged" in text
