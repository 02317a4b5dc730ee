"""Reading off which metric agrees with people: exclusions, per-trial judgements, inter-rater
agreement, metric-human agreement with bootstrap intervals, tidy CSV export.

- Exclusion: a participant who failed more attention checks than ``[exclusion]
  max_failed_checks`` is excluded (the rule of each check: :data:`tasks.CHECK_RULES`). Practice
  trials and attention checks are never analysed; only main trials are.
- Human judgement of a main trial: rating — the mean rating (1..7); same/different — the
  share of "same"; choice — the share choosing candidate 0. Intervals: mean ± t(0.975, n−1)·s/√n.
- Inter-rater agreement: Krippendorff's α (the ``krippendorff`` package; ordinal for ratings,
  nominal for the two-answer tasks) over participants × main trials.
- Metric agreement, for every metric of ``explorer.metrics.compare``, raw and chance-normalised,
  oriented so that higher means "more similar" (the centre shift is negated):
  rating and same/different — Kendall τ-b (scipy) between the metric and the human judgement
  across main trials; choice — the agreement rate of the metric's choice (the candidate with
  the higher score; a tie counts one half) with each response.
- Intervals: percentile bootstrap that resamples participants *and* trials (both with
  replacement, independently) in every replicate.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import krippendorff
import numpy as np
from scipy import stats

from .. import metrics as _metrics
from .storage import StudyStore
from .tasks import CHECK_RULES, check_passed

__all__ = ["Agreement", "Analysis", "analyse", "export", "format_report", "VARIANTS"]

VARIANTS = ("raw", "normalised")
_CHECKS = ("identical", "unrelated")


@dataclass(frozen=True)
class Agreement:
    metric: str
    name: str
    variant: str       # "raw" | "normalised"
    statistic: str     # "kendall_tau" | "agreement_rate"
    value: float
    ci_low: float
    ci_high: float
    n_trials: int


@dataclass(frozen=True)
class Analysis:
    study_id: str
    task: str
    exclusion_rule: str
    n_participants: int          # with at least one stored response
    n_finished: int
    excluded: tuple[str, ...]
    failed_checks: dict = field(hash=False)  # participant -> failed check count
    per_trial: tuple[dict, ...] = ()
    alpha: float = math.nan
    alpha_level: str = "ordinal"
    agreements: tuple[Agreement, ...] = ()
    best: str = ""                # the raw metric with the highest agreement
    chance_note: str = ""
    n_bootstrap: int = 0


def _oriented(pair: dict, key: str, variant: str) -> float:
    rec = pair["metrics"][key]
    v = rec["score"] if variant == "raw" else rec["normalised"]
    if v is None:
        return math.nan
    return -v if (variant == "raw" and not _metrics.METRICS[key].higher_is_better) else v


def _tau(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return math.nan
    return float(stats.kendalltau(x[ok], y[ok]).statistic)


def _agree_rate(diff: np.ndarray, answers: np.ndarray) -> float:
    """Mean agreement of the metric's choice (diff > 0: candidate 0) with answer cells."""
    mask = np.isfinite(answers) & np.isfinite(diff)[None, :]
    if not mask.any():
        return math.nan
    pick0 = np.where(diff > 0, 1.0, np.where(diff < 0, 0.0, 0.5))[None, :]
    said0 = (answers == 0).astype(float)
    agree = np.where(pick0 == 0.5, 0.5, 1.0 - np.abs(pick0 - said0))
    return float(agree[mask].mean())


