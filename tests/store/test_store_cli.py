"""`labctl runs list|show|export|io` and `labctl recover` on a recorded run."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from labctl.cli import app
from labctl.drivers.transport import IORecord
from labctl.store import Store, StoreError, audit

BDF_COLUMNS = [
    "test_time_second",
    "voltage_volt",
    "current_ampere",
    "cycle_count",
    "step_count",
    "unix_time_second",
]


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    from labctl.cli import console

    monkeypatch.setattr(console, "_width", 200)


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return getattr(result.exception, "exit_code", 99), result.output + str(result.exception)
    return result.exit_code, result.output


@pytest.fixture
def recorded(store: Store, new_run) -> int:
    """A completed dry run with 2 steps, cycling data and a transcript."""
    rid = new_run(store, steps=2, sample_id="LIN-041")
    new_run(store, sample_id="LIN-042", protocol_name="Dip coat LiF")
    store.set_run_state(rid, "running")
    store.acquire_leases(rid, ["socket://127.0.0.1:5025"])
    sid = store.start_step(rid, 0)
    rec = store.io_recorder(rid)
    rec(IORecord(0.1, "potentiostat", "tx", b":READ?\n"))
    rec(IORecord(0.2, "potentiostat", "rx", b"1.5E-2\n"))
    rec(IORecord(0.3, "stage", "tx", b"?"))
    t = np.arange(0.0, 10.0)
    with store.measurement_writer(rid, sid, "cycling") as w:
        w.append(t=t, voltage=0.01 * t, current=2e-3, cycle=np.floor(t / 4), half_cycle=np.floor(t / 2))
    store.finish_step(sid, "done", achieved={"duration": 1.02})
    store.release_leases(rid)
    store.set_run_state(rid, "completed", reason="all steps done")
    store.flush()
    return rid


def test_runs_list(db_url: str, recorded: int) -> None:
    code, out = invoke("runs", "list", "--db", db_url, "--json")
    assert code == 0
    rows = json.loads(out)
    assert [(r["id"], r["state"], r["sample_id"]) for r in rows] == [
        (recorded, "completed", "LIN-041"),
        (recorded + 1, "created", "LIN-042"),
    ]
    code, out = invoke("runs", "list", "--db", db_url, "--json", "--state", "completed")
    assert [r["id"] for r in json.loads(out)] == [recorded]
    code, out = invoke("runs", "list", "--db", db_url, "--json", "--protocol", "Dip", "--since", "2020-01-01")
    assert [r["id"] for r in json.loads(out)] == [recorded + 1]
    code, out = invoke("runs", "list", "--db", db_url, "--sample", "LIN-041")
    assert code == 0 and "1 runs" in out and "Li-In alloy" in out and "completed" in out
    code, out = invoke("runs", "list", "--db", db_url, "--since", "last week")
    assert code == 1 and "ISO date" in out


def test_runs_show(db_url: str, recorded: int) -> None:
    code, out = invoke("runs", "show", str(recorded), "--db", db_url, "--json")
    assert code == 0
    info = json.loads(out)
    assert info["exit_reason"] == "all steps done"
    assert info["steps"][0]["params"] == {"duration": {"value": 1.0, "unit": "s"}}  # SI with the unit's name
    assert info["steps"][0]["achieved"] == {"duration": {"value": 1.02, "unit": "s"}}
    assert info["instruments"] == {
        "leases": [{"instrument": "socket://127.0.0.1:5025", "held": False}],
        "io": [{"instrument": "potentiostat", "records": 2}, {"instrument": "stage", "records": 1}],
    }
    assert info["streams"] == [{"stream": "cycling", "step_id": info["steps"][0]["id"], "points": 10}]
    kinds = [e["kind"] for e in info["events"]]
    assert kinds[0] == "run.created" and kinds[-1] == "run.state" and "step.finished" in kinds
    last = info["events"][-1]["data"]
    assert last == {"from": "running", "to": "completed", "reason": "all steps done", "at": last["at"]}
    assert isinstance(last["at"], float)
    code, out = invoke("runs", "show", str(recorded), "--db", db_url)
    assert code == 0
    for text in (
        "commanded vs achieved",
        '{"duration": 1.02}',
        "all steps done",
        "potentiostat (2 records)",
        "socket://127.0.0.1:5025",
        "step.finished",
        "cycling",
    ):
        assert text in out, text
    code, out = invoke("runs", "show", "99", "--db", db_url)
    assert code == 1 and "no run 99" in out


def test_runs_export_csv_has_battery_data_format_columns(db_url: str, recorded: int, tmp_path: Path) -> None:
    out_file = tmp_path / "run.csv"
    code, out = invoke(
        "runs", "export", str(recorded), "--format", "csv", "--out", str(out_file), "--db", db_url
    )
    assert code == 0 and "10 rows x 6 columns" in out
    with out_file.open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == BDF_COLUMNS
    assert rows[5][:5] == ["4.0", "0.04", "0.002", "1", "2"]
    start = json.loads(invoke("runs", "show", str(recorded), "--db", db_url, "--json")[1])["started_at"]
    from datetime import datetime

    assert float(rows[5][5]) == pytest.approx(datetime.fromisoformat(start).timestamp() + 4.0)


def test_runs_export_parquet(db_url: str, recorded: int, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    out_file = tmp_path / "run.parquet"
    code, _ = invoke(
        "runs", "export", str(recorded), "--format", "parquet", "-o", str(out_file), "--db", db_url
    )
    assert code == 0
    table = pq.read_table(out_file)
    assert table.column_names == BDF_COLUMNS
    assert table.column("cycle_count").to_pylist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    assert str(table.schema.field("cycle_count").type) == "int64"


def test_runs_export_errors(db_url: str, recorded: int, tmp_path: Path) -> None:
    code, out = invoke("runs", "export", str(recorded), "--format", "xlsx", "--db", db_url)
    assert code == 2 and "use csv or parquet" in out
    code, out = invoke("runs", "export", str(recorded), "--stream", "eis", "--db", db_url)
    assert code == 1 and "no 'eis' data (it has: cycling)" in out
    code, out = invoke(
        "runs", "export", str(recorded), "-o", str(tmp_path / "no" / "dir.csv"), "--db", db_url
    )
    assert code == 1 and "cannot write" in out


def test_runs_io(db_url: str, recorded: int) -> None:
    code, out = invoke("runs", "io", str(recorded), "--db", db_url, "--json")
    assert code == 0
    rows = json.loads(out)
    assert [(r["instrument"], r["direction"], r["data"]) for r in rows] == [
        ("potentiostat", "tx", ":READ?\n"),
        ("potentiostat", "rx", "1.5E-2\n"),
        ("stage", "tx", "?"),
    ]
    code, out = invoke("runs", "io", str(recorded), "--db", db_url, "--instrument", "stage")
    assert code == 0 and "b'?'" in out and "READ" not in out


def test_recover_marks_dead_runs(db_url: str, store: Store, new_run) -> None:
    import subprocess
    import sys

    from sqlalchemy import text

    rid = new_run(store)
    store.set_run_state(rid, "running")
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE runs SET pid = :p WHERE id = :r"), {"p": p.pid, "r": rid})
    code, out = invoke("recover", "--db", db_url, "--json")
    assert code == 0 and json.loads(out)[0]["run_id"] == rid
    assert store.run(rid)["state"] == "interrupted"
    code, out = invoke("recover", "--db", db_url)
    assert code == 0 and "no dead runs" in out


# -- read-only commands never create or adopt a database (issue 14.12) --------------------------------

READERS = [
    ("audit", "verify"),
    ("audit", "verify", "1"),
    ("audit", "checkpoint"),
    ("runs", "list"),
    ("runs", "show", "1"),
    ("runs", "io", "1"),
]


@pytest.mark.parametrize("cmd", READERS, ids=" ".join)
def test_readers_refuse_a_mistyped_path(tmp_path: Path, cmd: tuple[str, ...]) -> None:
    missing = tmp_path / "typo" / "labctl.dbb"
    code, out = invoke(*cmd, "--db", str(missing))
    assert code != 0 and "no such database" in out and str(missing) in " ".join(out.split()), out
    assert not missing.exists() and not missing.parent.exists()


@pytest.mark.parametrize("cmd", READERS, ids=" ".join)
def test_readers_leave_another_applications_sqlite_file_alone(tmp_path: Path, cmd: tuple[str, ...]) -> None:
    other = tmp_path / "inventory.sqlite"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE bottles (id INTEGER PRIMARY KEY, name TEXT)")
    before = other.read_bytes()
    code, out = invoke(*cmd, "--db", str(other))
    assert code != 0 and "not a labctl database" in out, out
    assert other.read_bytes() == before  # no tables added, not even switched to WAL
    empty = tmp_path / "empty.db"
    empty.touch()
    code, out = invoke(*cmd, "--db", str(empty))
    assert code != 0 and "not a labctl database (it is empty)" in out, out
    assert empty.stat().st_size == 0


def test_ids_and_seeds_beyond_64_bits_are_clear_errors(
    db_url: str, recorded: int, store: Store, new_run
) -> None:
    big = str(2**63)
    for cmd in [("runs", "show", big), ("audit", "verify", big), ("runs", "io", big)]:
        code, out = invoke(*cmd, "--db", db_url)
        assert code not in (0, 99) and "does not fit the store" in out and "Traceback" not in out, (cmd, out)
    with pytest.raises(StoreError, match="seed 9223372036854775808 does not fit"):
        new_run(store, seed=2**63)
    new_run(store, seed=2**63 - 1)  # the largest that fits is kept


def test_an_audit_key_path_that_is_a_directory_is_a_clear_error(
    db_url: str, recorded: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABCTL_AUDIT_KEY", str(tmp_path))
    code, out = invoke("audit", "verify", "--db", db_url)
    assert code not in (0, 99) and f"audit key {tmp_path} is a directory" in " ".join(out.split()), out
    with Store.open(db_url) as s, pytest.raises(StoreError, match="is a directory"):
        s.check_audit_key()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("LABCTL_AUDIT_KEY", str(blocker / "audit.key"))  # its directory is a file
    fresh = f"sqlite:///{tmp_path / 'new.db'}"
    with Store.open(fresh) as s, pytest.raises(StoreError, match="cannot create"):
        s.check_audit_key()


def test_audit_key_names_the_fingerprint_in_use_and_the_expected_one(
    db_url: str, recorded: int, audit_key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = audit.fingerprint(audit_key.read_bytes())
    code, out = invoke("audit", "key", "--db", db_url)
    assert code == 0 and want in out and "expects this key" in out, out
    other = tmp_path / "other.key"
    other.write_bytes(os.urandom(32))
    monkeypatch.setenv("LABCTL_AUDIT_KEY", str(other))
    code, out = invoke("audit", "key", "--db", db_url)
    assert code == 1 and audit.fingerprint(other.read_bytes()) in out, out
    assert f"another key: fingerprint {want}" in out, out
