"""`cycle_symmetric`: galvanostatic Li|Li cycling at one current density (shared machinery in
`steps.cycling`).

Plan: `cycles` x 2 half-cycles of `capacity / current_density` (or `half_cycle`) plus a `rest` between
half-cycles; the capacity against the Li inventory; current and compliance against the potentiostat's limits.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from labctl.protocol.fields import Count, NonNegative, Positive
from labctl.steps.base import PlanContext, StepContext
from labctl.steps.cycling import CyclingModel, Galvanostatic, ShortDetection, area
from labctl.units import fmt


class CycleSymmetric(CyclingModel):
    """Galvanostatic Li|Li cycling at `current_density` (A/m^2) for `capacity` (C/m^2) per half-cycle (or
    `half_cycle` s), `cycles` times, sampling every `sample_every` (s), compliance `voltage_limit` (V),
    `rest` (s) at open circuit between half-cycles (voltage sampled)."""

    kind: Literal["cycle_symmetric"] = "cycle_symmetric"
    current_density: Positive("current_density")
    capacity: Positive("areal_capacity") | None = None
    half_cycle: Positive("duration") | None = None
    cycles: Count(ge=1, le=1_000_000)
    sample_every: Positive("duration") = 1.0
    voltage_limit: Positive("voltage")
    rest: NonNegative("duration") = 0.0
    short_detection: ShortDetection = Field(default_factory=ShortDetection)

    @model_validator(mode="after")
    def _capacity_or_time(self) -> CycleSymmetric:
        if (self.capacity is None) == (self.half_cycle is None):
            raise ValueError("give exactly one of `capacity` or `half_cycle`")
        return self

    @property
    def half_time(self) -> float:
        if self.half_cycle is not None:
            return self.half_cycle
        assert self.capacity is not None
        return self.capacity / self.current_density


class CycleSymmetricKind(Galvanostatic):
    KIND = "cycle_symmetric"
    MODEL = CycleSymmetric

    def nominal(self, step: CycleSymmetric) -> float:
        return step.cycles * 2 * step.half_time + (2 * step.cycles - 1) * step.rest

    def value(self, step: CycleSymmetric, name: str, p: PlanContext) -> float | None:
        if name == "current":
            return step.current_density * p.area
        if name == "points":  # one acquisition holds a whole half-cycle (cut to 60 s only on a real clock)
            return math.ceil(step.half_time / step.sample_every - 1e-9)
        return super().value(step, name, p)

    def plan(self, step: CycleSymmetric, p: PlanContext) -> None:
        cap = step.capacity if step.capacity is not None else step.half_time * step.current_density
        p.ps.duration = self.nominal(step)
        p.ps.summary = (
            f"{step.cycles} cycles at {fmt(step.current_density, 'current_density')}, "
            f"{fmt(cap, 'areal_capacity')} (I = {fmt(step.current_density * p.area, 'current')})"
            + (f", rest {fmt(step.rest, 'duration')}" if step.rest else "")
        )
        self.plan_common(step, p, cap)

    def run(self, ctx: StepContext, step: CycleSymmetric) -> None:
        pot, deadline = self.setup(ctx, step)
        ctx.achieved.update(
            commanded_cycles=step.cycles,
            current_a=step.current_density * area(ctx),
            voltage_limit_v=step.voltage_limit,
        )
        try:
            self.cycle(
                ctx,
                pot,
                step,
                j=step.current_density,
                half_time=step.half_time,
                cycles=step.cycles,
                deadline=deadline,
            )
        finally:
            pot.output(False)

    def estimate(self, step: CycleSymmetric) -> float:
        return self.nominal(step)


KIND_CLASS = CycleSymmetricKind
