"""Run requests through bench workers on procrastinate: dispatch latency and drain, against a bare
procrastinate job round trip measured in the same run.

Three `labctl worker` processes (dry-run benches, `--max-parallel 2` each; each forks its runs from its warm
launcher, or with `--no-launcher` starts each as a plain `python -m labctl run`) serve one PostgreSQL store.
A few warm-up requests (not counted) first, then two phases:
- latency: `--spaced` requests submitted one every `--gap` s; for each, submit -> preflight (the run's
  `run.state` event to `preflight`), split into submit -> taken (queue dispatch), taken -> launched (the run
  process started) and launched -> preflight (the `labctl run` process starting up and preflighting);
- drain: `--burst` requests submitted at once; every one must end `finished` with exactly one run, one take
  and one `request.started` (no duplicate, no loss); the wall time to drain them.
Baseline: a bare procrastinate job round trip (defer -> the task starts in a worker process), sequentially,
same database, same machine, same run.

The database must be an empty PostgreSQL database (its tables are created here), or `--pg-temp`: a throwaway
cluster (initdb + pg_ctl in a temporary directory, as the store tests start one) for this run.
Usage: python benchmarks/bench_queue.py (--db postgresql://USER@HOST:PORT/DB | --pg-temp) [--spaced 40]
       [--gap 0.75] [--burst 200] [--no-launcher]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROTOCOL = "labctl: 1\nname: bench queue wait\nsteps:\n  - wait: {duration: 1 s}\n"
STATION = (
    "labctl_station: 1\nname: bench-{n}\ninstruments:\n  eis:\n    driver: emstat4\n"
    "    port: labsim://eis{n}\n"
)


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def fmt(xs: list[float]) -> str:
    return f"p50 {pct(xs, 50):.3f} s  p99 {pct(xs, 99):.3f} s  max {max(xs):.3f} s  (n={len(xs)})"


# -- baseline: a bare procrastinate round trip ------------------------------------------------------------


def baseline_worker(conninfo: str) -> None:
    """The worker process of the baseline: its task records when it started."""
    import procrastinate
    import psycopg

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))

    @app.task(name="bench.noop", queue="bench")
    def noop(i: int) -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("INSERT INTO bench_rt VALUES (%s, %s)", (i, time.time()))

    app.run_worker(queues=["bench"], fetch_job_polling_interval=2.0, delete_jobs="always")


def baseline(conninfo: str, n: int) -> list[float]:
    import procrastinate
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_rt (i int, t double precision)")
    worker = subprocess.Popen([sys.executable, __file__, "--baseline-worker", conninfo])
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))
    out = []
    try:
        time.sleep(3.0)  # the worker process is up and listening
        with app.open(), psycopg.connect(conninfo, autocommit=True) as conn:
            for i in range(n):
                t0 = time.time()
                app.configure_task("bench.noop", queue="bench").defer(i=i)
                while True:
                    row = conn.execute("SELECT t FROM bench_rt WHERE i = %s", (i,)).fetchone()
                    if row:
                        out.append(row[0] - t0)
                        break
                    time.sleep(0.005)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    return out


# -- a throwaway PostgreSQL cluster ------------------------------------------------------------------------


def pg_temp() -> tuple[str, object]:
    """Start a cluster as the store tests do; returns (database URL, stop function)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "store_conftest", Path(__file__).resolve().parents[1] / "tests" / "store" / "conftest.py"
    )
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    gen = conf.pg_server.__wrapped__()  # the fixture's generator: start now, stop when resumed
    server = next(gen)

    def stop() -> None:
        with contextlib.suppress(StopIteration):
            next(gen)

    import psycopg

    with psycopg.connect(server.replace("postgresql+psycopg://", "postgresql://") + "/postgres",
                         autocommit=True) as conn:
        conn.execute('CREATE DATABASE "bench"')
    return server + "/bench", stop


# -- labctl workers -----------------------------------------------------------------------------------------


def start_workers(db: str, tmp: Path, n: int, launcher: bool) -> list[subprocess.Popen]:
    procs = []
    env = dict(os.environ)
    if not launcher:
        env["LABCTL_NO_LAUNCHER"] = "1"
    for k in range(n):
        station = tmp / f"station-{k}.yaml"
        station.write_text(STATION.format(n=k))
        log = open(tmp / f"worker-{k}.log", "ab")  # noqa: SIM115 - lives as long as the worker
        cmd = [
            sys.executable,
            "-m",
            "labctl",
            "worker",
            "--station",
            str(station),
            "--simulate",
            "--max-parallel",
            "2",
            "--name",
            f"w{k}",
            "--db",
            db,
        ]
        procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env))
    return procs


def wait_workers(store, n: int, timeout: float = 120) -> None:
    from labctl.store import requests

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if len(requests.live_workers(store)) >= n:
            return
        time.sleep(0.2)
    raise SystemExit("the workers did not start (see worker-*.log)")


def wait_ended(store, ids: list[int], timeout: float) -> float:
    from labctl.store import requests

    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if all(requests.is_ended(requests.raw(store, i).state) for i in ids):
            return time.monotonic() - t0
        time.sleep(0.2)
    raise SystemExit(f"requests not drained in {timeout} s")


