"""Many participants at once and a killed run resumed, on SQLite and on a real PostgreSQL
server: every acknowledged response is stored exactly once and nothing else is lost."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time

import sqlalchemy as sa

from explorer.study import storage

from study_helpers import ROOT, frozen_study, run_cli


def _acks(path) -> list[tuple[str, int]]:
    return [(d["participant"], d["trial"]) for d in storage.iter_json_lines(path)]


def _stored(store, study_id) -> list[tuple[str, int]]:
    return [(r.participant_id, r.trial_id) for r in store.responses(study_id)]


def _raw_count(store) -> int:
    with store.engine.connect() as c:
        return c.execute(sa.text("SELECT count(*) FROM responses")).scalar_one()


def test_twenty_participants_on_twenty_workers(store, db_url, tmp_path):
    study = frozen_study("rating")
    log = tmp_path / "acks.jsonl"
    res = run_cli("simulate", study.id, "--participants", "20", "--workers", "20",
                  "--log", str(log), "--db", db_url)
    assert res.returncode == 0, res.stderr
    acks, stored = _acks(log), _stored(store, study.id)
    n_trials = len(study.trials)
    assert len(acks) == 20 * n_trials
    assert len(set(acks)) == len(acks)                      # no acknowledgement twice
    assert collections.Counter(stored) == collections.Counter(acks)  # each stored exactly once
    assert _raw_count(store) == 20 * n_trials
    assert len(store.participants(study.id)) == 20
    assert all(p.finished_at is not None for p in store.participants(study.id))
    assert store.integrity_check() == "ok"


def test_killed_mid_run_and_resumed(store, db_url, tmp_path):
    study = frozen_study("rating")
    log = tmp_path / "acks.jsonl"
    args = ["simulate", study.id, "--participants", "20", "--workers", "6", "--pace", "0.01",
            "--log", str(log), "--db", db_url]
    proc = subprocess.Popen([sys.executable, "-m", "explorer", "study", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if log.exists() and len(_acks(log)) >= 60:
            break
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    n_trials = len(study.trials)
    first = _acks(log)
    stored = set(_stored(store, study.id))
    assert 60 <= len(first) < 20 * n_trials, "the run was not killed mid-way"
    assert set(first) <= stored                              # nothing acknowledged was lost
    assert store.integrity_check() == "ok"

    res = run_cli(*args)
    assert res.returncode == 0, res.stderr
    acks, stored = _acks(log), _stored(store, study.id)
    assert len(set(acks)) == len(acks)                       # nothing acknowledged twice
    assert set(acks) <= set(stored)
    assert collections.Counter(stored) == collections.Counter(set(stored))  # stored once
    assert len(stored) == _raw_count(store) == 20 * n_trials
    # The same 20 participants were resumed (none started afresh).
    assert len(store.participants(study.id)) == 20
    # At most one response per killed worker was committed without its acknowledgement.
    assert len(stored) - len(acks) <= 6
    assert store.integrity_check() == "ok"
