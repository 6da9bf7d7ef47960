"""Static analysis of a protocol before any byte is sent: resolved values, limits, durations, consumables.

`make_plan(loaded, station)` never talks to an instrument. Durations are estimates from the models of
reference/physics.md (sputter rate §1.5) and the station's geometry; see each `_duration_*` function.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from labctl.protocol import limits as lim
from labctl.protocol.loader import LoadedProtocol
from labctl.station import Station
from labctl.units import fmt

STEP_ROLES: dict[str, tuple[str, ...]] = {
    "prepare_bath": ("pump.stock", "pump.solvent", "hotplate"),
    "immerse": ("stage",),
    "dip_coat": ("stage",),
    "sputter": ("gauge", "mfc", "rf", "qcm"),
    "nitride": ("gauge", "mfc", "rf"),
    "cycle_symmetric": ("potentiostat",),
    "rate_test": ("potentiostat",),
    "coulombic_efficiency": ("potentiostat",),
    "eis": ("eis",),
    "ocv": ("potentiostat",),
    "rest": (),
    "wait": (),
    "operator": (),
}
DEFAULT_TRAVEL_X = 0.05  # m, when no station: 50 mm between baths
DEFAULT_TRAVEL_Z = 0.04  # m, safe height to bath surface
DEFAULT_AREA = 1.13e-4  # m^2 (12 mm disc) when neither sample nor station gives one


@dataclass
class PlanStep:
    index: int
    kind: str
    line: int
    summary: str
    duration: float
    instruments: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    protocol: str
    path: str
    sha256: str
    station: str | None
    parameters: dict[str, Any]
    steps: list[PlanStep]
    consumables: dict[str, float]  # name -> m^3
    instruments: dict[str, bool]  # role -> present in the station
    overrides: list[dict[str, str]]
    warnings: list[str]
    errors: list[str]
    general_warnings: list[str] = field(default_factory=list)
    general_errors: list[str] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.steps)

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["duration"] = self.duration
        out["ok"] = self.ok
        return out


def make_plan(loaded: LoadedProtocol, station: Station | None = None) -> Plan:
    model = loaded.model
    area = (model.sample.area if model.sample and model.sample.area else None) or (
        station.cell_area if station and station.cell_area else None
    )
    plan = Plan(
        protocol=model.name,
        path=loaded.path,
        sha256=loaded.sha256,
        station=station.name if station else None,
        parameters=dict(loaded.parameters),
        steps=[],
        consumables={},
        instruments={},
        overrides=[],
        warnings=[],
        errors=[],
    )
    if area is None:
        area = DEFAULT_AREA
        plan.warnings.append("no electrode area in the sample or station; assuming 1.13 cm^2")
    driver_limits = _driver_limits(station, plan)
    for i, step in enumerate(model.steps):
        ps = PlanStep(index=i, kind=step.kind, line=loaded.step_line(i), summary="", duration=0.0)
        _analyse(step, ps, area, station, model, plan)
        _check_process_limits(step, ps, area, station)
        _check_instrument_limits(step, ps, area, driver_limits)
        _check_geometry(step, ps, station, driver_limits)
        for role in _roles(step, station):
            ps.instruments.append(role)
            present = station.has(role) if station else False
            plan.instruments[role] = present
            if station and not present:
                ps.errors.append(f"the station has no `{role}`")
        plan.steps.append(ps)
    if station is None:
        plan.warnings.append("no station given: instrument limits, bath positions and stocks not checked")
    # `errors`/`warnings` list everything (the engine's preflight reads `errors`); `general_*` keep the ones
    # that belong to no single step
    plan.general_errors, plan.general_warnings = list(plan.errors), list(plan.warnings)
    for s in plan.steps:
        where = f"step {s.index + 1} ({s.kind}, line {s.line})"
        plan.errors += [f"{where}: {e}" for e in s.errors]
        plan.warnings += [f"{where}: {w}" for w in s.warnings]
    return plan


def _roles(step: Any, station: Station | None) -> list[str]:
    roles = list(STEP_ROLES[step.kind])
    if step.kind == "prepare_bath":
        roles = (["pump.stock"] if step.salt else []) + ["pump.solvent"]
        if step.temperature is not None or step.stir is not None:
            roles.append("hotplate")
        if station:
            stock = station.stock_for(salt=step.salt) if step.salt else None
            neat = station.stock_for(salt=None, solvent=step.solvent)
            pumps = ([stock.pump] if stock else ["pump.stock"] if step.salt else []) + (
                [neat.pump] if neat else ["pump.solvent"]
            )
            roles = pumps + [r for r in roles if not r.startswith("pump.")]
    if step.kind == "rest" and step.sample_every is not None:
        roles = ["potentiostat"]
    return list(dict.fromkeys(roles))


def _driver_limits(station: Station | None, plan: Plan) -> dict[str, dict[str, tuple[float, float]]]:
    """role -> limit name -> (low, high): driver LIMITS tightened by the station's limits."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    if station is None:
        return out
    from labctl.drivers.registry import driver_class

    for role, spec in station.instruments.items():
        table: dict[str, tuple[float, float]] = {}
        try:
            cls = driver_class(spec.driver)
            for name, limit in getattr(cls, "LIMITS", {}).items():
                table[name] = (limit.low, limit.high)
        except Exception as exc:  # a driver still being written must not stop the plan
            plan.warnings.append(
                f"{role}: driver `{spec.driver}` not loadable ({type(exc).__name__}); "
                "only the station's limits are checked"
            )
        for name, (low_, high_) in spec.limits.items():
            base = table.get(name, (-math.inf, math.inf))
            low = base[0] if low_ is None else low_
            high = base[1] if high_ is None else high_
            if name in table and (low < base[0] or high > base[1]):
                plan.errors.append(
                    f"{role}: station limit `{name}` [{low:g}, {high:g}] is wider than the "
                    f"driver's [{base[0]:g}, {base[1]:g}] (a station may only narrow a limit)"
                )
            table[name] = (max(low, base[0]), min(high, base[1]))
        out[role] = table
    return out


