"""The lesson page: a lesson's steps one at a time, with a presenter mode for a projector.

Everything shown comes from the lesson's precomputed results (``explorer.lessons.results``),
so a step appears at once; k and w controls re-score the stored maps. The address holds the
lesson, the step and the presenter switch (``?lesson=ID&step=N&present=1``): a link opens a
class at a given step. Lesson text is shown as plain text, never as Markdown or HTML. A step
with a question can run a class poll (``lesson_poll``; students answer on the poll page).
"""

from __future__ import annotations

from urllib.parse import urlencode

import numpy as np
import streamlit as st
import streamlit.components.v1 as components
import torch

from explorer import data, metrics, viz
from explorer.attributions import METHODS
from explorer.lessons import results as lresults
from explorer.lessons.handout import handout_pdf
from explorer.lessons.spec import (Lesson, LessonError, Step, load_lesson, parse_lesson,
                                   shipped_lessons, state_value)
from explorer.ui import lesson_poll
from explorer.ui.common import PRESENTER_CSS, fmt, presenter_style
from explorer.ui.link import link_state, to_query
from explorer.ui.plain import literal, prose
from explorer.ui.state import Config

__all__ = ["render", "PRESENTER_CSS", "KEYS_JS"]

VIEW_CAPTIONS = {
    "maps": "The image and its attribution map.",
    "attack": "Before and after the attack on the explanation (the prediction is kept).",
    "noise": "The attack beside random sign noise of the same size.",
    "chance": "This map against the maps of other images: the unrelated-image level.",
    "overlap": "Which top-k pixels stayed, moved within w, or left.",
    "diverse": "Top-k picks against diverse top-k picks.",
    "scores": "Every score beside random noise and the unrelated-image level.",
}
# Arrow keys, Page Up/Down and space press the Previous / Next buttons (not while typing).
KEYS_JS = """
<script>
const doc = window.parent.document;
if (!doc.__lessonKeys) {
  doc.__lessonKeys = true;
  doc.addEventListener("keydown", (e) => {
    const tag = (e.target && e.target.tagName) || "";
    if (["INPUT", "TEXTAREA", "SELECT"].includes(tag)) return;
    let label = null;
    if (["ArrowRight", "PageDown", " "].includes(e.key)) label = "Next";
    if (["ArrowLeft", "PageUp"].includes(e.key)) label = "Previous";
    if (!label) return;
    const btn = [...doc.querySelectorAll("button")].find((b) => b.innerText.includes(label));
    if (btn && !btn.disabled) { btn.click(); e.preventDefault(); }
  });
}
</script>
"""
@st.cache_resource(max_entries=8, show_spinner=False)
def _results(lesson: Lesson) -> dict:
    return lresults.load_results(lesson)


def _pick_lesson() -> Lesson | None:
    shipped = shipped_lessons()
    lessons = {}
    for key, path in shipped.items():
        try:
            lessons[key] = load_lesson(path)
        except LessonError as exc:
            st.error(f"Shipped lesson {key} cannot be read: {prose(exc)}")
    with st.sidebar:
        st.subheader("Lesson")
        upload = st.file_uploader("Your own lesson file (TOML)", type=["toml"],
                                  key="lesson.upload")
    if upload is not None:
        try:
            return parse_lesson(upload.getvalue().decode("utf-8"), "the uploaded lesson")
        except UnicodeDecodeError:
            st.error("The uploaded lesson is not UTF-8 text; save it as UTF-8 TOML.")
        except LessonError as exc:
            st.error(prose(exc))
        return None
    wanted = st.query_params.get("lesson", "fragile-or-measure")
    keys = list(lessons)
    if wanted not in lessons:
        st.warning(f"There is no lesson {literal(wanted)}; lessons: {', '.join(keys)}.")
        wanted = keys[0]
    with st.sidebar:
        key = st.selectbox("Shipped lessons", keys, index=keys.index(wanted),
                           format_func=lambda k: lessons[k].title, key="lesson.pick")
    if key != st.query_params.get("lesson"):
        st.query_params["lesson"] = key
    return lessons[key]


def _step_number(lesson: Lesson) -> int:
    text = st.query_params.get("step", "1")
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= len(lesson.steps):
        st.warning(f"Step {literal(text, 20)} does not exist; this lesson has steps 1 to "
                   f"{len(lesson.steps)}. Showing step 1.")
        n = 1
    return n


def _go(n: int) -> None:
    st.query_params["step"] = str(n)


def _control_values(step: Step, n: int) -> dict:
    values = {}
    for c in step.controls:
        own = state_value(step.state, c.name)
        label = {"k": "k (top pixels)", "w": "w (neighbourhood radius, px)", "method": "method",
                 "model": "model"}[c.name]
        fmt_fn = (lambda v: viz_name(c.name, v))
        values[c.name] = st.segmented_control(label, c.choices, default=own, format_func=fmt_fn,
                                              key=f"lesson.{n}.{c.name}") or own
    return values


