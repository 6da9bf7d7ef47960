"""Planner campaigns as rows: proposals audited with the hash of the observations they used, accepted,
edited (re-checked by the factor rules, then planned) or rejected; a campaign file's `planner:` checked with
positions; a planner that raises queues nothing. On SQLite and the store suite's PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from labctl.campaign import load_campaign, state, suggestions
from labctl.campaign.drive import start
from labctl.campaign.loader import CampaignFileError
from labctl.campaign.planners import PlannerError
from labctl.store import Store

PLANNED = """factors:
  immersion_time: {range: [30 s, 120 s]}
  concentration: {levels: [0.05 M, 0.1 M]}
planner: {name: random, budget: 3, batch: 2, seed: 5}
objectives: [{maximise: hours_to_failure}]
horizon: 1000 h
"""


def _open(url: str) -> Store:
    return Store.open(url)


def test_proposals_are_rows_audited_with_the_inputs_hash(write: Callable[..., Path], db_url: str) -> None:
    store = _open(db_url)
    try:
        cid = start(store, write(PLANNED), simulate=True, actor="alice")
        camp = state.get(store, cid)
        assert camp["design_kind"] == "planner:random" and camp["seed"] == 5
        assert state.progress(store, cid)["points"] == 0
        ids = suggestions.top_up(store, cid, actor="alice")
        assert len(ids) == 2 and suggestions.top_up(store, cid, actor="alice") == []  # the batch is full
        props = suggestions.pending(store, cid)
        assert [p["id"] for p in props] == ids and all(p["state"] == "proposed" for p in props)
        obs, pend = suggestions.inputs(store, cid)
        assert obs == [] and len(pend) == 2  # the proposals themselves count as in flight next time
        empty = suggestions.digest([], [])
        assert {p["observations_sha256"] for p in props} == {empty}
        assert props[0]["planner"]["name"] == "random"
        ev = [e for e in store.events() if e["kind"] == "campaign.suggested"]
        data = json.loads(ev[0]["data"])
        assert data["observations_sha256"] == empty and data["suggestions"] == ids
        assert ev[0]["actor"] == "alice"

        # accept the first as suggested: a campaign point and its run request
        rid = suggestions.approve(store, cid, ids[0], actor="bob")
        assert isinstance(rid, int)
        pts = state.points(store, cid)
        assert len(pts) == 1 and pts[0]["request_id"] == rid and pts[0]["values"] == props[0]["values"]
        with pytest.raises(suggestions.SuggestionError, match="already decided"):
            suggestions.reject(store, cid, ids[0], actor="bob", reason="late")

        # edited values outside the factor's range, or not one of its levels: refused, nothing queued
        bad = {"immersion_time": "10 min", "concentration": "0.07 M"}
        with pytest.raises(suggestions.SuggestionError) as exc:
            suggestions.approve(store, cid, ids[1], values=bad, actor="bob")
        assert "outside the range [30 s, 120 s]" in str(exc.value)
        assert "not one of 0.05 M, 0.1 M" in str(exc.value)
        with pytest.raises(suggestions.SuggestionError, match="missing factor"):
            suggestions.approve(store, cid, ids[1], values={"immersion_time": "60 s"}, actor="bob")
        assert len(state.points(store, cid)) == 1
        # edited within the rules: queued with the edited values, the suggestion keeps what was suggested
        rid2 = suggestions.approve(store, cid, ids[1], values={"immersion_time": "45 s",
                                                                 "concentration": "0.1 M"}, actor="bob")
        assert rid2 is not None and rid2 != rid
        row = next(s for s in suggestions.all_suggestions(store, cid) if s["id"] == ids[1])
        assert row["state"] == "queued" and row["reason"] == "edited" and row["decided_by"] == "bob"
        assert row["final_values"] == {"immersion_time": "45 s", "concentration": "0.1 M"}
        assert row["values"] == props[1]["values"]
        approved = [json.loads(e["data"]) for e in store.events()
                    if e["kind"] == "campaign.suggestion.approved"]
        assert [a["edited"] for a in approved] == [False, True]

        # the budget (3) leaves one more; rejecting it does not spend the budget
        assert suggestions.budget_left(store, cid) == (1, 0)  # two in flight fill the batch of 2
        from sqlalchemy import insert, update

        from labctl.store.models import CampaignObservation, RunRequest

        cells = state.points(store, cid)
        with store.engine.begin() as conn:  # pretend the two cells ended (no runs here)
            for i, p in enumerate(cells):
                conn.execute(insert(CampaignObservation).values(
                    campaign_id=cid, point_id=p["id"], run_id=None, status=("failed", "censored")[i],
                    hours=(12.5, 1000.0)[i], reason="", metrics={}, created_at=0.0))
                conn.execute(update(RunRequest).where(RunRequest.id == p["request_id"])
                             .values(state="finished"))
        (last,) = suggestions.top_up(store, cid, actor="alice")
        prop = suggestions.pending(store, cid)[0]
        obs, pend = suggestions.inputs(store, cid)
        assert [o.status for o in obs] == ["failed", "censored"] and prop["observations"] == 2
        assert prop["observations_sha256"] == suggestions.digest(obs, []) != empty
        suggestions.reject(store, cid, last, actor="bob", reason="that bath is empty")
        assert suggestions.pending(store, cid) == [] and suggestions.budget_left(store, cid) == (1, 1)
        rej = [json.loads(e["data"]) for e in store.events() if e["kind"] == "campaign.suggestion.rejected"]
        assert rej == [{"campaign_id": cid, "suggestion_id": last, "reason": "that bath is empty",
                        "at": rej[0]["at"]}]
        assert store.verify().ok
    finally:
        store.close()


def test_a_point_refused_by_its_plan_is_recorded_not_queued(write: Callable[..., Path],
                                                            sqlite_db: str) -> None:
    # 0.5 M from the 0.5 M stock needs 20 mL, more than one 10 mL stroke: the plan refuses it
    store = _open(sqlite_db)
    try:
        cid = start(store, write(PLANNED.replace("[0.05 M, 0.1 M]", "[0.05 M, 0.5 M]")), simulate=True)
        (sid, _) = suggestions.top_up(store, cid)
        edited = {"immersion_time": "60 s", "concentration": "0.5 M"}
        rid = suggestions.approve(store, cid, sid, values=edited, actor="bob")
        (p,) = state.points(store, cid)
        row = suggestions.all_suggestions(store, cid)[0]
        assert rid is None and not p["plan_ok"] and p["request_id"] is None
        assert row["state"] == "refused" and "one syringe stroke" in row["reason"]
        assert suggestions.budget_left(store, cid) == (1, 1)  # the refused cell spent one, one is proposed
    finally:
        store.close()


def test_planner_field_checked_with_positions(write: Callable[..., Path]) -> None:
    with pytest.raises(CampaignFileError) as exc:
        load_campaign(write(PLANNED.replace("name: random", "name: bayes")))
    (p,) = exc.value.problems
    assert p.line == 9 and p.field.endswith("name") and "unknown planner `bayes`" in p.message
    assert "optuna" in p.message and "grid" in p.message
    with pytest.raises(CampaignFileError) as exc:
        load_campaign(write(PLANNED.replace("seed: 5", "seed: 5, options: {sampler: cmaes}").replace(
            "random", "optuna")))
    assert "option sampler must be tpe or nsga2" in exc.value.problems[0].message
    with pytest.raises(CampaignFileError) as exc:
        load_campaign(write(PLANNED.replace("seed: 5", "seed: 5, options: {colour: red}")))
    assert "unknown option(s) colour" in exc.value.problems[0].message
    with pytest.raises(CampaignFileError) as exc:
        load_campaign(write(PLANNED + "design: {kind: sobol, points: 4}\n"))
    assert "either `design` or `planner`" in exc.value.problems[0].message
    with pytest.raises(CampaignFileError) as exc:
        load_campaign(write(PLANNED.replace("batch: 2", "batch: 7")))
    assert "batch 7 is more than the budget 3" in exc.value.problems[0].message
    with pytest.raises(CampaignFileError) as exc:
        load_campaign(write(PLANNED.replace("budget: 3, ", "")))
    assert "`budget` is required" in exc.value.problems[0].message
    assert load_campaign(write(PLANNED)).model.planner is not None


def test_a_planner_that_raises_queues_nothing(write: Callable[..., Path], sqlite_db: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from labctl.campaign.planners.baselines import RandomPlanner

    store = _open(sqlite_db)
    try:
        cid = start(store, write(PLANNED), simulate=True)
        monkeypatch.setattr(RandomPlanner, "suggest", lambda *a, **k: 1 / 0)
        with pytest.raises(PlannerError, match="planner `random` failed: ZeroDivisionError"):
            suggestions.top_up(store, cid)
        outside = {"immersion_time": "1 h", "concentration": "0.1 M"}
        monkeypatch.setattr(RandomPlanner, "suggest", lambda self, n, o, p: [outside] * n)
        with pytest.raises(PlannerError, match="not in the campaign's space: immersion_time: `1 h` is out"):
            suggestions.top_up(store, cid)
        assert suggestions.all_suggestions(store, cid) == [] and state.points(store, cid) == []
        assert not [e for e in store.events() if e["kind"] == "campaign.suggested"]
    finally:
        store.close()
