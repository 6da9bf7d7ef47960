"""`prepare_bath`: stock + solvent volumes from C1·V1 = C2·V2, pumps dispense, volumes read back, the achieved
concentration recorded; then the hotplate brings the bath to temperature within a band, and the bath settles.

Plan: the bath exists and holds the volume, the station has the stock, the rate suits each pump's limit and
the syringe on it, the hazards of salt and solvent, the consumables. Duration: dispensing + heating + settle.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import model_validator

from labctl.protocol import limits as lim
from labctl.protocol.accounting import Draw, Fill, Use
from labctl.protocol.fields import Chem, Name, NonNegative, Positive, Qty
from labctl.steps.base import Override, PlanContext, StepContext, StepKind, StepModel, fail
from labctl.units import fmt

if TYPE_CHECKING:
    from labctl.station import Station, Stock

TEMPERATURE_BAND_C = 1.0  # the bath counts as at temperature within ± this (degC)
TEMPERATURE_TIMEOUT_S = 1800.0  # longest wait for the bath to reach its band
VOLUME_TOLERANCE = 0.02  # read-back volumes within 2 % (+ 1 uL) of what was asked
AMBIENT_C = 22.0  # [E] a freshly filled bath starts at lab-air temperature
TAU_BATH_S = 300.0  # [E] a 50 mL bath on a hotplate warms first-order with this time constant ...
STIR_REF_RPM = 300.0  # ... divided by (1 + rpm / this) when stirred (convection at the plate)
POLL_S = 5.0  # the bath temperature is read this often while heating


class PrepareBath(StepModel):
    """Fill `bath` with `volume` (m^3) of `salt` at `concentration` (mol/m^3) in `solvent`, from the station's
    stock and solvent pumps (C1V1 = C2V2); heat to `temperature` (degC), stir at `stir` (rpm), pump at
    `rate` (m^3/s), then settle for `settle` (s). `water` is the solvent's water content (fraction)."""

    kind: Literal["prepare_bath"] = "prepare_bath"
    bath: Name
    solvent: Chem
    salt: Chem | None = None
    concentration: Positive("concentration") | None = None
    volume: Positive("volume")
    temperature: Qty("temperature") | None = None
    stir: NonNegative("rotation") | None = None
    rate: Positive("volume_flow") = 5e-6 / 60
    settle: NonNegative("duration") = 60.0
    water: Qty("fraction") | None = None
    override: Override | None = None

    @model_validator(mode="after")
    def _salt_and_concentration(self) -> PrepareBath:
        if (self.salt is None) != (self.concentration is None):
            raise ValueError("give both `salt` and `concentration`, or neither for a neat solvent")
        return self


def pick_pumps(ctx: StepContext, salt: str | None, solvent: str | None) -> dict[str, Stock]:
    """The pumps this bath is made from and what each holds: the station's stock of `salt` (if any) and its
    neat `solvent`, each on the pump the station puts it on. `StepFailed` if the station has neither."""
    station = ctx.station
    held = station.stock_for(salt=salt) if salt else None
    neat = station.stock_for(salt=None, solvent=solvent)
    out: dict[str, Stock] = {}
    if salt:
        if held is None or held.pump not in ctx.instruments or not held.concentration:
            raise fail(ctx, f"no pump on the station holds a {salt} stock solution with its concentration")
        out[held.pump] = held
    if neat is not None and neat.pump in ctx.instruments and neat.pump not in out:
        out[neat.pump] = neat
    return out


