"""Plan-time accounting across steps: what no single step can see.

Each step is checked on its own by its kind; some limits only show when the steps are added up. `make_plan`
keeps one `Ledger` and hands it every step after the kind has planned it:

- the volume poured into each bath by every `prepare_bath` against the bath's `capacity` (3 x 20 mL into a
  50 mL bath is refused, naming the three steps);
- the volume of each stroke against the syringe it is drawn from (the stock's `syringe_volume`), and the
  total drawn from each syringe since it was last filled (more than it holds needs a `refill` step first);
- the sample's cumulative time in each bath it is immersed in (the Li foil in an alloying MCl_x bath, or a
  polymer solution), against the per-immersion process limits of physics.md 1.8 applied to the sum, or the
  bath's own `max_exposure`: a warning beyond the soft limit, an error beyond the hard one;
- the stage's reach into each bath: depth below the surface against the bath's liquid `depth`.

A kind takes part by describing what its step does to baths and syringes: `uses(step, station)` returning
`Fill`, `Draw`, `Dunk` and `Refilled` records (see `Accountable`). Kinds without it are not accounted.

A step whose estimated duration is not finite or beyond `MAX_STEP_S` (10 years) is an error naming the
fields that set it (found by doubling each numeric field and watching the estimate move): a vanishing
current density or speed passes every per-field check and still asks for a run that never ends.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Union, runtime_checkable

from labctl.protocol import limits as lim
from labctl.protocol.fields import qty_spec
from labctl.units import fmt, human_duration

if TYPE_CHECKING:
    from labctl.protocol.plan import Plan, PlanStep
    from labctl.station import Station
    from labctl.steps.base import PlanContext, StepKind

YEAR_S = 365.25 * 86400.0
MAX_STEP_S = 10 * YEAR_S  # a plan-time sanity bound: no step of a lab protocol lasts longer
SENSITIVE = 1.3  # doubling a field moves the estimate by at least this factor: the field sets the duration


@dataclass(frozen=True)
class Fill:
    """`volume` (m^3) poured into `bath`."""

    bath: str
    volume: float


@dataclass(frozen=True)
class Draw:
    """One syringe stroke: `volume` (m^3) of `what` drawn from the syringe on `pump`."""

    pump: str
    volume: float
    what: str
    syringe_volume: float | None = None  # m^3, the station's `syringe_volume` of that stock


@dataclass(frozen=True)
class Dunk:
    """The sample held `seconds` in `bath`, `depth` (m) below its surface; `field` names the step's time."""

    bath: str
    depth: float
    seconds: float
    field: str
    contact: str = "immerse"  # which process limits bound the cumulative time: "immerse" or "dip_coat"


@dataclass(frozen=True)
class Refilled:
    """The syringe on `pump` is full again (a `refill` step)."""

    pump: str


Use = Union[Fill, Draw, Dunk, Refilled]  # noqa: UP007 - a runtime alias


@runtime_checkable
class Accountable(Protocol):
    """A step kind that says what its step does to baths and syringes."""

    def uses(self, step: Any, station: Station | None) -> list[Use]: ...


_EXPOSURE_FIELD = {"immerse": "time", "dip_coat": "dwell"}  # process limit bounding the cumulative time


