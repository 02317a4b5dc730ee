"""The "Sweeps" page: batch-evaluation results over many images, and small live sweeps.

Opens a results folder of ``python -m explorer evaluate`` (or the committed reproduction data)
and shows the report's tables, figures and claim verdicts with controls for dataset, method, k,
w and ε; or runs a small sweep (about 20 images) in the page with a progress bar. All numbers
come from :mod:`explorer.evaluation.summary` and :mod:`explorer.evaluation.claims` (the same
functions as ``python -m explorer report``); the figures from :mod:`explorer.viz_sweeps`.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import streamlit as st

from explorer import data, metrics, viz_sweeps
from explorer import device as device_choice
from explorer.evaluation import claims as paper_claims
from explorer.evaluation import roots as results_roots
from explorer.evaluation import summary
from explorer.evaluation.plan import PAPER, EvalConfig, parse_number
from explorer.evaluation.runner import run
from explorer.attacks import ATTACKS
from explorer.attributions import METHODS
from explorer.ui import availability, keys
from explorer.ui.common import citation_caption, fmt, show_problem

LIVE_MAX_IMAGES = 50
SET_KEYS = ("topk_intersection", "lens_recall", "lens_precision", "topk_div_intersection",
            "lens_recall_div", "lens_precision_div")
RANK_KEYS = ("spearman", "kendall", "lens_spearman", "lens_kendall", "center_shift")

# The page's widget keys (stable strings; the views' keys are built from OPEN / LIVE).
MODE = keys.widget("sweeps", "mode")
FOLDERS = keys.widget("sweeps", "folders")
PATH = keys.widget("sweeps", "path")
FORM = keys.widget("sweeps", "form")
LIVE_ROWS = keys.widget("sweeps", "live", "rows")
OPEN = ("sweeps", "open")
LIVE = ("sweeps", "live")


def form_key(name: str) -> str:
    """The key of the live-sweep form's widget ``name``."""
    return keys.widget(FORM, name)


def view_key(prefix: tuple[str, ...], *parts: object) -> str:
    """The key of a results-view widget: ``prefix`` is :data:`OPEN` or :data:`LIVE`."""
    return keys.widget(*prefix, *parts)


def _label(key: str) -> str:
    m = metrics.METRICS[key]
    return f"{m.name}  ({m.formula})"


# --------------------------------------------------------------------------------------------
# Loading (only under the configured roots; cached on the folders and their modification times)
# --------------------------------------------------------------------------------------------

def configured_roots() -> results_roots.ResultsRoots:
    """The results roots: ``results_roots`` in Streamlit's secrets (a list of folders), else
    the environment variable ``EXPLORER_RESULTS_ROOTS``, else docs/results and results."""
    try:
        value = st.secrets.get("results_roots")
    except Exception:  # noqa: BLE001 - no secrets file (FileNotFoundError / parse errors)
        value = None
    if not isinstance(value, (str, list, tuple)):
        value = None
    return results_roots.configured_roots(value)


def _stamp(folder: Path) -> float:
    """Latest modification time of what the loader reads (so a running sweep refreshes)."""
    times = [p.stat().st_mtime for p in (folder / "config.json", folder / "results.csv",
                                         folder / "results.csv.gz") if p.exists()]
    rows = folder / "rows"
    if rows.is_dir():
        times.append(rows.stat().st_mtime)
    return max(times, default=0.0)


@st.cache_data(max_entries=8, show_spinner="Reading results…")
def _load(folders: tuple[str, ...], stamps: tuple[float, ...]) -> summary.ResultSet:
    del stamps  # part of the cache key only
    return summary.load_many([Path(f) for f in folders])  # already checked by the caller


@st.cache_data(max_entries=8, show_spinner="Checking the claims…")
def _claims(folders: tuple[str, ...], stamps: tuple[float, ...]) -> list[paper_claims.Claim]:
    return paper_claims.claims(_load(folders, stamps).rows)


# --------------------------------------------------------------------------------------------
# Views
# --------------------------------------------------------------------------------------------

