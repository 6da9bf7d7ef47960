"""What the galvanostatic step kinds share (`cycle_symmetric`, `rate_test`, `coulombic_efficiency`): their
common fields, the online short detector, one half-cycle on the potentiostat, the open-circuit rest between
half-cycles, the step-time cap and the cell-temperature condition.

Data come from the instrument's buffered acquisition (`Potentiostat.acquire`) in whole half-cycles (bounded
chunks on a real clock, so interrupts stay responsive) and go to the store in bulk: stream `cycling`, columns
t (s since the run started), voltage, current, cycle, half_cycle. A short circuit (physics.md §4.1) ends the
step with the time of the short; a voltage-limit trip ends it too (or is the normal end of a CE strip). A
`rest` between half-cycles holds zero current and samples the voltage into stream `ocv` (t, voltage), not seen
by the detector. `time_cap` bounds each strip to a cut-off (CE) and the whole step (`time_cap` x its nominal
time). `temperature` is a required condition: no station role measures or controls the cell's temperature, so
the plan warns and the run records it (a station that gains such a role will check it here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import BaseModel, Field

from labctl.analysis.failure import ShortCriterion as ShortDetector  # the one criterion (physics §4.1)
from labctl.protocol import limits as lim
from labctl.protocol.fields import STRICT, NonNegative, Positive, Qty
from labctl.steps.base import PlanContext, StepContext, StepKind, StepModel, fail
from labctl.steps.errors import InterlockTripped
from labctl.steps.streaming import streamed
from labctl.units import fmt

if TYPE_CHECKING:
    from labctl.station import Station

REAL_CHUNK_S = 60.0  # longest single acquisition on a real clock


class ShortDetection(BaseModel):
    """A short is flagged when |V| stays below `threshold` (V) for `window` (s); `stop_after` (s) ends the
    step that long after a short (None: continue, the data is valuable)."""

    model_config = STRICT
    threshold: Positive("voltage") = 0.002
    window: Positive("duration") = 600.0
    stop_after: NonNegative("duration") | None = None


class CyclingModel(StepModel):
    """Fields of every galvanostatic step: the cell `temperature` (degC, a required condition) and `time_cap`
    (step-time cap as a multiple of the nominal Q/j)."""

    temperature: Qty("temperature") | None = None
    time_cap: float = Field(1.2, ge=1.0, le=10.0, description="step-time cap as a multiple of Q/j")


@dataclass
class HalfCycle:
    t: np.ndarray
    voltage: np.ndarray
    current: np.ndarray
    tripped: bool
    short: tuple[float, str] | None = None

    @property
    def charge(self) -> float:
        """|∫ I dt| in coulombs (trapezoid)."""
        if len(self.t) < 2:
            return 0.0
        return abs(float(np.trapezoid(self.current, self.t)))


def detector_for(ctx: StepContext, rule: ShortDetection | None) -> ShortDetector:
    """The run's short detector, with the step's `short_detection` threshold and window."""
    return ShortDetector(
        r_el_ohm=ctx.notes.get("r_el_ohm"),
        threshold=rule.threshold if rule else None,
        window=rule.window if rule else None,
    )


def area(ctx: StepContext) -> float:
    a = ctx.notes.get("cell_area") or ctx.station.cell_area
    if not a:
        raise fail(
            ctx,
            "no cell area (sample.area in the protocol or cell_area in the station) to turn current "
            "density into current",
        )
    return float(a)


def half_cycle(
    ctx: StepContext,
    pot: Any,
    *,
    current: float,
    duration: float,
    interval: float,
    cycle: int,
    half: int,
    detector: ShortDetector | None = None,
    stop_at_voltage: float | None = None,
) -> HalfCycle:
    """Hold `current` for `duration`, storing every point; stop early on a short or a voltage trip."""
    chunk = math.inf if ctx.clock.is_virtual else REAL_CHUNK_S
    remaining = duration
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    tripped = False
    while remaining > 1e-9:
        d = min(remaining, chunk)
        ctx.checkpoint(False)  # abort only; pause waits for the half-cycle boundary
        t_call = ctx.now()

        def store(part: Any, t_call: float = t_call) -> None:  # as the points arrive (crash loss <= 1 s)
            k = len(part.t)
            ctx.store_points(
                "cycling",
                t=np.asarray(part.t, dtype=float) + t_call,
                voltage=np.asarray(part.voltage, dtype=float),
                current=np.asarray(part.current, dtype=float),
                cycle=np.full(k, cycle, dtype=np.int64),
                half_cycle=np.full(k, half, dtype=np.int64),
            )

        trace = streamed(pot.acquire, store, current=current, duration=d, interval=interval)
        lag = t_call + d - ctx.now()
        if lag > 0:
            ctx.clock.sleep(lag)
        t = np.asarray(trace.t, dtype=float) + t_call
        v = np.asarray(trace.voltage, dtype=float)
        i = np.asarray(trace.current, dtype=float)
        n = len(t)
        parts.append((t, v, i))
        remaining -= d
        if n:
            ctx.progress(
                "step.progress",
                {"readings": {"voltage_v": float(v[-1]), "current_a": float(i[-1]), "cycle": cycle}},
            )
        if trace.tripped or (stop_at_voltage is not None and n and np.any(np.abs(v) >= stop_at_voltage)):
            tripped = True
            break
    if parts:
        t, v, i = (np.concatenate(x) for x in zip(*parts, strict=True))
    else:
        t = v = i = np.zeros(0)
    hc = HalfCycle(t, v, i, tripped)
    if detector is not None:
        hc.short = detector.check(t, v, i)
    return hc


def end_by(ctx: StepContext, what: str, at: float, detail: str, action: str) -> None:
    """A short or a voltage limit: end the step (default), or fail/pause/abort as configured."""
    ctx.achieved.update(ended_by=what, ended_at_s=at, end_detail=detail)
    ctx.event(f"cell.{what}", {"t": at, "detail": detail})
    if action != "end_step":
        raise InterlockTripped(what, f"{detail} at t = {at:.1f} s", action=action)
    ctx.reason = f"{what.replace('_', ' ')} at t = {at:.1f} s ({detail})"


def rest_at_ocv(ctx: StepContext, pot: Any, seconds: float, interval: float) -> None:
    """Zero current for `seconds`, the voltage sampled every `interval` s into stream `ocv`."""
    if seconds <= 0:
        return
    chunk = math.inf if ctx.clock.is_virtual else REAL_CHUNK_S
    remaining = seconds
    while remaining > 1e-9:
        d = min(remaining, chunk)
        ctx.checkpoint(False)
        t_call = ctx.now()

        def store(part: Any, t_call: float = t_call) -> None:
            t = np.asarray(part.t, dtype=float) + t_call
            ctx.store_points("ocv", t=t, voltage=np.asarray(part.voltage, dtype=float))

        streamed(pot.acquire, store, current=0.0, duration=d, interval=min(interval, d))
        lag = t_call + d - ctx.now()
        if lag > 0:
            ctx.clock.sleep(lag)
        remaining -= d
    ctx.achieved["rest_s"] = ctx.achieved.get("rest_s", 0.0) + seconds


def record_conditions(ctx: StepContext, step: CyclingModel) -> None:
    """The cell temperature the protocol requires, recorded as a condition nothing on the station checks."""
    if step.temperature is not None:
        ctx.achieved["required_conditions"] = {"cell_temperature_c": step.temperature, "controlled": False}


@dataclass
class Deadline:
    """When a cycling step's time runs out (`time_cap` x nominal), moved on by the time spent paused."""

    at: float


