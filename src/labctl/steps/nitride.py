"""`nitride`: N2-plasma nitridation of the Li surface (Li3N) for a time, on the chamber sequence of
`steps.chamber`. The gas's impurity (O2 + H2O) is a plan-time limit: nothing on the bench measures it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from labctl.protocol.fields import Chem, Positive, Qty
from labctl.steps.base import PlanContext, StepContext, StepKind, StepModel
from labctl.steps.chamber import PressureFault, Recipe, plan_chamber, run_chamber
from labctl.units import fmt

if TYPE_CHECKING:
    from labctl.station import Station

REFLECTED_TRIP = 0.20  # physics.md §1.8: > 20 % reflected trips the RF (a nitride step has no field for it)


class Nitride(StepModel):
    """N2-plasma nitridation (Li3N): `gas` (N2, `impurity` as fraction O2+H2O) at `flow` (sccm) and
    `pressure` (Pa), plasma `power` (W, ramped at `ramp_rate` W/s) for `time` (s) after `base_pressure` (Pa);
    `max_substrate_temperature` (degC) needs a `substrate` sensor on the station."""

    kind: Literal["nitride"] = "nitride"
    gas: Chem = "N2"
    impurity: Qty("fraction") = 1e-6
    flow: Positive("gas_flow")
    pressure: Positive("pressure")
    power: Positive("power")
    ramp_rate: Positive("power_rate")
    base_pressure: Positive("pressure")
    time: Positive("duration")
    max_substrate_temperature: Qty("temperature") | None = None
    on_pressure_fault: PressureFault = "fail"


def recipe(step: Nitride) -> Recipe:
    return Recipe(
        gas=step.gas,
        flow=step.flow,
        pressure=step.pressure,
        power=step.power,
        ramp_rate=step.ramp_rate,
        base_pressure=step.base_pressure,
        presputter=0.0,
        limit_s=step.time,
        thickness=None,
        film=None,
        max_reflected=REFLECTED_TRIP,
        max_substrate_temperature=step.max_substrate_temperature,
        on_pressure_fault=step.on_pressure_fault,
    )


class NitrideKind(StepKind[Nitride]):
    KIND = "nitride"
    MODEL = Nitride
    ROLES = ("gauge", "mfc", "rf")
    OPTIONAL_ROLES = ("qcm", "substrate")
    PLAN_ONLY = frozenset({"label", "impurity"})
    INSTRUMENT_LIMITS: ClassVar[dict[str, tuple[str, str]]] = {
        "power": ("rf", "power"),
        "flow": ("mfc", "flow"),
        "pressure": ("gauge", "pressure"),
    }
    MAKES_SAMPLE = True

    def roles(self, step: Nitride, station: Station | None) -> list[str]:
        return list(self.ROLES) + (["substrate"] if step.max_substrate_temperature is not None else [])

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
