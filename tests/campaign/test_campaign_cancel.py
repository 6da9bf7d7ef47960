"""Cancelling a running campaign (`labctl campaign cancel`, `lab.campaign(ID).cancel()`, the web's button):
its queued requests are cancelled and nothing more is queued or approved; a run already started goes on and
is observed when it ends; a linked cell fabricated but not yet tested is recorded as not tested (excluded,
with the reason); cancelling twice, or a finished campaign, is refused with the reason."""

from __future__ import annotations

import json

import pytest

from labctl.campaign import drive, lineage, state
from labctl.store import Store, requests
from labctl.store.errors import StoreError

from .conftest import labctl_cli
from .test_linked import _fake_end, linked_file, linked_store  # noqa: F401 - the fixture

GRID = """factors:
  immersion_time: {levels: [30 s, 60 s, 90 s]}
design: {kind: full_factorial, replicates: 1, seed: 5}
horizon: 2 h
"""


def _events(store: Store, kind: str) -> list[dict]:
    return [{**json.loads(e["data"]), "actor": e["actor"]} for e in store.events() if e["kind"] == kind]


def test_cancel_ends_the_queued_requests_and_leaves_a_started_run_to_be_observed(
        sqlite_db: str, write) -> None:
    with Store.open(sqlite_db) as store:
        cid = drive.start(store, write(GRID), simulate=True, actor="ada")
        rids = [p["request_id"] for p in state.points(store, cid)]
        assert len(rids) == 3 and all(rids)
        assert requests.take(store, rids[0], "runner")           # one already started: its run goes on
        requests.started(store, rids[0], run_id := _make_run(store, rids[0]), "runner")
        out = state.cancel(store, cid, actor="ada", reason="bath contaminated")
        assert out == {"cancelled": rids[1:], "running": [run_id]}
        assert state.get(store, cid)["state"] == "cancelled"
        assert [(e["reason"], e["actor"]) for e in _events(store, "campaign.cancelled")] == \
            [("bath contaminated", "ada")]
        assert {requests.raw(store, r).state for r in rids[1:]} == {"cancelled"}
        assert state.submit_pending(store, cid, actor="ada") == []  # nothing more is queued
        with pytest.raises(StoreError, match=f"campaign {cid} is cancelled: only a running campaign"):
            state.cancel(store, cid, actor="ada")
        assert state.observe(store, cid, actor="ada") == 2          # the cancelled cells: excluded, with why
        obs = {o["point_id"]: o for o in _observations(store, cid)}
        assert {o["status"] for o in obs.values()} == {"excluded"}
        assert all("request cancelled: bath contaminated" in o["reason"] for o in obs.values())
        assert state.progress(store, cid)["pending"] == 1          # the started run, observed once it ends
        requests.finish(store, rids[0], ok=True, reason="done", actor="runner")
        assert state.observe(store, cid, actor="ada") == 1
        assert state.finish_if_done(store, cid, actor="ada") is True  # all observed; it stays cancelled
        assert state.get(store, cid)["state"] == "cancelled" and not _events(store, "campaign.finished")
        assert store.verify().ok


def test_a_linked_cell_fabricated_before_the_cancel_is_not_tested(linked_store) -> None:  # noqa: F811
    store, cid = linked_store()
    made, waiting = lineage.cells(store, cid)
    _fake_end(store, made["fab_request_id"], ok=True, run_state="completed")
    out = state.cancel(store, cid, actor="ada")
    assert out["cancelled"] == [waiting["fab_request_id"]] and out["running"] == []
    lineage.advance(store, cid, actor="ada")
    rows = {r["sample_id"]: r for r in lineage.cells(store, cid)}
    assert rows[made["sample_id"]]["state"] == "not tested"
    assert rows[made["sample_id"]]["test_request_id"] is None      # no test was ever queued for it
    assert f"campaign {cid} cancelled before the cell's test was queued" in rows[made["sample_id"]]["reason"]
    assert rows[waiting["sample_id"]]["state"] == "fabrication failed"  # its fabrication request cancelled
    assert state.progress(store, cid)["excluded"] == 2
    assert len(requests.listing(store)) == 2                       # two fabrications, no test request


def test_cancel_through_the_cli_and_refused_twice(sqlite_db: str, write) -> None:
    with Store.open(sqlite_db) as store:
        cid = drive.start(store, write(GRID), simulate=True, actor="ada")
    r = labctl_cli("campaign", "cancel", str(cid), "--reason", "wrong salt", "--db", sqlite_db, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"campaign {cid} cancelled: 3 queued request(s) cancelled" in r.stdout
    r = labctl_cli("campaign", "cancel", str(cid), "--db", sqlite_db, timeout=120)
    assert r.returncode != 0 and f"campaign {cid} is cancelled" in r.stderr + r.stdout
    assert "Traceback" not in r.stderr + r.stdout


def _make_run(store: Store, rid: int) -> int:
    from .conftest import _store_fixtures

    return _store_fixtures.make_run(store, sample_id=requests.raw(store, rid).sample_id)


def _observations(store: Store, cid: int) -> list[dict]:
    from sqlalchemy import select

    from labctl.store.models import CampaignObservation

    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(*CampaignObservation.__table__.c)
                                                        .where(CampaignObservation.campaign_id == cid))]
