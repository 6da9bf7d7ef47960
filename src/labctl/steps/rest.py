"""`rest`: the cell rests at open circuit for a duration; with `sample_every` its voltage is sampled into
stream `ocv` (potentiostat at zero current), otherwise time just passes (pausable, interlocks live)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, Literal

from labctl.protocol.fields import Positive
from labctl.steps.base import PlanContext, StepContext, StepKind, StepModel
from labctl.steps.errors import RunAborted
from labctl.steps.ocv import ocv_roles, sample_ocv
from labctl.steps.wait import timed_wait
from labctl.units import fmt

if TYPE_CHECKING:
    from labctl.station import Station


class Rest(StepModel):
    """Rest at open circuit for `duration` (s), optionally sampling the voltage every `sample_every` (s)."""

    kind: Literal["rest"] = "rest"
    duration: Positive("duration")
    sample_every: Positive("duration") | None = None


class RestKind(StepKind[Rest]):
    KIND = "rest"
    MODEL = Rest
    OPTIONAL_ROLES = ("potentiostat", "eis")
    INSTRUMENT_LIMITS: ClassVar[dict[str, tuple[str, str]]] = {
        "sample_every": ("potentiostat", "interval"),
        "points": ("potentiostat", "points"),
    }

    def roles(self, step: Rest, station: Station | None) -> list[str]:
        return ocv_roles(station) if step.sample_every is not None else []

    def value(self, step: Rest, name: str, p: PlanContext) -> float | None:
        if name == "points" and step.sample_every:
            return math.ceil(step.duration / step.sample_every - 1e-9)
        return super().value(step, name, p)

    def plan(self, step: Rest, p: PlanContext) -> None:
        p.ps.duration = step.duration
        p.ps.summary = fmt(step.duration, "duration") + (
            f", voltage every {fmt(step.sample_every, 'duration')}" if step.sample_every is not None else ""
        )

    def run(self, ctx: StepContext, step: Rest) -> None:
        if step.sample_every is None:
            timed_wait(ctx, step.duration)
            return
        start = ctx.clock.monotonic()
        ctx.achieved["commanded_time_s"] = step.duration
        try:
            v = sample_ocv(ctx, step.duration, step.sample_every)
        except RunAborted:
            ctx.achieved["time_s"] = ctx.clock.monotonic() - start
            ctx.status, ctx.reason = "deviated", "run aborted during the rest"
            raise
        ctx.achieved.update(
            time_s=ctx.clock.monotonic() - start, ocv_v=float(v[-1]) if len(v) else None, points=len(v)
        )

    def estimate(self, step: Rest) -> float:
        return step.duration


KIND_CLASS = RestKind
