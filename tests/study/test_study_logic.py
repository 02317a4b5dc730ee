"""Sessions, frozen stimuli, analysis (hand-worked cases and simulated participants),
migrations and the create/export commands."""

from __future__ import annotations

import csv
import importlib.util
import io
import math

import numpy as np
import pytest
import sqlalchemy as sa
from matplotlib import colormaps
from PIL import Image
from scipy import stats

from explorer.study import analysis, records, session, simulate, spec, storage

from study_helpers import frozen_study, run_cli, spec_text


# ------------------------------------------------------------------------------- sessions

def test_order_is_seeded_practice_first_and_half_flipped(store):
    study = frozen_study("rating")
    trials = store.trials(study.id)
    o1, f1 = session._order(trials, 1234)
    o2, f2 = session._order(trials, 1234)
    o3, _ = session._order(trials, 99)
    assert (o1, f1) == (o2, f2) and o1 != o3
    assert sorted(o1) == sorted(trials)
    n_practice = sum(t.kind == "practice" for t in study.trials)
    assert all(trials[t]["kind"] == "practice" for t in o1[:n_practice])
    assert sum(f1) == len(o1) // 2


def test_resume_continues_at_the_same_trial_and_panel_is_stored(store):
    study = frozen_study("rating")
    p = session.start(store, study.id, {"PROLIFIC_PID": "pp1", "STUDY_ID": "st1",
                                        "SESSION_ID": "se1", "evil": "x", "SESSION_ID2": "y"})
    assert p.panel == {"PROLIFIC_PID": "pp1", "STUDY_ID": "st1", "SESSION_ID": "se1"}
    assert session.clean_panel({"PROLIFIC_PID": "<b>x</b>"}) == {}
    assert p.completion_code.startswith("C") and len(p.completion_code) == 9
    for pos in range(3):
        scr = session.screen(store, p, pos)
        assert scr.position == pos and scr.total == len(study.trials)
        session.answer(store, p, pos, scr.trial_id, str(pos + 2), 500.0 + pos)
    again = session.resume(store, study.id, p.participant_id)
    assert again == p
    assert session.next_position(store, again) == 3
    rs = store.responses(study.id, p.participant_id)
    assert [r.answer for r in rs] == [2, 3, 4] and [r.rt_ms for r in rs] == [500.0, 501.0, 502.0]
    # A screen shows stimulus ids only: no scores, no labels, no condition names.
    scr = session.screen(store, p, 3)
    assert set(scr.roles) == {"a", "b"} and all(s.startswith("t") for s in scr.stimuli)


def test_choice_buttons_undo_the_left_right_flip():
    assert session.button_answer("choice", "left", flipped=False) == 0
    assert session.button_answer("choice", "left", flipped=True) == 1
    assert session.button_answer("choice", "right", flipped=True) == 0
    assert session.button_answer("same_different", "left", flipped=True) == 1
    assert session.button_answer("rating", "6", flipped=True) == 6
    assert session._roles("choice", True) == ("ref", "c1", "c0")


# ------------------------------------------------------------------------------- stimuli

def test_stimuli_are_hashed_pngs_on_one_colour_scale_per_trial():
    study = frozen_study("rating")
    stims = {s.id: s for s in study.stimuli}
    top = np.round(np.array(colormaps["inferno"](1.0)[:3]) * 255).astype(int)
    for s in study.stimuli:
        assert records.sha256(s.png) == s.sha256
    for t in study.trials:
        imgs = [np.asarray(Image.open(io.BytesIO(stims[t.stimuli[r]].png)).convert("RGB"))
                for r in ("a", "b")]
        assert imgs[0].shape[0] >= 224
        # The brightest value of the trial's maps is drawn at the top of the one scale.
        hits = [bool((np.abs(im.astype(int) - top).sum(axis=2) <= 3).any()) for im in imgs]
        assert any(hits), t
    ident = [study.pairs[t.pairs[0]] for t in study.trials if t.kind == "identical"]
    assert ident and all(p.metrics["topk_intersection"]["score"] == 1.0 and
                         p.metrics["lens_recall"]["score"] == 1.0 for p in ident)
    unrel = [study.pairs[t.pairs[0]] for t in study.trials if t.kind == "unrelated"]
    assert all(p.image != p.image_b for p in unrel)
    # Every metric of compare is stored, with its chance level where explorer.chance exists.
    has_chance = importlib.util.find_spec("explorer.chance") is not None
    for p in study.pairs:
        assert set(p.metrics) >= {"topk_intersection", "lens_recall", "kendall", "center_shift"}
        assert (p.metrics["topk_intersection"]["chance"] is not None) == has_chance


