"""Summaries of batch-evaluation results and the Markdown reproduction report (issue 5).

Computation only (tables, bootstrap intervals, the four claims of SPEC §6); the figures are drawn
by :mod:`explorer.viz_sweeps`. ``python -m explorer report RESULTS... --out DIR`` writes
``DIR/report.md`` (or ``--filename``) and its figures under ``DIR/figures/``.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from . import metrics
from .evaluate import (KEY_COLUMNS, ResultsError, load_config, load_results, metric_column,
                       parse_metric_column, run_log)

__all__ = [
    "ResultSet",
    "load_many",
    "bootstrap_mean",
    "reference",
    "summary_table",
    "curve_table",
    "paired_difference",
    "Claim",
    "claims",
    "build_report",
]

BOOTSTRAP = 2000
REAL_ATTACKS_FIRST = ("topk", "mass_center", "lens_topk", "random_walk")
RANDOM_ATTACK = "random_sign"
SUMMARY_METRICS = ("topk_intersection", "lens_recall", "lens_precision", "topk_div_intersection",
                   "lens_recall_div", "lens_precision_div", "spearman", "kendall",
                   "lens_spearman", "lens_kendall", "center_shift")
FIGURE_METRICS = ("topk_intersection", "lens_recall", "lens_recall_div")
GROUP = ("dataset", "model", "method", "attack")

# Verdict thresholds of the claims, stated in the report.
CLAIM1_NEAR = 0.6      # random noise does >= 60 % of the attack's drop: "almost as damaging"
CLAIM1_GAP = 0.15      # LENS share at least 0.15 lower: "separates"
CLAIM2_MARKED = 0.10   # LENS − top-k >= 0.10 (10 points of the k pixels): "markedly higher"
CLAIM3_MIN = 0.0       # diverse − plain > 0 with the interval above 0
CLAIM4_MIN = 0.0       # PGD − natural > 0 with the interval above 0


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

@dataclass
class ResultSet:
    """Rows of one or more results folders, with what is needed to describe the runs."""

    rows: "pandas.DataFrame"  # noqa: F821
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
    import pandas as pd

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


def _dataset_defaults(dataset: str):
    try:
        from . import data
        return data.DATASETS[dataset].defaults
    except (ImportError, KeyError, AttributeError):
        return None


def _grid(df, dataset: str) -> tuple[list[int], list[int]]:
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
    dataset: str
    epsilon: float
    k: int
    w: int
    eps_values: tuple[float, ...]
    k_values: tuple[int, ...]
    w_values: tuple[int, ...]


def reference(df, dataset: str) -> Reference:
    """The paper slice (ε, k, w) of ``dataset`` as far as the rows hold it (see module doc)."""
    sub = df[df["dataset"] == dataset]
    eps_values = tuple(sorted(set(float(e) for e in sub["epsilon"])))
    ks, ws = _grid(df, dataset)
    d = _dataset_defaults(dataset)
    eps = eps_values[-1]
    k = ks[0]
    if d is not None:
        close = [e for e in eps_values if math.isclose(e, d.epsilon, rel_tol=1e-6)]
        eps = close[0] if close else eps
        k = d.eval_k if d.eval_k in ks else k
    w = 1 if 1 in ws else next((x for x in ws if x >= 1), ws[0])
    return Reference(dataset, eps, k, w, eps_values, tuple(ks), tuple(ws))


def _at_eps(df, eps: float):
    return df[np.isclose(df["epsilon"].to_numpy(dtype=float), eps, rtol=1e-9, atol=0)]


def summary_table(df, dataset: str, metric_keys: Sequence[str] = SUMMARY_METRICS,
                  ref: Reference | None = None, eps: float | None = None, k: int | None = None,
                  w: int | None = None):
    """One row per (model, method, attack) of ``dataset`` at (ε, k, w) (default: the reference):
    n, accuracy, label-kept and found shares, and mean / low / high of each metric."""
    import pandas as pd

    ref = ref or reference(df, dataset)
    eps = ref.epsilon if eps is None else eps
    k = ref.k if k is None else k
    w = ref.w if w is None else w
    sub = _at_eps(df[df["dataset"] == dataset], eps)
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


def curve_table(df, dataset: str, along: str, metric_keys: Sequence[str] = FIGURE_METRICS,
                ref: Reference | None = None, common_images: bool = True):
    """Mean and interval of each metric as a function of ``along`` ("epsilon" or "w"), one row
    per (model, method, attack, value). Along ε, only images present at every ε of their group
    are used (``common_images``), so each curve is over one set of images."""
    import pandas as pd

    if along not in ("epsilon", "w"):
        raise ValueError(f"along must be 'epsilon' or 'w'; got {along!r}")
    ref = ref or reference(df, dataset)
    sub = df[df["dataset"] == dataset]
    if along == "w":
        sub = _at_eps(sub, ref.epsilon)
    out = []
    for (model, method, att), g in sub.groupby(["model", "method", "attack"], sort=False):
        if along == "epsilon" and common_images:
            per_eps = g.groupby("epsilon")["image"].apply(set)
            keep = set.intersection(*per_eps.tolist()) if len(per_eps) else set()
            g = g[g["image"].isin(keep)]
        values = sorted(set(g["epsilon"])) if along == "epsilon" else list(ref.w_values)
        for v in values:
            gv = _at_eps(g, v) if along == "epsilon" else g
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
    import pandas as pd

    if isinstance(a, pd.Series) and isinstance(b, pd.Series):
        a, b = a.align(b, join="inner")
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    return bootstrap_mean(d)


# --------------------------------------------------------------------------------------------
# The four claims of SPEC §6
# --------------------------------------------------------------------------------------------

@dataclass
class Claim:
    number: int
    title: str
    paper: str
    rule: str
    verdict: str                      # "supported" | "partly supported" | "not supported" | ...
    summary: str                      # plain sentences with the numbers
    table: "pandas.DataFrame" = None  # noqa: F821
    details: list[str] = field(default_factory=list)


def _fmt(x, digits=3):
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _ci(mean, lo, hi, digits=3):
    if isinstance(mean, float) and math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _name(key):
    return metrics.METRICS[key].name


def _real_attacks(attacks: Iterable[str]) -> list[str]:
    attacks = list(attacks)
    first = [a for a in REAL_ATTACKS_FIRST if a in attacks]
    return first + [a for a in attacks if a not in first and a != RANDOM_ATTACK]


def _series(g, col):
    return g.set_index("image")[col]


def _settings(df):
    """(dataset, model, method) triples in order of appearance."""
    return list(dict.fromkeys(zip(df["dataset"], df["model"], df["method"])))


def _claim1(df) -> Claim:
    import pandas as pd

    fam_top = ("topk_intersection", "spearman", "kendall")
    fam_lens = ("lens_recall", "lens_recall_div")
    rows, details = [], []
    n_ok = n_part = n_all = 0
    for d, model, method in _settings(df):
        ref = reference(df, d)
        g0 = _at_eps(df[(df["dataset"] == d) & (df["model"] == model) & (df["method"] == method)],
                     ref.epsilon)
        if RANDOM_ATTACK not in set(g0["attack"]):
            continue
        rnd = g0[g0["attack"] == RANDOM_ATTACK]
        for att in _real_attacks(set(g0["attack"])):
            ga = g0[g0["attack"] == att]
            shares = {}
            row = {"dataset": d, "model": model, "method": method, "attack": att,
                   "ε": ref.epsilon, "k": ref.k, "w": ref.w}
            for key in fam_top + fam_lens:
                col = metric_column(key, ref.k, ref.w)
                mr, ma = float(np.nanmean(rnd[col])), float(np.nanmean(ga[col]))
                drop_r, drop_a = 1 - mr, 1 - ma
                share = drop_r / drop_a if drop_a > 1e-12 else math.nan
                shares[key] = share
                row[f"{_name(key)}: random / attack"] = f"{mr:.3f} / {ma:.3f}"
                row[f"{_name(key)}: share"] = share
            top_share = float(np.nanmean([shares[k] for k in fam_top]))
            lens_share = float(np.nanmean([shares[k] for k in fam_lens]))
            near = top_share >= CLAIM1_NEAR
            separates = lens_share <= top_share - CLAIM1_GAP
            verdict = ("supported" if near and separates else
                       "partly supported" if near or separates else "not supported")
            row["share top-k family"], row["share LENS family"] = top_share, lens_share
            row["verdict"] = verdict
            rows.append(row)
            n_all += 1
            n_ok += verdict == "supported"
            n_part += verdict == "partly supported"
            details.append(
                f"{d} / {model} / {method}, {att} vs random sign (ε = {ref.epsilon:.4g}, "
                f"k = {ref.k}, w = {ref.w}): random noise causes {top_share:.0%} of the attack's "
                f"drop under top-k intersection, Spearman and Kendall (mean share) but "
                f"{lens_share:.0%} under w-LENS-recall@k and its diverse variant: {verdict}.")
    verdicts = set(r["verdict"] for r in rows)
    overall = (verdicts.pop() if len(verdicts) == 1 else "mixed" if verdicts else "not tested")
    summary = (f"{n_ok} of {n_all} (setting, attack) pairs support the claim fully, {n_part} "
               "partly." if n_all else "No results with both random_sign and a real attack.")
    return Claim(
        1, "Random sign noise vs a real attack",
        "Under top-k intersection, Spearman and Kendall, random sign noise looks almost as "
        "damaging as a real attack; LENS metrics separate the two.",
        f"The *drop* of a similarity metric is 1 − mean; the *share* is random noise's drop "
        f"divided by the attack's drop (1 = random noise is as damaging as the attack). "
        f"Supported when the mean share over top-k intersection, Spearman ρ and Kendall τ is at "
        f"least {CLAIM1_NEAR:.0%} (\"almost as damaging\") and the mean share over "
        f"w-LENS-recall@k and w-LENS-recall@k-div is at least {CLAIM1_GAP:.2f} lower "
        f"(\"separates\"); partly supported when one of the two holds.",
        overall, summary, pd.DataFrame(rows), details)


def _paired_claim(df, number, title, paper, rule, pairs, threshold, ws_all=True) -> Claim:
    """Claims 2 and 3: mean paired difference (hi − lo metric) per setting, attack and w."""
    import pandas as pd

    rows, details = [], []
    n_ok = n_all = 0
    for d, model, method in _settings(df):
        ref = reference(df, d)
        g0 = _at_eps(df[(df["dataset"] == d) & (df["model"] == model) & (df["method"] == method)],
                     ref.epsilon)
        ws = [w for w in ref.w_values if w >= 1] if ws_all else [ref.w]
        for att in list(dict.fromkeys(g0["attack"])):
            ga = g0[g0["attack"] == att]
            for w in ws:
                row = {"dataset": d, "model": model, "method": method, "attack": att,
                       "ε": ref.epsilon, "k": ref.k, "w": w}
                for hi_key, lo_key in pairs:
                    a = ga[metric_column(hi_key, ref.k, w)].to_numpy(float)
                    b = ga[metric_column(lo_key, ref.k, w)].to_numpy(float)
                    mean, lo, hi, n = bootstrap_mean(a - b)
                    row[f"{_name(hi_key)} − {_name(lo_key)}"] = _ci(mean, lo, hi)
                    if w == ref.w:
                        n_all += 1
                        ok = mean >= threshold and lo > 0
                        n_ok += ok
                        if not ok:
                            details.append(
                                f"{d} / {model} / {method} / {att}, w = {w}: {_name(hi_key)} − "
                                f"{_name(lo_key)} = {_ci(mean, lo, hi)}: does not meet the rule.")
                rows.append(row)
    overall = ("supported" if n_all and n_ok == n_all else
               "not supported" if n_all and n_ok == 0 else "mixed" if n_all else "not tested")
    summary = (f"At the reference w, {n_ok} of {n_all} (setting, attack, metric pair) "
               "comparisons meet the rule." if n_all else "No results.")
    return Claim(number, title, paper, rule, overall, summary, pd.DataFrame(rows), details)


def _claim4(df) -> Claim:
    import pandas as pd

    keys = ("topk_intersection", "lens_recall", "lens_recall_div", "spearman")
    rows, details = [], []
    per_dataset: dict[str, list[bool]] = {}
    for d in dict.fromkeys(df["dataset"]):
        ref = reference(df, d)
        sub = _at_eps(df[df["dataset"] == d], ref.epsilon)
        models = set(sub["model"])
        if not {"natural", "pgd"} <= models:
            continue
        for method in dict.fromkeys(sub["method"]):
            sm = sub[sub["method"] == method]
            for att in dict.fromkeys(sm["attack"]):
                nat = sm[(sm["model"] == "natural") & (sm["attack"] == att)]
                pgd = sm[(sm["model"] == "pgd") & (sm["attack"] == att)]
                row = {"dataset": d, "method": method, "attack": att, "ε": ref.epsilon,
                       "k": ref.k, "w": ref.w}
                for key in keys:
                    col = metric_column(key, ref.k, ref.w)
                    mean, lo, hi, n = paired_difference(_series(pgd, col), _series(nat, col))
                    row[f"{_name(key)}: natural"] = _fmt(float(np.nanmean(nat[col])))
                    row[f"{_name(key)}: PGD"] = _fmt(float(np.nanmean(pgd[col])))
                    row[f"{_name(key)}: PGD − natural"] = _ci(mean, lo, hi)
                    if att != RANDOM_ATTACK:
                        ok = mean > CLAIM4_MIN and lo > 0
                        per_dataset.setdefault(d, []).append(ok)
                        if not ok:
                            details.append(f"{d} / {method} / {att}: {_name(key)} PGD − natural "
                                           f"= {_ci(mean, lo, hi)}: PGD is not better here.")
                rows.append(row)
    verdicts = {d: ("supported" if all(v) else "not supported" if not any(v) else "mixed")
                for d, v in per_dataset.items()}
    if not verdicts:
        overall, summary = "not tested", "No dataset has both a natural and a PGD model."
    else:
        overall = ("supported" if all(v == "supported" for v in verdicts.values()) else
                   "not supported" if all(v == "not supported" for v in verdicts.values())
                   else "mixed")
        summary = "; ".join(f"{d}: {v} ({sum(per_dataset[d])} of {len(per_dataset[d])} "
                            "comparisons under real attacks favour PGD)"
                            for d, v in verdicts.items())
        summary += (". The ImageNet half of the claim (the advantage fades) is not tested: no "
                    "ImageNet rows." if "imagenet" not in verdicts else ".")
    return Claim(
        4, "PGD-trained vs naturally trained models",
        "PGD-trained models have more robust attributions than naturally trained ones on small "
        "datasets (MNIST, Fashion-MNIST, GTSRB, Flowers); the advantage fades on ImageNet.",
        "Per dataset, method and real attack, the mean over the same images of the PGD model's "
        "score minus the natural model's score, for top-k intersection, w-LENS-recall@k, "
        "w-LENS-recall@k-div and Spearman ρ. Supported on a dataset when every such difference "
        "is positive with its 95 % interval above 0.",
        overall, summary, pd.DataFrame(rows), details)


def claims(df) -> list[Claim]:
    """The four claims of SPEC §6 evaluated on ``df`` (the reference slice of each dataset)."""
    c2 = _paired_claim(
        df, 2, "LENS vs top-k intersection",
        "LENS scores are markedly higher than top-k intersection for the same pair (locality "
        "forgives small shifts).",
        f"Per image, w-LENS-recall@k − top-k intersection and w-LENS-prec@k − top-k "
        f"intersection. Supported when, at the reference w, the mean difference is at least "
        f"{CLAIM2_MARKED:.2f} with its 95 % interval above 0 for every setting and attack "
        "(random sign included). Other w are shown for context.",
        (("lens_recall", "topk_intersection"), ("lens_precision", "topk_intersection")),
        CLAIM2_MARKED)
    c3 = _paired_claim(
        df, 3, "Diverse top-k vs plain top-k",
        "Diverse top-k selection makes the robustness scores higher still.",
        "Per image, w-LENS-recall@k-div − w-LENS-recall@k, w-LENS-prec@k-div − w-LENS-prec@k "
        "and "
        "top-k-div intersection − top-k intersection. Supported when, at the reference w, every "
        "mean difference is positive with its 95 % interval above 0.",
        (("lens_recall_div", "lens_recall"), ("lens_precision_div", "lens_precision"),
         ("topk_div_intersection", "topk_intersection")),
        1e-12)
    caps = []
    for d in dict.fromkeys(df["dataset"]):
        size = _dataset_size(d)
        if size is None:
            continue
        ref = reference(df, d)
        for w in ref.w_values:
            cap = math.ceil(size[0] / (w + 1)) * math.ceil(size[1] / (w + 1))
            if w >= 1 and cap < ref.k:
                caps.append(f"{d} at w = {w}: at most {cap} pixels, so the diverse scores are at "
                            f"most {cap / ref.k:.2f}")
    if caps:
        c3.summary += (" Note: D_k holds at most ⌈H/(w+1)⌉·⌈W/(w+1)⌉ pixels (one per "
                       "(w+1)×(w+1) block) and the denominators stay k (SPEC §2), so for "
                       + "; ".join(caps) + ".")
    return [_claim1(df), c2, c3, _claim4(df)]


def _dataset_size(dataset: str):
    try:
        from . import data
        return tuple(data.DATASETS[dataset].size)
    except (ImportError, KeyError, AttributeError):
        return None


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------

def _md_table(df, float_digits: int = 3) -> str:
    if df is None or df.empty:
        return "_(no rows)_\n"
    cols = list(df.columns)
    lines = ["| " + " | ".join(str(c) for c in cols) + " |",
             "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            if isinstance(v, float):
                cells.append(_fmt(v, float_digits) if not (c in ("ε", "epsilon")) else f"{v:.4g}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _summary_md(tab, keys) -> str:
    import pandas as pd

    if tab.empty:
        return "_(no rows)_\n"
    show = pd.DataFrame({
        "model": tab["model"], "method": tab["method"], "attack": tab["attack"],
        "n": tab["n"], "acc.": tab["accuracy"].map(lambda v: f"{v:.2f}"),
        "label kept": tab["label_kept"].map(lambda v: f"{v:.2f}"),
        "found": tab["found"].map(lambda v: f"{v:.2f}")})
    for key in keys:
        if key in tab:
            show[_name(key)] = [_ci(m, lo, hi) for m, lo, hi in
                                zip(tab[key], tab[key + "_lo"], tab[key + "_hi"])]
    return _md_table(show)


def _runs_md(rs: ResultSet) -> str:
    out = []
    for folder, cfg, log in zip(rs.folders, rs.configs, rs.logs):
        res = cfg["resolved"]
        sub = rs.rows[rs.rows["run"] == folder.name]
        ends = [r for r in log if r.get("event") == "end"]
        starts = [r for r in log if r.get("event") == "start"]
        wall = sum(float(r.get("wall_s", 0)) for r in ends)
        unfinished = len(starts) - len(ends)
        compute = float((sub["attack_s"] + sub["metrics_s"]).sum()) if len(sub) else 0.0
        procs = sorted({int(r.get("world_size", 1)) for r in starts}) or [1]
        threads = sorted({int(r.get("threads", 0)) for r in starts if r.get("threads")})
        cmds = list(dict.fromkeys(r.get("command") for r in starts if r.get("command")))
        mp = {m: v for m, v in res["method_params"].items()}
        lines = [f"**{folder.name}**: {len(sub)} rows; datasets {', '.join(res['datasets'])}; "
                 f"models {', '.join(res['models'])}; methods {', '.join(res['methods'])}; "
                 f"attacks {', '.join(res['attacks'])}; {res['n_images']} {res['source']} images "
                 f"from position {res['image_offset']}, batches of {res['batch_size']}; seed "
                 f"{res['seed']}; surrogate β = {res['beta']:g}; selection measure "
                 f"{res['measure']}."]
        for d, p in res["per_dataset"].items():
            eps = ", ".join(f"{e:.4g}" for e in p["eps"])
            ks, ws = ", ".join(map(str, p["k"])), ", ".join(map(str, p["w"]))
            lines.append(f"  - {d}: ε ∈ {{{eps}}}, k ∈ {{{ks}}}, w ∈ {{{ws}}}, attack k' = "
                         f"{p['attack_k']}, α = {p['step_size']:.4g}, P = {p['steps']}.")
        for m, v in mp.items():
            if v["report"]:
                same = v["report"] == v["attack"]
                lines.append(f"  - {m}: reported maps with {v['report']}" +
                             ("" if same else f"; inside the attack loop {v['attack']} (the "
                                              "chosen x' is re-measured with the reported ones)"))
        lines.append(f"  - wall time {wall / 60:.1f} min over {len(ends)} completed "
                     f"invocation(s)" + (f" (+{unfinished} interrupted, not counted)"
                                         if unfinished > 0 else "") +
                     f"; {', '.join(map(str, procs))} process(es)" +
                     (f", {', '.join(map(str, threads))} thread(s) each" if threads else "") +
                     f"; summed per-row compute {compute / 60:.1f} min.")
        for c in cmds:
            lines.append(f"  - command: `{c}`")
        out.append("\n".join(lines))
    return "\n".join(out) + "\n"


def build_report(folders: Sequence, out_dir, filename: str = "report.md",
                 notes: str | Path | None = None, title: str = "Reproduction report",
                 figure_prefix: str = "") -> Path:
    """Write the Markdown report of ``folders`` to ``out_dir/filename`` with PNG figures in
    ``out_dir/figures/``; returns the Markdown path."""
    from . import viz_sweeps

    rs = load_many(folders)
    df = rs.rows
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    md: list[str] = [f"# {title}\n"]
    md.append("Generated by `python -m explorer report` from the results folders below "
              "(re-run it to refresh every number and figure). Metric definitions, as in "
              "`explorer.metrics.METRICS` (a = map of x, b = map of x'):\n")
    md.append(_md_table(_metric_defs()))
    if notes:
        text = Path(notes).read_text(encoding="utf-8")
        md.append(text.rstrip() + "\n")
    md.append("## Runs\n")
    md.append(_runs_md(rs))
    if rs.duplicates:
        md.append(f"{rs.duplicates} rows that repeat an earlier folder's (dataset, model, method, "
                  "attack, ε, image) are counted once.\n")

    md.append("## Results at the paper's setting\n")
    md.append("Mean over images with its 95 % bootstrap interval. *acc.*: share of images the "
              "model classifies correctly; *label kept*: the chosen x' keeps the predicted label "
              "(always, by construction); *found*: a label-preserving x' that lowers the attack's "
              "selection measure was found (else x' = x and every similarity is 1).\n")
    all_claims = claims(df)
    for d in rs.datasets:
        ref = reference(df, d)
        md.append(f"### {d}: ε = {ref.epsilon:.4g}, k = {ref.k}, w = {ref.w}\n")
        tab = summary_table(df, d, ref=ref)
        md.append(_summary_md(tab, ("topk_intersection", "lens_recall", "lens_precision",
                                    "topk_div_intersection", "lens_recall_div",
                                    "lens_precision_div")))
        md.append("\n")
        md.append(_summary_md(tab, ("spearman", "kendall", "lens_spearman", "lens_kendall",
                                    "center_shift")))
        md.append("\n")
        # Figures: metric vs w, natural vs PGD, metric vs ε.
        for (model, method) in dict.fromkeys(zip(tab["model"], tab["method"])):
            curve = curve_table(df, d, "w", ("topk_intersection", "lens_recall",
                                              "lens_precision", "lens_recall_div"), ref=ref)
            curve = curve[(curve["model"] == model) & (curve["method"] == method)]
            if len(ref.w_values) > 1 and not curve.empty:
                name = f"{figure_prefix}w_{d}_{model}_{method}.png"
                fig = viz_sweeps.mpl_curves(curve, "w", ("topk_intersection", "lens_recall",
                                                         "lens_precision", "lens_recall_div"),
                                            title=f"{d} / {model} / {method}: metric vs w "
                                                  f"(ε = {ref.epsilon:.4g}, k = {ref.k})")
                viz_sweeps.save(fig, fig_dir / name)
                md.append(f"![metric vs w, {d} {model} {method}](figures/{name})\n")
        if {"natural", "pgd"} <= set(tab["model"]):
            for method in dict.fromkeys(tab["method"]):
                name = f"{figure_prefix}models_{d}_{method}.png"
                fig = viz_sweeps.mpl_models(tab[tab["method"] == method],
                                            ("topk_intersection", "lens_recall",
                                             "lens_recall_div", "spearman"),
                                            title=f"{d} / {method}: natural vs PGD "
                                                  f"(ε = {ref.epsilon:.4g}, k = {ref.k}, "
                                                  f"w = {ref.w})")
                viz_sweeps.save(fig, fig_dir / name)
                md.append(f"![natural vs PGD, {d} {method}](figures/{name})\n")
        if len(ref.eps_values) > 1:
            curve = curve_table(df, d, "epsilon", FIGURE_METRICS, ref=ref)
            md.append(f"#### {d}: metric vs ε (paper Figure 2 style)\n")
            md.append("Only images present at every ε of a curve are used.\n")
            for (model, method) in dict.fromkeys(zip(curve["model"], curve["method"])):
                c = curve[(curve["model"] == model) & (curve["method"] == method)]
                if c["epsilon"].nunique() < 2:
                    continue
                name = f"{figure_prefix}eps_{d}_{model}_{method}.png"
                fig = viz_sweeps.mpl_curves(c, "epsilon", FIGURE_METRICS,
                                            title=f"{d} / {model} / {method}: metric vs ε "
                                                  f"(k = {ref.k}, w = {ref.w})")
                viz_sweeps.save(fig, fig_dir / name)
                md.append(f"![metric vs eps, {d} {model} {method}](figures/{name})\n")
                show = c[["attack", "epsilon", "n_images"] + list(FIGURE_METRICS)].copy()
                show = show.rename(columns={k: _name(k) for k in FIGURE_METRICS})
                md.append(_md_table(show))
                md.append("\n")

    md.append("## The paper's claims (SPEC §6)\n")
    for c in all_claims:
        md.append(f"### Claim {c.number}: {c.title}\n")
        md.append(f"*Paper:* {c.paper}\n")
        md.append(f"*Rule used here:* {c.rule}\n")
        md.append(f"**Verdict: {c.verdict}.** {c.summary}\n")
        md.append(_md_table(c.table))
        if c.details:
            md.append("")
            shown = c.details[:40]
            md.extend(f"- {line}" for line in shown)
            if len(c.details) > len(shown):
                md.append(f"- … and {len(c.details) - len(shown)} more.")
            md.append("")
        md.append("\n")
    out = out_dir / filename
    out.write_text("\n".join(md), encoding="utf-8")
    return out


def _metric_defs():
    import pandas as pd

    return pd.DataFrame([{"key": m.key, "metric": m.name, "formula": m.formula.replace("|", "\\|")}
                         for m in metrics.METRICS.values()])


# --------------------------------------------------------------------------------------------
# Command line: `python -m explorer report RESULTS... --out DIR`
# --------------------------------------------------------------------------------------------

def add_arguments(p) -> None:
    p.add_argument("results", nargs="+", help="results folder(s) of `python -m explorer evaluate`")
    p.add_argument("--out", required=True, help="output folder (Markdown + figures/)")
    p.add_argument("--filename", default="report.md", help="Markdown file name (default "
                                                           "report.md)")
    p.add_argument("--notes", default=None,
                   help="a Markdown file inserted after the definitions (discussion)")
    p.add_argument("--title", default="Reproduction report")
    p.add_argument("--figure-prefix", default="", help="prefix of the figure file names")
    p.add_argument("--copy-rows-to", default=None, metavar="DIR",
                   help="also copy each results folder to DIR/NAME as config.json, runs.jsonl "
                        "and results.csv.gz (compact, readable by the Sweeps page)")


def main(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    path = build_report(args.results, args.out, args.filename, args.notes, args.title,
                        args.figure_prefix)
    print(f"wrote {path}")
    if args.copy_rows_to:
        from .evaluate import export_compact

        for folder in args.results:
            dest = export_compact(folder, Path(args.copy_rows_to) / Path(folder).name)
            print(f"copied the rows of {folder} to {dest}")
    return 0
