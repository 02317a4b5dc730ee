"""Real-browser fixtures: start `streamlit run` on a free port, drive Debian's chromium.

Like Streamlit's own e2e_playwright/conftest.py: the app runs as a subprocess, the fixture waits
for its health endpoint, and pages wait until the script has stopped running.

These tests must never be skipped silently in CI: without chromium (or playwright) they FAIL
with a message saying how to install it, unless EXPLORER_SKIP_BROWSER=1 is set on purpose.
Screenshots go to test-artifacts/ (git-ignored) for a human to look at.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("EXPLORER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1366, "height": 768}
STARTUP_TIMEOUT_S = 180  # torch import + first model load on a 2-core CI machine
# EXPLORER_APP: another entry script to serve (default: the repository's streamlit_app.py).


def _unavailable(reason: str) -> None:
    if os.environ.get("EXPLORER_SKIP_BROWSER") == "1":
        pytest.skip(f"browser tests skipped on request (EXPLORER_SKIP_BROWSER=1): {reason}")
    pytest.fail(
        f"browser tests cannot run: {reason}. Install Debian's chromium with "
        "`sudo apt-get install -y chromium` (or ./scripts/install_chromium.sh; never "
        "`playwright install`), or set EXPLORER_SKIP_BROWSER=1 to skip them on purpose.",
        pytrace=False)


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.browser)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, proc: subprocess.Popen, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode}; log:\n"
                               + log_path.read_text()[-3000:])
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200 and r.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"streamlit did not become healthy within {timeout:.0f} s; log:\n"
                       + log_path.read_text()[-3000:])


def start_app(extra_env: dict[str, str] | None = None) -> tuple[str, subprocess.Popen, Path]:
    """Start the app in a subprocess; returns (base url, process, log path)."""
    ARTIFACTS.mkdir(exist_ok=True)
    port = free_port()
    log_path = ARTIFACTS / f"streamlit-{port}.log"
    env = {**os.environ, **(extra_env or {})}
    env.setdefault("OMP_NUM_THREADS", "2")
    script = os.environ.get("EXPLORER_APP", str(ROOT / "streamlit_app.py"))
    cmd = [sys.executable, "-m", "streamlit", "run", script,
           "--server.port", str(port), "--server.address", "127.0.0.1",
           "--server.headless", "true", "--server.fileWatcherType", "none",
           "--browser.gatherUsageStats", "false"]
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log_path, STARTUP_TIMEOUT_S)
    except Exception:
        stop_app(proc)
        raise
    return url, proc, log_path


def stop_app(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    if not path:
        _unavailable(f"no chromium at {CHROMIUM} and none on PATH")
    return path


@pytest.fixture(scope="session")
def app_url(chromium_path):
    url, proc, _ = start_app()
    yield url
    stop_app(proc)


@pytest.fixture(scope="session")
def browser(chromium_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _unavailable(f"playwright is not installed ({exc}); pip install -r requirements-dev.txt")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    pg = context.new_page()
    pg.set_default_timeout(120_000)
    yield pg
    context.close()


@pytest.fixture
def dark_page(browser):
    context = browser.new_context(viewport=VIEWPORT, color_scheme="dark")
    pg = context.new_page()
    pg.set_default_timeout(120_000)
    yield pg
    context.close()