class PrepareBathKind(StepKind[PrepareBath]):
    KIND = "prepare_bath"
    MODEL = PrepareBath
    ROLES = ("pump.*",)
    OPTIONAL_ROLES = ("hotplate",)
    PLAN_ONLY = frozenset({"label", "water", "override"})  # solvent water content: a limit, not a command
    INSTRUMENT_LIMITS: ClassVar[dict[str, tuple[str, str]]] = {
        "temperature": ("hotplate", "temperature"),
        "stir": ("hotplate", "stir"),
    }

    # -- plan -----------------------------------------------------------------------------------------

    def roles(self, step: PrepareBath, station: Station | None) -> list[str]:
        roles = (["pump.stock"] if step.salt else []) + ["pump.solvent"]
        if station:
            stock = station.stock_for(salt=step.salt) if step.salt else None
            neat = station.stock_for(salt=None, solvent=step.solvent)
            roles = ([stock.pump] if stock else ["pump.stock"] if step.salt else []) + (
                [neat.pump] if neat else ["pump.solvent"]
            )
        if step.temperature is not None or step.stir is not None:
            roles.append("hotplate")
        return list(dict.fromkeys(roles))

    def plan(self, step: PrepareBath, p: PlanContext) -> None:
        station = p.station
        stock_volume = 0.0
        if step.salt:
            p.hazard(step, lim.precursor_hazard(step.salt))
            if step.salt.lower() not in lim.SAFE_PRECURSORS and not lim.precursor_hazard(step.salt):
                p.warn(f"precursor {step.salt} is not one of In, Zn, Bi, Al chlorides")
        p.hazard(step, lim.solvent_hazard(step.solvent))
        if station is not None:
            if step.bath not in station.baths:
                p.error(f"the station has no bath `{step.bath}`")
            elif step.volume > station.baths[step.bath].capacity:
                p.error(
                    f"volume {fmt(step.volume, 'volume')} exceeds the bath's capacity "
                    f"{fmt(station.baths[step.bath].capacity, 'volume')}"
                )
            if step.salt:
                stock = station.stock_for(salt=step.salt)
                if stock is None or stock.concentration is None:
                    p.error(f"the station has no stock solution of {step.salt}")
                elif step.concentration is not None and step.concentration > stock.concentration:
                    p.error(
                        f"{fmt(step.concentration, 'concentration')} is above the stock's "
                        f"{fmt(stock.concentration, 'concentration')}"
                    )
                elif step.concentration is not None:
                    stock_volume = step.concentration * step.volume / stock.concentration  # C1V1 = C2V2
                    p.consume(
                        f"{step.salt} {fmt(stock.concentration, 'concentration')} in {stock.solvent}",
                        stock_volume,
                    )
            self._check_pumps(step, p, stock_volume)
        elif step.salt and step.concentration is not None:
            p.consume(
                f"{step.salt} (as {fmt(step.concentration, 'concentration')} bath) in {step.solvent}",
                step.volume,
            )
        solvent_volume = step.volume - stock_volume if (station is not None or not step.salt) else 0.0
        if solvent_volume > 0:
            p.consume(step.solvent, solvent_volume)
        heat = heating_time(step.temperature, step.stir) if step.temperature is not None else 0.0
        p.ps.duration = max(stock_volume, max(solvent_volume, 0.0)) / step.rate + heat + step.settle
        p.ps.summary = (
            f"{step.bath}: {fmt(step.volume, 'volume')} "
            + (f"{fmt(step.concentration, 'concentration')} {step.salt} in " if step.concentration else "")
            + step.solvent
            + (f" (stock {fmt(stock_volume, 'volume')})" if stock_volume else "")
        )

    def uses(self, step: PrepareBath, station: Station | None) -> list[Use]:
        """The bath filled and the syringe strokes drawn (plan-time accounting across steps)."""
        out: list[Use] = [Fill(step.bath, step.volume)]
        if station is None:
            return out
        stock_volume = 0.0
        stock = station.stock_for(salt=step.salt) if step.salt else None
        if stock is not None and stock.concentration and step.concentration is not None:
            stock_volume = min(step.volume, step.concentration * step.volume / stock.concentration)
            out.append(Draw(stock.pump, stock_volume, f"{step.salt} stock", stock.syringe_volume))
        neat = station.stock_for(salt=None, solvent=step.solvent)
        if neat is not None and step.volume - stock_volume > 0:
            out.append(Draw(neat.pump, step.volume - stock_volume, step.solvent, neat.syringe_volume))
        return out

    def _check_pumps(self, step: PrepareBath, p: PlanContext, need_stock: float) -> None:
        """Rate against each pump's `rate` limit and its syringe; each volume against one syringe stroke."""
        station = p.station
        assert station is not None
        for role in [r for r in self.roles(step, station) if r.startswith("pump.")]:
            low, high = p.limit(role, "rate") or (-math.inf, math.inf)
            if not low <= step.rate <= high:
                p.error(
                    f"pump rate {fmt(step.rate, 'volume_flow')} is outside {role}'s `rate` "
                    f"limit [{fmt(low, 'volume_flow')}, {fmt(high, 'volume_flow')}]"
                )
        stock = station.stock_for(salt=step.salt) if step.salt else None
        neat = station.stock_for(salt=None, solvent=step.solvent)
        if neat is None and step.volume - need_stock > 1e-12:
            p.error(
                f"the station loads no syringe with neat {step.solvent} (a stock without `salt`, with its "
                "`syringe_diameter`): the pump would dispense with an unknown syringe"
            )
        for source, need, what in (
            (stock, need_stock, "stock"),
            (neat, step.volume - need_stock, step.solvent),
        ):
            if source is None or need <= 0:
                continue
            _check_syringe_rate(p, station, source, step.rate)
            high = (p.limit(source.pump, "volume") or (0.0, math.inf))[1]
            if need > high:
                p.error(
                    f"{fmt(need, 'volume')} of {what} exceeds {source.pump}'s `volume` limit "
                    f"{fmt(high, 'volume')} (one syringe stroke)"
                )

    # -- run ------------------------------------------------------------------------------------------

    def run(self, ctx: StepContext, step: PrepareBath) -> None:
        v2 = step.volume
        salt, solvent = step.salt, step.solvent
        loaded = pick_pumps(ctx, salt, solvent)
        held = next((st for st in loaded.values() if st.salt), None)
        stock_role = held.pump if held is not None else None
        solvent_role = next((r for r, st in loaded.items() if not st.salt), None)
        if held is None or step.concentration is None:  # neat solvent (a rinse bath): one pump
            if solvent_role is None:
                raise fail(ctx, f"no pump holds the solvent {solvent}")
            c1, c2, v1 = 0.0, 0.0, 0.0
        else:
            c2 = step.concentration
            c1 = float(held.concentration or math.nan)
            if c2 > c1:
                raise fail(ctx, f"{c2:g} is above the stock concentration {c1:g}")
            v1 = c2 * v2 / c1
            ctx.announce(
                "pump.loaded",
                {"pump": stock_role, "salt": salt, "concentration": c1, "solvent": held.solvent},
            )
        vs = v2 - v1
        if vs > 1e-12 and solvent_role is None:
            raise fail(ctx, f"a solvent pump is needed to dilute to {c2:g}")
        plan = {**({stock_role: v1} if stock_role else {}), **({solvent_role: vs} if solvent_role else {})}
        ctx.achieved.update(
            commanded_concentration=c2,
            commanded_volume_m3=v2,
            stock_concentration=c1,
            commanded_stock_m3=v1,
            commanded_solvent_m3=vs,
        )
        # which bath each pump fills: a pump plumbed to several baths has a selector valve per outlet (on a
        # dry run the simulated world opens it to this bath; on the bench the plumbing is the operator's)
        for note in ctx.announce("bath.filling", {"bath": step.bath, "pumps": list(plan)}):
            ctx.achieved.setdefault("observed", []).append(note)
        self._dispense(ctx, plan, loaded, step.rate)
        got = {role: float(ctx.role(role).dispensed()) for role in plan}
        d1 = got[stock_role] if stock_role else 0.0
        ds = got[solvent_role] if solvent_role else 0.0
        achieved_c = c1 * d1 / (d1 + ds) if d1 + ds > 0 else 0.0
        ctx.achieved.update(stock_m3=d1, solvent_m3=ds, volume_m3=d1 + ds, concentration=achieved_c)
        ctx.progress("step.progress", {"fraction": 0.6, "readings": {"concentration": achieved_c}})
        for role, want in plan.items():
            if abs(got[role] - want) > VOLUME_TOLERANCE * want + 1e-9:
                raise fail(ctx, f"{role} dispensed {got[role] * 1e6:.4g} mL, asked {want * 1e6:.4g} mL")
        facts: dict[str, Any] = {
            "concentration": achieved_c,
            "volume_m3": d1 + ds,
            "salt": salt,
            "solvent": solvent,
        }
        if step.stir is not None or step.temperature is not None:
            hp = ctx.role("hotplate")
            if step.stir is not None:
                hp.stirrer(step.stir)
                ctx.achieved["commanded_stir_rpm"] = step.stir
            if step.temperature is not None:
                band = TEMPERATURE_BAND_C
                reached = self._heat(ctx, hp, step.temperature, band)
                facts.update(temperature=step.temperature, band=band)
                ctx.achieved.update(
                    commanded_temperature_c=step.temperature, temperature_c=reached, band_c=band
                )
        if step.settle > 0:
            start = ctx.clock.monotonic()
            ctx.sleep(step.settle, label="settling", total=step.settle)
            ctx.achieved.update(commanded_settle_s=step.settle, settle_s=ctx.clock.monotonic() - start)
        ctx.notes.setdefault("baths", {})[step.bath] = facts
        ctx.achieved["bath"] = step.bath

    def _dispense(
        self, ctx: StepContext, plan: dict[str, float], loaded: dict[str, Stock], rate: float
    ) -> None:
        diameters = ctx.achieved.setdefault("syringe_diameter_m", {})
        for role in [r for r, v in plan.items() if v > 1e-12]:  # set and read back before any dispenses
            diameter = float(loaded[role].syringe_diameter)
            ctx.role(role).configure(diameter=diameter)
            diameters[role] = diameter
        for role, volume in plan.items():
            pump = ctx.role(role)
            pump.clear_dispensed()
            if volume > 1e-12:
                pump.dispense(volume, rate)
                ctx.event("pump.dispense", {"role": role, "volume_m3": volume, "rate_m3_s": rate})
        expected = max((v / rate for v in plan.values() if v > 1e-12), default=0.0)
        ctx.sleep(expected, label="dispensing", total=expected)
        ctx.wait_until(
            lambda: not any(ctx.role(r).is_running() for r in plan),
            timeout=expected * 0.2 + 30,
            every=0.5,
            what="pumps finished",
        )

    def _heat(self, ctx: StepContext, hp: Any, target: float, band: float) -> float:
        hp.set_temperature(target)
        hp.heater(True)
        reading: list[float] = []

        def in_band() -> bool:
            reading.append(float(hp.bath_temperature()))
            ctx.progress("step.progress", {"readings": {"bath_c": reading[-1]}})
            return abs(reading[-1] - target) <= band

        ctx.wait_until(
            in_band,
            timeout=TEMPERATURE_TIMEOUT_S,
            every=5.0,
            what=f"bath temperature {target:g} ± {band:g} degC",
        )
        return reading[-1]

    def estimate(self, step: PrepareBath) -> float:
        return step.volume / step.rate + step.settle


