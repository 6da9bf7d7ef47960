"""`rate_test`: symmetric cycling through stages of current density at one areal capacity (shared machinery
in `steps.cycling`); the step ends at the first stage a short or the voltage limit cuts short."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, Field

from labctl.protocol.fields import STRICT, Count, NonNegative, Positive
from labctl.steps.base import PlanContext, StepContext
from labctl.steps.cycling import CyclingModel, Galvanostatic, ShortDetection, area
from labctl.units import fmt


class RateStage(BaseModel):
    """One stage of a rate test: `current_density` (A/m^2) for `cycles`."""

    model_config = STRICT
    current_density: Positive("current_density")
    cycles: Count(ge=1, le=100_000)


class RateTest(CyclingModel):
    """Symmetric cycling through `stages` of increasing current density at fixed `capacity` (C/m^2), sampling
    every `sample_every` (s), compliance `voltage_limit` (V), `rest` (s) at open circuit between
    half-cycles."""

    kind: Literal["rate_test"] = "rate_test"
    stages: list[RateStage] = Field(min_length=1, max_length=100)
    capacity: Positive("areal_capacity")
    sample_every: Positive("duration") = 1.0
    voltage_limit: Positive("voltage")
    rest: NonNegative("duration") = 0.0


class RateTestKind(Galvanostatic):
    KIND = "rate_test"
    MODEL = RateTest

    def nominal(self, step: RateTest) -> float:
        halves = 2 * sum(s.cycles for s in step.stages)
        return (
            sum(s.cycles * 2 * step.capacity / s.current_density for s in step.stages)
            + (halves - 1) * step.rest
        )

    def detection(self, step: RateTest) -> ShortDetection | None:
        return None  # the physics.md §4.1 criteria only: a rate test has no `short_detection` block

    def value(self, step: RateTest, name: str, p: PlanContext) -> float | None:
        if name == "current_density":
            return max(s.current_density for s in step.stages)
        if name == "points":  # the longest half-cycle in one acquisition
            slowest = min(s.current_density for s in step.stages)
            return math.ceil(step.capacity / slowest / step.sample_every - 1e-9)
        if name == "current":
            return max(s.current_density for s in step.stages) * p.area
        return super().value(step, name, p)

    def plan(self, step: RateTest, p: PlanContext) -> None:
        p.ps.duration = self.nominal(step)
        p.ps.summary = (
            "stages "
            + ", ".join(f"{s.current_density / 10:g}×{s.cycles}" for s in step.stages)
            + " mA/cm^2×cycles at "
            + fmt(step.capacity, "areal_capacity")
        )
        self.plan_common(step, p, step.capacity)

    def run(self, ctx: StepContext, step: RateTest) -> None:
        pot, deadline = self.setup(ctx, step)
        total = sum(s.cycles for s in step.stages)
        ctx.achieved.update(
            commanded_stages=[
                {"current_density": s.current_density, "cycles": s.cycles} for s in step.stages
            ],
            current_a_max=max(s.current_density for s in step.stages) * area(ctx),
        )
        done: list[float] = []
        first, finished = 1, 0
        try:
            for k, s in enumerate(step.stages):
                ok = self.cycle(
                    ctx,
                    pot,
                    step,
                    j=s.current_density,
                    half_time=step.capacity / s.current_density,
                    cycles=s.cycles,
                    deadline=deadline,
                    first_cycle=first,
                    fraction=(finished / total, (finished + s.cycles) / total),
                    last=k == len(step.stages) - 1,
                )
                first, finished = first + s.cycles, finished + s.cycles
                done.append(s.current_density)
                ctx.achieved["current_densities_done"] = done
                if not ok:
                    break
        finally:
            pot.output(False)

    def estimate(self, step: RateTest) -> float:
        return self.nominal(step)


KIND_CLASS = RateTestKind
