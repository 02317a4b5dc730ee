"""The paper's four claims, tested on batch-evaluation rows at each dataset's reference slice.

Each claim function returns a :class:`Claim`: the paper's statement, the rule used here to call
it (with its thresholds), a verdict, a summary with the numbers, a table and the details that
go against it. :func:`claims` gives all four in the paper's order:

1. :func:`random_noise_vs_attack`: under top-k intersection, Spearman and Kendall random sign
   noise looks almost as damaging as a real attack; the LENS metrics separate the two.
2. :func:`lens_above_topk`: LENS scores are markedly higher than top-k intersection.
3. :func:`diverse_above_plain`: diverse top-k makes the scores higher still.
4. :func:`pgd_above_natural`: PGD-trained models have more robust attributions than naturally
   trained ones on small datasets.

Every verdict comes from a rule on a statistic with its 95 % bootstrap interval (images
resampled, paired where two series share images): *supported* when the interval lies above the
rule's threshold, *not supported* when it lies at or below it, *inconclusive* when it contains
it (claim 1 combines two such tests: *partly supported* when one holds and the other fails). A
claim's verdict is the common verdict of its comparisons, *mixed* when they differ;
:func:`verdict_table` lists them. When the rows hold the unrelated-image baseline, every
statistic is computed on chance-normalised scores (:func:`summary.chance_normalised`), else on
raw scores (said in the claim's ``basis``). Misclassified images that were not attacked are
left out; rows where no x' was found count with their scores at x' = x.

The metrics are defined in ``docs/metrics.md``; intervals and pairing are described in
:mod:`explorer.evaluation.summary`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pandas as pd

from .. import data
from .schema import metric_column
from .summary import (at_eps, bootstrap_mean, bootstrap_statistic, chance_normalised,
                      fmt_interval, fmt_number, judged, metric_name, paired_difference,
                      reference)

__all__ = [
    "RANDOM_ATTACK",
    "RANDOM_BASELINES",
    "RANDOM_NEAR",
    "LENS_SEPARATION",
    "LENS_MARGIN",
    "DIVERSE_MARGIN",
    "PGD_MARGIN",
    "VERDICTS",
    "Claim",
    "verdict_of",
    "overall_verdict",
    "verdict_table",
    "random_noise_vs_attack",
    "lens_above_topk",
    "diverse_above_plain",
    "pgd_above_natural",
    "NORMALISED_BASIS",
    "RAW_BASIS",
    "claims",
]

REAL_ATTACKS_FIRST = ("topk", "mass_center", "lens_topk")
RANDOM_ATTACK = "random_sign"
# Random baselines: never judged as a real attack (the random walk is the authors' baseline).
RANDOM_BASELINES = (RANDOM_ATTACK, "random_walk")

# Verdict thresholds of the claims, stated in the report.
RANDOM_NEAR = 0.6       # random noise does >= 60 % of the attack's drop: "almost as damaging"
LENS_SEPARATION = 0.15  # LENS share at least 0.15 lower: "separates"
LENS_MARGIN = 0.10      # LENS − top-k >= 0.10 (10 points of the k pixels): "markedly higher"
DIVERSE_MARGIN = 0.0    # diverse − plain: the interval above 0
PGD_MARGIN = 0.0        # PGD − natural: the interval above 0


VERDICTS = ("supported", "partly supported", "inconclusive", "not supported")
_AGGREGATE = (" The claim's verdict is the common verdict of its comparisons (\"mixed\" when "
              "they differ).")


@dataclass
class Claim:
    """One claim of the paper and what the rows say about it. ``verdicts``: the verdict of
    each comparison (the ``verdict`` column of ``table``); ``basis``: the scores judged."""

    number: int
    title: str
    paper: str
    rule: str
    verdict: str                      # one of VERDICTS, "mixed" or "not tested"
    summary: str                      # plain sentences with the numbers
    table: pd.DataFrame = None
    details: list[str] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)
    basis: str = ""


def verdict_of(lo: float, hi: float, threshold: float) -> str:
    """The rule on a statistic's interval ``[lo, hi]``: "supported" when ``lo > threshold``,
    "not supported" when ``hi <= threshold``, else (or NaN) "inconclusive"."""
    if math.isnan(lo) or math.isnan(hi):
        return "inconclusive"
    if lo > threshold:
        return "supported"
    if hi <= threshold:
        return "not supported"
    return "inconclusive"


def overall_verdict(verdicts: Iterable[str]) -> str:
    """The common verdict of the comparisons, "mixed" when they differ, "not tested" when
    there are none."""
    v = set(verdicts)
    return v.pop() if len(v) == 1 else "mixed" if v else "not tested"


def verdict_table(cs: Iterable["Claim"]) -> pd.DataFrame:
    """The summary of the claims, generated from their verdicts: one row per claim with its
    verdict, the count of each comparison verdict and the scores judged."""
    rows = []
    for c in cs:
        counts = {v: c.verdicts.count(v) for v in VERDICTS}
        rows.append({"claim": c.number, "title": c.title, "verdict": c.verdict,
                     "comparisons": len(c.verdicts),
                     **{v: counts[v] for v in VERDICTS}, "scores judged": c.basis})
    return pd.DataFrame(rows)


def _real_attacks(attacks: Iterable[str]) -> list[str]:
    attacks = list(attacks)
    first = [a for a in REAL_ATTACKS_FIRST if a in attacks]
    return first + [a for a in attacks if a not in first and a not in RANDOM_BASELINES]


def _series(g: pd.DataFrame, col: str) -> pd.Series:
    return g.set_index("image")[col]


def _settings(df: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(dataset, model, method) triples in order of appearance."""
    return list(dict.fromkeys(zip(df["dataset"], df["model"], df["method"])))