def _check_geometry(step: Any, ps: PlanStep, station: Station | None,
                    tables: dict[str, dict[str, tuple[float, float]]]) -> None:
    """Stage positions the step needs (bath x, surface_z - depth) and pump rate/volume against the limits."""
    if station is None:
        return
    stage = tables.get("stage", {})
    if step.kind in ("immerse", "dip_coat"):
        baths = [step.bath] + ([step.rinse.bath] if step.kind == "immerse" and step.rinse else [])
        for name in baths:
            bath = station.baths.get(name)
            if bath is None:
                continue
            for axis, value in (("x", bath.x), ("z", bath.surface_z - step.depth)):
                low, high = stage.get(axis, (-math.inf, math.inf))
                if not low - 1e-12 <= value <= high + 1e-12:
                    ps.errors.append(f"bath `{name}` needs stage {axis} = {value * 1e3:g} mm, outside the "
                                     f"stage's [{low * 1e3:g}, {high * 1e3:g}] mm")
    if step.kind == "prepare_bath":
        for role in [r for r in _roles(step, station) if r.startswith("pump.")]:
            table = tables.get(role, {})
            low, high = table.get("rate", (-math.inf, math.inf))
            if not low <= step.rate <= high:
                ps.errors.append(f"pump rate {fmt(step.rate, 'volume_flow')} is outside {role}'s `rate` "
                                 f"limit [{fmt(low, 'volume_flow')}, {fmt(high, 'volume_flow')}]")
        stock = station.stock_for(salt=step.salt) if step.salt else None
        need_stock = step.concentration * step.volume / stock.concentration if stock and stock.concentration \
            else 0.0
        neat = station.stock_for(salt=None, solvent=step.solvent)
        needs = ((stock, need_stock, "stock"), (neat, step.volume - need_stock, step.solvent))
        for source, need, what in needs:
            if source is None or need <= 0:
                continue
            _check_syringe_rate(ps, station, source, step.rate)
            high = tables.get(source.pump, {}).get("volume", (0.0, math.inf))[1]
            if need > high:
                ps.errors.append(f"{fmt(need, 'volume')} of {what} exceeds {source.pump}'s `volume` limit "
                                 f"{fmt(high, 'volume')} (one syringe stroke)")


def _check_syringe_rate(ps: PlanStep, station: Station, source: Any, rate: float) -> None:
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
        ps.errors.append(
            f"pump rate {fmt(rate, 'volume_flow')} is outside what {source.pump} can do with its "
            f"{diameter * 1e3:g} mm syringe [{fmt(low, 'volume_flow')}, {fmt(high, 'volume_flow')}]"
        )


