"""Campaign rows in the store: created with the design and its seed, each planned cell submitted once (a
request a dead process committed is linked, not submitted again), refused points never queued, cells
classified as failed, censored or excluded; the migration."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, inspect, select

from labctl.campaign import load_campaign, state
from labctl.campaign.design import make_design, plan_design
from labctl.campaign.drive import start
from labctl.campaign.observations import classify
from labctl.queue import submit
from labctl.store import Store
from labctl.store.models import RunRequest

from .conftest import ROOT

SHORT = ROOT / "campaigns" / "short-dry-run.yaml"


def _requests(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(RunRequest)).scalar())


def _events(store: Store, kind: str) -> list[dict[str, Any]]:
    return [json.loads(e["data"]) for e in store.events() if e["kind"] == kind]


def test_schema_has_the_campaign_tables(sqlite_db: str) -> None:
    with Store.open(sqlite_db) as store:
        tables = set(inspect(store.engine).get_table_names())
    assert {"campaigns", "campaign_points", "campaign_observations"} <= tables


def test_resume_links_a_committed_request_and_submits_nothing_twice(db_url: str) -> None:
    c = load_campaign(SHORT)
    design = plan_design(c, make_design(c))
    with Store.open(db_url) as store:
        cid = state.create(store, c, design, simulate=True, actor="ada")
        first = state.points(store, cid)[0]
        # the campaign process died after its first request was committed, before the point was linked to it
        orphan = submit(c.protocols["test"].path, text=c.protocols["test"].text, parameters=first["values"],
                        sample=first["sample_id"], simulate=True, store=store)
        linked = state.submit_pending(store, cid, actor="ada")
        assert linked[0] == orphan and len(linked) == 4 and len(set(linked)) == 4
        assert _requests(store) == 4
        assert state.submit_pending(store, cid, actor="ada") == []  # resumed again: nothing new
        assert _requests(store) == 4
        rows = state.points(store, cid)
        assert [r["request_id"] for r in rows] == linked
        assert all(r["request_state"] == "queued" for r in rows)
        subs = _events(store, "campaign.point.submitted")
        assert [s["adopted"] for s in subs] == [True, False, False, False]
        created = _events(store, "campaign.created")
        assert created[0]["seed"] == 1 and created[0]["points"] == 4
        assert state.progress(store, cid) == {"points": 4, "refused": 0, "unsubmitted": 0, "pending": 4,
                                              "failed": 0, "censored": 0, "excluded": 0}
        assert state.finish_if_done(store, cid) is False
        assert store.verify().ok


def test_points_refused_by_their_plan_are_recorded_never_queued(db_url: str,
                                                                 write: Callable[[str], Path]) -> None:
    path = write("factors:\n  concentration: {levels: [0.1 M, 2 M]}\ndesign: {replicates: 2, seed: 5}\n")
    said: list[str] = []
    with Store.open(db_url) as store:
        cid = start(store, path, simulate=True, say=said.append)
        rows = state.points(store, cid)
        refused = [r for r in rows if not r["plan_ok"]]
        assert len(refused) == 2 and all(r["values"]["concentration"] == "2 M" for r in refused)
        assert all(r["request_id"] is None and r["request_state"] == "refused by plan" for r in refused)
        assert all("hard limit" in " ".join(r["plan_errors"]) for r in refused)
        assert _requests(store) == 2
        assert len(said) == 2 and all("refused by its plan" in s for s in said)
        assert state.get(store, cid)["seed"] == 5


class _CyclingRun:
    """A run whose cycling step starts after 1000 s of fabrication: `short_at` half-cycles of 15 min at 50 mV,
    then (if it shorts) the overpotential collapses to 2 mV and stays down; `stop` cuts the trace early."""

    def __init__(self, state_: str = "completed", exit_reason: str = "", *, short_at: int | None = 30,
                 stop: int = 60, achieved: dict[str, Any] | None = None) -> None:
        half, dt = 900.0, 10.0
        t = np.arange(0.0, stop * half, dt)
        k = (t // half).astype(int)
        sign = np.where(k % 2 == 0, -1.0, 1.0)  # plating first
        over = np.where(k < (short_at if short_at is not None else 10**9), 0.05, 0.002)
        self.data = {"t": 1000.0 + t, "voltage": sign * over, "current": sign * 1.13e-3}
        self.state, self.exit_reason, self.achieved = state_, exit_reason, achieved or {}

    def run(self, run_id: int) -> dict[str, Any]:
        return {"id": run_id, "state": self.state, "exit_reason": self.exit_reason, "parameters": {},
                "cell_area_m2": 1.13e-4,
                "steps": [{"id": 1, "index": 0, "kind": "cycle_symmetric", "status": "done",
                           "params": {"voltage_limit": 0.5}, "achieved": self.achieved}]}

    def measurements(self, run_id: int, stream: str, step_id: int | None = None) -> dict[str, Any]:
        return self.data if stream == "cycling" else {}


def test_a_short_is_a_failure_at_the_hours_of_cycling_and_censored_past_the_horizon() -> None:
    status, hours, reason, metrics = classify(_CyclingRun(), "finished", 3, "", None)
    assert status == "failed" and reason.startswith("hard_short")
    assert hours == pytest.approx(7.5, abs=0.01)  # from the first cycling sample, not the run's start
    assert metrics["failure_mode"] == "hard_short"
    status, hours, reason, _ = classify(_CyclingRun(), "finished", 3, "", 5 * 3600.0)
    assert (status, hours) == ("censored", 5.0) and "after it" in reason


def test_runs_that_failed_or_were_interrupted_are_excluded_not_short_lives() -> None:
    # a fault ends the run right after a half-cycle with a low overpotential: it must not read as a short
    for run_state, why in (("failed", "potentiostat: no reply"), ("interrupted", "process died"),
                           ("aborted", "operator abort")):
        store = _CyclingRun(run_state, why, short_at=19, stop=20)
        status, hours, reason, _ = classify(store, "failed", 7, "", 3600.0)
        assert (status, hours) == ("excluded", None) and reason == f"run {run_state}: {why}"
    run = _CyclingRun()
    assert classify(run, "cancelled", None, "by ada", None)[:2] == ("excluded", None)
    status, _, reason, _ = classify(run, "failed", None, "station cannot serve it", None)
    assert status == "excluded" and reason == "never ran: station cannot serve it"


def test_a_failed_run_ended_by_the_cells_own_trip_is_a_failure() -> None:
    trip = {"ended_by": "short", "ended_at_s": 1000.0 + 2 * 3600.0}
    store = _CyclingRun("failed", "step 1 failed: short", short_at=None, stop=9, achieved=trip)
    status, hours, reason, _ = classify(store, "failed", 7, "", None)
    assert status == "failed" and hours == pytest.approx(2.0)
    assert reason.startswith("short (the step's detector)")