class Galvanostatic(StepKind[Any]):
    """Symmetric cycling at one or more current densities (`cycle_symmetric`, `rate_test`)."""

    ROLES = ("potentiostat",)
    INSTRUMENT_LIMITS: ClassVar[dict[str, tuple[str, str]]] = {
        "current": ("potentiostat", "current"),
        "voltage_limit": ("potentiostat", "voltage_limit"),
        "sample_every": ("potentiostat", "interval"),
        "points": ("potentiostat", "points"),
    }

    def roles(self, step: Any, station: Station | None) -> list[str]:
        return ["potentiostat"]

    def plan_common(self, step: Any, p: PlanContext, capacity: float) -> None:
        if step.temperature is not None:
            p.warn(
                f"cell temperature {fmt(step.temperature, 'temperature')} is not measured or controlled by "
                "any station role: recorded as a required condition"
            )
        li = p.protocol.sample.li_thickness if p.protocol.sample else None
        if li:  # half-cycle capacity vs 50 % of the Li inventory (1 mAh/cm^2 = 4.85 µm Li, physics.md 2.10)
            inventory = li / 4.85e-6 * lim.MAH_CM2
            if capacity > 0.5 * inventory:
                p.error(
                    f"capacity {fmt(capacity, 'areal_capacity')} is over 50 % of the Li inventory "
                    f"({fmt(inventory, 'areal_capacity')})"
                )

    def setup(self, ctx: StepContext, step: Any) -> tuple[Any, Deadline]:
        """The potentiostat, configured and on; the step's deadline (`time_cap` x nominal) on the clock."""
        pot = ctx.role("potentiostat")
        pot.configure_galvanostatic(voltage_limit=step.voltage_limit)
        pot.output(True)
        record_conditions(ctx, step)
        return pot, Deadline(ctx.clock.monotonic() + step.time_cap * self.nominal(step))

    def nominal(self, step: Any) -> float:
        """The step's time without interruptions (s): what `time_cap` multiplies."""
        raise NotImplementedError

    def cycle(
        self,
        ctx: StepContext,
        pot: Any,
        step: Any,
        *,
        j: float,
        half_time: float,
        cycles: int,
        deadline: Deadline,
        first_cycle: int = 1,
        fraction: tuple[float, float] = (0.0, 1.0),
        last: bool = True,
    ) -> bool:
        """Symmetric cycles at `j` (A/m^2); False if a short, the voltage limit or the cap ends them."""
        current = j * area(ctx)
        det = ctx.notes.setdefault("short_detector", detector_for(ctx, self.detection(step)))
        vlim = abs(step.voltage_limit)
        for c in range(first_cycle, first_cycle + cycles):
            for h, sign in ((0, -1.0), (1, 1.0)):  # plating (negative current on the WE), then stripping
                before = ctx.clock.monotonic()
                ctx.poll()  # pauses at a half-cycle boundary; paused time is not capped
                deadline.at += ctx.clock.monotonic() - before
                if ctx.clock.monotonic() > deadline.at + 1e-6:
                    end_by(
                        ctx,
                        "time_cap",
                        ctx.now(),
                        f"step time over {step.time_cap:g} x its nominal time",
                        "end_step",
                    )
                    ctx.status = "deviated"
                    return False
                hc = half_cycle(
                    ctx,
                    pot,
                    current=sign * current,
                    duration=half_time,
                    interval=step.sample_every,
                    cycle=c,
                    half=2 * (c - 1) + h,
                    detector=det,
                )
                ctx.achieved["cycles"] = c - first_cycle + (h + 1) / 2
                ctx.achieved["half_cycles"] = ctx.achieved.get("half_cycles", 0) + 1
                done = (c - first_cycle + (h + 1) / 2) / cycles
                ctx.progress("step.progress", {"fraction": fraction[0] + (fraction[1] - fraction[0]) * done})
                if hc.short is not None and self.shorted(ctx, step, hc.short):
                    return False
                if self.shorted_long_enough(ctx, step):
                    return False
                if hc.tripped:
                    k = int(np.argmax(np.abs(hc.voltage) >= 0.999 * vlim))
                    end_by(
                        ctx,
                        "voltage_limit",
                        float(hc.t[k]) if len(hc.t) else ctx.now(),
                        "the voltage limit (compliance) tripped",
                        "end_step",
                    )
                    return False
                if not (last and c == first_cycle + cycles - 1 and h == 1):
                    rest_at_ocv(ctx, pot, step.rest, step.sample_every)
        return True

    def detection(self, step: Any) -> ShortDetection | None:
        """The step's own short criterion (with the physics.md §4.1 ones the detector always applies)."""
        return step.short_detection

    def _stop_after(self, step: Any) -> float | None:
        rule = self.detection(step)
        return rule.stop_after if rule is not None else None

    def shorted(self, ctx: StepContext, step: Any, short: tuple[float, str]) -> bool:
        """A short was detected: record it; end the step now unless `short_detection.stop_after` asks to
        keep cycling the shorted cell for that long (physics §2.10: the data after a short has value)."""
        if "short_at_s" in ctx.achieved:
            return False
        at, detail = short
        ctx.achieved.update(short_at_s=at, short_detail=detail)
        stop_after = self._stop_after(step)
        if stop_after is None:
            end_by(ctx, "short_circuit", at, detail, "end_step")
            return True
        ctx.event("cell.short_circuit", {"t": at, "detail": detail, "continue_s": stop_after})
        return False

    def shorted_long_enough(self, ctx: StepContext, step: Any) -> bool:
        stop_after = self._stop_after(step)
        at = ctx.achieved.get("short_at_s")
        if at is None or stop_after is None or ctx.now() - at < stop_after:
            return False
        end_by(
            ctx,
            "short_circuit",
            at,
            f"{ctx.achieved['short_detail']}; cycled {stop_after:g} s shorted",
            "end_step",
        )
        return True
