"""Dry runs: the simulated bench (simulator cores behind `labsim://`) and the physical world, on one clock.

Prefers `labctl.simulators.bench.SimulatedBench` and `labctl.simulators.physics` when they exist; otherwise
registers one simulator core per station link itself (pumps on one port become one multi-address core) over
`SimpleWorld`. Either way the run uses the same engine and drivers over `labsim://`.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any
from urllib.parse import urlparse

from labctl.clock import Clock
from labctl.drivers import registry as drivers
from labctl.engine.errors import PreflightError
from labctl.engine.station_info import StationInfo
from labctl.simulators import registry


def make_world(station: StationInfo, *, clock: Clock, seed: int | None) -> Any:
    """`world_for_station` / `PhysicalWorld` from physics.py if present, else `SimpleWorld`."""
    try:
        from labctl.simulators import physics
    except ImportError:
        physics = None
    if physics is not None:
        for name in ("world_for_station", "PhysicalWorld"):
            factory = getattr(physics, name, None)
            if factory is None:
                continue
            offered = {"station": station.raw, "clock": clock, "seed": seed or 0}
            try:
                params = inspect.signature(factory).parameters
                kwargs = {k: v for k, v in offered.items() if k in params}
                return factory(**kwargs)
            except Exception:
                continue
    from labctl.simulators.world import SimpleWorld

    return SimpleWorld()


def _labsim_name(link: str) -> str | None:
    if link.startswith("labsim://"):
        return urlparse(link).netloc or link.removeprefix("labsim://")
    if link.upper().startswith("ASRLLABSIM://"):
        return link.split("://", 1)[1].split("::", 1)[0]
    return None


class FallbackBench:
    """One simulator core per `labsim://` link of the station, registered for the run, removed after."""

    def __init__(
        self,
        station: StationInfo,
        *,
        clock: Clock,
        world: Any,
        seed: int | None,
        roles: list[str] | None = None,
    ) -> None:
        self.cores: dict[str, Any] = {}
        by_name: dict[str, list[str]] = {}
        wanted = set(roles) if roles is not None else set(station.roles)
        for role, spec in station.roles.items():
            if role not in wanted:
                continue
            name = _labsim_name(spec.link)
            if name is None:
                raise ValueError(
                    f"role {role!r} is not on a simulator (link {spec.link!r}); a dry run needs "
                    "labsim:// links"
                )
            by_name.setdefault(name, []).append(role)
        for name, roles in by_name.items():
            spec = station.roles[roles[0]]
            try:
                cls = drivers.simulator_class(spec.driver)
            except ImportError as exc:
                raise PreflightError(f"{roles[0]}: no simulator for driver {spec.driver!r} ({exc})") from exc
            kwargs: dict[str, Any] = {"clock": clock, "world": world, "seed": seed or 0}
            params = inspect.signature(cls.__init__).parameters
            addresses = [station.roles[r].address for r in roles if station.roles[r].address is not None]
            if addresses and "addresses" in params:
                kwargs["addresses"] = tuple(addresses)
                if "pump_names" in params:
                    kwargs["pump_names"] = {station.roles[r].address: r for r in roles}
            elif spec.address is not None and "address" in params:
                kwargs["address"] = spec.address
            elif spec.address is not None and "unit_id" in params:
                kwargs["unit_id"] = chr(ord("A") + spec.address)
            core = cls(name, **kwargs)
            registry.register(name, core)
            self.cores[name] = core

    def close(self) -> None:
        for name in self.cores:
            registry.unregister(name)


def make_bench(
    station: StationInfo, *, clock: Clock, world: Any, seed: int | None, roles: list[str] | None = None
) -> Any:
    """The SimulatedBench of simulators/bench.py if present (same constructor ideas), else `FallbackBench`."""
    try:
        from labctl.simulators.bench import SimulatedBench
    except ImportError:
        return FallbackBench(station, clock=clock, world=world, seed=seed, roles=roles)
    offered = {"station": station.raw, "clock": clock, "world": world, "seed": seed or 0}
    params = inspect.signature(SimulatedBench).parameters
    bench = SimulatedBench(**{k: v for k, v in offered.items() if k in params})
    for name in ("start", "__enter__"):
        if hasattr(bench, name):
            getattr(bench, name)()
            break
    return bench


def close_bench(bench: Any) -> None:
    for name in ("close", "stop", "__exit__"):
        fn = getattr(bench, name, None)
        if fn is not None:
            with contextlib.suppress(Exception):
                fn() if name != "__exit__" else fn(None, None, None)
            return
