"""`sputter`: RF magnetron sputtering (LiF) to a QCM thickness, on the chamber sequence of `steps.chamber`.

Plan: the deposition time from the sputter-rate model (physics.md §1.5) and the station's chamber geometry; a
thickness that the rate cannot reach within `max_time` is an error; an unbonded target above 1.5 W/cm^2 too.
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from pydantic import Field

from labctl.protocol.fields import Chem, NonNegative, Positive, Qty
from labctl.steps.base import PlanContext, StepContext
from labctl.steps.chamber import (
    ChamberKind,
    ChamberStep,
    Recipe,
    chamber_recipe,
    plan_chamber,
    run_chamber,
    sputter_rate,
)
from labctl.units import fmt

DEFAULT_TARGET_AREA, DEFAULT_DISTANCE = 20.3e-4, 0.08  # m^2, m (2" target at 8 cm) without a station


class Sputter(ChamberStep):
    """RF magnetron sputtering of `target` (LiF) in `gas` at `flow` (sccm) and `pressure` (Pa), `power` (W)
    ramped at `ramp_rate` (W/s), after pumping to `base_pressure` (Pa) and `presputter` (s) with the shutter
    closed; deposit until the QCM reads `thickness` (m) or `max_time` (s) has passed. `max_reflected`
    (fraction of forward) trips the RF; `max_substrate_temperature` (degC) needs a `substrate` sensor on the
    station."""

    kind: Literal["sputter"] = "sputter"
    target: Chem = "LiF"
    gas: Chem = "Ar"
    presputter: NonNegative("duration") = 300.0
    thickness: Positive("length")
    max_time: Positive("duration")
    tooling: Qty("fraction", gt=0.0, le=10.0) = 1.0
    density: Positive("density") = 2640.0
    z_ratio: float = Field(0.778, gt=0, le=10)
    max_reflected: Qty("fraction", gt=0.0, le=1.0) = 0.05


def recipe(step: Sputter) -> Recipe:
    return chamber_recipe(step, gas=step.gas, presputter=step.presputter, limit_s=step.max_time,
                          thickness=step.thickness, film=(step.density, step.z_ratio, step.tooling),
                          max_reflected=step.max_reflected)


class SputterKind(ChamberKind[Sputter]):
    KIND = "sputter"
    MODEL = Sputter
    ROLES = ("gauge", "mfc", "rf", "qcm")
    OPTIONAL_ROLES = ("substrate",)
    PLAN_ONLY = frozenset({"label", "target"})  # the target is mounted by hand; the plan checks its geometry
    INSTRUMENT_LIMITS: ClassVar[dict[str, tuple[str, str]]] = {
        **ChamberKind.INSTRUMENT_LIMITS,
        "thickness": ("qcm", "thickness"),
    }

    def value(self, step: Sputter, name: str, p: PlanContext) -> float | None:
        area = p.station.chamber.target_area if p.station and p.station.chamber else DEFAULT_TARGET_AREA
        if name == "power_density":
            return step.power / area
        if name == "ramp_density":
            return step.ramp_rate / area
        return super().value(step, name, p)

    def plan(self, step: Sputter, p: PlanContext) -> None:
        chamber = p.station.chamber if p.station else None
        area = chamber.target_area if chamber else DEFAULT_TARGET_AREA
        dist = chamber.distance if chamber else DEFAULT_DISTANCE
        rate = sputter_rate(step.power, area, dist, step.pressure)
        dep = step.thickness / rate if rate > 0 else math.inf
        if dep > step.max_time:
            p.error(
                f"at the estimated {rate * 6e10:.3g} nm/min, {fmt(step.thickness, 'length')} "
                f"needs {dep / 60:.0f} min, more than max_time {step.max_time / 60:.0f} min"
            )
        if chamber is not None and chamber.target != step.target:
            p.warn(f"target {step.target}, but the station's chamber holds {chamber.target}")
        p.ps.duration = plan_chamber(p, recipe(step)) + min(dep, step.max_time)
        p.ps.values["estimated_rate_nm_per_min"] = rate * 6e10
        p.ps.summary = (
            f"{step.target} {step.thickness * 1e9:.0f} nm at {step.power:g} W, "
            f"{fmt(step.pressure, 'pressure')} {step.gas} (~{rate * 6e10:.2g} nm/min)"
        )
        if chamber and not chamber.bonded and step.power / area > 1.5e4:
            p.error("power density above 1.5 W/cm^2 on an unbonded target")

    def run(self, ctx: StepContext, step: Sputter) -> None:
        run_chamber(ctx, recipe(step))

    def estimate(self, step: Sputter) -> float:
        return step.max_time


KIND_CLASS = SputterKind
