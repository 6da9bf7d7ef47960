"""Read-side queries: a run with its steps, run lists with filters, streams and events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from labctl.store.errors import StoreError
from labctl.store.models import Chunk, Event, Lease, Run, Sample, Step
from labctl.store.readonly import RUN_SUMMARY, iso, unix_time  # shared with the sqlite3 reader


def row_dict(row: Any) -> dict[str, Any]:
    """A row as a dict, `*_at` unix times as ISO 8601 UTC strings."""
    out = dict(row._mapping)
    for k in list(out):
        if k.endswith("_at"):
            out[k] = iso(out[k])
    return out


def get_run(conn: Connection, run_id: int, where: str = "") -> dict[str, Any]:
    run = conn.execute(select(*Run.__table__.c).where(Run.id == run_id)).first()
    if run is None:
        raise StoreError(f"no run {run_id}" + (f" in {where}" if where else ""))
    out = row_dict(run)
    steps = conn.execute(select(*Step.__table__.c).where(Step.run_id == run_id).order_by(Step.index))
    out["steps"] = [row_dict(s) for s in steps]
    sample = None
    if out["sample_id"]:
        s = conn.execute(select(*Sample.__table__.c).where(Sample.id == out["sample_id"])).first()
        sample = row_dict(s) if s is not None else None
    out["sample"] = sample
    out["leases"] = [
        row_dict(x) for x in conn.execute(select(*Lease.__table__.c).where(Lease.run_id == run_id))
    ]
    return out


def list_runs(
    conn: Connection,
    *,
    state: str | None = None,
    protocol: str | None = None,
    sample: str | None = None,
    since: float | str | datetime | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    cols = [getattr(Run, k) for k in RUN_SUMMARY]
    n_steps = select(func.count()).where(Step.run_id == Run.id).scalar_subquery().label("n_steps")
    q = select(*cols, n_steps).order_by(Run.id)
    if state:
        q = q.where(Run.state == state)
    if protocol:
        q = q.where(Run.protocol_name.contains(protocol, autoescape=True))
    if sample:
        q = q.where(Run.sample_id == sample)
    if since is not None:
        q = q.where(Run.created_at >= unix_time(since))
    if limit:
        q = q.limit(limit)
    return [row_dict(r) for r in conn.execute(q)]


def streams(conn: Connection, run_id: int) -> list[dict[str, Any]]:
    q = (
        select(Chunk.stream, Chunk.step_id, func.sum(Chunk.n).label("points"))
        .where(Chunk.run_id == run_id)
        .group_by(Chunk.stream, Chunk.step_id)
        .order_by(Chunk.step_id, Chunk.stream)
    )
    return [{**r._mapping, "points": int(r.points)} for r in conn.execute(q)]


def events(conn: Connection, run_id: int | None = None) -> list[dict[str, Any]]:
    q = select(*Event.__table__.c).order_by(Event.seq)
    if run_id is not None:
        q = q.where(Event.run_id == run_id)
    return [dict(r._mapping) for r in conn.execute(q)]
