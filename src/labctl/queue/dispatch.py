"""The part the local runner and the bench workers share: take a request, start its run as its own process,
follow it to its end, and mark the request from the run's end state.

Each run is `labctl run` in a process of its own (its own session, so a Ctrl-C or SIGTERM to the runner does
not reach it): restarting or upgrading the runner leaves a 1000 h test running. It is forked by the runner's
warm launcher (`labctl.queue.launcher`: the run path already imported) when that is ready and its code is
current, else started as a plain `python -m labctl run` subprocess. The launched process'
identity (host, pid, start time, boot id) is recorded on the request before anything else happens, and the
run it creates is found by that identity, so a runner that restarts (or another runner on the same host,
when this one died) can always say whether the run is still alive. A run whose process is gone is recovered
(instruments made safe, marked interrupted) and its request failed: never re-run silently.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labctl.queue.launcher import ForkedRun, Launcher
from labctl.queue.matching import capability, keys_needed, unmet, why_waiting
from labctl.station import Station
from labctl.store import leases, requests
from labctl.store.models import TERMINAL_STATES

LOG_TAIL = 400  # characters of a run process' output quoted when it ended without a run


def spool_dir() -> Path:
    """Where requests' protocol files and run logs go: $LABCTL_SPOOL, else the user's cache directory."""
    env = os.environ.get("LABCTL_SPOOL")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("labctl")) / "requests"


@dataclass
class Dispatcher:
    """One runner's or worker's view: its station, its slots and the run processes it launched."""

    store: Any
    name: str
    kind: str  # "runner" or "worker"
    station_path: Path
    info: Station
    simulate: bool
    db_url: str  # with its password: handed to the run processes
    max_parallel: int = 1
    children: dict[int, subprocess.Popen | ForkedRun] = field(default_factory=dict)
    own_keys: dict[int, list[str]] = field(default_factory=dict)  # request id -> lease keys its run will take
    launcher: Launcher | None = None  # None: every run as a plain subprocess
    env: dict[str, str] | None = None  # the run processes' environment (None: this process')
    extra_args: dict[int, list[str]] = field(default_factory=dict)  # request id -> more `labctl run` options
    commands: dict[int, list[str]] = field(default_factory=dict)  # request id -> its run's command line

    def start_launcher(self) -> None:
        """Start the warm launcher (unless $LABCTL_NO_LAUNCHER is set); it warms up in the background while
        this runner registers and sweeps."""
        if os.environ.get("LABCTL_NO_LAUNCHER"):
            return
        spool = spool_dir()
        spool.mkdir(parents=True, exist_ok=True)
        self.launcher = Launcher(log=spool / f"launcher-{self.name.replace('/', '_')}.log")
        self.launcher.start()

    def stop_launcher(self) -> None:
        if self.launcher is not None:
            self.launcher.stop()
            self.launcher = None

    @property
    def cap(self) -> dict[str, Any]:
        return capability(self.info, self.simulate)

    def register(self) -> None:
        requests.register_worker(
            self.store, self.name, kind=self.kind, station_name=self.info.name, station=self.cap
        )

    def beat(self, state: str = "running") -> None:
        requests.worker_heartbeat(self.store, self.name, state)

    # -- taking ---------------------------------------------------------------------------------------

    def free_slots(self) -> int:
        return max(0, self.max_parallel - len(self.own_keys))

    def startable(self, row: Any) -> str | None:
        """Why this dispatcher cannot start the request now (None: it can)."""
        why = unmet(row.requirements, row.simulate, self.cap)
        if why is not None:
            return why
        if self.free_slots() <= 0:
            return "no free slot"
        keys = keys_needed(row.requirements, self.info)
        mine = {k for ks in self.own_keys.values() for k in ks}
        if mine & set(keys):
            return f"instruments in use by this {self.kind}'s runs: {', '.join(sorted(mine & set(keys)))}"
        held = self._live_leases(keys)
        if held:
            return "instruments leased: " + ", ".join(f"{k} (run {r})" for k, r in sorted(held.items()))
        return None

    def _live_leases(self, keys: list[str]) -> dict[str, int]:
        held = requests.leased(self.store, keys)
        if not held:
            return {}
        live = {}
        for key, run_id in held.items():
            with contextlib.suppress(Exception):
                if self.store.run(run_id)["state"] not in TERMINAL_STATES:
                    live[key] = run_id
        return live

    def try_start(self, request_id: int) -> bool:
        """Take and launch one request if this station can serve it now; False if not (it stays queued)."""
        row = requests.raw(self.store, request_id)
        if row is None or row.state != "queued":
            return False
        if row.not_before is not None and row.not_before > time.time():
            return False
        if self.startable(row) is not None:
            return False
        if not requests.take(self.store, request_id, self.name):
            return False  # another runner or worker took it first
        self.own_keys[request_id] = keys_needed(row.requirements, self.info)
        try:
            self._launch(row)
        except Exception as exc:
            self.own_keys.pop(request_id, None)
            requests.finish(
                self.store, request_id, ok=False, reason=f"could not start the run: {exc}", actor=self.name
            )
        return True

    def dispatch_once(self, start: Callable[[int], bool] | None = None) -> int:
        """Start what can start now (`start`, default `try_start`: a worker passes one that defers a job to
        its queue instead); note why the rest waits. Returns how many were started (or deferred)."""
        start = start or self.try_start
        started = 0
        slots = self.free_slots()
        waiting: dict[int, str] = {}
        workers = None
        for row in requests.candidates(self.store):
            if started >= slots:
                break
            if self.startable(row) is None and start(row.id):
                started += 1
                continue
            if workers is None:
                workers = requests.live_workers(self.store)
            waiting[row.id] = why_waiting(row, workers, self._all_leases())
        requests.note_waiting(self.store, waiting)
        return started

    def _all_leases(self) -> dict[str, int]:
        from sqlalchemy import select

        from labctl.store.models import Lease

        with self.store.engine.connect() as conn:
            rows = conn.execute(select(Lease.instrument, Lease.run_id)).all()
            conn.rollback()
        return {r.instrument: r.run_id for r in rows}

    def _launch(self, row: Any) -> None:
        spool = spool_dir()
        spool.mkdir(parents=True, exist_ok=True)
        stem = f"request-{row.id}-{secrets.token_hex(4)}"  # one spool for every store: ids repeat
        proto = spool / f"{stem}-{Path(row.protocol_path).name or 'protocol.yaml'}"
        proto.write_text(row.protocol_text)
        cmd = [
            sys.executable,
            "-m",
            "labctl",
            "run",
            str(proto),
            "--station",
            str(self.station_path),
            "--json",
            "--operator",
            row.requested_by,
        ]
        for k, v in (row.parameters or {}).items():
            cmd += ["-p", f"{k}={v}"]
        if row.sample_id:
            cmd += ["--sample", row.sample_id]
        if row.simulate:
            cmd.append("--simulate")
        if row.realtime:
            cmd.append("--realtime")
        cmd += self.extra_args.pop(row.id, [])
        self.commands[row.id] = cmd
        # the store's URL goes in the environment, not on the command line: `ps` would show its password
        db_env = {"LABCTL_DB": self.db_url}
        log = spool / f"{stem}.log"
        t0 = time.time()
        child: subprocess.Popen | ForkedRun | None = None
        if self.launcher is not None:
            child = self.launcher.launch(cmd[3:], log, env=db_env)
        if child is None:
            with open(log, "ab") as out:
                child = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True, env={**(self.env or os.environ), **db_env})
        self.children[row.id] = child
        forked = isinstance(child, ForkedRun)
        process = {
            "host": leases.HOST,
            "pid": child.pid,
            "proc_started": child.proc_started if forked else leases.process_started(child.pid),
            "boot_id": leases.boot_id(),
            "launched_at": t0,
            "log": str(log),
            "via": f"launcher {child.launcher_pid}" if forked else "subprocess",
        }
        requests.launched(self.store, row.id, process)

    # -- following ------------------------------------------------------------------------------------

    def follow(self) -> None:
        """Link launched processes to their runs, end requests whose runs ended, recover dead runs. Also the
        requests of a dead runner or worker on this host (whose run processes can be checked from here)."""
        dead_peers = {
            w.name for w in self._peers_here() if w.name != self.name and not requests.worker_alive(w)
        }
        for r in requests.in_flight(self.store):
            if r.worker == self.name or r.worker in dead_peers:
                with contextlib.suppress(Exception):
                    self._follow_one(r)

    def _peers_here(self) -> list[Any]:
        from sqlalchemy import select

        from labctl.store.models import Worker

        with self.store.engine.connect() as conn:
            rows = conn.execute(select(*Worker.__table__.c).where(Worker.host == leases.HOST)).all()
            conn.rollback()
        return rows

    def _follow_one(self, r: Any) -> None:
        child = self.children.get(r.id)
        exit_code = child.poll() if child is not None else None
        run_id = r.run_id
        if run_id is None and r.process:
            run_id = requests.run_of_process(self.store, r.process)
            if run_id is not None and r.state == "taken":
                requests.started(self.store, r.id, run_id, r.worker)
        if run_id is not None:
            run = self.store.run(run_id)
            if run["state"] in TERMINAL_STATES:
                if child is not None and exit_code is None:
                    return  # the run is writing its summary: end the request when its process has gone
                ok = run["state"] == "completed"
                reason = f"run {run_id} {run['state']}" + (
                    f": {run['exit_reason']}" if run["exit_reason"] else ""
                )
                self._end(r.id, ok, reason)
                return
            if child is not None and exit_code is None:
                return
            if self.store.process_state(run_id) != "dead":
                return  # alive (adopted after a restart), or another host's with a fresh heartbeat
            from labctl.clock import RealClock
            from labctl.engine.recovery import recover_run

            recover_run(
                self.store,
                self.store.run(run_id),
                clock=RealClock(),
                actor=self.name,
                why=f"process died (found by {self.kind} {self.name})",
            )
            self._end(r.id, False, f"run {run_id} died and was recovered (interrupted); not re-run")
            return
        # no run yet
        if child is not None:
            if exit_code is None:
                return
            self._end(
                r.id,
                False,
                f"the run process exited with {exit_code} before creating a run: {_tail(r.process)}",
            )
            return
        proc = r.process
        if (
            proc
            and proc["host"] == leases.HOST
            and leases.process_alive(proc["pid"], proc["proc_started"], proc["boot_id"])
        ):
            return  # launched by this runner before a restart; its run row is not there yet
        if proc and proc["host"] != leases.HOST:
            return
        self._end(r.id, False, f"{r.worker} stopped before the run started (no run was created); not re-run")

    def _end(self, request_id: int, ok: bool, reason: str) -> None:
        requests.finish(self.store, request_id, ok=ok, reason=reason, actor=self.name)
        self.own_keys.pop(request_id, None)
        child = self.children.pop(request_id, None)
        if child is not None:
            with contextlib.suppress(Exception):
                child.wait(timeout=5)

    def adopt(self) -> None:
        """After a restart: requests this worker name still has in flight keep their slots and keys."""
        for r in requests.in_flight(self.store, worker=self.name):
            self.own_keys[r.id] = keys_needed(r.requirements, self.info)

    def busy(self) -> bool:
        return bool(self.own_keys)


def _tail(process: dict[str, Any] | None) -> str:
    if not process or not process.get("log"):
        return "(no log)"
    try:
        text = Path(process["log"]).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return " ".join(text[-LOG_TAIL:].split()) or "(empty log)"
