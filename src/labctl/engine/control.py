"""Requests to a running run: Ctrl-C / SIGTERM in this process, `labctl pause|resume|abort|ack RUN` elsewhere.

Everything ends up as a `Command` in one queue that the run reads at its safe points (`poll`). Commands from
other terminals come through the store's control table, polled at most every `poll_interval` seconds of real
time (so a dry run on a virtual clock does not hammer the database; 0.1 s keeps `labctl abort` well inside
the 250 ms abort-to-safe goal for a few cheap queries a second). A local request sets `wake`, which ends the
run's current wait at once.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

COMMANDS = ("pause", "resume", "abort", "ack")


@dataclass(frozen=True)
class Command:
    name: str
    actor: str = "labctl"
    args: dict[str, Any] = field(default_factory=dict)
    source: str = "local"  # local | signal | store


class Control:
    """The command queue of one run."""

    def __init__(self, store: Any = None, run_id: int | None = None, *, poll_interval: float = 0.1) -> None:
        self.store = store
        self.run_id = run_id
        self.poll_interval = poll_interval
        self.wake = threading.Event()
        self._queue: deque[Command] = deque()
        self._lock = threading.Lock()
        self._last_poll = -1e9
        self.interrupts = 0  # Ctrl-C presses since the last resume
        self.on_abort: Callable[[str, str], None] | None = None  # (reason, actor), called by abort signals
        self._watch_stop: threading.Event | None = None

    def request(self, name: str, *, actor: str = "labctl", source: str = "local", **args: Any) -> None:
        """Queue a command from this process (also what the signal handlers do)."""
        if name not in COMMANDS:
            raise ValueError(f"unknown command {name!r}")
        with self._lock:
            self._queue.append(Command(name, actor, dict(args), source))
        self.wake.set()

    def poll(self, *, force: bool = False) -> list[Command]:
        """Commands waiting now, oldest first (store commands are marked consumed)."""
        now = time.monotonic()
        due = force or now - self._last_poll >= self.poll_interval
        if self.store is not None and self.run_id is not None and due:
            self._last_poll = now
            self._take_from_store()
        self.wake.clear()
        out: list[Command] = []
        while self._queue:  # popleft is atomic: a signal handler appending meanwhile loses nothing
            out.append(self._queue.popleft())
        return out

    def _take_from_store(self) -> list[Command]:
        """Queue the run's unconsumed store commands (marking them consumed); returns those queued."""
        taken = []
        for row in self.store.take_control(self.run_id):
            name, actor = str(row.get("command", "")), str(row.get("actor") or "unknown")
            if name in COMMANDS:
                taken.append(Command(name, actor, dict(row.get("args") or {}), "store"))
        with self._lock:
            self._queue.extend(taken)
        return taken

    def watch_store(self, every: float = 0.2) -> None:
        """Also take store commands on a thread, so that `labctl abort RUN` from another terminal cuts short a
        wait inside an instrument call (a 60 s acquisition) through `on_abort`, as a signal does. For runs on
        the wall clock; `stop_watching` ends it."""
        if self.store is None or self.run_id is None or self._watch_stop is not None:
            return
        stop = self._watch_stop = threading.Event()

        def loop() -> None:
            while not stop.wait(every):
                try:
                    taken = self._take_from_store()
                except Exception:  # the store is busy or failing: the run's own poll will tell
                    continue
                for cmd in taken:
                    if cmd.name == "abort" and self.on_abort is not None and not stop.is_set():
                        self.on_abort(f"abort requested by {cmd.actor} (store)", cmd.actor)
                if taken:
                    self.wake.set()

        threading.Thread(target=loop, name="labctl-control-watch", daemon=True).start()

    def stop_watching(self) -> None:
        if self._watch_stop is not None:
            self._watch_stop.set()

    def resumed(self) -> None:
        """After a resume, the next Ctrl-C pauses again."""
        self.interrupts = 0

    # -- signals ------------------------------------------------------------------------------------

    def _from_signal(self, name: str, actor: str) -> None:
        """Queue without taking a lock: the handler runs in the main thread, which may hold `_lock` or the
        `wake` event's own lock at that instant (taking either here could deadlock). `wake` is set from a
        short thread; an abort also calls `on_abort` (which cuts short a wait inside an instrument call)."""
        self._queue.append(Command(name, actor, {}, "signal"))
        threading.Thread(target=self.wake.set, name="labctl-signal-wake", daemon=True).start()
        if name == "abort" and self.on_abort is not None:
            self.on_abort(f"abort requested by {actor} (signal)", actor)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.interrupts += 1
        self._from_signal("pause" if self.interrupts == 1 else "abort", "ctrl-c")

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self._from_signal("abort", "SIGTERM")

    @contextlib.contextmanager
    def signals(self) -> Iterator[None]:
        """Route Ctrl-C (pause, then abort) and SIGTERM (abort) here while the run executes.

        Outside the main thread signals cannot be caught; then this does nothing.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        old_int = signal.signal(signal.SIGINT, self._on_sigint)
        old_term = signal.signal(signal.SIGTERM, self._on_sigterm)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, old_term)
