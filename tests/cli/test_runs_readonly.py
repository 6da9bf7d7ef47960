"""`labctl runs list` on SQLite reads through `labctl.store.readonly` (sqlite3, no SQLAlchemy): its rows must
be the SQLAlchemy store's rows for the same database and filters, its refusals the store's refusals, and a
database it does not know how to read (another revision, a URL with options) must go to the store."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.store import Store, StoreError, readonly
from labctl.store.db import make_engine
from labctl.store.migrate import head_revision, upgrade

NAMES = ["Li-In alloy", "Li-In alloy 2", "LiF 50%", "nitride_A", "a/b path", "100% _x_", "ÄÖ ünïcode",
         "li-in ALLOY"]


def _make(path: Path) -> str:
    """A store with runs in several states, odd protocol names (LIKE wildcards, the escape character,
    non-ASCII), samples or none, zero to three steps, started and ended times."""
    url = f"sqlite:///{path}"
    with Store.open(url) as s:
        for i, name in enumerate(NAMES * 2):
            run = s.create_run(
                protocol_name=name, protocol_path=f"p{i}.yaml", protocol_text="labctl: 1",
                parameters={"i": i},
                station_name="sim", station_text="name: sim", operator=f"op{i % 3}", mode="dry-run",
                seed=i if i % 4 else None, sample_id=f"S-{i % 5}" if i % 3 else None,
                steps=[{"index": k, "kind": "wait", "params": {"duration": 1.0}} for k in range(i % 4)],
            )
            if i % 3 == 1:
                s.set_run_state(run, "running")
            if i % 5 == 2:
                s.set_run_state(run, "failed", reason="short at 12 h")
    return url


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    path = tmp_path_factory.mktemp("ro") / "runs.db"
    mp = pytest.MonkeyPatch()
    mp.setenv("LABCTL_AUDIT_KEY", str(path.with_name("audit.key")))
    try:
        return _make(path), path
    finally:
        mp.undo()


def _both(url: str, **filters: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    con = readonly.connect(url)
    assert con is not None
    try:
        fast = readonly.list_runs(con, **filters)
    finally:
        con.close()
    with Store.open(url, read_only=True) as s:
        return fast, s.runs(**filters)


FILTERS = [
    {},
    {"state": "running"},
    {"state": "failed"},
    {"state": "nope"},
    {"protocol": "alloy"},
    {"protocol": "ALLOY"},
    {"protocol": "%"},
    {"protocol": "_"},
    {"protocol": "/"},
    {"protocol": "a/b"},
    {"protocol": "50%"},
    {"protocol": "ünï"},
    {"sample": "S-1"},
    {"sample": "S-9"},
    {"since": "2000-01-01"},
    {"since": "2999-01-01T12:00"},
    {"since": 0.0},
    {"limit": 3},
    {"state": "created", "protocol": "li", "sample": "S-2", "since": "2001-02-03"},
]


@pytest.mark.parametrize("filters", FILTERS, ids=[json.dumps(f) for f in FILTERS])
def test_rows_equal_the_store_rows(db: tuple[str, Path], filters: dict[str, Any]) -> None:
    fast, orm = _both(db[0], **filters)
    assert fast == orm
    assert [type(v) for r in fast for v in r.values()] == [type(v) for r in orm for v in r.values()]


def test_the_filters_select_something(db: tuple[str, Path]) -> None:
    """The comparison above is not between two empty lists."""
    fast, _ = _both(db[0])
    assert len(fast) == 2 * len(NAMES)
    assert {r["state"] for r in fast} == {"created", "running", "failed"}
    assert {r["n_steps"] for r in fast} == {0, 1, 2, 3}
    assert len(_both(db[0], protocol="%")[0]) == 4  # the wildcard is a literal


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet="%_/\\aAlLiI- 0%ü", min_size=1, max_size=5))
def test_any_protocol_substring_matches_as_the_store(db: tuple[str, Path], text: str) -> None:
    fast, orm = _both(db[0], protocol=text)
    assert fast == orm


def test_bad_since_is_the_same_error(db: tuple[str, Path]) -> None:
    con = readonly.connect(db[0])
    assert con is not None
    with pytest.raises(StoreError) as fast:
        readonly.list_runs(con, since="yesterday")
    con.close()
    with Store.open(db[0], read_only=True) as s, pytest.raises(StoreError) as orm:
        s.runs(since="yesterday")
    assert str(fast.value) == str(orm.value)


def _refusal(url: str) -> tuple[str, str]:
    with pytest.raises(StoreError) as fast:
        readonly.connect(url)
    with pytest.raises(StoreError) as orm:
        Store.open(url, read_only=True)
    return str(fast.value), str(orm.value)


def test_refusals_are_the_store_refusals(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE customers (id INTEGER)")
    con.commit()
    con.close()
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    (tmp_path / "folder.db").mkdir()
    for path, says in [(tmp_path / "missing.db", "no such database"), (other, "not a labctl database"),
                       (empty, "not a labctl database (it is empty)"),
                       (junk, "is not a database labctl can read"),
                       (tmp_path / "folder.db", "is not a database file")]:
        fast, orm = _refusal(f"sqlite:///{path}")
        assert fast == orm and says in fast, (fast, orm)
    assert other.read_bytes()[:16] == b"SQLite format 3\x00"
    assert sqlite3.connect(other).execute("PRAGMA journal_mode").fetchone() == ("delete",)  # left as it was


def test_plain_path_and_env_resolve_as_the_store(
    db: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, path = db
    for given_url in (str(path), url):
        con = readonly.connect(given_url)
        assert con is not None
        con.close()
    monkeypatch.setenv("LABCTL_DB", str(path))
    con = readonly.connect(None)
    assert con is not None
    assert readonly.list_runs(con) == _both(url)[1]
    con.close()


def test_what_the_reader_leaves_to_the_store(tmp_path: Path, db: tuple[str, Path]) -> None:
    """An older schema (the store migrates it), a URL with options or a server: None, the store decides."""
    old = tmp_path / "old.db"
    engine = make_engine(f"sqlite:///{old}")
    upgrade(engine, "0006")
    engine.dispose()
    assert head_revision() != "0006"
    assert readonly.connect(f"sqlite:///{old}") is None
    assert readonly.connect(f"sqlite:///{db[1]}?timeout=5") is None
    assert readonly.connect("postgresql://nobody@localhost/none") is None
    assert readonly.sqlite_file("sqlite:///rel/x.db") == Path("rel/x.db")
    assert readonly.sqlite_file("sqlite:////abs/a%20b.db") == Path("/abs/a b.db")
    assert readonly.sqlite_file("sqlite://") is None and readonly.sqlite_file("sqlite:///:memory:") is None


def test_cli_list_falls_back_to_the_store_for_an_old_schema(
    tmp_path: Path, labctl: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    old = tmp_path / "old.db"
    engine = make_engine(f"sqlite:///{old}")
    upgrade(engine, "0006")
    engine.dispose()
    r = labctl("runs", "list", "--db", str(old), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []
    con = sqlite3.connect(old)
    assert [x[0] for x in con.execute("SELECT version_num FROM alembic_version")] == [head_revision()]
    con.close()


def test_cli_list_json_and_csv_are_the_store_rows(
    db: tuple[str, Path], labctl: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    url, _ = db
    r = labctl("runs", "list", "--db", url, "--json", "--protocol", "alloy")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == _both(url, protocol="alloy")[1]
    r = labctl("runs", "list", "--db", url, "--csv", "--state", "nope")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().split(",")[0] == "id" and r.stdout.count("\n") == 1  # header only
