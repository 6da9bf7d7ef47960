"""`coulombic_efficiency`: Li|Cu plating and stripping (shared machinery in `steps.cycling`).

`method: cycling` gives CE = Q_strip / Q_plate per cycle (stream `ce`); `method: aurbach` runs the
Adams/Aurbach protocol (physics §2.8) and gives its average CE. A strip to the cut-off lasts at most
`time_cap` x its nominal Q/j; the plan counts that cap (the strip's real end is the cell's business), so the
plan is an upper bound.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np

from labctl.protocol.fields import Count, NonNegative, Positive, Qty
from labctl.steps.base import PlanContext, StepContext, StepKind
from labctl.steps.cycling import CyclingModel, HalfCycle, area, half_cycle, record_conditions, rest_at_ocv
from labctl.units import fmt

if TYPE_CHECKING:
    from labctl.station import Station


class CoulombicEfficiency(CyclingModel):
    """Li|Cu Coulombic efficiency: plate `capacity` (C/m^2) at `current_density` (A/m^2), strip to
    `cutoff_voltage` (V), `cycles` times. `method: aurbach` (Adams et al. 2018): form (plate
    `formation_capacity`, strip), plate reservoir `reservoir_capacity`, `cycles` of `capacity`, strip all.
    `rest` (s) at open circuit between half-cycles (voltage sampled)."""

    kind: Literal["coulombic_efficiency"] = "coulombic_efficiency"
    method: Literal["cycling", "aurbach"] = "cycling"
    current_density: Positive("current_density")
    capacity: Positive("areal_capacity")
    cutoff_voltage: Qty("voltage")
    cycles: Count(ge=1, le=100_000)
    plating_voltage_limit: Qty("voltage") = -1.0
    formation_capacity: Positive("areal_capacity") = 5 * 36000.0
    reservoir_capacity: Positive("areal_capacity") = 5 * 36000.0
    sample_every: Positive("duration") = 1.0
    rest: NonNegative("duration") = 0.0


def half_cycles(step: CoulombicEfficiency) -> list[tuple[str, float, bool]]:
    """The half-cycles in order: (plate|strip, charge per area C/m^2, to the cut-off); run and plan walk it"""
    q, n = step.capacity, step.cycles
    if step.method == "cycling":
        return [h for _ in range(n) for h in (("plate", q, False), ("strip", q, True))]
    formation = [("plate", step.formation_capacity, False), ("strip", step.formation_capacity, True)]
    cycles = [h for _ in range(n) for h in (("strip", q, False), ("plate", q, False))]
    return [
        *formation,
        ("plate", step.reservoir_capacity, False),
        *cycles,
        ("strip", step.reservoir_capacity + q, True),
    ]


class CoulombicEfficiencyKind(StepKind[CoulombicEfficiency]):
    KIND = "coulombic_efficiency"
    MODEL = CoulombicEfficiency
    ROLES = ("potentiostat",)
    INSTRUMENT_LIMITS: ClassVar[dict[str, tuple[str, str]]] = {
        "current": ("potentiostat", "current"),
        "sample_every": ("potentiostat", "interval"),
        "points": ("potentiostat", "points"),
    }

    def roles(self, step: CoulombicEfficiency, station: Station | None) -> list[str]:
        return ["potentiostat"]

    def value(self, step: CoulombicEfficiency, name: str, p: PlanContext) -> float | None:
        if name == "current":
            return step.current_density * p.area
        if name == "points":  # the longest half-cycle in one acquisition
            longest = max(q * (step.time_cap if cut else 1.0) for _, q, cut in half_cycles(step))
            return math.ceil(longest / step.current_density / step.sample_every - 1e-9)
        return super().value(step, name, p)

    def duration(self, step: CoulombicEfficiency) -> float:
        halves = half_cycles(step)
        t = sum(
            q / step.current_density * (step.time_cap if to_cutoff else 1.0) for _, q, to_cutoff in halves
        )
        return t + (len(halves) - 1) * step.rest

    def plan(self, step: CoulombicEfficiency, p: PlanContext) -> None:
        p.ps.duration = self.duration(step)
        p.ps.summary = f"Li|Cu {step.method}, {step.cycles} cycles of {fmt(step.capacity, 'areal_capacity')}"
        if step.temperature is not None:
            p.warn(
                f"cell temperature {fmt(step.temperature, 'temperature')} is not measured or controlled by "
                "any station role: recorded as a required condition"
            )

    def run(self, ctx: StepContext, step: CoulombicEfficiency) -> None:
        pot = ctx.role("potentiostat")
        pot.configure_galvanostatic(
            voltage_limit=max(abs(step.cutoff_voltage), abs(step.plating_voltage_limit))
        )
        pot.output(True)
        record_conditions(ctx, step)
        j, a = step.current_density, area(ctx)
        halves = half_cycles(step)
        numbers = itertools.count()
        last = len(halves) - 1

        def do(k: int, cycle: int) -> float:
            what, q, to_cutoff = halves[k]
            sign = -1.0 if what == "plate" else 1.0
            cap = step.time_cap if to_cutoff else 1.0
            hc = half_cycle(
                ctx,
                pot,
                current=sign * j * a,
                duration=cap * q / j,
                interval=step.sample_every,
                cycle=cycle,
                half=next(numbers),
                stop_at_voltage=step.cutoff_voltage if to_cutoff else None,
            )
            charge = hc.charge
            if to_cutoff:
                hit = hc.voltage >= step.cutoff_voltage * 0.999
                end = int(np.argmax(hit)) + 1 if np.any(hit) else len(hc.voltage)
                charge = HalfCycle(hc.t[:end], hc.voltage[:end], hc.current[:end], False).charge
            if k < last:
                rest_at_ocv(ctx, pot, step.rest, step.sample_every)
            return charge

        try:
            if step.method == "aurbach":
                self._aurbach(ctx, step, do)
            else:
                self._per_cycle(ctx, step, do)
        finally:
            pot.output(False)

    @staticmethod
    def _per_cycle(ctx: StepContext, step: CoulombicEfficiency, do: Callable[[int, int], float]) -> None:
        rows: dict[str, list[float]] = {"cycle": [], "q_plate": [], "q_strip": [], "ce": []}
        for c in range(1, step.cycles + 1):
            ctx.poll()
            q_plate = do(2 * (c - 1), c)
            q_strip = do(2 * (c - 1) + 1, c)
            ce = q_strip / q_plate if q_plate > 0 else 0.0
            for key, value in zip(rows, (c, q_plate, q_strip, ce), strict=True):
                rows[key].append(value)
            ctx.progress("step.progress", {"fraction": c / step.cycles, "readings": {"ce": ce, "cycle": c}})
        ctx.store_points("ce", **{k: np.asarray(v) for k, v in rows.items()})
        ces = rows["ce"]
        ctx.achieved.update(
            commanded_cycles=step.cycles,
            cycles=len(ces),
            first_cycle_ce=ces[0] if ces else None,
            mean_ce=float(np.mean(ces[1:] if len(ces) > 1 else ces)) if ces else None,
        )

    @staticmethod
    def _aurbach(ctx: StepContext, step: CoulombicEfficiency, do: Callable[[int, int], float]) -> None:
        from labctl.analysis.coulombic import aurbach_ce

        n = step.cycles
        do(0, 0)  # (i) formation: plate, then strip to the cut-off
        do(1, 0)
        q_t = do(2, 1)  # (ii) the reservoir Q_T
        q_cycle = 0.0
        for c in range(1, n + 1):  # (iii) n cycles of Q_C: strip, plate
            ctx.poll()
            q_cycle = do(3 + 2 * (c - 1), c)
            do(4 + 2 * (c - 1), c)
            ctx.progress("step.progress", {"fraction": c / (n + 1)})
        q_s = do(3 + 2 * n, n + 1)  # (iv) strip everything to the cut-off
        ce = aurbach_ce(q_t, q_cycle, n, q_s)
        ctx.achieved.update(
            method="aurbach", q_reservoir_c=q_t, q_cycle_c=q_cycle, cycles=n, q_final_strip_c=q_s, ce_avg=ce
        )

    def estimate(self, step: CoulombicEfficiency) -> float:
        return self.duration(step)


KIND_CLASS = CoulombicEfficiencyKind
