"""`wait`: time passes on the run's clock (pausable, interlocks live)."""

from __future__ import annotations

from typing import Literal

from labctl.protocol.fields import Positive
from labctl.steps.base import PlanContext, StepContext, StepKind, StepModel
from labctl.steps.errors import RunAborted
from labctl.units import fmt


class Wait(StepModel):
    """Do nothing for `duration` (s)."""

    kind: Literal["wait"] = "wait"
    duration: Positive("duration")


def timed_wait(ctx: StepContext, seconds: float) -> None:
    """Sleep `seconds` through `ctx.sleep`, recording commanded and achieved time (an abort: `deviated`)."""
    ctx.achieved["commanded_time_s"] = seconds
    start = ctx.clock.monotonic()
    try:
        ctx.sleep(seconds, label=ctx.kind, total=seconds)
    except RunAborted:
        ctx.achieved["time_s"] = ctx.clock.monotonic() - start
        ctx.status, ctx.reason = "deviated", f"run aborted during the {ctx.kind}"
        raise
    ctx.achieved["time_s"] = ctx.clock.monotonic() - start


class WaitKind(StepKind[Wait]):
    KIND = "wait"
    MODEL = Wait

    def plan(self, step: Wait, p: PlanContext) -> None:
        p.ps.duration = step.duration
        p.ps.summary = fmt(step.duration, "duration")

    def run(self, ctx: StepContext, step: Wait) -> None:
        timed_wait(ctx, step.duration)

    def estimate(self, step: Wait) -> float:
        return step.duration


KIND_CLASS = WaitKind
