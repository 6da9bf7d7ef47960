"""Galvanostatic steps on the potentiostat: `cycle_symmetric`, `rate_test`, `coulombic_efficiency`, `ocv`.

Data come from the instrument's buffered acquisition (`Potentiostat.acquire`) in whole half-cycles (bounded
chunks on a real clock, so interrupts stay responsive) and go to the store in bulk: stream `cycling`, columns
t (s since the run started), voltage, current, cycle, half_cycle. A short circuit (physics.md §4.1) ends the
step with the time of the short; a voltage-limit trip ends it too (or is the normal end of a CE strip).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from labctl.analysis.failure import ShortCriterion as ShortDetector  # the one criterion (physics §4.1)
from labctl.engine.errors import InterlockTripped, StepFailed
from labctl.engine.executors.base import Executor, StepContext, fnum, register

REAL_CHUNK_S = 60.0  # longest single acquisition on a real clock


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


def detector_for(ctx: StepContext) -> ShortDetector:
    """The run's short detector, with the step's `short_detection` threshold and window."""
    rule = ctx.params.get("short_detection") or {}
    threshold, window = rule.get("threshold"), rule.get("window")
    return ShortDetector(
        r_el_ohm=ctx.notes.get("r_el_ohm"),
        threshold=None if threshold is None else fnum(threshold),
        window=None if window is None else fnum(window),
    )


def area(ctx: StepContext) -> float:
    a = ctx.params.get("area") or ctx.notes.get("cell_area") or ctx.station.cell_area
    if not a:
        raise StepFailed(
            f"step {ctx.index + 1}: no cell area (sample.area in the protocol or cell_area in the "
            "station) to turn current density into current"
        )
    return fnum(a)


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
        trace = pot.acquire(current=current, duration=d, interval=interval)
        lag = t_call + d - ctx.now()
        if lag > 0:
            ctx.clock.sleep(lag)
        t = np.asarray(trace.t, dtype=float) + t_call
        v = np.asarray(trace.voltage, dtype=float)
        i = np.asarray(trace.current, dtype=float)
        n = len(t)
        ctx.store_points(
            "cycling",
            t=t,
            voltage=v,
            current=i,
            cycle=np.full(n, cycle, dtype=np.int64),
            half_cycle=np.full(n, half, dtype=np.int64),
        )
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


class _Galvanostatic(Executor):
    ROLES = ("potentiostat",)

    def setup(self, ctx: StepContext) -> tuple[Any, float, float]:
        pot = ctx.role("potentiostat")
        vlim = fnum(ctx.params["voltage_limit"])
        interval = fnum(ctx.params["sample_every"])
        pot.configure_galvanostatic(voltage_limit=vlim)
        pot.output(True)
        return pot, vlim, interval

    def cycle(
        self,
        ctx: StepContext,
        pot: Any,
        *,
        j: float,
        capacity: float | None,
        half_time: float | None,
        cycles: int,
        interval: float,
        first_cycle: int = 1,
        fraction: tuple[float, float] = (0.0, 1.0),
    ) -> bool:
        """Symmetric cycles at current density `j`; False if a short or a voltage limit ended them."""
        a = area(ctx)
        current = j * a
        th = half_time if half_time is not None else fnum(capacity) / j
        det = ctx.notes.setdefault("short_detector", detector_for(ctx))
        vlim = abs(fnum(ctx.params["voltage_limit"]))
        for c in range(first_cycle, first_cycle + cycles):
            for h, sign in ((0, -1.0), (1, 1.0)):  # plating (negative current on the WE), then stripping
                ctx.poll()  # a pause takes effect at a half-cycle boundary
                hc = half_cycle(
                    ctx,
                    pot,
                    current=sign * current,
                    duration=th,
                    interval=interval,
                    cycle=c,
                    half=2 * (c - 1) + h,
                    detector=det,
                )
                ctx.achieved["cycles"] = c - first_cycle + (h + 1) / 2
                ctx.achieved["half_cycles"] = ctx.achieved.get("half_cycles", 0) + 1
                done = (c - first_cycle + (h + 1) / 2) / cycles
                ctx.progress("step.progress", {"fraction": fraction[0] + (fraction[1] - fraction[0]) * done})
                if hc.short is not None and self.shorted(ctx, hc.short):
                    return False
                if self.shorted_long_enough(ctx):
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
        return True


    @staticmethod
    def _stop_after(ctx: StepContext) -> float | None:
        value = (ctx.params.get("short_detection") or {}).get("stop_after")
        return None if value is None else fnum(value)

    def shorted(self, ctx: StepContext, short: tuple[float, str]) -> bool:
        """A short was detected: record it; end the step now unless `short_detection.stop_after` asks to
        keep cycling the shorted cell for that long (physics §2.10: the data after a short has value)."""
        if "short_at_s" in ctx.achieved:
            return False
        at, detail = short
        ctx.achieved.update(short_at_s=at, short_detail=detail)
        if self._stop_after(ctx) is None:
            end_by(ctx, "short_circuit", at, detail, "end_step")
            return True
        ctx.event("cell.short_circuit", {"t": at, "detail": detail, "continue_s": self._stop_after(ctx)})
        return False

    def shorted_long_enough(self, ctx: StepContext) -> bool:
        stop_after = self._stop_after(ctx)
        at = ctx.achieved.get("short_at_s")
        if at is None or stop_after is None or ctx.now() - at < stop_after:
            return False
        end_by(ctx, "short_circuit", at, f"{ctx.achieved['short_detail']}; cycled {stop_after:g} s shorted",
               "end_step")
        return True


@register
class CycleSymmetric(_Galvanostatic):
    KINDS = ("cycle_symmetric",)

    def run(self, ctx: StepContext) -> None:
        p = ctx.params
        pot, vlim, interval = self.setup(ctx)
        j = fnum(p["current_density"])
        cycles = int(p["cycles"])
        half = p.get("half_cycle")
        cap = p.get("capacity")
        ctx.achieved.update(commanded_cycles=cycles, current_a=j * area(ctx), voltage_limit_v=vlim)
        try:
            self.cycle(
                ctx,
                pot,
                j=j,
                capacity=fnum(cap) if cap is not None else None,
                half_time=fnum(half) if half is not None else None,
                cycles=cycles,
                interval=interval,
            )
        finally:
            pot.output(False)

    def estimate(self, params: dict[str, Any], station: Any = None) -> float:
        try:
            half = params.get("half_cycle") or fnum(params["capacity"]) / fnum(params["current_density"])
            return 2 * fnum(half) * int(params["cycles"])
        except (KeyError, TypeError, ZeroDivisionError):
            return 0.0


@register
class RateTest(_Galvanostatic):
    """Stages of symmetric cycles at increasing (or any) current densities, at one areal capacity."""

    KINDS = ("rate_test",)

    def run(self, ctx: StepContext) -> None:
        p = ctx.params
        pot, _vlim, interval = self.setup(ctx)
        stages = [(fnum(s["current_density"]), int(s["cycles"])) for s in p["stages"]]
        capacity = fnum(p["capacity"])
        total = sum(n for _, n in stages)
        ctx.achieved.update(commanded_stages=[{"current_density": j, "cycles": n} for j, n in stages])
        done: list[float] = []
        first, finished = 1, 0
        try:
            for j, n in stages:
                ok = self.cycle(ctx, pot, j=j, capacity=capacity, half_time=None, cycles=n, interval=interval,
                                first_cycle=first, fraction=(finished / total, (finished + n) / total))
                first, finished = first + n, finished + n
                done.append(j)
                ctx.achieved["current_densities_done"] = done
                if not ok:
                    break
        finally:
            pot.output(False)

    def estimate(self, params: dict[str, Any], station: Any = None) -> float:
        capacity = fnum(params["capacity"])
        return sum(2 * capacity / fnum(s["current_density"]) * int(s["cycles"]) for s in params["stages"])


@register
class CoulombicEfficiency(_Galvanostatic):
    """Li|Cu: plate Q on Cu, strip to the cut-off voltage. `method: cycling` gives CE = Q_strip / Q_plate per
    cycle; `method: aurbach` runs the Adams/Aurbach protocol and gives its average CE (physics §2.8)."""

    KINDS = ("coulombic_efficiency",)

    def run(self, ctx: StepContext) -> None:
        p = ctx.params
        pot = ctx.role("potentiostat")
        cutoff = fnum(p["cutoff_voltage"])
        pot.configure_galvanostatic(voltage_limit=max(abs(cutoff), abs(fnum(p["plating_voltage_limit"]))))
        pot.output(True)
        j = fnum(p["current_density"])
        halves = iter(range(1 << 30))
        interval = fnum(p["sample_every"])

        def plate(charge_per_area: float, cycle: int) -> float:
            hc = half_cycle(ctx, pot, current=-j * area(ctx), duration=charge_per_area / j, interval=interval,
                            cycle=cycle, half=next(halves))
            return hc.charge

        def strip(charge_per_area: float, cycle: int, to_cutoff: bool) -> float:
            hc = half_cycle(ctx, pot, current=j * area(ctx), duration=charge_per_area / j, interval=interval,
                            cycle=cycle, half=next(halves), stop_at_voltage=cutoff if to_cutoff else None)
            v = hc.voltage
            hit = v >= cutoff * 0.999
            end = int(np.argmax(hit)) + 1 if to_cutoff and np.any(hit) else len(v)
            return HalfCycle(hc.t[:end], v[:end], hc.current[:end], False).charge

        try:
            if p["method"] == "aurbach":
                self._aurbach(ctx, plate, strip)
            else:
                self._per_cycle(ctx, plate, strip)
        finally:
            pot.output(False)

    @staticmethod
    def _per_cycle(ctx: StepContext, plate: Any, strip: Any) -> None:
        p = ctx.params
        cycles, capacity = int(p["cycles"]), fnum(p["capacity"])
        rows: dict[str, list[float]] = {"cycle": [], "q_plate": [], "q_strip": [], "ce": []}
        for c in range(1, cycles + 1):
            ctx.poll()
            q_plate = plate(capacity, c)
            q_strip = strip(1.5 * capacity, c, True)
            ce = q_strip / q_plate if q_plate > 0 else 0.0
            for key, value in zip(rows, (c, q_plate, q_strip, ce), strict=True):
                rows[key].append(value)
            ctx.progress("step.progress", {"fraction": c / cycles, "readings": {"ce": ce, "cycle": c}})
        ctx.store_points("ce", **{k: np.asarray(v) for k, v in rows.items()})
        ces = rows["ce"]
        ctx.achieved.update(commanded_cycles=cycles, cycles=len(ces), first_cycle_ce=ces[0] if ces else None,
                            mean_ce=float(np.mean(ces[1:] if len(ces) > 1 else ces)) if ces else None)

    @staticmethod
    def _aurbach(ctx: StepContext, plate: Any, strip: Any) -> None:
        from labctl.analysis.coulombic import aurbach_ce

        p = ctx.params
        n, q_c = int(p["cycles"]), fnum(p["capacity"])
        q_form, q_res = fnum(p["formation_capacity"]), fnum(p["reservoir_capacity"])
        plate(q_form, 0)                                  # (i) formation: plate, then strip to the cut-off
        strip(1.5 * q_form, 0, True)
        q_t = plate(q_res, 1)                             # (ii) the reservoir Q_T
        q_cycle = 0.0
        for c in range(1, n + 1):                         # (iii) n cycles of Q_C
            ctx.poll()
            q_cycle = strip(q_c, c, False)
            plate(q_c, c)
            ctx.progress("step.progress", {"fraction": c / (n + 1)})
        q_s = strip(1.5 * (q_res + q_c), n + 1, True)     # (iv) strip everything to the cut-off
        ce = aurbach_ce(q_t, q_cycle, n, q_s)
        ctx.achieved.update(method="aurbach", q_reservoir_c=q_t, q_cycle_c=q_cycle, cycles=n,
                            q_final_strip_c=q_s, ce_avg=ce)


@register
class Ocv(Executor):
    KINDS = ("ocv",)
    OPTIONAL_ROLES = ("potentiostat", "eis")

    def run(self, ctx: StepContext) -> None:
        duration = fnum(ctx.params["duration"])
        interval = fnum(ctx.params["sample_every"])
        if ctx.has("potentiostat"):
            pot = ctx.role("potentiostat")
            t_call = ctx.now()
            trace = pot.acquire(current=0.0, duration=duration, interval=interval)
        elif ctx.has("eis"):
            t_call = ctx.now()
            trace = ctx.role("eis").ocp(duration, interval)
        else:
            raise StepFailed(f"step {ctx.index + 1}: ocv needs a potentiostat or an EIS instrument")
        lag = t_call + duration - ctx.now()
        if lag > 0:
            ctx.clock.sleep(lag)
        t = np.asarray(trace.t, dtype=float) + t_call
        v = np.asarray(trace.voltage, dtype=float)
        ctx.store_points("ocv", t=t, voltage=v)
        ctx.achieved.update(commanded_time_s=duration, ocv_v=float(v[-1]) if len(v) else None, points=len(v))

    def estimate(self, params: dict[str, Any], station: Any = None) -> float:
        return fnum(params["duration"])
