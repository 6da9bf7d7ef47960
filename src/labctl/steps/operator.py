"""`operator`: a confirmation from a person, at this terminal or with `labctl ack RUN` from anywhere.

When the run answers operator steps itself (a dry run without `--interactive`: `ctx.auto_operator`) the step
is answered at once and recorded as such. A step that assembles a cell announces it (`cell.assembled`) to the
run's observers, so a simulated world builds the cell; on the bench nobody listens.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from labctl.protocol.fields import STRICT, Positive, Text
from labctl.steps.base import PlanContext, StepContext, StepKind, StepModel, fail

if TYPE_CHECKING:
    from labctl.station import Station


class CellBuild(BaseModel):
    """The cell an operator step assembles: recorded with the run, and built by the simulated world."""

    model_config = STRICT
    kind: Literal["symmetric", "li_cu"] = "symmetric"
    electrolyte: Literal["carbonate", "ether"] = "carbonate"
    separator: Literal["celgard", "gf"] = "celgard"
    coated: Literal["both", "one", "none"] = "both"


class Operator(StepModel):
    """Show `message` and wait for the operator's confirmation, at most `timeout` (s) if given; `cell`
    describes the cell assembled at this step, if any."""

    kind: Literal["operator"] = "operator"
    message: Text
    timeout: Positive("duration") | None = None
    cell: CellBuild | None = None


def cell_build(step: Operator) -> dict[str, Any] | None:
    """The cell this operator step assembles: its `cell` block, defaults if the message says "assemble"."""
    if step.cell is not None:
        return step.cell.model_dump()
    return CellBuild().model_dump() if "assemble" in step.message.lower() else None


class OperatorKind(StepKind[Operator]):
    KIND = "operator"
    MODEL = Operator

    def roles(self, step: Operator, station: Station | None) -> list[str]:
        return []

    def plan(self, step: Operator, p: PlanContext) -> None:
        p.ps.duration = 0.0
        p.ps.summary = step.message[:60]
        p.warn(
            "waits for the operator; duration not counted"
            if step.timeout is None
            else f"waits for the operator at most {step.timeout:g} s; not counted"
        )

    def run(self, ctx: StepContext, step: Operator) -> None:
        message, timeout_s = step.message, step.timeout
        ctx.checkpoint(False)
        stale = ctx.take_acks()  # an acknowledgement sent before this prompt does not answer it
        if stale:
            ctx.event("operator.ack_ignored", {"count": len(stale), "why": "sent before the prompt"})
        ctx.transition("await_operator", message)
        ctx.progress("operator.prompt", {"message": message, "timeout_s": timeout_s})
        if ctx.auto_operator:
            actor, source, waited = "auto (dry run)", "auto", 0.0
        else:
            actor, source, waited = self._wait_for_ack(ctx, message, timeout_s)
        build = cell_build(step)
        data: dict[str, Any] = {
            "actor": actor,
            "auto": ctx.auto_operator,
            "source": source,
            "message": message,
            "waited_s": waited,
        }
        if build is not None:
            ctx.achieved["cell"] = build
            observed = ctx.announce(
                "cell.assembled", {**build, "area_m2": ctx.notes.get("cell_area") or ctx.station.cell_area}
            )
            if observed:
                data["world"] = observed[0]
        ctx.event("operator.ack", data)
        ctx.achieved.update(acknowledged_by=actor, auto=ctx.auto_operator, source=source, waited_s=waited)
        ctx.transition(
            "operator_done",
            "answered automatically (dry run)" if ctx.auto_operator else f"acknowledged by {actor}",
        )

    def _wait_for_ack(
        self, ctx: StepContext, message: str, timeout_s: float | None
    ) -> tuple[str, str, float]:
        answered = threading.Event()
        answer: dict[str, str] = {}
        if ctx.prompt is not None:

            def ask() -> None:
                if ctx.prompt is not None and ctx.prompt(message) and not answered.is_set():
                    answer.update(actor=ctx.operator or "terminal", source="terminal")
                    answered.set()

            threading.Thread(target=ask, daemon=True, name="labctl-operator-prompt").start()
        start = time.monotonic()
        while True:
            ctx.checkpoint(False)  # abort still works; a pause waits for the answer
            for ack in ctx.take_acks():
                answer.setdefault("actor", getattr(ack, "actor", "unknown"))
                answer.setdefault("source", "labctl ack")
                answered.set()
            if answered.is_set():
                return answer["actor"], answer["source"], time.monotonic() - start
            if timeout_s is not None and time.monotonic() - start > timeout_s:
                raise fail(ctx, f"no operator acknowledgement within {timeout_s:g} s")
            answered.wait(0.1)


KIND_CLASS = OperatorKind
