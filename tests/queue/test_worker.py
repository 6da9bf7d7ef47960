"""Bench workers on procrastinate against the real PostgreSQL the store suite starts: several `labctl worker`
processes with different dry-run stations; each request ran exactly once on a station that can serve it; a
request no worker can serve stays queued with its reason; kill -9 of a worker mid-run; SIGTERM leaves runs
running."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from queue_helpers import DATA, spawn, wait_until

from labctl.queue import submit
from labctl.store import Store, leases, requests

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_db(pg_server: str, request: pytest.FixtureRequest) -> str:
    url = request.getfixturevalue("fresh_pg")(pg_server)
    Store.open(url).close()  # migrated before the workers race to open it
    return url


class Workers:
    def __init__(self, db: str, tmp_path: Path) -> None:
        self.db, self.tmp, self.procs = db, tmp_path, {}

    def start(self, name: str, station: str, *extra: str) -> None:
        args = ["worker", "--station", str(DATA / station), "--simulate", "--name", name, "--db", self.db]
        self.procs[name] = spawn(*args, *extra, log=self.tmp / f"{name}.log")

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def wait_alive(self, *names: str) -> None:
        def up() -> bool:
            with Store.open(self.db) as store:
                return set(names) <= {w.name for w in requests.live_workers(store)}

        try:
            wait_until(up, 60, f"workers {names} to register")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n" + "\n".join(self.log(n) for n in names)) from None

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)


@pytest.fixture
def workers(pg_db: str, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(pg_db, tmp_path)
    try:
        yield w
    finally:
        w.stop_all()


def _ended(db: str, ids: list[int]) -> bool:
    with Store.open(db) as store:
        return all(requests.is_ended(requests.raw(store, i).state) for i in ids)


def test_workers_take_only_what_their_station_serves_each_once(workers: Workers) -> None:
    db = workers.db
    workers.start("pot", "station-pot.yaml", "--max-parallel", "2")
    workers.start("eis", "station-eis.yaml", "--max-parallel", "2")
    workers.wait_alive("pot", "eis")
    with Store.open(db) as store:
        cyc = [submit(DATA / "cycle.yaml", simulate=True, store=store)]
        eis = [submit(DATA / "eis.yaml", simulate=True, store=store)]
        any_ = [submit(DATA / "wait.yaml", simulate=True, store=store) for _ in range(2)]
        stage = submit(DATA / "stage.yaml", simulate=True, store=store)
    ids = cyc + eis + any_
    wait_until(lambda: _ended(db, ids), 120, "all servable requests to end")
    with Store.open(db) as store:
        rows = {i: requests.raw(store, i) for i in [*ids, stage]}
        assert {rows[i].state for i in ids} == {"finished"}, {i: rows[i].reason for i in ids}
        assert {rows[i].worker for i in cyc} == {"pot"} and {rows[i].worker for i in eis} == {"eis"}
        runs = store.runs()
        assert len(runs) == len(ids) and {r["state"] for r in runs} == {"completed"}
        assert sorted(rows[i].run_id for i in ids) == sorted(r["id"] for r in runs)
        by_run = {r["id"]: r["station_name"] for r in runs}
        assert {by_run[rows[i].run_id] for i in cyc} == {"bench-pot"}
        assert {by_run[rows[i].run_id] for i in eis} == {"bench-eis"}
        taken = [json.loads(e["data"])["request_id"] for e in store.events() if e["kind"] == "request.taken"]
        assert sorted(taken) == sorted(ids)
    shown = json.loads(invoke("queue", "show", str(stage), "--db", db, "--json"))
    assert shown["state"] == "queued"
    assert shown["waiting"] == (
        "no station can serve it: eis (bench-eis): no stage | pot (bench-pot): no stage"
    )
    listed = json.loads(invoke("workers", "--db", db, "--json"))
    assert {(w["name"], w["station_name"], w["alive"]) for w in listed} == {
        ("pot", "bench-pot", True),
        ("eis", "bench-eis", True),
    }
    for name in ("pot", "eis"):
        workers.procs[name].send_signal(signal.SIGTERM)
        assert workers.procs[name].wait(timeout=30) == 0, workers.log(name)
    with Store.open(db) as store:
        assert {w.name: w.state for w in _rows(store)} == {"pot": "stopped", "eis": "stopped"}


def invoke(*args: str) -> str:
    """The CLI in this process (its output; a failure raises)."""
    from typer.testing import CliRunner

    from labctl.cli import app

    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output + str(res.exception)
    return res.output


def _rows(store: Store) -> list:
    from sqlalchemy import select

    from labctl.store.models import Worker

    with store.engine.connect() as conn:
        return conn.execute(select(Worker.name, Worker.state)).all()


def _running(db: str, rid: int) -> object:
    with Store.open(db) as store:
        row = requests.raw(store, rid)
        return row.run_id is not None and store.run(row.run_id)["state"] == "running" and row


def test_kill9_of_a_worker_mid_run_recovers_and_fails_the_request(workers: Workers) -> None:
    db = workers.db
    workers.start("pot", "station-pot.yaml")
    workers.start("eis", "station-eis.yaml")
    workers.wait_alive("pot", "eis")
    with Store.open(db) as store:  # only the potentiostat bench can serve it (a named instrument)
        rid = submit(
            DATA / "wait.yaml",
            parameters={"d": "120 s"},
            simulate=True,
            realtime=True,
            instruments=["potentiostat"],
            store=store,
        )
    row = wait_until(lambda: _running(db, rid), 60, "the run to be running")
    assert row.worker == "pot"
    workers.procs["pot"].send_signal(signal.SIGKILL)  # the bench PC goes down: worker and run
    os.kill(row.process["pid"], signal.SIGKILL)
    workers.procs["pot"].wait(timeout=10)

    def failed() -> object:
        with Store.open(db) as store:
            r = requests.raw(store, rid)
            return r.state == "failed" and r

    done = wait_until(failed, 60, "the surviving worker to recover the dead run")
    assert "died and was recovered" in done.reason and "not re-run" in done.reason
    with Store.open(db) as store:
        runs = store.runs()
        assert [(r["id"], r["state"]) for r in runs] == [(row.run_id, "interrupted")]
        kinds = [e["kind"] for e in store.events(row.run_id)]
        assert "run.recovered" in kinds and kinds.count("request.failed") == 1
        assert store.verify().ok


@pytest.mark.slow
def test_sigterm_leaves_the_run_running_and_a_restarted_worker_ends_it(workers: Workers) -> None:
    db = workers.db
    workers.start("pot", "station-pot.yaml")
    workers.wait_alive("pot")
    with Store.open(db) as store:
        rid = submit(DATA / "wait.yaml", parameters={"d": "8 s"}, simulate=True, realtime=True, store=store)
    row = wait_until(lambda: _running(db, rid), 60, "the run to be running")
    workers.procs["pot"].send_signal(signal.SIGTERM)
    assert workers.procs["pot"].wait(timeout=30) == 0, workers.log("pot")
    assert leases.process_alive(row.process["pid"], row.process["proc_started"], row.process["boot_id"])
    workers.start("pot", "station-pot.yaml")

    def finished() -> object:
        with Store.open(db) as store:
            return requests.raw(store, rid).state == "finished"

    wait_until(finished, 60, "the restarted worker to end the request")
    with Store.open(db) as store:
        assert [r["state"] for r in store.runs()] == ["completed"]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sixty_requests_over_three_workers_each_once_where_it_can_run(workers: Workers) -> None:
    db = workers.db
    for name, station in (
        ("pot", "station-pot.yaml"),
        ("eis", "station-eis.yaml"),
        ("mix", "station-mix.yaml"),
    ):
        workers.start(name, station, "--max-parallel", "2")
    workers.wait_alive("pot", "eis", "mix")
    with Store.open(db) as store:
        eis_key = store_fixtures_key(DATA / "station-eis.yaml", "eis")
        kinds: dict[int, str] = {}
        for i in range(60):
            kind = ("cycle", "eis", "eis-named", "wait")[i % 4]
            if kind == "eis-named":  # only the eis bench has this very instrument
                rid = submit(DATA / "eis.yaml", simulate=True, instruments=[eis_key], store=store)
            else:
                rid = submit(DATA / f"{kind}.yaml", simulate=True, store=store)
            kinds[rid] = kind
    wait_until(lambda: _ended(db, list(kinds)), 900, "60 requests to end", step=1.0)
    allowed = {
        "cycle": {"pot", "mix"},
        "eis": {"eis", "mix"},
        "eis-named": {"eis"},
        "wait": {"pot", "eis", "mix"},
    }
    with Store.open(db) as store:
        rows = {i: requests.raw(store, i) for i in kinds}
        assert {r.state for r in rows.values()} == {"finished"}, {i: r.reason for i, r in rows.items()}
        for i, r in rows.items():
            assert r.worker in allowed[kinds[i]], (i, kinds[i], r.worker)
        runs = store.runs()
        assert len(runs) == 60 and {r["state"] for r in runs} == {"completed"}
        assert sorted(r.run_id for r in rows.values()) == sorted(r["id"] for r in runs)
        started = [
            json.loads(e["data"])["request_id"] for e in store.events() if e["kind"] == "request.started"
        ]
        assert sorted(started) == sorted(kinds)
        assert {w.name for w in requests.live_workers(store)} == {"pot", "eis", "mix"}


def store_fixtures_key(station: Path, role: str) -> str:
    from labctl.station import load_station

    return load_station(station).roles[role].lease_key


def _pg_ctl(tools, db: str) -> Callable[..., None]:
    """pg_ctl on the server of `db` (the store suite's cluster), as the user that owns it; its data directory
    and options are read while it is up."""
    import subprocess

    import psycopg

    with psycopg.connect(db.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        data = conn.execute("SHOW data_directory").fetchone()[0]
    prefix, _ = tools._as_user()
    bindir = tools._pg_bindir()
    opts = Path(data, "postmaster.opts").read_text().split(None, 1)[1].strip().replace('"', "")

    def ctl(*args: str) -> None:
        cmd = [*prefix, str(bindir / "pg_ctl"), "-D", data, "-w", *args]
        if args[0] == "start":
            cmd += ["-o", opts, "-l", str(Path(data).parent / "log")]
        subprocess.run(cmd, check=True, capture_output=True, timeout=60, cwd="/")

    return ctl


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_postgresql_stopped_for_10_s_mid_run(workers: Workers, pg_tools) -> None:
    """The run rides out the outage (labctl.store.resilient): it keeps sampling (points held in memory), its
    writes are retried, and it completes with every point once; the worker reconnects and serves again."""
    db = workers.db
    workers.start("pot", "station-pot.yaml")
    workers.wait_alive("pot")
    with Store.open(db) as store:  # an OCV sampled every 0.5 s for 25 s on the wall clock: 50 points
        rid = submit(DATA / "ocv.yaml", parameters={"d": "25 s"}, simulate=True, realtime=True, store=store)
    row = wait_until(lambda: _running(db, rid), 60, "the run to be running")
    pg_ctl = _pg_ctl(pg_tools, db)
    pg_ctl("stop", "-m", "fast")
    try:
        time.sleep(10)
        assert workers.procs["pot"].poll() is None, workers.log("pot")
        assert leases.process_alive(row.process["pid"], row.process["proc_started"], row.process["boot_id"])
    finally:
        pg_ctl("start")
    with Store.open(db) as store:  # a request submitted after the outage is served: the worker reconnected
        after = submit(DATA / "wait.yaml", simulate=True, store=store)

    def ended() -> bool:
        return _ended(db, [rid, after])

    wait_until(ended, 120, "both requests to end")
    with Store.open(db) as store:
        first, second = requests.raw(store, rid), requests.raw(store, after)
        assert second.state == "finished", second.reason  # the worker reconnected and serves again
        assert workers.procs["pot"].poll() is None
        assert first.run_id == row.run_id and first.state == "finished", first.reason
        assert [r["state"] for r in store.runs()] == ["completed", "completed"]
        assert store.verify().ok
    import labctl

    with labctl.connect(db) as lab:
        t = lab.run(row.run_id).data("ocv")["t"].to_numpy()
    assert len(t) == 50 and (t[1:] > t[:-1]).all(), t  # every point once, in order: none lost in the outage


def test_procrastinate_schema_applied_once_by_racing_workers(pg_db: str) -> None:
    import threading

    from labctl.queue import jobs

    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def apply() -> None:
        with Store.open(pg_db) as store:
            barrier.wait()
            try:
                jobs.ensure_schema(store)
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=apply) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Store.open(pg_db) as store:
        assert jobs.has_schema(store)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_an_outage_past_the_limit_fails_the_run_into_safe_state(
    workers: Workers, pg_tools, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the limit at 3 s, PostgreSQL away for 8 s: the run gives up (its own safe state, unrecorded: the
    store is away); once the store is back the worker finds it dead, recovers it and fails the request."""
    monkeypatch.setenv("LABCTL_STORE_OUTAGE_S", "3")  # inherited by the worker and its runs
    db = workers.db
    workers.start("pot", "station-pot.yaml")
    workers.wait_alive("pot")
    with Store.open(db) as store:
        rid = submit(DATA / "ocv.yaml", parameters={"d": "60 s"}, simulate=True, realtime=True, store=store)
    row = wait_until(lambda: _running(db, rid), 60, "the run to be running")
    pg_ctl = _pg_ctl(pg_tools, db)
    pg_ctl("stop", "-m", "fast")
    try:
        wait_until(lambda: not leases.process_alive(row.process["pid"], row.process["proc_started"],
                                                    row.process["boot_id"]), 30, "the run to give up")
    finally:
        pg_ctl("start")
    log = Path(row.process["log"]).read_text()
    assert "unreachable for over 3 s" in log, log[-2000:]

    def failed() -> object:
        with Store.open(db) as store:
            r = requests.raw(store, rid)
            return r.state == "failed" and r

    done = wait_until(failed, 60, "the worker to recover the run")
    assert "died and was recovered" in done.reason and "not re-run" in done.reason
    with Store.open(db) as store:
        assert [r["state"] for r in store.runs()] == ["interrupted"]
        kinds = [e["kind"] for e in store.events(row.run_id)]
        assert "run.recovered" in kinds