def test_stratified_pairs_where_topk_and_lens_disagree():
    study = frozen_study("rating")
    main = [t for t in study.trials if t.kind == "main"]
    topk = np.array([study.pairs[t.pairs[0]].metrics["topk_intersection"]["score"] for t in main])
    lens = np.array([study.pairs[t.pairs[0]].metrics["lens_recall"]["score"] for t in main])
    gap = np.abs(stats.rankdata(topk) - stats.rankdata(lens))
    dis = np.array([t.stratum == "disagree" for t in main])
    assert dis.sum() == 6 and (~dis).sum() == 6
    assert gap[dis].mean() > gap[~dis].mean()


def test_freezing_is_reproducible():
    from explorer.study import stimuli  # torch; already loaded by the fixtures

    text = spec_text(pairs=4).replace("images = 10", "images = 4")
    a = stimuli.freeze(spec.parse_spec(text), text)
    b = stimuli.freeze(spec.parse_spec(text), text)
    assert a.digest == b.digest and a.id != b.id


# ------------------------------------------------------------------------------- analysis

def _hand_study(task: str, main_metrics: list[dict], check_kind="identical", expected=None):
    """A study built by hand: main trials with the given (topk, lens) scores, one check."""
    text = spec_text(task).replace("max_failed_checks = 1", "max_failed_checks = 0")
    sp = spec.parse_spec(text)

    def rec(topk, lens):
        m = {k: {"score": 0.5, "chance": None, "normalised": None}
             for k in __import__("explorer.metrics", fromlist=["x"]).METRIC_KEYS}
        m["topk_intersection"] = {"score": topk, "chance": 0.1, "normalised": (topk - 0.1) / 0.9}
        m["lens_recall"] = {"score": lens, "chance": 0.3, "normalised": (lens - 0.3) / 0.7}
        return m

    pairs, trials = [], []
    per = 2 if task == "choice" else 1
    for i, mm in enumerate(main_metrics):
        ids = []
        for j in range(per):
            topk, lens = mm[j] if per == 2 else mm
            pairs.append(records.Pair(len(pairs), "candidate", 0, 0, "x", "natural", "saliency",
                                      "topk", 0.1, rec(topk, lens), "spread"))
            ids.append(pairs[-1].id)
        roles = ("ref", "c0", "c1") if task == "choice" else ("a", "b")
        trials.append(records.Trial(i, "main", tuple(ids), {r: f"t{i}-{r}" for r in roles}))
    pairs.append(records.Pair(len(pairs), check_kind, 0, 0, "x", "natural", "saliency",
                              "none", 0.0, rec(1.0, 1.0)))
    ids = (pairs[-1].id,) if per == 1 else (pairs[-1].id, pairs[-1].id)
    roles = ("ref", "c0", "c1") if task == "choice" else ("a", "b")
    trials.append(records.Trial(len(trials), check_kind, ids,
                                {r: f"t{len(trials)}-{r}" for r in roles}, expected))
    png = b"not-a-png"
    stims = tuple(records.Stimulus(sid, png, records.sha256(png))
                  for t in trials for sid in t.stimuli.values())
    return records.FrozenStudy(records.new_study_id(), sp, text, stims, tuple(pairs),
                               tuple(trials), 0.0, "hand-made", "d")


def _answer_all(store, study, answers_by_trial: dict[int, int]):
    p = session.start(store, study.id, {})
    for pos, tid in enumerate(p.order):
        store.submit(study.id, p.participant_id, pos, tid, answers_by_trial[tid], "x", 100.0,
                     lambda t, a: a)
    return p


