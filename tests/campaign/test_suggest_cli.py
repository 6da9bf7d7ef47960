"""`labctl campaign run --approve` on a planner campaign of short dry-run cells: each suggestion shown with
the hash of what it was based on, one edited at the prompt, one accepted; the loop closes (the second batch is
proposed from the first cell's observation) and the campaign finishes at its budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT, STATION

CELL = ROOT / "tests" / "campaign" / "data" / "short-cell.yaml"


def _labctl(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labctl", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "200"}, input=stdin)


def test_planner_campaign_with_approval(tmp_path: Path, sqlite_db: str) -> None:
    f = tmp_path / "planned.yaml"
    f.write_text(f"""labctl: 1
name: planned short cells
protocols: {{test: {CELL}}}
station: {STATION}
factors:
  immersion_time: {{range: [30 s, 90 s]}}
  concentration: {{levels: [0.05 M, 0.1 M]}}
planner: {{name: optuna, budget: 2, batch: 1, seed: 3}}
objectives: [{{maximise: hours_to_failure}}]
horizon: 2 h
""")
    r = _labctl("campaign", "plan", str(f), "--json")
    assert r.returncode == 0, r.stderr
    first = json.loads(r.stdout)
    assert first["kind"].startswith("planner:optuna") and len(first["points"]) == 1
    r = _labctl("campaign", "run", str(f), "--simulate", "--approve", "--db", sqlite_db,
                stdin="x\ne\n45 s\n0.1 M\na\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("sha256 ") == 2 and "from 0 observation(s)" in r.stdout
    assert "from 1 observation(s)" in r.stdout  # the second proposal saw the first cell's life
    assert "censored 2" in r.stdout
    status = json.loads(_labctl("campaign", "status", "1", "--json", "--db", sqlite_db).stdout)
    assert status["campaign"]["state"] == "finished" and status["campaign"]["design_kind"] == "planner:optuna"
    assert status["points"][0]["values"] == {"immersion_time": "45 s", "concentration": "0.1 M"}
    assert [p["status"] for p in status["points"]] == ["censored", "censored"]
    assert [s["state"] for s in status["suggestions"]] == ["queued", "queued"]
    from labctl.campaign import suggestions
    from labctl.store import Store

    store = Store.open(sqlite_db)
    try:
        rows = suggestions.all_suggestions(store, 1)
    finally:
        store.close()
    assert [s["state"] for s in rows] == ["queued", "queued"] and rows[0]["reason"] == "edited"
    assert rows[0]["values"] == first["points"][0]["values"]  # `plan` showed the batch `run` proposed
    assert rows[1]["observations"] == 1 and rows[1]["observations_sha256"] != rows[0]["observations_sha256"]

    # a resume of a finished planner campaign proposes nothing more; approving in it is refused
    r = _labctl("campaign", "resume", "1", "--db", sqlite_db)
    assert r.returncode == 0 and "sha256" not in r.stdout, r.stdout + r.stderr
    r = _labctl("campaign", "resume", "1", "--approve", "--db", sqlite_db)
    assert r.returncode == 2 and "sha256" not in r.stdout, r.stdout + r.stderr
    assert "campaign 1 is finished: its suggestions can no longer be approved" in r.stderr


def test_status_follow_ends_when_the_campaign_is_finished(tmp_path: Path, sqlite_db: str) -> None:
    """`status --follow` redraws until the campaign is finished (here: at once, it already is)."""
    r = _labctl("campaign", "run", str(ROOT / "campaigns" / "short-dry-run.yaml"), "--simulate",
                "--max-parallel", "2", "--db", sqlite_db)
    assert r.returncode == 0, r.stdout + r.stderr
    r = _labctl("campaign", "status", "1", "--follow", "--every", "0.2", "--db", sqlite_db)
    assert r.returncode == 0, r.stderr
    assert "(finished)" in r.stdout and "censored 4" in r.stdout and "0.05 M" in r.stdout


def test_status_follow_watches_a_running_campaign_to_its_end(tmp_path: Path, sqlite_db: str) -> None:
    """Started while the campaign's cells are still running, `status --follow` keeps looking (observing the
    cells as they end) and returns once the campaign is finished."""
    import time

    from sqlalchemy.exc import SQLAlchemyError

    from labctl.store import Store

    run = subprocess.Popen([sys.executable, "-m", "labctl", "campaign", "run",
                            str(ROOT / "campaigns" / "short-dry-run.yaml"), "--simulate", "--db", sqlite_db],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:  # the campaign row exists, and nothing is observed yet
            assert time.monotonic() < deadline and run.poll() is None, "it ended before it was watched"
            if Path(sqlite_db.removeprefix("sqlite:///")).exists():
                with Store.open(sqlite_db) as store:
                    from labctl.campaign import state

                    try:
                        prog = state.progress(store, 1)
                    except SQLAlchemyError:  # its tables are not made yet
                        prog = None
                if prog and prog["pending"]:
                    break
            time.sleep(0.1)
        t0 = time.monotonic()
        r = _labctl("campaign", "status", "1", "--follow", "--every", "0.2", "--db", sqlite_db)
        watched = time.monotonic() - t0
        assert r.returncode == 0, r.stderr
        assert "(finished)" in r.stdout and "censored 4" in r.stdout
        assert run.wait(120) == 0
        assert watched > 1.0  # it waited for the cells rather than returning at once
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


def test_status_follow_returns_for_a_cancelled_campaign_with_nothing_running(sqlite_db: str) -> None:
    from labctl.campaign import drive, state
    from labctl.store import Store

    with Store.open(sqlite_db) as store:
        cid = drive.start(store, ROOT / "campaigns" / "short-dry-run.yaml", simulate=True, actor="t")
        state.cancel(store, cid, actor="t")
    r = _labctl("campaign", "status", str(cid), "--follow", "--every", "0.2", "--db", sqlite_db)
    assert r.returncode == 0, r.stderr
    assert "(cancelled)" in r.stdout and "excluded 4" in r.stdout
