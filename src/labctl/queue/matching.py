"""Which station can serve which request, and why a request still waits.

A request's requirements are derived from its protocol at submit time: the step kinds, the roles those steps
need (`pump.*` = at least one pump), and optionally named instruments (a station role name such as
`potentiostat`, or an instrument's lease key such as `tcp://10.0.0.5:5025`) the user insists on. A station's
capability is what its worker records: each role with its lease key, and whether it is a dry-run bench.
A dry-run request is served only by a dry-run (`--simulate`) runner or worker and a bench request only by a
bench, so a simulated bench never answers for real instruments and a test never drives a real one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from labctl.engine.instruments import lease_keys, roles_for_kinds
from labctl.station import Station
from labctl.steps.registry import step_kind


def requirements_of(kinds: Iterable[str], instruments: Iterable[str] = ()) -> dict[str, Any]:
    """The roles the step kinds need (in the step kinds' own words) and the named instruments."""
    kinds = list(kinds)
    roles = sorted({role for kind in kinds for role in step_kind(kind).ROLES})
    return {"kinds": kinds, "roles": roles, "instruments": sorted(set(instruments))}


def capability(info: Station, simulate: bool) -> dict[str, Any]:
    """What a worker's row says its station offers."""
    return {"roles": {role: spec.lease_key for role, spec in info.roles.items()}, "simulate": simulate}


def unmet(requirements: dict[str, Any], simulate: bool, cap: dict[str, Any]) -> str | None:
    """Why a station with capability `cap` cannot serve the request; None if it can."""
    if bool(cap.get("simulate")) != bool(simulate):
        return "it is a dry-run bench" if cap.get("simulate") else "it is a bench, not a dry-run bench"
    have: dict[str, str] = cap.get("roles") or {}
    missing = []
    for role in requirements.get("roles") or []:
        if role.endswith(".*"):
            family = role[:-2]
            if not any(r == family or r.startswith(family + ".") for r in have):
                missing.append(role)
        elif role not in have:
            missing.append(role)
    named = [n for n in requirements.get("instruments") or [] if n not in have and n not in have.values()]
    parts = []
    if missing:
        parts.append(f"no {', '.join(missing)}")
    if named:
        parts.append(f"not the named instrument(s) {', '.join(named)}")
    return "; ".join(parts) or None


def keys_needed(requirements: dict[str, Any], info: Station) -> list[str]:
    """The lease keys a run of this request would take on this station."""
    roles, _ = roles_for_kinds(requirements.get("kinds") or [], info)
    return lease_keys(info, roles)


def cap_keys(requirements: dict[str, Any], cap: dict[str, Any]) -> list[str]:
    """The lease keys of the roles a request needs, as a worker's capability row records them."""
    have: dict[str, str] = cap.get("roles") or {}
    out = set()
    for role in requirements.get("roles") or []:
        family = role[:-2] if role.endswith(".*") else None
        out.update(
            k
            for r, k in have.items()
            if r == role or (family and (r == family or r.startswith(family + ".")))
        )
    return sorted(out)


def why_waiting(request: Any, workers: list[Any], leased: dict[str, int], now: float | None = None) -> str:
    """A plain sentence: why a queued request has not started (not-before, no worker that can serve it,
    or the instruments it needs are leased by other runs). `leased`: every lease now, key -> run id."""
    now = time.time() if now is None else now
    if request.not_before is not None and request.not_before > now:
        return f"not before {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(request.not_before))}"
    # a Python session's own dispatcher (`lab.submit`, kind "api") starts only what that session submitted
    workers = [w for w in workers if getattr(w, "kind", None) != "api"]
    if not workers:
        return "no runner or worker is running"
    able, refusals = [], []
    for w in workers:
        why = unmet(request.requirements, request.simulate, w.station)
        if why is None:
            able.append(w)
        else:
            refusals.append(f"{w.name} ({w.station_name}): {why}")
    if not able:
        return "no station can serve it: " + " | ".join(refusals)
    busy = sorted(
        {
            f"{k} (run {leased[k]})"
            for w in able
            for k in cap_keys(request.requirements, w.station)
            if k in leased
        }
    )
    if busy:
        return f"waiting for instruments leased by other runs: {', '.join(busy)}"
    names = ", ".join(w.name for w in able)
    return f"can be served by {names}; waiting for a free slot there"
