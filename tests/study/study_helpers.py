"""Study fixtures: one small frozen study (attacked once per test session), SQLite stores in
temporary directories, and a throwaway PostgreSQL cluster (initdb + pg_ctl, socket in a temp
dir; as the ``postgres`` user when the tests run as root). The PostgreSQL tests skip, saying
why, only when no server can be started here."""

from __future__ import annotations

import dataclasses
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from explorer.study import spec as spec_mod
from explorer.study import stimuli, storage

ROOT = Path(__file__).resolve().parents[2]

SMALL_SPEC = """
[study]
title = "test study <b>not bold</b> *not italic*"
task = "{task}"
seed = 3
consent = "Consent text with <script>alert(1)</script> and **stars**."
instructions = "Rate the maps."
completion_message = "Thanks!"

[stimuli]
dataset = "mnist"
models = ["natural"]
methods = ["saliency"]
attacks = ["topk", "random_sign"]
epsilons = [0.1, 0.3]
images = 10
steps = 10
k = 50
w = 1
pairs = {pairs}
disagreement_fraction = 0.5

[controls]
identical = 2
unrelated = 2
practice = 1

[exclusion]
max_failed_checks = 1
"""


def spec_text(task: str = "rating", pairs: int = 12) -> str:
    return SMALL_SPEC.format(task=task, pairs=pairs)


_FROZEN: dict[str, stimuli.FrozenStudy] = {}


def frozen_study(task: str = "rating") -> stimuli.FrozenStudy:
    """One frozen study per task and test session (the attacks run once)."""
    if task not in _FROZEN:
        text = spec_text(task)
        _FROZEN[task] = stimuli.freeze(spec_mod.parse_spec(text), text)
    return _FROZEN[task]


def with_new_id(study: stimuli.FrozenStudy) -> stimuli.FrozenStudy:
    return dataclasses.replace(study, id=stimuli.new_study_id())


# ---------------------------------------------------------------------------------- PostgreSQL

def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


@pytest.fixture(scope="session")
def pg_server():
    """URL of the ``postgres`` database of a throwaway cluster, or a skip with the reason."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL tests skipped: no initdb/pg_ctl found (install Debian's "
                    "postgresql package: scripts/install_postgres.sh)")
    base = Path(tempfile.mkdtemp(prefix="xpg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        try:
            shutil.chown(base, user="postgres")
        except (LookupError, PermissionError) as exc:
            shutil.rmtree(base, ignore_errors=True)
            pytest.skip(f"PostgreSQL tests skipped: running as root and no 'postgres' user to run "
                        f"initdb as ({exc})")
        prefix = ["runuser", "-u", "postgres", "--"]
    data, sock, log = base / "data", base / "s", base / "log"
    try:
        subprocess.run(prefix + ["mkdir", str(sock)], check=True)
        subprocess.run(prefix + [initdb, "-D", str(data), "-A", "trust", "-U", "postgres",
                                 "--no-sync", "-E", "UTF8"], check=True, capture_output=True,
                       timeout=120)
        subprocess.run(prefix + [pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "60",
                                 "-o", f"-k {sock} -c listen_addresses='' -c fsync=off "
                                       "-c max_connections=200", "start"],
                       check=True, capture_output=True, timeout=90)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        tail = log.read_text()[-800:] if log.exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"PostgreSQL tests skipped: could not start a throwaway server ({exc}; "
                    f"{detail.decode(errors='replace')[-400:]} {tail})")
    yield f"postgresql+psycopg://postgres@/postgres?host={sock}"
    subprocess.run(prefix + [pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
                   capture_output=True, timeout=60)
    shutil.rmtree(base, ignore_errors=True)


def _new_pg_database(server_url: str) -> str:
    import psycopg

    name = "t" + uuid.uuid4().hex[:12]
    host = server_url.split("host=", 1)[1]
    with psycopg.connect(host=host, user="postgres", dbname="postgres", autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    return f"postgresql+psycopg://postgres@/{name}?host={host}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """A fresh empty database of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'studies.sqlite'}"
    return _new_pg_database(request.getfixturevalue("pg_server"))


@pytest.fixture
def store(db_url):
    """A store on a fresh database holding the small rating study."""
    st = storage.open_store(db_url)
    st.save_study(frozen_study("rating"))
    yield st
    st.close()


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "explorer", "study", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
