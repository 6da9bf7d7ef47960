"""Tampering with the database a real `labctl run --simulate` wrote: `labctl audit verify` must catch it.

One real run (Li-In immersion, assembly, OCV, EIS, 20 cycles, EIS) writes the database once; every scenario
edits its own copy the way an attacker with write access would (dropping the append-only triggers first),
then runs `labctl audit verify --all`. Events are protected by the HMAC chain; runs, steps and measurement
chunks and the instrument transcript by their binding to it (`labctl.store.seals`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from labctl.cli import app
from labctl.store import ingest

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = ROOT / "protocols" / "li-in-alloy-cycle.yaml"


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> tuple[Path, Path]:
    """(database, audit key) of one real dry run, plus a checkpoint taken when it ended."""
    where = tmp_path_factory.mktemp("real-run")
    db, key = where / "run.db", where / "audit.key"
    env = {**os.environ, "LABCTL_AUDIT_KEY": str(key), "LABCTL_DB": str(db)}
    done = subprocess.run(
        [sys.executable, "-m", "labctl", "run", str(PROTOCOL), "--simulate", "-p", "cycles=20",
         "--seed", "11", "--json"],
        env=env, cwd=where, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "completed"
    return db, key


@pytest.fixture
def copy(real_run, tmp_path, monkeypatch) -> Path:
    db, key = real_run
    monkeypatch.setenv("LABCTL_AUDIT_KEY", str(key))
    out = tmp_path / "copy.db"
    shutil.copy(db, out)
    return out


def verify(db: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["audit", "verify", "--all", "--db", str(db), *args])
    return result.exit_code, result.output


def sql(db: Path, statement: str, *params: object) -> None:
    with sqlite3.connect(db) as con:
        con.execute("DROP TRIGGER IF EXISTS events_no_update")
        con.execute("DROP TRIGGER IF EXISTS events_no_delete")
        con.execute(statement, params)


def one(db: Path, query: str, *params: object) -> tuple:
    with sqlite3.connect(db) as con:
        return con.execute(query, params).fetchone()


def edit_chunk(db: Path, change: Callable[[dict[str, np.ndarray]], None]) -> None:
    """Decode the first cycling chunk, change its values, store it re-encoded like the writer does."""
    cid, names, n, codec, data = one(
        db, "SELECT id, columns, n, codec, data FROM chunks WHERE stream = 'cycling' ORDER BY seq LIMIT 1"
    )
    cols = ingest.decode(data, json.loads(names), n, codec)
    change(cols)
    sql(db, "UPDATE chunks SET data = ?, n = ? WHERE id = ?", ingest.encode(cols), len(cols["t"]), cid)


def test_the_untouched_database_verifies(copy):
    code, out = verify(copy)
    assert code == 0, out
    assert "records match the chain" in out and "sealed measurement streams" in out
    assert "unsealed" not in out


def _flip_event_byte(db: Path) -> None:
    seq, data = one(db, "SELECT seq, data FROM events WHERE kind = 'step.finished' ORDER BY seq LIMIT 1")
    sql(db, "UPDATE events SET data = ? WHERE seq = ?", data.replace("60", "61", 1), seq)


def _forge_tail_rehashed(db: Path) -> None:
    """Edit an event and re-link the rest with plain sha256 (no key): the attacker's best effort."""
    rows = []
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT seq, run_id, kind, actor, t, data FROM events ORDER BY seq").fetchall()
    prev = "0" * 64
    for seq, rid, kind, actor, t, data in rows:
        if kind == "run.created":
            data = data.replace("root", "eve")
        h = hashlib.sha256(f"{seq}|{rid}|{kind}|{actor}|{t!r}|{data}|{prev}".encode()).hexdigest()
        sql(db, "UPDATE events SET data = ?, prev_hash = ?, hash = ? WHERE seq = ?", data, prev, h, seq)
        prev = h


EVENT_TAMPER: dict[str, Callable[[Path], None]] = {
    "flipped value in a step.finished event": _flip_event_byte,
    "deleted state change": lambda db: sql(
        db, "DELETE FROM events WHERE seq = (SELECT MIN(seq) FROM events WHERE kind = 'run.state')"
    ),
    "replayed event appended": lambda db: sql(
        db,
        "INSERT INTO events (seq, run_id, kind, actor, t, data, prev_hash, hash) "
        "SELECT (SELECT MAX(seq) FROM events) + 1, run_id, kind, actor, t, data, prev_hash, hash "
        "FROM events WHERE seq = 3",
    ),
    "operator changed in an event": lambda db: sql(
        db, "UPDATE events SET actor = 'eve' WHERE seq = (SELECT MAX(seq) FROM events WHERE actor != 'eve')"
    ),
    "whole chain re-hashed without the key": _forge_tail_rehashed,
}