def _table_view(tab: pd.DataFrame, metric_keys) -> None:
    show = pd.DataFrame({"model": tab["model"], "method": tab["method"],
                         "attack": [ATTACKS[a].name if a in ATTACKS else a for a in tab["attack"]],
                         "images": tab["n"], "accuracy": tab["accuracy"].round(3),
                         "found": tab["found"].round(3)})
    for key in metric_keys:
        if key in tab:
            show[metrics.METRICS[key].name] = [
                f"{fmt(m)} [{fmt(lo)}, {fmt(hi)}]" if not math.isnan(m) else "undefined"
                for m, lo, hi in zip(tab[key], tab[key + "_lo"], tab[key + "_hi"])]
    st.dataframe(show, hide_index=True, width="stretch")


def _results_views(rs: summary.ResultSet, prefix: tuple[str, ...], claims=None) -> None:
    """Tables, figures, claims and run facts of ``rs``; ``claims`` computes the claim list
    (default: :func:`explorer.evaluation.claims.claims` on the rows); ``prefix`` is
    :data:`OPEN` or :data:`LIVE` (the widgets' keys)."""
    df = rs.rows
    c1, c2, c3, c4, c5 = st.columns(5)
    dataset = c1.selectbox("Dataset", rs.datasets, key=view_key(prefix, "dataset"))
    sub = df[df["dataset"] == dataset]
    try:
        ref = summary.reference(df, dataset)
    except ValueError as exc:  # ResultsError: this dataset's rows hold no scores yet
        show_problem(exc, "These results cannot be shown")
        return
    methods = list(dict.fromkeys(sub["method"]))
    method = c2.selectbox("Method", methods, key=view_key(prefix, "method"),
                          format_func=lambda m: METHODS[m].name if m in METHODS else m)
    eps_values = list(ref.eps_values)
    eps = c3.selectbox("ε", eps_values, index=eps_values.index(ref.epsilon),
                       key=view_key(prefix, "eps"), format_func=lambda e: f"{e:.4g}")
    k = c4.selectbox("k", list(ref.k_values), index=list(ref.k_values).index(ref.k),
                     key=view_key(prefix, "k"))
    w = c5.selectbox("w", list(ref.w_values), index=list(ref.w_values).index(ref.w),
                     key=view_key(prefix, "w"))
    sel = summary.Reference(dataset, eps, k, w, ref.eps_values, ref.k_values, ref.w_values)
    picked = sub[sub["method"] == method]
    st.caption(f"{len(picked)} rows for {dataset} / {method}. Means over images with 95 % "
               "bootstrap intervals. Paper setting of this dataset: "
               f"ε = {ref.epsilon:.4g}, k = {ref.k}, w = {ref.w}.")

    t_table, t_eps, t_w, t_models, t_claims, t_runs = st.tabs(
        ["Table", "Metric vs ε", "Metric vs w", "Natural vs PGD", "Claims", "Runs"])
    tab = summary.summary_table(picked, dataset, ref=sel)
    with t_table:
        if tab.empty:
            st.info("No rows at this ε.")
        else:
            st.markdown("**Top-k and LENS set metrics**")
            _table_view(tab, SET_KEYS)
            st.markdown("**Rank correlations and centre shift**")
            _table_view(tab, RANK_KEYS)
            st.caption("*found*: share of images where a label-preserving x' that lowers the "
                       "attack's selection measure was found (elsewhere x' = x).")
    with t_eps:
        if len(ref.eps_values) < 2:
            st.info("These results hold one ε only; run a sweep with several --eps values.")
        else:
            picked_keys = st.multiselect("Metrics", metrics.METRIC_KEYS, default=list(
                summary.FIGURE_METRICS), key=view_key(prefix, "eps_keys"), format_func=_label)
            curve = summary.curve_table(picked, dataset, "epsilon",
                                        picked_keys or summary.FIGURE_METRICS, ref=sel)
            for model in dict.fromkeys(curve["model"]):
                c = curve[curve["model"] == model]
                st.plotly_chart(viz_sweeps.plotly_curves(
                    c, "epsilon", picked_keys or summary.FIGURE_METRICS,
                    title=f"{dataset} / {model} / {method} (k = {k}, w = {w})"),
                    key=view_key(prefix, "epsfig", model))
            st.caption("Only images present at every ε of a curve are used.")
    with t_w:
        picked_keys = st.multiselect("Metrics", metrics.METRIC_KEYS,
                              default=["topk_intersection", "lens_recall", "lens_recall_div"],
                              key=view_key(prefix, "w_keys"), format_func=_label)
        curve = summary.curve_table(picked, dataset, "w", picked_keys or ["lens_recall"], ref=sel)
        for model in (dict.fromkeys(curve["model"]) if not curve.empty else []):
            c = curve[curve["model"] == model]
            st.plotly_chart(viz_sweeps.plotly_curves(
                c, "w", picked_keys or ["lens_recall"],
                title=f"{dataset} / {model} / {method} (ε = {eps:.4g}, k = {k})"),
                key=view_key(prefix, "wfig", model))
    with t_models:
        model_set = set(tab["model"]) if not tab.empty else set()
        if len(model_set) < 2:
            st.info("These results hold one model only.")
        else:
            st.plotly_chart(viz_sweeps.plotly_models(
                tab, ("topk_intersection", "lens_recall", "lens_recall_div", "spearman"),
                title=f"{dataset} / {method} (ε = {eps:.4g}, k = {k}, w = {w})"),
                key=view_key(prefix, "modelsfig"))
    with t_claims:
        st.caption("Each of the paper's claims (stated in the repository's docs/spec.md) at "
                   "every dataset's paper setting, with the rule used to call it; the same text "
                   "as `python -m explorer report`.")
        try:
            claim_list = claims() if claims is not None else paper_claims.claims(df)
        except ValueError as exc:  # ResultsError: rows that hold no scores to judge
            show_problem(exc, "The claims cannot be checked on these rows")
            claim_list = []
        for c in claim_list:
            icon = {"supported": ":material/check_circle:",
                    "not supported": ":material/cancel:"}.get(c.verdict, ":material/help:")
            with st.expander(f"Claim {c.number}: {c.title} — {c.verdict}", icon=icon,
                             expanded=False):
                st.markdown(f"*Paper:* {c.paper}\n\n*Rule:* {c.rule}\n\n**{c.summary}**")
                if c.table is not None and not c.table.empty:
                    st.dataframe(c.table, hide_index=True, width="stretch")
                for line in c.details[:20]:
                    st.markdown(f"- {line}")
    with t_runs:
        for folder, cfg, log in zip(rs.folders, rs.configs, rs.logs):
            ends = [r for r in log if r.get("event") == "end"]
            wall = sum(float(r.get("wall_s", 0)) for r in ends)
            st.markdown(f"**{folder}** — {len(rs.rows[rs.rows['run'] == folder.name])} rows; "
                        f"wall time {wall / 60:.1f} min")
            cmds = [r.get("command") for r in log if r.get("command")]
            if cmds:
                st.code(cmds[0], language="bash")
            st.json(cfg.get("resolved", {}), expanded=False)