@dataclass
class Ledger:
    """Running totals over the steps in plan order; errors and warnings go to the step that crosses a
    limit and name every step that contributed."""

    station: Station | None
    fills: dict[str, list[tuple[PlanStep, float]]] = field(default_factory=lambda: defaultdict(list))
    draws: dict[str, list[tuple[PlanStep, float]]] = field(default_factory=lambda: defaultdict(list))
    exposure: dict[str, list[tuple[PlanStep, float]]] = field(default_factory=lambda: defaultdict(list))
    salts: dict[str, str] = field(default_factory=dict)  # bath -> salt a step filled it with
    _exposure_state: dict[str, str] = field(default_factory=dict)  # bath -> "warn" | "error" already said

    def add(self, kind: StepKind[Any], step: Any, ps: PlanStep) -> None:
        if not isinstance(kind, Accountable):
            return
        for use in kind.uses(step, self.station):
            if isinstance(use, Fill):
                self._fill(ps, use, step)
            elif isinstance(use, Draw):
                self._draw(ps, use)
            elif isinstance(use, Dunk):
                self._dunk(ps, use)
            elif isinstance(use, Refilled):
                self.draws[use.pump] = []

    # -- baths ----------------------------------------------------------------------------------------

    def _fill(self, ps: PlanStep, use: Fill, step: Any) -> None:
        entries = self.fills[use.bath]
        entries.append((ps, use.volume))
        salt = getattr(step, "salt", None)
        if salt:
            self.salts[use.bath] = salt
        bath = self.station.baths.get(use.bath) if self.station else None
        if bath is None or len(entries) < 2 or use.volume > bath.capacity:
            return  # unknown bath, or one step alone over the rim: the step's own check says so
        total = sum(v for _, v in entries)
        before = total - use.volume
        if total > bath.capacity * (1 + 1e-9) >= before:
            ps.errors.append(
                f"bath `{use.bath}` would hold {fmt(total, 'volume')} after this step, over its capacity "
                f"{fmt(bath.capacity, 'volume')}: {_steps(entries, 'volume')} pour into it and nothing "
                "empties it"
            )

    # -- syringes -------------------------------------------------------------------------------------

    def _draw(self, ps: PlanStep, use: Draw) -> None:
        entries = self.draws[use.pump]
        entries.append((ps, use.volume))
        size = use.syringe_volume
        if size is None:
            return
        if use.volume > size * (1 + 1e-9):
            ps.errors.append(
                f"{fmt(use.volume, 'volume')} of {use.what} drawn from {use.pump} in one stroke, but its "
                f"syringe holds {fmt(size, 'volume')} (the stock's `syringe_volume`)"
            )
            return
        total = sum(v for _, v in entries)
        if total > size * (1 + 1e-9):
            ps.errors.append(
                f"{use.pump}'s {fmt(size, 'volume')} syringe is empty before this step: "
                f"{fmt(total, 'volume')} drawn by {_steps(entries, 'volume')}; add "
                f"`- refill: {{pump: {use.pump}}}` before it"
            )
            self.draws[use.pump] = [(ps, use.volume)]  # one error per emptying, counted on from here

    # -- the sample in baths --------------------------------------------------------------------------

    def _dunk(self, ps: PlanStep, use: Dunk) -> None:
        self._reach(ps, use)
        salt = self._salt_in(use.bath)
        if use.contact == "immerse" and salt is None:
            return  # a rinse in neat solvent: no alloying reaction to bound
        entries = self.exposure[use.bath]
        entries.append((ps, use.seconds))
        total = sum(s for _, s in entries)
        soft, hard, reason, own = self._exposure_limits(use)
        if len(entries) == 1 and use.contact == "immerse" and not own:
            return  # one immersion alone: the step's own process limit on `time` says it
        said = self._exposure_state.get(use.bath)
        what = f"{salt} bath `{use.bath}`" if salt else f"bath `{use.bath}`"
        where = f"{_steps(entries, 'duration')}" if len(entries) > 1 else "this step"
        if total > hard and said != "error":
            self._exposure_state[use.bath] = "error"
            ps.errors.append(
                f"the sample's cumulative time in {what} reaches {human_duration(total)} "
                f"({where}), beyond the limit of {human_duration(hard)} ({reason}); shorten `{use.field}`"
            )
        elif soft < total <= hard and said is None and len(entries) > 1:
            self._exposure_state[use.bath] = "warn"
            ps.warnings.append(
                f"the sample's cumulative time in {what} reaches {human_duration(total)} ({where}), "
                f"beyond the usual {human_duration(soft)} ({reason})"
            )

    def _salt_in(self, bath: str) -> str | None:
        """The salt in `bath`: the one a step filled it with, or for a bath this protocol never fills (the
        operator's), a salt stock on one of the pumps the station says fill it (counted, to be safe)."""
        if bath in self.fills:
            return self.salts.get(bath)
        spec = self.station.baths.get(bath) if self.station else None
        if spec is None or self.station is None:
            return None
        salts = [s.salt for s in self.station.stocks.values() if s.salt and s.pump in spec.pumps]
        return "/".join(dict.fromkeys(salts)) or None

    def _exposure_limits(self, use: Dunk) -> tuple[float, float, str, bool]:
        """(soft, hard, why, whether the bath's own `max_exposure` set them): physics.md's limit on one
        immersion (or dip) applied to the sum, tightened by the bath."""
        name = _EXPOSURE_FIELD[use.contact]
        limit = next(x for x in lim.PROCESS_LIMITS if x.kind == use.contact and x.field == name)
        soft, hard, reason = limit.soft[1], limit.hard[1], limit.reason
        bath = self.station.baths.get(use.bath) if self.station else None
        own = getattr(bath, "max_exposure", None)
        if own is not None and own < hard:
            return min(soft, own), own, "the station's `max_exposure` of the bath", True
        return soft, hard, reason, False

    def _reach(self, ps: PlanStep, use: Dunk) -> None:
        bath = self.station.baths.get(use.bath) if self.station else None
        depth = getattr(bath, "depth", None)
        if depth is not None and use.depth >= depth:
            ps.errors.append(
                f"depth {fmt(use.depth, 'length')} below the surface of `{use.bath}` reaches its floor: "
                f"the liquid is {fmt(depth, 'length')} deep (the bath's `depth`)"
            )