def _value(step: Any, name: str, area: float, station: Station | None = None) -> float | None:
    if name == "power_density":
        return step.power / (station.chamber.target_area if station and station.chamber else 20.3e-4)
    if name == "ramp_density":
        return step.ramp_rate / (station.chamber.target_area if station and station.chamber else 20.3e-4)
    if name == "current":
        if step.kind == "rate_test":
            return max(s.current_density for s in step.stages) * area
        return step.current_density * area
    if name in ("f_start", "f_end"):
        return getattr(step, name)
    if step.kind == "rate_test" and name == "current_density":
        return max(s.current_density for s in step.stages)
    return getattr(step, name, None)


def _check_process_limits(step: Any, ps: PlanStep, area: float, station: Station | None) -> None:
    for limit in lim.PROCESS_LIMITS:
        if limit.kind != step.kind:
            continue
        value = _value(step, limit.field, area, station)
        if value is None:
            continue
        shown = fmt(value, limit.unit) if limit.unit else f"{value:g}"
        if not limit.hard[0] <= value <= limit.hard[1]:
            ps.errors.append(f"{limit.field} = {shown} is beyond the hard limit ({limit.reason})")
        elif not limit.soft[0] <= value <= limit.soft[1]:
            ps.warnings.append(f"{limit.field} = {shown} is outside the usual range ({limit.reason})")


def _check_instrument_limits(
    step: Any, ps: PlanStep, area: float, tables: dict[str, dict[str, tuple[float, float]]]
) -> None:
    for (kind, fname), (role, lname) in lim.INSTRUMENT_LIMITS.items():
        if kind != step.kind or role not in tables or lname not in tables[role]:
            continue
        value = _value(step, fname, area)
        if value is None:
            continue
        low, high = tables[role][lname]
        check = abs(value) if lname in ("current", "voltage_limit") else value
        if not low <= check <= high:
            ps.errors.append(
                f"{fname} = {value:g} (SI) is outside {role}'s `{lname}` limit [{low:g}, {high:g}]"
            )


def _analyse(step: Any, ps: PlanStep, area: float, station: Station | None, model: Any, plan: Plan) -> None:
    kind = step.kind
    ps.values = {k: v for k, v in step.model_dump(exclude={"kind"}).items() if v is not None}
    if kind == "prepare_bath":
        _prepare_bath(step, ps, station, model, plan)
    elif kind == "immerse":
        travel = _travel(step.bath, station, ps)
        t = travel + 2 * step.depth / step.speed + step.time + step.dry
        if step.rinse:
            t += _travel(step.rinse.bath, station, ps) + 2 * step.depth / step.speed + step.rinse.time
        ps.duration = t
        ps.summary = (
            f"{step.bath}: {fmt(step.depth, 'length')} at {fmt(step.speed, 'speed')}, "
            f"{fmt(step.time, 'duration')}" + (f", rinse {step.rinse.bath}" if step.rinse else "")
        )
    elif kind == "dip_coat":
        _travel(step.bath, station, ps)
        one = step.depth / step.dip_speed + step.dwell + step.depth / step.withdrawal_speed + step.drying_time
        ps.duration = _travel(step.bath, station, ps, quiet=True) + step.cycles * one
        ps.summary = (
            f"{step.bath}: {step.cycles}× dwell {fmt(step.dwell, 'duration')}, withdraw "
            f"{fmt(step.withdrawal_speed, 'speed')}"
        )
        _hazard(plan, ps, model, step, lim.solvent_hazard(step.solvent))
    elif kind in ("sputter", "nitride"):
        _vacuum(step, ps, station)
    elif kind == "cycle_symmetric":
        half = step.half_cycle if step.half_cycle is not None else step.capacity / step.current_density
        ps.duration = step.cycles * 2 * (half + step.rest)
        cap = step.capacity if step.capacity is not None else half * step.current_density
        ps.summary = (
            f"{step.cycles} cycles at {fmt(step.current_density, 'current_density')}, "
            f"{fmt(cap, 'areal_capacity')} (I = {fmt(step.current_density * area, 'current')})"
        )
        _inventory(cap, model, ps)
    elif kind == "rate_test":
        ps.duration = sum(s.cycles * 2 * (step.capacity / s.current_density + step.rest) for s in step.stages)
        ps.summary = (
            "stages "
            + ", ".join(f"{s.current_density / 10:g}×{s.cycles}" for s in step.stages)
            + " mA/cm^2×cycles at "
            + fmt(step.capacity, "areal_capacity")
        )
        _inventory(step.capacity, model, ps)
    elif kind == "coulombic_efficiency":
        per = step.capacity / step.current_density
        t = step.cycles * 2 * (per + step.rest)
        if step.method == "aurbach":
            t = (
                2 * step.formation_capacity / step.current_density
                + step.reservoir_capacity / step.current_density * 2
                + step.cycles * 2 * per
            )
        ps.duration = t
        ps.summary = f"Li|Cu {step.method}, {step.cycles} cycles of {fmt(step.capacity, 'areal_capacity')}"
    elif kind == "eis":
        ps.duration = step.settle + _eis_time(step.f_start, step.f_end, step.points_per_decade)
        ps.summary = f"{step.frequencies}, {step.points_per_decade}/decade, {fmt(step.amplitude, 'voltage')}"
    elif kind in ("ocv", "rest", "wait"):
        ps.duration = step.duration
        ps.summary = fmt(step.duration, "duration")
    elif kind == "operator":
        ps.duration = step.timeout or 0.0
        ps.summary = step.message[:60]
        ps.warnings.append(
            "waits for the operator; duration not counted"
            if step.timeout is None
            else "waits for the operator at most the timeout"
        )


