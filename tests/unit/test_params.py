"""Tests for explorer.params: declarative parameter specs and resolve()."""

import math

import pytest

from explorer.params import Param, resolve

SPECS = (
    Param("steps", "int", 50, min=1, max=1000, label="IG steps"),
    Param("sigma", "float", 0.15, min=0.0, max=1.0),
    Param("baseline", "choice", "zeros", choices=("zeros", "blur", "uniform")),
    Param("abs", "bool", True),
)


def test_defaults_filled_in_spec_order():
    assert resolve(SPECS, None) == {"steps": 50, "sigma": 0.15, "baseline": "zeros", "abs": True}
    assert list(resolve(SPECS, {"abs": False})) == ["steps", "sigma", "baseline", "abs"]


def test_values_converted_to_declared_type():
    out = resolve(SPECS, {"steps": 200.0, "sigma": 1, "baseline": "blur", "abs": 0})
    assert out == {"steps": 200, "sigma": 1.0, "baseline": "blur", "abs": False}
    assert type(out["steps"]) is int and type(out["sigma"]) is float and out["abs"] is False


def test_bounds_are_inclusive():
    assert resolve(SPECS, {"steps": 1})["steps"] == 1
    assert resolve(SPECS, {"steps": 1000})["steps"] == 1000
    assert resolve(SPECS, {"sigma": 0.0})["sigma"] == 0.0


def test_unknown_name_refused_with_allowed_list():
    with pytest.raises(ValueError, match=r"unknown parameter 'step'.*allowed: steps, sigma, baseline, abs"):
        resolve(SPECS, {"step": 3})


def test_unknown_name_when_no_params():
    with pytest.raises(ValueError, match="takes no parameters"):
        resolve((), {"x": 1})


@pytest.mark.parametrize(
    "values, pattern",
    [
        ({"steps": 0}, r"'steps' must be an integer in \[1, 1000\]; got 0"),
        ({"steps": 1001}, r"'steps' must be an integer in \[1, 1000\]"),
        ({"steps": 2.5}, r"'steps' must be an integer"),
        ({"steps": "10"}, r"'steps' must be an integer"),
        ({"steps": True}, r"'steps' must be an integer"),
        ({"sigma": -0.1}, r"'sigma' must be a finite number in \[0.0, 1.0\]"),
        ({"sigma": math.nan}, r"'sigma' must be a finite number"),
        ({"sigma": math.inf}, r"'sigma' must be a finite number"),
        ({"baseline": "black"}, r"'baseline' must be one of 'zeros', 'blur', 'uniform'; got 'black'"),
        ({"abs": "yes"}, r"'abs' must be true or false"),
        ({"abs": 2}, r"'abs' must be true or false"),
    ],
)
def test_bad_values_raise_with_allowed_range(values, pattern):
    with pytest.raises(ValueError, match=pattern):
        resolve(SPECS, values)


def test_values_must_be_a_mapping():
    with pytest.raises(ValueError, match="must be a dict"):
        resolve(SPECS, [("steps", 3)])


def test_one_sided_bounds_in_message():
    spec = (Param("k", "int", 5, min=1),)
    with pytest.raises(ValueError, match=r"an integer >= 1"):
        resolve(spec, {"k": 0})
    assert resolve(spec, {"k": 10**6}) == {"k": 10**6}


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(name="n", kind="text", default=1), "kind must be one of int, float, choice, bool"),
        (dict(name="n", kind="int", default=0, min=1), r"'n' must be an integer >= 1; got 0"),
        (dict(name="n", kind="choice", default="a"), "needs a non-empty choices"),
        (dict(name="n", kind="int", default=1, choices=(1, 2)), "choices are only allowed"),
        (dict(name="n", kind="int", default=1, min=3, max=2), "min 3 is greater than max 2"),
        (dict(name="n-1", kind="int", default=1), "identifier"),
        (dict(name="n", kind="bool", default=True, min=0), "min/max are only allowed"),
    ],
)
def test_bad_declarations_rejected(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        Param(**kwargs)


def test_param_is_frozen_and_hashable():
    p = SPECS[0]
    with pytest.raises(AttributeError):
        p.default = 3  # type: ignore[misc]
    assert hash(p) == hash(Param("steps", "int", 50, min=1, max=1000, label="IG steps"))
    assert p.display_label == "IG steps" and SPECS[1].display_label == "sigma"
