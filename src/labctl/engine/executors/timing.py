"""`wait` and `rest`: time passes on the run's clock (pausable, interlocks live)."""

from __future__ import annotations

from typing import Any

from labctl.engine.errors import RunAborted
from labctl.engine.executors.base import Executor, StepContext, fnum, register


@register
class Wait(Executor):
    KINDS = ("wait", "rest")

    def run(self, ctx: StepContext) -> None:
        seconds = fnum(ctx.params["duration"])
        ctx.achieved["commanded_time_s"] = seconds
        start = ctx.clock.monotonic()
        try:
            ctx.sleep(seconds, label=ctx.kind, total=seconds)
        except RunAborted:
            ctx.achieved["time_s"] = ctx.clock.monotonic() - start
            ctx.status, ctx.reason = "deviated", "run aborted during the wait"
            raise
        ctx.achieved["time_s"] = ctx.clock.monotonic() - start

    def estimate(self, params: dict[str, Any], station: Any = None) -> float:
        return fnum(params["duration"])
