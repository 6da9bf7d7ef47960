"""Run requests and workers as rows: the one place their states change, each change an audited event.

A request goes `queued -> taken -> started -> finished | failed`, or `queued -> cancelled`. Taking is a
conditional UPDATE (`... WHERE state = 'queued'`) inside a write transaction (SQLite: BEGIN IMMEDIATE;
PostgreSQL: the row lock of the UPDATE), so however many runners and workers race for one request, exactly one
sees a changed row: a request starts at most once. Nothing here ever puts a request back to `queued`: a run
that died is recovered and its request marked failed, never re-run silently.

Workers (local runners and bench workers) are rows with their station's roles and lease keys, the process
identity (host, pid, start time, boot id) and a heartbeat, so `labctl workers` and `queue show` can say who
could serve a request and whether that worker is alive.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, func, insert, or_, select, update

from labctl.store import audit, leases
from labctl.store.errors import StoreError
from labctl.store.models import REQUEST_ENDED, Lease, Run, RunRequest, Worker
from labctl.store.queries import iso

#: a worker whose heartbeat is older than this (and, on this host, whose process is gone) is dead
WORKER_STALE_AFTER = leases.STALE_AFTER

SUMMARY = (
    "id",
    "protocol_name",
    "sample_id",
    "requested_by",
    "priority",
    "simulate",
    "state",
    "worker",
    "run_id",
    "reason",
    "created_at",
    "not_before",
)


def _store_key(store: Any) -> bytes:
    return store._audit_key()  # the store's checked audit key (same package: the request events share it)


def _event(conn: Connection, store: Any, run_id: int | None, kind: str, data: dict, actor: str) -> None:
    audit.append(conn, _store_key(store), run_id, kind, {**data, "at": time.time()}, actor)


def _dict(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    for k, v in list(out.items()):
        if (k.endswith("_at") or k == "not_before") and isinstance(v, float):
            out[k] = iso(v)
    return out


# -- requests -----------------------------------------------------------------------------------------


def submit(
    store: Any,
    *,
    protocol_name: str,
    protocol_path: str,
    protocol_text: str,
    protocol_sha256: str,
    parameters: dict[str, str],
    requirements: dict[str, Any],
    simulate: bool,
    sample_id: str | None,
    requested_by: str,
    realtime: bool = False,
    priority: int = 0,
    not_before: float | None = None,
) -> int:
    """Insert a queued request (audited `request.submitted`); returns its id."""
    values = {
        "protocol_name": protocol_name,
        "protocol_path": protocol_path,
        "protocol_text": protocol_text,
        "protocol_sha256": protocol_sha256,
        "parameters": parameters,
        "requirements": requirements,
        "simulate": simulate,
        "realtime": realtime,
        "sample_id": sample_id,
        "requested_by": requested_by,
        "priority": priority,
        "not_before": not_before,
        "state": "queued",
        "created_at": time.time(),
        "reason": "",
    }
    with store.engine.begin() as conn:
        rid = int(conn.execute(insert(RunRequest).values(**values)).inserted_primary_key[0])
        data = {k: values[k] for k in values if k not in ("protocol_text", "state", "reason", "created_at")}
        _event(conn, store, None, "request.submitted", {"request_id": rid, **data}, requested_by)
    return rid


def get(store: Any, request_id: int) -> dict[str, Any]:
    """The request row (times as ISO 8601 UTC); StoreError if there is none."""
    with store.engine.connect() as conn:
        row = conn.execute(select(*RunRequest.__table__.c).where(RunRequest.id == request_id)).first()
        conn.rollback()
    if row is None:
        raise StoreError(f"no run request {request_id}")
    return _dict(row)


def raw(store: Any, request_id: int) -> Any:
    """The request row as stored (unix times), None if there is none."""
    with store.engine.connect() as conn:
        row = conn.execute(select(*RunRequest.__table__.c).where(RunRequest.id == request_id)).first()
        conn.rollback()
    return row


def listing(store: Any, *, state: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Request summaries, oldest first (by state when given)."""
    q = select(*(getattr(RunRequest, c) for c in SUMMARY)).order_by(RunRequest.id)
    if state:
        q = q.where(RunRequest.state == state)
    if limit:
        q = q.limit(limit)
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
        conn.rollback()
    return [_dict(r) for r in rows]


