"""The results folder of a batch evaluation: writing it, resuming it and reading it back.

A results folder holds::

    config.json     the exact configuration (what it was asked) and its resolution per dataset
                    (paper ε, k, α, P filled in, method parameters with defaults)
    rows/*.csv      one file per finished unit, written to a temporary name and renamed: a file
                    is either complete or absent, so an interrupted run resumes at the first
                    missing unit without duplicates
    results.csv     all rows, merged in the canonical order when every unit is done
    runs.jsonl      one line per start and per end of an invocation (wall times, processes)
    .lock           present while a run writes the folder (one run at a time)

A compact copy (:func:`export_compact`) holds ``config.json``, ``runs.jsonl`` and
``results.csv.gz``; :func:`load_results` reads both kinds. Every malformed file raises
:class:`ResultsError` naming the file and the line.
"""

from __future__ import annotations

import csv
import datetime as _dt
import gzip
import io
import json
import os
import shutil
import socket
import sys
import tempfile
import uuid
import zlib
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from .plan import EvalConfig, Plan
from .schema import (BASE_COLUMNS, TIMING_COLUMNS, column_type, format_cell,
                     parse_metric_column, typed_frame)
from .units import Unit, plan_units

__all__ = [
    "FORMAT",
    "READABLE_FORMATS",
    "CONFIG_FILE",
    "ROWS_DIR",
    "MERGED_FILE",
    "RUNS_FILE",
    "LOCK_FILE",
    "ResultsError",
    "ConfigMismatch",
    "atomic_write",
    "rows_to_csv",
    "read_rows_csv",
    "write_unit",
    "done_units",
    "discard_partial_writes",
    "merge",
    "load_config",
    "prepare_folder",
    "acquire_lock",
    "release_lock",
    "append_run_log",
    "run_log",
    "load_results",
    "export_compact",
    "long_format",
]

FORMAT = "explorer-evaluate/2"
READABLE_FORMATS = ("explorer-evaluate/1", FORMAT)  # version 1: no bookkeeping columns
CONFIG_FILE = "config.json"
ROWS_DIR = "rows"
MERGED_FILE = "results.csv"
RUNS_FILE = "runs.jsonl"
LOCK_FILE = ".lock"


class ResultsError(ValueError):
    """A results file or folder cannot be read; the message names the file and the line."""


class ConfigMismatch(ValueError):
    """A results folder holds rows of a different configuration; the message lists the
    differences."""


# --------------------------------------------------------------------------------------------
# Rows files
# --------------------------------------------------------------------------------------------

