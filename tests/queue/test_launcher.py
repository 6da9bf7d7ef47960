"""The warm launcher with real processes: a run it forked survives kill -9 of the runner and of the launcher
(and is then ended by a restarted runner), a launcher whose code is stale is replaced before it forks, and a
launcher that cannot start leaves the run to the plain subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from queue_helpers import DATA, labctl, spawn, wait_until

from labctl.queue import launcher as launcher_mod
from labctl.queue import submit
from labctl.queue.launcher import ForkedRun, Launcher
from labctl.store import Store, requests


@pytest.fixture
def sqlite_db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'labctl.db'}"


def _run_args(db: str, seconds: int = 1) -> list[str]:
    return ["run", str(DATA / "wait.yaml"), "-p", f"d={seconds} s", "--station",
            str(DATA / "station-pot.yaml"), "--simulate", "--db", db, "--json"]


def test_forked_run_survives_kill9_of_runner_and_launcher(sqlite_db: str, tmp_path: Path) -> None:
    with Store.open(sqlite_db) as store:
        rid = submit(DATA / "wait.yaml", parameters={"d": "8 s"}, simulate=True, realtime=True, store=store)
    runner = spawn("runner", "--station", str(DATA / "station-pot.yaml"), "--simulate", "--db", sqlite_db,
                   "--name", "bench", log=tmp_path / "runner.log")

    def running() -> object:
        with Store.open(sqlite_db) as store:
            row = requests.raw(store, rid)
            return row.run_id is not None and store.run(row.run_id)["state"] == "running" and row

    try:
        row = wait_until(running, 90, "the request's run to be running")
        via, _, launcher_pid = row.process["via"].partition(" ")
        assert via == "launcher", row.process
        pid = row.process["pid"]
        run = psutil.Process(pid)
        assert run.name() == "labctl-run"  # named so in ps/top, though it keeps the launcher's command line
        # a session of its own (no signal to the runner's or launcher's group reaches it), and reparented
        assert os.getsid(pid) not in (os.getsid(runner.pid), os.getsid(int(launcher_pid)))
        assert run.ppid() not in (runner.pid, int(launcher_pid))
        os.kill(int(launcher_pid), signal.SIGKILL)  # the launcher first (the runner's death would end it)
    finally:
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=10)
    wait_until(lambda: not psutil.pid_exists(int(launcher_pid)) or
               psutil.Process(int(launcher_pid)).status() == psutil.STATUS_ZOMBIE, 10, "the launcher to die")
    assert run.is_running() and run.status() != psutil.STATUS_ZOMBIE  # both killed, the run goes on

    def completed() -> bool:
        with Store.open(sqlite_db) as store:
            return store.run(row.run_id)["state"] == "completed"

    wait_until(completed, 60, "the orphaned run to complete")
    log = Path(row.process["log"])
    wait_until(lambda: Path(str(log) + ".exit").exists(), 30, "the run's exit code")
    assert Path(str(log) + ".exit").read_text() == "0\n"
    summary = json.loads(log.read_text()[log.read_text().index("{"):])
    assert summary["run_id"] == row.run_id and summary["state"] == "completed"

    again = labctl("runner", "--station", str(DATA / "station-pot.yaml"), "--simulate", "--once", "--name",
                   "bench", "--db", sqlite_db)
    assert again.returncode == 0, again.stdout + again.stderr
    with Store.open(sqlite_db) as store:
        done = requests.raw(store, rid)
        assert done.state == "finished" and done.run_id == row.run_id
        assert [r["state"] for r in store.runs()] == ["completed"]  # one run: never started twice


def test_stale_launcher_is_replaced_before_it_forks(sqlite_db: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    launcher = Launcher(log=tmp_path / "launcher.log")
    launcher.start()
    try:
        assert launcher.ready(60), (tmp_path / "launcher.log").read_text()
        first = launcher.proc
        run = launcher.launch(_run_args(sqlite_db), tmp_path / "a.log")
        assert isinstance(run, ForkedRun) and run.launcher_pid == first.pid and run.wait(60) == 0
        # labctl upgraded on disk: the warm launcher holds the old code
        monkeypatch.setattr(launcher_mod, "source_fingerprint", lambda: "upgraded")
        run = launcher.launch(_run_args(sqlite_db), tmp_path / "b.log")
        assert first.wait(timeout=10) is not None  # the stale launcher was stopped
        assert run is None and launcher.fallbacks == 1  # its fingerprint was taken before the patch
        monkeypatch.undo()
        run = launcher.launch(_run_args(sqlite_db), tmp_path / "c.log")  # a fresh launcher, current code
        assert isinstance(run, ForkedRun) and run.launcher_pid not in (None, first.pid) and run.wait(60) == 0
    finally:
        launcher.stop()
    with Store.open(sqlite_db) as store:
        assert [r["state"] for r in store.runs()] == ["completed", "completed"]


def test_a_launcher_that_cannot_start_leaves_the_run_to_a_plain_subprocess(
    sqlite_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launcher = Launcher()
    real_popen = subprocess.Popen

    def broken(cmd: list[str], **kw: object) -> subprocess.Popen:  # the launcher dies while importing
        return real_popen([sys.executable, "-c", "import sys; sys.exit(3)"], **kw)

    monkeypatch.setattr(launcher_mod.subprocess, "Popen", broken)
    assert launcher.launch(_run_args(sqlite_db), tmp_path / "a.log") is None
    monkeypatch.undo()
    with Store.open(sqlite_db) as store:
        rid = submit(DATA / "wait.yaml", simulate=True, store=store)
    env = {**os.environ, "LABCTL_NO_LAUNCHER": "1"}
    cmd = [sys.executable, "-m", "labctl", "runner", "--station", str(DATA / "station-pot.yaml"),
           "--simulate",
           "--once", "--db", sqlite_db]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    with Store.open(sqlite_db) as store:
        row = requests.raw(store, rid)
        assert row.state == "finished" and row.process["via"] == "subprocess"