def _travel(bath: str, station: Station | None, ps: PlanStep, quiet: bool = False) -> float:
    """Move to the bath at travel speed and down to its surface (s)."""
    if station is None:
        return (DEFAULT_TRAVEL_X + DEFAULT_TRAVEL_Z) / 0.01
    if bath not in station.baths:
        if not quiet:
            ps.errors.append(f"the station has no bath `{bath}` (baths: {', '.join(sorted(station.baths))})")
        return (DEFAULT_TRAVEL_X + DEFAULT_TRAVEL_Z) / station.travel.speed
    b = station.baths[bath]
    return (abs(b.x) + abs(station.travel.safe_z - b.surface_z)) / station.travel.speed


def _prepare_bath(step: Any, ps: PlanStep, station: Station | None, model: Any, plan: Plan) -> None:
    stock_volume = 0.0
    if step.salt:
        _hazard(plan, ps, model, step, lim.precursor_hazard(step.salt))
        if step.salt.lower() not in lim.SAFE_PRECURSORS and not lim.precursor_hazard(step.salt):
            ps.warnings.append(f"precursor {step.salt} is not one of In, Zn, Bi, Al chlorides")
    _hazard(plan, ps, model, step, lim.solvent_hazard(step.solvent))
    if station is not None:
        if step.bath not in station.baths:
            ps.errors.append(f"the station has no bath `{step.bath}`")
        elif step.volume > station.baths[step.bath].capacity:
            ps.errors.append(
                f"volume {fmt(step.volume, 'volume')} exceeds the bath's capacity "
                f"{fmt(station.baths[step.bath].capacity, 'volume')}"
            )
        if step.salt:
            stock = station.stock_for(salt=step.salt)
            if stock is None or stock.concentration is None:
                ps.errors.append(f"the station has no stock solution of {step.salt}")
            elif step.concentration > stock.concentration:
                ps.errors.append(
                    f"{fmt(step.concentration, 'concentration')} is above the stock's "
                    f"{fmt(stock.concentration, 'concentration')}"
                )
            else:
                stock_volume = step.concentration * step.volume / stock.concentration  # C1V1 = C2V2
                key = f"{step.salt} {fmt(stock.concentration, 'concentration')} in {stock.solvent}"
                plan.consumables[key] = plan.consumables.get(key, 0.0) + stock_volume
    elif step.salt:
        key = f"{step.salt} (as {fmt(step.concentration, 'concentration')} bath) in {step.solvent}"
        plan.consumables[key] = plan.consumables.get(key, 0.0) + step.volume
    solvent_volume = step.volume - stock_volume if (station is not None or not step.salt) else 0.0
    if solvent_volume > 0:
        plan.consumables[step.solvent] = plan.consumables.get(step.solvent, 0.0) + solvent_volume
    heat = 0.0
    if step.temperature is not None and step.temperature > 25.0:
        heat = (step.temperature - 25.0) / 5.0 * 60.0  # ~5 K/min for a 50 mL bath on a hotplate [E]
    ps.duration = (stock_volume + max(solvent_volume, 0.0)) / step.rate + heat + step.settle
    ps.summary = (
        f"{step.bath}: {fmt(step.volume, 'volume')} "
        + (f"{fmt(step.concentration, 'concentration')} {step.salt} in " if step.salt else "")
        + step.solvent
        + (f" (stock {fmt(stock_volume, 'volume')})" if stock_volume else "")
    )


