"""procrastinate, as the bench workers' queue engine: its jobs live in the store's own PostgreSQL database.

A job `labctl.run_request(request_id)` asks one worker to try to take a request. Each live worker has its
own queue (`labctl.<worker name>`); `submit` defers one job to the queue of every live worker whose station
can serve the request (LISTEN/NOTIFY wakes them at once), and each worker defers jobs to its own queue for
requests it can serve that were queued before it started or whose instruments were busy. The job's `lock`
(one per request) runs at most one job of a request at a time, its `queueing_lock` keeps one waiting job per
request and queue, and the store's guarded `queued -> taken` UPDATE lets exactly one worker win: three locks
for one start.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import text

TASK = "labctl.run_request"
SCHEMA_LOCK = 7412  # advisory lock id while procrastinate's schema is applied (7411: labctl's migrations)


def conninfo(store: Any) -> str:
    """A libpq connection string for the store's database (with its password)."""
    url = store.engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def queue_of(worker: str) -> str:
    return "labctl." + re.sub(r"[^A-Za-z0-9_.@-]", "_", worker)


def make_app(store: Any) -> Any:
    try:
        import procrastinate
    except ImportError as exc:
        from labctl.errors import ConfigError

        raise ConfigError(f"bench workers need procrastinate (pip install 'labctl[queue]'): {exc}") from exc

    return procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo(store)))


# pg_tables, not to_regclass(): an advisory lock does not refresh the catalog cache to_regclass reads, so
# a worker that waited for another's schema would not see it (found: two workers starting at once)
_HAS_JOBS = text("SELECT count(*) FROM pg_catalog.pg_tables WHERE tablename = 'procrastinate_jobs'")


def has_schema(store: Any) -> bool:
    with store.engine.connect() as conn:
        found = conn.execute(_HAS_JOBS).scalar()
        conn.rollback()
    return bool(found)


def ensure_schema(store: Any) -> None:
    """procrastinate's tables in the store's database, created once (serialized across workers)."""
    from procrastinate.schema import SchemaManager

    if has_schema(store):
        return
    with store.engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCHEMA_LOCK})
        if not conn.execute(_HAS_JOBS).scalar():
            with conn.connection.dbapi_connection.cursor() as cur:  # no parameters: '%' is literal SQL
                cur.execute(SchemaManager.get_schema())


def defer(app: Any, request_id: int, queue: str) -> bool:
    """One job for `request_id` on `queue`; False when one is already waiting there."""
    from procrastinate.exceptions import AlreadyEnqueued

    try:
        app.configure_task(
            TASK,
            queue=queue,
            lock=f"labctl-request-{request_id}",
            queueing_lock=f"labctl-request-{request_id}@{queue}",
        ).defer(request_id=request_id)
    except AlreadyEnqueued:
        return False
    return True


async def defer_async(app: Any, request_id: int, queue: str) -> bool:
    """`defer` from the worker's event loop (its connector's pool lives there)."""
    from procrastinate.exceptions import AlreadyEnqueued

    try:
        await app.configure_task(
            TASK,
            queue=queue,
            lock=f"labctl-request-{request_id}",
            queueing_lock=f"labctl-request-{request_id}@{queue}",
        ).defer_async(request_id=request_id)
    except AlreadyEnqueued:
        return False
    return True


def announce(store: Any, request_id: int) -> int:
    """After `submit` on PostgreSQL: a job on the queue of every live worker whose station can serve the
    request. Returns how many (none if no worker has ever set up the queue: the workers' sweep finds it)."""
    from labctl.queue.matching import unmet
    from labctl.store import requests

    try:
        import procrastinate  # noqa: F401
    except ImportError:  # no bench workers from this install: the workers' own sweep finds the request
        return 0
    if not has_schema(store):
        return 0
    row = requests.raw(store, request_id)
    able = [
        w
        for w in requests.live_workers(store)
        if w.kind == "worker" and unmet(row.requirements, row.simulate, w.station) is None
    ]
    if not able:
        return 0
    app = make_app(store)
    with app.open():
        return sum(defer(app, request_id, queue_of(w.name)) for w in able)
