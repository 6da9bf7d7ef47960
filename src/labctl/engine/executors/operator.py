"""`operator`: a confirmation from a person, at this terminal or with `labctl ack RUN` from anywhere.

In a dry run (unless `--interactive`) the step is answered automatically and recorded as such; an assemble
step also tells the simulated world that the cell was assembled (`world.assemble_cell`) when it can.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from labctl.engine.errors import StepFailed
from labctl.engine.executors.base import Executor, StepContext, fnum, register


def cell_build(params: dict[str, Any]) -> dict[str, Any] | None:
    """The cell this operator step assembles: its `cell` block, defaults if the message says "assemble"."""
    if params.get("cell"):
        return dict(params["cell"])
    return {} if "assemble" in str(params.get("message", "")).lower() else None


def assemble_in_world(ctx: StepContext) -> dict[str, Any] | None:
    """In a dry run, build the cell in the simulated world (`world.assemble_cell`); None if not applicable."""
    build = cell_build(ctx.params)
    fn = getattr(ctx.world, "assemble_cell", None)
    if build is None or fn is None:
        return None
    kwargs = {**build, "area_m2": ctx.notes.get("cell_area") or ctx.station.cell_area}
    result = fn(**kwargs)
    return {
        "called": "assemble_cell",
        "kwargs": kwargs,
        "result": str(result) if result is not None else None,
    }


@register
class Operator(Executor):
    KINDS = ("operator",)

    def run(self, ctx: StepContext) -> None:
        message = str(ctx.params["message"])
        timeout = ctx.params.get("timeout")
        timeout_s = fnum(timeout) if timeout is not None else None
        ctx.checkpoint(False)
        stale = ctx.take_acks()  # an acknowledgement sent before this prompt does not answer it
        if stale:
            ctx.event("operator.ack_ignored", {"count": len(stale), "why": "sent before the prompt"})
        ctx.transition("await_operator", message)
        ctx.progress("operator.prompt", {"message": message, "timeout_s": timeout_s})
        if ctx.dry_run and not ctx.interactive:
            world = assemble_in_world(ctx)
            data = {"actor": "auto (dry run)", "auto": True, "message": message, "waited_s": 0.0}
            if world is not None:
                data["world"] = world
            ctx.event("operator.ack", data)
            ctx.achieved.update(acknowledged_by="auto (dry run)", auto=True, waited_s=0.0)
            if cell_build(ctx.params) is not None:
                ctx.achieved["cell"] = cell_build(ctx.params)
            ctx.transition("operator_done", "answered automatically (dry run)")
            return
        actor, source, waited = self._wait_for_ack(ctx, message, timeout_s)
        world = assemble_in_world(ctx) if ctx.dry_run else None
        if world is not None:
            ctx.event("world.assemble", world)
        ctx.event(
            "operator.ack",
            {"actor": actor, "auto": False, "source": source, "message": message, "waited_s": waited},
        )
        ctx.achieved.update(acknowledged_by=actor, auto=False, source=source, waited_s=waited)
        ctx.transition("operator_done", f"acknowledged by {actor}")

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
                raise StepFailed(f"step {ctx.index + 1}: no operator acknowledgement within {timeout_s:g} s")
            answered.wait(0.1)
