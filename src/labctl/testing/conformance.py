"""One conformance suite for every instrument: its driver against its simulator over every transport.

A driver author (built-in or plug-in) writes a small `InstrumentSpec`: how the driver identifies, one safe
read, what puts the instrument in a state that needs making safe, how to see from the simulator that it is
safe, and which driver calls the fault matrix hits with which expected error. The checks here are the same
for every instrument (pymeasure's `test_all_instruments` idea, STYLE.md item 6):

- `check_session(spec, exposure)`: connect, identify, one safe read, make the instrument active, safe
  state (confirmed by the driver's read-back *and* by the simulator's own state), close; over `labsim://`
  (virtual clock), a TCP server (`socket://` or a VISA SOCKET resource) and a pty (real clock).
- `check_fault(spec, kind, op, exposure)`: one fault of `kind` on the message `op` sends: the call raises
  the expected labctl error within its deadline, the fault was used, and the next exchanges are clean.
- `check_stuck_busy(spec)`: an active instrument that reports busy from now on is never called safe unless
  the simulator says it is (most refuse with `SafeStateError`; the spec says which may still comply).

Nothing here imports pytest: each check raises `AssertionError` with a message naming the instrument, so a
plug-in's own test suite parametrises them as it likes (`tests/simulators/test_conformance.py` shows how).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from labctl.clock import Clock, RealClock, VirtualClock
from labctl.drivers import registry as drivers
from labctl.drivers.base import Driver
from labctl.drivers.transport import SerialSettings, SerialTransport, Transport, VisaTransport
from labctl.errors import (
    Disconnected,
    InstrumentReportedError,
    InstrumentTimeout,
    MalformedReply,
    PartialReply,
    SafeStateError,
)
from labctl.simulators import registry as sims
from labctl.simulators.core import DeviceCore, FaultKind
from labctl.simulators.exposures import Exposure, serve_pty, serve_tcp

EXPOSURES = ("labsim", "tcp", "pty")
#: what a driver raises for each fault kind unless its spec says otherwise (an instrument with no error
#: answer of its own, or one that stays silent after a restart, overrides the last two)
DEFAULT_EXPECT: Mapping[FaultKind, type[BaseException]] = MappingProxyType({
    FaultKind.NO_REPLY: InstrumentTimeout,
    FaultKind.TRICKLE: PartialReply,
    FaultKind.TRUNCATE: PartialReply,
    FaultKind.GARBAGE: MalformedReply,
    FaultKind.LATE: InstrumentTimeout,
    FaultKind.DISCONNECT: Disconnected,
    FaultKind.POWER_CYCLE: InstrumentTimeout,
    FaultKind.INSTRUMENT_ERROR: InstrumentReportedError,
})
#: seconds: a trickle slower than the reply can finish within a 1 s deadline, a reply later than it
DEFAULT_DELAY: Mapping[FaultKind, float] = MappingProxyType({FaultKind.TRICKLE: 0.3, FaultKind.LATE: 1.3})
#: on the real clock, thread hand-offs and the exposure's poll may add this much to a deadline
REAL_CLOCK_SLACK_S = 0.3

_names = itertools.count()


@dataclass(frozen=True)
class FaultOp:
    """One driver call the fault matrix hits: `match` (a regex on the raw message that carries it)."""

    match: bytes
    call: Callable[[Any], object]
    #: the longest the failing call may take, in s (default: the transport's timeout + `extra_bound`)
    bound: Callable[[Any], float] | None = None
    #: fault kinds this message cannot show, with why (GRBL never answers a real-time `?` with an error)
    not_for: Mapping[FaultKind, str] = field(default_factory=dict)


@dataclass
class Bench:
    """One driver connected to one simulator core: what the spec's hooks receive."""

    driver: Any
    core: DeviceCore
    clock: Clock
    world: Any
    exposure: str