def _steps(entries: list[tuple[PlanStep, float]], kind: str) -> str:
    parts = [f"step {ps.index + 1} (line {ps.line}, {fmt(v, kind)})" for ps, v in entries]
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]


# -- the duration sanity bound ------------------------------------------------------------------------


def check_duration(kind: StepKind[Any], step: Any, p: PlanContext) -> None:
    """A step whose estimate is not finite or beyond `MAX_STEP_S` is an error naming the fields that set
    it; its duration is then left out of the plan's total (kept as +inf would poison every sum)."""
    duration = p.ps.duration
    if math.isfinite(duration) and 0.0 <= duration <= MAX_STEP_S:
        return
    shown = f"{duration / YEAR_S:.3g} years" if math.isfinite(duration) else "unbounded"
    culprits = _drivers(kind, step, p)
    named = ", ".join(culprits) if culprits else "its quantities"
    p.ps.errors.append(
        f"estimated duration {shown} is beyond the sanity bound of {MAX_STEP_S / YEAR_S:g} years: "
        f"set by {named}"
    )
    p.ps.duration = 0.0


def _drivers(kind: StepKind[Any], step: Any, p: PlanContext) -> list[str]:
    """`field` = value for each numeric field whose doubling moves the estimate by `SENSITIVE` or more."""
    base = p.ps.duration
    out = []
    for name, info in type(step).model_fields.items():
        value = getattr(step, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value == 0:
            continue
        trial = _estimate(kind, step.model_copy(update={name: value * 2}), p)
        if trial is None or trial == base:
            continue
        finite = math.isfinite(base) and base > 0 and math.isfinite(trial)
        ratio = trial / base if finite else math.inf
        if not finite or ratio >= SENSITIVE or ratio <= 1 / SENSITIVE:
            spec = qty_spec(info)
            shown = fmt(value, spec.kind) if spec is not None else f"{value:g}"
            out.append(f"`{name}` = {shown}")
    return out


def _estimate(kind: StepKind[Any], step: Any, p: PlanContext) -> float | None:
    """The kind's estimate for `step` on a scratch plan (nothing reaches the real one)."""
    from labctl.protocol.plan import PlanStep
    from labctl.steps.base import PlanContext

    plan: Plan = dataclasses.replace(p.plan, steps=[], consumables={}, overrides=[], warnings=[], errors=[])
    ps = PlanStep(index=p.ps.index, kind=p.ps.kind, line=p.ps.line, summary="", duration=0.0)
    scratch = PlanContext(
        ps=ps, plan=plan, station=p.station, protocol=p.protocol, area=p.area, tables=p.tables
    )
    try:
        kind.plan(step, scratch)
    except (ArithmeticError, ValueError):
        return None
    return ps.duration
