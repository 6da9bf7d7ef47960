"""Clocks: real time on the bench, virtual time in dry runs.

Everything that waits or timestamps (engine, transports, simulators) reads one `Clock`, so a dry run of a
1000-hour protocol takes seconds: on a `VirtualClock`, `sleep` advances time at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
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

    SLICE_S = 0.05  # a sleep checks for an interrupt this often

    def __init__(self) -> None:
        self._t0 = time.monotonic()
        self._unix0 = time.time()
        self._interrupt: Callable[[], BaseException] | None = None

    def monotonic(self) -> float:
        return time.monotonic() - self._t0

    def time(self) -> float:
        return self._unix0 + self.monotonic()

    def sleep(self, seconds: float) -> None:
        """Sleep; in the main thread, raise the armed interrupt once (checked every SLICE_S) instead."""
        end = time.monotonic() + seconds
        main = threading.current_thread() is threading.main_thread()
        while True:
            if main and self._interrupt is not None:
                make, self._interrupt = self._interrupt, None
                raise make()
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(remaining, self.SLICE_S) if main else remaining)

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.wait(max(0.0, timeout))

    def interrupt(self, make: Callable[[], BaseException] | None) -> None:
        """Arm (or with None disarm) an interrupt: the main thread's current or next `sleep` raises `make()`.

        A run arms it when an abort signal arrives, so a long wait inside an instrument call (a 60 s
        acquisition, a slow stream) ends at once rather than when the instrument is done; it disarms it before
        the safe state, whose own waits must run to the end.
        """
        self._interrupt = make


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
