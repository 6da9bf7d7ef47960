"""A warm launcher: one process per runner or worker that has already imported the run path (engine, drivers,
simulators, store, numpy, pint, SQLAlchemy) and forks each run from there, so a run starts in a fraction of a
second instead of paying `python -m labctl run`'s imports again (1.4 s of a 2 s dry run on an idle machine,
seconds more on a loaded one).

Each run is still its own process, and outlives both the worker and the launcher: the launcher forks, the
child calls `setsid()`, forks again and exits, so the run (the grandchild) is reparented to init in a session
of its own; killing the worker or the launcher (even with SIGKILL) does not reach it. The launcher opens no
store and starts no thread, so a forked run opens its own connections (no SQLAlchemy pool or socket is shared
across a fork). The grandchild then runs exactly what `labctl ARGS` would (`labctl.cli.main`), stdout and
stderr on the request's log, and writes its exit code beside the log (`LOG.exit`) for whoever follows it.

Stale code is never run: the launcher records a fingerprint of labctl's sources (version, every module's
path, size and mtime) taken before it imported them; the client compares it with the files on disk before
each launch and replaces a launcher whose code differs (after an upgrade) before launching.

Wire (the client's pipes to the launcher's stdin/stdout, one JSON object per line): the launcher first says
`{"ready": true, "fingerprint": F, "pid": P}` once warm; then to each `{"args": [...], "log": PATH, "env":
{...}}` it answers `{"pid": N, "proc_started": T}` or `{"error": "..."}`. EOF on stdin (the client gone)
ends it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, Queue
from typing import Any

READY_TIMEOUT_S = 60.0  # a loaded 2-core machine takes seconds to import the run path
REPLY_TIMEOUT_S = 10.0
EXIT_UNKNOWN = -1  # a run process that ended without writing its exit code (killed)

# the run path `labctl run` imports (measured with -X importtime on a dry run), whole packages where a run
# picks its modules by the station and protocol (drivers, simulators, steps)
WARM_MODULES = [
    "labctl.cli.run_cmds", "labctl.compose", "labctl.engine.run", "labctl.engine.progress",
    "labctl.engine.recovery", "labctl.store.store", "labctl.simulators.dryrun", "labctl.cli.store_cmds",
    "sqlalchemy.dialects.sqlite.pysqlite", "sqlalchemy.dialects.postgresql.psycopg", "rich.console",
]
WARM_PACKAGES = ["labctl.drivers", "labctl.simulators", "labctl.steps", "labctl.engine", "labctl.store"]


def source_fingerprint() -> str:
    """labctl's version, each of its source files' (path, size, mtime) and the mtime of the interpreter's
    site-packages (a pip install or upgrade adds and removes dist-info directories there): changes when labctl
    or a package it runs on is upgraded or edited. A stat per file (a few ms), cheap before each launch."""
    import sysconfig

    import labctl

    root = Path(labctl.__file__).resolve().parent
    h = hashlib.sha256(str(getattr(labctl, "__version__", "")).encode())
    paths = sysconfig.get_paths()
    for entry in sorted({paths["purelib"], paths["platlib"], str(root.parent)}):
        with contextlib.suppress(OSError):
            h.update(f"{entry}:{os.stat(entry).st_mtime_ns}\n".encode())
    for path in sorted(root.rglob("*.py")):
        with contextlib.suppress(OSError):
            st = path.stat()
            h.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


# -- the launcher process ------------------------------------------------------------------------------------


def _warm() -> None:
    import importlib
    import pkgutil

    for name in WARM_MODULES:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    for pkg_name in WARM_PACKAGES:
        with contextlib.suppress(Exception):
            pkg = importlib.import_module(pkg_name)
            for info in pkgutil.walk_packages(pkg.__path__, pkg_name + "."):
                with contextlib.suppress(Exception):
                    importlib.import_module(info.name)
    import functools

    import typer.main

    import labctl.cli
    import labctl.store.store

    # Work every run would repeat, done once here for all the runs this launcher forks (this process only):
    # typer's click command for the app (typer rebuilds it from the signatures on every call), and the
    # package versions a run records (metadata scans; the runs use the packages this process imported, and
    # an upgrade changes the fingerprint, so these are the versions that run)
    app = labctl.cli.app
    built = typer.main.get_command(app)
    plain = typer.main.get_command
    typer.main.get_command = lambda typer_app: built if typer_app is app else plain(typer_app)
    labctl.store.store._versions = functools.cache(labctl.store.store._versions)
    labctl.store.store._versions()


_replies: Any = None  # the pipe to the client: stdout's original fd (fd 1 itself goes to stderr, see serve)


def _name_process(name: str) -> None:
    """The process name `ps -o comm`, top and pgrep show (Linux, 15 bytes): a forked run keeps the launcher's
    command line, so its name says what it is."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME


