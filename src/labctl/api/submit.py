"""`Lab.submit`: queue a run request and start it without blocking the caller, then follow and control it
through the store.

One submit for the CLI and the API: `Lab.submit` checks the protocol here (a bad file raises in the caller)
and queues it with `labctl.queue.submit`, as `labctl submit` does; then the lab's own dispatcher (the one the
local runner and the bench workers use, `labctl.queue.dispatch`) takes the request and starts its `labctl
run` as a process of its own session at once, so a notebook cell returns at once, interrupting the kernel
does not abort the bench, and a kernel restart leaves a 1000 h test running. A request that cannot start yet
(its instruments leased by another run) stays queued: it is tried again whenever the handle is looked at, and
any runner or worker serving the station may take it (the handle follows the request, whoever runs it).
Everything after the start goes through the store, as from another terminal: `pause()`/`resume()`/`abort()`/
`ack()` post the audited control commands `labctl pause RUN` posts, and `progress` reads the run's steps.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labctl.api.protocol import override_text
from labctl.api.runs import TERMINAL, RunHandle
from labctl.errors import ConfigError, LabctlError

if TYPE_CHECKING:
    from labctl.queue.dispatch import Dispatcher
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
    """A run requested by `Lab.submit`: `.request_id`, `.run_id`, `.state`, `.progress`, `.wait()`,
    `.pause()`, `.resume()`, `.abort()`, `.ack()`; `.summary`: the `labctl run --json` summary once ended."""

    def __init__(self, store: Store, dispatcher: Dispatcher | None, request_id: int | None, *, operator: str,
                 error: str | None = None) -> None:
        self._store, self._d, self.request_id, self.operator = store, dispatcher, request_id, operator
        self._error = error  # why it could not even be queued (a station that cannot be read)
        self.submitted_at = time.time()
        self._child: Any = None
        self._run_id: int | None = None
        self._tick()

    def __repr__(self) -> str:
        state = self._peek_state()
        return f"<labctl submission request {self.request_id}: run {self._run_id or '?'} {state}>"

    def _row(self) -> Any:
        from labctl.store import requests

        return None if self.request_id is None else requests.raw(self._store, self.request_id)

    def _tick(self) -> Any:
        """Start the request if it is still queued and can start now; end it if its run has ended (this
        lab's own runs); the request's row."""
        if self._d is None or self.request_id is None:
            return None
        row = self._row()
        if row.state == "queued":
            with contextlib.suppress(Exception):  # not startable now: stays queued, tried again next look
                self._d.try_start(self.request_id)
        if self._child is None:
            self._child = self._d.children.get(self.request_id)
        with contextlib.suppress(Exception):
            self._d.follow()
        return self._row()

    @property
    def argv(self) -> list[str]:
        """The run's `labctl run` command line (the store's password hidden); empty before it started."""
        return [] if self._d is None else self._d.commands.get(self.request_id or -1, [])

    @property
    def pid(self) -> int | None:
        row = self._row()
        return None if row is None or not row.process else int(row.process["pid"])

    @property
    def returncode(self) -> int | None:
        """The `labctl run` exit code once it has ended (0 completed, 1 failed, 130 aborted), else None (also
        when a runner or worker, not this lab, started it)."""
        return None if self._child is None else self._child.poll()

    def _lookup(self) -> int | None:
        from labctl.store import requests

        row = self._tick()
        if row is None:
            return None
        if row.run_id is not None:
            return int(row.run_id)
        if row.process:
            return requests.run_of_process(self._store, row.process)
        return None

    def _failure(self) -> str | None:
        """Why the request ended without a run (None: it has one, or has not ended)."""
        from labctl.store import requests

        if self._error is not None:
            return self._error
        row = self._row()
        if row is None or not requests.is_ended(row.state) or self._lookup() is not None:
            return None
        reason = row.reason or row.state
        return reason.split(": error: ", 1)[1] if ": error: " in reason else reason

    def wait_started(self, timeout: float = START_TIMEOUT_S) -> int:
        """The run's id once its `labctl run` has recorded it; `SubmitError` with the reason if the request
        ended without one (a protocol problem, plan errors, a missing station)."""
        deadline = time.monotonic() + timeout
        while self._run_id is None:
            self._run_id = self._lookup()
            if self._run_id is not None:
                break
            why = self._failure()
            if why is not None:
                raise SubmitError(f"the run did not start: {why}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"request {self.request_id}: no run recorded within {timeout:.0f} s")
            time.sleep(POLL_S)
        return self._run_id

    @property
    def run_id(self) -> int:
        return self.wait_started()

    def _peek_state(self) -> str:
        if self._run_id is None:
            self._run_id = self._lookup()
        if self._run_id is None:
            if self._failure() is not None:
                return "not started"
            row = self._row()
            return "queued" if row is not None and row.state == "queued" else "starting"
        self._tick()
        return str(self._store.run(self._run_id)["state"])

    @property
    def state(self) -> str:
        """`queued` (waiting for its instruments), `starting` until the run is recorded, then its state in the
        store (`SubmitError` if it never started)."""
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
        if self._peek_state() in ("queued", "starting", "not started"):
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

    def _ended(self) -> bool:
        from labctl.store import requests

        if self._error is not None:
            return True
        row = self._tick()
        if row is not None and requests.is_ended(row.state):
            return True
        if self._child is None and self._run_id is not None:  # another runner's: the run's own end state
            return self._store.run(self._run_id)["state"] in TERMINAL and self._store.process_state(
                self._run_id) == "dead"
        return False

    def wait(self, timeout: float | None = None) -> RunHandle:
        """Block until the run has ended (its process exited); the run's handle. `TimeoutError` after
        `timeout` s (the run goes on)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ended():
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {self._run_id or '(starting)'} still going after {timeout} s")
            time.sleep(POLL_S * 4)
        run = RunHandle(self._store, self.wait_started(0))
        if run.state not in TERMINAL:  # the process died without ending the run: `labctl recover` is next
            raise LabctlError(f"run {run.id}'s process exited ({self.returncode}) with the run {run.state}: "
                              f"{self._row().reason or 'no message'}; use `labctl recover`")
        return run

    @property
    def summary(self) -> dict[str, Any] | None:
        """The `labctl run --json` summary (state, reason, points, steps, safe state) once ended."""
        row = self._row()
        if row is None or not row.process or not self._ended():
            return None
        with contextlib.suppress(OSError, ValueError):
            text = Path(row.process["log"]).read_text(errors="replace")
            start = text.rfind("\n{\n") + 1 if not text.startswith("{") else 0
            return json.loads(text[start:])
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
        """Nothing to release: the run's log stays in the spool, the run itself in the store."""


