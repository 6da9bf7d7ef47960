"""Clocks: real time on the bench, virtual time in dry runs.

Everything that waits or timestamps (engine, transports, simulators) reads one `Clock`, so a dry run of a
1000-hour protocol takes seconds: on a `VirtualClock`, `sleep` advances time at once.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """What every time consumer needs. `monotonic()` is seconds since the clock started."""

    is_virtual: bool

    def monotonic(self) -> float: ...

    def time(self) -> float:
        """Unix time in seconds (virtual clocks start at the real time they were created)."""
        ...

    def sleep(self, seconds: float) -> None: ...

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Wait for `event` up to `timeout` s; True if it was set. Virtual clocks advance by `timeout`."""
        ...


class RealClock:
    """Wall-clock time."""

    is_virtual = False

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self._unix0 = time.time()

    def monotonic(self) -> float:
        return time.monotonic() - self._t0

    def time(self) -> float:
        return self._unix0 + self.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(max(0.0, timeout))


class VirtualClock:
    """Simulated time: `sleep` returns at once after advancing the clock. Thread-safe."""

    is_virtual = True

    def __init__(self, start_unix: float | None = None) -> None:
        self._t = 0.0
        self._unix0 = time.time() if start_unix is None else start_unix
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return self._t

    def time(self) -> float:
        return self._unix0 + self._t

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self._t += seconds

    def advance_to(self, t: float) -> None:
        """Move time forward to `t` (never backwards)."""
        with self._lock:
            if t > self._t:
                self._t = t

    def wait(self, event: threading.Event, timeout: float) -> bool:
        if event.is_set():
            return True
        self.sleep(timeout)
        return event.is_set()
