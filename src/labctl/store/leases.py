"""Instrument leases: one live run per instrument, stale holders reclaimed with an audit event."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import psutil
from sqlalchemy import Connection, delete, insert, select, update

from labctl.store.errors import LeaseConflict
from labctl.store.models import TERMINAL_STATES, Lease, Run

STALE_AFTER = 30.0
HOST = os.environ.get("LABCTL_HOST") or socket.gethostname()  # LABCTL_HOST: a stable name (containers)


def pid_alive(pid: int) -> bool:
    try:
        return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def holder_dead(host: str, pid: int, heartbeat_at: float | None, now: float) -> bool:
    """A holder is gone when its heartbeat is older than STALE_AFTER and, on this host, its pid is dead
    (another host's pid cannot be checked: the stale heartbeat alone decides)."""
    stale = heartbeat_at is None or now - heartbeat_at > STALE_AFTER
    return stale and (host != HOST or not pid_alive(pid))


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def acquire(
    conn: Connection, run_id: int, instruments: list[str], audit: Callable[[str, dict[str, Any]], None]
) -> list[str]:
    """All of `instruments` for `run_id` in the caller's write transaction, or LeaseConflict for none.
    Returns the instruments newly leased (those the run did not hold already)."""
    now, pid = time.time(), os.getpid()
    names = sorted(set(instruments))
    rows = conn.execute(
        select(*Lease.__table__.c, Run.state)
        .join(Run, Run.id == Lease.run_id)
        .where(Lease.instrument.in_(names))
        .order_by(Lease.instrument)
    ).all()
    for lease in rows:
        state = lease.state
        if lease.run_id == run_id:
            continue
        if state in TERMINAL_STATES or holder_dead(lease.host, lease.pid, lease.heartbeat_at, now):
            conn.execute(delete(Lease).where(Lease.instrument == lease.instrument))
            audit(
                "lease.reclaimed",
                {
                    "instrument": lease.instrument,
                    "from_run": lease.run_id,
                    "pid": lease.pid,
                    "host": lease.host,
                    "since": lease.since,
                    "heartbeat_at": lease.heartbeat_at,
                    "holder_state": state,
                },
            )
            continue
        raise LeaseConflict(
            f"{lease.instrument} is leased by run {lease.run_id} (pid {lease.pid} on {lease.host}, "
            f"since {_iso(lease.since)}, state {state}); wait for it, or `labctl recover` if it died"
        )
    held = {lease.instrument for lease in rows if lease.run_id == run_id}
    new = [n for n in names if n not in held]
    if new:
        conn.execute(
            insert(Lease),
            [
                {
                    "instrument": n,
                    "run_id": run_id,
                    "pid": pid,
                    "host": HOST,
                    "since": now,
                    "heartbeat_at": now,
                }
                for n in new
            ],
        )
    if held:
        conn.execute(update(Lease).where(Lease.run_id == run_id).values(pid=pid, host=HOST, heartbeat_at=now))
    return new


def heartbeat(conn: Connection, run_id: int) -> None:
    now = time.time()
    conn.execute(update(Lease).where(Lease.run_id == run_id).values(heartbeat_at=now))
    conn.execute(update(Run).where(Run.id == run_id).values(heartbeat_at=now))


def release(conn: Connection, run_id: int) -> list[str]:
    names = list(conn.execute(select(Lease.instrument).where(Lease.run_id == run_id)).scalars())
    conn.execute(delete(Lease).where(Lease.run_id == run_id))
    return names
