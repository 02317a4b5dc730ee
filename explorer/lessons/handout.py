"""A printable handout of a lesson: one A4 page per step (figure, text, question), answers last.

Built from the precomputed results, so it takes seconds and needs no attack. The figures use
one colour scale per step, clipped at the 99th percentile of the maps shown (stated on the
page); the scores table gives each score beside random noise and the unrelated-image level.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402

from .. import data, metrics  # noqa: E402
from .results import StateResult, load_results, scores  # noqa: E402
from .spec import Lesson, Step  # noqa: E402

__all__ = ["CLIP_PERCENTILE", "TABLE_METRICS", "handout_pdf", "write_handout"]

CLIP_PERCENTILE = 99.0
# The scores a printed table shows (the app shows all of them).
TABLE_METRICS = ("topk_intersection", "lens_recall", "spearman", "lens_recall_div")
_A4 = (8.27, 11.69)


def _rgb(x: np.ndarray) -> np.ndarray:
    img = np.transpose(x, (1, 2, 0))
    return img[..., 0] if img.shape[2] == 1 else img


def _panels(step: Step, r: StateResult) -> list[tuple[str, np.ndarray, bool]]:
    """(title, array, is_map) for the step's view."""
    view = step.state.view
    if view == "maps":
        return [("image", _rgb(r.x), False), ("map", r.map_orig, True)]
    out = [("image", _rgb(r.x), False), ("attacked image", _rgb(r.x_adv), False),
           ("map", r.map_orig, True), ("map after attack", r.map_adv, True)]
    if view in ("noise", "scores"):
        out.append(("map after random noise", r.map_noise, True))
    if view == "chance":
        out.append(("map of another image", r.map_others[0], True))
    return out


def _figure_page(pdf: PdfPages, lesson: Lesson, n: int, step: Step, r: StateResult) -> None:
    fig = plt.figure(figsize=_A4)
    fig.text(0.06, 0.95, f"{lesson.title} — step {n} of {len(lesson.steps)}", fontsize=9,
             color="0.35")
    fig.text(0.06, 0.915, step.title, fontsize=16, weight="bold")
    y = 0.885
    for para in step.paragraphs:
        wrapped = textwrap.fill(para, 95)
        fig.text(0.06, y, wrapped, fontsize=9.5, va="top")
        y -= 0.018 * (wrapped.count("\n") + 1) + 0.012
    panels = _panels(step, r)
    maps = [a for _, a, is_map in panels if is_map]
    vmax = float(np.percentile(np.concatenate([m.ravel() for m in maps]), CLIP_PERCENTILE))
    vmax = vmax if vmax > 0 else 1.0
    top, height = y - 0.02, 0.22
    width = 0.88 / len(panels)
    for i, (title, arr, is_map) in enumerate(panels):
        ax = fig.add_axes([0.06 + i * width, top - height, width * 0.94, height])
        if is_map:
            ax.imshow(arr, cmap="inferno", vmin=0, vmax=vmax, interpolation="nearest")
        else:
            ax.imshow(arr, cmap="gray" if arr.ndim == 2 else None, vmin=0, vmax=1,
                      interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    names = data.DATASETS[step.state.dataset].class_names
    fig.text(0.06, top - height - 0.02,
             f"Maps on one colour scale clipped at the {CLIP_PERCENTILE:g}th percentile "
             f"({vmax:.3g}). Prediction: {names[r.label_orig]}; after the attack: "
             f"{names[r.label_adv]}.", fontsize=7.5, color="0.3")
    y = top - height - 0.06
    s = scores(r, step.state.k, step.state.w)
    rows = [[metrics.METRICS[key].name,
             f"{s['attack'][key]:.2f}" if r.found_adv else "none found",
             f"{s['noise'][key]:.2f}" if r.found_noise else "label changed",
             f"{s['unrelated'][key]:.2f}"] for key in TABLE_METRICS]
    ax = fig.add_axes([0.06, y - 0.13, 0.88, 0.13])
    ax.axis("off")
    table = ax.table(cellText=rows, colLabels=["score", "attack", "random noise",
                                               "unrelated images (chance)"],
                     loc="upper left", cellLoc="left")
    table.auto_set_font_size(False)
    table.set_fontsize(8.5)
    fig.text(0.06, y - 0.145, f"k = {step.state.k}, w = {step.state.w}. 1 = the same top pixels; "
             "the last column is what maps of unrelated images score.", fontsize=7.5,
             color="0.3")
    y -= 0.19
    if step.question is not None:
        fig.text(0.06, y, textwrap.fill("Question: " + step.question.prompt, 90), fontsize=10.5,
                 weight="bold", va="top")
        y -= 0.05
        for choice in step.question.choices:
            fig.text(0.08, y, "☐  " + choice, fontsize=10, va="top")
            y -= 0.028
    pdf.savefig(fig)
    plt.close(fig)


def _answers_page(pdf: PdfPages, lesson: Lesson) -> None:
    fig = plt.figure(figsize=_A4)
    fig.text(0.06, 0.95, f"{lesson.title} — answers", fontsize=16, weight="bold")
    y = 0.9
    for n, step in enumerate(lesson.steps, start=1):
        q = step.question
        if q is None:
            continue
        answer = f" Expected: {q.choices[q.answer]}." if q.answer is not None else ""
        text = textwrap.fill(f"Step {n}, {step.title}.{answer} {q.reveal}", 95)
        fig.text(0.06, y, text, fontsize=9.5, va="top")
        y -= 0.018 * (text.count("\n") + 1) + 0.02
    pdf.savefig(fig)
    plt.close(fig)


def handout_pdf(lesson: Lesson, results_folder=None) -> bytes:
    """The handout as PDF bytes (LessonError when the precomputed results are stale)."""
    results = load_results(lesson, results_folder)
    buf = io.BytesIO()
    with PdfPages(buf) as pdf:
        for n, step in enumerate(lesson.steps, start=1):
            _figure_page(pdf, lesson, n, step, results[step.state.attack_key()])
        if any(s.question for s in lesson.steps):
            _answers_page(pdf, lesson)
        info = pdf.infodict()
        info["Title"] = lesson.title
    return buf.getvalue()


def write_handout(lesson: Lesson, out, results_folder=None) -> Path:
    out = Path(out)
    out.write_bytes(handout_pdf(lesson, results_folder))
    return out