def syringe_diameter(ctx: StepContext, role: str) -> float:
    """The inside diameter (m) of the syringe on pump `role`, from the station's `stocks:` (a `refill`).

    A pump keeps its last diameter in non-volatile memory: pumping without setting it would move a stale
    syringe's volume, so a pump with no known syringe is refused before any byte moves liquid."""
    sizes = {float(s.syringe_diameter) for s in ctx.station.stocks.values() if s.pump == role}
    if len(sizes) != 1:
        why = "no stock" if not sizes else "stocks with different syringes"
        raise fail(ctx, f"no single syringe diameter for {role}: the station gives it {why}")
    return sizes.pop()


def heating_time(target: float, stir: float | None) -> float:
    """Plan: a first-order bath from `AMBIENT_C` into the band around `target`, read every `POLL_S` (s)."""
    gap = abs(target - AMBIENT_C)
    if gap <= TEMPERATURE_BAND_C:
        return 0.0
    tau = TAU_BATH_S / (1.0 + (stir or 0.0) / STIR_REF_RPM)
    return math.ceil(tau * math.log(gap / TEMPERATURE_BAND_C) / POLL_S) * POLL_S


def _check_syringe_rate(p: PlanContext, station: Station, source: Any, rate: float) -> None:
    """The pump's own rate range for the syringe on it (the NE-1000's plunger speed x the syringe's bore):
    a 14.43 mm syringe tops out near 8.3 mL/min whatever the station's `rate` limit allows."""
    diameter = getattr(source, "syringe_diameter", None)
    spec = station.instruments.get(source.pump)
    if not diameter or spec is None:
        return
    from labctl.drivers.registry import driver_class

    try:
        rate_range = getattr(driver_class(spec.driver), "rate_range", None)
    except Exception:
        return
    if rate_range is None:
        return
    low, high = rate_range(diameter)
    if not low <= rate <= high:
        p.error(
            f"pump rate {fmt(rate, 'volume_flow')} is outside what {source.pump} can do with its "
            f"{diameter * 1e3:g} mm syringe [{fmt(low, 'volume_flow')}, {fmt(high, 'volume_flow')}]"
        )


KIND_CLASS = PrepareBathKind
