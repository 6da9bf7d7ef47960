"""What every driver is: a plain class over a `Transport`, no I/O in `__init__`, SI units, declared limits."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, TypeVar

from labctl.drivers.limits import Limit, apply_station_limits
from labctl.drivers.transport import SerialSettings, Transport
from labctl.errors import Disconnected, InstrumentError, InstrumentTimeout, MalformedReply

F = TypeVar("F", bound=Callable[..., Any])
#: what one retry may cure: a lost, late, cut or garbled reply, or a dropped link (reopened and re-identified)
TRANSIENT = (InstrumentTimeout, MalformedReply, Disconnected)


def idempotent(method: F) -> F:
    """Mark a driver method whose repetition does nothing more than doing it once (a read, a setpoint, a
    shutter position): a transient failure is retried, at most `Driver.RETRIES` times, after the driver's own
    resync (and reopen + re-identify). Each retry is recorded in the I/O transcript; nested calls retry only
    at the outermost level. Never on a command whose repetition does something (RUN, RF on, a move, INIT)."""

    @functools.wraps(method)
    def wrapper(self: Driver, *args: Any, **kwargs: Any) -> Any:
        if self._in_retry:
            return method(self, *args, **kwargs)
        self._in_retry = True
        try:
            attempt = 0
            while True:
                try:
                    result = method(self, *args, **kwargs)
                    if attempt:
                        self._after_retry()
                    return result
                except TRANSIENT as exc:
                    attempt += 1
                    if attempt > self.RETRIES:
                        raise
                    self.transport._record("event", b"", f"retry {attempt}/{self.RETRIES} of "
                                           f"{method.__name__} after {type(exc).__name__}: {exc.detail}")
        finally:
            self._in_retry = False

    return wrapper  # type: ignore[return-value]


class Driver:
    """Base class. Subclasses set `NAME`, `ROLE`, `LIMITS` and (serial instruments) `SERIAL`.

    `identify()` returns the instrument's own identification; `safe_state()` puts the instrument in its safe
    state and returns what read-back confirmed (raises `SafeStateError` if it could not confirm).
    """

    NAME: ClassVar[str] = ""
    ROLE: ClassVar[str] = ""
    LIMITS: ClassVar[dict[str, Limit]] = {}
    SERIAL: ClassVar[SerialSettings | None] = None
    TIMEOUT: ClassVar[float] = 1.0
    RESYNC_QUIET: ClassVar[float] = 0.2   # s of silence that ends a resync after a failed exchange
    RESYNC_MAX: ClassVar[float] = 5.0     # s at most spent waiting for that silence
    RETRIES: int = 0   # extra attempts of an `idempotent` read after a transient failure (the engine sets 1)
    _in_retry = False

    def __init__(self, transport: Transport, *, name: str = "",
                 limits: dict[str, tuple[float | None, float | None]] | None = None) -> None:
        self.transport = transport
        self.name = name or self.NAME
        self.limits: dict[str, Limit] = apply_station_limits(self.LIMITS, limits or {})
        self._reopen = False   # the link dropped: reopen it before the next exchange
        self._resync = False   # an exchange failed: wait for the line to go quiet before the next

    @classmethod
    def from_spec(cls, transport: Transport, spec: Any) -> Driver:
        """The driver of station entry `spec` (`labctl.station.InstrumentSpec`) on `transport`: named by its
        role, with the station's limits (a bound looser than the instrument's own means "the instrument's"),
        and whatever addressing this driver reads from the entry (`spec_options`)."""
        limits = cls.station_limits(spec.limits)
        return cls(transport, name=spec.role, limits=limits, **cls.spec_options(spec))

    @classmethod
    def spec_options(cls, spec: Any) -> dict[str, Any]:
        """Constructor options this driver takes from its station entry (an address on a shared link)."""
        return {}

    @classmethod
    def simulator_options(cls, addresses: dict[str, int]) -> dict[str, Any]:
        """Options of this instrument's simulator core for the station addresses on one link (role ->
        address), so a simulated bench addresses it as the station does."""
        return {}

    @classmethod
    def station_limits(cls, limits: dict[str, tuple[float | None, float | None]]
                       ) -> dict[str, tuple[float | None, float | None]]:
        """Station limits intersected with the driver's own: a station bound outside the instrument's range
        (a rate low of 0 where the pump's minimum is 2.8e-16 m^3/s) means "no tighter than the instrument"."""
        out: dict[str, tuple[float | None, float | None]] = {}
        for name, (low, high) in limits.items():
            own = cls.LIMITS.get(name)
            if own is not None:
                low = None if low is None or low <= own.low else low
                high = None if high is None or high >= own.high else high
            out[name] = (low, high)
        return out

    def connect(self) -> None:
        self.transport.open()

    def close(self) -> None:
        self.transport.close()

    def check(self, limit: str, value: float) -> float:
        """Check `value` against the named limit before anything is sent."""
        return self.limits[limit].check(value, instrument=self.name)

    def identify(self) -> str:
        raise NotImplementedError

    def safe_state(self) -> dict[str, Any]:
        raise NotImplementedError

    # -- link recovery shared by the serial drivers -----------------------------------------------------

    @contextmanager
    def _link_guard(self) -> Iterator[None]:
        """Around one exchange: a dropped link is reopened, a failed exchange resynchronised, next time."""
        try:
            yield
        except Disconnected:
            self._reopen = True
            raise
        except InstrumentError:
            self._resync = True
            raise

    def _prepare_link(self) -> None:
        """Before an exchange: reopen a dropped link; after a failure, discard input until the line has been
        quiet for RESYNC_QUIET s (so a late reply is never taken for the next); else drop stray bytes."""
        t = self.transport
        reopened = self._reopen
        if self._reopen:
            t.close()
            t.open()
            self._reopen, self._resync = False, True
        if self._resync:
            self._on_resync()
            deadline = t.clock.monotonic() + self.RESYNC_MAX
            while t.drain(quiet=self.RESYNC_QUIET) and t.clock.monotonic() < deadline:
                pass
            self._resync = False
        else:
            t.drain()
        if reopened:
            self._reidentify()

    def _reidentify(self) -> None:
        """After the link was reopened: ask the instrument who it is before anything else is sent (a swapped
        cable or a restarted instrument shows here), and record the answer in the I/O transcript."""
        ident = self.identify()
        self.transport._record("event", ident.encode("utf-8", "replace"), "re-identified after reconnect")

    def _after_retry(self) -> None:
        """After a retry succeeded: check that the instrument still holds what was commanded (a lost reply
        may have been a restart); raise `InstrumentError` if not. Nothing by default."""

    def _on_resync(self) -> None:
        """What the instrument needs to forget a half-received command (nothing by default)."""
