"""`Lab.submit`: start a run without blocking the caller, then follow and control it through the store.

The engine does not run in the caller's process: a Jupyter kernel already runs an event loop, owns SIGINT,
and may be restarted while a 1000 h cycling test goes on. A submission is a `labctl run` subprocess (its own
session, so interrupting the kernel does not abort the bench; the run's own Ctrl-C/SIGTERM handling works),
and everything after the start goes through the store, as from another terminal: the run is found by the
pid and host it records, `pause()`/`resume()`/`abort()`/`ack()` post the audited control commands `labctl
pause RUN` posts, and `progress` reads the run's recorded steps.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labctl.api.protocol import override_text
from labctl.api.runs import TERMINAL, RunHandle
from labctl.errors import ConfigError, LabctlError

if TYPE_CHECKING:
    from labctl.store import Store

SIMULATED_STATION = "stations/simulated.yaml"
START_TIMEOUT_S = 60.0  # a loaded 2-core machine takes seconds to import labctl and plan a run
POLL_S = 0.05


class SubmitError(LabctlError):
    """The `labctl run` of a submission ended without creating a run (bad file, plan errors, no station)."""


def find_station(station: str | Path | None, simulate: bool) -> Path:
    """The station file: the one given, or for a dry run `stations/simulated.yaml` in the working directory
    or the labctl source tree (what `labctl run --simulate` uses without --station)."""
    if station:
        return Path(station)
    if not simulate:
        raise ConfigError("a bench run needs --station (or use --simulate for a dry run)")
    for base in (Path.cwd(), Path(__file__).resolve().parents[3]):
        if (base / SIMULATED_STATION).is_file():
            return base / SIMULATED_STATION
    raise ConfigError(f"no {SIMULATED_STATION} found; pass --station")


class Submission:
    """A run started by `Lab.submit`: `.run_id`, `.state`, `.progress`, `.wait()`, `.pause()`, `.resume()`,
    `.abort()`, `.ack()`; `.summary` is the `labctl run --json` summary once it has ended."""

    def __init__(self, store: Store, db_url: str, argv: list[str], *, operator: str) -> None:
        self._store, self.operator = store, operator
        self._files = [Path(_temp(suffix)) for suffix in (".json", ".err")]
        self.argv = argv
        self.submitted_at = time.time()
        with self._files[0].open("wb") as out, self._files[1].open("wb") as err:  # the child keeps its copies
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=_child_env(db_url),
                start_new_session=True,
            )
        self._run_id: int | None = None

    def __repr__(self) -> str:
        return f"<labctl submission pid {self.pid}: run {self._run_id or '?'} {self._peek_state()}>"

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def returncode(self) -> int | None:
        """The `labctl run` exit code once it has ended (0 completed, 1 failed, 130 aborted), else None."""
        return self._proc.poll()

    def _lookup(self) -> int | None:
        from labctl.store.leases import HOST

        for row in reversed(self._store.runs(since=self.submitted_at - 1.0)):
            if row["pid"] == self._proc.pid and row["host"] == HOST:
                return int(row["id"])
        return None

    def _stderr(self) -> str:
        text = self._files[1].read_text(errors="replace").strip()
        return text.replace("error: ", "", 1) if text.startswith("error: ") else text

    def wait_started(self, timeout: float = START_TIMEOUT_S) -> int:
        """The run's id once its `labctl run` has recorded it; `SubmitError` with the CLI's message if the
        process ended without one (a protocol problem, plan errors, a missing station)."""
        deadline = time.monotonic() + timeout
        while self._run_id is None:
            exited = self._proc.poll() is not None
            self._run_id = self._lookup()
            if self._run_id is not None:
                break
            if exited:
                raise SubmitError(f"the run did not start (labctl run exited {self._proc.returncode}): "
                                  f"{self._stderr() or 'no message'}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no run recorded by pid {self.pid} within {timeout:.0f} s")
            time.sleep(POLL_S)
        return self._run_id

    @property
    def run_id(self) -> int:
        return self.wait_started()

    def _peek_state(self) -> str:
        if self._run_id is None:
            self._run_id = self._lookup()
        if self._run_id is None:
            return "starting" if self._proc.poll() is None else "not started"
        return str(self._store.run(self._run_id)["state"])

    @property
    def state(self) -> str:
        """`starting` until the run is recorded, then its state in the store (`SubmitError` if it never
        started)."""
        state = self._peek_state()
        if state == "not started":
            self.wait_started(0)  # raises with the reason
        return state

    @property
    def run(self) -> RunHandle:
        return RunHandle(self._store, self.run_id)

    @property
    def progress(self) -> dict[str, Any]:
        """Where the run is: state, steps done of total, the running step, points stored so far."""
        if self._peek_state() in ("starting", "not started"):
            return {"state": self.state, "steps_done": 0, "steps_total": None, "step": None, "points": 0}
        info = self._store.run(self.run_id)
        steps = info["steps"]
        running = next((s for s in steps if s["status"] == "running"), None)
        done = sum(s["status"] in ("done", "failed", "skipped", "deviated") for s in steps)
        return {
            "state": info["state"],
            "steps_done": done,
            "steps_total": len(steps),
            "fraction": done / len(steps) if steps else 1.0,
            "step": None if running is None else {"index": running["index"], "kind": running["kind"]},
            "points": sum(s["points"] for s in self._store.streams(self.run_id)),
        }

    def wait(self, timeout: float | None = None) -> RunHandle:
        """Block until the run has ended (its process exited); the run's handle. `TimeoutError` after
        `timeout` s (the run goes on)."""
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"run {self._run_id or '(starting)'} still going after {timeout} s") from None
        run = RunHandle(self._store, self.wait_started(0))
        if run.state not in TERMINAL:  # the process died without ending the run: `labctl recover` is next
            raise LabctlError(f"run {run.id}'s process exited ({self._proc.returncode}) with the run "
                              f"{run.state}: {self._stderr() or 'no message'}; use `labctl recover`")
        return run

    @property
    def summary(self) -> dict[str, Any] | None:
        """The `labctl run --json` summary (state, reason, points, steps, safe state) once ended."""
        if self._proc.poll() is None:
            return None
        with contextlib.suppress(ValueError):
            return json.loads(self._files[0].read_text() or "null")
        return None

    def _control(self, command: str) -> int:
        return self._store.post_control(self.run_id, command, actor=self.operator)

    def pause(self) -> int:
        """Pause at the run's next safe point (audited, like `labctl pause RUN`); the command's id."""
        return self._control("pause")

    def resume(self) -> int:
        return self._control("resume")

    def abort(self) -> int:
        """Abort: safe state on every instrument (audited, like `labctl abort RUN`)."""
        return self._control("abort")

    def ack(self) -> int:
        """Acknowledge the run's operator step (`labctl ack RUN`)."""
        return self._control("ack")

    def close(self) -> None:
        """Forget the temp files once the run has ended (the run itself is in the store)."""
        if self._proc.poll() is None:
            return
        for path in self._files:
            with contextlib.suppress(OSError):
                path.unlink()


