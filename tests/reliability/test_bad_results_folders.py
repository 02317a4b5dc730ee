"""The Sweeps page reads results only under its configured roots: a folder elsewhere - an
absolute path, a ``..`` climbing out, a symbolic link leading out, a device file, a file inside a
results folder that leads out - gets one message that does not say whether the path exists,
and the page keeps working on a folder of the roots afterwards."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
from app_helpers import fresh_streamlit_caches  # noqa: E402,F401  (autouse: empty caches)

from explorer.evaluation import roots as R  # noqa: E402
from explorer.ui import sweeps  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
GOOD = ROOT / "docs" / "results" / "repro-ig-mnist-pgd"  # a small committed folder
SCRIPT = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
from explorer.ui import sweeps
sweeps.render()
"""


@pytest.fixture()
def layout(tmp_path, monkeypatch):
    """A configured root holding a good folder, and an outside folder holding a good copy."""
    root = tmp_path / "served"
    outside = tmp_path / "private"
    shutil.copytree(GOOD, root / "good")
    shutil.copytree(GOOD, outside / "secret-run")
    monkeypatch.setenv(R.ROOTS_ENV, str(root))
    return root, outside


def _message(root: Path) -> str:
    return (f"Results are read only from the configured folders: {root}. "
            "Choose one of the folders listed.")


def _page_after(text: str) -> AppTest:
    at = AppTest.from_string(SCRIPT, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    at.multiselect(key=sweeps.FOLDERS).set_value([])
    at.text_input(key=sweeps.PATH).set_value(text)
    at.run()
    return at


def _refused_then_works(text: str, root: Path) -> None:
    at = _page_after(text)
    assert not at.exception, at.exception
    assert [e.value for e in at.error] == [_message(root)]
    assert not at.dataframe  # nothing of the refused folder is shown
    # The page keeps working: the folder of the roots opens from the list.
    at.text_input(key=sweeps.PATH).set_value("")
    at.multiselect(key=sweeps.FOLDERS).set_value([str(root / "good")])
    at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert len(at.dataframe) >= 2


def _cases(root: Path, outside: Path) -> dict[str, str]:
    (root / "link-out").symlink_to(outside / "secret-run", target_is_directory=True)
    leaky = root / "leaky"
    shutil.copytree(GOOD, leaky)
    (leaky / "runs.jsonl").unlink()
    (leaky / "runs.jsonl").symlink_to("/etc/passwd")
    device = root / "device"
    shutil.copytree(GOOD, device)
    (device / "results.csv.gz").unlink()
    (device / "results.csv.gz").symlink_to("/dev/zero")
    rel = os.path.relpath(outside / "secret-run", ROOT)
    return {
        "absolute path outside": str(outside / "secret-run"),
        "absolute path missing": str(outside / "no-such-run"),
        "system folder": "/etc",
        "device file": "/dev/zero",
        "dot-dot from a root": str(root / ".." / "private" / "secret-run"),
        "relative dot-dot": rel,
        "symlink leading out": str(root / "link-out"),
        "file in folder leads out": str(leaky),
        "device file in folder": str(device),
        "root itself (no config.json)": str(root),
        "missing inside a root": str(root / "not-there"),
        "home shorthand": "~",
    }


CASES = ["absolute path outside", "absolute path missing", "system folder", "device file",
         "dot-dot from a root", "relative dot-dot", "symlink leading out",
         "file in folder leads out", "device file in folder", "root itself (no config.json)",
         "missing inside a root", "home shorthand"]


@pytest.mark.parametrize("case", CASES)
def test_each_refusal_is_the_same_message_and_the_page_keeps_working(case, layout):
    root, outside = layout
    text = _cases(root, outside)[case]
    _refused_then_works(text, root)


def test_existing_and_missing_paths_read_the_same(layout):
    """No disclosure: a folder that exists outside and one that does not give one message."""
    root, outside = layout
    here = _page_after(str(outside / "secret-run"))
    missing = _page_after(str(outside / "no-such-run"))
    assert [e.value for e in here.error] == [e.value for e in missing.error] == [_message(root)]
    assert "secret-run" not in here.error[0].value


def test_list_offers_only_folders_inside_the_roots(layout):
    root, outside = layout
    _cases(root, outside)
    nested = root / "course" / "week1" / "run"
    shutil.copytree(GOOD, nested)
    (root / "empty").mkdir()  # no config.json: not a results folder
    found = R.discover(R.configured_roots())
    assert str(root / "good") in found and str(nested) in found
    for name in ("link-out", "leaky", "device", "empty"):
        assert str(root / name) not in found, name
    at = AppTest.from_string(SCRIPT, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    assert set(at.multiselect(key=sweeps.FOLDERS).options) == {str(root / "good"), str(nested)}


def test_library_check_refuses_nul_and_overlong_text(layout):
    root, _ = layout
    roots = R.configured_roots()
    for text in ("results\x00/x", "a" * (R.MAX_TEXT + 1), "", "   "):
        with pytest.raises(R.RootsError) as err:
            roots.check(text)
        assert str(err.value) == _message(root)
    assert roots.check(root / "good") == (root / "good").resolve()
