"""Interlocks: conditions watched during steps. A trip raises `InterlockTripped` carrying the action the run
takes (`fail` the step, `pause` the run, `end_step` early, or `abort`), after any immediate protective action
(RF off for a chamber pressure fault, heater off for a runaway bath).

Interlocks are checked by `StepContext.sleep` and by step kinds at their own safe points, at most every
`period` seconds of run time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from labctl.steps.errors import InterlockTripped

ACTIONS = ("fail", "pause", "end_step", "abort")


class Interlock:
    """Base: `read()` a value, compare to the window, trip with `action`."""

    name = "interlock"

    def __init__(self, *, action: str = "fail", period: float = 1.0) -> None:
        if action not in ACTIONS:
            raise ValueError(f"interlock action must be one of {ACTIONS}, got {action!r}")
        self.action = action
        self.period = period
        self.last_check = -math.inf
        self.last_value: float | None = None

    def check(self) -> None:
        """Raise `InterlockTripped` if the condition is violated."""
        raise NotImplementedError

    def trip(self, message: str, value: float | None = None) -> None:
        raise InterlockTripped(self.name, message, action=self.action, value=value)


class PressureWindow(Interlock):
    """Chamber pressure within [low, high] Pa; on a trip the RF is switched off at once."""

    name = "chamber_pressure"

    def __init__(self, gauge: Any, low: float, high: float, *, rf: Any = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.gauge, self.low, self.high, self.rf = gauge, low, high, rf

    def check(self) -> None:
        p = self.last_value = float(self.gauge.pressure())
        if not self.low <= p <= self.high:
            if self.rf is not None:
                self.rf.rf_off()
            self.trip(
                f"pressure {p:.3g} Pa outside [{self.low:.3g}, {self.high:.3g}] Pa (RF switched off)", p
            )


class TemperatureBand(Interlock):
    """Bath temperature within target ± band degC."""

    name = "bath_temperature"

    def __init__(self, hotplate: Any, target: float, band: float, **kw: Any) -> None:
        super().__init__(**kw)
        self.hotplate, self.target, self.band = hotplate, target, band

    def check(self) -> None:
        t = self.last_value = float(self.hotplate.bath_temperature())
        if abs(t - self.target) > self.band:
            self.trip(f"bath at {t:.2f} degC, outside {self.target:g} ± {self.band:g} degC", t)


class ComplianceTrip(Interlock):
    """The potentiostat's voltage limit (compliance) tripped."""

    name = "compliance"

    def __init__(self, potentiostat: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.potentiostat = potentiostat

    def check(self) -> None:
        if self.potentiostat.limit_tripped():
            self.trip("the potentiostat's voltage limit tripped")


class Condition(Interlock):
    """Any callable returning None when fine or a message when tripped (e.g. a short-circuit detector)."""

    def __init__(self, name: str, test: Callable[[], str | None], **kw: Any) -> None:
        super().__init__(**kw)
        self.name = name
        self.test = test

    def check(self) -> None:
        msg = self.test()
        if msg:
            self.trip(msg)


class Watch:
    """The interlocks active now; `check(now)` runs those whose period has elapsed."""

    def __init__(self) -> None:
        self.active: list[Interlock] = []

    def add(self, interlock: Interlock) -> Interlock:
        self.active.append(interlock)
        return interlock

    def remove(self, interlock: Interlock) -> None:
        if interlock in self.active:
            self.active.remove(interlock)

    def check(self, now: float, *, force: bool = False) -> None:
        for il in list(self.active):
            if force or now - il.last_check >= il.period:
                il.last_check = now
                il.check()