def _temp(suffix: str) -> str:
    fd, path = tempfile.mkstemp(prefix="labctl-submit-", suffix=suffix)
    os.close(fd)
    return path


def _child_env(db_url: str) -> dict[str, str]:
    """The caller's environment, the store's URL (not on the command line: it may hold a password) and this
    labctl first on the path, so the child runs the very code the caller imported."""
    import labctl

    env = dict(os.environ)
    env["LABCTL_DB"] = db_url
    env["COLUMNS"] = "4096"  # its messages are read by a program: no wrapping at a terminal's width
    src = str(Path(labctl.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    return env


def run_argv(protocol: Path, params: dict[str, Any], *, station: Path, simulate: bool, seed: int | None,
             realtime: bool, sample: str | None, operator: str) -> list[str]:
    """The `labctl run` command line of a submission."""
    argv = [sys.executable, "-m", "labctl", "run", str(protocol.resolve()),
            "--station", str(station.resolve()), "--json", "--operator", operator]
    if simulate:
        argv.append("--simulate")
    if seed is not None:
        argv += ["--seed", str(int(seed))]
    if realtime:
        argv.append("--realtime")
    if sample:
        argv += ["--sample", sample]
    for k, v in params.items():
        argv += ["-p", f"{k}={override_text(v)}"]
    return argv
