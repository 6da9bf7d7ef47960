"""Instrument leases: one live run per instrument, stale holders reclaimed with an audit event."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import Connection, delete, insert, select, update

from labctl.store.errors import LeaseConflict
from labctl.store.models import TERMINAL_STATES, Lease, Run

STALE_AFTER = 30.0
HOST = os.environ.get("LABCTL_HOST") or socket.gethostname()  # LABCTL_HOST: a stable name (containers)


BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
SAME_START_S = 0.5  # psutil's unix start times of one process agree to a tick; a reused pid starts later
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
UNIX_TIME_FLOOR = 1e9  # a recorded start above: a unix time (psutil); below: seconds since boot (Linux)


def boot_id() -> str | None:
    """This boot's id (Linux), None where the system has none."""
    try:
        return BOOT_ID_PATH.read_text().strip() or None
    except OSError:
        return None


def _since_boot(pid: int) -> float | bool | None:
    """Linux: when `pid` started, in seconds since boot (field 22 of /proc/PID/stat, in clock ticks), None if
    there is no such process; False where /proc is not there (another system)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return None if Path("/proc/self/stat").exists() else False
    except OSError:
        return False
    try:
        return int(raw[raw.rindex(b")") + 2:].split()[19]) / CLK_TCK  # fields after "(comm)": state is 3rd
    except (ValueError, IndexError):
        return False


def process_started(pid: int) -> float | None:
    """When process `pid` started, None if there is none. On Linux seconds since boot, which a step of the
    wall clock (NTP, a VM resumed) does not move: psutil's unix start time is boot time + ticks, and the
    boot time it reads is now - uptime, so after a 1 s step a live process looked like another one (a live
    run was recovered as dead). With the boot id it names one process. Elsewhere psutil's unix start time."""
    started = _since_boot(pid)
    if started is not False:
        return started  # type: ignore[return-value]
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def same_start(recorded: float, pid: int) -> bool:
    """Whether live process `pid` started when `recorded` says (seconds since boot, or a unix time in
    records made before labctl recorded seconds since boot, or on another system)."""
    if recorded >= UNIX_TIME_FLOOR:
        try:
            return abs(float(psutil.Process(pid).create_time()) - recorded) <= SAME_START_S
        except psutil.Error:
            return False
    started = process_started(pid)
    return started is not None and abs(started - recorded) <= 0.5 / CLK_TCK


def me() -> dict[str, Any]:
    """This process as the store records it: pid, start time, boot id (with the host)."""
    pid = os.getpid()
    return {"pid": pid, "proc_started": process_started(pid), "boot_id": boot_id()}


def pid_alive(pid: int) -> bool:
    try:
        return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def process_alive(pid: int, proc_started: float | None = None, boot: str | None = None) -> bool:
    """Whether the process recorded as (pid, start time, boot id) on this host still runs. A pid that now
    belongs to a process started at another time, or a record from another boot, is a dead process;
    without a recorded start time (older records) a live pid has to be taken as alive."""
    current_boot = boot_id()
    if boot and current_boot and boot != current_boot:
        return False  # rebooted since: every process of that boot is gone
    if not pid_alive(pid):
        return False
    if proc_started is None:
        return True
    return same_start(proc_started, pid)


def holder_dead(
    host: str,
    pid: int,
    heartbeat_at: float | None,
    now: float,
    proc_started: float | None = None,
    boot: str | None = None,
) -> bool:
    """A holder is gone when its heartbeat is older than STALE_AFTER and, on this host, its process (pid,
    start time, boot) is gone; another host's process cannot be checked: the stale heartbeat alone decides."""
    stale = heartbeat_at is None or now - heartbeat_at > STALE_AFTER
    return stale and (host != HOST or not process_alive(pid, proc_started, boot))


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def acquire(
    conn: Connection, run_id: int, instruments: list[str], audit: Callable[[str, dict[str, Any]], None]
) -> list[str]:
    """All of `instruments` for `run_id` in the caller's write transaction, or LeaseConflict for none.
    Returns the instruments newly leased (those the run did not hold already)."""
    now, proc = time.time(), me()
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
        dead = holder_dead(
            lease.host, lease.pid, lease.heartbeat_at, now, lease.proc_started, lease.boot_id
        )
        if state in TERMINAL_STATES or dead:
            conn.execute(delete(Lease).where(Lease.instrument == lease.instrument))
            audit(
                "lease.reclaimed",
                {
                    "instrument": lease.instrument,
                    "from_run": lease.run_id,
                    "pid": lease.pid,
                    "proc_started": lease.proc_started,
                    "boot_id": lease.boot_id,
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
                    **proc,
                    "host": HOST,
                    "since": now,
                    "heartbeat_at": now,
                }
                for n in new
            ],
        )
    if held:
        conn.execute(update(Lease).where(Lease.run_id == run_id).values(**proc, host=HOST, heartbeat_at=now))
    return new


def heartbeat(conn: Connection, run_id: int) -> None:
    now = time.time()
    conn.execute(update(Lease).where(Lease.run_id == run_id).values(heartbeat_at=now))
    conn.execute(update(Run).where(Run.id == run_id).values(heartbeat_at=now))


def release(conn: Connection, run_id: int) -> list[str]:
    names = list(conn.execute(select(Lease.instrument).where(Lease.run_id == run_id)).scalars())
    conn.execute(delete(Lease).where(Lease.run_id == run_id))
    return names
