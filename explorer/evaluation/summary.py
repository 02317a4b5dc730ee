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
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .. import data, metrics
from .folder import ResultsError, load_config, load_results, run_log
from .schema import KEY_COLUMNS, extra_column, metric_column, parse_metric_column

__all__ = [
    "BOOTSTRAP",
    "SUMMARY_METRICS",
    "FIGURE_METRICS",
    "ResultSet",
    "load_many",
    "WORST",
    "bootstrap_mean",
    "bootstrap_statistic",
    "judged",
    "has_chance",
    "chance_normalised",
    "chance_table",
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
WORST = "worst of attacks"  # pseudo-attack: per image, the worst score over every attack run


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
        df = pd.concat([pd.Series(path.name, index=df.index, name="run"), df], axis=1)
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


def bootstrap_statistic(columns, statistic, n_boot: int = BOOTSTRAP, seed: int = 0,
                        level: float = 0.95) -> tuple[float, float, float, int]:
    """``(value, low, high, n)`` of a statistic of the column means of ``columns`` ``(n, m)``
    (one row per image, NaN left out of each column's mean) and its percentile-bootstrap
    interval: the images (rows) are resampled together, so paired columns stay paired.
    ``statistic`` maps means ``(..., m)`` to values ``(...)`` (vectorised)."""
    x = np.asarray(columns, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    x = x[np.isfinite(x).any(axis=1)]
    n = x.shape[0]
    if n == 0:
        return (math.nan, math.nan, math.nan, 0)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns of a resample
        value = float(statistic(np.nanmean(x, axis=0)))
        if n == 1:
            return (value, value, value, n)
        rng = np.random.default_rng(seed)
        stats = np.empty(n_boot)
        chunk = max(1, 2_000_000 // (n * x.shape[1]))
        for s in range(0, n_boot, chunk):
            e = min(n_boot, s + chunk)
            stats[s:e] = statistic(np.nanmean(x[rng.integers(0, n, size=(e - s, n))], axis=1))
    stats = stats[np.isfinite(stats)]
    if stats.size == 0:
        return (value, math.nan, math.nan, n)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return (value, float(lo), float(hi), n)


def judged(df: pd.DataFrame) -> pd.DataFrame:
    """The rows a score is computed on: the attacked ones (older folders attacked every image;
    misclassified images skipped by the run have ``attacked = False`` and no scores)."""
    if "attacked" in df:
        return df[df["attacked"].astype(bool)]
    return df


def has_chance(df: pd.DataFrame, kind: str = "unrel") -> bool:
    """Whether the rows hold chance columns of ``kind`` (``unrel`` or ``perm``) with values."""
    cols = [c for c in df.columns if c.startswith(kind + ":")]
    return bool(cols) and bool(df[cols].notna().any().any())


def chance_normalised(df: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """``(rows, normalised)``: a copy of ``df`` whose metric columns hold chance-normalised
    scores ``(s − c)/(perfect − c)`` (:func:`explorer.chance.normalise`), ``c`` the mean
    unrelated-image score (``unrel:`` columns) of the same dataset, model, method, k and w over
    the images; ``normalised`` False (and ``df`` unchanged) when the rows hold no such
    columns (older results folders), or when some (dataset, model, method) holds scores but no
    unrelated-image level (older folders mixed with newer ones): raw and normalised scores are
    never mixed, and no setting is dropped."""
    if not has_chance(df, "unrel"):
        return df, False
    groups = df.groupby(["dataset", "model", "method"], sort=False).groups
    if not all(has_chance(df.loc[idx], "unrel") for idx in groups.values()):
        return df, False
    out = df.copy()
    for c in out.columns:
        p = parse_metric_column(c)
        u = extra_column("unrel", *p) if p is not None else None
        if p is None or u not in out:
            continue
        info = metrics.METRICS[p[0]]
        perfect = 1.0 if info.higher_is_better else 0.0
        vals = out[c].to_numpy(float).copy()
        for _, idx in groups.items():
            pos = out.index.get_indexer(idx)
            sub = out.iloc[pos]
            # Each image once, from a row that recorded the level (older rows mixed in lack it).
            per_image = sub[u].groupby(sub["image"]).first().to_numpy(float)
            level = float(np.nanmean(per_image)) if np.isfinite(per_image).any() else math.nan
            gap = perfect - level
            vals[pos] = ((vals[pos] - level) / gap if np.isfinite(gap) and gap != 0
                         else math.nan)
        out[c] = vals
    return out, True


def chance_table(df: pd.DataFrame, dataset: str, ref: "Reference",
                 metric_keys: Sequence[str] = SUMMARY_METRICS) -> pd.DataFrame:
    """Per (model, method) of ``dataset`` at the reference (k, w): for each metric the mean
    permutation chance level and the mean and standard deviation of the unrelated-image score
    (each image once). Empty when the rows hold no chance columns."""
    sub = judged(at_eps(df[df["dataset"] == dataset], ref.epsilon))
    out = []
    for (model, method), g in sub.groupby(["model", "method"], sort=False):
        # Each image once, each column from a row that holds it (older rows lack the levels).
        g = g.groupby("image").first()
        row = {"model": model, "method": method, "n": len(g)}
        for key in metric_keys:
            perm = extra_column("perm", key, ref.k, ref.w)
            unrel = extra_column("unrel", key, ref.k, ref.w)
            if perm in g:
                row[key + "_perm"] = float(np.nanmean(g[perm])) if g[perm].notna().any() \
                    else math.nan
            if unrel in g:
                v = g[unrel].to_numpy(float)
                v = v[np.isfinite(v)]
                row[key + "_unrel"] = float(v.mean()) if v.size else math.nan
                row[key + "_unrel_sd"] = float(v.std(ddof=1)) if v.size > 1 else math.nan
        out.append(row)
    return pd.DataFrame(out)


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
    if not ks or sub.empty:
        raise ResultsError(f"the rows hold no scores for {dataset}; choose folders with "
                           "finished rows of that dataset")
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
                  w: int | None = None, found_only: bool = False,
                  worst: bool = False) -> pd.DataFrame:
    """One row per (model, method, attack) of ``dataset`` at (ε, k, w) (default: the reference):
    n, accuracy, label-kept and found shares, and mean / low / high of each metric, over the
    attacked rows (:func:`judged`; ``found_only``: only those where a label-preserving x' better
    than x was found). ``worst`` adds a row :data:`WORST` per (model, method): per image the
    worst score over every attack (lowest similarity, largest centre shift)."""
    ref = ref or reference(df, dataset)
    eps = ref.epsilon if eps is None else eps
    k = ref.k if k is None else k
    w = ref.w if w is None else w
    sub = at_eps(df[df["dataset"] == dataset], eps)
    accuracy = {key: float(g["correct"].mean())
                for key, g in sub.groupby(["model", "method", "attack"], sort=False)}
    sub = judged(sub)
    if found_only:
        sub = sub[sub["found"].astype(bool)]
    if worst and len(sub):
        parts = [sub]
        for (model, method), g in sub.groupby(["model", "method"], sort=False):
            if g["attack"].nunique() < 2:
                continue
            agg = {c: ("max" if parse_metric_column(c)[0] == "center_shift" else "min")
                   for c in g.columns if parse_metric_column(c) is not None}
            agg.update({"found": "max", "correct": "max", "label_kept": "min", "linf": "max"})
            wg = g.groupby("image", sort=False).agg(agg).reset_index()
            wg["dataset"], wg["model"], wg["method"], wg["attack"] = dataset, model, method, WORST
            accuracy[(model, method, WORST)] = float(wg["correct"].mean())
            parts.append(wg)
        sub = pd.concat(parts, ignore_index=True)
    out = []
    for (model, method, att), g in sub.groupby(["model", "method", "attack"], sort=False):
        row = {"dataset": dataset, "model": model, "method": method, "attack": att,
               "epsilon": eps, "k": k, "w": w, "n": len(g),
               "accuracy": accuracy.get((model, method, att), float(g["correct"].mean())),
               "label_kept": float(g["label_kept"].mean()),
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
