"""The explorer's one-line statement of what the page shows, as plain text (no streamlit).

Built from the current view: which maps are compared, of which image and model, the headline
score with its chance level, and what happened to the prediction. The page shows it above the
pictures (escaped: it may hold a class name from a dataset's label file).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .common import fmt

__all__ = ["HEADLINE_METRIC", "Headline", "statement", "verdict"]

HEADLINE_METRIC = "topk_intersection"  # the score the statement quotes


@dataclass(frozen=True)
class Headline:
    """What the statement is built from (every text already in the app's words)."""

    method: str  # "Simple Gradients"
    predicted: str  # class name of the original prediction, "7"
    model: str  # "MNIST CNN, natural training"
    pair: str  # "attack" or "random sign": what the original map is compared with
    score: float  # top-k intersection of the pair at the page's k, w
    chance: float  # its unrelated-image level (NaN when unknown)
    k: int
    # only for pair == "attack":
    found: bool = True  # a label-preserving x′ was found
    label_kept: bool = True
    attacked: str = ""  # class name of the attacked prediction


def verdict(score: float, chance: float) -> str:
    """How far the map moved, judged by the chance-normalised score (score − chance) /
    (1 − chance): ≤ 0.1 no closer than an unrelated image's map, < 0.5 moved, < 0.9 partly
    moved, else held."""
    if math.isnan(score):
        return "the score is undefined for these maps"
    if math.isnan(chance) or chance >= 1:
        norm = score
    else:
        norm = (score - chance) / (1 - chance)
    if norm <= 0.1:
        return "no closer than the map of an unrelated image"
    if norm < 0.5:
        return "the map moved a lot"
    if norm < 0.9:
        return "the map moved in part"
    return "the map barely moved"


def _score(h: Headline) -> str:
    chance = "" if math.isnan(h.chance) else f", chance {fmt(h.chance, 2)}"
    return f"top-k intersection {fmt(h.score, 2)} at k = {h.k}{chance}"


def statement(h: Headline) -> str:
    """One line, e.g. "Original vs attacked Simple Gradients map of an image classified as 7
    (model: MNIST CNN, natural training): top-k intersection 0.09 at k = 100, chance 0.13 — no
    closer than the map of an unrelated image, while the prediction stayed 7."."""
    subject = f"map of an image classified as {h.predicted} (model: {h.model})"
    if h.pair != "attack":
        return (f"{h.method} {subject} vs the map under random sign noise: {_score(h)} — "
                f"{verdict(h.score, h.chance)}. Run the attack to perturb the explanation on "
                "purpose.")
    if not h.found:
        return (f"Original vs attacked {h.method} {subject}: the attack found no "
                "label-preserving perturbation, so the attacked image is the original and "
                "its scores compare the map with itself.")
    if not h.label_kept:
        return (f"Original vs attacked {h.method} {subject}: {_score(h)} — but the prediction "
                f"changed to {h.attacked}, so this is not an attack on the explanation alone.")
    return (f"Original vs attacked {h.method} {subject}: {_score(h)} — "
            f"{verdict(h.score, h.chance)}, while the prediction stayed {h.predicted}.")