def _hazard(plan: Plan, ps: PlanStep, model: Any, step: Any, hazard: str | None) -> None:
    if not hazard:
        return
    override = getattr(step, "override", None) or model.override
    if override is None:
        ps.errors.append(f"hazard: {hazard}; add `override: {{reason: ...}}` to the step to proceed")
    else:
        ps.warnings.append(f"hazard overridden: {hazard} (reason: {override.reason})")
        plan.overrides.append({"step": str(ps.index), "hazard": hazard, "reason": override.reason})


def _inventory(capacity: float, model: Any, ps: PlanStep) -> None:
    """Half-cycle capacity vs 50 % of the Li inventory (1 mAh/cm^2 = 4.85 µm Li, physics.md 2.10)."""
    if model.sample and model.sample.li_thickness:
        inventory = model.sample.li_thickness / 4.85e-6 * lim.MAH_CM2
        if capacity > 0.5 * inventory:
            ps.errors.append(
                f"capacity {fmt(capacity, 'areal_capacity')} is over 50 % of the Li inventory "
                f"({fmt(inventory, 'areal_capacity')})"
            )


def sputter_rate(power: float, target_area: float, distance: float, pressure: float) -> float:
    """Deposition rate (m/s), physics.md 1.5: k_s·(P/A)·(d_ref/d)²·g(p), g peaks at p0 = 0.5 Pa."""
    k_s = 0.55e-9 / 60 / 1e4  # m/s per (W/m^2): 0.55 nm/min per W/cm^2
    p0 = 0.5
    g = (pressure / p0) * math.exp(1 - pressure / p0)
    return k_s * (power / target_area) * (0.08 / distance) ** 2 * g


def pump_down_time(base: float) -> float:
    """Estimate (s): 15 min roughing + turbo to 1e-2 Pa, then 15 min per decade below [E]."""
    return 900.0 + 900.0 * max(0.0, math.log10(1e-2 / base))


def _vacuum(step: Any, ps: PlanStep, station: Station | None) -> None:
    ramp = 2 * step.power / step.ramp_rate if step.ramp_rate > 0 else 0.0
    t = pump_down_time(step.base_pressure) + 60.0 + ramp
    if step.kind == "sputter":
        chamber = station.chamber if station else None
        area = chamber.target_area if chamber else 20.3e-4
        dist = chamber.distance if chamber else 0.08
        rate = sputter_rate(step.power, area, dist, step.pressure)
        dep = step.thickness / rate if rate > 0 else math.inf
        if dep > step.max_time:
            ps.errors.append(
                f"at the estimated {rate * 6e10:.3g} nm/min, {fmt(step.thickness, 'length')} "
                f"needs {dep / 60:.0f} min, more than max_time {step.max_time / 60:.0f} min"
            )
        t += step.presputter + min(dep, step.max_time)
        ps.values["estimated_rate_nm_per_min"] = rate * 6e10
        ps.summary = (
            f"{step.target} {step.thickness * 1e9:.0f} nm at {step.power:g} W, "
            f"{fmt(step.pressure, 'pressure')} {step.gas} (~{rate * 6e10:.2g} nm/min)"
        )
        if chamber and not chamber.bonded and step.power / area > 1.5e4:
            ps.errors.append("power density above 1.5 W/cm^2 on an unbonded target")
    else:
        t += step.time
        ps.summary = (
            f"{step.gas} plasma {step.power:g} W, {fmt(step.pressure, 'pressure')}, {step.time / 60:g} min"
        )
    ps.duration = t


def _eis_time(f_start: float, f_end: float, ppd: int) -> float:
    """Each point integrates max(3 periods, 0.2 s)."""
    hi, lo = max(f_start, f_end), min(f_start, f_end)
    n = max(2, round(math.log10(hi / lo) * ppd) + 1)
    freqs = [hi * (lo / hi) ** (i / (n - 1)) for i in range(n)]
    return sum(max(3.0 / f, 0.2) for f in freqs)
