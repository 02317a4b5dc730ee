"""The Markdown reproduction report of batch-evaluation results, with its PNG figures.

``python -m explorer report RESULTS... --out DIR`` (see :mod:`explorer.evaluation.cli`) writes
``DIR/report.md`` (or ``--filename``) and its figures under ``DIR/figures/``: the metric
definitions, the runs, each dataset's summary at its reference slice (see
:mod:`explorer.evaluation.summary`) with figures, and the paper's four claims
(:mod:`explorer.evaluation.claims`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from .. import metrics, viz_sweeps
from .claims import claims, verdict_table
from .deviations import deviations
from .plan import Plan
from .schema import extra_column
from .summary import (FIGURE_METRICS, ResultSet, at_eps, chance_normalised, chance_table,
                      curve_table, fmt_interval, fmt_number, has_chance, judged, load_many,
                      metric_name, reference, summary_table)

__all__ = ["NOT_RECORDED", "build_report", "render_report"]

NOT_RECORDED = "not recorded in this run"
SET_KEYS = ("topk_intersection", "lens_recall", "lens_precision", "topk_div_intersection",
            "lens_recall_div", "lens_precision_div")
RANK_KEYS = ("spearman", "kendall", "lens_spearman", "lens_kendall", "center_shift")


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
                cells.append(f"{v:.4g}" if c in ("ε", "epsilon") else fmt_number(v, float_digits))
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _summary_md(tab, keys) -> str:
    if tab.empty:
        return "_(no rows)_\n"
    show = pd.DataFrame({
        "model": tab["model"], "method": tab["method"], "attack": tab["attack"],
        "n": tab["n"], "acc.": tab["accuracy"].map(lambda v: f"{v:.2f}"),
        "label kept": tab["label_kept"].map(lambda v: f"{v:.2f}"),
        "found": tab["found"].map(lambda v: f"{v:.2f}")})
    for key in keys:
        if key in tab:
            show[metric_name(key)] = [fmt_interval(m, lo, hi) for m, lo, hi in
                                zip(tab[key], tab[key + "_lo"], tab[key + "_hi"])]
    return _md_table(show)


def _runs_md(rs: ResultSet) -> str:
    out = []
    for folder, cfg, log in zip(rs.folders, rs.configs, rs.logs):
        plan = Plan.from_json(cfg["resolved"])
        sub = rs.rows[rs.rows["run"] == folder.name]
        ends = [r for r in log if r.get("event") == "end"]
        starts = [r for r in log if r.get("event") == "start"]
        wall = sum(float(r.get("wall_s", 0)) for r in ends)
        unfinished = len(starts) - len(ends)
        compute = float((sub["attack_s"] + sub["metrics_s"]).sum()) if len(sub) else 0.0
        procs = sorted({int(r.get("world_size", 1)) for r in starts}) or [1]
        threads = sorted({int(r.get("threads", 0)) for r in starts if r.get("threads")})
        cmds = list(dict.fromkeys(r.get("command") for r in starts if r.get("command")))
        lines = [f"**{folder.name}**: {len(sub)} rows; datasets {', '.join(plan.datasets)}; "
                 f"models {', '.join(plan.models)}; methods {', '.join(plan.methods)}; "
                 f"attacks {', '.join(plan.attacks)}; {plan.n_images} {plan.source} images "
                 f"from position {plan.image_offset}, batches of {plan.batch_size}; seed "
                 f"{plan.seed}; surrogate β = {', '.join(f'{b:g}' for b in plan.betas)}; "
                 f"{plan.restarts} restart(s); selection measure {metrics.metric_label(plan.measure)}; "
                 + ("every image attacked" if plan.all_images else
                    "only correctly classified images attacked")
                 + ("; Monte-Carlo chance levels recorded" if plan.chance_mc else "") + "."]
        for d, p in plan.per_dataset.items():
            eps = ", ".join(f"{e:.4g}" for e in p.eps)
            ks, ws = ", ".join(map(str, p.k)), ", ".join(map(str, p.w))
            sel = p.select_k or p.attack_k
            lines.append(f"  - {d}: ε ∈ {{{eps}}}, k ∈ {{{ks}}}, w ∈ {{{ws}}}, attack k' = "
                         f"{p.attack_k}, α = {p.step_size:.4g}, P = {p.steps}; the chosen x' "
                         f"picked at k = {sel}.")
        for m, v in plan.method_params.items():
            report, attack = dict(v.report), dict(v.attack)
            if report:
                lines.append(f"  - {m}: reported maps with {report}" +
                             ("" if report == attack else f"; inside the attack loop {attack} "
                                                          "(the chosen x' is re-measured with "
                                                          "the reported ones)"))
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


def _mean(rows: pd.DataFrame, col: str) -> float:
    """Mean of a column over the rows; NaN (shown as n/a) when absent or empty."""
    if col not in rows or not len(rows):
        return float("nan")
    return float(pd.to_numeric(rows[col], errors="coerce").astype(float).mean())


def _bookkeeping_md(df: pd.DataFrame, d: str, ref) -> str:
    """Images attacked, candidates that won, label flips and the zero-valued set counts."""
    sub = at_eps(df[df["dataset"] == d], ref.epsilon)
    if "attacked" not in sub:
        return (f"Attacked images, winning candidates, label-flip shares and zero-valued "
                f"pixels in S_k and D_k: {NOT_RECORDED} (an older results folder; every image "
                "was attacked).\n")
    rows = []
    for (model, method, att), g in sub.groupby(["model", "method", "attack"], sort=False):
        a = g[g["attacked"].astype(bool)]
        row = {"model": model, "method": method, "attack": att, "images": len(g),
               "attacked": len(a), "found": _mean(a, "found"),
               "noise won": _mean(a, "noise_won"), "flip share": _mean(a, "flip_share")}
        for side in ("orig", "adv"):
            for key, label in (("topk_zeros", "zeros in S_k"), ("diverse_zeros", "zeros in D_k"),
                               ("diverse_count", "|D_k|")):
                col = extra_column("count", f"{side}_{key}", ref.k, ref.w)
                who = "x" if side == "orig" else "x'"
                row[f"{label} ({who})"] = _mean(a, col)
        rows.append(row)
    return ("Per (model, method, attack): images, attacked (correctly classified, unless the run "
            "attacked all), *found* share, *noise won* (the chosen x' is a random-sign draw, not "
            "an iterate), *flip share* (mean share of the attack's own iterates that changed the "
            "label), and the mean zero-valued pixels in S_k and D_k and |D_k| (k = "
            f"{ref.k}, w = {ref.w}) of the maps of x and x'; n/a: not recorded in this run.\n\n"
            + _md_table(pd.DataFrame(rows)))


def _chance_md(df: pd.DataFrame, d: str, ref) -> str:
    if not has_chance(df[df["dataset"] == d], "unrel"):
        return f"Chance levels: {NOT_RECORDED}.\n"
    tab = chance_table(df, d, ref)
    show = pd.DataFrame({"model": tab["model"], "method": tab["method"], "n": tab["n"]})
    for key in SET_KEYS + RANK_KEYS:
        if key + "_unrel" in tab:
            perm = tab.get(key + "_perm")
            show[metric_name(key)] = [
                (f"{fmt_number(p)} / " if perm is not None else f"{NOT_RECORDED} / ")
                + f"{fmt_number(u)} ± {fmt_number(sd)}"
                for p, u, sd in zip(perm if perm is not None else [float("nan")] * len(tab),
                                    tab[key + "_unrel"], tab[key + "_unrel_sd"])]
    return ("Chance levels at the reference (k, w): *permutation* (x′'s map shuffled over the "
            "pixels; exact keys unless the run recorded the Monte-Carlo ones, n/a otherwise) / "
            "*unrelated image* mean ± standard deviation over the images (each map of x against "
            "the map of another image of its batch). A score at these levels says nothing about "
            "robustness.\n\n" + _md_table(show))


def render_report(rs: ResultSet, out_dir, filename: str = "report.md",
                  notes: str | Path | None = None, title: str = "Reproduction report",
                  figure_prefix: str = "") -> Path:
    """Write the Markdown report of the rows ``rs`` to ``out_dir/filename`` with PNG figures in
    ``out_dir/figures/``; returns the Markdown path."""
    df = rs.rows
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    all_claims = claims(df)
    md: list[str] = [f"# {title}\n"]
    md.append("Generated by `python -m explorer report` from the results folders below "
              "(re-run it to refresh every number and figure).\n")
    md.append("## Summary of the verdicts\n")
    md.append("Generated from the claims' rules below (section *The paper's claims*): each "
              "comparison's verdict comes from the 95 % bootstrap interval of its statistic; "
              "a claim is *mixed* when its comparisons differ.\n")
    md.append(_md_table(verdict_table(all_claims)))
    md.append("## Deviations from the authors\n")
    plans = [Plan.from_json(cfg["resolved"]) for cfg in rs.configs]
    md.extend(f"- {line}" for line in deviations(plans))
    md.append("")
    md.append("Metric definitions, as in `explorer.metrics.METRICS` (a = map of x, b = map of "
              "x'):\n")
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
    md.append("Mean over images with its 95 % bootstrap interval, over the attacked images "
              "(misclassified images that were not attacked are left out). *acc.*: share of "
              "images the model classifies correctly; *label kept*: the chosen x' keeps the "
              "predicted label (always, by construction); *found*: a label-preserving x' that "
              "lowers the attack's selection measure was found. **Where it was not, x' = x and "
              "every similarity is 1: the first table counts those rows as 1.0, the second "
              "leaves them out.** *worst of attacks*: per image, the worst score over every "
              "attack run.\n")
    normed, normalised = chance_normalised(judged(df))
    for d in rs.datasets:
        ref = reference(df, d)
        md.append(f"### {d}: ε = {ref.epsilon:.4g}, k = {ref.k}, w = {ref.w}\n")
        md.append(_bookkeeping_md(df, d, ref))
        md.append("\n")
        md.append(_chance_md(df, d, ref))
        md.append("\n")
        tab = summary_table(df, d, ref=ref, worst=True)
        md.append("All attacked rows (no x' found counts as 1.0):\n")
        md.append(_summary_md(tab, SET_KEYS))
        md.append("\n")
        md.append(_summary_md(tab, RANK_KEYS))
        md.append("\n")
        if (tab["found"] < 1).any():
            found = summary_table(df, d, ref=ref, found_only=True, worst=True)
            md.append("Rows with x' found only:\n")
            md.append(_summary_md(found, SET_KEYS))
            md.append("\n")
            md.append(_summary_md(found, RANK_KEYS))
            md.append("\n")
        else:
            md.append("An x' was found for every attacked row: the table over rows with x' "
                      "found is the same.\n")
        if normalised:
            ntab = summary_table(normed, d, ref=ref, worst=True)
            md.append("Chance-normalised, (s − c)/(1 − c) with c the mean unrelated-image score "
                      "(1 = perfect, 0 = as similar as two unrelated images, < 0 below; the "
                      "centre shift 1 − s/c), all attacked rows:\n")
            md.append(_summary_md(ntab, SET_KEYS + RANK_KEYS))
            md.append("\n")
        else:
            md.append(f"Chance-normalised scores: {NOT_RECORDED}.\n")
        tab = tab[tab["attack"] != "worst of attacks"]
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
                show = show.rename(columns={k: metric_name(k) for k in FIGURE_METRICS})
                md.append(_md_table(show))
                md.append("\n")

    md.append("## The paper's claims\n")
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


def build_report(folders: Sequence, out_dir, filename: str = "report.md",
                 notes: str | Path | None = None, title: str = "Reproduction report",
                 figure_prefix: str = "") -> Path:
    """Load the results ``folders`` and write their report (:func:`render_report`)."""
    return render_report(load_many(folders), out_dir, filename, notes, title, figure_prefix)


def _metric_defs():
    return pd.DataFrame([{"key": m.key, "metric": m.name, "formula": m.formula.replace("|", "\\|")}
                         for m in metrics.METRICS.values()])
