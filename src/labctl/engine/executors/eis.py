"""`eis`: an impedance spectrum from the EIS instrument, stored as stream `eis` (freq, z_real, z_imag).

The high-frequency real intercept is kept as R_el for the short-circuit detector of later cycling steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labctl.engine.executors.base import Executor, StepContext, fnum, param, register


def frequency_range(p: dict[str, Any]) -> tuple[float, float]:
    if p.get("f_start") is not None:
        return fnum(p["f_start"]), fnum(param(p, "f_end", "f_stop"))
    f = param(p, "frequencies", "frequency")
    if hasattr(f, "model_dump"):
        f = f.model_dump()
    if isinstance(f, dict):
        return fnum(param(f, "start", "high", "f_start")), fnum(param(f, "end", "stop", "low", "f_end"))
    if isinstance(f, str) and ".." in f:
        from labctl.engine.units import parse_si

        a, b = f.split("..")
        return parse_si(a), parse_si(b)
    a, b = next(iter(f)), list(f)[-1]
    return fnum(a), fnum(b)


@register
class Eis(Executor):
    KINDS = ("eis",)
    ROLES = ("eis",)

    def run(self, ctx: StepContext) -> None:
        p = ctx.params
        f_start, f_end = frequency_range(p)
        ppd = int(param(p, "points_per_decade", default=10))
        amp = fnum(param(p, "amplitude", default=0.01))
        dc = fnum(p.get("dc_potential") or 0.0)
        spec = ctx.role("eis").eis(
            f_start=f_start,
            f_end=f_end,
            points_per_decade=ppd,
            amplitude=amp,
            dc_potential=dc,
            galvanostatic=bool(p.get("galvanostatic", False)),
        )
        freq = np.asarray(spec.freq, dtype=float)
        zr, zi = np.asarray(spec.z_real, dtype=float), np.asarray(spec.z_imag, dtype=float)
        ctx.store_points("eis", freq=freq, z_real=zr, z_imag=zi)
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
        ctx.achieved.update(commanded_f_start_hz=f_start, commanded_f_end_hz=f_end, amplitude_v=amp)
