"""After a crash: make the dead run's instruments safe, then mark the run interrupted and free its leases.

`labctl recover` rebuilds the drivers from the station text the run recorded (so it reaches the same links
and addresses the run used, whatever the station file says now), connects to every instrument the run
still held, identifies it and calls its `safe_state()`. Each outcome is an audited event of the run
(`recover.safe`, `recover.safe_failed`, `recover.safe_skipped`) and the bytes go into the run's transcript.
Instruments simulated inside the dead process (`labsim://` links) ended with it: they are recorded as
skipped, with that reason, rather than pretended safe.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from labctl.clock import Clock, RealClock
from labctl.engine.instruments import build_instruments
from labctl.engine.safety import SafeResult, make_safe
from labctl.engine.station_info import StationInfo, station_info

ACTOR = "labctl recover"
IN_PROCESS = ("labsim://", "asrllabsim://")


@dataclass
class Recovered:
    """What recovery did for one run."""

    run_id: int
    steps_in_doubt: list[dict[str, Any]]
    instruments: list[str]
    safe: list[SafeResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "steps_in_doubt": self.steps_in_doubt,
            "instruments": self.instruments,
            "safe": [
                {"role": r.role, "ok": r.ok, "confirmed": r.confirmed, "error": r.error} for r in self.safe
            ],
            "skipped": self.skipped,
        }


def recover_dead_runs(
    store: Any, *, clock: Clock | None = None, holding: set[str] | None = None
) -> list[Recovered]:
    """Every run whose process died (with `holding`, only those leasing one of these instruments): the
    instruments it held made safe (recorded), then the run marked interrupted."""
    done = []
    for dead in store.find_dead_runs():
        run = store.run(dead["id"])
        if holding is None or holding & {lease["instrument"] for lease in run.get("leases") or []}:
            done.append(recover_run(store, run, clock=clock or RealClock()))
    return done


def recover_run(store: Any, run: dict[str, Any], *, clock: Clock) -> Recovered:
    """Recover one dead run (`store.run(id)`'s record of it)."""
    run_id = run["id"]
    held = sorted(lease["instrument"] for lease in run.get("leases") or [])
    safe: list[SafeResult] = []
    skipped: dict[str, str] = {}
    if held:
        station = _station(run)
        if station is None:
            skipped = {key: "the run recorded no station to reach it" for key in held}
        else:
            roles = [
                r for r, spec in station.roles.items() if {spec.lease_key, spec.spelt_lease_key} & set(held)
            ]
            live = [r for r in roles if not station.roles[r].link.lower().startswith(IN_PROCESS)]
            gone = "simulated inside the run's process, which ended with it"
            skipped = {r: gone for r in roles if r not in live}
            safe = _make_safe(store, run_id, station, live, clock)
    for role, why in skipped.items():
        store.append_event(run_id, "recover.safe_skipped", {"role": role, "reason": why}, actor=ACTOR)
    store.seal_io(run_id, actor=ACTOR)  # what the run (and the recovery) said to its instruments
    done = store.mark_interrupted(run_id, actor=ACTOR)
    return Recovered(run_id, done["steps_in_doubt"], done["instruments"], safe, skipped)


def _station(run: dict[str, Any]) -> StationInfo | None:
    text = run.get("station_text") or ""
    if not text.strip():
        return None
    from labctl.station import parse_station

    model = parse_station(text, name=f"<station of run {run['id']}>")
    return station_info(model, text=text)


def _make_safe(
    store: Any, run_id: int, station: StationInfo, roles: list[str], clock: Clock
) -> list[SafeResult]:
    """Connect, identify and safe-state each role; a role that cannot be reached is a recorded failure."""
    if not roles:
        return []

    def record(kind: str, data: dict[str, Any]) -> None:
        store.append_event(run_id, kind.replace("instrument.", "recover."), data, actor=ACTOR)

    instruments = build_instruments(station, roles, clock=clock, recorder=store.io_recorder(run_id))
    results: list[SafeResult] = []
    reached: list[tuple[str, Any]] = []
    for role in roles:
        inst = instruments[role]
        try:
            inst.connect()
            identity = inst.identify()
        except Exception as exc:
            res = SafeResult(role, False, error=f"could not reach it: {type(exc).__name__}: {exc}")
            results.append(res)
            record("instrument.safe_failed", {"role": role, "error": res.error})
            continue
        store.append_event(run_id, "recover.identified", {"role": role, "identity": identity}, actor=ACTOR)
        reached.append((role, inst))
    results += make_safe(reached, record=record)
    for inst in instruments.values():
        with contextlib.suppress(Exception):
            inst.close()
    store.flush()
    return results
