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
from labctl.station import Station

ACTOR = "labctl recover"
TERMINAL = ("completed", "failed", "aborted", "interrupted")
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


def recover_one(store: Any, run_id: int, *, actor: str, force: bool, clock: Clock | None = None) -> Recovered:
    """`labctl recover --run ID [--force]`: one run, when its process is gone; with `force` also when that
    cannot be decided (another host with a fresh heartbeat, a live pid recorded without its start time),
    audited with the operator as actor. A run whose process is verifiably alive here is never taken over."""
    from labctl.store.errors import StoreError

    run = store.run(run_id)
    if run["state"] in TERMINAL:
        raise StoreError(f"run {run_id} has already ended ({run['state']}): nothing to recover")
    process = store.process_state(run_id)
    where = f"pid {run['pid']} on {run['host']}"
    if process == "alive":
        raise StoreError(
            f"run {run_id} is still running ({where}, the same process that started it): stop it with "
            f"`labctl abort {run_id}`; --force only takes over runs whose process is gone or unknown"
        )
    if process == "unknown" and not force:
        raise StoreError(
            f"cannot tell whether run {run_id}'s process ({where}) is gone: if you know it is (the machine "
            f"was switched off, the process killed), `labctl recover --run {run_id} --force`"
        )
    if force:
        data = {"process": process, "host": run["host"], "pid": run["pid"], "state": run["state"]}
        store.append_event(run_id, "recover.forced", data, actor=actor)
    why = "process died (found by recover)"
    if force:
        why = f"recovered by {actor} with --force (process {process})"
    return recover_run(store, run, clock=clock or RealClock(), actor=actor, why=why)


def recover_run(
    store: Any,
    run: dict[str, Any],
    *,
    clock: Clock,
    actor: str = ACTOR,
    why: str = "process died (found by recover)",
) -> Recovered:
    """Recover one dead run (`store.run(id)`'s record of it)."""
    run_id = run["id"]
    held = sorted(lease["instrument"] for lease in run.get("leases") or [])
    safe: list[SafeResult] = []
    skipped: dict[str, str] = {}
    if held:
        try:
            station = _station(run)
        except Exception as exc:  # recorded by another labctl, or damaged: still end the run, say why
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            station, unreadable = None, f"the run's recorded station cannot be read ({first})"
        else:
            unreadable = "the run recorded no station to reach it"
        if station is None:
            skipped = {key: unreadable for key in held}
        else:
            roles = [
                r for r, spec in station.roles.items() if {spec.lease_key, spec.spelt_lease_key} & set(held)
            ]
            live = [r for r in roles if not station.roles[r].link.lower().startswith(IN_PROCESS)]
            gone = "simulated inside the run's process, which ended with it"
            skipped = {r: gone for r in roles if r not in live}
            safe = _make_safe(store, run_id, station, live, clock, actor)
    for role, reason in skipped.items():
        store.append_event(run_id, "recover.safe_skipped", {"role": role, "reason": reason}, actor=actor)
    store.seal_io(run_id, actor=actor)  # what the run (and the recovery) said to its instruments
    done = store.mark_interrupted(run_id, actor=actor, why=why)
    return Recovered(run_id, done["steps_in_doubt"], done["instruments"], safe, skipped)


def _station(run: dict[str, Any]) -> Station | None:
    text = run.get("station_text") or ""
    if not text.strip():
        return None
    from labctl.station import parse_station

    return parse_station(text, name=f"<station of run {run['id']}>")


def _make_safe(
    store: Any, run_id: int, station: Station, roles: list[str], clock: Clock, actor: str = ACTOR
) -> list[SafeResult]:
    """Connect, identify and safe-state each role; a role that cannot be reached is a recorded failure."""
    if not roles:
        return []

    def record(kind: str, data: dict[str, Any]) -> None:
        store.append_event(run_id, kind.replace("instrument.", "recover."), data, actor=actor)

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
        store.append_event(run_id, "recover.identified", {"role": role, "identity": identity}, actor=actor)
        reached.append((role, inst))
    results += make_safe(reached, record=record)
    for inst in instruments.values():
        with contextlib.suppress(Exception):
            inst.close()
    store.flush()
    return results
