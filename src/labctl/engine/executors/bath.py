"""`prepare_bath`: stock + solvent volumes from C1·V1 = C2·V2, pumps dispense, volumes read back, the achieved
concentration recorded; then the hotplate brings the bath to temperature within a band."""

from __future__ import annotations

import math
from typing import Any

from labctl.engine.errors import StepFailed
from labctl.engine.executors.base import Executor, StepContext, fnum, register

TEMPERATURE_BAND_C = 1.0  # the bath counts as at temperature within ± this (degC)
TEMPERATURE_TIMEOUT_S = 1800.0  # longest wait for the bath to reach its band
VOLUME_TOLERANCE = 0.02  # read-back volumes within 2 % (+ 1 uL) of what was asked


def pick_pumps(ctx: StepContext, salt: str | None, solvent: str | None) -> tuple[str, str | None]:
    """(stock pump role, solvent pump role) for `salt` in `solvent`."""
    stocks = dict(ctx.station.stocks)
    pumps = [r for r in ctx.station.pumps() if r in ctx.instruments]
    held = ctx.station.solution(salt=salt) if salt else None
    neat = ctx.station.solution(salt=None, solvent=solvent)
    if held is not None and held.role in pumps:
        stocks[held.role] = held
        if neat is not None and neat.role in pumps and neat.role != held.role:
            stocks[neat.role] = neat
            ctx.station.stocks[neat.role] = neat
        ctx.station.stocks[held.role] = held
    stock = next(
        (r for r in pumps if salt and stocks.get(r) and str(stocks[r].salt or "").lower() == salt.lower()),
        None,
    )
    stock = stock or next((r for r in pumps if stocks.get(r) and stocks[r].concentration), None)
    stock = stock or ("pump.stock" if "pump.stock" in pumps else None)
    if stock is None:
        raise StepFailed(f"step {ctx.index + 1}: no pump on the station holds a {salt or 'stock'} solution")
    solv = next(
        (
            r
            for r in pumps
            if r != stock
            and stocks.get(r)
            and not stocks[r].salt
            and (not solvent or str(stocks[r].solvent or "").lower() in ("", solvent.lower()))
        ),
        None,
    )
    solv = solv or ("pump.solvent" if "pump.solvent" in pumps and stock != "pump.solvent" else None)
    return stock, solv