def candidates(store: Any, now: float | None = None, limit: int = 50) -> list[Any]:
    """Queued requests that may start now, highest priority first, then oldest."""
    now = time.time() if now is None else now
    q = (
        select(*RunRequest.__table__.c)
        .where(RunRequest.state == "queued")
        .where(or_(RunRequest.not_before.is_(None), RunRequest.not_before <= now))
        .order_by(RunRequest.priority.desc(), RunRequest.id)
        .limit(limit)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
        conn.rollback()
    return rows


def take(store: Any, request_id: int, worker: str) -> bool:
    """`queued -> taken` by `worker`, at most once: True for the one caller whose UPDATE changed the row."""
    now = time.time()
    with store.engine.begin() as conn:
        changed = conn.execute(
            update(RunRequest)
            .where(RunRequest.id == request_id, RunRequest.state == "queued")
            .values(state="taken", worker=worker, taken_at=now, reason="")
        ).rowcount
        if changed != 1:
            return False
        _event(conn, store, None, "request.taken", {"request_id": request_id, "worker": worker}, worker)
    return True


def launched(store: Any, request_id: int, process: dict[str, Any]) -> None:
    """Record the run process started for a taken request (host, pid, start time, boot id, log file), so a
    runner that dies before the run is linked can still be followed after its restart."""
    with store.engine.begin() as conn:
        conn.execute(update(RunRequest).where(RunRequest.id == request_id).values(process=process))


def run_of_process(store: Any, process: dict[str, Any]) -> int | None:
    """The run a launched process created (same host and pid, created after it started), None if none yet."""
    q = select(Run.id).where(
        Run.host == process["host"], Run.pid == process["pid"], Run.created_at >= process["launched_at"] - 1.0
    )
    with store.engine.connect() as conn:
        rid = conn.execute(q.order_by(Run.id.desc()).limit(1)).scalar()
        conn.rollback()
    return None if rid is None else int(rid)


def started(store: Any, request_id: int, run_id: int, worker: str) -> None:
    """`taken -> started`: the run `run_id` is the request's (audited on the run's chain too)."""
    with store.engine.begin() as conn:
        changed = conn.execute(
            update(RunRequest)
            .where(RunRequest.id == request_id, RunRequest.state == "taken", RunRequest.worker == worker)
            .values(state="started", run_id=run_id, started_at=time.time())
        ).rowcount
        if changed != 1:
            raise StoreError(f"run request {request_id} is not taken by {worker}: cannot start it")
        _event(conn, store, run_id, "request.started", {"request_id": request_id, "worker": worker}, worker)


def finish(store: Any, request_id: int, *, ok: bool, reason: str, actor: str) -> bool:
    """`taken|started -> finished` (ok) or `-> failed`; False if it had already ended."""
    state = "finished" if ok else "failed"
    with store.engine.begin() as conn:
        row = conn.execute(
            select(RunRequest.state, RunRequest.run_id).where(RunRequest.id == request_id)
        ).first()
        if row is None:
            raise StoreError(f"no run request {request_id}")
        changed = conn.execute(
            update(RunRequest)
            .where(RunRequest.id == request_id, RunRequest.state.in_(("taken", "started")))
            .values(state=state, reason=reason, ended_at=time.time())
        ).rowcount
        if changed != 1:
            return False
        data = {"request_id": request_id, "from": row.state, "reason": reason}
        _event(conn, store, row.run_id, f"request.{state}", data, actor)
    return True


def cancel(store: Any, request_id: int, *, actor: str, reason: str = "") -> None:
    """`queued -> cancelled`; a request already taken or started is not cancelled here (abort its run)."""
    with store.engine.begin() as conn:
        row = conn.execute(
            select(RunRequest.state, RunRequest.run_id).where(RunRequest.id == request_id)
        ).first()
        if row is None:
            raise StoreError(f"no run request {request_id}")
        why = reason or f"cancelled by {actor}"
        changed = conn.execute(
            update(RunRequest)
            .where(RunRequest.id == request_id, RunRequest.state == "queued")
            .values(state="cancelled", reason=why, ended_at=time.time())
        ).rowcount
        if changed != 1:
            hint = f" (abort its run with `labctl abort {row.run_id}`)" if row.run_id else ""
            raise StoreError(f"run request {request_id} is {row.state}, not queued: cannot cancel it{hint}")
        _event(conn, store, None, "request.cancelled", {"request_id": request_id, "reason": why}, actor)


def note_waiting(store: Any, reasons: dict[int, str]) -> None:
    """Record why queued requests still wait (not audited: a reason changes as workers come and go)."""
    if not reasons:
        return
    with store.engine.begin() as conn:
        for rid, why in reasons.items():
            conn.execute(
                update(RunRequest)
                .where(RunRequest.id == rid, RunRequest.state == "queued", RunRequest.reason != why)
                .values(reason=why)
            )


def in_flight(store: Any, *, worker: str | None = None, host: str | None = None) -> list[Any]:
    """Taken or started requests (of one worker, or of workers on one host), with their run's state."""
    q = (
        select(
            RunRequest.id,
            RunRequest.state,
            RunRequest.worker,
            RunRequest.run_id,
            RunRequest.process,
            RunRequest.requirements,
            Run.state.label("run_state"),
            Run.exit_reason,
            Worker.host,
        )
        .outerjoin(Run, Run.id == RunRequest.run_id)
        .outerjoin(Worker, Worker.name == RunRequest.worker)
        .where(RunRequest.state.in_(("taken", "started")))
        .order_by(RunRequest.id)
    )
    if worker is not None:
        q = q.where(RunRequest.worker == worker)
    if host is not None:
        q = q.where(Worker.host == host)
    with store.engine.connect() as conn:
        rows = conn.execute(q).all()
        conn.rollback()
    return rows


def leased(store: Any, keys: list[str]) -> dict[str, int]:
    """Which of these lease keys are held now, by which run."""
    if not keys:
        return {}
    with store.engine.connect() as conn:
        rows = conn.execute(select(Lease.instrument, Lease.run_id).where(Lease.instrument.in_(keys))).all()
        conn.rollback()
    return {r.instrument: r.run_id for r in rows}


def counts(store: Any) -> dict[str, int]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(RunRequest.state, func.count()).group_by(RunRequest.state)).all()
        conn.rollback()
    return {state: n for state, n in rows}


