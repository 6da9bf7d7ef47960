"""Limits declared once per driver and used both by `labctl plan` and at run time.

A driver class declares `LIMITS: dict[str, Limit]` (SI units). A station file may tighten a limit
(never widen it). `check` raises `LimitViolation` before any byte reaches the instrument.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from labctl.errors import LimitViolation


@dataclass(frozen=True)
class Limit:
    """Closed interval [low, high] for one quantity, in SI units (temperatures in degC)."""

    name: str
    unit: str
    low: float = -math.inf
    high: float = math.inf
    note: str = ""

    def tightened(self, low: float | None = None, high: float | None = None) -> Limit:
        """A copy narrowed by a station's limits; widening is refused."""
        new_low = self.low if low is None else low
        new_high = self.high if high is None else high
        if new_low < self.low or new_high > self.high:
            raise LimitViolation(
                f"station limit for {self.name} [{new_low:g}, {new_high:g}] {self.unit} is wider than the "
                f"instrument's [{self.low:g}, {self.high:g}] {self.unit}"
            )
        return replace(self, low=new_low, high=new_high)

    def check(self, value: float, *, instrument: str = "") -> float:
        """Return `value` if inside the limit, else raise `LimitViolation`."""
        if not math.isfinite(value):
            raise LimitViolation(f"{_who(instrument)}{self.name} must be a finite number, got {value!r}")
        if value < self.low or value > self.high:
            raise LimitViolation(
                f"{_who(instrument)}{self.name} = {value:g} {self.unit} is outside "
                f"[{self.low:g}, {self.high:g}] {self.unit}" + (f" ({self.note})" if self.note else "")
            )
        return value


def _who(instrument: str) -> str:
    return f"{instrument}: " if instrument else ""


def apply_station_limits(limits: dict[str, Limit], overrides: dict[str, tuple[float | None, float | None]]
                         ) -> dict[str, Limit]:
    """Tighten a driver's limits with a station's `{name: (low, high)}`; unknown names are an error."""
    out = dict(limits)
    for name, (low, high) in overrides.items():
        if name not in out:
            known = ", ".join(sorted(out)) or "none"
            raise LimitViolation(f"unknown limit {name!r} (this instrument has: {known})")
        out[name] = out[name].tightened(low, high)
    return out
