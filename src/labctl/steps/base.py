"""What a step kind is (`StepKind`), what its `run` gets (`StepContext`), and the plan's view (`PlanContext`).

A step kind is one module in `labctl.steps`: its pydantic model, the roles it needs, its plan-time analysis
and its `run(ctx, step)`, which receives the typed model (never a dict). Kinds use role methods only
(`labctl.roles`), wait only through `ctx.sleep` (which keeps interrupts and interlocks live), and write what
they achieved into `ctx.achieved` next to what was commanded. Every model field is read by `run` or named in
the kind's `PLAN_ONLY` (a test checks it).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, field_validator

from labctl.clock import Clock
from labctl.errors import ConfigError
from labctl.protocol.fields import STRICT, Label, Text
from labctl.steps.interlocks import Interlock, Watch

if TYPE_CHECKING:
    from labctl.station import Station

if TYPE_CHECKING:
    from labctl.protocol.plan import Plan, PlanStep


class Override(BaseModel):
    """Explicit permission for a hazard (AsCl3, a solvent that reacts with Li); the reason is recorded."""

    model_config = STRICT
    reason: Text

    @field_validator("reason")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        if len(value.strip()) < 10:
            raise ValueError("`reason` must say why (at least 10 characters)")
        return value


class StepModel(BaseModel):
    """Fields every step has; a kind's model adds `kind: Literal[...]` and its own."""

    model_config = STRICT
    label: Label | None = None


M = TypeVar("M", bound=StepModel)
Observer = Callable[[str, dict[str, Any]], "dict[str, Any] | None"]