# --------------------------------------------------------------------------------------------
# Live sweep
# --------------------------------------------------------------------------------------------

def _live_sweep() -> None:
    st.markdown("Run a small sweep here (a few images, in this browser session). Larger runs: "
                "`python -m explorer evaluate` (see docs/reproduction.md).")
    datasets = availability.usable_datasets()  # datasets with a usable model here
    if not datasets:
        st.info("No shipped models are available on this machine.")
        return
    with st.form(FORM):
        c1, c2, c3 = st.columns(3)
        dataset = c1.selectbox("Dataset", datasets, key=form_key("dataset"),
                               format_func=lambda d: data.DATASETS[d].name)
        model_names = c2.multiselect("Models", ["natural", "pgd"], default=["natural", "pgd"],
                                     key=form_key("models"),
                                     help="Model names of the dataset (natural, pgd).")
        method = c3.selectbox("Method", list(METHODS), key=form_key("method"),
                              format_func=lambda m: METHODS[m].name)
        attacks = st.multiselect("Attacks", [a for a, i in ATTACKS.items() if not i.needs_region],
                                 default=["random_sign", "topk"], key=form_key("attacks"),
                                 format_func=lambda a: ATTACKS[a].name)
        c4, c5, c6, c7 = st.columns(4)
        eps_text = c4.text_input("ε values", "paper", key=form_key("eps"),
                                 help="Comma-separated, in [0, 1] pixel units (0.1, 8/255) or "
                                      "'paper'.")
        n_images = c5.number_input("Images", 1, LIVE_MAX_IMAGES, 20, key=form_key("images"))
        steps = c6.number_input("Attack steps P (0 = paper)", 0, 500, 0, key=form_key("steps"))
        # Bundled samples first: they work on a fresh, offline machine; the test set needs files.
        source = c7.selectbox("Images from", ["samples", "test"], key=form_key("source"),
                              help="The bundled sample images, or the test set (needs the "
                                   "dataset files: python -m explorer data import).")
        go = st.form_submit_button("Run sweep", type="primary")
    # The sidebar's device choice (kept across pages), else auto.
    dev = device_choice.choose(st.session_state.get(keys.device(), "auto"), strict=False)
    st.badge(device_choice.describe(dev), icon=":material/memory:",
             color="green" if dev.startswith("cuda") else "gray")
    if go:
        try:
            eps = tuple(PAPER if e.strip() == PAPER else parse_number(e)
                        for e in eps_text.split(",") if e.strip())
            cfg = EvalConfig(datasets=(dataset,), models=tuple(model_names),
                             methods=(method,), attacks=tuple(attacks), eps=eps or (PAPER,),
                             n_images=int(n_images), source=source, batch_size=5,
                             steps=int(steps) or None)
            bar = st.progress(0.0, text="Starting…")

            def progress(done, total, text):
                bar.progress(done / max(total, 1), text=f"{done}/{total} rows — {text}")

            df = run(cfg, None, progress=progress, device=dev)
            bar.progress(1.0, text=f"Done: {len(df)} rows.")
            st.session_state[LIVE_ROWS] = df
        except (ValueError, RuntimeError) as exc:
            show_problem(exc, "The sweep could not run")
            return
    df = st.session_state.get(LIVE_ROWS)
    if df is not None and len(df):
        df = df.copy()
        df.insert(0, "run", "live")
        rs = summary.ResultSet(df, [Path("live sweep")], [{}], [[]])
        _results_views(rs, LIVE)
        st.download_button("Download rows (CSV)", df.to_csv(index=False).encode(),
                           file_name="sweep.csv", mime="text/csv")


