"""Attacks are admitted by their estimated cost: a link cannot start a long attack on open
without a click, and a job above the stated limits is refused with what is allowed."""

from __future__ import annotations

from explorer import cost

from app_helpers import metric_table, new_app


def _mnist_ig(steps: int) -> cost.Decision:
    est = cost.estimate_attack("mnist", "integrated_gradients", {}, steps=steps)
    return cost.decide(est)


def test_a_link_with_run_does_not_start_a_long_attack_without_a_click():
    steps = next(s for s in (50, 100, 200, 400, 800, 1600) if _mnist_ig(s).action == "confirm")
    at = new_app(method="integrated_gradients", **{"a.steps": str(steps), "run": "1"})
    at.run()
    assert not at.exception
    infos = " ".join(i.value for i in at.info)
    assert "asks to run the attack on open" in infos and "Click to start" in infos
    assert "attack" not in metric_table(at)  # not run: only the random-sign column


def test_an_attack_above_the_limits_is_refused_with_what_is_allowed():
    at = new_app(method="integrated_gradients",
                 **{"m.steps": "1000", "a.steps": "5000", "a.restarts": "3", "run": "1"})
    at.run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "Refused" in errors and "allowed" in errors
    at.button(key="exp.run").click().run()  # a click does not override a refusal
    assert "attack" not in metric_table(at)
