"""The columns of a batch-evaluation row: names, types and the wide metric columns.

One **row** per (image, dataset, model, method, attack, ε) holds the predictions before and after
the attack, whether the label held, ``‖x' − x‖∞``, timings, and every metric of
:data:`explorer.metrics.METRICS` for every requested ``(k, w)`` in **wide** columns named
``{metric}@k{k}_w{w}`` (e.g. ``topk_intersection@k100_w1``; see :func:`metric_column`). Metrics
that do not depend on ``k`` or ``w`` (Spearman, Kendall, centre shift; ``w`` for top-k
intersection) are repeated in each column of their family, so every (k, w) slice is complete on
its own. The metrics themselves are defined in ``docs/metrics.md``.
"""

from __future__ import annotations

import re
from typing import Sequence

import pandas as pd

from .. import metrics

__all__ = [
    "BASE_COLUMNS",
    "BOOKKEEPING_COLUMNS",
    "TIMING_COLUMNS",
    "COLUMNS_VERSION",
    "COUNT_KEYS",
    "CHANCE_KINDS",
    "extra_column",
    "parse_extra_column",
    "extra_columns",
    "KEY_COLUMNS",
    "metric_column",
    "parse_metric_column",
    "metric_columns",
    "columns_for",
    "column_type",
    "format_cell",
    "typed_frame",
]

# Column -> type. The order is the order of the CSV files; metric columns follow, then timings.
BASE_COLUMNS: dict[str, type] = {
    "dataset": str, "model": str, "method": str, "attack": str, "epsilon": float,
    "image": int,            # index in the test set (source "test") or in the bundled samples
    "batch": int,            # batch number: images [batch·B, (batch+1)·B) of the selection
    "seed": int,             # seed given to the attack (random attacks) for this batch
    "label": int,            # true label (-1: unknown)
    "pred_orig": int, "conf_orig": float,   # prediction on x and its softmax probability
    "pred_adv": int, "conf_adv": float,     # prediction on the chosen x'
    "correct": bool,         # pred_orig == label
    "label_kept": bool, "found": bool,      # label held; a better label-preserving x' was found
    "linf": float,           # ‖x' − x‖∞ in [0, 1] pixel units
    "best_step": int, "steps_run": int,     # step of the chosen iterate (0: x itself)
    "sel_start": float, "sel_best": float,  # attack's selection measure at x and at x'
    "degenerate_orig": bool, "degenerate_adv": bool,  # map sums to 0 (no ranking)
}
# Version 2: per-row bookkeeping, after the base columns.
BOOKKEEPING_COLUMNS: dict[str, type] = {
    "attacked": bool,        # the attack ran (False: misclassified, skipped: x' = x, no scores)
    "restart_won": int,      # restart (or noise draw) of the chosen candidate; -1: x itself
    "noise_won": bool,       # the chosen candidate is a random-sign noise draw
    "flip_share": float,     # share of the attack's own iterates whose label changed
}
COLUMNS_VERSION = 2
COUNT_KEYS = tuple(f"{side}_{key}" for side in ("orig", "adv")
                   for key in ("topk_zeros", "diverse_zeros", "diverse_count"))
CHANCE_KINDS = ("perm", "unrel", "norm")
TIMING_COLUMNS: dict[str, type] = {
    "attack_s": float,    # attack wall time of the batch / images in the batch
    "metrics_s": float,   # metric wall time of the batch / images in the batch
}
# The columns that identify a row.
KEY_COLUMNS = ("dataset", "model", "method", "attack", "epsilon", "image")
_METRIC_COLUMN = re.compile(r"^(?P<key>[a-z_]+)@k(?P<k>\d+)_w(?P<w>\d+)$")
_EXTRA_COLUMN = re.compile(r"^(?P<kind>count|perm|unrel|norm):(?P<key>[a-z_]+)@k(?P<k>\d+)"
                           r"_w(?P<w>\d+)$")


def metric_column(key: str, k: int, w: int) -> str:
    """Wide column name of metric ``key`` at ``(k, w)``: ``f"{key}@k{k}_w{w}"``."""
    return f"{key}@k{int(k)}_w{int(w)}"


def parse_metric_column(name: str) -> tuple[str, int, int] | None:
    """``(key, k, w)`` of a metric column, or None when ``name`` is not one."""
    m = _METRIC_COLUMN.match(name)
    if m is None or m.group("key") not in metrics.METRICS:
        return None
    return m.group("key"), int(m.group("k")), int(m.group("w"))


def metric_columns(ks: Sequence[int], ws: Sequence[int]) -> list[str]:
    """Every metric column for the (k, w) grid, k-major, then w, then METRIC_KEYS order."""
    return [metric_column(key, k, w) for k in ks for w in ws for key in metrics.METRIC_KEYS]


def extra_column(kind: str, key: str, k: int, w: int) -> str:
    """Name of a version-2 extra column: ``f"{kind}:{key}@k{k}_w{w}"`` (kind count, perm,
    unrel or norm)."""
    return f"{kind}:{metric_column(key, k, w)}"


def parse_extra_column(name: str) -> tuple[str, str, int, int] | None:
    """``(kind, key, k, w)`` of an extra column, or None when ``name`` is not one."""
    m = _EXTRA_COLUMN.match(name)
    if m is None:
        return None
    kind, key = m.group("kind"), m.group("key")
    if (kind == "count") != (key in COUNT_KEYS) or (kind != "count"
                                                     and key not in metrics.METRICS):
        return None
    return kind, key, int(m.group("k")), int(m.group("w"))


def extra_columns(ks: Sequence[int], ws: Sequence[int]) -> list[str]:
    """Every version-2 extra column for the (k, w) grid: counts, then perm, unrel, norm."""
    out = [extra_column("count", key, k, w) for k in ks for w in ws for key in COUNT_KEYS]
    for kind in CHANCE_KINDS:
        out += [extra_column(kind, key, k, w) for k in ks for w in ws
                for key in metrics.METRIC_KEYS]
    return out


def columns_for(ks: Sequence[int], ws: Sequence[int], version: int = COLUMNS_VERSION
                ) -> list[str]:
    """The columns of a row of a dataset evaluated at the (k, w) grid, in file order
    (``version`` 1: the columns of older results folders)."""
    if version == 1:
        return list(BASE_COLUMNS) + metric_columns(ks, ws) + list(TIMING_COLUMNS)
    return (list(BASE_COLUMNS) + list(BOOKKEEPING_COLUMNS) + metric_columns(ks, ws)
            + extra_columns(ks, ws) + list(TIMING_COLUMNS))


def column_type(name: str) -> type | None:
    """The type of column ``name`` (metric and extra columns are floats), or None when it is
    not one."""
    for table in (BASE_COLUMNS, BOOKKEEPING_COLUMNS, TIMING_COLUMNS):
        if name in table:
            return table[name]
    if parse_metric_column(name) is not None or parse_extra_column(name) is not None:
        return float
    return None


def format_cell(value, kind: type) -> str:
    """The CSV text of ``value`` in a column of type ``kind`` (floats round-trip exactly)."""
    if kind is float:
        return repr(float(value))
    if kind is bool:
        return "True" if bool(value) else "False"
    if kind is int:
        return str(int(value))
    return str(value)


def typed_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with each known column cast to its type (bool, int64, float64), in place."""
    for c in df.columns:
        t = column_type(c)
        if t is bool:
            df[c] = df[c].astype(bool)
        elif t is int:
            df[c] = df[c].astype("int64")
        elif t is float:
            df[c] = pd.to_numeric(df[c]).astype("float64")
    return df
