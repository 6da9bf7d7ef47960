"""`eis`: an impedance spectrum from the EIS instrument, stored as stream `eis` (freq, z_real, z_imag).

Before the sweep the cell settles at open circuit for `settle` s with its voltage sampled (stream `ocv`); with
`ocv: true` that open-circuit voltage (measured over at least `OCV_MEASURE_S`) is where the sweep's dc sits,
`dc` being an offset from it; with `ocv: false`, `dc` is the absolute dc potential. The high-frequency real
intercept is kept as R_el for the short-circuit detector of later cycling steps.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator

from labctl.protocol.fields import Count, Flag, NonNegative, Positive, Qty
from labctl.steps.base import PlanContext, StepContext, StepKind, StepModel
from labctl.steps.ocv import sample_ocv
from labctl.steps.streaming import streamed
from labctl.units import fmt

if TYPE_CHECKING:
    from labctl.station import Station

OCV_MEASURE_S = 1.0  # s of open-circuit sampling that gives the OCV when no settle is asked
OCV_POINTS = 10  # points over a settle (or the OCV measurement)
_RANGE = re.compile(r"^\s*(.+?)\s*\.\.\s*(.+?)\s*$")
F_MIN, F_MAX = 1e-6, 1e9  # Hz: the frequencies an EIS sweep can name at all (instruments: LIMITS)


class Eis(StepModel):
    """Impedance spectrum from `f_start` to `f_end` (Hz), written `frequencies: 1 MHz..0.1 Hz`,
    `points_per_decade`, `amplitude` (V rms) around the dc potential: the open-circuit voltage + `dc` (V) with
    `ocv: true`, else `dc` itself; after `settle` (s) at open circuit."""

    kind: Literal["eis"] = "eis"
    frequencies: str = Field(json_schema_extra={"examples": ["1 MHz..0.1 Hz"]})
    points_per_decade: Count(ge=1, le=100) = 10
    amplitude: Positive("voltage")
    dc: Qty("voltage") = 0.0
    ocv: Flag = True
    settle: NonNegative("duration") = 0.0

    @field_validator("frequencies")
    @classmethod
    def _range(cls, value: str) -> str:
        from labctl.units import UnitError, parse

        match = _RANGE.match(value)
        if not match:
            raise ValueError(f"`frequencies` must be a range such as `1 MHz..0.1 Hz`, got `{value[:40]}`")
        try:
            a, b = parse(match.group(1), "frequency"), parse(match.group(2), "frequency")
        except UnitError as exc:
            raise ValueError(f"`frequencies` {exc}") from None
        if a <= 0 or b <= 0 or a == b:
            raise ValueError("`frequencies` must be two different positive frequencies")
        if not (F_MIN <= a <= F_MAX and F_MIN <= b <= F_MAX):  # a sweep outside this is not impedance
            raise ValueError(f"`frequencies` must lie within {F_MIN:g}..{F_MAX:g} Hz, got `{value[:30]}`")
        return value

    @property
    def f_start(self) -> float:
        from labctl.units import parse

        return parse(_RANGE.match(self.frequencies).group(1), "frequency")  # type: ignore[union-attr]

    @property
    def f_end(self) -> float:
        from labctl.units import parse

        return parse(_RANGE.match(self.frequencies).group(2), "frequency")  # type: ignore[union-attr]


def sweep_time(f_start: float, f_end: float, ppd: int, driver: type | None = None) -> float:
    """The instrument's own sweep time if its driver declares one, else max(3 periods, 0.1 s) per point."""
    own = getattr(driver, "sweep_time", None)
    if callable(own):
        return float(own(f_start, f_end, ppd))
    hi, lo = max(f_start, f_end), min(f_start, f_end)
    n = max(2, round(math.log10(hi / lo) * ppd) + 1)
    return sum(max(3.0 / (hi * (lo / hi) ** (i / (n - 1))), 0.1) for i in range(n))


def open_circuit_time(step: Eis) -> float:
    return max(step.settle, OCV_MEASURE_S) if step.ocv else step.settle


class EisKind(StepKind[Eis]):
    KIND = "eis"
    MODEL = Eis
    ROLES = ("eis",)
    INSTRUMENT_LIMITS: ClassVar[dict[str, tuple[str, str]]] = {
        "amplitude": ("eis", "amplitude"),
        "f_start": ("eis", "frequency"),
        "f_end": ("eis", "frequency"),
        "dc": ("eis", "potential"),
        "points_per_decade": ("eis", "points_per_decade"),
    }

    def roles(self, step: Eis, station: Station | None) -> list[str]:
        return ["eis"]

    def value(self, step: Eis, name: str, p: PlanContext) -> float | None:
        if name in ("f_start", "f_end"):
            return float(getattr(step, name))
        return super().value(step, name, p)

    def plan(self, step: Eis, p: PlanContext) -> None:
        driver = None
        if p.station is not None and p.station.has("eis"):
            from labctl.drivers.registry import driver_class

            try:
                driver = driver_class(p.station.instruments["eis"].driver)
            except Exception:
                driver = None
        p.ps.duration = open_circuit_time(step) + sweep_time(
            step.f_start, step.f_end, step.points_per_decade, driver
        )
        p.ps.summary = (
            f"{step.frequencies}, {step.points_per_decade}/decade, {fmt(step.amplitude, 'voltage')}"
            + (" at OCV" if step.ocv else f" at {fmt(step.dc, 'voltage')}")
            + (f", settle {fmt(step.settle, 'duration')}" if step.settle else "")
        )

    def run(self, ctx: StepContext, step: Eis) -> None:
        eis = ctx.role("eis")
        f_start, f_end = step.f_start, step.f_end
        dc = step.dc
        wait = open_circuit_time(step)
        if wait > 0:
            v = sample_ocv(ctx, wait, wait / OCV_POINTS, role="eis")
            ctx.achieved.update(commanded_settle_s=step.settle, settle_s=wait)
            if step.ocv:
                if not len(v):
                    raise RuntimeError("the EIS instrument returned no open-circuit voltage")
                ctx.achieved["ocv_v"] = float(v[-1])
                dc = float(v[-1]) + step.dc

        def store(part: Any) -> None:  # t_received: transport timing, not part of the measurement
            ctx.store_points(
                "eis", freq=part.freq, z_real=part.z_real, z_imag=part.z_imag, t_received=ctx.now()
            )

        spec = streamed(
            eis.eis,
            store,
            f_start=f_start,
            f_end=f_end,
            points_per_decade=step.points_per_decade,
            amplitude=step.amplitude,
            dc_potential=dc,
            galvanostatic=False,
        )
        freq = np.asarray(spec.freq, dtype=float)
        zr = np.asarray(spec.z_real, dtype=float)
        if len(freq):
            r_hf = float(zr[int(np.argmax(freq))])
            ctx.notes["r_el_ohm"] = r_hf
            ctx.achieved.update(
                points=len(freq),
                f_max_hz=float(freq.max()),
                f_min_hz=float(freq.min()),
                r_high_freq_ohm=r_hf,
                z_low_freq_real_ohm=float(zr[int(np.argmin(freq))]),
            )
        ctx.achieved.update(
            commanded_f_start_hz=f_start,
            commanded_f_end_hz=f_end,
            amplitude_v=step.amplitude,
            dc_v=dc,
            at_ocv=step.ocv,
        )

    def estimate(self, step: Eis) -> float:
        return open_circuit_time(step) + sweep_time(step.f_start, step.f_end, step.points_per_decade)


KIND_CLASS = EisKind
