"""The participant and researcher pages in Streamlit's AppTest (widgets and flow; the browser
tests cover keyboard answers, reloads and a restarted server)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from explorer.study import session, storage

from study_helpers import frozen_study, with_new_id

PARTICIPANT = "from explorer.ui import study_page\nstudy_page.render()\n"
ADMIN = "from explorer.ui import study_admin\nstudy_admin.render()\n"


@pytest.fixture
def sqlite_study(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'pages.sqlite'}"
    monkeypatch.setenv("EXPLORER_STUDY_DB", url)
    st_ = storage.open_store(url)
    study = frozen_study("rating")
    st_.save_study(study)
    return st_, study


def _app(script: str, **query) -> AppTest:
    at = AppTest.from_string(script, default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def _texts(at) -> str:
    return "\n".join(t.value for t in at.text)


def _no_errors(at) -> None:
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def test_without_a_study_id_or_with_an_unknown_one(sqlite_study):
    at = _app(PARTICIPANT)
    assert "open it with the link you were given" in at.info[0].value
    at = _app(PARTICIPANT, study="nope")
    assert "there is no study 'nope'" in at.error[0].value


def test_a_participant_takes_the_whole_study(sqlite_study):
    store, study = sqlite_study
    at = _app(PARTICIPANT, study=study.id, PROLIFIC_PID="pp42", SESSION_ID="ses9")
    _no_errors(at)
    # Study-file text is plain text: the markup is shown literally, never rendered.
    assert "test study <b>not bold</b> *not italic*" in _texts(at)
    assert "<script>alert(1)</script> and **stars**" in _texts(at)
    assert all("<script>" not in m.value and "not bold" not in m.value for m in at.markdown)
    at.button(key="study.consent").click().run()
    code = at.query_params["p"][0] if isinstance(at.query_params["p"], list) else at.query_params["p"]
    p = session.resume(store, study.id, code)
    assert p.panel == {"PROLIFIC_PID": "pp42", "SESSION_ID": "ses9"}
    assert "Rate the maps." in _texts(at)
    at.button(key="study.start").click().run()
    n = len(study.trials)
    for pos in range(n):
        _no_errors(at)
        assert at.get("progress")[0].proto.text == f"Trial {pos + 1} of {n}" + (
            " · practice" if pos == 0 else "")
        assert len(at.get("image")) == 2
        at.button(key=f"study.b.{pos}.{(pos % 7) + 1}").click().run()
        if pos + 1 < n:
            assert f"Answer {pos + 1} saved" in at.caption[0].value
    _no_errors(at)
    assert p.completion_code in [c.value for c in at.code]
    assert "Thanks!" in _texts(at)
    rs = store.responses(study.id, p.participant_id)
    assert [r.position for r in rs] == list(range(n))
    assert [r.side for r in rs] == [str(pos % 7 + 1) for pos in range(n)]
    assert all(r.rt_ms >= 0 for r in rs)


def test_a_reload_continues_at_the_same_trial(sqlite_study):
    store, study = sqlite_study
    p = session.start(store, study.id, {})
    for pos in range(3):
        session.answer(store, p, pos, p.order[pos], "5", 10.0)
    at = _app(PARTICIPANT, study=study.id, p=p.participant_id)   # a fresh browser session
    _no_errors(at)
    assert at.get("progress")[0].proto.text == f"Trial 4 of {len(study.trials)}"


def test_a_code_of_another_study_is_refused(sqlite_study):
    store, study = sqlite_study
    other = with_new_id(study)
    store.save_study(other)
    p = session.start(store, study.id, {})
    at = _app(PARTICIPANT, study=other.id, p=p.participant_id)
    assert "belongs to another study" in at.error[0].value
    assert store.responses(other.id) == []


def test_researcher_pages_need_a_password(sqlite_study, monkeypatch):
    monkeypatch.delenv("EXPLORER_RESEARCHER_PASSWORD", raising=False)
    at = _app(ADMIN)
    assert "disabled" in at.warning[0].value and "EXPLORER_RESEARCHER_PASSWORD" in at.warning[0].value
    assert not at.tabs
    monkeypatch.setenv("EXPLORER_RESEARCHER_PASSWORD", "s3cret")
    at = _app(ADMIN)
    at.text_input[0].input("wrong")
    at.button[0].click().run()
    assert "Wrong password" in at.error[0].value and not at.tabs
    at.text_input[0].input("s3cret")
    at.button[0].click().run()
    _no_errors(at)
    assert [t.label for t in at.tabs] == ["Design", "Monitor", "Analyse", "Export"]


def test_monitor_and_analysis_show_the_simulated_participants(sqlite_study, monkeypatch):
    from explorer.study import simulate

    store, study = sqlite_study
    simulate.simulate(store, study.id, 6, 3, "lens")
    simulate.simulate(store, study.id, 2, 2, "fail-checks")
    monkeypatch.setenv("EXPLORER_RESEARCHER_PASSWORD", "pw")
    at = _app(ADMIN)
    at.text_input[0].input("pw")
    at.button[0].click().run()
    _no_errors(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Started": "8", "Finished": "8", "Failed checks (excluded)": "2",
                       "Responses": str(8 * len(study.trials))}
    assert len(at.dataframe) >= 2  # the monitor table and the analysis table
    assert any("Best-agreeing metric" in m.value for m in at.markdown)


def test_choice_page_undoes_the_counterbalancing(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'choice.sqlite'}"
    monkeypatch.setenv("EXPLORER_STUDY_DB", url)
    store = storage.open_store(url)
    study = frozen_study("choice")
    store.save_study(study)
    at = _app(PARTICIPANT, study=study.id)
    at.button(key="study.consent").click().run()
    at.button(key="study.start").click().run()
    code = at.query_params["p"]
    p = session.resume(store, study.id, code[0] if isinstance(code, list) else code)
    for pos in range(len(study.trials)):
        _no_errors(at)
        assert len(at.get("image")) == 3          # the reference and two candidates
        at.button(key=f"study.b.{pos}.left").click().run()
    rs = store.responses(study.id, p.participant_id)
    # Always "left": the stored candidate is 0 where the sides were not swapped, else 1.
    assert [r.answer for r in rs] == [int(f) for f in p.flips]
    assert 0 < sum(p.flips) < len(p.flips)