def test_rating_analysis_hand_worked(tmp_path):
    st = storage.open_store(f"sqlite:///{tmp_path / 'h.sqlite'}")
    study = _hand_study("rating", [(0.9, 0.2), (0.5, 0.5), (0.2, 0.9)])
    st.save_study(study)
    _answer_all(st, study, {0: 2, 1: 4, 2: 6, 3: 7})
    _answer_all(st, study, {0: 1, 1: 5, 2: 7, 3: 6})
    bad = _answer_all(st, study, {0: 7, 1: 1, 2: 1, 3: 1})  # fails the identical check
    a = analysis.analyse(st, study.id, n_bootstrap=200)
    assert a.excluded == (bad.participant_id,) and a.n_participants == 3
    assert "failed more than 0" in a.exclusion_rule and "rated 5 or more" in a.exclusion_rule
    means = [d["mean"] for d in a.per_trial]
    assert means == [1.5, 4.5, 6.5]
    half = stats.t.ppf(0.975, 1) * math.sqrt(0.5) / math.sqrt(2)  # s = √0.5 for (2, 1)
    assert a.per_trial[0]["ci_high"] == pytest.approx(1.5 + half)
    got = {(g.metric, g.variant): g for g in a.agreements}
    assert got[("lens_recall", "raw")].value == pytest.approx(1.0)
    assert got[("topk_intersection", "raw")].value == pytest.approx(-1.0)
    assert got[("lens_recall", "normalised")].value == pytest.approx(1.0)
    assert a.best == "lens_recall"
    # Krippendorff's α of the two kept raters, from the package on the same matrix.
    import krippendorff
    assert a.alpha == pytest.approx(krippendorff.alpha(
        reliability_data=[[2, 4, 6], [1, 5, 7]], level_of_measurement="ordinal",
        value_domain=[1, 2, 3, 4, 5, 6, 7]))
    g = got[("lens_recall", "raw")]
    assert g.ci_low <= g.value <= g.ci_high


def test_choice_agreement_rate_hand_worked(tmp_path):
    st = storage.open_store(f"sqlite:///{tmp_path / 'c.sqlite'}")
    # Trial 0: LENS prefers candidate 0, top-k candidate 1; trial 1: both prefer candidate 1.
    study = _hand_study("choice", [((0.2, 0.9), (0.8, 0.4)), ((0.1, 0.1), (0.6, 0.7))],
                        expected=0)
    st.save_study(study)
    _answer_all(st, study, {0: 0, 1: 1, 2: 0})   # agrees with LENS on both
    _answer_all(st, study, {0: 0, 1: 0, 2: 0})   # LENS on trial 0 only, top-k on neither
    a = analysis.analyse(st, study.id, n_bootstrap=100)
    got = {(g.metric, g.variant): g.value for g in a.agreements}
    assert a.excluded == ()
    assert got[("lens_recall", "raw")] == pytest.approx(3 / 4)
    assert got[("topk_intersection", "raw")] == pytest.approx(1 / 4)
    assert got[("kendall", "raw")] == pytest.approx(0.5)  # equal scores: a tie counts ½


def test_simulated_lens_raters_make_lens_the_best_agreeing_metric(store):
    study = frozen_study("rating")
    simulate.simulate(store, study.id, 20, 4, "lens")
    simulate.simulate(store, study.id, 3, 3, "fail-checks")
    a = analysis.analyse(store, study.id, n_bootstrap=200)
    assert len(a.excluded) == 3 and a.n_participants == 23
    got = {(g.metric, g.variant): g for g in a.agreements}
    assert a.best == "lens_recall"
    assert got[("lens_recall", "raw")].value > got[("topk_intersection", "raw")].value
    assert a.alpha > 0.3


def test_simulated_random_raters_agree_at_chance(store):
    study = frozen_study("rating")
    simulate.simulate(store, study.id, 20, 4, "random")
    a = analysis.analyse(store, study.id, n_bootstrap=0)
    assert -0.3 < a.alpha < 0.2  # no agreement beyond chance (α near 0; 12 trials)


def test_choice_study_end_to_end(tmp_path):
    st = storage.open_store(f"sqlite:///{tmp_path / 'ch.sqlite'}")
    study = frozen_study("choice")
    st.save_study(study)
    checks = [t for t in study.trials if t.kind in ("identical", "unrelated")]
    assert checks and all(t.expected in (0, 1) for t in checks)
    simulate.simulate(st, study.id, 10, 4, "lens")
    a = analysis.analyse(st, study.id, n_bootstrap=100)
    got = {(g.metric, g.variant): g.value for g in a.agreements}
    assert a.excluded == () and got[("lens_recall", "raw")] > 0.6  # chance: 0.5
    assert got[("lens_recall", "raw")] > got[("topk_intersection", "raw")]


