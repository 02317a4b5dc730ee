"""The explorer's one-line statement: hand-built states and the normalised-score thresholds."""

from __future__ import annotations

import math

import pytest

from explorer.ui.headline import Headline, statement, verdict

BASE = dict(method="Simple Gradients", predicted="7", model="MNIST CNN, natural training", k=100)


@pytest.mark.parametrize("score, chance, words", [
    (0.09, 0.13, "no closer than the map of an unrelated image"),  # below chance
    (0.2, 0.13, "no closer than the map of an unrelated image"),  # norm 0.08
    (0.4, 0.2, "the map moved a lot"),  # norm 0.25
    (0.8, 0.2, "the map moved in part"),  # norm 0.75
    (0.96, 0.2, "the map barely moved"),  # norm 0.95
    (0.95, math.nan, "the map barely moved"),  # no chance level: the score itself
    (math.nan, 0.2, "undefined"),
])
def test_verdict_by_the_chance_normalised_score(score, chance, words):
    assert words in verdict(score, chance)


def test_attack_statement():
    line = statement(Headline(pair="attack", score=0.09, chance=0.13, attacked="7", **BASE))
    assert line == ("Original vs attacked Simple Gradients map of an image classified as 7 "
                    "(model: MNIST CNN, natural training): top-k intersection 0.09 at k = 100, "
                    "chance 0.13 — no closer than the map of an unrelated image, while the "
                    "prediction stayed 7.")


def test_random_sign_failed_and_label_changed_statements():
    noise = statement(Headline(pair="random sign", score=0.62, chance=math.nan, **BASE))
    assert "vs the map under random sign noise: top-k intersection 0.62 at k = 100 —" in noise
    assert "chance" not in noise
    none = statement(Headline(pair="attack", score=1.0, chance=0.1, found=False, **BASE))
    assert "no label-preserving perturbation" in none and "1.00" not in none
    flipped = statement(Headline(pair="attack", score=0.3, chance=0.1, label_kept=False,
                                 attacked="1", **BASE))
    assert "the prediction changed to 1" in flipped
