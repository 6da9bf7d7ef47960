"""`labctl runner`: the embedded default. On this PC (the store usually SQLite), take the queued requests its
station can serve and start each as its own `labctl run` process, at most `max_parallel` at a time and never
two runs on one instrument (leases), then mark each request from its run's end state.

A stop (SIGTERM, Ctrl-C) stops taking requests and leaves the runs running; a runner started again under the
same name adopts them (see `labctl.queue.dispatch`).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labctl.queue.dispatch import Dispatcher
from labctl.store import requests

POLL_S = 0.5


def default_name(kind: str) -> str:
    from labctl.store.leases import HOST

    return f"{kind}@{HOST}"


def make_dispatcher(
    store: Any, *, station: Path, simulate: bool, max_parallel: int, name: str | None, kind: str
) -> Dispatcher:
    """Load the station and build the dispatcher (errors name the station file)."""
    from labctl.errors import ConfigError
    from labctl.station import load_station

    if max_parallel < 1:
        raise ConfigError(f"--max-parallel must be at least 1, got {max_parallel}")
    info = load_station(station)
    db_url = store.engine.url.render_as_string(hide_password=False)
    return Dispatcher(
        store, name or default_name(kind), kind, station.resolve(), info, simulate, db_url, max_parallel
    )


def run_runner(
    d: Dispatcher,
    *,
    once: bool = False,
    poll: float = POLL_S,
    stop: threading.Event | None = None,
    say: Callable[[str], None] = lambda s: None,
) -> dict[str, int]:
    """Serve until stopped (or, with `once`, until nothing this runner can start is left and its runs ended).
    Returns the request counts by state at the end."""
    stop = stop or threading.Event()
    _on_signals(stop)
    d.register()
    d.adopt()
    d.start_launcher()
    say(
        f"{d.kind} {d.name} serving station {d.info.name!r} ({'dry-run' if d.simulate else 'bench'}), "
        f"up to {d.max_parallel} run(s) at a time"
    )
    reason = "stopped"
    try:
        while not stop.is_set():
            d.follow()
            started = d.dispatch_once()
            d.beat()
            if once and not started and not d.busy():
                reason = "nothing left to run"
                break
            if not started:
                stop.wait(poll)
    finally:
        d.stop_launcher()
        requests.worker_stopped(d.store, d.name, reason if not d.busy() else f"{reason}; runs left running")
    return requests.counts(d.store)


def _on_signals(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, _frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    """Poll `predicate` until true or `timeout` s pass (used by `--once` callers and tests)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
