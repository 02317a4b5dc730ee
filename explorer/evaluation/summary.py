"""Summaries of batch-evaluation results: bootstrap intervals, the reference slice and tables.

Computation only; the figures are drawn by :mod:`explorer.viz_sweeps`, the claims are in
:mod:`explorer.evaluation.claims` and the Markdown in :mod:`explorer.evaluation.report`.

Reference slice. Each dataset is summarised at its paper setting (``explorer.data`` defaults):
ε = the paper's ε, k = the paper's evaluation k, w = 1, whenever the results hold them (else the
largest ε, the first k, the smallest w ≥ 1 present).

Intervals are 95 % percentile-bootstrap intervals of the mean over images (2000 resamples, fixed
seed). Differences between two settings on the same images (LENS − top-k, PGD − natural) are
paired: the bootstrap resamples images, so the interval is that of the mean per-image difference.
Rows whose value is NaN (an undefined correlation of a degenerate map) are left out of that
metric's mean; ``n`` says how many remain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import data, metrics
from .folder import ResultsError, load_config, load_results, run_log
from .schema import KEY_COLUMNS, metric_column, parse_metric_column

__all__ = [
    "BOOTSTRAP",
    "SUMMARY_METRICS",
    "FIGURE_METRICS",
    "ResultSet",
    "load_many",
    "bootstrap_mean",
    "Reference",
    "reference",
    "at_eps",
    "summary_table",
    "curve_table",
    "paired_difference",
    "fmt_number",
    "fmt_interval",
    "metric_name",
]

BOOTSTRAP = 2000
SUMMARY_METRICS = ("topk_intersection", "lens_recall", "lens_precision", "topk_div_intersection",
                   "lens_recall_div", "lens_precision_div", "spearman", "kendall",
                   "lens_spearman", "lens_kendall", "center_shift")
FIGURE_METRICS = ("topk_intersection", "lens_recall", "lens_recall_div")


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

@dataclass
class ResultSet:
    """Rows of one or more results folders, with what is needed to describe the runs."""

    rows: pd.DataFrame
    folders: list[Path]
    configs: list[dict]
    logs: list[list[dict]]
    duplicates: int = 0  # rows left out because an earlier folder had the same key

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(self.rows["dataset"]))


def load_many(folders: Sequence) -> ResultSet:
    """Load results folders; rows with the same (dataset, model, method, attack, ε, image) as a
    row of an earlier folder are dropped (a deterministic run recomputes equal rows)."""
    if isinstance(folders, (str, Path)):
        folders = [folders]
    if not folders:
        raise ValueError("give at least one results folder")
    frames, configs, logs, paths = [], [], [], []
    for f in folders:
        path = Path(f)
        if not path.is_dir():
            raise ResultsError(f"{path} is not a folder; give the --out folder of "
                               "`python -m explorer evaluate`")
        configs.append(load_config(path))
        df = load_results(path)
        df.insert(0, "run", path.name)
        frames.append(df)
        logs.append(run_log(path))
        paths.append(path)
    rows = pd.concat(frames, ignore_index=True)
    before = len(rows)
    rows = rows.drop_duplicates(subset=list(KEY_COLUMNS), keep="first").reset_index(drop=True)
    if rows.empty:
        raise ResultsError(f"no rows in {', '.join(str(p) for p in paths)} yet")
    return ResultSet(rows, paths, configs, logs, before - len(rows))


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------

def bootstrap_mean(values, n_boot: int = BOOTSTRAP, seed: int = 0,
                   level: float = 0.95) -> tuple[float, float, float, int]:
    """``(mean, low, high, n)``: the mean of the finite values and its percentile-bootstrap
    interval. NaN values are left out; all NaN (or none) gives NaNs and ``n = 0``."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    n = v.size
    if n == 0:
        return (math.nan, math.nan, math.nan, 0)
    mean = float(v.mean())
    if n == 1 or np.all(v == v[0]):
        return (mean, mean, mean, n)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    chunk = max(1, 2_000_000 // n)
    for s in range(0, n_boot, chunk):
        e = min(n_boot, s + chunk)
        means[s:e] = v[rng.integers(0, n, size=(e - s, n))].mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return (mean, float(lo), float(hi), n)


def _grid(df: pd.DataFrame, dataset: str) -> tuple[list[int], list[int]]:
    ks, ws = set(), set()
    sub = df[df["dataset"] == dataset]
    for c in df.columns:
        p = parse_metric_column(c)
        if p is not None and sub[c].notna().any():
            ks.add(p[1])
            ws.add(p[2])
    return sorted(ks), sorted(ws)


@dataclass(frozen=True)
class Reference:
    """The slice (ε, k, w) a dataset is summarised at, and the values the rows hold."""

    dataset: str
    epsilon: float
    k: int
    w: int
    eps_values: tuple[float, ...]
    k_values: tuple[int, ...]
    w_values: tuple[int, ...]


def reference(df: pd.DataFrame, dataset: str) -> Reference:
    """The paper slice (ε, k, w) of ``dataset`` as far as the rows hold it (see module doc)."""
    sub = df[df["dataset"] == dataset]
    eps_values = tuple(sorted(set(float(e) for e in sub["epsilon"])))
    ks, ws = _grid(df, dataset)
    info = data.DATASETS.get(dataset)
    eps = eps_values[-1]
    k = ks[0]
    if info is not None:
        d = info.defaults
        close = [e for e in eps_values if math.isclose(e, d.epsilon, rel_tol=1e-6)]
        eps = close[0] if close else eps
        k = d.eval_k if d.eval_k in ks else k
    w = 1 if 1 in ws else next((x for x in ws if x >= 1), ws[0])
    return Reference(dataset, eps, k, w, eps_values, tuple(ks), tuple(ws))


def at_eps(df: pd.DataFrame, eps: float) -> pd.DataFrame:
    """The rows at budget ``eps`` (equal to 1e-9 relative)."""
    return df[np.isclose(df["epsilon"].to_numpy(dtype=float), eps, rtol=1e-9, atol=0)]


def summary_table(df: pd.DataFrame, dataset: str,
                  metric_keys: Sequence[str] = SUMMARY_METRICS, ref: Reference | None = None,
                  eps: float | None = None, k: int | None = None,
                  w: int | None = None) -> pd.DataFrame:
    """One row per (model, method, attack) of ``dataset`` at (ε, k, w) (default: the reference):
    n, accuracy, label-kept and found shares, and mean / low / high of each metric."""
    ref = ref or reference(df, dataset)
    eps = ref.epsilon if eps is None else eps
    k = ref.k if k is None else k
    w = ref.w if w is None else w
    sub = at_eps(df[df["dataset"] == dataset], eps)
    out = []
    for (model, method, att), g in sub.groupby(["model", "method", "attack"], sort=False):
        row = {"dataset": dataset, "model": model, "method": method, "attack": att,
               "epsilon": eps, "k": k, "w": w, "n": len(g),
               "accuracy": float(g["correct"].mean()), "label_kept": float(g["label_kept"].mean()),
               "found": float(g["found"].mean()), "linf": float(g["linf"].mean())}
        for key in metric_keys:
            col = metric_column(key, k, w)
            if col not in g:
                continue
            mean, lo, hi, n = bootstrap_mean(g[col])
            row[key], row[key + "_lo"], row[key + "_hi"], row[key + "_n"] = mean, lo, hi, n
        out.append(row)
    return pd.DataFrame(out)


def curve_table(df: pd.DataFrame, dataset: str, along: str,
                metric_keys: Sequence[str] = FIGURE_METRICS, ref: Reference | None = None,
                common_images: bool = True) -> pd.DataFrame:
    """Mean and interval of each metric as a function of ``along`` ("epsilon" or "w"), one row
    per (model, method, attack, value). Along ε, only images present at every ε of their group
    are used (``common_images``), so each curve is over one set of images."""
    if along not in ("epsilon", "w"):
        raise ValueError(f"along must be 'epsilon' or 'w'; got {along!r}")
    ref = ref or reference(df, dataset)
    sub = df[df["dataset"] == dataset]
    if along == "w":
        sub = at_eps(sub, ref.epsilon)
    out = []
    for (model, method, att), g in sub.groupby(["model", "method", "attack"], sort=False):
        if along == "epsilon" and common_images:
            per_eps = g.groupby("epsilon")["image"].apply(set)
            keep = set.intersection(*per_eps.tolist()) if len(per_eps) else set()
            g = g[g["image"].isin(keep)]
        values = sorted(set(g["epsilon"])) if along == "epsilon" else list(ref.w_values)
        for v in values:
            gv = at_eps(g, v) if along == "epsilon" else g
            row = {"dataset": dataset, "model": model, "method": method, "attack": att,
                   along: v, "n_images": len(gv)}
            for key in metric_keys:
                col = metric_column(key, ref.k, ref.w if along == "epsilon" else v)
                if col not in gv:
                    continue
                mean, lo, hi, n = bootstrap_mean(gv[col])
                row[key], row[key + "_lo"], row[key + "_hi"] = mean, lo, hi
            out.append(row)
    return pd.DataFrame(out)


def paired_difference(a, b, on: Sequence[str] = ("image",)) -> tuple[float, float, float, int]:
    """Mean of ``a − b`` over the images both series hold (pandas Series indexed by ``on``
    values, or aligned arrays), with its bootstrap interval."""
    if isinstance(a, pd.Series) and isinstance(b, pd.Series):
        a, b = a.align(b, join="inner")
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    return bootstrap_mean(d)


# --------------------------------------------------------------------------------------------
# Formatting numbers for tables
# --------------------------------------------------------------------------------------------

def fmt_number(x, digits: int = 3) -> str:
    """``x`` with ``digits`` decimals; ``"n/a"`` for None or NaN."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def fmt_interval(mean, lo, hi, digits: int = 3) -> str:
    """``"mean [lo, hi]"``; ``"n/a"`` when the mean is NaN."""
    if isinstance(mean, float) and math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def metric_name(key: str) -> str:
    """The display name of metric ``key`` (e.g. ``w-LENS-recall@k``)."""
    return metrics.METRICS[key].name