def viz_name(name: str, value) -> str:
    if name == "method":
        return METHODS[value].name
    return str(value)


def _state_for(step: Step, values: dict):
    state = step.state
    for name in ("method", "model"):
        if name in values:
            state = state.with_value(name, values[name])
    return state


def _explorer_link(state, k: int, w: int) -> str:
    cfg = Config(dataset=state.dataset, model=state.model, source="sample", image=state.image,
                 method=state.method, method_params=dict(state.method_params),
                 attack=state.attack, attack_params=dict(state.attack_params), seed=state.seed,
                 k=k, w=w)
    return urlencode(to_query(link_state(cfg)))


NO_ATTACK_X = "no label-preserving x′ found"
NO_NOISE_X = "no label-preserving draw"


def _scores_table(s: dict, keys, r) -> list[dict]:
    """Rows of the scores table; a perturbation that found no label-preserving input says so
    instead of scoring the unperturbed image as a perfect 1."""
    rows = []
    for key in keys:
        info = metrics.METRICS[key]
        rows.append({"score": info.name,
                     "attack": fmt(s["attack"][key]) if r.found_adv else NO_ATTACK_X,
                     "random noise": fmt(s["noise"][key]) if r.found_noise else NO_NOISE_X,
                     "unrelated images (chance)": f"{fmt(s['unrelated'][key])} ± "
                                                  f"{fmt(s['unrelated_std'][key], 2)}",
                     "shuffled map": fmt(s["permutation"][key]),
                     "attack, normalised": (fmt(s["normalised"][key], 2) if r.found_adv
                                            else "–")})
    return rows


def _show(fig, key: str, big: bool) -> None:
    if big:  # subplot titles, legend and colour-bar type readable from the back of a room
        size = 20
        fig.update_annotations(font_size=size)
        lines = max((a.text.count("<br>") + 1 for a in fig.layout.annotations if a.text),
                    default=0)
        top = fig.layout.margin.t or 0
        fig.update_layout(font_size=16, legend_font_size=16,
                          margin_t=max(top, int(lines * size * 1.3) + 8))
        fig.update_coloraxes(colorbar_title_font_size=16, colorbar_tickfont_size=16)
    st.plotly_chart(fig, width="stretch", config={"displayModeBar": False}, key=key)


def _figures(step: Step, r, k: int, w: int, height: int, big: bool = False) -> None:
    view = step.state.view
    rank = metrics.rank_positions(torch.from_numpy(r.map_orig)).numpy()
    if view == "maps":
        fig, _ = viz.side_by_side(r.x, None, r.map_orig, None, rank, None, height=height)
    elif view in ("attack", "scores"):
        rank_b = metrics.rank_positions(torch.from_numpy(r.map_adv)).numpy()
        fig, _ = viz.side_by_side(r.x, r.x_adv, r.map_orig, r.map_adv, rank, rank_b,
                                  height=height)
    elif view == "noise":
        rank_b = metrics.rank_positions(torch.from_numpy(r.map_adv)).numpy()
        rank_n = metrics.rank_positions(torch.from_numpy(r.map_noise)).numpy()
        fig, _ = viz.side_by_side(r.x, r.x_adv, r.map_orig, r.map_adv, rank, rank_b,
                                  titles=("original", "attacked", "perturbation", "original map",
                                          "map after the attack"), compact=True, height=height)
        _show(fig, "lesson.fig.attack", big)
        fig, _ = viz.side_by_side(r.x, r.x_noise, r.map_orig, r.map_noise, rank, rank_n,
                                  titles=("original", "noisy", "perturbation", "original map",
                                          "map after random noise"), compact=True,
                                  height=height)
    elif view == "chance":
        others = r.map_others[:3]
        cols = st.columns([2] + [1] * len(others))  # image and map, then one map each
        fig, _ = viz.side_by_side(r.x, None, r.map_orig, None, rank, None, height=height)
        with cols[0]:
            _show(fig, "lesson.fig.chance0", big)
        for i, m in enumerate(others, start=1):
            with cols[i]:
                vmax = float(np.percentile(m, 99)) or 1.0
                st.image(np.clip(m / vmax, 0, 1), caption=f"another image's map ({i})",
                         width="stretch", clamp=True)
        return
    else:
        masks = metrics.overlap_masks(torch.from_numpy(r.map_orig), torch.from_numpy(r.map_adv),
                                      k, w)
        masks = {key: v.numpy() for key, v in masks.items()}
        if view == "overlap":
            fig = viz.overlap_figure(r.map_orig, r.map_adv, masks, k=k, w=w, height=height)
        else:
            fig = viz.diverse_figure(r.map_orig, r.map_adv, masks, k=k, w=w, height=height)
    _show(fig, f"lesson.fig.{view}", big)