def is_ended(state: str) -> bool:
    return state in REQUEST_ENDED


# -- workers ------------------------------------------------------------------------------------------


def register_worker(store: Any, name: str, *, kind: str, station_name: str, station: dict[str, Any]) -> None:
    """Insert or refresh the worker's row as this process (audited `worker.started`)."""
    now = time.time()
    values = {
        "kind": kind,
        "host": leases.HOST,
        **leases.me(),
        "station_name": station_name,
        "station": station,
        "state": "running",
        "started_at": now,
        "heartbeat_at": now,
    }
    with store.engine.begin() as conn:
        if conn.execute(select(Worker.name).where(Worker.name == name)).first() is None:
            conn.execute(insert(Worker).values(name=name, **values))
        else:
            conn.execute(update(Worker).where(Worker.name == name).values(**values))
        data = {
            "worker": name,
            "kind": kind,
            "station_name": station_name,
            "host": leases.HOST,
            "pid": values["pid"],
        }
        _event(conn, store, None, "worker.started", data, name)


def worker_heartbeat(store: Any, name: str, state: str = "running") -> None:
    with store.engine.begin() as conn:
        conn.execute(update(Worker).where(Worker.name == name).values(heartbeat_at=time.time(), state=state))


def worker_stopped(store: Any, name: str, reason: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            update(Worker).where(Worker.name == name).values(state="stopped", heartbeat_at=time.time())
        )
        _event(conn, store, None, "worker.stopped", {"worker": name, "reason": reason}, name)


def workers(store: Any) -> list[dict[str, Any]]:
    """Every worker with `alive` (process identity here, heartbeat elsewhere) and its current runs."""
    now = time.time()
    with store.engine.connect() as conn:
        rows = conn.execute(select(*Worker.__table__.c).order_by(Worker.name)).all()
        current = conn.execute(
            select(
                RunRequest.worker,
                RunRequest.id,
                RunRequest.run_id,
                RunRequest.state,
                Run.state.label("run_state"),
            )
            .outerjoin(Run, Run.id == RunRequest.run_id)
            .where(RunRequest.state.in_(("taken", "started")))
        ).all()
        conn.rollback()
    out = []
    for r in rows:
        d = _dict(r)
        d["alive"] = r.state != "stopped" and worker_alive(r, now)
        d["current"] = [
            {"request_id": c.id, "run_id": c.run_id, "state": c.state, "run_state": c.run_state}
            for c in current
            if c.worker == r.name
        ]
        out.append(d)
    return out


def worker_alive(row: Any, now: float | None = None) -> bool:
    """A worker row's process still runs: here by (pid, start time, boot); elsewhere by a fresh heartbeat."""
    now = time.time() if now is None else now
    if row.host == leases.HOST:
        return leases.process_alive(row.pid, row.proc_started, row.boot_id)
    return now - row.heartbeat_at <= WORKER_STALE_AFTER


def live_workers(store: Any) -> list[Any]:
    now = time.time()
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(*Worker.__table__.c).where(Worker.state != "stopped").order_by(Worker.name)
        ).all()
        conn.rollback()
    return [r for r in rows if worker_alive(r, now)]


def worker_row(store: Any, name: str) -> Any:
    with store.engine.connect() as conn:
        row = conn.execute(select(*Worker.__table__.c).where(Worker.name == name)).first()
        conn.rollback()
    return row
