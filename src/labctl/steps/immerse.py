"""`immerse`: immersion alloying. The stage lowers the sample into the bath, holds it for the commanded time
(measured on the stage's own confirmations, see `motion.dunk`), withdraws, optionally rinses, then dries.

The whole step is not pausable (a pause waits for its end); an abort or fault while in a bath withdraws at
once and the step is recorded `deviated` with the achieved time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import BaseModel

from labctl.protocol.accounting import Dunk, Use
from labctl.protocol.fields import STRICT, Name, NonNegative, Positive
from labctl.steps.base import PlanContext, StepContext, StepKind, StepModel
from labctl.steps.motion import check_reach, dunk, dunk_estimate, lift_estimate, travel, travel_estimate
from labctl.units import fmt

if TYPE_CHECKING:
    from labctl.station import Station


class Rinse(BaseModel):
    """Dip into `bath` for `time` (s) after the immersion."""

    model_config = STRICT
    bath: Name
    time: Positive("duration")


class Immerse(StepModel):
    """Immersion alloying: lower the sample `depth` (m) below the surface of `bath` at `speed` (m/s), hold for
    `time` (s, timed from the stage's confirmation), withdraw, optionally rinse, then dry for `dry` (s)."""

    kind: Literal["immerse"] = "immerse"
    bath: Name
    depth: Positive("length", "below the liquid surface")
    speed: Positive("speed")
    time: Positive("duration")
    rinse: Rinse | None = None
    dry: NonNegative("duration") = 0.0


class ImmerseKind(StepKind[Immerse]):
    KIND = "immerse"
    MODEL = Immerse
    ROLES = ("stage",)
    OPTIONAL_ROLES = ("hotplate",)
    INSTRUMENT_LIMITS: ClassVar[dict[str, tuple[str, str]]] = {"speed": ("stage", "speed")}
    MAKES_SAMPLE = True

    def roles(self, step: Immerse, station: Station | None) -> list[str]:
        return ["stage"]

    def plan(self, step: Immerse, p: PlanContext) -> None:
        baths = [step.bath] + ([step.rinse.bath] if step.rinse else [])
        check_reach(p, baths, step.depth)
        t = travel_estimate(step.bath, p.station, p) + dunk_estimate(step.depth, step.speed, step.time)
        if step.rinse:
            t += _between(p, step.bath, step.rinse.bath) + dunk_estimate(
                step.depth, step.speed, step.rinse.time
            )
        if step.dry:
            t += lift_estimate(p, baths[-1]) + step.dry
        p.ps.duration = t
        p.ps.summary = (
            f"{step.bath}: {fmt(step.depth, 'length')} at {fmt(step.speed, 'speed')}, "
            f"{fmt(step.time, 'duration')}" + (f", rinse {step.rinse.bath}" if step.rinse else "")
        )

    def uses(self, step: Immerse, station: Station | None) -> list[Use]:
        """The sample's time in the bath and in the rinse (plan-time accounting across steps)."""
        out: list[Use] = [Dunk(step.bath, step.depth, step.time, "time")]
        if step.rinse:
            out.append(Dunk(step.rinse.bath, step.depth, step.rinse.time, "rinse.time"))
        return out

    def run(self, ctx: StepContext, step: Immerse) -> None:
        with ctx.non_pausable():  # a pause waits for the whole step (immersion, rinse, drying)
            rec = dunk(
                ctx,
                step.bath,
                depth=step.depth,
                speed_in=step.speed,
                speed_out=step.speed,
                hold=step.time,
                label="immersed",
            )
            ctx.achieved.update(
                bath=step.bath,
                commanded_time_s=step.time,
                immersion_time_s=rec["achieved_s"],
                t_in=rec["t_in"],
                t_out=rec["t_out"],
                z_in=rec["z_in"],
            )
            if step.rinse is not None:
                r = dunk(
                    ctx,
                    step.rinse.bath,
                    depth=step.depth,
                    speed_in=step.speed,
                    speed_out=step.speed,
                    hold=step.rinse.time,
                    label="rinse",
                )
                ctx.achieved.update(
                    rinse_bath=step.rinse.bath, commanded_rinse_s=step.rinse.time, rinse_s=r["achieved_s"]
                )
            if step.dry:
                travel(ctx, z=0.0, speed=ctx.station.travel.speed)
                start = ctx.clock.monotonic()
                ctx.sleep(step.dry, label="drying", total=step.dry)
                ctx.achieved.update(commanded_dry_s=step.dry, dry_s=ctx.clock.monotonic() - start)

    def estimate(self, step: Immerse) -> float:
        return step.time + 30.0 + (step.rinse.time if step.rinse else 0.0) + step.dry


def _between(p: PlanContext, a: str, b: str) -> float:
    """Plan: from just above bath `a` up to the safe height, across to `b`, down to its surface (s)."""
    st = p.station
    if st is None or a not in st.baths or b not in st.baths:
        return travel_estimate(b, st, p)
    return lift_estimate(p, a) + abs(st.baths[b].x - st.baths[a].x) / st.travel.speed + lift_estimate(p, b)


KIND_CLASS = ImmerseKind
