"""Researcher pages of the human-perception studies: design (a TOML upload), monitor, analyse,
export. They require the researcher password: ``researcher_password`` in Streamlit secrets or
the ``EXPLORER_RESEARCHER_PASSWORD`` environment variable; without either they are disabled with
a message saying how to set one. Study-file and participant text is shown as plain text.
"""

from __future__ import annotations

import hmac
import io
import math
import os
import tempfile
import zipfile
from pathlib import Path

import streamlit as st

from explorer.study import analysis, spec as spec_mod, storage

from .common import guarded
from .study_page import get_store

__all__ = ["render", "researcher_password"]

_HOW = ("Set a researcher password to enable them: the environment variable "
        "`EXPLORER_RESEARCHER_PASSWORD` before `streamlit run`, or "
        "`researcher_password = \"...\"` in `.streamlit/secrets.toml`.")


def researcher_password() -> str | None:
    """The configured password: Streamlit secrets first, then the environment."""
    try:
        value = st.secrets.get("researcher_password")
    except Exception:  # noqa: BLE001 - no secrets file (FileNotFoundError / parse errors)
        value = None
    value = value or os.environ.get("EXPLORER_RESEARCHER_PASSWORD")
    return value if isinstance(value, str) and value else None


def _signed_in() -> bool:
    password = researcher_password()
    if password is None:
        st.warning("The researcher pages (design, monitor, analyse, export) are disabled: no "
                   "researcher password is set. " + _HOW, icon=":material/lock:")
        return False
    if st.session_state.get("study_admin.ok"):
        return True
    with st.form("study_admin.login"):
        given = st.text_input("Researcher password", type="password")
        if st.form_submit_button("Sign in", type="primary"):
            if hmac.compare_digest(given.encode(), password.encode()):
                st.session_state["study_admin.ok"] = True
                st.rerun()
            st.error("Wrong password.")
    return False


def _design(store) -> None:
    st.write("Upload a study file (TOML). Its stimuli are frozen when the study is created: "
             "every trial's maps are attacked, measured and rendered once. The repository's "
             "example is `examples/study_mnist.toml`.")
    up = st.file_uploader("Study file", type=["toml"], key="study_admin.upload")
    if up is None:
        return
    raw = up.getvalue()
    if len(raw) > 200_000:
        st.error("The study file is larger than 200 kB; a study file is a short TOML text.")
        return
    try:
        text = raw.decode("utf-8")
        spec = spec_mod.parse_spec(text, source="the uploaded study file")
    except UnicodeDecodeError:
        st.error("The study file is not UTF-8 text.")
        return
    except spec_mod.SpecError as exc:
        st.error("The study file cannot be used.")
        st.text(str(exc))
        return
    st.success("The study file is valid.")
    st.dataframe([{"field": k, "value": str(v)} for k, v in spec.to_dict().items()],
                 hide_index=True, width="stretch")
    if st.button("Create study (freeze stimuli)", type="primary", key="study_admin.create"):
        from explorer.study import stimuli  # noqa: PLC0415 - torch and the models, on demand

        with st.status("Freezing stimuli…", expanded=True) as status:
            frozen = stimuli.freeze(spec, text, progress=lambda m: status.write(m))
            store.save_study(frozen)
            status.update(label="Study created", state="complete")
        st.session_state["study_admin.study"] = frozen.id
        st.success(f"Study {frozen.id} created with {len(frozen.trials)} trials.")
        st.write("Participant link (add the panel's parameters, e.g. `&PROLIFIC_PID=…`):")
        st.code(f"http://HOST:8501/study?study={frozen.id}", language=None)


def _pick(store) -> str | None:
    studies = store.list_studies()
    if not studies:
        st.info("No studies yet: create one in Design (or `python -m explorer study create`).")
        return None
    ids = [s["study_id"] for s in studies]
    titles = {s["study_id"]: f"{s['study_id']} · {s['task']} · {s['title']}" for s in studies}
    current = st.session_state.get("study_admin.study")
    return st.selectbox("Study", ids, index=ids.index(current) if current in ids else 0,
                        format_func=lambda i: titles[i], key="study_admin.pick")