def preflight_times(store) -> dict[int, float]:
    out = {}
    for e in store.events():
        if e["kind"] == "run.state":
            d = json.loads(e["data"])
            if d["to"] == "preflight":
                out[e["run_id"]] = d["at"]
    return out


def check_once(store, ids: list[int]) -> tuple[int, int]:
    """(duplicates, lost) over the requests `ids`."""
    from labctl.store import requests

    started: dict[int, int] = {}
    taken: dict[int, int] = {}
    for e in store.events():
        if e["kind"] in ("request.started", "request.taken"):
            rid = json.loads(e["data"])["request_id"]
            box = started if e["kind"] == "request.started" else taken
            box[rid] = box.get(rid, 0) + 1
    runs_by_request: dict[int, int] = {}
    for i in ids:
        row = requests.raw(store, i)
        if row.run_id is not None:
            runs_by_request[i] = row.run_id
    dup = sum(1 for i in ids if started.get(i, 0) > 1 or taken.get(i, 0) > 1)
    dup += len(runs_by_request) - len(set(runs_by_request.values()))
    lost = sum(1 for i in ids if requests.raw(store, i).state != "finished" or started.get(i, 0) != 1)
    return dup, lost


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=False)
    ap.add_argument("--pg-temp", action="store_true", help="start a throwaway PostgreSQL cluster")
    ap.add_argument("--spaced", type=int, default=40)
    ap.add_argument("--gap", type=float, default=0.75)
    ap.add_argument("--burst", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=6)
    ap.add_argument("--no-launcher", action="store_true", help="each run as a plain `python -m labctl run`")
    ap.add_argument("--baseline", type=int, default=50)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--baseline-worker")
    args = ap.parse_args()
    if args.baseline_worker:
        baseline_worker(args.baseline_worker)
        return
    stop_pg = None
    if args.pg_temp:
        args.db, stop_pg = pg_temp()
    if not args.db or not args.db.startswith("postgresql"):
        raise SystemExit("--db postgresql://... (an empty database) or --pg-temp is required")
    try:
        bench(args)
    finally:
        if stop_pg is not None:
            stop_pg()


def bench(args: argparse.Namespace) -> None:

    from labctl.queue import submit
    from labctl.queue.jobs import conninfo, ensure_schema
    from labctl.store import Store, requests

    tmp = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    os.environ.setdefault("LABCTL_AUDIT_KEY", str(tmp / "audit.key"))
    os.environ["LABCTL_SPOOL"] = str(tmp / "spool")
    proto = tmp / "wait.yaml"
    proto.write_text(PROTOCOL)
    store = Store.open(args.db)
    ensure_schema(store)
    rt = baseline(conninfo(store), args.baseline)
    print(f"baseline procrastinate round trip (defer -> task start): {fmt(rt)}")

    print(f"load average at start: {os.getloadavg()}")
    procs = start_workers(args.db, tmp, args.workers, not args.no_launcher)
    try:
        wait_workers(store, args.workers)
        warm = [submit(proto, simulate=True, store=store) for _ in range(args.warmup)]
        wait_ended(store, warm, 300)
        spaced = []
        for _ in range(args.spaced):
            spaced.append(submit(proto, simulate=True, store=store))
            time.sleep(args.gap)
        wait_ended(store, spaced, 300)
        pre = preflight_times(store)
        total, dispatch, launch, startup = [], [], [], []
        for i in spaced:
            row = requests.raw(store, i)
            total.append(pre[row.run_id] - row.created_at)
            dispatch.append(row.taken_at - row.created_at)
            launch.append(row.process["launched_at"] - row.taken_at)
            startup.append(pre[row.run_id] - row.process["launched_at"])
        via = sorted({requests.raw(store, i).process["via"].split()[0] for i in spaced})
        print(f"{args.workers} workers, {args.spaced} requests one every {args.gap} s (runs by {via}):")
        print(f"  submit -> preflight: {fmt(total)}")
        print(f"  submit -> taken:     {fmt(dispatch)}")
        print(f"  taken -> launched:   {fmt(launch)}")
        print(f"  launched -> preflight (labctl run start-up): {fmt(startup)}")

        t0 = time.monotonic()
        burst = [submit(proto, simulate=True, store=store) for _ in range(args.burst)]
        t_submit = time.monotonic() - t0
        drained = wait_ended(store, burst, 1800) + t_submit
        dup, lost = check_once(store, burst)
        print(
            f"burst of {args.burst}: submitted in {t_submit:.2f} s, drained in {drained:.1f} s "
            f"({args.burst / drained:.2f} requests/s); duplicates {dup}, lost {lost}"
        )
        by_worker: dict[str, int] = {}
        for i in burst:
            w = requests.raw(store, i).worker
            by_worker[w] = by_worker.get(w, 0) + 1
        print(f"  per worker: {dict(sorted(by_worker.items()))}")
        print(f"load average at end: {os.getloadavg()}")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=60)
        store.close()


if __name__ == "__main__":
    main()
