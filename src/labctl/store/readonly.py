"""Reading a SQLite store with the standard library alone, for commands that only read (`labctl runs list`).

Importing SQLAlchemy and the store's models costs ~0.3 s, more than the whole start-up budget of `runs list`
(issue 18). A plain `sqlite:///file` URL is therefore read here through `sqlite3`, opened read-only
(`file:...?mode=ro`, so nothing in the file can change, not even its journal mode), after the same checks
`Store.open(read_only=True)` makes: the file exists, it holds labctl's tables (`check_file`, which
`labctl.store.db` uses too), and it is at the newest schema revision. A database at another revision, a
server database or a URL with options is left to the SQLAlchemy store (`connect` returns None), which
migrates or explains; so this module never has to know an old schema.

The run list's columns, its time format and its `--since` parsing live here and are what
`labctl.store.queries` uses, and `tests/store/test_readonly.py` holds both paths to equal rows, so the two
cannot drift. Like any reader of a WAL database, the connection leaves the `-wal`/`-shm` files in place.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from labctl.store.errors import StoreError

DEFAULT_DB = "labctl.db"
BUSY_TIMEOUT_MS = 10_000
LABCTL_TABLES = frozenset({"alembic_version", "runs", "steps", "events", "leases", "chunks"})
_SQLITE_SCHEMES = ("sqlite:///", "sqlite+pysqlite:///")

RUN_SUMMARY = (
    "id",
    "protocol_name",
    "protocol_path",
    "protocol_sha256",
    "station_name",
    "operator",
    "host",
    "pid",
    "mode",
    "seed",
    "state",
    "sample_id",
    "created_at",
    "started_at",
    "ended_at",
    "heartbeat_at",
    "exit_reason",
)


def resolve_url(url: str | None) -> str:
    """None -> $LABCTL_DB -> ./labctl.db; a plain path becomes a SQLite URL; postgresql:// gets psycopg."""
    url = url or os.environ.get("LABCTL_DB") or DEFAULT_DB
    if "://" not in url:
        return f"sqlite:///{Path(url).expanduser().resolve()}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def sqlite_file(url: str) -> Path | None:
    """The file of a plain SQLite URL (`sqlite:///rel.db`, `sqlite:////abs.db`), read as SQLAlchemy reads it
    (the path percent-decoded); None for anything else (a server, memory, a URL with options)."""
    scheme = next((s for s in _SQLITE_SCHEMES if url.startswith(s)), None)
    if scheme is None or "?" in url:
        return None
    database = unquote(url[len(scheme):])
    return Path(database) if database and database != ":memory:" else None


def check_file(path: Path) -> sqlite3.Connection:
    """A read-only connection to `path` once it is known to exist and to hold labctl's tables (another
    application's file is looked at only read-only, so it stays exactly as it was)."""
    if not path.exists():
        raise StoreError(f"no such database: {path} (check --db / LABCTL_DB)")
    if not path.is_file():
        raise StoreError(f"{path} is not a database file")
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    except sqlite3.Error as exc:
        raise StoreError(f"{path} is not a database labctl can read: {exc}") from exc
    try:
        names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        require_tables(str(path), names)
    except sqlite3.Error as exc:
        con.close()
        raise StoreError(f"{path} is not a database labctl can read: {exc}") from exc
    except StoreError:
        con.close()
        raise
    return con


def require_tables(where: str, names: set[str]) -> None:
    """Refuse a database without labctl's tables (readers never create them)."""
    if not names >= LABCTL_TABLES:
        what = f"it has {len(names)} other table(s)" if names else "it is empty"
        raise StoreError(
            f"{where} is not a labctl database ({what}); check --db / LABCTL_DB "
            "(labctl's tables are created only by commands that record, such as `labctl run`)"
        )


def connect(url: str | None) -> sqlite3.Connection | None:
    """A read-only connection to the SQLite store at `url` (resolved as `Store.open` does), checked as above;
    None when the SQLAlchemy store must handle it (not a plain SQLite file, or not at the newest revision)."""
    from labctl.store.migrate import head_revision

    path = sqlite_file(resolve_url(url))
    if path is None:
        return None
    con = check_file(path)
    try:
        revisions = [r[0] for r in con.execute("SELECT version_num FROM alembic_version")]
    except sqlite3.Error as exc:
        con.close()
        raise StoreError(f"{path} is not a database labctl can read: {exc}") from exc
    head = head_revision()
    if head is None or revisions != [head]:
        con.close()
        return None
    return con


def iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


def unix_time(since: float | str | datetime) -> float:
    if isinstance(since, (int, float)):
        return float(since)
    if isinstance(since, str):
        try:
            since = datetime.fromisoformat(since)
        except ValueError as exc:
            raise StoreError(
                f"--since {since!r}: use an ISO date like 2026-05-01 or 2026-05-01T12:00"
            ) from exc
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return since.timestamp()


def list_runs(
    con: sqlite3.Connection,
    *,
    state: str | None = None,
    protocol: str | None = None,
    sample: str | None = None,
    since: float | str | datetime | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """`labctl.store.queries.list_runs` in SQL: run summaries with their step counts, oldest first."""
    where, args = [], []
    if state:
        where.append("state = ?")
        args.append(state)
    if protocol:  # SQLAlchemy's contains(autoescape=True): '/' escapes the wildcards
        where.append("protocol_name LIKE '%' || ? || '%' ESCAPE '/'")
        args.append(protocol.replace("/", "//").replace("%", "/%").replace("_", "/_"))
    if sample:
        where.append("sample_id = ?")
        args.append(sample)
    if since is not None:
        where.append("created_at >= ?")
        args.append(unix_time(since))
    sql = (
        f"SELECT {', '.join(RUN_SUMMARY)}, "
        "(SELECT count(*) FROM steps WHERE steps.run_id = runs.id) AS n_steps FROM runs"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + " ORDER BY id"
    )
    if limit:
        sql += " LIMIT ?"
        args.append(limit)
    try:
        cur = con.execute(sql, args)
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur]
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the runs: {exc}") from exc
    for row in rows:
        for k in row:
            if k.endswith("_at"):
                row[k] = iso(row[k])
    return rows
