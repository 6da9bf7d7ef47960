"""Control commands from other processes (`labctl pause|resume|abort|ack RUN`), through the database.

A command is posted (audited, with who posted it) by any process that reaches the store; the run's own
process takes the unconsumed ones, oldest first, at its safe points.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, insert, select, update

from labctl.store import audit
from labctl.store.errors import StoreError
from labctl.store.models import CONTROL_COMMANDS, TERMINAL_STATES, Control, Run
from labctl.store.queries import row_dict


def post(conn: Connection, key: bytes, run_id: int, command: str, actor: str, args: dict | None) -> int:
    """Record `command` for `run_id` in the caller's write transaction; returns its id."""
    if command not in CONTROL_COMMANDS:
        raise StoreError(f"unknown command {command!r} (one of {', '.join(CONTROL_COMMANDS)})")
    state = conn.execute(select(Run.state).where(Run.id == run_id)).scalar()
    if state is None:
        raise StoreError(f"no run {run_id}")
    if state in TERMINAL_STATES:
        raise StoreError(f"run {run_id} is {state}: it takes no more commands")
    cid = conn.execute(
        insert(Control).values(
            run_id=run_id, command=command, actor=actor, args=args or {}, posted_at=time.time()
        )
    ).inserted_primary_key[0]
    audit.append(
        conn, key, run_id, "control.posted", {"id": cid, "command": command, "args": args or {}}, actor
    )
    return int(cid)


def take(conn: Connection, run_id: int) -> list[dict[str, Any]]:
    """The run's unconsumed commands, oldest first, marked consumed (as read: consumed_at None)."""
    rows = conn.execute(
        select(*Control.__table__.c)
        .where(Control.run_id == run_id, Control.consumed_at.is_(None))
        .order_by(Control.id)
        .with_for_update(skip_locked=True)
    ).all()
    if rows:
        conn.execute(
            update(Control).where(Control.id.in_([r.id for r in rows])).values(consumed_at=time.time())
        )
    return [row_dict(r) for r in rows]
