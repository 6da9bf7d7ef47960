"""`immerse` (immersion alloying) and `dip_coat`: the stage moves the sample into and out of baths.

The immersion time is measured on the stage's own confirmations: from the in-position read-back at depth to
the out-of-bath read-back above the surface, and recorded next to the commanded time. It is controlled by a
deadline on the run's clock: the withdraw command goes out at t_in + (commanded − predicted withdrawal time),
timed from the in-position confirmation (not by accumulated sleeps), and the stage driver confirms both ends
within its fast-poll period. An immersion is not pausable (a pause waits for the step to end); an abort or any
fault during it withdraws the sample at once and the step is recorded `deviated` with the achieved time.
Travel between baths keeps interrupts live (`travel`): an abort during it is acted on within a wait chunk.
"""

from __future__ import annotations

import math
from typing import Any

from labctl.engine.errors import RunAborted
from labctl.engine.executors.base import Executor, StepContext, fnum, register
from labctl.engine.interlocks import TemperatureBand

CLEARANCE = 1e-3  # m above the surface that counts as out of the bath


def move_time(stage: Any, *, dx: float = 0.0, dz: float = 0.0, speed: float) -> float:
    """The stage's own prediction of a move's duration if it has one (GRBL: its trapezoid), else L/v."""
    predict = getattr(stage, "move_time", None)
    if callable(predict):
        return float(predict(dx=dx, dz=dz, speed=speed))
    return math.hypot(dx, dz) / speed


def travel(
    ctx: StepContext, *, x: float | None = None, z: float | None = None, speed: float
) -> tuple[float, float]:
    """A move out of any bath with interrupts live: start it, wait its predicted time through `ctx.sleep` (an
    abort raises there and the run's safe state holds and lifts the moving stage), then confirm idle."""
    stage = ctx.role("stage")
    t0 = ctx.clock.monotonic()
    x0, z0 = stage.move_to(x=x, z=z, speed=speed, wait=False)
    dx, dz = (0.0 if x is None else x - x0), (0.0 if z is None else z - z0)
    expected = move_time(stage, dx=dx, dz=dz, speed=speed)
    ctx.sleep(0.0, until=t0 + expected)
    return stage.wait_idle(2 * expected + 5.0)


def over_bath(ctx: StepContext, bath: str) -> Any:
    """Move to the bath's x (raised to z = 0 first if a move along x is needed); return the bath."""
    stage = ctx.role("stage")
    b = ctx.station.bath(bath)
    speed = ctx.station.travel_speed
    x, z = stage.position()
    if abs(x - b.x) > 1e-6:
        if z < -1e-6:
            travel(ctx, z=0.0, speed=speed)
        travel(ctx, x=b.x, speed=speed)
    return b


def bath_interlock(ctx: StepContext, bath: str) -> TemperatureBand | None:
    facts = ctx.notes.get("baths", {}).get(bath, {})
    if "temperature" in facts and ctx.has("hotplate"):
        return TemperatureBand(
            ctx.role("hotplate"),
            facts["temperature"],
            facts.get("band", 1.0) * 2,
            action=str(ctx.params.get("on_temperature_fault") or "fail"),
            period=5.0,
        )
    return None


def dunk(
    ctx: StepContext, bath: str, *, depth: float, speed_in: float, speed_out: float, hold: float, label: str
) -> dict[str, float]:
    """Lower into `bath` to `depth` below its surface, hold, withdraw above the surface.

    Returns commanded/achieved times (achieved = out-of-bath confirmation - in-position confirmation).
    On an abort or fault while in the bath, withdraws at once, records the deviation and re-raises.
    """
    stage = ctx.role("stage")
    b = over_bath(ctx, bath)
    z_in, z_out = b.surface_z - depth, b.surface_z + CLEARANCE
    if b.surface_z + CLEARANCE <= 0 and abs(stage.position()[1] - z_out) > 1e-6:
        travel(ctx, z=z_out, speed=ctx.station.travel_speed)
    record: dict[str, float] = {"commanded_s": hold, "z_in_commanded": z_in}
    il = bath_interlock(ctx, bath)
    with ctx.non_pausable():
        _, z_read = stage.move_to(z=z_in, speed=speed_in)
        t_in = ctx.clock.monotonic()
        withdraw_at = t_in + max(0.0, hold - move_time(stage, dz=z_out - z_read, speed=speed_out))
        record.update(t_in=t_in - ctx.t0, z_in=z_read)
        ctx.event("stage.in_bath", {"bath": bath, "z": z_read, "t": t_in - ctx.t0})
        try:
            if il is not None:
                ctx.watch.add(il)
            ctx.sleep(0.0, until=withdraw_at, label=label, total=hold)
            _, z_up = stage.move_to(z=z_out, speed=speed_out)
        except BaseException as exc:
            _, z_up = _withdraw(ctx)
            t_out = ctx.clock.monotonic()
            record.update(t_out=t_out - ctx.t0, achieved_s=t_out - t_in, z_out=z_up)
            ctx.achieved.setdefault("immersions", []).append(record)
            ctx.status = "deviated"
            why = exc.reason if isinstance(exc, RunAborted) else f"{type(exc).__name__}: {exc}"
            ctx.reason = (
                f"{why}; sample withdrawn from {bath} after {t_out - t_in:.3f} s of "
                f"{hold:g} s (z = {z_up * 1e3:.3f} mm, surface at {b.surface_z * 1e3:.3f} mm)"
            )
            ctx.event(
                "stage.withdrawn",
                {"bath": bath, "z": z_up, "t": t_out - ctx.t0, "achieved_s": t_out - t_in, "reason": why},
            )
            raise
        finally:
            if il is not None:
                ctx.watch.remove(il)
        t_out = ctx.clock.monotonic()
    record.update(t_out=t_out - ctx.t0, achieved_s=t_out - t_in, z_out=z_up)
    ctx.event("stage.out_of_bath", {"bath": bath, "z": z_up, "t": t_out - ctx.t0, "achieved_s": t_out - t_in})
    return record


