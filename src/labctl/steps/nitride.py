"""`nitride`: N2-plasma nitridation of the Li surface (Li3N) for a time, on the chamber sequence of
`steps.chamber`. The gas's impurity (O2 + H2O) is a plan-time limit: nothing on the bench measures it.
"""

from __future__ import annotations

from typing import Literal

from labctl.protocol.fields import Chem, Positive, Qty
from labctl.steps.base import PlanContext, StepContext
from labctl.steps.chamber import ChamberKind, ChamberStep, Recipe, chamber_recipe, plan_chamber, run_chamber
from labctl.units import fmt

REFLECTED_TRIP = 0.20  # physics.md §1.8: > 20 % reflected trips the RF (a nitride step has no field for it)


class Nitride(ChamberStep):
    """N2-plasma nitridation (Li3N): `gas` (N2, `impurity` as fraction O2+H2O) at `flow` (sccm) and
    `pressure` (Pa), plasma `power` (W, ramped at `ramp_rate` W/s) for `time` (s) after `base_pressure` (Pa);
    `max_substrate_temperature` (degC) needs a `substrate` sensor on the station."""

    kind: Literal["nitride"] = "nitride"
    gas: Chem = "N2"
    impurity: Qty("fraction") = 1e-6
    time: Positive("duration")


def recipe(step: Nitride) -> Recipe:
    return chamber_recipe(step, gas=step.gas, presputter=0.0, limit_s=step.time, thickness=None, film=None,
                          max_reflected=REFLECTED_TRIP)


class NitrideKind(ChamberKind[Nitride]):
    KIND = "nitride"
    MODEL = Nitride
    ROLES = ("gauge", "mfc", "rf")
    OPTIONAL_ROLES = ("qcm", "substrate")
    PLAN_ONLY = frozenset({"label", "impurity"})

    def plan(self, step: Nitride, p: PlanContext) -> None:
        p.ps.duration = plan_chamber(p, recipe(step)) + step.time
        p.ps.summary = (
            f"{step.gas} plasma {step.power:g} W, {fmt(step.pressure, 'pressure')}, {step.time / 60:g} min"
        )

    def run(self, ctx: StepContext, step: Nitride) -> None:
        run_chamber(ctx, recipe(step))

    def estimate(self, step: Nitride) -> float:
        return step.time


KIND_CLASS = NitrideKind