# ------------------------------------------------------------------------------- schema

def test_migration_from_version_1(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    eng = sa.create_engine(url)
    with eng.begin() as c:
        storage.schema_version.create(c)
        storage.MIGRATIONS[0](c)
        c.execute(storage.schema_version.insert().values(version=1))
    eng.dispose()
    st = storage.open_store(url)
    assert st.schema_version() == storage.SCHEMA_VERSION == 3
    with st.engine.connect() as c:
        names = [r[0] for r in c.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'index'")]
        assert "ix_responses_study_time" in names
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"


def test_default_directory_is_outside_the_repository(monkeypatch, tmp_path):
    monkeypatch.delenv("EXPLORER_STUDY_DB", raising=False)
    monkeypatch.setenv("EXPLORER_STUDY_DIR", str(tmp_path / "d"))
    assert storage.default_url() == f"sqlite:///{tmp_path / 'd' / 'studies.sqlite'}"
    monkeypatch.delenv("EXPLORER_STUDY_DIR")
    from study_helpers import ROOT
    assert not storage.study_dir().resolve().is_relative_to(ROOT)


# ------------------------------------------------------------------------------- CLI

def test_cli_create_simulate_analyse_export(tmp_path):
    spec_path = tmp_path / "s.toml"
    spec_path.write_text(spec_text(pairs=4).replace("images = 10", "images = 4"))
    env = {"EXPLORER_STUDY_DIR": str(tmp_path / "data")}
    res = run_cli("create", str(spec_path), env=env)
    assert res.returncode == 0, res.stderr
    study_id = res.stdout.strip().splitlines()[-1]
    assert study_id.startswith("s") and " " not in study_id
    log = tmp_path / "acks.jsonl"
    res = run_cli("simulate", study_id, "--participants", "3", "--workers", "2", "--log",
                  str(log), env=env)
    assert res.returncode == 0, res.stderr
    res = run_cli("analyse", study_id, "--bootstrap", "50", env=env)
    assert res.returncode == 0 and "Krippendorff" in res.stdout and "best-agreeing" in res.stdout
    res = run_cli("export", study_id, "--out", str(tmp_path / "out"), "--bootstrap", "20",
                  env=env)
    assert res.returncode == 0, res.stderr
    rows = list(csv.DictReader(open(tmp_path / "out" / "responses.csv")))
    acks = list(storage.iter_json_lines(log))
    assert len(rows) == len(acks) == 3 * 9
    assert {(r["participant"], int(r["trial"])) for r in rows} == \
        {(a["participant"], a["trial"]) for a in acks}
    for name in ("trials.csv", "metrics.csv", "participants.csv", "agreement.csv"):
        assert (tmp_path / "out" / name).stat().st_size > 0


def test_same_different_analysis_hand_worked(tmp_path):
    st = storage.open_store(f"sqlite:///{tmp_path / 'sd.sqlite'}")
    study = _hand_study("same_different", [(0.9, 0.2), (0.5, 0.5), (0.2, 0.9)])
    st.save_study(study)
    # Share answering "same" (1): 0/2, 1/2, 2/2 -> follows LENS, opposes top-k.
    _answer_all(st, study, {0: 0, 1: 1, 2: 1, 3: 1})
    _answer_all(st, study, {0: 0, 1: 0, 2: 1, 3: 1})
    _answer_all(st, study, {0: 1, 1: 1, 2: 1, 3: 0})   # says "different" to identical maps
    a = analysis.analyse(st, study.id, n_bootstrap=50)
    assert len(a.excluded) == 1 and "answered 'same'" in a.exclusion_rule
    assert [d["mean"] for d in a.per_trial] == [0.0, 0.5, 1.0]
    got = {(g.metric, g.variant): g.value for g in a.agreements}
    assert got[("lens_recall", "raw")] == pytest.approx(1.0)
    assert got[("topk_intersection", "raw")] == pytest.approx(-1.0)
    assert a.alpha_level == "nominal"