def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it: complete or absent."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def rows_to_csv(rows: list[dict], columns: Sequence[str]) -> str:
    """The CSV text of row dicts (a missing or None value is an empty cell)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    types = [column_type(c) for c in columns]
    for row in rows:
        writer.writerow(["" if row.get(c) is None else format_cell(row[c], t)
                         for c, t in zip(columns, types)])
    return buf.getvalue()


def _parse_cell(text: str, kind: type, path, line: int, column: str):
    if kind is str:
        if text == "":
            raise ResultsError(f"{path}, line {line}: column {column!r} is empty")
        return text
    if kind is float:
        if text == "":
            return float("nan")
        try:
            return float(text)
        except ValueError:
            raise ResultsError(f"{path}, line {line}: column {column!r} holds {text!r}, which is "
                               "not a number") from None
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ResultsError(f"{path}, line {line}: column {column!r} holds {text!r}, which is "
                               "not an integer") from None
    if text in ("True", "1", "true"):
        return True
    if text in ("False", "0", "false"):
        return False
    raise ResultsError(f"{path}, line {line}: column {column!r} holds {text!r}; expected True or "
                       "False")


def read_rows_csv(path) -> tuple[list[str], list[list]]:
    """Read one results CSV (a unit file or ``results.csv``): ``(columns, rows)``.

    Every problem raises :class:`ResultsError` with the file's path and the 1-based line.
    """
    path = Path(path)
    try:
        f = open(path, encoding="utf-8", newline="")
    except OSError as exc:
        raise ResultsError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    with f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            if header is None:
                raise ResultsError(f"{path}, line 1: the file is empty; expected a header row "
                                   f"starting with {', '.join(list(BASE_COLUMNS)[:3])}, ...")
            missing = [c for c in BASE_COLUMNS if c not in header]
            if missing:
                raise ResultsError(f"{path}, line 1: the header lacks column(s) "
                                   f"{', '.join(missing)}; this is not a results file of "
                                   "`python -m explorer evaluate`")
            types = []
            for c in header:
                t = column_type(c)
                if t is None:
                    raise ResultsError(f"{path}, line 1: unknown column {c!r}; allowed: "
                                       f"{', '.join(BASE_COLUMNS)}, metric columns "
                                       "'METRIC@kK_wW' and " + ", ".join(TIMING_COLUMNS))
                types.append(t)
            if len(set(header)) != len(header):
                raise ResultsError(f"{path}, line 1: a column name appears twice")
            rows = []
            for fields_ in reader:
                line = reader.line_num
                if not fields_:
                    continue
                if len(fields_) != len(header):
                    raise ResultsError(f"{path}, line {line}: {len(fields_)} fields, expected "
                                       f"{len(header)} (one per header column)")
                rows.append([_parse_cell(v, t, path, line, c)
                             for v, t, c in zip(fields_, types, header)])
        except csv.Error as exc:
            raise ResultsError(f"{path}, line {reader.line_num}: malformed CSV ({exc})") from None
        except UnicodeDecodeError:
            raise ResultsError(f"{path}: not a UTF-8 text file") from None
    return header, rows


def _unit_path(folder: Path, unit: Unit) -> Path:
    return folder / ROWS_DIR / f"{unit.name}.csv"


def write_unit(folder: Path, unit: Unit, rows: list[dict], plan: Plan) -> None:
    """Write the rows of a finished unit to its file under ``rows/`` (atomically)."""
    atomic_write(_unit_path(folder, unit),
                 rows_to_csv(rows, plan.columns(unit.dataset)))


def _read_unit(path: Path, unit: Unit, plan: Plan) -> tuple[list[str], list[list]]:
    header, rows = read_rows_csv(path)
    expected = plan.columns(unit.dataset)
    if header != expected:
        raise ResultsError(f"{path}, line 1: the columns differ from this configuration's "
                           f"(missing: {sorted(set(expected) - set(header)) or 'none'}, extra: "
                           f"{sorted(set(header) - set(expected)) or 'none'}); delete the file to "
                           "recompute it")
    if len(rows) != unit.n:
        raise ResultsError(f"{path}: {len(rows)} rows, expected {unit.n} (one per image of the "
                           "batch); delete the file to recompute it")
    return header, rows


def done_units(folder: Path, units: list[Unit]) -> set[str]:
    """Names of the units whose file is present."""
    rows_dir = folder / ROWS_DIR
    if not rows_dir.is_dir():
        return set()
    present = {p.stem for p in rows_dir.glob("*.csv")}
    return {u.name for u in units if u.name in present}


def discard_partial_writes(folder: Path) -> None:
    """Delete the temporary files an interrupted write left under ``rows/``."""
    for tmp in (folder / ROWS_DIR).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def merge(folder: Path, units: list[Unit], plan: Plan) -> Path:
    """Write ``results.csv``: every unit's rows in the canonical order (ResultsError when a
    unit file is missing or malformed)."""
    all_cols: list[str] = []
    for d in plan.datasets:
        for c in plan.columns(d):
            if c not in all_cols:
                all_cols.append(c)
    # Timings last, whatever the datasets' metric columns.
    all_cols = [c for c in all_cols if c not in TIMING_COLUMNS] + list(TIMING_COLUMNS)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(all_cols)
    for unit in sorted(units):
        header, rows = _read_unit(_unit_path(folder, unit), unit, plan)
        pos = {c: i for i, c in enumerate(header)}
        types = [column_type(c) for c in all_cols]
        for r in rows:
            writer.writerow(["" if c not in pos else format_cell(r[pos[c]], t)
                             for c, t in zip(all_cols, types)])
    out = folder / MERGED_FILE
    atomic_write(out, buf.getvalue())
    return out


# --------------------------------------------------------------------------------------------
# The configuration file: create, or check before resuming
# --------------------------------------------------------------------------------------------

def _identity(config: EvalConfig, plan: Plan) -> dict:
    return json.loads(json.dumps({"config": config.to_json(), "resolved": plan.to_json()}))


def _diff(old, new, prefix="") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in dict.fromkeys(list(old) + list(new)):
            where = f"{prefix}.{key}" if prefix else str(key)
            if key not in old:
                out.append(f"{where}: absent in the folder, {json.dumps(new[key])} now")
            elif key not in new:
                out.append(f"{where}: {json.dumps(old[key])} in the folder, absent now")
            else:
                out.extend(_diff(old[key], new[key], where))
        return out
    if old != new:
        return [f"{prefix}: {json.dumps(old)} in the folder, {json.dumps(new)} now"]
    return []


def _read_config_file(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ResultsError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or data.get("format") not in READABLE_FORMATS:
        raise ResultsError(f"{path}, line 1: not a configuration written by `python -m explorer "
                           f"evaluate` (expected \"format\": \"{FORMAT}\")")
    for key in ("config", "resolved"):
        if not isinstance(data.get(key), dict):
            raise ResultsError(f"{path}: the entry {key!r} is missing or not an object")
    return data


def load_config(folder) -> dict:
    """The ``config.json`` of a results folder (ResultsError when absent or malformed)."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not path.exists():
        raise ResultsError(f"{folder} is not a results folder: it has no {CONFIG_FILE} (make one "
                           "with `python -m explorer evaluate --out FOLDER ...`)")
    return _read_config_file(path)