@register
class PrepareBath(Executor):
    KINDS = ("prepare_bath",)
    ROLES = ("pump.*",)
    OPTIONAL_ROLES = ("hotplate",)

    def run(self, ctx: StepContext) -> None:
        p = ctx.params
        v2 = fnum(p["volume"])
        salt, solvent = p.get("salt"), p.get("solvent")
        stock_role, solvent_role = pick_pumps(ctx, salt, solvent)
        if salt is None:  # a neat solvent bath (a rinse): the solvent pump alone
            if solvent_role is None:
                raise StepFailed(f"step {ctx.index + 1}: no pump holds the solvent {solvent}")
            stock_role, c1, c2, v1 = None, 0.0, 0.0, 0.0
        else:
            stock = ctx.station.stocks.get(stock_role)
            c2 = fnum(p["concentration"])
            c1 = fnum(stock.concentration if stock and stock.concentration else math.nan)
            if not math.isfinite(c1) or c1 <= 0:
                raise StepFailed(
                    f"step {ctx.index + 1}: the station gives no stock concentration for {stock_role}")
            if c2 > c1:
                raise StepFailed(f"step {ctx.index + 1}: {c2:g} is above the stock concentration {c1:g}")
            v1 = c2 * v2 / c1
            if ctx.dry_run and hasattr(ctx.world, "set_stock"):  # the simulated syringe holds this stock
                ctx.world.set_stock(stock_role, salt=salt, concentration=c1, solvent=solvent or "THF")
        vs = v2 - v1
        if vs > 1e-12 and solvent_role is None:
            raise StepFailed(f"step {ctx.index + 1}: a solvent pump is needed to dilute to {c2:g}")
        plan = {**({stock_role: v1} if stock_role else {}), **({solvent_role: vs} if solvent_role else {})}
        ctx.achieved.update(
            commanded_concentration=c2,
            commanded_volume_m3=v2,
            stock_concentration=c1,
            commanded_stock_m3=v1,
            commanded_solvent_m3=vs,
        )
        if ctx.dry_run and hasattr(ctx.world, "select_bath"):  # the simulated valves open to this bath
            for role in plan:
                ctx.world.select_bath(role, str(p.get("bath") or ""))
        self._dispense(ctx, plan)
        got = {role: float(ctx.role(role).dispensed()) for role in plan}
        d1 = got[stock_role] if stock_role else 0.0
        ds = got[solvent_role] if solvent_role else 0.0
        achieved_c = c1 * d1 / (d1 + ds) if d1 + ds > 0 else 0.0
        ctx.achieved.update(stock_m3=d1, solvent_m3=ds, volume_m3=d1 + ds, concentration=achieved_c)
        ctx.progress("step.progress", {"fraction": 0.6, "readings": {"concentration": achieved_c}})
        for role, want in plan.items():
            if abs(got[role] - want) > VOLUME_TOLERANCE * want + 1e-9:
                raise StepFailed(
                    f"step {ctx.index + 1}: {role} dispensed {got[role] * 1e6:.4g} mL, asked "
                    f"{want * 1e6:.4g} mL"
                )
        bath = str(p.get("bath") or "bath")
        facts: dict[str, Any] = {
            "concentration": achieved_c,
            "volume_m3": d1 + ds,
            "salt": salt,
            "solvent": solvent,
        }
        temp = p.get("temperature")
        if temp is not None and ctx.has("hotplate"):
            target = fnum(temp)
            band = TEMPERATURE_BAND_C
            reached = self._heat(ctx, target, band)
            facts.update(temperature=target, band=band)
            ctx.achieved.update(commanded_temperature_c=target, temperature_c=reached, band_c=band)
        ctx.notes.setdefault("baths", {})[bath] = facts

    def _dispense(self, ctx: StepContext, plan: dict[str, float]) -> None:
        rates = {}
        for role, volume in plan.items():
            pump = ctx.role(role)
            stock = ctx.station.stocks.get(role)
            if stock and stock.diameter:
                pump.configure(diameter=stock.diameter)
            pump.clear_dispensed()
            rate = fnum(ctx.params["rate"])
            rates[role] = rate
            if volume > 1e-12:
                pump.dispense(volume, rate)
                ctx.event("pump.dispense", {"role": role, "volume_m3": volume, "rate_m3_s": rate})
        expected = max((v / rates[r] for r, v in plan.items() if v > 1e-12), default=0.0)
        ctx.sleep(expected, label="dispensing", total=expected)
        ctx.wait_until(
            lambda: not any(ctx.role(r).is_running() for r in plan),
            timeout=expected * 0.2 + 30,
            every=0.5,
            what="pumps finished",
        )

    def _heat(self, ctx: StepContext, target: float, band: float) -> float:
        hp = ctx.role("hotplate")
        hp.set_temperature(target)
        stir = ctx.params.get("stir")
        if stir is not None:
            hp.stirrer(fnum(stir))
        hp.heater(True)
        timeout = TEMPERATURE_TIMEOUT_S
        reading: list[float] = []

        def in_band() -> bool:
            reading.append(float(hp.bath_temperature()))
            ctx.progress("step.progress", {"readings": {"bath_c": reading[-1]}})
            return abs(reading[-1] - target) <= band

        ctx.wait_until(
            in_band, timeout=timeout, every=5.0, what=f"bath temperature {target:g} ± {band:g} degC"
        )
        return reading[-1]

    def estimate(self, params: dict[str, Any], station: Any = None) -> float:
        return fnum(params["volume"]) / fnum(params["rate"]) + fnum(params["settle"])