def _change_voltage(cols: dict[str, np.ndarray]) -> None:
    cols["voltage"][100] += 0.010  # 10 mV on one point of the first cycle


RECORD_TAMPER: dict[str, Callable[[Path], None]] = {
    "one voltage changed by 10 mV": lambda db: edit_chunk(db, _change_voltage),
    "points cut from a chunk": lambda db: edit_chunk(
        db, lambda c: [c.__setitem__(k, v[:-10]) for k, v in list(c.items())]
    ),
    "a measurement chunk deleted": lambda db: sql(
        db, "DELETE FROM chunks WHERE id = (SELECT MAX(id) FROM chunks WHERE stream = 'cycling')"
    ),
    "a chunk moved to another step": lambda db: sql(
        db, "UPDATE chunks SET step_id = step_id + 1 WHERE id = (SELECT MIN(id) FROM chunks)"
    ),
    "achieved immersion time edited": lambda db: sql(
        db,
        "UPDATE steps SET achieved = json_set(achieved, '$.immersion_time_s', "
        "json_extract(achieved, '$.immersion_time_s') - 1.5) WHERE kind = 'immerse'",
    ),
    "step status edited": lambda db: sql(
        db, "UPDATE steps SET status = 'deviated' WHERE id = (SELECT MIN(id) FROM steps)"
    ),
    "step reason rewritten": lambda db: sql(db, "UPDATE steps SET reason = 'all fine' WHERE kind = 'eis'"),
    "protocol text and its hash replaced": lambda db: sql(
        db,
        "UPDATE runs SET protocol_text = ?, protocol_sha256 = ?",
        "labctl: 1\nname: other\n",
        hashlib.sha256(b"labctl: 1\nname: other\n").hexdigest(),
    ),
    "station text edited": lambda db: sql(db, "UPDATE runs SET station_text = station_text || '#'"),
    "run state edited": lambda db: sql(db, "UPDATE runs SET state = 'aborted'"),
    "a command in the transcript rewritten": lambda db: sql(
        db, "UPDATE io SET data = CAST('SOUR:CURR 0.1\n' AS BLOB) "
        "WHERE id = (SELECT MIN(id) FROM io WHERE direction = 'tx' AND instrument = 'potentiostat')"
    ),
    "a transcript row deleted": lambda db: sql(db, "DELETE FROM io WHERE id = (SELECT MIN(id) + 5 FROM io)"),
    # everything else the run row holds (issue 14.5)
    "dry run relabelled as a bench run": lambda db: sql(db, "UPDATE runs SET mode = 'bench'"),
    "operator edited": lambda db: sql(db, "UPDATE runs SET operator = 'eve'"),
    "a parameter edited": lambda db: sql(
        db, "UPDATE runs SET parameters = json_set(parameters, '$.cycles', '5')"
    ),
    "sample id edited": lambda db: sql(db, "UPDATE runs SET sample_id = 'LIN-0002'"),
    "seed edited": lambda db: sql(db, "UPDATE runs SET seed = 12"),
    "host edited": lambda db: sql(db, "UPDATE runs SET host = 'bench-pc'"),
    "versions edited": lambda db: sql(db, "UPDATE runs SET versions = json_set(versions, '$.labctl', '9.9')"),
    "commanded immersion depth edited": lambda db: sql(
        db, "UPDATE steps SET params = json_set(params, '$.depth', 0.015) WHERE kind = 'immerse'"
    ),
    "commanded values and their summary edited together": lambda db: sql(
        db,
        "UPDATE steps SET params = json_set(params, '$.cycles', 10), "
        "summary = json_set(summary, '$.commanded.cycles', 10) WHERE kind = 'cycle_symmetric'",
    ),
    "step summary edited": lambda db: sql(
        db, "UPDATE steps SET summary = json_set(summary, '$.points', 100) WHERE kind = 'ocv'"
    ),
    "creation time moved": lambda db: sql(db, "UPDATE runs SET created_at = created_at - 86400"),
    "start time moved": lambda db: sql(db, "UPDATE runs SET started_at = started_at - 3600"),
    "end time moved": lambda db: sql(db, "UPDATE runs SET ended_at = ended_at + 3600"),
    "exit reason rewritten": lambda db: sql(db, "UPDATE runs SET exit_reason = 'operator abort'"),
    "a step's start time moved": lambda db: sql(
        db, "UPDATE steps SET started_at = started_at - 60 WHERE kind = 'immerse'"
    ),
    "a step's end time moved": lambda db: sql(
        db, "UPDATE steps SET ended_at = ended_at + 60 WHERE kind = 'ocv'"
    ),
    "a bulk reply's bytes replaced": lambda db: sql(
        db, "UPDATE blobs SET data = ? WHERE rowid = (SELECT MIN(rowid) FROM blobs)",
        zlib.compress(b"#0" + bytes(800) + b"\n"),
    ),
}