@dataclass
class StepContext:
    """One step's view of the run."""

    index: int
    kind: str
    instruments: dict[str, Any]
    clock: Clock
    t0: float  # run start on `clock` (data times are relative to it)
    station: Station
    checkpoint: Callable[[bool], None]  # checkpoint(pausable): pause/abort/ack processing
    store: Any = None
    run_id: int | None = None
    step_id: int | None = None
    auto_operator: bool = False  # operator steps are answered automatically (a dry run without --interactive)
    operator: str = ""
    notes: dict[str, Any] = field(default_factory=dict)  # run-wide facts shared between steps
    watch: Watch = field(default_factory=Watch)
    observers: list[Observer] = field(default_factory=list)  # told what the step did (a simulated world)
    progress: Callable[[str, dict[str, Any]], None] = lambda kind, data: None
    take_acks: Callable[[], list[Any]] = list
    transition: Callable[[str, str], None] = lambda trigger, reason: None  # fire a run-machine trigger
    prompt: Callable[[str], bool] | None = None  # terminal confirmation (None: no terminal)
    achieved: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    status: str = "done"  # a kind may set "deviated"
    reason: str = ""
    points: int = 0  # data points stored by this step
    sleep_chunk: float = 1.0
    wake: threading.Event | None = None  # set when a command is queued: a wait ends at once to act on it
    _writers: dict[str, Any] = field(default_factory=dict)
    _pausable: bool = True

    # -- instruments --------------------------------------------------------------------------------

    def role(self, name: str) -> Any:
        try:
            return self.instruments[name]
        except KeyError:
            raise ConfigError(
                f"step {self.index + 1} ({self.kind}) needs a {name!r} instrument and the station has none"
            ) from None

    def has(self, name: str) -> bool:
        return name in self.instruments

    # -- time ---------------------------------------------------------------------------------------

    def now(self) -> float:
        """Seconds since the run started."""
        return self.clock.monotonic() - self.t0

    def sleep(
        self,
        seconds: float,
        *,
        label: str = "",
        total: float | None = None,
        done_before: float = 0.0,
        until: float | None = None,
    ) -> None:
        """Wait `seconds` (or until the clock reads `until`), keeping interrupts and interlocks live.

        Safe points come at the start and between chunks, never after the deadline: a timed hold returns at
        its deadline, not one interlock reading later. A command queued meanwhile (`wake`) ends the chunk at
        once, so an abort is acted on without waiting for the chunk to run out.
        """
        now = self.clock.monotonic()
        end = until if until is not None else now + max(0.0, seconds)
        seconds = max(0.0, end - now)
        chunk = self.sleep_chunk
        if self.clock.is_virtual:
            chunk = max(chunk, seconds / 200.0)
        span = total if total is not None else seconds
        self.poll()
        while (remaining := end - self.clock.monotonic()) > 0:
            woke = False
            if self.wake is not None and not self.wake.is_set():
                woke = self.clock.wait(self.wake, min(chunk, remaining))
            else:
                self.clock.sleep(min(chunk, remaining))
            if label and span > 0:
                elapsed = done_before + seconds - max(0.0, end - self.clock.monotonic())
                self.progress("step.progress", {"fraction": min(1.0, elapsed / span), "label": label})
            if woke or end - self.clock.monotonic() > 0:
                self.poll()

    def poll(self) -> None:
        """A safe point: process interrupts (pause only where pausable) and due interlocks."""
        self.checkpoint(self._pausable)
        self.watch.check(self.clock.monotonic())

    @contextlib.contextmanager
    def non_pausable(self) -> Iterator[None]:
        """Inside: a pause request waits for the step to finish; an abort still raises `RunAborted`."""
        before = self._pausable
        self._pausable = False
        try:
            yield
        finally:
            self._pausable = before

    @contextlib.contextmanager
    def interlock(self, il: Interlock) -> Iterator[Interlock]:
        """Watch `il` for the duration of the block (checked once at entry)."""
        il.last_check = self.clock.monotonic()
        il.check()
        self.watch.add(il)
        try:
            yield il
        finally:
            self.watch.remove(il)

    def wait_until(self, test: Callable[[], bool], *, timeout: float, every: float, what: str) -> float:
        """Poll `test` every `every` s until true; return the time waited. Raises `StepFailed` on timeout."""
        from labctl.steps.errors import StepFailed

        start = self.clock.monotonic()
        while not test():
            waited = self.clock.monotonic() - start
            if waited >= timeout:
                raise StepFailed(
                    f"step {self.index + 1} ({self.kind}): {what} not reached within {timeout:g} s"
                )
            self.sleep(min(every, timeout - waited))
        return self.clock.monotonic() - start

    # -- records ------------------------------------------------------------------------------------

    def event(self, kind: str, data: dict[str, Any]) -> None:
        if self.store is not None:
            self.store.append_event(self.run_id, kind, {"step": self.index, **data})

    def announce(self, kind: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        """Tell the run's observers what was done (`bath.filled`, `dip.solution`, `cell.assembled`): on a
        dry run the simulated world follows; on the bench nobody listens. Returns what observers reported
        (recorded by the caller, labelled by the observer)."""
        out = []
        for observer in self.observers:
            got = observer(kind, {"step": self.index, **data})
            if got:
                out.append(got)
        return out

    def writer(self, stream: str) -> Any:
        """The store's measurement writer for `stream` (closed when the step ends)."""
        if stream not in self._writers:
            if self.store is None:
                self._writers[stream] = _NullWriter()
            else:
                self._writers[stream] = self.store.measurement_writer(self.run_id, self.step_id, stream)
        return self._writers[stream]

    def store_points(self, stream: str, **columns: Any) -> int:
        """Append equal-length columns in one call; count the points."""
        n = max((len(v) for v in columns.values() if hasattr(v, "__len__")), default=1)
        if n:
            self.writer(stream).append(**columns)
            self.points += n
        return n

    def close_writers(self) -> None:
        for w in self._writers.values():
            with contextlib.suppress(Exception):
                w.close()
        self._writers.clear()


class _NullWriter:
    def append(self, **columns: Any) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


@dataclass
class PlanContext:
    """One step's view of the plan: where its findings go and what it may read (never an instrument)."""

    ps: PlanStep
    plan: Plan
    station: Station | None
    protocol: Any  # protocol.models.Protocol
    area: float  # electrode area (m^2) from the sample, the station or the default
    tables: dict[str, dict[str, tuple[float, float]]]  # role -> limit name -> (low, high), driver + station

    def error(self, message: str) -> None:
        self.ps.errors.append(message)

    def warn(self, message: str) -> None:
        self.ps.warnings.append(message)

    def consume(self, name: str, volume: float) -> None:
        self.plan.consumables[name] = self.plan.consumables.get(name, 0.0) + volume

    def hazard(self, step: Any, hazard: str | None) -> None:
        """A hazard refuses the step unless the step or the protocol gives an `override` with its reason."""
        if not hazard:
            return
        override = getattr(step, "override", None) or self.protocol.override
        if override is None:
            self.error(f"hazard: {hazard}; add `override: {{reason: ...}}` to the step to proceed")
        else:
            self.warn(f"hazard overridden: {hazard} (reason: {override.reason})")
            self.plan.overrides.append(
                {"step": str(self.ps.index), "hazard": hazard, "reason": override.reason}
            )

    def limit(self, role: str, name: str) -> tuple[float, float] | None:
        """The (low, high) of `role`'s limit `name` (driver's, tightened by the station), if declared."""
        return self.tables.get(role, {}).get(name)


class StepKind(Generic[M]):
    """One step kind. Subclasses set `KIND`, `MODEL`, `ROLES` and implement `run` and `plan`."""

    KIND: ClassVar[str] = ""
    MODEL: ClassVar[type[StepModel]]
    ROLES: ClassVar[tuple[str, ...]] = ()  # roles the step needs ("pump.*" = every pump)
    OPTIONAL_ROLES: ClassVar[tuple[str, ...]] = ()  # roles used when the station has them
    #: fields that only the plan reads (a label, a hazard override): the field-consumption test allows them
    PLAN_ONLY: ClassVar[frozenset[str]] = frozenset({"label"})
    #: step field (or derived quantity, see `value`) -> (role, driver/station limit name) it reaches
    INSTRUMENT_LIMITS: ClassVar[dict[str, tuple[str, str]]] = {}
    #: the step changes the sample (fabrication): observers are told when it ends
    MAKES_SAMPLE: ClassVar[bool] = False

    def roles(self, step: M, station: Station | None) -> list[str]:
        """The roles this step needs on `station` (the plan lists them; a missing one is an error)."""
        return [r for r in self.ROLES if not r.endswith(".*")]

    def plan(self, step: M, p: PlanContext) -> None:
        """Fill `p.ps` (duration, summary), report errors, warnings, consumables and hazards."""
        raise NotImplementedError

    def value(self, step: M, name: str, p: PlanContext) -> float | None:
        """A field (or derived quantity) checked against process and instrument limits."""
        v = getattr(step, name, None)
        return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    def run(self, ctx: StepContext, step: M) -> None:
        raise NotImplementedError

    def estimate(self, step: M) -> float:
        """A duration (s) when no plan was made (progress display only)."""
        return 0.0


def fail(ctx: StepContext, message: str) -> Exception:
    """`StepFailed` naming the step (raise the result)."""
    from labctl.steps.errors import StepFailed

    return StepFailed(f"step {ctx.index + 1} ({ctx.kind}): {message}")
