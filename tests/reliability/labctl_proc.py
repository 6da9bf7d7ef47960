"""Real `labctl run` subprocesses for the reliability tests: start one on a database, watch its state in the
store (read-only sqlite3, so polling costs no interpreter start-up), and call the CLI afterwards."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PROTOCOLS = ROOT / "protocols"
LABCTL = [sys.executable, "-m", "labctl"]


def env_for(tmp_path: Path, db: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "LABCTL_AUDIT_KEY": str(tmp_path / "audit.key"),
        "LABCTL_DB": str(db),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


def labctl(*args: str, env: dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*LABCTL, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def write_protocol(path: Path, name: str, steps: str) -> Path:
    """A small protocol file (`steps` is the YAML of the step list, one `  - ...` line per step)."""
    path.write_text(
        f"labctl: 1\nname: '{name}'\n"
        f"sample: {{id: REL-{path.stem}, substrate: Li foil 450 um, area: 1.13 cm^2}}\nsteps:\n{steps}"
    )
    return path


@dataclass
class RunProc:
    proc: subprocess.Popen[str]
    db: Path
    env: dict[str, str]
    cwd: Path
    run_id: int | None = None

    @classmethod
    def start(
        cls, tmp_path: Path, protocol: Path, *args: str, db: Path | None = None, **extra_env: str
    ) -> RunProc:
        db = db or tmp_path / "labctl.db"
        env = env_for(tmp_path, db, **extra_env)
        proc = subprocess.Popen(
            [*LABCTL, "run", str(protocol), "--simulate", "--json", *args],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return cls(proc, db, env, tmp_path)

    # -- the store, read-only -----------------------------------------------------------------------

    def _query(self, sql: str, *args: Any) -> list[tuple]:
        if not self.db.exists():
            return []
        try:
            con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        except sqlite3.Error:
            return []
        try:
            return con.execute(sql, args).fetchall()
        except sqlite3.Error:  # schema not created yet, or busy
            return []
        finally:
            con.close()

    def _find_run(self) -> int | None:
        if self.run_id is None:
            rows = self._query("SELECT id FROM runs WHERE pid = ? ORDER BY id DESC LIMIT 1", self.proc.pid)
            self.run_id = rows[0][0] if rows else None
        return self.run_id

    def state(self) -> str | None:
        if self._find_run() is None:
            return None
        rows = self._query("SELECT state FROM runs WHERE id = ?", self.run_id)
        return rows[0][0] if rows else None

    def running_step(self) -> tuple[int, str] | None:
        if self._find_run() is None:
            return None
        rows = self._query(
            "SELECT `index`, kind FROM steps WHERE run_id = ? AND status = 'running' ORDER BY `index`",
            self.run_id,
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        self._find_run()
        sql = "SELECT kind, actor, data FROM events WHERE run_id = ?"
        rows = self._query(sql + (" AND kind = ?" if kind else "") + " ORDER BY seq", self.run_id,
                           *([kind] if kind else []))
        return [{"kind": k, "actor": a, "data": json.loads(d)} for k, a, d in rows]

    def wait_for(self, test: Any, what: str, timeout: float = 60.0, every: float = 0.05) -> float:
        """Poll `test()` until true; the wall time it took. Fails if the process ends first or on timeout."""
        t0 = time.monotonic()
        while not test():
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise AssertionError(f"run ended (exit {self.proc.returncode}) before {what}:\n{out}\n{err}")
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"{what}: not within {timeout} s (state {self.state()})")
            time.sleep(every)
        return time.monotonic() - t0

    def wait_step(self, index: int, timeout: float = 60.0) -> None:
        self.wait_for(lambda: (s := self.running_step()) is not None and s[0] == index,
                      f"step {index + 1} running", timeout)

    def finish(self, timeout: float) -> tuple[int, dict[str, Any] | None, str, float]:
        """(exit code, the --json summary or None, stderr, wall seconds to exit)."""
        t0 = time.monotonic()
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise AssertionError(f"run did not exit within {timeout} s of the request:\n{err[-3000:]}") \
                from None
        wall = time.monotonic() - t0
        try:
            summary = json.loads(out) if out.strip() else None
        except json.JSONDecodeError:
            summary = None
        return self.proc.returncode, summary, err, wall

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return labctl(*args, env=self.env, cwd=self.cwd, timeout=timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def check_record(run: RunProc, state: str, *, actor: str | None = None) -> dict[str, Any]:
    """The store says `state`, every touched instrument was made safe and recorded (by the run, or by a
    recovery after it died: `recover.safe`, or `recover.safe_skipped` for simulators that died with it), the
    change to `state` is an event naming `actor`, and the audit chain verifies."""
    assert run.state() == state
    ready = {e["data"]["role"] for e in run.events("instrument.ready")}
    safe = {
        e["data"]["role"]
        for kind in ("instrument.safe", "recover.safe", "recover.safe_skipped")
        for e in run.events(kind)
    }
    assert ready, "preflight touched instruments"
    assert ready <= safe, f"safe state not recorded for {sorted(ready - safe)}"
    assert not run.events("instrument.safe_failed")
    changes = [e for e in run.events() if e["kind"] == "run.state" and e["data"].get("to") == state]
    assert changes, [e["kind"] for e in run.events()]
    if actor is not None:
        assert changes[-1]["actor"] == actor, changes[-1]
    verified = run.cli("audit", "verify", "--all")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    return {"id": run.run_id, "state": state}
