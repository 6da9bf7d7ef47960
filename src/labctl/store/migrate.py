"""Alembic, programmatically: the migrations ship inside the package (no alembic.ini needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # SQLAlchemy is imported where it is used: `head_revision` serves the sqlite3 reader too
    from alembic.config import Config
    from sqlalchemy import Engine

MIGRATIONS = Path(__file__).with_name("migrations")
_REVISION = re.compile(r"^(down_revision|revision)\s*(?::[^=]*)?=\s*(?:[\"']([^\"']+)[\"']|None)", re.M)


def head_revision() -> str | None:
    """The newest shipped revision, read from the migration files (importing alembic costs ~0.2 s of every
    command's start-up); None if the files do not show exactly one head."""
    revisions, downs = set(), set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for key, value in _REVISION.findall(path.read_text(encoding="utf-8")):
            if value:
                (revisions if key == "revision" else downs).add(value)
    heads = revisions - downs
    return heads.pop() if len(heads) == 1 else None


def _at(engine: Engine, revision: str | None) -> bool:
    """Whether the database is already at `revision` (no alembic_version table: not yet)."""
    from sqlalchemy import text

    if revision is None:
        return False
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    except Exception:
        return False
    return rows == [revision]


def config(connection=None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade to `revision` in one transaction (serialized across processes); nothing (and no alembic import)
    when the database is already at the newest revision."""
    if revision == "head" and _at(engine, head_revision()):
        return
    from alembic import command
    from sqlalchemy import text

    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7411)"))
        command.upgrade(config(conn), revision)
