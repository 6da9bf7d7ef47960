"""The vacuum-chamber sequence shared by `sputter` (RF magnetron, e.g. LiF) and `nitride` (N2 plasma, Li3N) on
the gauge + MFC + RF + QCM chain, and its plan-time estimates (physics.md §1.5).

Sequence: shutter closed; base-pressure wait (timeout); gas on; pressure settle into the window; RF ramp at
the allowed rate; pre-sputter with the shutter closed; QCM film set and zeroed; shutter open; deposit until
the QCM thickness reaches the target (or the time limit; nitride: for its time); shutter closed; ramp down;
gas off. The chamber-pressure interlock (RF off, step fails or the run pauses, as configured) is live from
the moment the gas flows; reflected power above the step's `max_reflected` of forward trips too (RF off), and
so does a substrate above `max_substrate_temperature` where the station has a `substrate` sensor (the plan
refuses the field on a station without one).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

import numpy as np

from labctl.protocol.fields import Positive, Qty
from labctl.steps.base import PlanContext, StepContext, StepKind, StepModel, fail
from labctl.steps.interlocks import Condition, PressureWindow
from labctl.units import fmt

if TYPE_CHECKING:
    from labctl.station import Station

BASE_PRESSURE_TIMEOUT_S = 3600.0
SETTLE_TIMEOUT_S = 300.0
WINDOW = 0.5  # the working pressure may wander ±50 % before the pressure interlock trips
BASE_POLL_S, SETTLE_POLL_S = 10.0, 2.0  # the waits' polling periods (the plan counts one of each)
PressureFault = Literal["fail", "pause", "abort", "end_step"]
"""What a chamber-pressure excursion does to a sputter or nitride step (RF goes off first in every case)."""


class ChamberStep(StepModel):
    """The fields `sputter` and `nitride` share: gas `flow` (sccm) at `pressure` (Pa) after pumping to
    `base_pressure` (Pa), RF `power` (W) ramped at `ramp_rate` (W/s); `max_substrate_temperature` (degC) needs
    a `substrate` sensor on the station; `on_pressure_fault` says what a pressure excursion does."""

    flow: Positive("gas_flow")
    pressure: Positive("pressure")
    power: Positive("power")
    ramp_rate: Positive("power_rate")
    base_pressure: Positive("pressure")
    max_substrate_temperature: Qty("temperature") | None = None
    on_pressure_fault: PressureFault = "fail"


C = TypeVar("C", bound=ChamberStep)


class ChamberKind(StepKind[C]):
    """What the chamber kinds share: the driver limits the chamber fields reach, and a `substrate` role
    wanted only when the step bounds the substrate temperature."""

    INSTRUMENT_LIMITS: ClassVar[dict[str, tuple[str, str]]] = {
        "power": ("rf", "power"),
        "flow": ("mfc", "flow"),
        "pressure": ("gauge", "pressure"),
    }
    MAKES_SAMPLE = True

    def roles(self, step: C, station: Station | None) -> list[str]:
        return list(self.ROLES) + (["substrate"] if step.max_substrate_temperature is not None else [])


@dataclass
class Recipe:
    """What the chamber sequence needs from a sputter or nitride step (both models feed it)."""

    gas: str
    flow: float
    pressure: float
    power: float
    ramp_rate: float
    base_pressure: float
    presputter: float
    limit_s: float  # deposition time limit (sputter: max_time; nitride: the time)
    thickness: float | None  # QCM target (sputter) or None (timed)
    film: tuple[float, float, float] | None  # QCM density, z-ratio, tooling (sputter)
    max_reflected: float
    max_substrate_temperature: float | None
    on_pressure_fault: str


def chamber_recipe(step: ChamberStep, *, gas: str, presputter: float, limit_s: float, thickness: float | None,
                   film: tuple[float, float, float] | None, max_reflected: float) -> Recipe:
    """The recipe of a chamber step: its shared fields plus what its kind decides."""
    return Recipe(gas=gas, flow=step.flow, pressure=step.pressure, power=step.power,
                  ramp_rate=step.ramp_rate, base_pressure=step.base_pressure, presputter=presputter,
                  limit_s=limit_s, thickness=thickness, film=film, max_reflected=max_reflected,
                  max_substrate_temperature=step.max_substrate_temperature,
                  on_pressure_fault=step.on_pressure_fault)


def run_chamber(ctx: StepContext, r: Recipe) -> None:
    """The sequence; on any exit by exception the chamber is left quiet before the run decides."""
    try:
        _run(ctx, r)
    except BaseException:
        # leave the chamber quiet before the run decides (fail, pause or end the step): RF off, shutter
        # closed, gas off; each attempt on its own so one failure does not skip the others
        for action in (
            lambda: ctx.role("rf").rf_off(),
            lambda: ctx.role("mfc").set_flow(0.0),
            lambda: ctx.has("qcm") and ctx.role("qcm").shutter(False),
        ):
            try:
                action()
            except Exception as exc:
                ctx.event("chamber.quiet_failed", {"error": str(exc)})
        raise


def _run(ctx: StepContext, r: Recipe) -> None:
    gauge, mfc, rf = ctx.role("gauge"), ctx.role("mfc"), ctx.role("rf")
    qcm = ctx.instruments.get("qcm")
    if r.thickness is not None and qcm is None:
        raise fail(ctx, "sputtering to a thickness needs a QCM")
    power, gas, flow, ramp, target, limit_s = r.power, r.gas, r.flow, r.ramp_rate, r.thickness, r.limit_s
    lo, hi = r.pressure * (1 - WINDOW), r.pressure * (1 + WINDOW)
    series: dict[str, list[float]] = {k: [] for k in ("t", "pressure", "forward", "thickness", "rate")}

    if qcm is not None:
        qcm.shutter(False)
    base = r.base_pressure
    ctx.wait_until(
        lambda: gauge.pressure() <= base,
        timeout=BASE_PRESSURE_TIMEOUT_S,
        every=BASE_POLL_S,
        what=f"base pressure {base:.2g} Pa",
    )
    ctx.achieved["base_pressure_pa"] = float(gauge.pressure())
    mfc.select_gas(gas)
    mfc.set_flow(flow)
    ctx.event("chamber.gas_on", {"gas": gas, "sccm": flow})
    ctx.wait_until(
        lambda: lo <= gauge.pressure() <= hi,
        timeout=SETTLE_TIMEOUT_S,
        every=SETTLE_POLL_S,
        what=f"working pressure in [{lo:.3g}, {hi:.3g}] Pa",
    )
    ctx.achieved.update(gas=gas, flow_sccm=float(mfc.flow()), pressure_pa=float(gauge.pressure()))
    with contextlib.ExitStack() as watched:
        watched.enter_context(
            ctx.interlock(PressureWindow(gauge, lo, hi, rf=rf, action=r.on_pressure_fault, period=2.0))
        )
        watched.enter_context(
            ctx.interlock(
                Condition(
                    "reflected_power", lambda: _reflected(rf, r.max_reflected), action="fail", period=2.0
                )
            )
        )
        if r.max_substrate_temperature is not None:
            sensor = ctx.role("substrate")
            watched.enter_context(
                ctx.interlock(
                    Condition(
                        "substrate_temperature",
                        lambda: _too_hot(sensor, rf, r.max_substrate_temperature),
                        action="fail",
                        period=2.0,
                    )
                )
            )
        _ramp(ctx, rf, 0.0, power, ramp)
        if r.presputter > 0:
            ctx.sleep(r.presputter, label="pre-sputter (shutter closed)", total=r.presputter)
        if qcm is not None:
            if r.film is not None:
                density, z_ratio, tooling = r.film
                qcm.set_film(density=density, z_ratio=z_ratio, tooling=tooling)
            qcm.zero()
            qcm.shutter(True)
        start = ctx.clock.monotonic()
        reached = _deposit(ctx, gauge, rf, qcm, target, limit_s, start, series)
        if qcm is not None:
            qcm.shutter(False)
        elapsed = ctx.clock.monotonic() - start
        _ramp(ctx, rf, power, 0.0, ramp)
    rf.rf_off()
    mfc.set_flow(0.0)
    ctx.event("chamber.gas_off", {"gas": gas})
    ctx.store_points("qcm", **{k: np.asarray(v) for k, v in series.items()})
    ctx.achieved.update(
        commanded_power_w=power,
        deposition_s=elapsed,
        commanded_time_limit_s=limit_s,
        max_reflected=r.max_reflected,
    )
    if qcm is not None:
        ctx.achieved["thickness_m"] = float(qcm.thickness())
    if target is not None:
        ctx.achieved["commanded_thickness_m"] = target
        if not reached:
            ctx.status = "deviated"
            ctx.reason = (
                f"time limit {limit_s:g} s reached at {ctx.achieved.get('thickness_m', 0) * 1e9:.1f}"
                f" nm of {target * 1e9:.1f} nm"
            )


def _ramp(ctx: StepContext, rf: Any, start: float, end: float, rate: float) -> None:
    """Change RF power from `start` to `end` W at no more than `rate` W/s."""
    span = abs(end - start)
    if span == 0:
        return
    steps = max(1, min(50, math.ceil(span / rate)))
    dt = span / rate / steps
    if start == 0:
        rf.set_power(0.0)
        rf.rf_on()
    for k in range(1, steps + 1):
        ctx.sleep(dt)
        rf.set_power(start + (end - start) * k / steps)
    if end == 0:
        rf.rf_off()


def _deposit(
    ctx: StepContext,
    gauge: Any,
    rf: Any,
    qcm: Any,
    target: float | None,
    limit_s: float,
    start: float,
    series: dict[str, list[float]],
) -> bool:
    while True:
        elapsed = ctx.clock.monotonic() - start
        thick = float(qcm.thickness()) if qcm is not None else math.nan
        rate = float(qcm.rate()) if qcm is not None else math.nan
        series["t"].append(ctx.now())
        series["pressure"].append(float(gauge.pressure()))
        series["forward"].append(float(rf.forward_power()))
        series["thickness"].append(thick)
        series["rate"].append(rate)
        frac = thick / target if target else elapsed / limit_s
        ctx.progress(
            "step.progress",
            {
                "fraction": min(1.0, frac),
                "readings": {
                    "thickness_nm": thick * 1e9,
                    "rate_nm_s": rate * 1e9,
                    "pressure_pa": series["pressure"][-1],
                },
            },
        )
        if target is not None and thick >= target:
            return True
        if elapsed >= limit_s - 1e-6:  # a sub-us remainder: a virtual clock can't advance it (hung)
            return target is None
        wait = limit_s - elapsed
        if target is not None and rate > 0:
            wait = min(wait, max(0.5, 0.5 * (target - thick) / rate))
        ctx.sleep(min(wait, 60.0))


def _reflected(rf: Any, trip: float) -> str | None:
    fwd = float(rf.forward_power())
    ref = float(rf.reflected_power())
    if fwd > 1.0 and ref > trip * fwd:
        rf.rf_off()
        return f"reflected {ref:.1f} W > {trip:.0%} of forward {fwd:.1f} W (RF switched off)"
    return None


def _too_hot(sensor: Any, rf: Any, limit: float) -> str | None:
    t = float(sensor.substrate_temperature())
    if t > limit:
        rf.rf_off()
        return f"substrate {t:.1f} degC above max_substrate_temperature {limit:g} degC (RF switched off)"
    return None


# -- plan ---------------------------------------------------------------------------------------------------


def sputter_rate(power: float, target_area: float, distance: float, pressure: float) -> float:
    """Deposition rate (m/s), physics.md 1.5: k_s·(P/A)·(d_ref/d)²·g(p), g peaks at p0 = 0.5 Pa."""
    k_s = 0.55e-9 / 60 / 1e4  # m/s per (W/m^2): 0.55 nm/min per W/cm^2
    p0 = 0.5
    g = (pressure / p0) * math.exp(1 - pressure / p0)
    return k_s * (power / target_area) * (0.08 / distance) ** 2 * g


def pump_down_time(base: float, idle: float | None = None) -> float:
    """Estimate (s) of the wait for `base` Pa [E]: from atmosphere (`idle` None) 15 min roughing + turbo to
    1e-2 Pa, then 15 min per decade below; from a chamber idling under vacuum, 15 min per decade from `idle`
    (nothing if it idles at or below `base`)."""
    if idle is None or idle > 1e-2:
        return 900.0 + 900.0 * math.log10(max(1.0, 1e-2 / base))
    return 900.0 * math.log10(max(1.0, idle / base))


def ramp_time(power: float, rate: float) -> float:
    """`_ramp` up and down: at most 50 setpoint steps each way, each span/rate/steps long."""
    return 2 * power / rate if rate > 0 else 0.0


def plan_chamber(p: PlanContext, r: Recipe) -> float:
    """Duration of everything but the deposition; checks the substrate sensor."""
    chamber = p.station.chamber if p.station else None
    pump_down = pump_down_time(r.base_pressure, chamber.idle_pressure if chamber is not None else None)
    if r.max_substrate_temperature is not None and p.station is not None and not p.station.has("substrate"):
        p.error(
            f"max_substrate_temperature = {fmt(r.max_substrate_temperature, 'temperature')} cannot be "
            "watched: the station has no `substrate` temperature sensor (remove the field to run unwatched)"
        )
    elif r.max_substrate_temperature is None:
        p.warn("substrate temperature not watched (no max_substrate_temperature)")
    return pump_down + SETTLE_POLL_S + ramp_time(r.power, r.ramp_rate) + r.presputter
