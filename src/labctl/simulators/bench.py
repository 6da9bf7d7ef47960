"""The simulated bench: one simulator core per instrument link of a station, all on one clock and one world.

```python
bench = SimulatedBench(load_station("stations/simulated.yaml"), clock=VirtualClock(), world=world, seed=1)
bench.start()                          # "labsim" (in process), "tcp" or "pty"
bench.address("potentiostat")          # {"visa": "TCPIP::127.0.0.1::40123::SOCKET"}
station = bench.simulated_station()    # the station with every address pointing at the simulators
bench.close()
```

Roles on one link share one core (the two NE-1000 pumps on `labsim://pumps` are one `NE1000Sim` with
`addresses=(1, 2)` and `pump_names={1: "pump.stock", 2: "pump.solvent"}`). A core's class comes from the
driver registry (`simulator_class(driver)`); it is built as `Core(name, clock=, world=, seed=, **options)`
with the options its driver derives from the station's addresses (`Driver.simulator_options`).

Exposures: `labsim` registers every core as `labsim://NAME` (and `ASRLlabsim://NAME::INSTR`) in this process;
VISA instruments are *also* served on the in-process TCP exposure and their address rewritten to
`TCPIP::127.0.0.1::<port>::SOCKET`: pyvisa-py's ASRL session reads one byte per call, far too slow for a
potentiostat's buffers (benchmarks/bench_exchange.py measures both). `tcp` serves every core on 127.0.0.1
(serial instruments as `socket://`), `pty` gives serial instruments a pseudo-terminal (VISA ones stay on TCP).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from labctl.clock import Clock, RealClock
from labctl.drivers import registry as drivers
from labctl.errors import ConfigError
from labctl.simulators import registry
from labctl.simulators.core import DeviceCore
from labctl.simulators.exposures import Exposure, serve_pty, serve_tcp

EXPOSURES = ("labsim", "tcp", "pty")


@dataclasses.dataclass
class _Link:
    """One physical link of the station and the roles on it."""

    name: str  # core name (labsim://NAME)
    driver: str
    port: str | None
    visa: str | None
    roles: list[str]
    addresses: dict[str, int]  # role -> station address


def _spec(value: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):
        return value.model_dump()
    return dict(value)


def _instruments(station: Any) -> dict[str, dict[str, Any]]:
    """`{role: {driver, port, visa, address}}` from a Station, a station file path or a mapping."""
    if isinstance(station, (str, Path)):
        from labctl.station import load_station

        station = load_station(station)
    if isinstance(station, Mapping):
        roles = station.get("instruments") or station.get("roles") or {}
    else:
        roles = getattr(station, "instruments", None) or getattr(station, "roles", None) or {}
    return {str(role): _spec(spec) for role, spec in dict(roles).items()}


def _labsim_name(link: str) -> str | None:
    if link.startswith("labsim://"):
        return urlparse(link).netloc or link.removeprefix("labsim://")
    if link.upper().startswith("ASRLLABSIM://"):
        return link.split("://", 1)[1].split("::", 1)[0]
    return None


class SimulatedBench:
    """Simulator cores for a station's instruments; `start()` exposes them, `close()` takes them down."""

    def __init__(
        self,
        station: Any,
        *,
        clock: Clock | None = None,
        world: Any = None,
        seed: int = 0,
        roles: list[str] | None = None,
    ) -> None:
        self.station = station
        self.clock: Clock = clock or RealClock()
        if world is None:
            from labctl.simulators.world import SimpleWorld

            world = SimpleWorld()
        self.world = world
        self.seed = seed
        self.instruments = _instruments(station)
        self.roles = list(roles) if roles is not None else None
        self.cores: dict[str, DeviceCore] = {}  # core name -> core
        self.unavailable: dict[str, str] = {}  # role -> why it has no simulator
        self.exposures: dict[str, Exposure] = {}  # core name -> exposure (tcp / pty)
        self.exposure: str | None = None
        self._links: dict[str, _Link] = {}  # core name -> link
        self._addresses: dict[str, dict[str, str]] = {}  # role -> {"port"|"visa": address}

    # -- building -------------------------------------------------------------------------------------

    def _plan(self, roles: list[str] | None) -> dict[str, _Link]:
        wanted = set(roles if roles is not None else self.instruments)
        unknown = wanted - set(self.instruments)
        if unknown:
            raise ConfigError(f"the station has no role {', '.join(sorted(unknown))}")
        by_link: dict[str, _Link] = {}
        used: set[str] = set()
        for role, spec in self.instruments.items():
            if role not in wanted:
                continue
            link = str(spec.get("port") or spec.get("visa") or "")
            if not link:
                raise ConfigError(f"station role {role!r} has neither port nor visa")
            if link not in by_link:
                name = _labsim_name(link) or role.replace(".", "-")
                while name in used:
                    name += "_"
                used.add(name)
                by_link[link] = _Link(name, str(spec["driver"]), spec.get("port"), spec.get("visa"), [], {})
            entry = by_link[link]
            if entry.driver != spec["driver"]:
                raise ConfigError(
                    f"roles {entry.roles[0]!r} and {role!r} share {link} with different drivers"
                )
            entry.roles.append(role)
            if spec.get("address") is not None:
                entry.addresses[role] = int(spec["address"])
        return {link.name: link for link in by_link.values()}

    def _build(self, link: _Link) -> DeviceCore:
        """The link's core, addressed as the station addresses its instruments (the driver says how)."""
        cls = drivers.simulator_class(link.driver)
        addresses = {r: link.addresses[r] for r in link.roles if r in link.addresses}
        options = drivers.driver_class(link.driver).simulator_options(addresses)
        return cls(link.name, clock=self.clock, world=self.world, seed=self.seed, **options)

    # -- running --------------------------------------------------------------------------------------

    def start(self, exposure: str = "labsim", roles: list[str] | None = None) -> SimulatedBench:
        """Build the cores (of `roles`, default all the station's) and expose them; returns the bench."""
        if exposure not in EXPOSURES:
            raise ConfigError(f"unknown exposure {exposure!r}; choose one of {', '.join(EXPOSURES)}")
        if self.exposure is not None:
            raise ConfigError("this simulated bench is already started")
        roles = roles if roles is not None else self.roles
        explicit = roles is not None
        self._links = self._plan(roles)
        try:
            for name, link in list(self._links.items()):
                try:
                    core = self._build(link)
                except (ImportError, AttributeError, ConfigError) as exc:
                    if explicit:
                        raise ConfigError(
                            f"{', '.join(link.roles)}: no simulator for driver {link.driver!r} ({exc})"
                        ) from exc
                    for role in link.roles:
                        self.unavailable[role] = f"no simulator for driver {link.driver!r}: {exc}"
                    del self._links[name]
                    continue
                self.cores[name] = core
                self._expose(exposure, link, core)
        except BaseException:
            self.close()
            raise
        self.exposure = exposure
        return self

    def _expose(self, exposure: str, link: _Link, core: DeviceCore) -> None:
        if exposure == "labsim":
            registry.register(link.name, core)
        if link.visa is not None:
            exp = serve_tcp(core)
            self.exposures[link.name] = exp
            where = {"visa": exp.visa_resource}
        elif exposure == "labsim":
            where = {"port": f"labsim://{link.name}"}
        elif exposure == "tcp":
            exp = serve_tcp(core)
            self.exposures[link.name] = exp
            where = {"port": exp.serial_url}
        else:
            pty = serve_pty(core)
            self.exposures[link.name] = pty
            where = {"port": pty.path}
        for role in link.roles:
            self._addresses[role] = dict(where)

    def address(self, role: str) -> dict[str, str]:
        """Where the simulated instrument of `role` is: `{"port": ...}` or `{"visa": ...}`."""
        if role not in self._addresses:
            why = self.unavailable.get(role, "not started" if self.exposure is None else "not on this bench")
            raise ConfigError(f"role {role!r} has no simulated instrument ({why})")
        return dict(self._addresses[role])

    def addresses(self) -> dict[str, dict[str, str]]:
        return {role: dict(where) for role, where in self._addresses.items()}

    def core(self, role: str) -> DeviceCore:
        for name, link in self._links.items():
            if role in link.roles and name in self.cores:
                return self.cores[name]
        raise ConfigError(f"role {role!r} has no simulated instrument")

    def simulated_station(self) -> Any:
        """The station with each simulated role's address rewritten (a Station, or a mapping if given one)."""
        station = self.station
        if isinstance(station, (str, Path)):
            from labctl.station import load_station

            station = load_station(station)

        def rewrite(role: str, spec: Any) -> Any:
            where = self._addresses.get(role)
            if where is None:
                return spec
            new = {"port": where.get("port"), "visa": where.get("visa")}
            if dataclasses.is_dataclass(spec) and not isinstance(spec, type):
                return dataclasses.replace(spec, **new)
            if hasattr(spec, "model_copy"):
                return spec.model_copy(update=new)
            out = dict(spec)
            out.update({k: v for k, v in new.items() if v is not None})
            for key in ("port", "visa"):
                if key not in where:
                    out.pop(key, None)
            return out

        if isinstance(station, Mapping):
            key = "instruments" if "instruments" in station else "roles"
            out = dict(station)
            out[key] = {r: rewrite(r, s) for r, s in dict(station.get(key) or {}).items()}
            return out
        instruments = {r: rewrite(r, s) for r, s in station.instruments.items()}
        if dataclasses.is_dataclass(station):
            return dataclasses.replace(station, instruments=instruments)
        return station.model_copy(update={"instruments": instruments})

    def close(self) -> None:
        """Stop every exposure and unregister every core (idempotent)."""
        for exp in self.exposures.values():
            with contextlib.suppress(Exception):
                exp.close()
        self.exposures.clear()
        for name, core in self.cores.items():
            if registry.get(name) is core:
                registry.unregister(name)
        self.exposure = None

    def __enter__(self) -> SimulatedBench:
        if self.exposure is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
