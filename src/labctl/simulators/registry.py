"""Running simulator cores by name, as `labsim://NAME` finds them in this process."""

from __future__ import annotations

import threading

from labctl.simulators.core import DeviceCore

_lock = threading.Lock()
_cores: dict[str, DeviceCore] = {}


def register(name: str, core: DeviceCore) -> None:
    """Make `core` reachable as `labsim://name` (replacing any core of that name)."""
    with _lock:
        _cores[name] = core


def unregister(name: str) -> None:
    with _lock:
        _cores.pop(name, None)


def get(name: str) -> DeviceCore | None:
    with _lock:
        return _cores.get(name)


def names() -> list[str]:
    with _lock:
        return sorted(_cores)


def clear() -> None:
    with _lock:
        _cores.clear()