@pytest.mark.parametrize("name", sorted(EVENT_TAMPER))
def test_event_tamper_is_caught_by_the_chain(copy, name):
    EVENT_TAMPER[name](copy)
    code, out = verify(copy)
    assert code == 1 and "audit chain BROKEN" in out, out


NAMED = {  # what verify must name for the scenarios of the whole run record
    "dry run relabelled as a bench run": "mode differs",
    "operator edited": "operator differs",
    "a parameter edited": "parameters differs",
    "sample id edited": "sample_id differs",
    "seed edited": "seed differs",
    "host edited": "host differs",
    "versions edited": "versions differs",
    "commanded immersion depth edited": "commanded values differ",
    "commanded values and their summary edited together": "commanded values differ",
    "step summary edited": "summary differs",
    "creation time moved": "created_at differs",
    "start time moved": "start time differs",
    "end time moved": "end time differs",
    "exit reason rewritten": "exit reason differs",
    "a step's start time moved": "start time differs from its step.started",
    "a step's end time moved": "end time differs from its step.finished",
}


@pytest.mark.parametrize("name", sorted(RECORD_TAMPER))
def test_record_tamper_is_caught_by_its_binding_to_the_chain(copy, name):
    RECORD_TAMPER[name](copy)
    code, out = verify(copy)
    assert code == 1, out
    assert "audit chain OK" in out and "records DO NOT match the chain" in out, out
    assert NAMED.get(name, "") in " ".join(out.split()), out


def test_a_run_with_another_key_is_refused_before_it_starts(copy, tmp_path):
    """The key's fingerprint is the chain's first event: a run holding another existing key is refused
    before it records anything, naming the key file, both fingerprints and LABCTL_AUDIT_KEY."""
    other = tmp_path / "other.key"
    other.write_bytes(os.urandom(32))
    before = one(copy, "SELECT COUNT(*), MAX(seq) FROM events")
    env = {**os.environ, "LABCTL_AUDIT_KEY": str(other), "LABCTL_DB": str(copy)}
    proto = ROOT / "protocols" / "li-in-alloy-cycle.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "labctl", "run", str(proto), "--simulate", "-p", "cycles=1"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    msg = " ".join((done.stdout + done.stderr).split())
    assert done.returncode != 0 and "Traceback" not in msg, msg
    want = json.loads(one(copy, "SELECT data FROM events WHERE seq = 1")[0])["fingerprint"]
    for part in (str(other), f"expects fingerprint {want[:16]}", "LABCTL_AUDIT_KEY"):
        assert part in msg, msg
    assert one(copy, "SELECT COUNT(*), MAX(seq) FROM events") == before
    assert one(copy, "SELECT COUNT(*) FROM runs") == (1,)
    code, out = verify(copy)
    assert code == 0, out


def test_cut_tail_is_caught_by_a_checkpoint_kept_outside(copy, tmp_path):
    checkpoint = tmp_path / "head.json"
    result = CliRunner().invoke(app, ["audit", "checkpoint", "--out", str(checkpoint), "--db", str(copy)])
    assert result.exit_code == 0, result.output
    sql(copy, "DELETE FROM events WHERE seq > (SELECT MAX(seq) - 3 FROM events)")
    code, out = verify(copy, "--checkpoint", str(checkpoint))
    assert code == 1 and "truncated" in out, out