# --------------------------------------------------------------------------------------------
# Page
# --------------------------------------------------------------------------------------------

def render() -> None:
    st.title("Sweeps: robustness over many images")
    st.markdown("Mean scores over many images, with 95 % bootstrap intervals, for the attacks "
                "and metrics of the explorer; and the paper's four claims checked against them.")
    mode = st.segmented_control("Source", ["Open results", "Run a small sweep"],
                                default="Open results", key=MODE)
    if mode == "Run a small sweep":
        _live_sweep()
        citation_caption()
        return
    roots = configured_roots()
    options = results_roots.discover(roots)
    chosen = st.multiselect(
        "Results folders", options,
        default=(results_roots.reported(roots, options)
                 or [f for f in options if f.startswith("docs/results")] or options[:3]),
        key=FOLDERS,
        help="Folders written by `python -m explorer evaluate --out FOLDER` under "
             f"{roots.label()} (the configured folders). Several folders are combined (a row "
             "repeated by a later folder is counted once).")
    # Kept beside the list: paste the --out path that `evaluate` printed, or reach a folder
    # deeper than the list looks (results_roots.MAX_DEPTH levels); checked like the list.
    extra = st.text_input(f"…or a folder under {roots.label()}", "", key=PATH,
                          placeholder="results/my-run", max_chars=results_roots.MAX_TEXT)
    folders = list(dict.fromkeys(list(chosen) + ([extra.strip()] if extra.strip() else [])))
    if not folders:
        st.info("No results folder chosen. Make one with `python -m explorer evaluate --datasets "
                "mnist --n-images 50 --out results/mnist50`, or run a small sweep here.")
        citation_caption()
        return
    try:
        paths = [roots.check(f) for f in folders]
    except results_roots.RootsError as exc:
        st.error(str(exc), icon=":material/folder_off:")
        citation_caption()
        return
    try:
        key = (tuple(str(p) for p in paths), tuple(_stamp(p) for p in paths))
        rs = _load(*key)
    except (ValueError, OSError) as exc:
        show_problem(exc, "These results cannot be shown")
        citation_caption()
        return
    _results_views(rs, OPEN, claims=lambda: _claims(*key))
    citation_caption()
