"""`labctl runner` on SQLite with real processes: requests drained exactly once by two racing runners, a
request no station can serve left queued with its reason, and a runner's restart (its run adopted while alive;
recovered and the request failed, never re-run, when the run died with it)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from queue_helpers import DATA, labctl, spawn, wait_until

from labctl.queue import submit
from labctl.store import Store, requests


@pytest.fixture
def sqlite_db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'labctl.db'}"


def _by_request(store: Store) -> dict[int, list[int]]:
    """request id -> the runs that recorded it (request.started on the run's chain)."""
    out: dict[int, list[int]] = {}
    for e in store.events():
        if e["kind"] == "request.started":
            out.setdefault(json.loads(e["data"])["request_id"], []).append(e["run_id"])
    return out


def test_two_runners_drain_each_request_exactly_once(sqlite_db: str, tmp_path: Path) -> None:
    with Store.open(sqlite_db) as store:
        ids = [submit(DATA / "wait.yaml", simulate=True, store=store) for _ in range(2)]
        ids.append(submit(DATA / "cycle.yaml", simulate=True, store=store))
        orphan = submit(DATA / "eis.yaml", simulate=True, store=store)  # station-pot has no eis
    args = ["runner", "--station", str(DATA / "station-pot.yaml"), "--simulate", "--once", "--db", sqlite_db]
    procs = [
        spawn(*args, "--max-parallel", "2", "--name", f"r{i}", log=tmp_path / f"r{i}.log") for i in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=150) == 0, (tmp_path / "r0.log").read_text() + (tmp_path / "r1.log").read_text()
    with Store.open(sqlite_db) as store:
        rows = {r["id"]: r for r in requests.listing(store)}
        assert {rows[i]["state"] for i in ids} == {"finished"}, rows
        started = _by_request(store)
        assert sorted(started) == sorted(ids) and all(len(v) == 1 for v in started.values())
        runs = store.runs()
        assert len(runs) == len(ids) and {r["state"] for r in runs} == {"completed"}
        assert sorted(rows[i]["run_id"] for i in ids) == sorted(r["id"] for r in runs)
        taken = [json.loads(e["data"])["request_id"] for e in store.events() if e["kind"] == "request.taken"]
        assert sorted(taken) == sorted(ids)  # one take each, whichever runner won it
        assert rows[orphan]["state"] == "queued"
        assert rows[orphan]["reason"].startswith("no station can serve it: ")
        assert "no eis" in rows[orphan]["reason"]
    shown = labctl("queue", "show", str(orphan), "--db", sqlite_db, "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["waiting"] == "no runner or worker is running"


def _start_long(sqlite_db: str, tmp_path: Path, seconds: int) -> tuple:
    with Store.open(sqlite_db) as store:
        rid = submit(
            DATA / "wait.yaml", parameters={"d": f"{seconds} s"}, simulate=True, realtime=True, store=store
        )
    runner = spawn(
        "runner",
        "--station",
        str(DATA / "station-pot.yaml"),
        "--simulate",
        "--db",
        sqlite_db,
        "--name",
        "bench",
        log=tmp_path / "runner.log",
    )

    def started() -> object:
        with Store.open(sqlite_db) as store:
            row = requests.raw(store, rid)
            return row.run_id is not None and store.run(row.run_id)["state"] == "running" and row

    row = wait_until(started, 60, "the request's run to be running")
    return rid, runner, row


@pytest.mark.slow
def test_restarted_runner_adopts_a_live_run(sqlite_db: str, tmp_path: Path) -> None:
    rid, runner, row = _start_long(sqlite_db, tmp_path, 6)
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=10)
    again = labctl(
        "runner",
        "--station",
        str(DATA / "station-pot.yaml"),
        "--simulate",
        "--once",
        "--name",
        "bench",
        "--db",
        sqlite_db,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    with Store.open(sqlite_db) as store:
        done = requests.raw(store, rid)
        assert done.state == "finished" and done.run_id == row.run_id
        assert [r["state"] for r in store.runs()] == ["completed"]


def test_run_dead_with_its_runner_is_recovered_and_request_failed(sqlite_db: str, tmp_path: Path) -> None:
    rid, runner, row = _start_long(sqlite_db, tmp_path, 60)
    runner.send_signal(signal.SIGKILL)
    os.kill(row.process["pid"], signal.SIGKILL)  # the PC went down: the run died too
    runner.wait(timeout=10)
    again = labctl(
        "runner",
        "--station",
        str(DATA / "station-pot.yaml"),
        "--simulate",
        "--once",
        "--name",
        "bench",
        "--db",
        sqlite_db,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    with Store.open(sqlite_db) as store:
        done = requests.raw(store, rid)
        assert (
            done.state == "failed" and "died and was recovered" in done.reason and "not re-run" in done.reason
        )
        runs = store.runs()
        assert [(r["id"], r["state"]) for r in runs] == [(row.run_id, "interrupted")]  # never started again
        kinds = [e["kind"] for e in store.events(row.run_id)]
        assert "run.recovered" in kinds and kinds.count("request.failed") == 1
