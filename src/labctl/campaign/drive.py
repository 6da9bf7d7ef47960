"""Driving a campaign: submit its planned cells as run requests, run them with the local runner (or leave
them to bench workers), then record an observation per finished cell and finish the campaign.

`start` is `labctl campaign run`; `resume` is the same from the rows after the campaign process died: nothing
is submitted twice (`state.submit_pending`), runs left running are adopted by the runner, runs that died are
recovered and their cells excluded.

A linked campaign (fabrication + test protocols) is served by one dispatcher for the fabrication bench (one
run at a time) and one per cycler channel (`labctl.campaign.channels`), all in this process, under names fixed
by the campaign id so a resumed campaign adopts the runs its dead predecessor launched. Between rounds
`lineage.advance` records finished fabrications and submits their cells' tests, which take any free channel.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labctl.campaign import lineage, state
from labctl.campaign.design import make_design, plan_design
from labctl.campaign.loader import load_campaign


def start(store: Any, path: str | Path, *, simulate: bool, actor: str | None = None,
          say: Callable[[str], None] = lambda s: None) -> int:
    """Load, design and plan the campaign, record it and submit every point that passed its plan; a point
    that failed its plan is recorded as refused and never queued. Returns the campaign id."""
    c = load_campaign(path)
    if c.model.planner is not None:  # no fixed design: the drive loop proposes points batch by batch
        from labctl.campaign import suggestions

        return suggestions.start(store, c, simulate=simulate, actor=actor)
    design = plan_design(c, make_design(c))
    cid = state.create(store, c, design, simulate=simulate, actor=actor)
    for p in design.failed:
        say(f"run {p.seq + 1} (point {p.point + 1}) refused by its plan: {p.errors[0]}")
    state.submit_pending(store, cid, actor=actor)
    return cid


def drive(store: Any, campaign_id: int, *, runner: bool, station: Path | None = None, max_parallel: int = 1,
          wait: float | None = None, actor: str | None = None, say: Callable[[str], None] = lambda s: None,
          poll: float = 1.0, decide: Callable[..., Any] | None = None,
          cycler: Path | None = None) -> dict[str, int]:
    """Run the submitted cells: with `runner`, a local runner (`labctl runner --once`) on `station` until
    nothing it can run is left (a linked campaign: `run_linked`, tests on `cycler`); without, wait (up to
    `wait` s, None: until done) for workers elsewhere. Then observe the finished cells and finish the
    campaign if all are. A planner campaign loops (propose,
    `decide` or approve, run, observe: `suggestions.run_loop`) until its budget is spent. Returns the
    progress counts."""
    camp = state.get(store, campaign_id)
    state.submit_pending(store, campaign_id, actor=actor)  # resume: points a dead process never submitted
    from labctl.campaign import suggestions

    if suggestions.is_planned(camp):
        suggestions.run_loop(store, campaign_id, decide=decide, actor=actor, say=say, run_batch=lambda: _run(
            store, campaign_id, camp, runner=runner, station=station, max_parallel=max_parallel, wait=wait,
            actor=actor, say=say, poll=poll, cycler=cycler))
        state.observe(store, campaign_id, actor=actor)
        if suggestions.spent(store, campaign_id):  # not while a proposal awaits a decision
            state.finish_if_done(store, campaign_id, actor=actor)
        return state.progress(store, campaign_id)
    _run(store, campaign_id, camp, runner=runner, station=station, max_parallel=max_parallel, wait=wait,
         actor=actor, say=say, poll=poll, cycler=cycler)
    state.observe(store, campaign_id, actor=actor)
    state.finish_if_done(store, campaign_id, actor=actor)
    return state.progress(store, campaign_id)


def _run(store: Any, campaign_id: int, camp: dict[str, Any], *, runner: bool, station: Path | None,
         max_parallel: int, wait: float | None, actor: str | None, say: Callable[[str], None],
         poll: float, cycler: Path | None = None) -> bool:
    """Run or wait for the submitted cells; False when the wait gave up with cells still running."""
    linked = state.is_linked(camp)
    if runner and linked:
        run_linked(store, campaign_id, station=station, cycler=cycler, max_parallel=max_parallel, actor=actor,
                   say=say)
    elif runner:
        from labctl.api.submit import find_station
        from labctl.queue.runner import make_dispatcher, run_runner

        st = station or (Path(camp["station_path"]) if camp["station_path"] else None)
        d = make_dispatcher(store, station=find_station(st, bool(camp["simulate"])),
                            simulate=bool(camp["simulate"]), max_parallel=max_parallel,
                            name=f"campaign{campaign_id}-runner", kind="runner")
        run_runner(d, once=True, say=say)
    else:
        end = None if wait is None else time.monotonic() + wait
        while state.progress(store, campaign_id)["pending"] != 0:
            if end is not None and time.monotonic() > end:
                return False
            if linked:
                lineage.advance(store, campaign_id, actor=actor)
            state.observe(store, campaign_id, actor=actor)
            time.sleep(poll)
    return True


FAB_SLOTS = 1  # the fabrication bench makes one sample at a time (one stage, one set of baths)
BEAT_S = 2.0


def run_linked(store: Any, campaign_id: int, *, station: Path | None, cycler: Path | None, max_parallel: int,
               actor: str | None = None, say: Callable[[str], None] = lambda s: None, poll: float = 0.25,
               stop: threading.Event | None = None) -> None:
    """Serve a linked campaign's own requests until none is left that these stations can run: fabrications
    on `station` (default: the campaign's), one at a time; tests on the cycler (`cycler`, default the
    campaign's, else the fabrication station): each channel one run, at most `max_parallel` test runs at once
    over all channels. A stop (SIGTERM, Ctrl-C) leaves the runs running for `resume` to adopt."""
    from labctl.api.submit import find_station
    from labctl.campaign.channels import load_rack
    from labctl.queue.runner import make_dispatcher
    from labctl.store import requests

    camp = state.get(store, campaign_id)
    sim = bool(camp["simulate"])
    fab_path = find_station(station or camp["station_path"], sim)
    rack = load_rack(cycler or camp.get("cycler_path") or fab_path)
    if sim:  # sealed: refuse the whole campaign before any run, not each cell's run one by one
        from labctl.drivers.transport import require_simulators
        from labctl.station import load_station

        for path in [fab_path, *(ch.path for ch in rack.channels)]:
            st = load_station(path)
            require_simulators({r: s.link for r, s in st.instruments.items()}, station=str(path))
    base = f"campaign{campaign_id}"
    fab = make_dispatcher(store, station=fab_path, simulate=sim, max_parallel=FAB_SLOTS,
                          name=f"{base}-fabrication", kind="runner")
    if len(rack.channels) > 1:
        tests = [make_dispatcher(store, station=ch.path, simulate=sim, max_parallel=1,
                                 name=f"{base}-{ch.name}", kind="runner") for ch in rack.channels]
    else:
        tests = [make_dispatcher(store, station=rack.first, simulate=sim, max_parallel=max_parallel,
                                 name=f"{base}-test", kind="runner")]
    everyone = [fab, *tests]
    stop = stop or threading.Event()
    _on_signals(stop)
    # one warm launcher for every dispatcher: each cell's two runs are forked from a process that has imported
    # the run path, not started as `python -m labctl run` (~1.4 s of imports each: issue 19); it warms up
    # while the dispatchers register ($LABCTL_NO_LAUNCHER: plain subprocesses)
    fab.start_launcher()
    for d in tests:
        d.launcher = fab.launcher
    for d in everyone:
        d.register()
        d.adopt()  # after a kill: the runs this campaign's dispatchers had launched keep their slots
    say(f"campaign {campaign_id}: fabrication on {fab.info.name!r}; tests on {rack.name!r} "
        f"({len(rack.channels)} channel(s), up to {max_parallel} test run(s) at a time)")
    reason, beat_at = "stopped", 0.0
    observer = _Observer(store, campaign_id, actor, say)
    try:
        while not stop.is_set():
            # a dispatcher follows when one of its run processes has exited (its request can end now), else
            # once per beat (linking runs, adopted runs, a dead peer's runs on this host): nine dispatchers
            # following every round cost the campaign process a fifth of the campaign's CPU (RESULTS.md). On a
            # beat only those with requests in flight follow, and the fabrication one for a dead peer's runs:
            # each follow checks every worker on this host, and nine a beat were ~30 % of the loop (issue 19)
            beat = time.monotonic() - beat_at > BEAT_S
            for d in everyone:
                exited = any(c.poll() is not None for c in d.children.values())
                if exited or (beat and (d is fab or d.busy())):
                    d.follow()
            _forget_ended(store, everyone)
            rows = lineage.cells(store, campaign_id)  # one read a round (it is most of an idle round's cost)
            moved = lineage.advance(store, campaign_id, actor=actor, rows=rows)
            if moved["tested"]:
                observer.poke()
            if any(moved.values()):
                rows = lineage.cells(store, campaign_id)
            started = _start_ours(rows, fab, tests, max_parallel)
            if beat:
                for d in everyone:
                    d.beat()
                beat_at = time.monotonic()
            if not started and not any(moved.values()) and not any(d.busy() for d in everyone):
                reason = "nothing left to run"
                break
            if not started:
                stop.wait(poll)
    finally:
        observer.close()  # the caller observes once more after this: nothing is left unobserved
        fab.stop_launcher()  # its runs go on (they are not its children): `resume` adopts them
        for d in tests:
            d.launcher = None
        for d in everyone:
            requests.worker_stopped(store, d.name, reason if not d.busy() else f"{reason}; runs left running")


class _Observer:
    """Observes the finished cells on a thread of its own when poked: classifying a cell reads and analyses
    its whole cycling series (~0.4 s of CPU for 1000 h), which on the loop's thread held up ending requests
    and starting the next fabrication each time a test ended (issue 19). One thread, so no cell is observed
    twice at once; an error is said and left to the observation after the loop."""

    def __init__(self, store: Any, campaign_id: int, actor: str | None, say: Callable[[str], None]) -> None:
        self.store, self.campaign_id, self.actor, self.say = store, campaign_id, actor, say
        self._poked = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name=f"campaign{campaign_id}-observer",
                                        daemon=True)
        self._thread.start()

    def poke(self) -> None:
        self._poked.set()

    def _loop(self) -> None:
        while True:
            self._poked.wait()
            self._poked.clear()
            if self._closing:
                return
            try:
                state.observe(self.store, self.campaign_id, actor=self.actor)
            except Exception as exc:  # the caller's observation after the loop tries again (and raises)
                self.say(f"campaign {self.campaign_id}: observing failed, tried again at the end: {exc}")

    def close(self) -> None:
        """Wait for the observation under way (if any), then end the thread."""
        self._closing = True
        self._poked.set()
        self._thread.join()


def _forget_ended(store: Any, dispatchers: list[Any]) -> None:
    """Free the slot of a request that someone else ended (a peer that took this process for dead after a
    wall-clock step, `labctl cancel`, another runner): a dispatcher frees only what it ends itself, and a
    slot held for an ended request would stop the campaign from ever starting another run. While its run
    process still runs the slot stays taken: its channel is in use whatever the request says."""
    from sqlalchemy import select

    from labctl.store.models import REQUEST_ENDED, RunRequest

    ids = [rid for d in dispatchers for rid in d.own_keys]
    if not ids:
        return
    with store.engine.connect() as conn:
        ended = set(conn.execute(select(RunRequest.id).where(RunRequest.id.in_(ids),
                                                             RunRequest.state.in_(REQUEST_ENDED))).scalars())
        conn.rollback()
    for d in dispatchers:
        for rid in [r for r in d.own_keys if r in ended]:
            child = d.children.get(rid)
            if child is None or child.poll() is not None:
                d.own_keys.pop(rid, None)
                d.children.pop(rid, None)


def _start_ours(rows: list[dict[str, Any]], fab: Any, tests: list[Any], max_parallel: int) -> int:
    """Start this campaign's queued requests (`rows`: `lineage.cells`), in run order: fabrications on the
    bench, tests on any free channel (`try_start` asks the leases, so a channel another process drives is
    skipped). Returns how many started."""
    started = 0
    for r in rows:
        if r["fab_state"] == "queued" and fab.free_slots() > 0 and fab.try_start(r["fab_request_id"]):
            started += 1
    budget = max_parallel - sum(len(d.own_keys) for d in tests)
    for r in rows:
        if budget <= 0:
            break
        if r["test_state"] != "queued":
            continue
        for d in tests:
            if d.free_slots() > 0 and d.try_start(r["test_request_id"]):
                started += 1
                budget -= 1
                break
    return started


def _on_signals(stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())