def _reply(obj: dict[str, Any]) -> None:
    _replies.write(json.dumps(obj) + "\n")
    _replies.flush()


def _run_child(args: list[str], log: str, env: dict[str, str]) -> None:
    """In the grandchild: become `labctl ARGS` writing to `log`, with `env` set; never returns."""
    code = 70
    try:
        os.close(_replies.fileno())
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        os.close(null)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _name_process("labctl-run")
        os.environ.update(env)
        sys.argv = ["labctl", *args]
        from labctl.cli import main

        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if exc.code is not None and not isinstance(exc.code, int):
                sys.stderr.write(f"{exc.code}\n")
    except BaseException:  # a bug in this path: the traceback goes to the run's log
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(Exception):
            Path(log + ".exit").write_text(f"{code}\n")
        os._exit(code)


def _launch(args: list[str], log: str, env: dict[str, str]) -> dict[str, Any]:
    """Double fork; the grandchild waits on a gate until its identity is read, so it is always found alive."""
    from labctl.store.leases import process_started

    pid_r, pid_w = os.pipe()
    gate_r, gate_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child == 0:  # the intermediate: a new session, fork the run, report its pid, exit
        try:
            os.close(pid_r)
            os.close(gate_w)
            os.setsid()
            run = os.fork()
            if run == 0:
                os.close(pid_w)
                os.read(gate_r, 1)  # until the launcher has the run's identity (or has died: EOF)
                os.close(gate_r)
                _run_child(args, log, env)
            os.write(pid_w, str(run).encode())
        finally:
            os._exit(0)
    os.close(pid_w)
    os.close(gate_r)
    try:
        raw = os.read(pid_r, 32)
        os.close(pid_r)
        os.waitpid(child, 0)  # the intermediate has exited: the run is init's child now
        if not raw:
            return {"error": "the launcher's fork failed"}
        pid = int(raw)
        return {"pid": pid, "proc_started": process_started(pid)}
    finally:
        with contextlib.suppress(OSError):
            os.write(gate_w, b"g")
        os.close(gate_w)


def serve() -> None:
    """The launcher's main loop (`python -m labctl.queue.launcher`)."""
    global _replies
    fingerprint = source_fingerprint()  # before importing: a file changed while warming makes it look stale
    _replies = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever an import prints goes to the launcher's log, never into the replies
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C at the worker's terminal is the worker's
    _name_process("labctl-launcher")
    _warm()
    _reply({"ready": True, "fingerprint": fingerprint, "pid": os.getpid()})
    for line in sys.stdin:
        try:
            req = json.loads(line)
            env = {str(k): str(v) for k, v in (req.get("env") or {}).items()}
            out = _launch([str(a) for a in req["args"]], str(req["log"]), env)
        except Exception as exc:
            out = {"error": f"{type(exc).__name__}: {exc}"}
        _reply(out)


# -- the client side (in the runner or worker) ---------------------------------------------------------------