@dataclass(frozen=True)
class InstrumentSpec:
    """What the conformance checks need to know about one instrument (the rest comes from the registry)."""

    driver: str                                   # registry name: driver and simulator classes
    identity: str                                 # identify() starts with this
    safe_read: Callable[[Any], object]            # one read that changes nothing
    fault_ops: Mapping[str, FaultOp]
    #: the simulator's own view: True once the instrument is in its safe state (not the driver's word)
    core_safe: Callable[[DeviceCore], bool]
    #: puts the instrument in a state that needs making safe (heater on, gas flowing, output on)
    activate: Callable[[Any], object] | None = None
    #: extra check of what `safe_state()` returned (the driver's confirmed read-back)
    safe_reply: Callable[[dict[str, Any]], bool] = lambda reply: True
    expect: Mapping[FaultKind, type[BaseException] | None] = field(default_factory=dict)  # over DEFAULT
    delay: Mapping[FaultKind, float] = field(default_factory=dict)                         # over DEFAULT
    setup: Callable[[Any], object] | None = None  # before each fault: a state the faulted call can change
    #: after the faulted call and before the generic "next exchange is clean" check: what the instrument
    #: needs after this fault (a reconnect after a restart) and any instrument-specific assertion
    after_fault: Callable[[Bench, FaultKind, str], object] | None = None
    #: an active instrument stuck busy makes `safe_state()` raise SafeStateError (False: it may still comply,
    #: as a 2450 whose output-off is executed whatever its trigger model says; then the core is checked)
    stuck_busy_refuses: bool = True
    #: per exposure ("tcp", "pty"), errors that differ from `expect` because of the link (pyvisa drops the
    #: bytes of a read that timed out, so a garbled reply with no terminator is a timeout over VISA)
    expect_over: Mapping[str, Mapping[FaultKind, type[BaseException]]] = field(default_factory=dict)
    core_options: Mapping[str, Any] = field(default_factory=dict)
    driver_options: Mapping[str, Any] = field(default_factory=dict)
    make_world: Callable[[], Any] | None = None   # default: labctl.simulators.world.SimpleWorld()
    timeout: float = 1.0
    extra_bound: float = 0.0                      # s a failed call may add to the deadline (a resync)
    visa: bool = False                            # a VISA instrument: TCP through a SOCKET resource
    #: a pty carries no parity bit and Linux refuses PARENB/CS7 on it: line settings the host opens it with
    pty_line: SerialSettings | None = None

    def expected(self, kind: FaultKind, exposure: str = "labsim") -> type[BaseException] | None:
        """The error a fault of `kind` must raise; None = this instrument cannot show that fault."""
        over = self.expect_over.get(exposure, {})
        if kind in over:
            return over[kind]
        return self.expect[kind] if kind in self.expect else DEFAULT_EXPECT.get(kind)

    def fault_delay(self, kind: FaultKind) -> dict[str, float]:
        merged = {**DEFAULT_DELAY, **self.delay}
        return {"delay": merged[kind]} if kind in merged else {}

    @property
    def fault_kinds(self) -> list[FaultKind]:
        """Every kind with an expected error; STUCK_BUSY only where the spec expects one on a single call
        (elsewhere `check_stuck_busy` covers it)."""
        return [k for k in FaultKind if self.expected(k) is not None
                and (k is not FaultKind.STUCK_BUSY or k in self.expect)]


def _fail(spec: InstrumentSpec, what: str) -> AssertionError:
    return AssertionError(f"{spec.driver}: {what}")


def _world(spec: InstrumentSpec) -> Any:
    if spec.make_world is not None:
        return spec.make_world()
    from labctl.simulators.world import SimpleWorld

    return SimpleWorld()


def make_core(spec: InstrumentSpec, clock: Clock, world: Any = None) -> DeviceCore:
    """The registry's simulator core for `spec`, as the simulated bench builds it."""
    cls = drivers.simulator_class(spec.driver)
    return cls(f"conf-{spec.driver}-{next(_names)}", clock=clock, world=world, **spec.core_options)


def _transport(spec: InstrumentSpec, exposure: str, core: DeviceCore, served: Exposure | None,
               clock: Clock, recorder: Callable[..., None] | None) -> Transport:
    cls = drivers.driver_class(spec.driver)
    kw: dict[str, Any] = {"clock": clock, "timeout": spec.timeout, "recorder": recorder}
    if exposure == "labsim":  # a VISA instrument too: pyvisa's ASRL session reads a byte per call
        return SerialTransport(spec.driver, f"labsim://{core.name}", cls.SERIAL, **kw)
    assert served is not None
    if exposure == "tcp":
        if spec.visa:
            return VisaTransport(spec.driver, served.visa_resource, **kw)  # type: ignore[attr-defined]
        return SerialTransport(spec.driver, served.serial_url, cls.SERIAL, **kw)  # type: ignore[attr-defined]
    if exposure == "pty":
        return SerialTransport(spec.driver, served.serial_url,  # type: ignore[attr-defined]
                               spec.pty_line or cls.SERIAL, **kw)
    raise ValueError(f"unknown exposure {exposure!r}; known: {', '.join(EXPOSURES)}")