def _at_reference(df: pd.DataFrame, d: str, model: str, method: str):
    ref = reference(df, d)
    sel = df[(df["dataset"] == d) & (df["model"] == model) & (df["method"] == method)]
    return ref, at_eps(sel, ref.epsilon)


def _claim1_stats(means: np.ndarray, n_top: int) -> tuple[np.ndarray, np.ndarray]:
    """From column means ``(..., 2m)`` (random's m metrics, then the attack's): the mean share of
    random's drop in the attack's over the first ``n_top`` metrics (A), and A minus the mean
    share over the others (B)."""
    m = means.shape[-1] // 2
    drop_r, drop_a = 1 - means[..., :m], 1 - means[..., m:]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(drop_a > 1e-12, drop_r / np.where(drop_a > 1e-12, drop_a, 1), np.nan)
    top = np.nanmean(share[..., :n_top], axis=-1)
    return top, top - np.nanmean(share[..., n_top:], axis=-1)


def random_noise_vs_attack(df: pd.DataFrame, basis: str = "raw scores") -> Claim:
    """Claim 1: random sign noise is almost as damaging as a real attack under top-k
    intersection, Spearman and Kendall, and the LENS metrics separate the two."""
    fam_top = ("topk_intersection", "spearman", "kendall")
    fam_lens = ("lens_recall", "lens_recall_div")
    keys = fam_top + fam_lens
    rows, details, verdicts = [], [], []
    for d, model, method in _settings(df):
        ref, g0 = _at_reference(df, d, model, method)
        if RANDOM_ATTACK not in set(g0["attack"]):
            continue
        rnd = g0[g0["attack"] == RANDOM_ATTACK]
        for att in _real_attacks(set(g0["attack"])):
            ga = g0[g0["attack"] == att]
            cols = [metric_column(key, ref.k, ref.w) for key in keys]
            paired = rnd.set_index("image")[cols].join(ga.set_index("image")[cols], how="inner",
                                                      lsuffix="_r", rsuffix="_a")
            x = paired.to_numpy(float)
            row = {"dataset": d, "model": model, "method": method, "attack": att,
                   "ε": ref.epsilon, "k": ref.k, "w": ref.w, "n": len(paired)}
            means = np.nanmean(x, axis=0) if len(x) else np.full(2 * len(keys), np.nan)
            for j, key in enumerate(keys):
                mr, ma = means[j], means[len(keys) + j]
                drop_r, drop_a = 1 - mr, 1 - ma
                row[f"{metric_name(key)}: random / attack"] = f"{mr:.3f} / {ma:.3f}"
                row[f"{metric_name(key)}: share"] = (drop_r / drop_a if drop_a > 1e-12
                                                     else math.nan)
            a_val, a_lo, a_hi, _ = bootstrap_statistic(x, lambda m: _claim1_stats(m, 3)[0])
            b_val, b_lo, b_hi, _ = bootstrap_statistic(x, lambda m: _claim1_stats(m, 3)[1])
            near, sep = verdict_of(a_lo, a_hi, RANDOM_NEAR), verdict_of(b_lo, b_hi,
                                                                       LENS_SEPARATION)
            both = {near, sep}
            verdict = (near if len(both) == 1 else
                       "partly supported" if both == {"supported", "not supported"}
                       else "inconclusive")
            row["share top-k family"], row["share LENS family"] = a_val, a_val - b_val
            row["A = share top-k family [95 %]"] = fmt_interval(a_val, a_lo, a_hi)
            row["B = A − share LENS family [95 %]"] = fmt_interval(b_val, b_lo, b_hi)
            row["verdict"] = verdict
            rows.append(row)
            verdicts.append(verdict)
            weaker = [metric_name(key) for j, key in enumerate(keys)
                      if row[f"{metric_name(key)}: share"] > 1]
            details.append(
                f"{d} / {model} / {method}, {att} vs random sign (ε = {ref.epsilon:.4g}, "
                f"k = {ref.k}, w = {ref.w}, {len(paired)} images): A = "
                f"{fmt_interval(a_val, a_lo, a_hi)} (\"almost as damaging\": {near}), B = "
                f"{fmt_interval(b_val, b_lo, b_hi)} (\"separates\": {sep}): {verdict}."
                + (f" The attack is weaker than random noise under {', '.join(weaker)} "
                   "(share > 1)." if weaker else ""))
    overall = overall_verdict(verdicts)
    summary = (f"{verdicts.count('supported')} of {len(verdicts)} (setting, attack) pairs "
               f"support the claim, {verdicts.count('partly supported')} partly, "
               f"{verdicts.count('inconclusive')} are inconclusive."
               if verdicts else "No results with both random_sign and a real attack.")
    return Claim(
        1, "Random sign noise vs a real attack",
        "Under top-k intersection, Spearman and Kendall, random sign noise looks almost as "
        "damaging as a real attack; LENS metrics separate the two.",
        f"On {basis}: the *drop* of a similarity metric is 1 − mean; the *share* is random "
        f"noise's drop divided by the attack's drop on the same images (1 = random noise is as "
        f"damaging as the attack). A = the mean share over top-k intersection, Spearman ρ and "
        f"Kendall τ; B = A minus the mean share over w-LENS-recall@k and w-LENS-recall@k-div. "
        f"\"Almost as damaging\" holds when A's 95 % bootstrap interval lies above "
        f"{RANDOM_NEAR:.2f} and fails when it lies at or below; \"separates\" the same for B "
        f"and {LENS_SEPARATION:.2f}. Supported when both hold, not supported when both fail, "
        f"partly supported when one holds and the other fails, else inconclusive."
        + _AGGREGATE,
        overall, summary, pd.DataFrame(rows), details, verdicts, basis)


