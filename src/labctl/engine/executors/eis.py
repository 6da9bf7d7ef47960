"""`eis`: an impedance spectrum from the EIS instrument, stored as stream `eis` (freq, z_real, z_imag,
t_received: when each point reached labctl, s since the run started, as the driver streams them).

The high-frequency real intercept is kept as R_el for the short-circuit detector of later cycling steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from labctl.engine.executors.base import Executor, StepContext, fnum, register
from labctl.engine.executors.streaming import streamed


def frequency_range(p: dict[str, Any]) -> tuple[float, float]:
    """(start, end) of the sweep in Hz, as the protocol adapter resolved them from `frequencies`."""
    return fnum(p["f_start"]), fnum(p["f_end"])


@register
class Eis(Executor):
    KINDS = ("eis",)
    ROLES = ("eis",)

    def run(self, ctx: StepContext) -> None:
        p = ctx.params
        f_start, f_end = frequency_range(p)
        ppd = int(p["points_per_decade"])
        amp = fnum(p["amplitude"])
        dc = fnum(p["dc"])

        def store(part: Any) -> None:  # t_received: transport timing, not part of the measurement
            ctx.store_points(
                "eis", freq=part.freq, z_real=part.z_real, z_imag=part.z_imag, t_received=ctx.now()
            )

        spec = streamed(
            ctx.role("eis").eis,
            store,
            f_start=f_start,
            f_end=f_end,
            points_per_decade=ppd,
            amplitude=amp,
            dc_potential=dc,
            galvanostatic=bool(p.get("galvanostatic", False)),
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
        ctx.achieved.update(commanded_f_start_hz=f_start, commanded_f_end_hz=f_end, amplitude_v=amp)
