"""Engines: URL resolution, SQLite connection settings (WAL, foreign keys, busy timeout) and write locking.

Every write transaction on SQLite starts with `BEGIN IMMEDIATE`, so writers (and event appends, which read
the chain head before inserting) serialize across processes; on PostgreSQL the audit code takes a
transaction-level advisory lock instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, inspect, make_url

from labctl.store.errors import StoreError
from labctl.store.readonly import (  # noqa: F401 - DEFAULT_DB, LABCTL_TABLES, resolve_url: used from here
    BUSY_TIMEOUT_MS,
    DEFAULT_DB,
    LABCTL_TABLES,
    check_file,
    require_tables,
    resolve_url,
)

SQLITE_PRAGMAS = {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": BUSY_TIMEOUT_MS}


def _sqlite_connect(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see _sqlite_begin)
    cur = dbapi_connection.cursor()
    cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA journal_mode = WAL")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.execute("PRAGMA synchronous = NORMAL")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    mode = "DEFERRED" if conn.get_execution_options().get("labctl_read") else "IMMEDIATE"
    conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str) -> Engine:
    """An engine for `url` with labctl's connection settings."""
    try:
        sa_url = make_url(url)
    except Exception as exc:
        raise StoreError(f"not a database URL: {url!r} ({exc})") from exc
    if sa_url.get_backend_name() == "sqlite":
        if sa_url.database in (None, "", ":memory:"):
            raise StoreError("the store needs a SQLite file (WAL is not available in memory)")
        Path(sa_url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(sa_url, connect_args={"check_same_thread": False, "timeout": 10.0})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if sa_url.get_backend_name() == "postgresql":
        return create_engine(sa_url, pool_pre_ping=True)
    raise StoreError(f"unsupported database {sa_url.get_backend_name()!r}: use SQLite or PostgreSQL")


def require_labctl_file(url: str) -> None:
    """Before a reader opens a SQLite file: it must exist and hold labctl's tables. Looked at through a
    read-only sqlite3 connection, so another application's file is left exactly as it was (not even
    switched to WAL)."""
    sa_url = make_url(url)
    if sa_url.get_backend_name() != "sqlite" or sa_url.database in (None, "", ":memory:"):
        return
    check_file(Path(sa_url.database)).close()


def require_labctl(engine: Engine) -> None:
    """The same for a server database (PostgreSQL): readers never create labctl's tables in it."""
    if engine.dialect.name == "sqlite":
        return
    try:
        names = set(inspect(engine).get_table_names())
    except Exception as exc:
        raise StoreError(f"{engine.url.render_as_string()} is not a database labctl can read: {exc}") from exc
    require_tables(engine.url.render_as_string(), names)


def check_sqlite_settings(engine: Engine) -> None:
    """Read the connection settings back; refuse to work without WAL, foreign keys and the busy timeout."""
    with engine.connect() as conn:
        got = {name: conn.exec_driver_sql(f"PRAGMA {name}").scalar() for name in SQLITE_PRAGMAS}
        conn.rollback()
    bad = {k: v for k, v in got.items() if str(v).lower() != str(SQLITE_PRAGMAS[k])}
    if bad:
        raise StoreError(
            "SQLite settings not in effect: "
            + ", ".join(f"{k}={v!r} (want {SQLITE_PRAGMAS[k]!r})" for k, v in bad.items())
        )


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A read-only connection (plain deferred transaction on SQLite)."""
    with engine.connect() as conn:
        conn = conn.execution_options(labctl_read=True)
        try:
            yield conn
        finally:
            conn.rollback()