def prepare_folder(folder: Path, config: EvalConfig, plan: Plan, command: str = "") -> None:
    """Create ``folder`` with its ``config.json``, or check that an existing folder holds the
    same configuration (:class:`ConfigMismatch` listing the differences otherwise)."""
    folder = Path(folder)
    cfg_path = folder / CONFIG_FILE
    identity = _identity(config, plan)
    if cfg_path.exists():
        stored = _read_config_file(cfg_path)
        if stored["format"] != FORMAT:
            raise ConfigMismatch(f"{folder} was written by an older version of `python -m "
                                 f"explorer evaluate` ({stored['format']}; this one writes "
                                 f"{FORMAT}, with more columns), so it cannot be resumed; it "
                                 "can still be read and reported. Use another --out folder.")
        diffs = _diff({"config": stored["config"], "resolved": stored["resolved"]}, identity)
        if diffs:
            shown = "; ".join(diffs[:8]) + (f"; and {len(diffs) - 8} more" if len(diffs) > 8
                                             else "")
            raise ConfigMismatch(f"{folder} holds results of a different configuration, so it "
                                 f"cannot be resumed: {shown}. Use another --out folder, or "
                                 "repeat the folder's own configuration (see its config.json).")
        return
    if folder.exists() and any(folder.iterdir()):
        raise ConfigMismatch(f"{folder} is not empty and has no {CONFIG_FILE}: it is not a "
                             "results folder of `python -m explorer evaluate`; choose an empty "
                             "or new folder")
    (folder / ROWS_DIR).mkdir(parents=True, exist_ok=True)
    doc = {"format": FORMAT, **identity, "command": command,
           "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
           "environment": {"python": sys.version.split()[0], "torch": torch.__version__,
                           "host": socket.gethostname()},
           "columns": "wide: one column per metric, k and w, named METRIC@kK_wW; see "
                      "docs/evaluation.md"}
    atomic_write(cfg_path, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


# --------------------------------------------------------------------------------------------
# The lock (one run at a time per folder) and the run log
# --------------------------------------------------------------------------------------------

def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def acquire_lock(folder: Path, run_id: str) -> None:
    """One run at a time per folder: a lock file naming the writer (host, pid). A lock left by
    a process of this host that no longer exists is taken over."""
    path = folder / LOCK_FILE
    me = {"host": socket.gethostname(), "pid": os.getpid(), "run": run_id,
          "time": _dt.datetime.now().astimezone().isoformat(timespec="seconds")}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                other = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                other = {}
            same_host = other.get("host") == me["host"]
            if same_host and isinstance(other.get("pid"), int) and not _pid_alive(other["pid"]):
                path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            raise ConfigMismatch(
                f"{folder} is being written by another run (pid {other.get('pid', '?')} on "
                f"{other.get('host', '?')}, since {other.get('time', '?')}); wait for it to "
                f"finish, or delete {path} if that run no longer exists") from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(me))
        return
    raise ConfigMismatch(f"{folder}: could not take the lock {path}; delete it and retry")


def release_lock(folder: Path, run_id: str) -> None:
    """Remove the lock when this run (``run_id``) holds it."""
    path = folder / LOCK_FILE
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("run") == run_id:
            path.unlink()
    except (OSError, json.JSONDecodeError):
        pass


