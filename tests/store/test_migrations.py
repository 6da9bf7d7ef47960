"""Alembic: an empty database and a database of the previous revision both upgrade to head."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from labctl.store import Store, StoreError, migrate
from labctl.store.db import make_engine

HEAD = ScriptDirectory.from_config(migrate.config()).get_current_head()
TABLES = {"runs", "steps", "events", "io", "blobs", "chunks", "samples", "leases", "control"}


def test_empty_database_upgrades_to_head(db_url: str) -> None:
    with Store.open(db_url) as s:
        insp = inspect(s.engine)
        assert set(insp.get_table_names()) >= TABLES
        with s.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD
        assert "codec" in {c["name"] for c in insp.get_columns("chunks")}
        assert "codec" in {c["name"] for c in insp.get_columns("blobs")}
        for table in ("runs", "leases"):  # 0004: which process (pid + start time + boot)
            assert {"proc_started", "boot_id"} <= {c["name"] for c in insp.get_columns(table)}
    with Store.open(db_url) as s:  # opening again is a no-op
        assert s.runs() == []


def test_previous_revision_upgrades_with_its_data(db_url: str, new_run) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(engine, "0001")
    old_chunk = zlib.compress(np.array([1.0, 2.0, 0.5, 0.25], "<f8").tobytes())
    with engine.begin() as conn:
        assert "codec" not in {c["name"] for c in inspect(conn).get_columns("chunks")}
        conn.execute(
            text(
                "INSERT INTO runs (protocol_name, protocol_path, protocol_text, protocol_sha256, "
                "parameters, station_name, station_text, operator, host, pid, versions, mode, state, "
                "created_at, exit_reason) VALUES "
                "('old', '', '', '', '{}', '', '', 'ada', 'h', 1, '{}', 'bench', 'completed', 1.0, '')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO chunks (run_id, stream, seq, n, columns, data) "
                "VALUES (1, 'cycling', 0, 2, '[\"t\", \"voltage\"]', :d)"
            ),
            {"d": old_chunk},
        )
        conn.execute(
            text("INSERT INTO blobs (sha256, length, data) VALUES ('ab', 5000, :d)"), {"d": b"x" * 5000}
        )
        conn.execute(
            text(
                "INSERT INTO io (run_id, t, instrument, direction, data, length, sha256, note) "
                "VALUES (1, 0.5, 'potentiostat', 'rx', NULL, 5000, 'ab', '')"
            )
        )
    engine.dispose()
    with Store.open(db_url) as s:
        with s.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD
        assert s.run(1)["protocol_name"] == "old"
        got = s.measurements(1, "cycling")
        assert got["t"].tolist() == [1.0, 2.0] and got["voltage"].tolist() == [0.5, 0.25]
        assert [r["bytes"] for r in s.io(1)] == [b"x" * 5000]  # a blob of revision 0001, uncompressed
        rid = new_run(s)  # and the upgraded database takes new runs, audited
        assert rid == 2 and s.verify().ok


def test_downgrade_and_upgrade_again(db_url: str) -> None:
    with Store.open(db_url) as s:
        engine = s.engine
        from alembic import command

        with engine.begin() as conn:
            command.downgrade(migrate.config(conn), "0001")
        assert "codec" not in {c["name"] for c in inspect(engine).get_columns("chunks")}
        migrate.upgrade(engine)
        assert "codec" in {c["name"] for c in inspect(engine).get_columns("chunks")}


def test_bad_urls_are_clear_errors(tmp_path) -> None:
    with pytest.raises(StoreError, match="unsupported database 'mysql'"):
        Store.open("mysql://x/y")
    with pytest.raises(StoreError, match="needs a SQLite file"):
        Store.open("sqlite://")
    with pytest.raises(StoreError, match="cannot open the store"):
        Store.open("postgresql+psycopg://nobody@127.0.0.1:1/none")
    (tmp_path / "not-a-db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        Store.open(str(tmp_path / "not-a-db"))


def test_sqlite_settings_are_asserted(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labctl.store import db

    with Store.open(str(tmp_path / "ok.db")) as s, s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == db.BUSY_TIMEOUT_MS
    monkeypatch.setitem(db.SQLITE_PRAGMAS, "busy_timeout", 12345)
    with pytest.raises(StoreError, match=r"SQLite settings not in effect: busy_timeout=10000 \(want 12345\)"):
        Store.open(str(tmp_path / "ok.db"))


def test_default_location_and_env(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labctl.store.db import resolve_url

    monkeypatch.chdir(tmp_path)
    assert resolve_url(None) == f"sqlite:///{tmp_path / 'labctl.db'}"
    monkeypatch.setenv("LABCTL_DB", str(tmp_path / "env.db"))
    assert resolve_url(None) == f"sqlite:///{tmp_path / 'env.db'}"
    assert resolve_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    with Store.open() as s:
        assert s.url.endswith("env.db")
