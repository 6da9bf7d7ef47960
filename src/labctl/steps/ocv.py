"""`ocv`: the open-circuit voltage for a duration, sampled into stream `ocv` (t, voltage), from the
potentiostat (zero current) or, on a station without one, the EIS instrument's OCP measurement."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from labctl.protocol.fields import Positive
from labctl.steps.base import PlanContext, StepContext, StepKind, StepModel, fail
from labctl.steps.streaming import streamed
from labctl.units import fmt

if TYPE_CHECKING:
    from labctl.station import Station


class Ocv(StepModel):
    """Open-circuit voltage for `duration` (s), sampled every `sample_every` (s)."""

    kind: Literal["ocv"] = "ocv"
    duration: Positive("duration")
    sample_every: Positive("duration") = 10.0


def sample_ocv(ctx: StepContext, duration: float, interval: float, *, role: str | None = None) -> np.ndarray:
    """Voltage at open circuit for `duration` s every `interval` s, stored in stream `ocv` as the points
    arrive; the voltages. `role="eis"` measures with the EIS instrument even where a potentiostat is there."""
    t_call = ctx.now()

    def store(part: Any) -> None:  # as the points arrive (crash loss <= 1 s)
        ctx.store_points("ocv", t=np.asarray(part.t, dtype=float) + t_call, voltage=part.voltage)

    if role != "eis" and ctx.has("potentiostat"):
        acquire = ctx.role("potentiostat").acquire
        trace: Any = streamed(acquire, store, current=0.0, duration=duration, interval=interval)
    elif ctx.has("eis"):
        trace = streamed(ctx.role("eis").ocp, store, duration=duration, interval=interval)
    else:
        raise fail(ctx, "sampling the open-circuit voltage needs a potentiostat or an EIS instrument")
    lag = t_call + duration - ctx.now()
    if lag > 0:
        ctx.clock.sleep(lag)
    return np.asarray(trace.voltage, dtype=float)


def ocv_roles(station: Station | None) -> list[str]:
    if station is not None and not station.has("potentiostat") and station.has("eis"):
        return ["eis"]
    return ["potentiostat"]


class OcvKind(StepKind[Ocv]):
    KIND = "ocv"
    MODEL = Ocv
    OPTIONAL_ROLES = ("potentiostat", "eis")
    INSTRUMENT_LIMITS: ClassVar[dict[str, tuple[str, str]]] = {
        "sample_every": ("potentiostat", "interval"),
        "points": ("potentiostat", "points"),
    }

    def roles(self, step: Ocv, station: Station | None) -> list[str]:
        return ocv_roles(station)

    def value(self, step: Ocv, name: str, p: PlanContext) -> float | None:
        if name == "points" and step.sample_every:
            return math.ceil(step.duration / step.sample_every - 1e-9)
        return super().value(step, name, p)

    def plan(self, step: Ocv, p: PlanContext) -> None:
        p.ps.duration = step.duration
        p.ps.summary = f"{fmt(step.duration, 'duration')}, every {fmt(step.sample_every, 'duration')}"

    def run(self, ctx: StepContext, step: Ocv) -> None:
        v = sample_ocv(ctx, step.duration, step.sample_every)
        ctx.achieved.update(
            commanded_time_s=step.duration, ocv_v=float(v[-1]) if len(v) else None, points=len(v)
        )

    def estimate(self, step: Ocv) -> float:
        return step.duration


KIND_CLASS = OcvKind
