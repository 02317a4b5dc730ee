"""The reproduction report: bootstrap intervals, the four claims on hand-built rows
whose verdicts are known, and a report built end to end from a small evaluation run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from explorer import metrics  # noqa: E402
from explorer.evaluation.folder import ResultsError, export_compact, load_results  # noqa: E402
from explorer.evaluation.plan import EvalConfig  # noqa: E402
from explorer.evaluation.runner import run  # noqa: E402
from explorer.evaluation.schema import metric_column  # noqa: E402
from explorer.evaluation import claims, report, summary  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from evaluate_fakes import ToyBackend  # noqa: E402


# --------------------------------------------------------------------------------------------
# Bootstrap
# --------------------------------------------------------------------------------------------

def test_bootstrap_mean_constant_nan_and_width():
    assert summary.bootstrap_mean([0.25] * 10) == (0.25, 0.25, 0.25, 10)
    mean, lo, hi, n = summary.bootstrap_mean([1.0, float("nan"), 3.0])
    assert n == 2 and mean == 2.0 and 1.0 <= lo <= hi <= 3.0
    assert all(np.isnan(v) for v in summary.bootstrap_mean([float("nan")])[:3])
    # 100 values half 0 half 1: standard error 0.05, so the 95 % interval is about ±0.098.
    mean, lo, hi, n = summary.bootstrap_mean([0.0, 1.0] * 50)
    assert mean == 0.5 and n == 100
    assert 0.38 < lo < 0.43 and 0.57 < hi < 0.62
    # Seeded: the same interval every time.
    assert summary.bootstrap_mean([0.0, 1.0] * 50) == (mean, lo, hi, n)


# --------------------------------------------------------------------------------------------
# Claims on hand-built rows
# --------------------------------------------------------------------------------------------

def synthetic_rows(values: dict, n: int = 40, seed: int = 0) -> pd.DataFrame:
    """Rows for MNIST at its paper setting (ε = 0.3, k = 100) with w = 1, 2.

    ``values[(model, attack)][metric]`` is the mean of that metric; each image gets the mean
    plus small zero-mean noise (so intervals are narrow and verdicts are clear-cut).
    """
    rng = np.random.default_rng(seed)
    rows = []
    for (model, att), vals in values.items():
        for i in range(n):
            row = {"dataset": "mnist", "model": model, "method": "saliency", "attack": att,
                   "epsilon": 0.3, "image": i, "correct": True, "label_kept": True,
                   "found": True, "linf": 0.3}
            for w in (1, 2):
                for key in metrics.METRIC_KEYS:
                    base = vals.get(key, 0.5)
                    row[metric_column(key, 100, w)] = base + rng.uniform(-0.01, 0.01)
            rows.append(row)
    return pd.DataFrame(rows)


def paper_like(pgd_bonus: float) -> dict:
    """Random noise nearly as damaging as the attack under top-k/Spearman/Kendall, far less
    under LENS; LENS > top-k by 0.3; diverse > plain by 0.1; PGD better by ``pgd_bonus``."""
    out = {}
    for model, bonus in (("natural", 0.0), ("pgd", pgd_bonus)):
        for att, topk, lens in (("random_sign", 0.35, 0.85), ("topk", 0.30, 0.55),
                                ("mass_center", 0.32, 0.60)):
            vals = {"topk_intersection": topk, "spearman": topk + 0.1, "kendall": topk,
                    "lens_recall": lens, "lens_precision": lens,
                    "topk_div_intersection": topk + 0.1, "lens_recall_div": min(1, lens + 0.1),
                    "lens_precision_div": min(1, lens + 0.1)}
            out[(model, att)] = {k: min(1.0, v + bonus) for k, v in vals.items()}
    return out


def by_number(cs):
    return {c.number: c for c in cs}


def test_claims_supported_on_paper_like_rows():
    cs = by_number(claims.claims(synthetic_rows(paper_like(pgd_bonus=0.05))))
    assert set(cs) == {1, 2, 3, 4}
    assert cs[1].verdict == "supported"
    t1 = cs[1].table
    row = t1[(t1["model"] == "natural") & (t1["attack"] == "topk")].iloc[0]
    # drop under top-k: random 0.65 vs attack 0.70 -> share ~0.93; LENS: 0.15 vs 0.45 -> ~0.33.
    assert row["top-k intersection: share"] == pytest.approx(0.65 / 0.70, abs=0.02)
    assert row["w-LENS-recall@k: share"] == pytest.approx(0.15 / 0.45, abs=0.03)
    assert cs[2].verdict == "supported"
    assert cs[3].verdict == "supported"
    assert cs[4].verdict == "supported"
    assert "ImageNet half of the claim" in cs[4].summary and "not tested" in cs[4].summary


def test_claims_contradicted_when_numbers_say_so():
    vals = paper_like(pgd_bonus=-0.1)  # PGD worse
    for key in list(vals):
        v = vals[key]
        v["lens_recall"] = v["lens_precision"] = v["topk_intersection"]  # LENS = top-k
        v["lens_recall_div"] = v["lens_precision_div"] = v["topk_div_intersection"] = \
            v["topk_intersection"] - 0.05  # diverse lower
    cs = by_number(claims.claims(synthetic_rows(vals)))
    assert cs[1].verdict == "partly supported"  # random looks as damaging; LENS does not separate
    assert all(v == "partly supported" for v in cs[1].table["verdict"])
    assert cs[2].verdict == "not supported"
    assert cs[3].verdict == "not supported"
    assert cs[4].verdict == "not supported"
    assert any("PGD is not better" in d for d in cs[4].details)


def test_reference_uses_paper_setting_and_summary_means():
    df = synthetic_rows(paper_like(0.0))
    ref = summary.reference(df, "mnist")
    assert (ref.epsilon, ref.k, ref.w) == (0.3, 100, 1)
    tab = summary.summary_table(df, "mnist")
    r = tab[(tab["model"] == "natural") & (tab["attack"] == "topk")].iloc[0]
    sub = df[(df["model"] == "natural") & (df["attack"] == "topk")]
    assert r["topk_intersection"] == pytest.approx(sub["topk_intersection@k100_w1"].mean())
    assert r["topk_intersection_lo"] < r["topk_intersection"] < r["topk_intersection_hi"]
    assert r["n"] == 40


# --------------------------------------------------------------------------------------------
# End to end
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def toy_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("res") / "toy"
    cfg = EvalConfig(datasets=("toy",), models=("natural", "pgd"), methods=("saliency",),
                        attacks=("random_sign", "topk", "mass_center"), eps=(0.1, 0.2),
                        k=("paper",), w=(0, 1, 2), n_images=6, batch_size=3,
                     all_images=True)  # toy labels are random
    df = run(cfg, folder, backend=ToyBackend(), device="cpu", progress=False)
    return folder, df


def test_report_builds_with_every_claim_and_figure(toy_results, tmp_path):
    folder, df = toy_results
    notes = tmp_path / "notes.md"
    notes.write_text("## Discussion\n\nHand-written notes.\n")
    path = report.build_report([folder], tmp_path / "out", notes=notes)
    text = path.read_text()
    for n, title in ((1, "Random sign noise vs a real attack"), (2, "LENS vs top-k intersection"),
                     (3, "Diverse top-k vs plain top-k"), (4, "PGD-trained vs naturally")):
        assert f"### Claim {n}: {title}" in text
    assert text.count("**Verdict: ") == 4
    assert "Hand-written notes." in text
    for m in metrics.METRICS.values():
        assert m.name in text
    figs = {p.name for p in (tmp_path / "out" / "figures").glob("*.png")}
    assert {"eps_toy_natural_saliency.png", "eps_toy_pgd_saliency.png",
            "w_toy_natural_saliency.png", "models_toy_saliency.png"} <= figs
    for name in figs:
        assert f"(figures/{name})" in text
    # The top-k row of the summary shows the mean of the rows at ε = 0.2 (largest), k = 5, w = 1.
    sub = df[(df["model"] == "natural") & (df["attack"] == "topk") & (df["epsilon"] == 0.2)]
    mean = sub["topk_intersection@k5_w1"].mean()
    assert f"| natural | saliency | topk | 6 |" in text
    assert f"{mean:.3f} [" in text


def test_report_cli_and_bad_folder(toy_results, tmp_path, capsys):
    from explorer.__main__ import main

    folder, _ = toy_results
    assert main(["report", str(folder), "--out", str(tmp_path / "o"), "--filename", "r.md"]) == 0
    assert (tmp_path / "o" / "r.md").exists()
    assert main(["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err
    assert "is not a folder" in err and "Traceback" not in err


def test_compact_copy_reads_back_the_same_rows(toy_results, tmp_path):
    folder, df = toy_results
    dest = export_compact(folder, tmp_path / "copy" / "toy")
    assert sorted(p.name for p in dest.iterdir()) == ["config.json", "results.csv.gz",
                                                      "runs.jsonl"]
    back = load_results(dest)
    pd.testing.assert_frame_equal(back, load_results(folder))
    # And the report reads it like the original.
    rs = summary.load_many([dest])
    assert len(rs.rows) == len(df)


def test_curve_along_eps_uses_common_images(toy_results):
    _, df = toy_results
    # Drop image 0 at ε = 0.1: the ε curve then uses images 1..5 at both ε.
    cut = df[~((df["epsilon"] == 0.1) & (df["image"] == 0))]
    curve = summary.curve_table(cut, "toy", "epsilon")
    assert set(curve["n_images"]) == {5}
    with pytest.raises(ValueError, match="along must be"):
        summary.curve_table(df, "toy", "k")


# --------------------------------------------------------------------------------------------
# Verdict rules with intervals, on chance-normalised synthetic rows
# --------------------------------------------------------------------------------------------

def test_verdict_rule_and_bootstrap_statistic():
    assert claims.verdict_of(0.11, 0.3, 0.10) == "supported"
    assert claims.verdict_of(0.0, 0.10, 0.10) == "not supported"
    assert claims.verdict_of(0.05, 0.2, 0.10) == "inconclusive"
    assert claims.verdict_of(float("nan"), 1.0, 0.0) == "inconclusive"
    assert claims.overall_verdict(["supported", "supported"]) == "supported"
    assert claims.overall_verdict(["supported", "inconclusive"]) == "mixed"
    assert claims.overall_verdict([]) == "not tested"
    # Constant columns: the statistic and its interval are exact.
    x = np.tile([0.25, 0.5], (30, 1))
    assert summary.bootstrap_statistic(x, lambda m: m[..., 0] / m[..., 1]) == (0.5, 0.5, 0.5, 30)
    # A ratio of means against scipy's percentile bootstrap (paired resampling of images).
    from scipy import stats

    rng = np.random.default_rng(1)
    a, b = rng.normal(1.0, 0.3, 60), rng.normal(2.0, 0.3, 60)
    val, lo, hi, n = summary.bootstrap_statistic(np.c_[a, b], lambda m: m[..., 0] / m[..., 1])
    ref = stats.bootstrap((a, b), lambda u, v, axis=-1: u.mean(axis) / v.mean(axis),
                          paired=True, vectorized=True, method="percentile", n_resamples=4000,
                          random_state=2).confidence_interval
    assert n == 60 and val == pytest.approx(a.mean() / b.mean())
    assert lo == pytest.approx(ref.low, abs=0.01) and hi == pytest.approx(ref.high, abs=0.01)


def chance_rows(n: int = 40) -> pd.DataFrame:
    """MNIST rows at (ε 0.3, k 100, w 1) with the unrelated-image level c = 0.2 for every metric,
    so a raw score s normalises to (s − 0.2)/0.8. Raw scores: top-k family 0.40 (random) / 0.30
    (attacks); w-LENS 0.9 / 0.5 (LENS − top-k: 0.5 normalised); every diverse score 0.08 below
    its plain one (−0.1 normalised); PGD = natural ± 0.08 alternating by image (mean 0)."""
    rows = []
    for model in ("natural", "pgd"):
        for att in ("random_sign", "topk", "mass_center"):
            top, lens = (0.40, 0.90) if att == "random_sign" else (0.30, 0.50)
            for i in range(n):
                bonus = 0.0 if model == "natural" else (0.08 if i % 2 == 0 else -0.08)
                vals = {"topk_intersection": top, "spearman": top, "kendall": top,
                        "lens_recall": lens, "lens_precision": lens, "lens_spearman": top,
                        "lens_kendall": top, "center_shift": 1.0}
                vals["topk_div_intersection"] = top - 0.08
                vals["lens_recall_div"] = vals["lens_precision_div"] = lens - 0.08
                row = {"dataset": "mnist", "model": model, "method": "saliency",
                       "attack": att, "epsilon": 0.3, "image": i, "correct": True,
                       "label_kept": True, "found": True, "linf": 0.3, "attacked": True}
                for key in metrics.METRIC_KEYS:
                    row[metric_column(key, 100, 1)] = vals[key] + bonus
                    row[f"unrel:{metric_column(key, 100, 1)}"] = 0.2 if key != "center_shift" \
                        else 2.0
                rows.append(row)
    return pd.DataFrame(rows)


def test_report_from_synthetic_rows_has_the_rules_verdicts_and_intervals(tmp_path):
    df = chance_rows()
    cs = by_number(claims.claims(df))
    assert all(c.basis == claims.NORMALISED_BASIS for c in cs.values())
    # Claim 1: A = random's drop / attack's drop = (1 − 0.25)/(1 − 0.125) = 6/7 on the top-k
    # family; LENS shares 0.125/0.625 = 0.2 and (1 − 0.775)/(1 − 0.275) = 0.225/0.725.
    t1 = cs[1].table
    nat = t1[(t1["model"] == "natural") & (t1["attack"] == "topk")].iloc[0]
    a = 6 / 7
    b = a - (0.2 + 0.225 / 0.725) / 2
    assert nat["A = share top-k family [95 %]"] == f"{a:.3f} [{a:.3f}, {a:.3f}]"
    assert nat["B = A − share LENS family [95 %]"] == f"{b:.3f} [{b:.3f}, {b:.3f}]"
    assert cs[1].verdict == "supported" and set(cs[1].verdicts) == {"supported"}
    # Claim 2: LENS − top-k = (0.9 − 0.4)/0.8 = 0.625 (random), (0.5 − 0.3)/0.8 = 0.25 (attacks).
    t2 = cs[2].table
    r = t2[(t2["model"] == "natural") & (t2["attack"] == "random_sign")].iloc[0]
    assert r["w-LENS-recall@k − top-k intersection"] == "0.625 [0.625, 0.625]"
    r = t2[(t2["model"] == "natural") & (t2["attack"] == "topk")].iloc[0]
    assert r["w-LENS-prec@k − top-k intersection"] == "0.250 [0.250, 0.250]"
    assert cs[2].verdict == "supported"
    # Claim 3: diverse − plain = −0.08/0.8 = −0.1 everywhere: not supported.
    t3 = cs[3].table
    for col in ("top-k-div intersection − top-k intersection",
                "w-LENS-recall@k-div − w-LENS-recall@k"):
        assert set(t3[col]) == {"-0.100 [-0.100, -0.100]"}  # the PGD bonus cancels per image
    assert cs[3].verdict == "not supported"
    # Claim 4: PGD − natural is ±0.1 by image, mean 0: the interval contains 0.
    assert cs[4].verdict == "inconclusive" and set(cs[4].verdicts) == {"inconclusive"}
    # The report's summary table is the rules' output, claim by claim.
    rs = summary.ResultSet(df, [], [], [])
    text = report.render_report(rs, tmp_path / "out").read_text()
    table = text.split("## Summary of the verdicts")[1].split("## Deviations")[0]
    got = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells and cells[0].isdigit():
            got[int(cells[0])] = (cells[2], int(cells[3]))
    assert got == {n: (c.verdict, len(c.verdicts)) for n, c in cs.items()}
    assert got == {1: ("supported", 4), 2: ("supported", 12), 3: ("not supported", 18),
                   4: ("inconclusive", 8)}
    for n, c in cs.items():
        assert f"**Verdict: {c.verdict}.**" in text
    assert "0.625 [0.625, 0.625]" in text
    assert "worst of attacks" in text and "Deviations from the authors" in text
    # Bookkeeping columns other than `attacked` are absent: shown as n/a, not a crash.
    assert "| natural | saliency | topk | 40 | 40 | 1.000 | n/a | n/a |" in text


def test_old_results_folder_report_says_not_recorded(tmp_path):
    from explorer.evaluation.folder import load_config

    folder = Path(__file__).resolve().parents[2] / "docs" / "results" / "repro-ig-mnist-pgd"
    rows = load_results(folder)
    assert "attacked" not in rows and not any(c.startswith("unrel:") for c in rows.columns)
    rows = rows[rows["image"] < 30].copy()
    rows.insert(0, "run", folder.name)
    rs = summary.ResultSet(rows, [folder], [load_config(folder)], [[]])
    text = report.render_report(rs, tmp_path / "old").read_text()
    assert "Chance levels: not recorded in this run." in text
    assert "Chance-normalised scores: not recorded in this run." in text
    assert "label-flip shares and zero-valued pixels in S_k and D_k: not recorded" in text
    assert "raw scores (chance levels not recorded for every setting in these rows)" in text
    assert "every run (older runs attacked every image)" in text


def test_tables_twice_when_some_x_prime_was_not_found(tmp_path):
    df = chance_rows(n=10)
    col = metric_column("topk_intersection", 100, 1)
    miss = (df["model"] == "natural") & (df["attack"] == "topk") & (df["image"] < 4)
    df.loc[miss, "found"] = False
    df.loc[miss, col] = 1.0  # the fallback x' = x scores a perfect 1.0
    full = summary.summary_table(df, "mnist", worst=True)
    kept = summary.summary_table(df, "mnist", found_only=True, worst=True)
    r_all = full[(full["model"] == "natural") & (full["attack"] == "topk")].iloc[0]
    r_found = kept[(kept["model"] == "natural") & (kept["attack"] == "topk")].iloc[0]
    assert (r_all["n"], r_all["found"]) == (10, 0.6)
    assert r_all["topk_intersection"] == pytest.approx((4 * 1.0 + 6 * 0.3) / 10)
    assert (r_found["n"], r_found["topk_intersection"]) == (6, pytest.approx(0.3))
    # Worst of attacks: per image the lowest score over the three attacks.
    worst = full[(full["model"] == "natural") & (full["attack"] == summary.WORST)].iloc[0]
    assert worst["topk_intersection"] == pytest.approx(0.3)  # mass_center keeps 0.3 there
    text = report.render_report(summary.ResultSet(df, [], [], []), tmp_path / "o").read_text()
    assert "Rows with x' found only:" in text and "no x' found counts as 1.0" in text


def test_the_random_walk_is_a_random_baseline_never_judged_as_a_real_attack():
    from explorer.evaluation import claims

    attacks = ["random_walk", "mass_center", "random_sign", "topk", "my_attack"]
    assert claims._real_attacks(attacks) == ["topk", "mass_center", "my_attack"]


def test_rows_with_and_without_chance_levels_are_judged_raw_and_none_is_dropped():
    # Newer rows (chance levels recorded) for MNIST saliency, mixed with rows of the same
    # dataset without them (MNIST integrated gradients): normalising only the first would
    # mix two scales, and normalising both leaves the second with no scores at all.
    new = chance_rows(n=10)
    old = chance_rows(n=10).drop(columns=[c for c in new.columns if c.startswith("unrel:")])
    old["method"] = "integrated_gradients"
    mixed = pd.concat([new, old], ignore_index=True)
    rows, normalised = summary.chance_normalised(mixed)
    assert not normalised and rows is mixed
    cs = by_number(claims.claims(mixed))
    assert all(c.basis == claims.RAW_BASIS for c in cs.values())
    # Claim 1 is judged on both methods, on raw scores: random 0.40 vs attack 0.30.
    assert set(cs[1].table["method"]) == {"saliency", "integrated_gradients"}
    # The new rows alone are still normalised.
    assert summary.chance_normalised(new)[1]


def test_reference_of_a_dataset_without_scores_says_so():
    df = chance_rows(n=3)
    score_cols = [c for c in df.columns if "@k" in c]
    df[score_cols] = np.nan
    with pytest.raises(ResultsError, match="no scores for mnist"):
        summary.reference(df, "mnist")


def test_report_cli_records_the_folders_behind_the_report(toy_results, tmp_path):
    from explorer.__main__ import main
    from explorer.evaluation import roots

    folder, _ = toy_results
    copies = tmp_path / "docs" / "results"
    assert main(["report", str(folder), "--out", str(tmp_path / "docs"), "--filename", "r.md",
                 "--copy-rows-to", str(copies)]) == 0
    listed = json.loads((copies / roots.REPORTED).read_text(encoding="utf-8"))
    assert listed == {"report": "../r.md", "folders": [folder.name]}
    # An older copy beside it is discovered but not opened by default.
    export_compact(folder, copies / "older")
    cfg = roots.configured_roots([str(copies)])
    options = roots.discover(cfg)
    assert len(options) == 2
    assert roots.reported(cfg, options) == [o for o in options if o.endswith(folder.name)]
    (copies / roots.REPORTED).write_text("{not json", encoding="utf-8")
    assert roots.reported(cfg, options) == []


def test_chance_levels_come_from_the_rows_that_recorded_them_when_older_rows_come_first():
    # The loader keeps the first folder's row of an image; an older folder given first holds the
    # same images without levels. The level is then taken from the newer rows, not lost.
    new = chance_rows(n=6)
    old = new.drop(columns=[c for c in new.columns if c.startswith("unrel:")])
    old = old[old["image"] < 3]
    mixed = pd.concat([old, new[new["image"] >= 3]], ignore_index=True)
    rows, normalised = summary.chance_normalised(mixed)
    col = metric_column("topk_intersection", 100, 1)
    assert normalised
    # c = 0.2: the attack's raw 0.30 normalises to (0.30 − 0.2)/0.8 on every row, old ones too.
    natural_topk = rows[(rows["model"] == "natural") & (rows["attack"] == "topk")]
    assert np.allclose(natural_topk[col], 0.125)
    ref = summary.reference(mixed, "mnist")
    tab = summary.chance_table(mixed, "mnist", ref)
    assert set(tab["n"]) == {6}
    assert np.allclose(tab["topk_intersection_unrel"], 0.2)