@contextlib.contextmanager
def bench(spec: InstrumentSpec, exposure: str = "labsim", *, clock: Clock | None = None,
          recorder: Callable[..., None] | None = None, connect: bool = True) -> Iterator[Bench]:
    """A driver of `spec` connected to a fresh simulator core over `exposure` (`labsim`: virtual clock by
    default; `tcp`/`pty`: real clock by default); everything is closed and unregistered on exit."""
    if exposure not in EXPOSURES:
        raise ValueError(f"unknown exposure {exposure!r}; known: {', '.join(EXPOSURES)}")
    clock = clock or (VirtualClock() if exposure == "labsim" else RealClock())
    world = _world(spec)
    core = make_core(spec, clock, world)
    served: Exposure | None = None
    with contextlib.ExitStack() as stack:
        if exposure == "labsim":
            sims.register(core.name, core)
            stack.callback(sims.unregister, core.name)
        else:
            served = (serve_tcp if exposure == "tcp" else serve_pty)(core)
            stack.callback(served.close)
        transport = _transport(spec, exposure, core, served, clock, recorder)
        driver = drivers.driver_class(spec.driver)(transport, name=spec.driver, **spec.driver_options)
        stack.callback(_quiet_close, driver)
        if connect:
            driver.connect()
        yield Bench(driver, core, clock, world, exposure)


def _quiet_close(driver: Driver) -> None:
    with contextlib.suppress(Exception):
        driver.close()


def check_session(spec: InstrumentSpec, exposure: str = "labsim") -> dict[str, Any]:
    """Connect, identify, a safe read, activate, safe state confirmed twice, close. Returns safe_state()."""
    with bench(spec, exposure) as b:
        ident = b.driver.identify()
        if not ident.startswith(spec.identity):
            raise _fail(spec, f"identify() over {exposure} = {ident!r}, expected {spec.identity!r}...")
        spec.safe_read(b.driver)
        if spec.activate is not None:
            spec.activate(b.driver)
            if spec.core_safe(b.core):
                raise _fail(spec, "activate() left the simulator in its safe state: the check proves nothing")
        reply = b.driver.safe_state()
        if not spec.safe_reply(reply):
            raise _fail(spec, f"safe_state() over {exposure} returned {reply!r}")
        if not spec.core_safe(b.core):
            raise _fail(spec, f"safe_state() over {exposure} claimed {reply!r}; the simulator is not safe")
        b.driver.close()
        if b.driver.transport.is_open:
            raise _fail(spec, f"close() over {exposure} left the link open")
        return reply


def check_fault(spec: InstrumentSpec, kind: FaultKind | str, op: str, exposure: str = "labsim") -> None:
    """One fault of `kind` on the message of `op`: the expected error within the deadline, then clean."""
    kind = FaultKind(kind)
    expected = spec.expected(kind, exposure)
    if expected is None:
        raise _fail(spec, f"no expected error for {kind.value}")
    fault_op = spec.fault_ops[op]
    with bench(spec, exposure) as b:
        if spec.setup is not None:
            spec.setup(b.driver)
        fault = b.core.inject(kind, fault_op.match, **spec.fault_delay(kind))
        bound = fault_op.bound(b.driver) if fault_op.bound else b.driver.transport.timeout
        bound += spec.extra_bound
        if not b.clock.is_virtual:
            bound += REAL_CLOCK_SLACK_S
        t0 = b.clock.monotonic()
        try:
            fault_op.call(b.driver)
        except expected:
            pass
        except Exception as exc:
            raise _fail(spec, f"{kind.value} on {op}: raised {type(exc).__name__}: {exc}, "
                              f"expected {expected.__name__}") from exc
        else:
            raise _fail(spec, f"{kind.value} on {op}: no error, expected {expected.__name__}")
        took = b.clock.monotonic() - t0
        if took > bound + 1e-9:
            raise _fail(spec, f"{kind.value} on {op}: took {took:.3f} s, deadline {bound:.3f} s")
        if not fault.spent:
            raise _fail(spec, f"{kind.value} on {op}: the fault was never used (match {fault_op.match!r})")
        if spec.after_fault is not None:
            spec.after_fault(b, kind, op)
        ident = b.driver.identify()  # the next exchanges are clean
        if not ident.startswith(spec.identity):
            raise _fail(spec, f"after {kind.value} on {op}: identify() = {ident!r}")
        spec.safe_read(b.driver)


def check_stuck_busy(spec: InstrumentSpec) -> None:
    """An active instrument that reports busy whatever it is asked is never reported safe unless it is."""
    with bench(spec) as b:
        if spec.activate is not None:
            spec.activate(b.driver)
        b.core.set_stuck_busy()
        try:
            reply = b.driver.safe_state()
        except SafeStateError:
            return
        if spec.stuck_busy_refuses:
            raise _fail(spec, f"stuck busy: safe_state() returned {reply!r}, not SafeStateError")
        if not spec.core_safe(b.core):
            raise _fail(spec, f"stuck busy: safe_state() returned {reply!r}; the simulator is not safe")


def fault_cases(specs: Mapping[str, InstrumentSpec]) -> list[tuple[str, FaultKind, str]]:
    """(driver, kind, op) for every fault of every spec: what a test parametrises `check_fault` over."""
    return [(name, kind, op) for name, spec in specs.items() for kind in spec.fault_kinds
            for op, fault_op in spec.fault_ops.items() if kind not in fault_op.not_for]
