"""kill -9 during a real-clock run loses at most the last second of points, for every stream (issue 14.6).

Each test starts a real `labctl run --simulate --realtime` subprocess on a short protocol (OCV,
galvanostatic cycling, EIS), waits until the step has run for a given wall time (read from the store: no
fixed windows, the step's own start time decides), sends SIGKILL and notes the wall time. The stored
stream's last point, placed on the wall clock through the run's creation time (`t`, or EIS's
`t_received`, is seconds since the run started; the run's clock starts a few ms before `created_at`), must
be within 1 s plus one sample interval of the kill.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from labctl_proc import RunProc, write_protocol

from labctl.store import ingest

BUDGET_S = 1.0

# stream: (step, sample interval, wall seconds into the step at which it is killed)
PROTOCOLS = {
    "ocv": ("  - ocv: {duration: 10 min, sample_every: 0.2 s}\n", 0.2, 4.5),
    "cycling": (  # 18 s half-cycles: killed 9 s into the second one
        "  - cycle_symmetric: {current_density: 0.1 mA/cm^2, capacity: 0.0005 mAh/cm^2, cycles: 40,"
        " sample_every: 0.2 s, voltage_limit: 0.5 V}\n",
        0.2,
        27.0,
    ),
    "eis": ("  - eis: {frequencies: 10 kHz..0.5 Hz, points_per_decade: 10, amplitude: 10 mV}\n", None, 4.5),
}


def stored(db: Path, run_id: int, stream: str) -> dict[str, np.ndarray]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        rows = con.execute(
            "SELECT columns, n, data, codec FROM chunks WHERE run_id = ? AND stream = ? ORDER BY seq",
            (run_id, stream),
        ).fetchall()
    parts = [ingest.decode(data, json.loads(names), n, codec) for names, n, data, codec in rows]
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def one(db: Path, sql: str, *args: object) -> tuple:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return con.execute(sql, args).fetchone()


@pytest.mark.parametrize("stream", sorted(PROTOCOLS))
def test_kill_9_loses_at_most_the_last_second(tmp_path: Path, stream: str) -> None:
    steps, interval, kill_after = PROTOCOLS[stream]
    protocol = write_protocol(tmp_path / f"{stream}.yaml", f"crash loss {stream}", steps)
    run = RunProc.start(tmp_path, protocol, "--realtime")
    try:
        run.wait_step(0, timeout=120)
        started = one(run.db, "SELECT started_at FROM steps WHERE run_id = ?", run.run_id)[0]
        run.wait_for(lambda: time.time() - started >= kill_after, f"{kill_after} s of {stream}", 120)
        killed_at = time.time()
        run.proc.send_signal(signal.SIGKILL)
        run.proc.communicate(timeout=30)
    finally:
        run.kill()
    created = one(run.db, "SELECT created_at FROM runs WHERE id = ?", run.run_id)[0]
    cols = stored(run.db, run.run_id, stream)
    if "t_received" in cols:  # EIS: when each point reached labctl
        cols["t"] = cols.pop("t_received")
    assert len(cols.get("t", ())) >= 2, f"{stream}: {len(cols.get('t', ()))} points stored in {kill_after} s"
    assert np.all(np.diff(cols["t"]) >= 0)  # whole and in time order
    last_wall = created + float(cols["t"][-1])
    lost = killed_at - last_wall
    budget = BUDGET_S + (interval or float(np.max(np.diff(cols["t"]))))
    print(f"{stream}: {len(cols['t'])} points, the last {lost:.3f} s before the kill (budget {budget:.2f} s)")
    assert lost <= budget, f"{stream}: last stored point {lost:.2f} s before the kill (budget {budget:.2f} s)"
    assert lost > -0.5, f"{stream}: a point after the kill? ({lost:.2f} s)"
    with sqlite3.connect(run.db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    recovered = run.cli("recover", "--json")
    assert recovered.returncode == 0, recovered.stderr
    assert run.state() == "interrupted"
    verified = run.cli("audit", "verify", "--all")
    assert verified.returncode == 0, verified.stdout + verified.stderr