def open_dispatcher(store: Store, station: Path, simulate: bool) -> Dispatcher:
    """The lab's dispatcher for `station`: registered as this process (kind `api`), so a runner on this host
    follows its requests to their end if this process goes away first."""
    import hashlib

    from labctl.queue.runner import make_dispatcher
    from labctl.store.leases import HOST

    tag = hashlib.sha256(f"{station.resolve()}:{simulate}".encode()).hexdigest()[:8]
    d = make_dispatcher(store, station=station, simulate=simulate, max_parallel=1_000_000,
                        name=f"api@{HOST}:{os.getpid()}:{tag}", kind="api")
    d.env = _child_env(d.db_url)
    d.register()
    return d


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


def close_dispatchers(store: Store, dispatchers: dict[tuple[str, bool], Dispatcher]) -> None:
    """At `Lab.close`: end the requests whose runs have ended, and mark the lab's dispatchers stopped (runs
    still going are followed to their end by a runner on this host once this process has gone)."""
    from labctl.store import requests

    for d in dispatchers.values():
        with contextlib.suppress(Exception):
            d.follow()
            requests.worker_stopped(store, d.name, "lab closed" + ("; runs left running" if d.busy() else ""))
    dispatchers.clear()


def submit_request(store: Store, dispatchers: dict[tuple[str, bool], Dispatcher], protocol: Path,
                   params: dict[str, Any], *, station: str | Path | None, simulate: bool, seed: int | None,
                   realtime: bool, sample: str | None, operator: str) -> Submission:
    """`Lab.submit`'s work: the request queued by `labctl.queue.submit` and started by the lab's dispatcher
    for the station (`dispatchers` caches one per station). A station that cannot be read is reported by the
    handle (`SubmitError` from `state`/`wait`), as a run that could not start is."""
    from labctl.queue import submit

    path = find_station(station, simulate)
    key = (str(path.resolve()), simulate)
    if key not in dispatchers:
        try:
            dispatchers[key] = open_dispatcher(store, path, simulate)
        except ConfigError as exc:
            return Submission(store, None, None, operator=operator, error=str(exc))
    d = dispatchers[key]
    rid = submit(protocol, parameters={k: override_text(v) for k, v in params.items()}, sample=sample,
                 simulate=simulate, realtime=realtime, requested_by=operator, store=store)
    if seed is not None:
        d.extra_args[rid] = ["--seed", str(int(seed))]
    return Submission(store, d, rid, operator=operator)
