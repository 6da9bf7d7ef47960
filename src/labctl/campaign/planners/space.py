"""The search space a planner sees: each campaign factor as a numeric axis or a set of choices, and the way
back from a planner's number to the `-p name=value` text a run is given.

A `range` factor is a continuous axis in its low end's unit (whole numbers for an integer parameter such as
`cycles`); `levels` and `categories` are choices of their texts, so a planner only ever proposes a value the
file allows. A positive range spanning a decade or more (15 s to 60 min, 0.02 to 0.24 M) is searched and
modelled on a log scale: a process such as layer growth acts on ratios of time and concentration, so its
optimum is a straight ridge in log–log space and a curved one in linear space. Texts are written with 4
significant digits, as the designs write them (`design._text`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from labctl.units import UnitError, quantity


@dataclass(frozen=True)
class Axis:
    """One factor: `low`/`high` in `unit` for a continuous axis (`integer` for whole-number parameters),
    else `choices` (texts). `log`: search and model it on a log scale (None: when it is positive, not
    whole-number and spans a decade or more)."""

    name: str
    low: float | None = None
    high: float | None = None
    unit: str = ""
    integer: bool = False
    choices: tuple[str, ...] = ()
    log: bool | None = None

    @property
    def continuous(self) -> bool:
        return self.low is not None

    @property
    def logscale(self) -> bool:
        if not self.continuous:
            return False
        assert self.low is not None and self.high is not None
        if self.log is not None:
            return self.log and self.low > 0
        return not self.integer and self.low > 0 and self.high >= 10.0 * self.low

    def text(self, x: float) -> str:
        """The run's value text of number `x` (clipped to the range)."""
        assert self.low is not None and self.high is not None
        x = min(max(float(x), self.low), self.high)
        if self.integer:
            return str(round(x))
        return f"{x:.4g} {self.unit}".strip()

    def number(self, text: Any) -> float:
        """The number on this axis of a value text (`UnitError` if it is not this axis's kind)."""
        q = quantity(text)
        if self.unit:
            return float(q.to(self.unit).magnitude)
        if not q.unitless:
            raise UnitError(f"`{text}` has a unit; `{self.name}` is a plain number")
        return float(q.magnitude)

    def unit_interval(self, text: Any) -> float:
        """The value as a fraction of the range (continuous, of its logarithm on a log axis) or its choice's
        place in [0, 1] (choices)."""
        if self.continuous:
            return float(self.to_unit(self.number(text)))
        k = self.choices.index(str(text))
        return k / (len(self.choices) - 1) if len(self.choices) > 1 else 0.5

    def to_unit(self, x: Any) -> Any:
        """Number(s) on a continuous axis as fraction(s) of its range (of the logarithm's on a log axis)."""
        assert self.low is not None and self.high is not None
        if self.logscale:
            return (np.log(x) - math.log(self.low)) / (math.log(self.high) - math.log(self.low))
        return (np.asarray(x, dtype=float) - self.low) / (self.high - self.low)

    def from_unit(self, u: Any) -> Any:
        """The inverse of `to_unit`."""
        assert self.low is not None and self.high is not None
        u = np.clip(np.asarray(u, dtype=float), 0.0, 1.0)
        if self.logscale:
            return np.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        return self.low + u * (self.high - self.low)


@dataclass(frozen=True)
class Space:
    axes: tuple[Axis, ...]

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.axes]

    def axis(self, name: str) -> Axis:
        return next(a for a in self.axes if a.name == name)

    def check(self, values: dict[str, Any]) -> list[str]:
        """Why `values` is not a point of this space (empty: it is): every factor given once, a continuous
        value of the factor's kind inside its range, a discrete value one of the file's."""
        errors = []
        missing = [n for n in self.names if n not in values]
        extra = [n for n in values if n not in self.names]
        if missing:
            errors.append(f"missing factor(s): {', '.join(missing)}")
        if extra:
            errors.append(f"unknown factor(s): {', '.join(extra)} (factors: {', '.join(self.names)})")
        for a in self.axes:
            if a.name not in values:
                continue
            v = values[a.name]
            if not a.continuous:
                if str(v) not in a.choices:
                    errors.append(f"{a.name}: `{v}` is not one of {', '.join(a.choices)}")
                continue
            try:
                x = a.number(v)
            except UnitError as exc:
                errors.append(f"{a.name}: `{v}`: {exc}")
                continue
            assert a.low is not None and a.high is not None
            tol = 1e-9 * max(abs(a.low), abs(a.high), 1.0)
            if not math.isfinite(x) or x < a.low - tol or x > a.high + tol:
                errors.append(f"{a.name}: `{v}` is outside the range [{a.text(a.low)}, {a.text(a.high)}]")
            elif a.integer and x != round(x):
                errors.append(f"{a.name}: `{v}` must be a whole number")
        return errors


def space_of(model: Any, defaults: dict[str, Any]) -> Space:
    """The space of a campaign model's factors; `defaults` are the protocol parameters' defaults (an integer
    default makes a whole-number axis)."""
    axes = []
    for name, f in model.factors.items():
        if f.range is not None:
            lo, hi = quantity(f.range[0]), quantity(f.range[1])
            unit = "" if lo.unitless else f"{lo.units:~}"
            d = defaults.get(name)
            integer = isinstance(d, int) and not isinstance(d, bool) and lo.unitless
            log = {"auto": None, "log": True, "linear": False}[f.scale]
            low, high = float(lo.magnitude), float(hi.to(lo.units).magnitude)
            axes.append(Axis(name, low, high, unit, integer, log=log))
        else:
            raw = f.levels if f.levels is not None else f.categories
            axes.append(Axis(name, choices=tuple(str(v) for v in raw or ())))
    return Space(tuple(axes))
