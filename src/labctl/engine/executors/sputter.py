"""`sputter` (RF magnetron, e.g. LiF) and `nitride` (N2 plasma Li3N) on the gauge + MFC + RF + QCM chain.

Sequence: shutter closed; base-pressure wait (timeout); gas on; pressure settle into the window; RF ramp at
the allowed rate; pre-sputter with the shutter closed; QCM film set and zeroed; shutter open; deposit until
the QCM thickness reaches the target (or the time limit; nitride: for its time); shutter closed; ramp down;
gas off. The chamber-pressure interlock (RF off, step fails or the run pauses, as configured) is live from
the moment the gas flows; reflected power above 20 % of forward trips too.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from labctl.engine.errors import StepFailed
from labctl.engine.executors.base import Executor, StepContext, fnum, register
from labctl.engine.interlocks import Condition, PressureWindow

LIF = {"density": 2640.0, "z_ratio": 0.778}  # physics.md §0 [S5]
DEFAULT_WINDOW = {"sputter": (0.1, 5.0), "nitride": (1.0, 200.0)}  # Pa
REFLECTED_TRIP = 0.20


@register
class Sputter(Executor):
    KINDS = ("sputter", "nitride")
    ROLES = ("gauge", "mfc", "rf")
    OPTIONAL_ROLES = ("qcm",)

    def run(self, ctx: StepContext) -> None:
        try:
            self._run(ctx)
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

    def _run(self, ctx: StepContext) -> None:
        p, kind = ctx.params, ctx.kind
        gauge, mfc, rf = ctx.role("gauge"), ctx.role("mfc"), ctx.role("rf")
        qcm = ctx.instruments.get("qcm")
        if kind == "sputter" and qcm is None:
            raise StepFailed(f"step {ctx.index + 1}: sputtering to a thickness needs a QCM")
        power = fnum(p["power"])
        gas = str(p.get("gas") or ("N2" if kind == "nitride" else "Ar"))
        flow = fnum(p["flow"])
        ramp = fnum(p.get("ramp_rate") or _limit_high(rf, "ramp_rate") or 1.0)
        target = fnum(p["thickness"]) if p.get("thickness") is not None and kind == "sputter" else None
        limit_s = fnum(p["max_time"] if kind == "sputter" else p["time"])
        if target is None and not math.isfinite(limit_s):
            raise StepFailed(f"step {ctx.index + 1}: {kind} needs a thickness or a time")
        lo, hi = _window(p, kind)
        series: dict[str, list[float]] = {k: [] for k in ("t", "pressure", "forward", "thickness", "rate")}

        if qcm is not None:
            qcm.shutter(False)
        base = fnum(p.get("base_pressure") or 1e-3)
        ctx.wait_until(
            lambda: gauge.pressure() <= base,
            timeout=fnum(p.get("base_pressure_timeout") or 3600.0),
            every=10.0,
            what=f"base pressure {base:.2g} Pa",
        )
        ctx.achieved["base_pressure_pa"] = float(gauge.pressure())
        mfc.select_gas(gas)
        mfc.set_flow(flow)
        ctx.event("chamber.gas_on", {"gas": gas, "sccm": flow})
        ctx.wait_until(
            lambda: lo <= gauge.pressure() <= hi,
            timeout=fnum(p.get("settle_timeout") or 300.0),
            every=2.0,
            what=f"working pressure in [{lo:.3g}, {hi:.3g}] Pa",
        )
        ctx.achieved.update(gas=gas, flow_sccm=float(mfc.flow()), pressure_pa=float(gauge.pressure()))
        action = str(p.get("on_pressure_fault") or "fail")
        with (
            ctx.interlock(PressureWindow(gauge, lo, hi, rf=rf, action=action, period=2.0)),
            ctx.interlock(Condition("reflected_power", lambda: _reflected(rf), action="fail", period=2.0)),
        ):
            self._ramp(ctx, rf, 0.0, power, ramp)
            pre = fnum(p.get("presputter", 0.0))
            if pre > 0:
                ctx.sleep(pre, label="pre-sputter (shutter closed)", total=pre)
            if qcm is not None:
                if kind == "sputter":
                    qcm.set_film(
                        density=fnum(p.get("density") or LIF["density"]),
                        z_ratio=fnum(p.get("z_ratio") or LIF["z_ratio"]),
                        tooling=fnum(p.get("tooling") or 1.0),
                    )
                qcm.zero()
                qcm.shutter(True)
            start = ctx.clock.monotonic()
            reached = self._deposit(ctx, gauge, rf, qcm, target, limit_s, start, series)
            if qcm is not None:
                qcm.shutter(False)
            elapsed = ctx.clock.monotonic() - start
            self._ramp(ctx, rf, power, 0.0, ramp)
        rf.rf_off()
        mfc.set_flow(0.0)
        ctx.event("chamber.gas_off", {"gas": gas})
        ctx.store_points("qcm", **{k: np.asarray(v) for k, v in series.items()})
        ctx.achieved.update(
            commanded_power_w=power,
            deposition_s=elapsed,
            commanded_time_limit_s=limit_s if math.isfinite(limit_s) else None,
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

    def _ramp(self, ctx: StepContext, rf: Any, start: float, end: float, rate: float) -> None:
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
        self,
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

    def estimate(self, params: dict[str, Any], station: Any = None) -> float:
        return fnum(params["max_time"] if "max_time" in params else params["time"])


def _window(p: dict[str, Any], kind: str) -> tuple[float, float]:
    """The pressure window around the protocol's working pressure (±50 %)."""
    target = fnum(p["pressure"])
    return target * 0.5, target * 1.5


def _limit_high(inst: Any, name: str) -> float | None:
    lim = getattr(inst, "limits", {}).get(name)
    return (
        getattr(lim, "high", None)
        if lim is not None and math.isfinite(getattr(lim, "high", math.inf))
        else None
    )


def _reflected(rf: Any) -> str | None:
    fwd = float(rf.forward_power())
    ref = float(rf.reflected_power())
    if fwd > 1.0 and ref > REFLECTED_TRIP * fwd:
        rf.rf_off()
        return f"reflected {ref:.1f} W > {REFLECTED_TRIP:.0%} of forward {fwd:.1f} W (RF switched off)"
    return None
