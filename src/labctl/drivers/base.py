"""What every driver is: a plain class over a `Transport`, no I/O in `__init__`, SI units, declared limits."""

from __future__ import annotations

from typing import Any, ClassVar

from labctl.drivers.limits import Limit, apply_station_limits
from labctl.drivers.transport import SerialSettings, Transport


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

    def __init__(self, transport: Transport, *, name: str = "",
                 limits: dict[str, tuple[float | None, float | None]] | None = None) -> None:
        self.transport = transport
        self.name = name or self.NAME
        self.limits: dict[str, Limit] = apply_station_limits(self.LIMITS, limits or {})

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