def _paired_claim(df, number, title, paper, rule, pairs, threshold, basis,
                  ws_all=True) -> Claim:
    """Claims 2 and 3: mean paired difference (hi − lo metric) per setting, attack and w."""
    rows, details, verdicts = [], [], []
    for d, model, method in _settings(df):
        ref, g0 = _at_reference(df, d, model, method)
        ws = [w for w in ref.w_values if w >= 1] if ws_all else [ref.w]
        for att in list(dict.fromkeys(g0["attack"])):
            ga = g0[g0["attack"] == att]
            for w in ws:
                row = {"dataset": d, "model": model, "method": method, "attack": att,
                       "ε": ref.epsilon, "k": ref.k, "w": w}
                judged_here = []
                for hi_key, lo_key in pairs:
                    a = ga[metric_column(hi_key, ref.k, w)].to_numpy(float)
                    b = ga[metric_column(lo_key, ref.k, w)].to_numpy(float)
                    mean, lo, hi, n = bootstrap_mean(a - b)
                    name = f"{metric_name(hi_key)} − {metric_name(lo_key)}"
                    row[name] = fmt_interval(mean, lo, hi)
                    if w == ref.w:
                        v = verdict_of(lo, hi, threshold)
                        verdicts.append(v)
                        judged_here.append(v)
                        if v != "supported":
                            details.append(f"{d} / {model} / {method} / {att}, w = {w}: {name} "
                                           f"= {fmt_interval(mean, lo, hi)}: {v}; does not "
                                           "meet the rule.")
                row["verdict"] = overall_verdict(judged_here) if judged_here else "(context)"
                rows.append(row)
    overall = overall_verdict(verdicts)
    summary = (f"At the reference w, {verdicts.count('supported')} of {len(verdicts)} "
               f"(setting, attack, metric pair) comparisons meet the rule, "
               f"{verdicts.count('not supported')} fail it, {verdicts.count('inconclusive')} "
               "are inconclusive." if verdicts else "No results.")
    return Claim(number, title, paper, f"On {basis}: " + rule + _AGGREGATE, overall, summary,
                 pd.DataFrame(rows), details, verdicts, basis)