def _withdraw(ctx: StepContext) -> tuple[float, float]:
    """Lift the sample to z = 0 now, at the stage's fastest allowed speed."""
    stage = ctx.role("stage")
    limit = getattr(stage, "limits", {}).get("speed")
    speed = min(getattr(limit, "high", 0.01), 0.01)
    try:
        return stage.move_to(z=0.0, speed=speed)
    except Exception:
        stage.safe_state()
        return stage.position()


@register
class Immerse(Executor):
    KINDS = ("immerse",)
    ROLES = ("stage",)
    OPTIONAL_ROLES = ("hotplate",)

    def run(self, ctx: StepContext) -> None:
        with ctx.non_pausable():  # a pause waits for the whole step (immersion, rinse, drying)
            self._run(ctx)

    def _run(self, ctx: StepContext) -> None:
        p = ctx.params
        bath = str(p["bath"])
        depth = fnum(p["depth"])
        speed = fnum(p["speed"])
        hold = fnum(p["time"])
        rec = dunk(ctx, bath, depth=depth, speed_in=speed, speed_out=speed, hold=hold, label="immersed")
        ctx.achieved.update(
            bath=bath,
            commanded_time_s=hold,
            immersion_time_s=rec["achieved_s"],
            t_in=rec["t_in"],
            t_out=rec["t_out"],
            z_in=rec["z_in"],
        )
        rinse = p.get("rinse")
        if rinse:
            rinse = rinse.model_dump() if hasattr(rinse, "model_dump") else dict(rinse)
            r_hold = fnum(rinse["time"])
            r = dunk(
                ctx,
                str(rinse["bath"]),
                depth=depth,
                speed_in=speed,
                speed_out=speed,
                hold=r_hold,
                label="rinse",
            )
            ctx.achieved.update(
                rinse_bath=rinse.get("bath"), commanded_rinse_s=r_hold, rinse_s=r["achieved_s"]
            )
        dry = p.get("dry")
        if dry:
            travel(ctx, z=0.0, speed=ctx.station.travel_speed)
            d = fnum(dry)
            start = ctx.clock.monotonic()
            ctx.sleep(d, label="drying", total=d)
            ctx.achieved.update(commanded_dry_s=d, dry_s=ctx.clock.monotonic() - start)

    def estimate(self, params: dict[str, Any], station: Any = None) -> float:
        total = fnum(params["time"]) + 30.0
        rinse = params.get("rinse") or {}
        rinse = rinse.model_dump() if hasattr(rinse, "model_dump") else dict(rinse)
        dry = params.get("dry") or 0.0
        return (
            total + fnum(rinse.get("time") or 0.0) + fnum(dry)
        )


@register
class DipCoat(Executor):
    KINDS = ("dip_coat",)
    ROLES = ("stage",)

    def run(self, ctx: StepContext) -> None:
        with ctx.non_pausable():
            self._run(ctx)

    def _run(self, ctx: StepContext) -> None:
        p = ctx.params
        bath = str(p["bath"])
        depth = fnum(p["depth"])
        v_in = fnum(p["dip_speed"])
        v_out = fnum(p["withdrawal_speed"])
        dwell = fnum(p["dwell"])
        cycles = int(p["cycles"])
        dry_s = fnum(p["drying_time"])
        done: list[dict[str, float]] = []
        ctx.achieved.update(
            bath=bath, cycles_commanded=cycles, commanded_dwell_s=dwell, withdrawal_speed=v_out, dips=done
        )
        for k in range(cycles):
            rec = dunk(
                ctx,
                bath,
                depth=depth,
                speed_in=v_in,
                speed_out=v_out,
                hold=dwell + depth / v_out,
                label=f"dip {k + 1}/{cycles}",
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
            if dry_s:
                travel(ctx, z=0.0, speed=ctx.station.travel_speed)
                ctx.sleep(dry_s, label=f"drying {k + 1}/{cycles}", total=dry_s)
        ctx.achieved["cycles"] = len(done)

    def estimate(self, params: dict[str, Any], station: Any = None) -> float:
        cycles = int(params.get("cycles") or 1)
        return cycles * (fnum(params["dwell"]) + fnum(params["drying_time"]) + 30.0)