def _question(lesson: Lesson, step: Step, n: int) -> None:
    q = step.question
    if q is None:
        return
    st.markdown(f"**Question.** {prose(q.prompt)}")
    st.radio("Your answer", q.choices, index=None, key=f"lesson.{n}.answer",
             format_func=prose, label_visibility="collapsed")
    code = lesson_poll.poll_panel(lesson, step, n)
    if st.toggle("Reveal", key=f"lesson.{n}.reveal"):
        # With a class poll, the class's answers stand beside the reveal text.
        text, votes = st.columns(2) if code else (st.container(), None)
        with text:
            if q.answer is not None:
                st.markdown(f"**Answer:** {prose(q.choices[q.answer])}")
            st.info(prose(q.reveal), icon=":material/lightbulb:")
        if votes is not None:
            with votes:
                lesson_poll.live_distribution(code, q.answer)


def render() -> None:
    lesson = _pick_lesson()
    if lesson is None:
        return
    present = st.query_params.get("present") == "1"
    with st.sidebar:
        toggled = st.toggle("Presenter mode (large type, no sidebar)",
                            value=present, key="lesson.present")
        st.download_button("Printable handout (PDF)", data=lambda: handout_pdf(lesson),
                           file_name=f"{lesson.id}-handout.pdf", mime="application/pdf",
                           on_click="ignore", icon=":material/print:", key="lesson.handout")
    if toggled != present:
        if toggled:
            st.query_params["present"] = "1"
        else:
            st.query_params.pop("present", None)
        st.rerun()
    if present:
        presenter_style()
    components.html(KEYS_JS, height=0)
    try:
        results = _results(lesson)
    except LessonError as exc:
        st.error(f"{prose(exc)} (a teacher's own lesson is precomputed with the same command; "
                 "pass --results to keep its files elsewhere)")
        return
    n = _step_number(lesson)
    step = lesson.steps[n - 1]
    st.caption(f"{prose(lesson.title)} · step {n} of {len(lesson.steps)}")
    st.title(prose(step.title), anchor=False)
    for para in step.paragraphs:
        st.markdown(prose(para))
    values = _control_values(step, n)
    state = _state_for(step, values)
    k, w = values.get("k", state.k), values.get("w", state.w)
    r = results[state.attack_key()]
    # On a projector a question step puts the question (and its poll) beside the figures, so
    # that figure, question and poll fit on one 1920×1080 screen.
    beside = present and step.question is not None
    height = (280 if state.view == "noise" else 360) if beside else 440 if present else 300
    left, right = (st.columns([3, 2], gap="large") if beside
                   else (st.container(), st.container()))
    with left:
        _step_body(step, state, r, k, w, height, present)
    with right:
        _question(lesson, step, n)
    _footer(lesson, state, n, k, w, present)


def _step_body(step: Step, state, r, k: int, w: int, height: int, present: bool) -> None:
    _figures(step, r, k, w, height, big=present)
    names = data.DATASETS[state.dataset].class_names
    st.caption(f"{VIEW_CAPTIONS[state.view]} Prediction: {names[r.label_orig]}; after the "
               f"attack: {names[r.label_adv]}. k = {k}, w = {w}.")
    if state.view in ("noise", "chance", "overlap", "diverse", "scores", "attack"):
        s = lresults.scores(r, k, w)
        keys = (metrics.METRIC_KEYS if state.view == "scores" else
                ("topk_intersection", "lens_recall", "lens_recall_div", "spearman"))
        st.table(_scores_table(s, keys, r))
        st.caption("Chance: the mean score of this map against the maps of other images (± their "
                   "standard deviation), and against its own values shuffled over the pixels. "
                   "Normalised: (score − chance) / (1 − chance) against the unrelated images, so "
                   "0 is chance level and 1 a perfect match.")
        if not r.found_noise:
            st.caption("The random ±ε draw changed the model's prediction, so it is no "
                       "label-preserving perturbation and gets no score.")


def _footer(lesson: Lesson, state, n: int, k: int, w: int, present: bool) -> None:
    st.markdown(f"[Open this state in the explorer](./?{_explorer_link(state, k, w)})")
    left, mid, right = st.columns([1, 3, 1])
    with left:
        if st.button("← Previous", disabled=n == 1, key="lesson.prev", width="stretch"):
            _go(n - 1)
            st.rerun()
    with mid:
        links = " · ".join(f"[{i}](?lesson={lesson.id}&step={i}{'&present=1' if present else ''})"
                           for i in range(1, len(lesson.steps) + 1))
        st.markdown(f"Steps: {links}")
    with right:
        if st.button("Next →", disabled=n == len(lesson.steps), key="lesson.next",
                     width="stretch"):
            _go(n + 1)
            st.rerun()
