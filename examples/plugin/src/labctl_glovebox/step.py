"""`glovebox_check: {max_o2: 1 ppm, max_h2o: 1 ppm}`: the box atmosphere is fit for lithium, or the run stops.

Reads the O2 analyzer (`glovebox.o2`) and the dew-point transmitter (`glovebox.h2o`) `samples` times, `every`
apart, stores them in stream `glovebox` (t s, o2 and h2o as mole fractions), and fails the step naming the
gas, its worst reading and the limit if any reading is above its limit: lithium metal tarnishes within
minutes above a few ppm of O2 or H2O, so a fabrication or cell assembly must not start in such a box.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from labctl.protocol.fields import Count, Qty
from labctl.steps.base import PlanContext, StepContext, StepKind, StepModel, fail
from labctl.units import fmt

LABCTL_PLUGIN_API = 1
ADVISED_PPM = 10.0  # above this the "check" would pass boxes in which Li visibly tarnishes


class GloveboxCheck(StepModel):
    """Glovebox O2 and H2O at or below their limits (mole fractions: `1 ppm`)."""

    kind: Literal["glovebox_check"] = "glovebox_check"
    max_o2: Qty("fraction", "highest O2 level allowed, e.g. `1 ppm`")
    max_h2o: Qty("fraction", "highest H2O level allowed, e.g. `1 ppm`")
    samples: Count(ge=1, le=1000) = 3
    every: Qty("duration", "time between samples") = 10.0


class GloveboxCheckKind(StepKind[GloveboxCheck]):
    LABCTL_PLUGIN_API = 1
    KIND = "glovebox_check"
    MODEL = GloveboxCheck
    ROLES = ("glovebox.o2", "glovebox.h2o")

    def plan(self, step: GloveboxCheck, p: PlanContext) -> None:
        p.ps.duration = self.estimate(step)
        p.ps.summary = (f"O2 <= {step.max_o2 * 1e6:g} ppm, H2O <= {step.max_h2o * 1e6:g} ppm, "
                        f"{step.samples} samples every {fmt(step.every, 'duration')}")
        for gas, limit in (("O2", step.max_o2), ("H2O", step.max_h2o)):
            if limit * 1e6 > ADVISED_PPM:
                p.warn(f"max_{gas.lower()} {limit * 1e6:g} ppm: lithium tarnishes above a few ppm of {gas}")

    def run(self, ctx: StepContext, step: GloveboxCheck) -> None:
        o2_sensor, h2o_sensor = ctx.role("glovebox.o2"), ctx.role("glovebox.h2o")
        t, o2, h2o = [], [], []
        for i in range(step.samples):
            if i:
                ctx.sleep(step.every, label="glovebox check")
            t.append(ctx.now())
            o2.append(float(o2_sensor.oxygen()))
            h2o.append(float(h2o_sensor.water()))
            ctx.progress("step.progress", {"fraction": (i + 1) / step.samples,
                                           "readings": {"o2_ppm": o2[-1] * 1e6, "h2o_ppm": h2o[-1] * 1e6}})
        ctx.store_points("glovebox", t=np.asarray(t), o2=np.asarray(o2), h2o=np.asarray(h2o))
        ctx.achieved.update(o2_ppm_max=max(o2) * 1e6, h2o_ppm_max=max(h2o) * 1e6, samples=len(t))
        bad = [f"{gas} {worst * 1e6:.2f} ppm above max_{gas.lower()} {limit * 1e6:g} ppm"
               for gas, worst, limit in (("O2", max(o2), step.max_o2), ("H2O", max(h2o), step.max_h2o))
               if worst > limit]
        if bad:
            raise fail(ctx, "glovebox atmosphere not fit for lithium: " + "; ".join(bad))

    def estimate(self, step: GloveboxCheck) -> float:
        return (step.samples - 1) * step.every + step.samples * 2.0  # the O2 analyzer reports every 2 s
