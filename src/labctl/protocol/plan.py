"""Static analysis of a protocol before any byte is sent: resolved values, limits, durations, consumables.

`make_plan(loaded, station)` never talks to an instrument. It walks the very step objects the engine runs:
each step's kind (`labctl.steps`) estimates its duration, lists its roles, consumables and hazards; this
module checks every kind's fields against the process limits of physics.md (`protocol.limits`) and against
the instrument limits they reach (the kind's `INSTRUMENT_LIMITS` onto each driver's `LIMITS`, tightened by
the station), so the plan sees every limit the run would hit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from labctl.protocol import limits as lim
from labctl.protocol.accounting import Ledger, check_duration
from labctl.protocol.loader import LoadedProtocol
from labctl.station import Station
from labctl.steps import PlanContext, StepKind, kind_of, plugin_problems
from labctl.units import fmt

DEFAULT_AREA = 1.13e-4  # m^2 (12 mm disc) when neither sample nor station gives one
ABSOLUTE = ("current", "voltage_limit", "dc")  # limits on a magnitude: a negative current is checked by |I|


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
        warnings=list(plugin_problems()),
        errors=[],
    )
    if area is None:
        area = DEFAULT_AREA
        plan.warnings.append("no electrode area in the sample or station; assuming 1.13 cm^2")
    tables = _driver_limits(station, plan)
    ledger = Ledger(station)  # cumulative volumes, strokes, exposure and reach across the steps
    for i, step in enumerate(model.steps):
        ps = PlanStep(index=i, kind=step.kind, line=loaded.step_line(i), summary="", duration=0.0)
        ps.values = {k: v for k, v in step.model_dump(exclude={"kind"}).items() if v is not None}
        kind = kind_of(step)
        ctx = PlanContext(ps=ps, plan=plan, station=station, protocol=model, area=area, tables=tables)
        try:
            kind.plan(step, ctx)
        except ArithmeticError as exc:  # quantities so far out that the estimate itself overflows
            ctx.error(f"its quantities are beyond any useful range: the plan cannot estimate it ({exc})")
            ps.duration = 0.0
        check_duration(kind, step, ctx)
        ledger.add(kind, step, ps)
        _check_process_limits(kind, step, ctx)
        _check_instrument_limits(kind, step, ctx)
        for role in kind.roles(step, station):
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


def _check_process_limits(kind: StepKind[Any], step: Any, p: PlanContext) -> None:
    for limit in lim.PROCESS_LIMITS:
        if limit.kind != step.kind:
            continue
        value = _value(kind, step, limit.field, p)
        if value is None:
            continue
        shown = fmt(value, limit.unit) if limit.unit else f"{value:g}"
        if not limit.hard[0] <= value <= limit.hard[1]:
            p.error(f"{limit.field} = {shown} is beyond the hard limit ({limit.reason})")
        elif not limit.soft[0] <= value <= limit.soft[1]:
            p.warn(f"{limit.field} = {shown} is outside the usual range ({limit.reason})")


def _check_instrument_limits(kind: StepKind[Any], step: Any, p: PlanContext) -> None:
    """Each field the kind maps onto a role's limit, against the driver's `LIMITS` tightened by the
    station."""
    for fname, (role, lname) in kind.INSTRUMENT_LIMITS.items():
        bounds = p.limit(role, lname)
        if bounds is None or role not in kind.roles(step, p.station):
            continue
        value = _value(kind, step, fname, p)
        if value is None:
            continue
        low, high = bounds
        check = abs(value) if lname in ABSOLUTE else value
        if not low <= check <= high:
            p.error(f"{fname} = {value:g} (SI) is outside {role}'s `{lname}` limit [{low:g}, {high:g}]")


def _value(kind: StepKind[Any], step: Any, name: str, p: PlanContext) -> float | None:
    """`kind.value`; a derived quantity that overflows (a vanishing divisor) is an error naming it."""
    try:
        value = kind.value(step, name, p)
    except ArithmeticError as exc:
        p.error(f"{name} cannot be computed from the step's quantities ({exc})")
        return None
    if value is not None and not math.isfinite(value):
        p.error(f"{name} is not finite with the step's quantities")
        return None
    return value
