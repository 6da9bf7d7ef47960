"""The database failing under a real run (`labctl run` subprocess): disk full and a locked database.

Disk full: a `sitecustomize` in the run's PYTHONPATH caps every SQLite connection of that process at
`PRAGMA max_page_count` = its page count at connect + LABCTL_TEST_GROW_PAGES (SQLite then answers "database or
disk is full", as on a full disk). Locked: this test holds `BEGIN EXCLUSIVE` for longer than the store's
10 s busy timeout while the run writes. Either way the run must not hang, must put its instruments in
their safe state (its summary carries the simulators' read-back), tell the user in one line without a
traceback, exit non-zero; afterwards `labctl recover` leaves no run `running`, and the audit chain verifies
(no partial entry).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
from labctl_proc import LABCTL, PROTOCOLS, RunProc, env_for, labctl

SITECUSTOMIZE = textwrap.dedent(
    """
    import os
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    GROW = int(os.environ["LABCTL_TEST_GROW_PAGES"])

    @event.listens_for(Engine, "connect")
    def _cap(dbapi_connection, _record):
        cur = dbapi_connection.cursor()
        pages = cur.execute("PRAGMA page_count").fetchone()[0]
        cur.execute(f"PRAGMA max_page_count = {pages + GROW}")
        cur.close()
    """
)


def _after(tmp_path: Path, env: dict[str, str]) -> dict:
    """Space back / lock gone: recover, then nothing is left running and the chain verifies."""
    recovered = labctl("recover", "--json", env=env, cwd=tmp_path)
    assert recovered.returncode == 0, recovered.stderr
    listed = labctl("runs", "list", "--json", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    (run,) = json.loads(listed.stdout)
    assert run["state"] in ("failed", "interrupted"), run
    verified = labctl("audit", "verify", "--all", env=env, cwd=tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    db = Path(env["LABCTL_DB"])
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return run


def _user_sees(code: int, out: str, err: str, *words: str) -> None:
    assert code not in (0, 70), (code, err)  # 70: labctl's "internal error" (an unexpected exception)
    assert "Traceback" not in err and "Traceback" not in out, err[-3000:]
    text = (out + err).lower()
    assert any(w in text for w in words), (out[-2000:], err[-2000:])


@pytest.mark.timeout(120)
def test_disk_full_mid_run(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    db = tmp_path / "full.db"
    env = env_for(tmp_path, db)
    # create the schema first, unlimited (`recover` opens and migrates the store; readers never create one)
    assert labctl("recover", env=env, cwd=tmp_path).returncode == 0
    path = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p)  # this tree's labctl too
    capped = {**env, "PYTHONPATH": path, "LABCTL_TEST_GROW_PAGES": "120"}
    proc = subprocess.run([*LABCTL, "run", str(PROTOCOLS / "li-in-alloy-cycle.yaml"), "--simulate", "--json"],
                          env=capped, cwd=tmp_path, capture_output=True, text=True, timeout=100)
    _user_sees(proc.returncode, proc.stdout, proc.stderr, "full")
    summary = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else None
    if summary is not None:
        assert summary["state"] != "completed"
        assert summary["safe_state"] and all(s["ok"] for s in summary["safe_state"]), summary["safe_state"]
    _after(tmp_path, env)


@pytest.mark.slow  # ~45 s: the lock outlasts the 10 s busy timeout of several writes in turn
@pytest.mark.timeout(120)
def test_database_locked_longer_than_the_busy_timeout(tmp_path):
    protocol = PROTOCOLS / "li-in-alloy-cycle.yaml"
    run = RunProc.start(tmp_path, protocol, "--realtime")
    try:
        run.wait_step(0)
        con = sqlite3.connect(run.db, timeout=30, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        t0 = time.monotonic()
        try:
            while run.proc.poll() is None and time.monotonic() - t0 < 25:
                time.sleep(0.2)
        finally:
            con.execute("ROLLBACK")
            con.close()
        if run.proc.poll() is None:  # still alive: it waited the lock out; end it the documented way
            run.proc.send_signal(signal.SIGTERM)
        code, summary, err, _ = run.finish(timeout=60)
    finally:
        run.kill()
    out = json.dumps(summary) if summary else ""
    _user_sees(code, out, err, "locked", "busy")
    if summary is not None:
        assert summary["safe_state"] and all(s["ok"] for s in summary["safe_state"]), summary["safe_state"]
    _after(tmp_path, run.env)