def append_run_log(folder: Path, record: dict) -> None:
    """Append one record (a start or an end of an invocation) to ``runs.jsonl``."""
    with open(folder / RUNS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def run_log(folder) -> list[dict]:
    """The start/end records of ``runs.jsonl`` (empty when absent); malformed lines are reported
    with their line number."""
    path = Path(folder) / RUNS_FILE
    if not path.exists():
        return []
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ResultsError(f"{path}, line {i}: not valid JSON ({exc.msg})") from None
    return out


# --------------------------------------------------------------------------------------------
# Reading results back
# --------------------------------------------------------------------------------------------

def _plan_of(folder: Path, cfg: dict) -> Plan:
    try:
        EvalConfig.from_json(cfg["config"])
    except (TypeError, ValueError) as exc:
        raise ResultsError(f"{folder / CONFIG_FILE}: the configuration cannot be read ({exc})"
                           ) from None
    try:
        return Plan.from_json(cfg["resolved"])
    except (KeyError, TypeError) as exc:
        raise ResultsError(f"{folder / CONFIG_FILE}: the resolved configuration is incomplete "
                           f"(missing {exc})") from None
    except (AttributeError, ValueError) as exc:
        raise ResultsError(f"{folder / CONFIG_FILE}: the resolved configuration is malformed "
                           f"({exc})") from None


def load_results(folder, *, partial: bool = True) -> pd.DataFrame:
    """All rows of a results folder as a pandas DataFrame (typed columns).

    Reads the unit files under ``rows/`` (so a running or interrupted run shows what is done;
    ``partial=False`` refuses an incomplete folder), or ``results.csv`` when there is no
    ``rows/`` folder (e.g. a folder committed without its unit files). Malformed files raise
    :class:`ResultsError` with the path and line.
    """
    folder = Path(folder)
    plan = _plan_of(folder, load_config(folder))
    units = plan_units(plan)
    rows_dir = folder / ROWS_DIR
    frames = []
    if rows_dir.is_dir():
        missing = []
        for unit in units:
            path = _unit_path(folder, unit)
            if not path.exists():
                missing.append(unit.name)
                continue
            header, rows = _read_unit(path, unit, plan)
            frames.append(pd.DataFrame(rows, columns=header))
        if missing and not partial:
            raise ResultsError(f"{folder}: {len(missing)} of {len(units)} batches are not done "
                               f"yet (first: {missing[0]}); resume the run to finish them")
    else:
        merged = folder / MERGED_FILE
        gz = folder / (MERGED_FILE + ".gz")
        if merged.exists():
            header, rows = read_rows_csv(merged)
        elif gz.exists():
            header, rows = _read_gz(gz)
        else:
            raise ResultsError(f"{folder} holds no rows yet ({ROWS_DIR}/ and {MERGED_FILE} are "
                               "absent)")
        frames.append(pd.DataFrame(rows, columns=header))
    if not frames:
        return typed_frame(pd.DataFrame(columns=list(BASE_COLUMNS)))
    return typed_frame(pd.concat(frames, ignore_index=True))


def _read_gz(path: Path):
    try:
        text = gzip.decompress(path.read_bytes()).decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        raise ResultsError(f"{path.name} in {path.parent} is damaged: not a readable "
                           f"gzip-compressed UTF-8 CSV ({exc.__class__.__name__}: {exc}); copy "
                           "it again from where it came from, or re-run the evaluation") from None
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False, encoding="utf-8") as f:
        f.write(text)
        tmp = Path(f.name)
    try:
        return read_rows_csv(tmp)
    except ResultsError as exc:
        raise ResultsError(str(exc).replace(str(tmp), str(path))) from None
    finally:
        tmp.unlink(missing_ok=True)


def export_compact(folder, dest) -> Path:
    """Copy a finished results folder to ``dest`` as ``config.json``, ``runs.jsonl`` and one
    gzip-compressed ``results.csv.gz`` (no unit files): small enough to commit, and readable by
    :func:`load_results` and the Sweeps page. Refuses an unfinished folder."""
    folder, dest = Path(folder), Path(dest)
    plan = _plan_of(folder, load_config(folder))
    if (folder / ROWS_DIR).is_dir():
        merge(folder, plan_units(plan), plan)  # also checks that every unit is there
    merged = folder / MERGED_FILE
    if not merged.exists():
        raise ResultsError(f"{folder}: no {MERGED_FILE}; finish the run first")
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(folder / CONFIG_FILE, dest / CONFIG_FILE)
    if (folder / RUNS_FILE).exists():
        shutil.copyfile(folder / RUNS_FILE, dest / RUNS_FILE)
    data = gzip.compress(merged.read_bytes(), compresslevel=9, mtime=0)
    tmp = dest / f".{MERGED_FILE}.gz.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, dest / (MERGED_FILE + ".gz"))
    return dest


def long_format(df: pd.DataFrame) -> pd.DataFrame:
    """Melt the wide metric columns: one row per (row, metric, k, w) with column ``value``."""
    mcols = [c for c in df.columns if parse_metric_column(c) is not None]
    ids = [c for c in df.columns if c not in mcols]
    long = df.melt(id_vars=ids, value_vars=mcols, var_name="column", value_name="value")
    parsed = long["column"].map(parse_metric_column)
    long["metric"] = parsed.map(lambda t: t[0])
    long["k"] = parsed.map(lambda t: t[1]).astype("int64")
    long["w"] = parsed.map(lambda t: t[2]).astype("int64")
    return long.drop(columns="column")
