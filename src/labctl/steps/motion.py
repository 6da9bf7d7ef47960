"""Stage motion shared by `immerse` and `dip_coat`: travel between baths, and a timed dunk into a bath.

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
from typing import TYPE_CHECKING, Any

from labctl.steps.base import PlanContext, StepContext
from labctl.steps.errors import RunAborted
from labctl.steps.interlocks import TemperatureBand

if TYPE_CHECKING:
    from labctl.station import Station

CLEARANCE = 1e-3  # m above the surface that counts as out of the bath
DEFAULT_TRAVEL_X = 0.05  # m, when no station: 50 mm between baths
DEFAULT_TRAVEL_Z = 0.04  # m, safe height to bath surface


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
    speed = ctx.station.travel.speed
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
            action="fail",
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
        travel(ctx, z=z_out, speed=ctx.station.travel.speed)
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


def travel_estimate(bath: str, station: Station | None, p: PlanContext | None = None) -> float:
    """Plan: move to the bath at travel speed and down to its surface (s); an unknown bath is an error."""
    if station is None:
        return (DEFAULT_TRAVEL_X + DEFAULT_TRAVEL_Z) / 0.01
    if bath not in station.baths:
        if p is not None:
            p.error(f"the station has no bath `{bath}` (baths: {', '.join(sorted(station.baths))})")
        return (DEFAULT_TRAVEL_X + DEFAULT_TRAVEL_Z) / station.travel.speed
    b = station.baths[bath]
    return (abs(b.x) + abs(station.travel.safe_z - b.surface_z)) / station.travel.speed


def check_reach(p: PlanContext, baths: list[str], depth: float) -> None:
    """Plan: every bath's x and its surface - `depth` lie inside the stage's x and z limits."""
    if p.station is None:
        return
    for name in baths:
        bath = p.station.baths.get(name)
        if bath is None:
            continue
        for axis, value in (("x", bath.x), ("z", bath.surface_z - depth)):
            low, high = p.limit("stage", axis) or (-math.inf, math.inf)
            if not low - 1e-12 <= value <= high + 1e-12:
                p.error(
                    f"bath `{name}` needs stage {axis} = {value * 1e3:g} mm, outside the "
                    f"stage's [{low * 1e3:g}, {high * 1e3:g}] mm"
                )


def dunk_estimate(depth: float, speed_in: float, hold: float) -> float:
    """Plan: from just above the surface down to `depth`, then `hold` (which includes the withdrawal)."""
    return (depth + CLEARANCE) / speed_in + hold


def lift_estimate(p: PlanContext, bath: str) -> float:
    """Plan: from just above the bath's surface to the safe height (s)."""
    if p.station is None or bath not in p.station.baths:
        return 0.0
    return abs(p.station.travel.safe_z - p.station.baths[bath].surface_z) / p.station.travel.speed
