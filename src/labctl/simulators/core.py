"""Device cores: one per simulated instrument, bytes in -> bytes out, with state, a clock and faults.

A core knows nothing of how it is exposed. The exposures (`labsim://` in process, TCP, pty) call
`write()` with what the host sent and `read()` for what the instrument has said by now. A core emits its
replies with `emit(data, at=t)`, so a reply can be timed (late, trickled, streamed over a measurement).

Subclasses implement `handle(message)` (one framed message -> reply or None), `reset()` (power-on state),
and where the instrument has them, `error_reply(message)` and `set_stuck_busy()`. Line-based cores set
`TERMINATORS`; binary cores override `split()`.
"""

from __future__ import annotations

import bisect
import random
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar

from labctl.clock import Clock, RealClock
from labctl.drivers.transport import SerialSettings


class FaultKind(StrEnum):
    NO_REPLY = "no_reply"              # the message is taken, nothing comes back
    TRICKLE = "trickle"                # the reply comes one byte every `delay` s
    TRUNCATE = "truncate"              # only the first half of the reply comes back
    GARBAGE = "garbage"                # the reply is replaced by line noise of the same length
    LATE = "late"                      # the reply comes `delay` s late (after the host's deadline)
    DISCONNECT = "disconnect"          # the link drops; reads and writes fail until reopened
    POWER_CYCLE = "power_cycle"        # the instrument restarts: state back to defaults, message lost
    INSTRUMENT_ERROR = "instrument_error"  # the instrument answers with one of its own errors
    STUCK_BUSY = "stuck_busy"          # the instrument reports busy from now on


@dataclass
class Fault:
    """A scripted fault: applies to messages matching `match` (a regex on the raw bytes; None = any)."""

    kind: FaultKind
    match: bytes | None = None
    times: int = 1          # how many matching messages it affects; 0 = every one from now on
    skip: int = 0           # let this many matching messages through first
    delay: float = 5.0      # seconds, for LATE and (per byte) TRICKLE
    _seen: int = field(default=0, repr=False)
    _used: int = field(default=0, repr=False)

    def takes(self, message: bytes) -> bool:
        if self.match is not None and re.search(self.match, message, re.DOTALL) is None:
            return False
        self._seen += 1
        if self._seen <= self.skip or (self.times and self._used >= self.times):
            return False
        self._used += 1
        return True

    @property
    def spent(self) -> bool:
        return bool(self.times) and self._used >= self.times


