"""Where results folders may be read from: the configured roots and the containment check.

A server shows results only from folders under its *results roots* (default ``docs/results``
and ``results`` of the project). Anything else a user names - an absolute path elsewhere, a
``..`` that climbs out, a symbolic link that leads out, a device file or a path that does not
exist - is refused with one message, :data:`REFUSAL`, that says nothing about whether the path
exists. Paths are resolved (symbolic links followed) before the containment check, and every
file the loader reads inside a folder is checked the same way.

The roots are configured by the operator: :data:`ROOTS_ENV` (``EXPLORER_RESULTS_ROOTS``,
folders separated by ``os.pathsep``, relative ones taken from the project folder); the app
also reads ``results_roots`` from Streamlit's secrets first (``explorer.ui.sweeps``).

A root may also say which of its folders a report was made from (:data:`REPORTED`); the Sweeps
page opens those by default, so it shows the committed report's rows and not older runs kept
beside them.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .folder import CONFIG_FILE, MERGED_FILE, ROWS_DIR, RUNS_FILE

__all__ = ["DEFAULT_ROOTS", "MAX_DEPTH", "MAX_TEXT", "PROJECT_ROOT", "REFUSAL", "REPORTED",
           "ROOTS_ENV", "ResultsRoots", "RootsError", "configured_roots", "discover", "refusal",
           "reported", "write_reported"]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ROOTS = ("docs/results", "results")
ROOTS_ENV = "EXPLORER_RESULTS_ROOTS"
MAX_DEPTH = 3  # folder levels below a root searched for results folders
REFUSAL = ("Results are read only from the configured folders: {roots}. "
           "Choose one of the folders listed.")
# The files of a results folder that the loader reads (besides rows/*.csv).
_FILES = (CONFIG_FILE, MERGED_FILE, MERGED_FILE + ".gz", RUNS_FILE)
_ROWS = ROWS_DIR
MAX_TEXT = 4096  # longest folder text accepted


class RootsError(ValueError):
    """A folder outside the configured roots (or not a results folder): the message is
    :data:`REFUSAL` with the roots, the same whatever was wrong."""


@dataclass(frozen=True)
class ResultsRoots:
    """The configured roots: ``labels`` as the operator wrote them, ``paths`` resolved."""

    labels: tuple[str, ...]
    paths: tuple[Path, ...]

    def label(self) -> str:
        return ", ".join(self.labels)

    def display(self, folder: Path) -> str:
        """``folder`` (resolved, under a root) as shown in the page: relative to the project
        when inside it, else the root's label joined with the rest."""
        for label, root in zip(self.labels, self.paths):
            if _inside(folder, root):
                rest = folder.relative_to(root)
                try:
                    root.relative_to(PROJECT_ROOT)
                    return str(folder.relative_to(PROJECT_ROOT))
                except ValueError:
                    return str(Path(label) / rest)
        return str(folder)

    def check(self, text: str | os.PathLike) -> Path:
        """The results folder named by ``text`` (relative to the project folder, or absolute),
        resolved; :class:`RootsError` unless it and every file the loader reads in it are under
        a root, are plain files / folders, and it holds a ``config.json``."""
        raw = os.fspath(text).strip()
        if not raw or len(raw) > MAX_TEXT or "\x00" in raw:
            raise RootsError(refusal(self))
        p = Path(raw).expanduser()
        if not p.is_absolute():
            p = PROJECT_ROOT / p
        try:
            folder = p.resolve(strict=True)
            if not any(_inside(folder, r) for r in self.paths) or not folder.is_dir():
                raise RootsError(refusal(self))
            if not (folder / CONFIG_FILE).exists():
                raise RootsError(refusal(self))
            for name in _FILES:
                self._check_member(folder / name, stat.S_ISREG)
            rows = folder / _ROWS
            if self._check_member(rows, stat.S_ISDIR):
                for entry in rows.iterdir():
                    self._check_member(entry, stat.S_ISREG)
        except (OSError, RuntimeError) as exc:  # missing, permission, symlink loop
            raise RootsError(refusal(self)) from exc
        return folder

    def _check_member(self, path: Path, kind) -> bool:
        """False when ``path`` does not exist; RootsError when it leads out of the roots or
        is not of ``kind`` (a device file, a fifo...)."""
        if not os.path.lexists(path):
            return False
        real = path.resolve(strict=True)
        if not any(_inside(real, r) for r in self.paths) or not kind(real.stat().st_mode):
            raise RootsError(refusal(self))
        return True


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def refusal(roots: ResultsRoots) -> str:
    return REFUSAL.format(roots=roots.label())