def lens_above_topk(df: pd.DataFrame, basis: str = "raw scores") -> Claim:
    """Claim 2: LENS scores are markedly higher than top-k intersection for the same pair."""
    return _paired_claim(
        df, 2, "LENS vs top-k intersection",
        "LENS scores are markedly higher than top-k intersection for the same pair (locality "
        "forgives small shifts).",
        f"per image, w-LENS-recall@k − top-k intersection and w-LENS-prec@k − top-k "
        f"intersection, for every setting and attack (random sign included) at the reference "
        f"w. A comparison is supported when the 95 % bootstrap interval of the mean "
        f"difference lies above {LENS_MARGIN:.2f} (\"markedly higher\"), not supported when it "
        f"lies at or below {LENS_MARGIN:.2f}, else inconclusive. Other w are shown for context.",
        (("lens_recall", "topk_intersection"), ("lens_precision", "topk_intersection")),
        LENS_MARGIN, basis)


def diverse_above_plain(df: pd.DataFrame, basis: str = "raw scores") -> Claim:
    """Claim 3: diverse top-k selection makes the robustness scores higher still. The summary
    notes where the diverse set cannot reach k pixels (small maps, large w)."""
    claim = _paired_claim(
        df, 3, "Diverse top-k vs plain top-k",
        "Diverse top-k selection makes the robustness scores higher still.",
        "per image, w-LENS-recall@k-div − w-LENS-recall@k, w-LENS-prec@k-div − w-LENS-prec@k "
        "and top-k-div intersection − top-k intersection at the reference w. A comparison is "
        "supported when the 95 % bootstrap interval of the mean difference lies above 0, not "
        "supported when it lies at or below 0, else inconclusive.",
        (("lens_recall_div", "lens_recall"), ("lens_precision_div", "lens_precision"),
         ("topk_div_intersection", "topk_intersection")),
        DIVERSE_MARGIN, basis)
    caps = []
    for d in dict.fromkeys(df["dataset"]):
        info = data.DATASETS.get(d)
        if info is None:
            continue
        size = tuple(info.size)
        ref = reference(df, d)
        for w in ref.w_values:
            cap = math.ceil(size[0] / (w + 1)) * math.ceil(size[1] / (w + 1))
            if w >= 1 and cap < ref.k:
                caps.append(f"{d} at w = {w}: at most {cap} pixels, so the diverse scores are at "
                            f"most {cap / ref.k:.2f}")
    if caps:
        claim.summary += (" Note: D_k holds at most ⌈H/(w+1)⌉·⌈W/(w+1)⌉ pixels (one per "
                          "(w+1)×(w+1) block) and the denominators stay k (docs/metrics.md), so "
                          "for " + "; ".join(caps) + ".")
    return claim