class DeviceCore(ABC):
    """Base of every simulated instrument."""

    #: line settings the real instrument uses; a host opening `labsim://` with others gets garbage
    SERIAL: ClassVar[SerialSettings | None] = None
    #: message terminators for line-based protocols (any of them ends a message)
    TERMINATORS: ClassVar[tuple[bytes, ...]] = (b"\n",)

    def __init__(self, name: str, *, clock: Clock | None = None, world: object | None = None,
                 seed: int = 0) -> None:
        self.name = name
        self.clock: Clock = clock or RealClock()
        self.world = world
        self.rng = random.Random(seed)
        self.faults: list[Fault] = []
        self.connected = True
        self.stuck_busy = False
        self.line_ok = True
        self.received: list[bytes] = []     # every message taken, for tests ("the simulator got nothing")
        self._inbuf = bytearray()
        self._out: list[tuple[float, bytes]] = []  # (release time, bytes), sorted by time
        self.lock = threading.RLock()
        self.reset()

    # -- what subclasses implement --------------------------------------------------------------------

    @abstractmethod
    def handle(self, message: bytes) -> bytes | None:
        """Answer one framed message (terminator included); None for no reply."""

    @abstractmethod
    def reset(self) -> None:
        """Put the instrument in its power-on state."""

    def error_reply(self, message: bytes) -> bytes | None:
        """The instrument's own error answer to `message` (for INSTRUMENT_ERROR faults)."""
        return None

    def set_stuck_busy(self) -> None:
        """From now on report busy (moving, pumping, measuring) whatever is asked."""
        self.stuck_busy = True

    def on_power_up(self) -> None:  # noqa: B027 - optional hook
        """Anything the instrument says by itself after power-up (a banner)."""

    def split(self) -> Iterator[bytes]:
        """Yield complete messages from the input buffer (terminators included)."""
        while True:
            ends = [(i, t) for t in self.TERMINATORS if (i := self._inbuf.find(t)) >= 0]
            if not ends:
                return
            i, t = min(ends)
            msg = bytes(self._inbuf[: i + len(t)])
            del self._inbuf[: i + len(t)]
            yield msg

    # -- host side ------------------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock.monotonic()

    def emit(self, data: bytes, at: float | None = None) -> None:
        """Schedule `data` to be readable by the host from time `at` (default: now)."""
        if not data:
            return
        t = self.now() if at is None else at
        bisect.insort_right(self._out, (t, data), key=_release_time)  # after earlier output of the same time

    def cancel_pending(self) -> None:
        """Drop output scheduled for the future (an aborted measurement)."""
        now = self.now()
        self._out = [(t, d) for t, d in self._out if t <= now]

    def write(self, data: bytes) -> None:
        with self.lock:
            if not self.connected:
                raise ConnectionError(f"simulated {self.name} is disconnected")
            self._inbuf += data
            self._take_input()

    def _take_input(self) -> None:
        for message in self.split():
            self.received.append(message)
            fault = next((f for f in self.faults if f.takes(message)), None)
            self.faults = [f for f in self.faults if not f.spent]
            self._dispatch(message, fault)

    def _dispatch(self, message: bytes, fault: Fault | None) -> None:
        kind = fault.kind if fault else None
        if kind is FaultKind.POWER_CYCLE:
            self.power_cycle()
            return
        if kind is FaultKind.DISCONNECT:
            self.connected = False
            self._out.clear()
            return
        if kind is FaultKind.STUCK_BUSY:
            self.set_stuck_busy()
        erring = kind is FaultKind.INSTRUMENT_ERROR
        reply = self.error_reply(message) if erring else self.handle(message)
        if not reply or kind is FaultKind.NO_REPLY:
            return
        if not self.line_ok:
            reply = self._noise(len(reply))
        now = self.now()
        if kind is FaultKind.TRUNCATE:
            self.emit(reply[: max(1, len(reply) // 2)], now)
        elif kind is FaultKind.GARBAGE:
            self.emit(self._noise(len(reply)), now)
        elif kind is FaultKind.LATE:
            self.emit(reply, now + fault.delay)
        elif kind is FaultKind.TRICKLE:
            for i, byte in enumerate(reply):
                self.emit(bytes([byte]), now + i * fault.delay)
        else:
            self.emit(reply, now)

    def _noise(self, n: int) -> bytes:
        return bytes(self.rng.choice(b"\x00\x7f\xfe#%&@\x15\x06?!") for _ in range(max(1, n)))

    def read(self, limit: int = 1 << 20) -> bytes:
        """Bytes released by now (at most `limit`)."""
        with self.lock:
            now = self.now()
            out = bytearray()
            while self._out and self._out[0][0] <= now and len(out) < limit:
                t, data = self._out.pop(0)
                room = limit - len(out)
                out += data[:room]
                if len(data) > room:
                    self._out.insert(0, (t, data[room:]))
            return bytes(out)

    def available(self) -> int:
        with self.lock:
            now, n = self.now(), 0
            for t, d in self._out:  # sorted by release time
                if t > now:
                    break
                n += len(d)
            return n

    def next_release(self) -> float | None:
        with self.lock:
            return self._out[0][0] if self._out else None

    def discard_input(self) -> None:
        """The host flushed its input buffer: released bytes are gone."""
        with self.lock:
            now = self.now()
            self._out = [(t, d) for t, d in self._out if t > now]

    def power_cycle(self) -> None:
        with self.lock:
            self._out.clear()
            self._inbuf.clear()
            self.stuck_busy = False
            self.reset()
            self.on_power_up()

    def reconnect(self) -> None:
        """The link is back (the host reopened the port, the cable was plugged in again)."""
        with self.lock:
            self.connected = True

    def check_line(self, settings: SerialSettings) -> None:
        """A host opened the link with `settings`; wrong settings garble every reply, as on a real line."""
        expected = self.SERIAL
        self.line_ok = expected is None or (
            (settings.baudrate, settings.bytesize, settings.parity, float(settings.stopbits))
            == (expected.baudrate, expected.bytesize, expected.parity, float(expected.stopbits)))

    def inject(self, kind: FaultKind | str, match: bytes | str | None = None, **kw: float) -> Fault:
        """Script a fault (see `Fault`). Returns it so a test can check it was used."""
        if isinstance(match, str):
            match = match.encode()
        fault = Fault(FaultKind(kind), match, **kw)  # type: ignore[arg-type]
        with self.lock:
            self.faults.append(fault)
        return fault


def _release_time(item: tuple[float, bytes]) -> float:
    return item[0]
