"""Simulated participants (bots) that take a study through the same calls as the page.

Each bot is a panel participant ``PROLIFIC_PID=sim-<rule>-<i>`` (``SESSION_ID=simulate``), so a
second run with the same arguments finds the same participants and continues each at its
first unanswered trial. A bot looks at the screen the page would show (:func:`session.screen`),
answers by its rule, and presses the corresponding on-screen button (:func:`session.answer`).
After each commit it appends one JSON line to the acknowledgement log (one ``os.write`` on an
``O_APPEND`` descriptor: in the kernel's hands before the next answer, so it survives a killed
process), so a line in the log means a stored response.

Rules (on main and practice trials; attention checks are answered correctly, as an attentive
person would, except by ``fail-checks``):

- ``lens``: rating = 1 + 6 × w-LENS-recall@k + N(0, noise²), rounded into 1..7; choice: the
  candidate with the higher w-LENS-recall@k plus N(0, (noise/30)²); same/different: "same" when
  w-LENS-recall@k plus noise exceeds 0.5.
- ``topk``: the same with top-k intersection.
- ``random``: every main and practice answer uniformly at random (a rater who passes the
  obvious checks but whose judgements of the real pairs carry no signal: agreement at chance).
- ``fail-checks``: random answers, and every attention check answered wrongly.
"""

from __future__ import annotations

import json
import os
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import session
from .storage import StudyStore

__all__ = ["RULES", "BotResult", "answer_for", "run_bot", "simulate"]

RULES = ("lens", "topk", "random", "fail-checks")
_RULE_METRIC = {"lens": "lens_recall", "topk": "topk_intersection"}


@dataclass(frozen=True)
class BotResult:
    participant: str
    panel_pid: str
    answered: int      # responses stored in this run
    finished: bool


def _score(pair: dict, key: str) -> float:
    v = pair["metrics"][key]["score"]
    return 0.0 if v is None else float(v)


def answer_for(rule: str, task: str, trial: dict, pairs: dict, rng: np.random.Generator,
               noise: float) -> int:
    """The stored-answer value a bot with ``rule`` gives on ``trial``."""
    kind = trial["kind"]
    if kind in ("identical", "unrelated"):
        if rule in ("lens", "topk", "random"):
            return _check_answer(task, kind, trial, correct=True)
        if rule == "fail-checks":
            return _check_answer(task, kind, trial, correct=False)
    if rule in ("random", "fail-checks"):
        return int(rng.integers(1, 8)) if task == "rating" else int(rng.integers(2))
    key = _RULE_METRIC[rule]
    if task == "rating":
        v = 1 + 6 * _score(pairs[trial["pairs"][0]], key) + rng.normal(0, noise)
        return int(np.clip(np.rint(v), 1, 7))
    if task == "choice":
        # Candidates of one image differ little: a finer noise, noise / 30 on the [0, 1] scale.
        s0, s1 = (_score(pairs[p], key) + rng.normal(0, noise / 30) for p in trial["pairs"])
        return 0 if s0 >= s1 else 1
    return 1 if _score(pairs[trial["pairs"][0]], key) + rng.normal(0, noise / 6) > 0.5 else 0


def _check_answer(task: str, kind: str, trial: dict, correct: bool) -> int:
    if task == "rating":
        good = 7 if kind == "identical" else 1
        return good if correct else 8 - good
    if task == "choice":
        return trial["expected"] if correct else 1 - trial["expected"]
    good = 1 if kind == "identical" else 0
    return good if correct else 1 - good


def _button(task: str, value: int, flipped: bool) -> str:
    """The on-screen button that gives ``value`` (inverse of session.button_answer)."""
    if task == "rating":
        return str(value)
    if task == "choice":
        side = 1 - value if flipped else value
        return "left" if side == 0 else "right"
    return "left" if value == 1 else "right"


class _AckLog:
    def __init__(self, path):
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if path else None
        self.lock = threading.Lock()

    def write(self, obj: dict) -> None:
        if self.fd is None:
            return
        line = (json.dumps(obj, sort_keys=True) + "\n").encode()
        with self.lock:
            os.write(self.fd, line)  # in the kernel at once: survives a killed process

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)


def run_bot(store: StudyStore, study_id: str, index: int, rule: str, *, noise: float = 0.6,
            seed: int = 0, pace: float = 0.0, log: _AckLog | None = None) -> BotResult:
    """One simulated participant from its first unanswered trial to the end."""
    study = store.study(study_id)
    task = study["task"]
    trials, pairs = store.trials(study_id), store.pairs(study_id)
    p = session.start(store, study_id, {"PROLIFIC_PID": f"sim-{rule}-{index:04d}",
                                        "STUDY_ID": study_id, "SESSION_ID": "simulate"})
    pos = session.next_position(store, p)
    answered = 0
    while pos < len(p.order):
        scr = session.screen(store, p, pos)
        # One generator per (bot, position): a resumed run gives the same answers.
        rng = np.random.default_rng([seed, zlib.crc32(rule.encode()), index, pos])
        value = answer_for(rule, task, trials[scr.trial_id], pairs, rng, noise)
        rt = float(rng.gamma(4.0, 350.0))
        if pace:
            time.sleep(pace)
        res = session.answer(store, p, pos, scr.trial_id, _button(task, value, scr.flipped), rt)
        if res.created:
            answered += 1
        if log is not None and res.created:
            log.write({"participant": p.participant_id, "trial": scr.trial_id, "position": pos,
                       "answer": res.response.answer, "panel_pid": p.panel_pid,
                       "created": res.created})
        pos += 1
    return BotResult(p.participant_id, p.panel_pid or "", answered, True)


def simulate(store: StudyStore, study_id: str, participants: int, workers: int = 1,
             rule: str = "lens", *, noise: float = 0.6, seed: int = 0, pace: float = 0.0,
             log_path: str | None = None) -> list[BotResult]:
    """Run ``participants`` bots on ``workers`` threads at once (each bot its own session)."""
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; allowed: {', '.join(RULES)}")
    if participants < 1 or workers < 1:
        raise ValueError("--participants and --workers must be at least 1")
    store.study(study_id)
    log = _AckLog(log_path)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(run_bot, store, study_id, i, rule, noise=noise, seed=seed,
                                   pace=pace, log=log) for i in range(participants)]
            return [f.result() for f in futures]
    finally:
        log.close()
