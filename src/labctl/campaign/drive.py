"""Driving a campaign: submit its planned cells as run requests, run them with the local runner (or leave
them to bench workers), then record an observation per finished cell and finish the campaign.

`start` is `labctl campaign run`; `resume` is the same from the rows after the campaign process died: nothing
is submitted twice (`state.submit_pending`), runs left running are adopted by the runner, runs that died are
recovered and their cells excluded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from labctl.campaign import state
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
          poll: float = 1.0, decide: Callable[..., Any] | None = None) -> dict[str, int]:
    """Run the submitted cells: with `runner`, a local runner (`labctl runner --once`) on `station` until
    nothing it can run is left; without, wait (up to `wait` s, None: until done) for workers elsewhere. Then
    observe the finished cells and finish the campaign if all are. A planner campaign loops (propose,
    `decide` or approve, run, observe: `suggestions.run_loop`) until its budget is spent. Returns the
    progress counts."""
    camp = state.get(store, campaign_id)
    state.submit_pending(store, campaign_id, actor=actor)  # resume: points a dead process never submitted
    from labctl.campaign import suggestions

    if suggestions.is_planned(camp):
        suggestions.run_loop(store, campaign_id, decide=decide, actor=actor, say=say, run_batch=lambda: _run(
            store, campaign_id, camp, runner=runner, station=station, max_parallel=max_parallel, wait=wait,
            actor=actor, say=say, poll=poll))
        state.observe(store, campaign_id, actor=actor)
        if suggestions.budget_left(store, campaign_id)[0] <= 0:
            state.finish_if_done(store, campaign_id, actor=actor)
        return state.progress(store, campaign_id)
    _run(store, campaign_id, camp, runner=runner, station=station, max_parallel=max_parallel, wait=wait,
         actor=actor, say=say, poll=poll)
    state.observe(store, campaign_id, actor=actor)
    state.finish_if_done(store, campaign_id, actor=actor)
    return state.progress(store, campaign_id)


def _run(store: Any, campaign_id: int, camp: dict[str, Any], *, runner: bool, station: Path | None,
         max_parallel: int, wait: float | None, actor: str | None, say: Callable[[str], None],
         poll: float) -> bool:
    """Run or wait for the submitted cells; False when the wait gave up with cells still running."""
    if runner:
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
            state.observe(store, campaign_id, actor=actor)
            time.sleep(poll)
    return True
