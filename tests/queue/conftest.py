"""Queue fixtures: the store suite's real PostgreSQL server and per-test databases (reused, not copied),
test stations and short protocols in `data/`, and helpers to run `labctl` processes."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "labctl_store_fixtures", Path(__file__).resolve().parent.parent / "store" / "conftest.py"
)
store_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(store_fixtures)
pg_server = store_fixtures.pg_server
audit_key = store_fixtures.audit_key
db_url = store_fixtures.db_url
new_run = store_fixtures.new_run
fresh_pg_database = store_fixtures.fresh_pg_database


@pytest.fixture(autouse=True)
def spool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "spool"
    monkeypatch.setenv("LABCTL_SPOOL", str(path))
    return path


@pytest.fixture
def store(db_url: str) -> Iterator:
    from labctl.store import Store

    s = Store.open(db_url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def fresh_pg():
    """`fresh_pg(server)` -> the URL of a new empty database on the store suite's server."""
    return fresh_pg_database


@pytest.fixture
def pg_tools():
    """The store suite's fixture module (its PostgreSQL helpers: binaries, the user to run them as)."""
    return store_fixtures
