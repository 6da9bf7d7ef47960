"""`labctl worker --station bench.yaml`: a bench worker on procrastinate (store and jobs in one PostgreSQL).

The worker runs procrastinate's worker on its own queue; the job `labctl.run_request` takes the request and
starts its run as its own process, then returns (a run may last weeks; a job should not). A follow loop
beside it links runs to requests, ends requests from their runs' end states, recovers dead runs (its own,
and those of dead workers on this host), keeps the worker's heartbeat row, and defers jobs for requests it
can serve that no job announced. SIGTERM or Ctrl-C: stop taking jobs, leave the runs running, mark the
worker stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable

from labctl.queue import jobs
from labctl.queue.dispatch import Dispatcher
from labctl.store import requests

FOLLOW_S = 0.5
FETCH_POLL_S = 2.0
RESTART_S = 1.0  # procrastinate's fallback poll; LISTEN/NOTIFY wakes the worker at once


def run_worker(d: Dispatcher, *, say: Callable[[str], None] = lambda s: None) -> None:
    jobs.ensure_schema(d.store)
    d.register()
    d.adopt()
    queue = jobs.queue_of(d.name)
    say(
        f"worker {d.name} serving station {d.info.name!r} ({'dry-run' if d.simulate else 'bench'}) on "
        f"procrastinate queue {queue}, up to {d.max_parallel} run(s) at a time"
    )
    d.start_launcher()
    try:
        asyncio.run(_main(d, queue))
    finally:
        d.stop_launcher()
    requests.worker_stopped(d.store, d.name, "stopped" + ("; runs left running" if d.busy() else ""))


async def _main(d: Dispatcher, queue: str) -> None:
    app = jobs.make_app(d.store)
    lock = threading.Lock()  # the job thread and the follow loop share the dispatcher

    @app.task(name=jobs.TASK)
    def run_request(request_id: int) -> str:
        with lock:
            return "started" if d.try_start(request_id) else "not started"

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def sweep() -> list[int]:
        wanted: list[int] = []
        with lock:
            d.follow()
            d.dispatch_once(start=lambda rid: wanted.append(rid) is None)
            d.beat()
        return wanted

    def start() -> asyncio.Task:
        return asyncio.create_task(
            app.run_worker_async(
                queues=[queue],
                name=d.name,
                concurrency=1,
                install_signal_handlers=False,
                listen_notify=True,
                fetch_job_polling_interval=FETCH_POLL_S,
                delete_jobs="successful",
            )
        )

    async with app.open_async():
        work = start()
        while not stop.is_set():
            if work.done():  # procrastinate gave up (the database went away): start it again
                why = "cancelled" if work.cancelled() else repr(work.exception())
                _say(f"worker {d.name}: procrastinate's worker stopped ({why}); restarting it")
                await asyncio.sleep(RESTART_S)
                work = start()
            try:
                for rid in await asyncio.to_thread(sweep):
                    await jobs.defer_async(app, rid, queue)
            except Exception as exc:  # the database away for a while: the runs go on, try again
                _say(f"worker {d.name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), FOLLOW_S)
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await work


def _say(text: str) -> None:
    print(text, flush=True)  # noqa: T201 - the worker's log (its stdout)
