"""What every step executor gets (`StepContext`) and is (`Executor`), and the registry by step kind.

Executors use role methods only (`labctl.roles`), wait only through `ctx.sleep` (which keeps interrupts and
interlocks live), and write what they achieved into `ctx.achieved` next to what was commanded.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from labctl.clock import Clock
from labctl.engine.interlocks import Interlock, Watch
from labctl.errors import ConfigError


@dataclass
class StepContext:
    """One step's view of the run."""

    index: int
    kind: str
    params: dict[str, Any]
    instruments: dict[str, Any]
    clock: Clock
    t0: float  # run start on `clock` (data times are relative to it)
    station: Any  # engine.instruments.StationInfo
    checkpoint: Callable[[bool], None]  # checkpoint(pausable): pause/abort/ack processing
    store: Any = None
    run_id: int | None = None
    step_id: int | None = None
    dry_run: bool = False
    interactive: bool = False
    world: Any = None
    operator: str = ""
    notes: dict[str, Any] = field(default_factory=dict)  # run-wide facts shared between steps
    watch: Watch = field(default_factory=Watch)
    progress: Callable[[str, dict[str, Any]], None] = lambda kind, data: None
    take_acks: Callable[[], list[Any]] = list
    transition: Callable[[str, str], None] = lambda trigger, reason: None  # fire a run-machine trigger
    prompt: Callable[[str], bool] | None = None  # terminal confirmation (None: no terminal)
    achieved: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    status: str = "done"  # an executor may set "deviated"
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
        from labctl.engine.errors import StepFailed

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


class Executor:
    """One step kind. Subclasses set `KINDS` and `ROLES` and implement `run`."""

    KINDS: ClassVar[tuple[str, ...]] = ()
    ROLES: ClassVar[tuple[str, ...]] = ()  # roles the step needs ("pump.*" = every pump)
    OPTIONAL_ROLES: ClassVar[tuple[str, ...]] = ()  # roles used when the station has them

    def run(self, ctx: StepContext) -> None:
        raise NotImplementedError

    def estimate(self, params: dict[str, Any], station: Any = None) -> float:
        """Rough duration in seconds (for progress when the plan has none)."""
        return 0.0


REGISTRY: dict[str, type[Executor]] = {}


def register(cls: type[Executor]) -> type[Executor]:
    for kind in cls.KINDS:
        REGISTRY[kind] = cls
    return cls


def executor_for(kind: str) -> Executor:
    from labctl.engine import executors  # noqa: F401 - registers every built-in executor

    try:
        return REGISTRY[kind]()
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ConfigError(f"no executor for step kind {kind!r} (known: {known})") from None


# -- parameter helpers (protocol models hold SI floats; accept a few spellings) -----------------------


def param(params: dict[str, Any], *names: str, default: Any = ...) -> Any:
    """The first of `names` present in `params` (None counts as absent)."""
    for n in names:
        if params.get(n) is not None:
            return params[n]
    if default is ...:
        raise ConfigError(f"missing parameter {names[0]!r}")
    return default


def fnum(value: Any) -> float:
    """A float from a float, a pint quantity (to SI base units) or a numeric string."""
    if hasattr(value, "to_base_units"):
        return float(value.to_base_units().magnitude)
    if hasattr(value, "magnitude"):
        return float(value.magnitude)
    v = float(value)
    if not math.isfinite(v):
        raise ConfigError(f"not a finite number: {value!r}")
    return v
