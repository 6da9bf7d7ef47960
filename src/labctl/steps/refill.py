"""`refill`: the operator refills the syringe on a pump with the stock the station says it holds.

A syringe holds one stroke; a protocol that draws more from it than it holds (several baths, or a large
rinse) needs the syringe refilled in between, and the plan's accounting (`protocol.accounting`) refuses the
protocol without this step where the station declares the syringe's `syringe_volume`. The run asks the
operator (answered automatically on a dry run), then sets the syringe's diameter again and reads it back: the
refilled syringe may be a fresh one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from labctl.protocol.accounting import Refilled, Use
from labctl.protocol.fields import Name, Positive
from labctl.steps.base import PlanContext, StepContext, StepKind, StepModel
from labctl.steps.operator import Operator, OperatorKind
from labctl.steps.prepare_bath import syringe_diameter
from labctl.units import fmt

if TYPE_CHECKING:
    from labctl.station import Station


class Refill(StepModel):
    """Refill the syringe on `pump` (a pump role) with its stock; wait at most `timeout` (s) if given."""

    kind: Literal["refill"] = "refill"
    pump: Name
    timeout: Positive("duration") | None = None


class RefillKind(StepKind[Refill]):
    KIND = "refill"
    MODEL = Refill

    def roles(self, step: Refill, station: Station | None) -> list[str]:
        return [step.pump]

    def uses(self, step: Refill, station: Station | None) -> list[Use]:
        return [Refilled(step.pump)]

    def plan(self, step: Refill, p: PlanContext) -> None:
        p.ps.duration = 0.0
        p.ps.summary = f"refill {step.pump}"
        if not step.pump.startswith("pump."):
            p.error(f"`pump` must name a pump role such as `pump.solvent`, got `{step.pump}`")
        elif p.station is not None:
            held = [s for s in p.station.stocks.values() if s.pump == step.pump]
            if not held:
                p.error(f"the station loads no stock on {step.pump}: nothing to refill it with")
            else:
                size = held[0].syringe_volume
                p.ps.summary += f" with {held[0].salt or held[0].solvent}" + (
                    f" ({fmt(size, 'volume')})" if size else ""
                )
        p.warn("waits for the operator; duration not counted")

    def run(self, ctx: StepContext, step: Refill) -> None:
        diameter = syringe_diameter(ctx, step.pump)  # refused before asking if the pump has no syringe
        held = [s.salt or s.solvent for s in ctx.station.stocks.values() if s.pump == step.pump]
        what = " or ".join(dict.fromkeys(held))  # a stock pump may carry any of several MCl_x stocks
        message = f"Refill the syringe on {step.pump} with {what} ({diameter * 1e3:g} mm bore) and confirm"
        prompt = Operator.model_construct(message=message, timeout=step.timeout)  # values already checked
        OperatorKind().run(ctx, prompt)
        ctx.role(step.pump).configure(diameter=diameter)
        ctx.achieved.update(pump=step.pump, syringe_diameter_m=diameter, refilled_with=what)
        ctx.announce("pump.refilled", {"pump": step.pump, "with": what})

    def estimate(self, step: Refill) -> float:
        return 0.0


KIND_CLASS = RefillKind
