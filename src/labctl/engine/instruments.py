"""Station -> driver instances with their transports (the engine's only contact with `drivers/`).

Pumps on one port share one transport (one RS-232 network, one lock); every transport records its exchanges
through the store's `io_recorder` and runs on the run's clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from labctl.clock import Clock
from labctl.drivers import registry
from labctl.drivers.transport import Recorder, Transport, open_link
from labctl.engine.errors import PreflightError
from labctl.station import Station
from labctl.steps import StepModel, kind_of
from labctl.steps.registry import step_kind

#: extra attempts a driver makes of an idempotent read after a lost, late, garbled or cut reply or a dropped
#: link (commands are never retried: a lost RUN, RF on or move is read back, not re-sent)
READ_RETRIES = 1


def roles_for(steps: Iterable[StepModel], station: Station) -> tuple[list[str], list[str]]:
    """(roles the steps use that the station has, required roles it lacks)."""
    return roles_for_kinds([kind_of(step).KIND for step in steps], station)


def roles_for_kinds(kinds: Iterable[str], station: Station) -> tuple[list[str], list[str]]:
    """`roles_for` by step-kind name (what a run request records of its protocol)."""
    need: set[str] = set()
    missing: set[str] = set()
    for kind in kinds:
        ex = step_kind(kind)
        for role in ex.ROLES:
            if role.endswith(".*"):
                family = role[:-2]
                found = [r for r in station.instruments if r == family or r.startswith(family + ".")]
                need.update(found)
                if not found:
                    missing.add(role)
            elif role in station.instruments:
                need.add(role)
            else:
                missing.add(role)
        have = station.instruments
        need.update(r for r in ex.OPTIONAL_ROLES if r in have and _loadable(have[r].driver))
    return sorted(need), sorted(missing)


def _loadable(driver: str) -> bool:
    """Whether the driver (and, for dry runs, its simulator) of an optional role can be imported."""
    try:
        registry.driver_class(driver)
        registry.simulator_class(driver)
    except Exception:
        return False
    return True


def build_instruments(
    station: Station, roles: Iterable[str], *, clock: Clock, recorder: Recorder | None = None
) -> dict[str, Any]:
    """One driver per role, on transports opened lazily by `connect()`; shared ports share a transport;
    each retries its idempotent reads `READ_RETRIES` times."""
    roles = list(roles)
    by_link: dict[str, list[str]] = {}
    for role in roles:
        spec = station.instruments[role]
        if not spec.link:
            raise PreflightError(f"station role {role!r} has neither port nor visa")
        by_link.setdefault(spec.link, []).append(role)
    transports: dict[str, Transport] = {}
    out: dict[str, Any] = {}
    for role in roles:
        spec = station.instruments[role]
        try:
            cls = registry.driver_class(spec.driver)
        except ImportError as exc:
            raise PreflightError(f"{role}: driver {spec.driver!r} is not available ({exc})") from exc
        link = spec.link
        if link not in transports:
            name = "+".join(by_link[link])
            timeout = float(getattr(cls, "TIMEOUT", 1.0))
            transports[link] = open_link(name, port=spec.port, visa=spec.visa,
                                         settings=getattr(cls, "SERIAL", None), clock=clock, timeout=timeout,
                                         recorder=recorder)
        out[role] = cls.from_spec(transports[link], spec)
        if hasattr(out[role], "RETRIES"):
            out[role].RETRIES = READ_RETRIES
    return out


def lease_keys(station: Station, roles: Iterable[str]) -> list[str]:
    return sorted({f"{station.instruments[r].lease_key}" for r in roles})
