"""Declarative parameter specifications shared by attribution methods, attacks and the UI.

Each method or attack declares its parameters once, as a tuple of :class:`Param`; the UI
builds its controls from those declarations and the library checks user values with
:func:`resolve`.  Nothing here knows about any particular method.

Example::

    specs = (Param("steps", "int", 50, min=1, max=1000, label="IG steps"),)
    resolve(specs, {"steps": 200})   # -> {"steps": 200}
    resolve(specs, None)             # -> {"steps": 50}
    resolve(specs, {"step": 3})      # ValueError: unknown parameter 'step'; allowed: steps
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

KINDS = ("int", "float", "choice", "bool")


@dataclass(frozen=True)
class Param:
    """One user-settable parameter.

    name:    key in the values dict (a Python identifier).
    kind:    "int" | "float" | "choice" | "bool".
    default: value used when the user gives none (must itself be valid).
    min/max: inclusive bounds for "int"/"float" (None = unbounded).
    step:    UI increment for sliders / number inputs (not enforced).
    choices: allowed values for "choice".
    label:   short display label (defaults to the name).
    help:    one plain sentence for a tooltip.
    unit:    unit shown beside the value ("px", "[0,1] units", ...).
    """

    name: str
    kind: str
    default: Any
    min: float | int | None = None
    max: float | int | None = None
    step: float | int | None = None
    choices: tuple | None = None
    label: str = ""
    help: str = ""
    unit: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"Param name must be a Python identifier, got {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"Param {self.name!r}: kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        if self.kind == "choice":
            if not self.choices:
                raise ValueError(f"Param {self.name!r}: kind 'choice' needs a non-empty choices tuple")
            object.__setattr__(self, "choices", tuple(self.choices))
        elif self.choices is not None:
            raise ValueError(f"Param {self.name!r}: choices are only allowed for kind 'choice'")
        if self.kind in ("choice", "bool") and (self.min is not None or self.max is not None):
            raise ValueError(f"Param {self.name!r}: min/max are only allowed for kinds 'int' and 'float'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"Param {self.name!r}: min {self.min} is greater than max {self.max}")
        # The default must pass the same check as any user value.
        object.__setattr__(self, "default", self.check(self.default))

    @property
    def display_label(self) -> str:
        return self.label or self.name.replace("_", " ")

    def allowed(self) -> str:
        """Plain-text description of the allowed values, for error messages and help."""
        if self.kind == "bool":
            return "true or false"
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        noun = "an integer" if self.kind == "int" else "a finite number"
        if self.min is not None and self.max is not None:
            return f"{noun} in [{self.min}, {self.max}]"
        if self.min is not None:
            return f"{noun} >= {self.min}"
        if self.max is not None:
            return f"{noun} <= {self.max}"
        return noun

    def check(self, value: Any) -> Any:
        """Return ``value`` converted to this parameter's type, or raise ValueError."""
        where = f"parameter {self.name!r}"
        if self.kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, numbers.Integral) and value in (0, 1):
                return bool(value)
            raise ValueError(f"{where} must be {self.allowed()}; got {value!r}")
        if self.kind == "choice":
            if value in self.choices:
                # Return the canonical choice object (e.g. the declared string).
                return self.choices[self.choices.index(value)]
            raise ValueError(f"{where} must be {self.allowed()}; got {value!r}")
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ValueError(f"{where} must be {self.allowed()}; got {value!r}")
        if self.kind == "int":
            if isinstance(value, numbers.Integral):
                out: Any = int(value)
            elif math.isfinite(float(value)) and float(value).is_integer():
                out = int(value)
            else:
                raise ValueError(f"{where} must be {self.allowed()}; got {value!r}")
        else:
            out = float(value)
            if not math.isfinite(out):
                raise ValueError(f"{where} must be {self.allowed()}; got {value!r}")
        if (self.min is not None and out < self.min) or (self.max is not None and out > self.max):
            raise ValueError(f"{where} must be {self.allowed()}; got {value!r}")
        return out


def resolve(specs: Sequence[Param], values: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check ``values`` against ``specs`` and fill in defaults.

    Returns a new dict with one entry per spec, in spec order. Unknown names are refused
    (a typo should not be silently ignored); every error is a ValueError that names what
    is allowed.
    """
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ValueError(f"parameters must be a dict of name -> value; got {type(values).__name__}")
    by_name = {p.name: p for p in specs}
    unknown = [k for k in values if k not in by_name]
    if unknown:
        allowed = ", ".join(by_name) if by_name else "(none: this takes no parameters)"
        raise ValueError(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(k) for k in unknown)}; allowed: {allowed}"
        )
    return {p.name: (p.check(values[p.name]) if p.name in values else p.default) for p in specs}
