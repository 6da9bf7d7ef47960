"""`dip_coat`: the stage dips the sample into a polymer solution and withdraws it at a controlled speed,
dries, and repeats. The solution (`polymer` in `solvent`) is announced to the run's observers before the first
dip (a simulated world coats with it); `drying_temperature` is recorded as a required condition, since no
station role heats a sample in air (the plan says so).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Literal

from labctl.protocol import limits as lim
from labctl.protocol.accounting import Dunk, Use
from labctl.protocol.fields import Chem, Count, Name, NonNegative, Positive, Qty
from labctl.steps.base import Override, PlanContext, StepContext, StepKind, StepModel
from labctl.steps.motion import check_reach, dunk, dunk_estimate, lift_estimate, travel, travel_estimate
from labctl.units import fmt

if TYPE_CHECKING:
    from labctl.station import Station


class DipCoat(StepModel):
    """Dip coating: into `bath` to `depth` (m) at `dip_speed` (m/s), `dwell` (s), withdraw at
    `withdrawal_speed` (m/s), dry `drying_time` (s); repeated `cycles` times. `polymer`/`solvent` describe the
    solution (the solvent is checked against Li)."""

    kind: Literal["dip_coat"] = "dip_coat"
    bath: Name
    depth: Positive("length", "below the liquid surface")
    dip_speed: Positive("speed")
    dwell: NonNegative("duration")
    withdrawal_speed: Positive("speed")
    drying_time: NonNegative("duration")
    cycles: Count(ge=1, le=100) = 1
    polymer: Chem | None = None
    solvent: Chem | None = None
    drying_temperature: Qty("temperature") | None = None
    override: Override | None = None


class DipCoatKind(StepKind[DipCoat]):
    KIND = "dip_coat"
    MODEL = DipCoat
    ROLES = ("stage",)
    PLAN_ONLY = frozenset({"label", "override"})
    INSTRUMENT_LIMITS: ClassVar[dict[str, tuple[str, str]]] = {
        "dip_speed": ("stage", "speed"),
        "withdrawal_speed": ("stage", "speed"),
    }
    MAKES_SAMPLE = True

    def roles(self, step: DipCoat, station: Station | None) -> list[str]:
        return ["stage"]

    def plan(self, step: DipCoat, p: PlanContext) -> None:
        check_reach(p, [step.bath], step.depth)
        one = dunk_estimate(step.depth, step.dip_speed, step.dwell + step.depth / step.withdrawal_speed)
        if step.drying_time:  # up to the safe height, dry, and back down to the surface for the next dip
            one += 2 * lift_estimate(p, step.bath) + step.drying_time
        p.ps.duration = (
            travel_estimate(step.bath, p.station, p)
            + step.cycles * one
            - (lift_estimate(p, step.bath) if step.drying_time else 0.0)
        )
        p.ps.summary = (
            f"{step.bath}: {step.cycles}× dwell {fmt(step.dwell, 'duration')}, withdraw "
            f"{fmt(step.withdrawal_speed, 'speed')}"
            + (f", {step.polymer}" if step.polymer else "")
            + (f" in {step.solvent}" if step.solvent else "")
        )
        p.hazard(step, lim.solvent_hazard(step.solvent))
        if step.drying_temperature is not None:
            p.warn(
                f"drying at {fmt(step.drying_temperature, 'temperature')} is not controlled by any station "
                "role: recorded as a required condition"
            )

    def uses(self, step: DipCoat, station: Station | None) -> list[Use]:
        """The sample's time in the coating solution over all dips (plan-time accounting across steps)."""
        return [Dunk(step.bath, step.depth, step.cycles * step.dwell, "dwell", contact="dip_coat")]

    def run(self, ctx: StepContext, step: DipCoat) -> None:
        with ctx.non_pausable():
            self._run(ctx, step)

    def _run(self, ctx: StepContext, step: DipCoat) -> None:
        done: list[dict[str, float]] = []
        ctx.achieved.update(
            bath=step.bath,
            cycles_commanded=step.cycles,
            commanded_dwell_s=step.dwell,
            withdrawal_speed=step.withdrawal_speed,
            dips=done,
        )
        if step.polymer is not None or step.solvent is not None:
            solution = {"bath": step.bath, "polymer": step.polymer, "solvent": step.solvent}
            ctx.achieved["solution"] = solution
            announced = {**solution, "drying_temperature": step.drying_temperature}  # PVDF's phase follows it
            for note in ctx.announce("dip.solution", announced):
                ctx.achieved.setdefault("observed", []).append(note)
        if step.drying_temperature is not None:
            ctx.achieved["required_conditions"] = {
                "drying_temperature_c": step.drying_temperature,
                "controlled": False,
            }
        for k in range(step.cycles):
            rec = dunk(
                ctx,
                step.bath,
                depth=step.depth,
                speed_in=step.dip_speed,
                speed_out=step.withdrawal_speed,
                hold=step.dwell + step.depth / step.withdrawal_speed,
                label=f"dip {k + 1}/{step.cycles}",
            )
            done.append(
                {
                    "dip": k + 1,
                    "commanded_s": rec["commanded_s"],
                    "achieved_s": rec["achieved_s"],
                    "t_in": rec["t_in"],
                    "t_out": rec["t_out"],
                }
            )
            if step.drying_time:
                travel(ctx, z=0.0, speed=ctx.station.travel.speed)
                ctx.sleep(step.drying_time, label=f"drying {k + 1}/{step.cycles}", total=step.drying_time)
        ctx.achieved["cycles"] = len(done)

    def estimate(self, step: DipCoat) -> float:
        return step.cycles * (step.dwell + step.drying_time + 30.0)


KIND_CLASS = DipCoatKind