@dataclass
class ForkedRun:
    """A run process the launcher started: not our child, so followed by its identity and its exit file;
    `poll`/`wait` as on a `subprocess.Popen`."""

    pid: int
    proc_started: float | None
    boot: str | None
    exit_path: Path
    launcher_pid: int | None = None

    def poll(self) -> int | None:
        from labctl.store.leases import process_alive

        if process_alive(self.pid, self.proc_started, self.boot):
            return None
        try:
            return int(self.exit_path.read_text().strip())
        except (OSError, ValueError):
            return EXIT_UNKNOWN

    def wait(self, timeout: float | None = None) -> int:
        end = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if end is not None and time.monotonic() > end:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0.0)
            time.sleep(0.05)
        return code


class Launcher:
    """The client: starts the launcher process, launches runs through it, replaces it when labctl's code on
    disk changed, and says `None` (launch it the plain way) whenever it is not ready or not answering."""

    def __init__(self, log: Path | None = None) -> None:
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.fingerprint: str | None = None
        self._lines: Queue[str | None] = Queue()
        self.launched = 0
        self.fallbacks = 0

    def start(self) -> None:
        """Start a launcher in the background (it warms up while the caller goes on)."""
        self.stop()
        err = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "labctl.queue.launcher"], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=err, start_new_session=True, text=True, bufsize=1,
            )
        finally:
            if err is not subprocess.DEVNULL:
                err.close()
        self.fingerprint = None
        self._lines = Queue()
        threading.Thread(target=self._read, args=(self.proc, self._lines), daemon=True).start()

    @staticmethod
    def _read(proc: subprocess.Popen, lines: Queue) -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    def ready(self, timeout: float = 0.0) -> bool:
        """Whether the launcher is warm (waiting up to `timeout` s for its first line)."""
        if self.proc is None or self.proc.poll() is not None:
            return False
        if self.fingerprint is None:
            try:
                line = self._lines.get(timeout=timeout) if timeout > 0 else self._lines.get_nowait()
            except Empty:
                return False
            try:
                self.fingerprint = None if line is None else str(json.loads(line)["fingerprint"])
            except (ValueError, KeyError, TypeError):
                self.fingerprint = None
            if self.fingerprint is None:
                self.stop()
                return False
        return True

    def launch(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> ForkedRun | None:
        """Start `labctl ARGS` writing to `log`, with `env` added to the launcher's environment (values kept
        off the command line, such as the store's URL), through the launcher (waiting for one warming up);
        None when it cannot (not warm within READY_TIMEOUT_S, gone, failing): launch it the plain way."""
        from labctl.store.leases import boot_id

        for _ in range(2):  # a stale launcher is replaced once; a second stale one (edits going on): plainly
            if self.proc is None or self.proc.poll() is not None:
                self.start()  # none yet, or it died: a new one
            # waiting for a warming launcher beats a plain start: that would import everything from scratch
            if not self.ready(READY_TIMEOUT_S):
                self.fallbacks += 1
                return None
            if self.fingerprint == source_fingerprint():
                break
            self.start()  # labctl or a dependency upgraded since it warmed up: never fork stale code
        else:
            self.fallbacks += 1
            return None
        try:
            self.proc.stdin.write(json.dumps({"args": args, "log": str(log), "env": env or {}}) + "\n")
            self.proc.stdin.flush()
            line = self._lines.get(timeout=REPLY_TIMEOUT_S)
        except (OSError, ValueError, Empty):
            line = None
        try:
            reply = json.loads(line) if line else {"error": "no reply"}
        except ValueError:
            reply = {"error": f"not a reply: {line!r}"}
        if "pid" not in reply:
            self.start()  # a launcher that failed once is not trusted again
            self.fallbacks += 1
            return None
        self.launched += 1
        return ForkedRun(int(reply["pid"]), reply.get("proc_started"), boot_id(), Path(str(log) + ".exit"),
                         self.proc.pid)

    def stop(self) -> None:
        """End the launcher (its runs go on: they are not its children)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError, ValueError):
            proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


if __name__ == "__main__":
    serve()