def pgd_above_natural(df: pd.DataFrame, basis: str = "raw scores") -> Claim:
    """Claim 4: PGD-trained models have more robust attributions than naturally trained ones
    (on small datasets; the ImageNet half is tested only when there are ImageNet rows)."""
    keys = ("topk_intersection", "lens_recall", "lens_recall_div", "spearman")
    rows, details, verdicts = [], [], []
    per_dataset: dict[str, list[str]] = {}
    for d in dict.fromkeys(df["dataset"]):
        ref = reference(df, d)
        sub = at_eps(df[df["dataset"] == d], ref.epsilon)
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
                    row[f"{metric_name(key)}: natural"] = fmt_number(float(np.nanmean(nat[col])))
                    row[f"{metric_name(key)}: PGD"] = fmt_number(float(np.nanmean(pgd[col])))
                    row[f"{metric_name(key)}: PGD − natural"] = fmt_interval(mean, lo, hi)
                    if att not in RANDOM_BASELINES:
                        v = verdict_of(lo, hi, PGD_MARGIN)
                        per_dataset.setdefault(d, []).append(v)
                        verdicts.append(v)
                        if v != "supported":
                            details.append(f"{d} / {method} / {att}: {metric_name(key)} PGD − "
                                           f"natural = {fmt_interval(mean, lo, hi)}: {v}; PGD "
                                           "is not better here.")
                rows.append(row)
    by_dataset = {d: overall_verdict(v) for d, v in per_dataset.items()}
    if not by_dataset:
        overall, summary = "not tested", "No dataset has both a natural and a PGD model."
    else:
        overall = overall_verdict(verdicts)
        summary = "; ".join(f"{d}: {v} ({per_dataset[d].count('supported')} of "
                            f"{len(per_dataset[d])} comparisons under real attacks favour PGD)"
                            for d, v in by_dataset.items())
        summary += (". The ImageNet half of the claim (the advantage fades) is not tested: no "
                    "ImageNet rows." if "imagenet" not in by_dataset else ".")
    return Claim(
        4, "PGD-trained vs naturally trained models",
        "PGD-trained models have more robust attributions than naturally trained ones on small "
        "datasets (MNIST, Fashion-MNIST, GTSRB, Flowers); the advantage fades on ImageNet.",
        f"On {basis} (each model against its own chance level where normalised): per dataset, "
        "method and real attack, the mean over the same images of the PGD model's score minus "
        "the natural model's score, for top-k intersection, w-LENS-recall@k, "
        "w-LENS-recall@k-div and Spearman ρ. A comparison is supported when the 95 % "
        "bootstrap interval of the mean difference lies above 0, not supported when it lies "
        "at or below 0, else inconclusive." + _AGGREGATE,
        overall, summary, pd.DataFrame(rows), details, verdicts, basis)


NORMALISED_BASIS = ("chance-normalised scores (s − c)/(1 − c), c the mean unrelated-image score "
                    "of the same dataset, model, method, k and w")
RAW_BASIS = "raw scores (chance levels not recorded for every setting in these rows)"


def claims(df: pd.DataFrame) -> list[Claim]:
    """The paper's four claims evaluated on ``df`` (the reference slice of each dataset), in
    order: on the attacked rows, chance-normalised when the rows hold the unrelated-image
    baseline."""
    rows, normalised = chance_normalised(judged(df))
    basis = NORMALISED_BASIS if normalised else RAW_BASIS
    return [random_noise_vs_attack(rows, basis), lens_above_topk(rows, basis),
            diverse_above_plain(rows, basis), pgd_above_natural(rows, basis)]