def analyse(store: StudyStore, study_id: str, *, n_bootstrap: int = 1000,
            seed: int = 0) -> Analysis:
    """The analysis of every stored response of ``study_id`` (see the module docstring)."""
    study = store.study(study_id)
    task, spec = study["task"], study["spec"]
    trials, pairs = store.trials(study_id), store.pairs(study_id)
    parts = {p.participant_id: p for p in store.participants(study_id)}
    responses = store.responses(study_id)
    limit = int(spec["max_failed_checks"])
    rule = (f"participants who failed more than {limit} of the attention checks are excluded; "
            f"{CHECK_RULES[task]}")

    failed: dict[str, int] = {}
    answered: set[str] = set()
    for r in responses:
        answered.add(r.participant_id)
        failed.setdefault(r.participant_id, 0)
        if r.kind in _CHECKS:
            t = trials[r.trial_id]
            if not check_passed(task, r.kind, r.answer, t.get("expected")):
                failed[r.participant_id] += 1
    excluded = tuple(sorted(p for p, n in failed.items() if n > limit))
    keep = sorted(p for p in answered if p not in set(excluded))
    main = sorted(t for t, rec in trials.items() if rec["kind"] == "main")
    col = {t: j for j, t in enumerate(main)}
    row = {p: i for i, p in enumerate(keep)}
    R = np.full((len(keep), len(main)), np.nan)
    for r in responses:
        if r.participant_id in row and r.trial_id in col:
            R[row[r.participant_id], col[r.trial_id]] = r.answer
    # Human judgement per trial: choice -> share choosing candidate 0; else the answer itself
    # (rating 1..7; same/different 1 = same).
    H = (R == 0).astype(float) if task == "choice" else R.copy()
    H[np.isnan(R)] = np.nan

    per_trial = []
    for j, t in enumerate(main):
        v = H[:, j][np.isfinite(H[:, j])]
        n = len(v)
        mean = float(v.mean()) if n else math.nan
        half = float(stats.t.ppf(0.975, n - 1) * v.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
        rec = trials[t]
        per_trial.append({"trial": t, "stratum": rec.get("stratum", ""), "n": n, "mean": mean,
                          "ci_low": mean - half, "ci_high": mean + half})

    alpha, level = math.nan, ("ordinal" if task == "rating" else "nominal")
    if len(keep) >= 2 and np.isfinite(R).sum(axis=0).max(initial=0) >= 2:
        try:
            alpha = float(krippendorff.alpha(reliability_data=R, level_of_measurement=level,
                                             value_domain=[1, 2, 3, 4, 5, 6, 7]
                                             if task == "rating" else [0, 1]))
        except ValueError:
            alpha = math.nan

    # Metric values per main trial (rating/same: the pair; choice: candidate 0 minus 1).
    values: dict[tuple[str, str], np.ndarray] = {}
    for key in _metrics.METRIC_KEYS:
        for variant in VARIANTS:
            vals = []
            for t in main:
                ps = [pairs[p] for p in trials[t]["pairs"]]
                if task == "choice":
                    vals.append(_oriented(ps[0], key, variant) - _oriented(ps[1], key, variant))
                else:
                    vals.append(_oriented(ps[0], key, variant))
            values[(key, variant)] = np.array(vals, dtype=float)

    def stat(Hs: np.ndarray, Rs: np.ndarray, m: np.ndarray) -> float:
        if task == "choice":
            return _agree_rate(m, Rs)
        with np.errstate(all="ignore"):
            human = np.nanmean(Hs, axis=0) if Hs.shape[0] else np.full(Hs.shape[1], np.nan)
        return _tau(m, human)

    statistic = "agreement_rate" if task == "choice" else "kendall_tau"
    rng = np.random.default_rng(seed)
    boots = {k: [] for k in values}
    if len(keep) and len(main) and n_bootstrap > 0:
        for _ in range(n_bootstrap):
            pi = rng.integers(len(keep), size=len(keep))
            pj = rng.integers(len(main), size=len(main))
            Hs, Rs = H[pi][:, pj], R[pi][:, pj]
            for k, m in values.items():
                boots[k].append(stat(Hs, Rs, m[pj]))
    agreements = []
    for (key, variant), m in values.items():
        value = stat(H, R, m) if len(keep) else math.nan
        b = np.array(boots[(key, variant)], dtype=float)
        b = b[np.isfinite(b)]
        lo, hi = (float(np.percentile(b, 2.5)), float(np.percentile(b, 97.5))) if len(b) else \
            (math.nan, math.nan)
        agreements.append(Agreement(key, _metrics.METRICS[key].name, variant, statistic, value,
                                    lo, hi, int(np.isfinite(m).sum())))
    raw = [a for a in agreements if a.variant == "raw" and math.isfinite(a.value)]
    best = max(raw, key=lambda a: a.value).metric if raw else ""
    finished = sum(1 for p in parts.values() if p.finished_at is not None)
    return Analysis(study_id, task, rule, len(answered), finished, excluded, failed,
                    tuple(per_trial), alpha, level, tuple(agreements), best,
                    study["chance_note"], n_bootstrap)


def _f(v) -> str:
    return "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.4g}"


def format_report(a: Analysis) -> str:
    """The analysis as plain text (the CLI prints it)."""
    what = ("agreement rate of the metric's choice with people's (chance: 0.5)"
            if a.task == "choice" else "Kendall τ-b between the metric and the mean human "
            "judgement across main trials (no association: 0)")
    lines = [f"study {a.study_id} ({a.task}): {a.n_participants} participant(s) with responses, "
             f"{a.n_finished} finished, {len(a.excluded)} excluded",
             f"exclusion rule: {a.exclusion_rule}",
             f"Krippendorff's α ({a.alpha_level}): {_f(a.alpha)} (1 = perfect agreement, "
             "0 = chance)",
             f"statistic: {what}; 95% bootstrap intervals over participants and trials "
             f"({a.n_bootstrap} replicates); distances negated so higher = more similar",
             a.chance_note, "",
             f"{'metric':28s} {'variant':11s} {'value':>8s} {'95% interval':>20s}"]
    for g in sorted(a.agreements, key=lambda g: (g.variant, -(g.value if math.isfinite(g.value)
                                                             else -9))):
        lines.append(f"{g.name:28s} {g.variant:11s} {_f(g.value):>8s} "
                     f"{'[' + _f(g.ci_low) + ', ' + _f(g.ci_high) + ']':>20s}")
    lines += ["", f"best-agreeing metric (raw): {a.best or 'none (no responses yet)'}"]
    return "\n".join(lines)


def _write(path: Path, header: list[str], rows) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            w.writerow(["" if v is None else v for v in r])
    return path


def export(store: StudyStore, study_id: str, out: str | os.PathLike, *,
           n_bootstrap: int = 1000) -> list[Path]:
    """Tidy CSVs in ``out``: responses, participants, trials, metrics, per_trial, agreement."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    trials, pairs = store.trials(study_id), store.pairs(study_id)
    parts = store.participants(study_id)
    a = analyse(store, study_id, n_bootstrap=n_bootstrap)
    excl = set(a.excluded)
    panel = {p.participant_id: p.panel for p in parts}
    written = [_write(out / "responses.csv",
                      ["study", "participant", "trial", "position", "kind", "answer", "side",
                       "rt_ms", "created_at", "PROLIFIC_PID", "STUDY_ID", "SESSION_ID",
                       "excluded"],
                      ([r.study_id, r.participant_id, r.trial_id, r.position, r.kind, r.answer,
                        r.side, f"{r.rt_ms:.1f}", f"{r.created_at:.3f}",
                        panel.get(r.participant_id, {}).get("PROLIFIC_PID"),
                        panel.get(r.participant_id, {}).get("STUDY_ID"),
                        panel.get(r.participant_id, {}).get("SESSION_ID"),
                        int(r.participant_id in excl)] for r in store.responses(study_id)))]
    written.append(_write(out / "participants.csv",
                          ["study", "participant", "started_at", "finished_at", "failed_checks",
                           "excluded", "completion_code", "PROLIFIC_PID", "STUDY_ID",
                           "SESSION_ID"],
                          ([study_id, p.participant_id, f"{p.started_at:.3f}",
                            None if p.finished_at is None else f"{p.finished_at:.3f}",
                            a.failed_checks.get(p.participant_id, 0),
                            int(p.participant_id in excl), p.completion_code,
                            p.panel.get("PROLIFIC_PID"), p.panel.get("STUDY_ID"),
                            p.panel.get("SESSION_ID")] for p in parts)))
    written.append(_write(out / "trials.csv",
                          ["study", "trial", "kind", "stratum", "pairs", "expected", "stimuli"],
                          ([study_id, t, rec["kind"], rec.get("stratum", ""),
                            " ".join(map(str, rec["pairs"])), rec.get("expected"),
                            " ".join(f"{k}={v}" for k, v in sorted(rec["stimuli"].items()))]
                           for t, rec in sorted(trials.items()))))
    rows = []
    for t, rec in sorted(trials.items()):
        for role, pid in enumerate(rec["pairs"]):
            p = pairs[pid]
            for key, m in p["metrics"].items():
                rows.append([study_id, t, pid, role, p["kind"], p["image"], p["image_b"],
                             p["model"], p["method"], p["attack"], p["epsilon"], key,
                             m["score"], m["chance"], m["normalised"]])
    written.append(_write(out / "metrics.csv",
                          ["study", "trial", "pair", "candidate", "pair_kind", "image",
                           "image_b", "model", "method", "attack", "epsilon", "metric", "score",
                           "chance", "normalised"], rows))
    written.append(_write(out / "per_trial.csv",
                          ["study", "trial", "stratum", "n", "mean", "ci_low", "ci_high"],
                          ([study_id, d["trial"], d["stratum"], d["n"], _f(d["mean"]),
                            _f(d["ci_low"]), _f(d["ci_high"])] for d in a.per_trial)))
    written.append(_write(out / "agreement.csv",
                          ["study", "metric", "variant", "statistic", "value", "ci_low",
                           "ci_high", "n_trials", "n_participants", "n_excluded"],
                          ([study_id, g.metric, g.variant, g.statistic, _f(g.value),
                            _f(g.ci_low), _f(g.ci_high), g.n_trials,
                            a.n_participants - len(a.excluded), len(a.excluded)]
                           for g in a.agreements)))
    return written