def configured_roots(value: str | Sequence[str] | None = None) -> ResultsRoots:
    """The roots from ``value`` (a list, or one string of folders separated by
    ``os.pathsep``), else from :data:`ROOTS_ENV`, else :data:`DEFAULT_ROOTS`. Relative roots
    are taken from the project folder. A root that does not exist is kept (nothing is found
    under it)."""
    if value is None:
        value = os.environ.get(ROOTS_ENV) or None
    if value is None:
        labels: Iterable[str] = DEFAULT_ROOTS
    elif isinstance(value, str):
        labels = value.split(os.pathsep)
    else:
        labels = value
    labels = tuple(dict.fromkeys(str(v).strip() for v in labels if str(v).strip()))
    if not labels:
        labels = DEFAULT_ROOTS
    paths = []
    for label in labels:
        p = Path(label).expanduser()
        paths.append((p if p.is_absolute() else PROJECT_ROOT / p).resolve())
    return ResultsRoots(labels, tuple(paths))


def discover(roots: ResultsRoots, max_depth: int = MAX_DEPTH) -> list[str]:
    """The results folders under the roots, as :meth:`ResultsRoots.display` names them: folders
    holding a ``config.json`` and ``results.csv(.gz)`` or a ``rows/`` folder (a run in
    progress), at most ``max_depth`` levels down, each passing :meth:`ResultsRoots.check`
    (symbolic links leading out are left out). Sorted per root."""
    found: list[str] = []
    for root in roots.paths:
        if not root.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            depth = len(Path(dirpath).relative_to(root).parts)
            has_rows = _ROWS in dirnames  # a run in progress (listed before it is left out)
            dirnames[:] = sorted(d for d in dirnames if d != _ROWS and not d.startswith("."))
            if depth >= max_depth:
                dirnames[:] = []
            if depth == 0 or CONFIG_FILE not in filenames:
                continue
            if not ({MERGED_FILE, MERGED_FILE + ".gz"} & set(filenames) or has_rows):
                continue
            try:
                folder = roots.check(dirpath)
            except RootsError:
                continue
            name = roots.display(folder)
            if name not in found:
                found.append(name)
    return found


REPORTED = "reported.json"
"""A file in a root naming the folders behind the report made from it, in the report's order
(written by ``python -m explorer report --copy-rows-to ROOT``)."""


def write_reported(root: Path, names: Sequence[str], report: str) -> Path:
    """Record in ``root`` that ``report`` was made from the folders ``names`` (in order)."""
    path = Path(root) / REPORTED
    path.write_text(json.dumps({"report": report, "folders": list(names)}, indent=2) + "\n",
                    encoding="utf-8")
    return path


def reported(roots: ResultsRoots, options: Sequence[str]) -> list[str]:
    """Of ``options`` (as :func:`discover` names them), the folders behind a report, in the
    report's order, from each root's :data:`REPORTED` file; empty when no root has one or it
    cannot be read. A folder named there but not among ``options`` is left out."""
    out: list[str] = []
    for root in roots.paths:
        try:
            data = json.loads((root / REPORTED).read_text(encoding="utf-8"))
            names = [str(n) for n in data["folders"]]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for name in names:
            shown = roots.display(root / name)
            if shown in options and shown not in out:
                out.append(shown)
    return out
