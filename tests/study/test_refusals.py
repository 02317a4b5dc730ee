"""Bad input: each refused with a clear message, and nothing stored changes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from explorer.study import session, spec, storage
from explorer.study.tasks import AnswerError

from study_helpers import ROOT, frozen_study, run_cli, spec_text, with_new_id


def _snapshot(store) -> dict:
    with store.engine.connect() as c:
        return {t: c.execute(sa.text(f"SELECT * FROM {t} ORDER BY 1, 2")).all()
                for t in ("studies", "participants", "responses")}


def _started(store):
    study = frozen_study("rating")
    p = session.start(store, study.id, {"PROLIFIC_PID": "abc123", "SESSION_ID": "s1"})
    scr = session.screen(store, p, 0)
    session.answer(store, p, 0, scr.trial_id, "4", 1200.0)
    return study, p


def test_unknown_study(store):
    before = _snapshot(store)
    with pytest.raises(storage.UnknownStudy, match="there is no study 'nope'"):
        session.start(store, "nope", {})
    with pytest.raises(storage.UnknownStudy, match="no study id given"):
        session.start(store, "", {})
    assert _snapshot(store) == before


def test_participant_code_of_another_study(store):
    study, p = _started(store)
    other = with_new_id(study)
    store.save_study(other)
    before = _snapshot(store)
    with pytest.raises(storage.UnknownParticipant, match="belongs to another study"):
        session.resume(store, other.id, p.participant_id)
    with pytest.raises(storage.UnknownParticipant, match="belongs to another study"):
        store.submit(other.id, p.participant_id, 1, p.order[1], 3, "3", 10.0,
                     lambda t, a: a)
    with pytest.raises(storage.UnknownParticipant, match="there is no participant"):
        session.resume(store, study.id, "pDoesNotExist")
    with pytest.raises(session.SessionError, match="malformed"):
        session.resume(store, study.id, "<script>")
    assert _snapshot(store) == before


def test_tampered_trial_index(store):
    study, p = _started(store)
    before = _snapshot(store)
    n = len(p.order)
    with pytest.raises(storage.RefusedResponse, match=f"outside this participant's trials 0..{n - 1}"):
        session.answer(store, p, n, p.order[0], "3", 100.0)
    with pytest.raises(storage.RefusedResponse, match="outside"):
        session.answer(store, p, -1, p.order[0], "3", 100.0)
    with pytest.raises(storage.RefusedResponse, match="skips ahead: this participant's next trial is 1"):
        session.answer(store, p, 3, p.order[3], "3", 100.0)
    with pytest.raises(storage.RefusedResponse, match="is not the trial shown at index 1"):
        session.answer(store, p, 1, p.order[2], "3", 100.0)
    assert _snapshot(store) == before


def test_out_of_range_answer(store):
    study, p = _started(store)
    before = _snapshot(store)
    with pytest.raises(AnswerError, match="allowed: 1, 2, 3, 4, 5, 6, 7"):
        session.answer(store, p, 1, p.order[1], "8", 100.0)
    with pytest.raises(AnswerError, match="button 'left' is not one of"):
        session.answer(store, p, 1, p.order[1], "left", 100.0)
    task = __import__("explorer.study.tasks", fromlist=["TASKS"]).TASKS["rating"]
    for bad in (0, 8, 3.5, True, "3"):
        with pytest.raises(AnswerError, match="outside the similarity rating task's range"):
            store.submit(study.id, p.participant_id, 1, p.order[1], bad, "x", 10.0,
                         lambda t, a: task.check_answer(a))
    with pytest.raises(storage.RefusedResponse, match="response time"):
        session.answer(store, p, 1, p.order[1], "3", -5.0)
    assert _snapshot(store) == before


def test_second_submission_stores_one_response(store):
    study, p = _started(store)
    before = _snapshot(store)
    again = session.answer(store, p, 0, p.order[0], "7", 900.0)
    assert not again.created and again.response.answer == 4  # the first answer is kept
    assert _snapshot(store) == before
    # And a new participant record is not created for the same panel id.
    assert session.start(store, study.id, {"PROLIFIC_PID": "abc123"}).participant_id == \
        p.participant_id
    assert _snapshot(store) == before


@pytest.mark.parametrize("edit, message", [
    (("task = \"rating\"", "task = \"ranking\""),
     r"\[study\] task must be one of rating, choice, same_different; got 'ranking'"),
    (("dataset = \"mnist\"", "dataset = \"cifar\""), r"\[stimuli\] dataset must be one of"),
    (("models = [\"natural\"]", "models = [\"resnet\"]"),
     r"\[stimuli\] models: unknown 'resnet'; allowed: natural"),
    (("epsilons = [0.1, 0.3]", "epsilons = [0.1, 3]"), r"\[stimuli\] epsilons: \[3\] outside \(0, 1\]"),
    (("images = 10", "images = 'ten'"), r"\[stimuli\] images must be a whole number >= 2; got 'ten'"),
    (("pairs = 12", "pairs = 500"), r"\[stimuli\] pairs = 500 exceeds the 40 candidate pairs"),
    (("k = 50", "k = 5000"), r"\[stimuli\] k = 5000 exceeds the 28×28 = 784 pixels"),
    (("w = 1", "w = -1"), r"\[stimuli\] w must be >= 0; got -1"),
    (("seed = 3", "seed = 3\ncolour = 'red'"), r"\[study\]: unknown field\(s\) 'colour'; allowed: title"),
    (("instructions = \"Rate the maps.\"\n", ""), r"\[study\] instructions is missing; it is required"),
    (("[exclusion]", "[exclusions]"), r"unknown section\(s\) 'exclusions'"),
    (("max_failed_checks = 1", "max_failed_checks = 4"), r"\[exclusion\] max_failed_checks = 4 would never"),
    (("seed = 3", "seed = 3\nredirect_url = 'javascript:alert(1)'"),
     r"\[study\] redirect_url must start with https:// or http://"),
    (("[stimuli]", "[stimuli\n"), r"is not valid TOML"),
])
def test_malformed_spec_is_refused_naming_the_field(edit, message):
    text = spec_text().replace(*edit)
    with pytest.raises(spec.SpecError, match=message):
        spec.parse_spec(text)


def test_cli_create_refuses_a_bad_file_and_stores_nothing(tmp_path):
    db = f"sqlite:///{tmp_path / 's.sqlite'}"
    bad = tmp_path / "bad.toml"
    bad.write_text(spec_text().replace('task = "rating"', 'task = 7'))
    res = run_cli("create", str(bad), "--db", db)
    assert res.returncode == 2
    assert "error: study file 'bad.toml': [study] task must be one of" in res.stderr
    assert "Traceback" not in res.stderr
    res = run_cli("create", str(tmp_path / "missing.toml"), "--db", db)
    assert res.returncode == 2 and "does not exist" in res.stderr
    assert storage.open_store(db).list_studies() == []
    res = run_cli("analyse", "nope", "--db", db)
    assert res.returncode == 2 and "there is no study 'nope'" in res.stderr


def test_example_study_file_is_valid():
    s = spec.load_spec(ROOT / "examples" / "study_mnist.toml")
    assert s.dataset == "mnist" and s.task == "rating" and s.pairs >= 8