def _monitor(store, study_id: str) -> None:
    @st.fragment(run_every=5)
    def live() -> None:
        parts = store.participants(study_id)
        a = analysis.analyse(store, study_id, n_bootstrap=0)
        trials = store.trials(study_id)
        cols = st.columns(4)
        cols[0].metric("Started", len(parts))
        cols[1].metric("Finished", sum(p.finished_at is not None for p in parts))
        cols[2].metric("Failed checks (excluded)", len(a.excluded))
        cols[3].metric("Responses", len(store.responses(study_id)))
        st.caption(f"Exclusion rule: {a.exclusion_rule}. Refreshes every 5 s.")
        st.dataframe([{"participant": p.participant_id,
                       "answered": f"{store.response_count(study_id, p.participant_id)} / "
                                   f"{len(trials)}",
                       "failed checks": a.failed_checks.get(p.participant_id, 0),
                       "finished": p.finished_at is not None,
                       "panel id": p.panel.get("PROLIFIC_PID", "")} for p in parts],
                     hide_index=True, width="stretch")
        st.write("Participant link:")
        st.code(f"http://HOST:8501/study?study={study_id}", language=None)

    live()


def _analyse(store, study_id: str) -> None:
    n_boot = st.select_slider("Bootstrap replicates", [200, 500, 1000, 2000], value=500,
                              key="study_admin.boot")
    a = analysis.analyse(store, study_id, n_bootstrap=n_boot)
    if a.n_participants == 0:
        st.info("No responses yet.")
        return
    st.text(analysis.format_report(a).split("\n\n")[0])
    what = ("agreement rate of the metric's choice with people's (0.5 = chance)"
            if a.task == "choice" else "Kendall τ-b between the metric and the mean human "
            "judgement across trials (0 = no association)")
    st.write(f"**{what}**, 95% bootstrap intervals over participants and trials. Raw scores "
             "and chance-normalised scores (0 = the metric's chance level, 1 = perfect).")
    rows = [{"metric": g.name, "variant": g.variant, "value": g.value, "95% low": g.ci_low,
             "95% high": g.ci_high, "trials": g.n_trials} for g in a.agreements]
    st.dataframe(rows, hide_index=True, width="stretch")
    import plotly.graph_objects as go  # noqa: PLC0415 - only this tab draws a chart

    fig = go.Figure()
    for variant in analysis.VARIANTS:
        gs = [g for g in a.agreements if g.variant == variant and math.isfinite(g.value)]
        fig.add_bar(name=variant, x=[g.name for g in gs], y=[g.value for g in gs],
                    error_y={"type": "data", "symmetric": False,
                             "array": [g.ci_high - g.value for g in gs],
                             "arrayminus": [g.value - g.ci_low for g in gs]})
    fig.update_layout(barmode="group", height=380, margin={"t": 30, "b": 10},
                      yaxis_title="agreement rate" if a.task == "choice" else "Kendall τ")
    st.plotly_chart(fig, width="stretch")
    st.write(f"Best-agreeing metric (raw): **{a.best or 'none'}**")


def _export(store, study_id: str) -> None:
    st.write("Tidy CSV files: responses (one row per stored response), participants, trials, "
             "metrics (every metric of every pair with its chance level), per-trial "
             "judgements and metric agreement.")
    if st.button("Prepare the CSV files", key="study_admin.export"):
        with tempfile.TemporaryDirectory() as tmp:
            paths = analysis.export(store, study_id, tmp, n_bootstrap=500)
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                for path in paths:
                    z.write(path, arcname=Path(path).name)
        st.session_state["study_admin.zip"] = (study_id, buf.getvalue())
    ready = st.session_state.get("study_admin.zip")
    if ready and ready[0] == study_id:
        st.download_button("Download the CSV files (zip)", ready[1],
                           file_name=f"study-{study_id}.zip", mime="application/zip",
                           key="study_admin.download")


@guarded
def render() -> None:
    st.title("Studies (researcher)", anchor=False)
    if not _signed_in():
        return
    try:
        store = get_store()
    except storage.StoreError as exc:
        st.error(str(exc))
        return
    st.caption(f"Database: {store._safe_url()}")
    design, monitor, analyse_tab, export_tab = st.tabs(["Design", "Monitor", "Analyse", "Export"])
    with design:
        _design(store)
    study_id = None
    with monitor:
        study_id = _pick(store)
        if study_id:
            _monitor(store, study_id)
    if study_id is None:
        return
    with analyse_tab:
        _analyse(store, study_id)
    with export_tab:
        _export(store, study_id)

