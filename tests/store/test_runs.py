"""Runs, steps, samples and control commands on both backends."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
from sqlalchemy import text

from labctl.store import Store, StoreError


def test_create_run_records_provenance_and_pending_steps(store: Store, new_run) -> None:
    rid = new_run(store, steps=3)
    run = store.run(rid)
    assert run["state"] == "created"
    assert run["protocol_sha256"] == hashlib.sha256(b"labctl: 1\nname: Li-In alloy\n").hexdigest()
    assert run["parameters"] == {"immersion_time": 60.0}
    provenance = (run["station_name"], run["operator"], run["mode"], run["seed"])
    assert provenance == ("sim-bench", "ada", "dry-run", 7)
    assert run["station_text"] == "name: sim-bench\n"
    assert run["host"] and run["pid"] > 0
    assert run["versions"]["sqlalchemy"] and run["versions"]["numpy"]
    assert [(s["index"], s["kind"], s["status"]) for s in run["steps"]] == [
        (0, "wait", "pending"),
        (1, "wait", "pending"),
        (2, "wait", "pending"),
    ]
    assert run["steps"][2]["params"] == {"duration": 3.0}
    (created,) = store.events(rid)
    assert created["kind"] == "run.created" and created["actor"] == "ada"
    assert json.loads(created["data"])["protocol_sha256"] == run["protocol_sha256"]


def run_row(store: Store, rid: int) -> dict:
    with store.engine.connect() as conn:
        return dict(conn.execute(text("SELECT * FROM runs WHERE id = :i"), {"i": rid}).mappings().one())


def test_state_changes_are_audited_in_the_same_transaction(store: Store, new_run) -> None:
    rid = new_run(store)
    store.set_run_state(rid, "preflight")
    store.set_run_state(rid, "running", actor="ada")
    store.set_run_state(rid, "aborted", reason="operator abort", actor="bob")
    run = store.run(rid)
    assert run["state"] == "aborted" and run["exit_reason"] == "operator abort"
    assert run["started_at"] is not None and run["ended_at"] is not None
    moves = [(json.loads(e["data"]), e["actor"]) for e in store.events(rid) if e["kind"] == "run.state"]
    times = [m.pop("at") for m, _ in moves]  # each change records when it happened: bound to the row
    assert times[1] == run_row(store, rid)["started_at"] and times[2] == run_row(store, rid)["ended_at"]
    assert moves == [
        ({"from": "created", "to": "preflight", "reason": ""}, "labctl"),
        ({"from": "preflight", "to": "running", "reason": ""}, "ada"),
        ({"from": "running", "to": "aborted", "reason": "operator abort"}, "bob"),
    ]


def test_bad_state_and_unknown_run_are_clear_errors(store: Store, new_run) -> None:
    rid = new_run(store)
    with pytest.raises(StoreError, match="unknown run state 'finished'"):
        store.set_run_state(rid, "finished")
    with pytest.raises(StoreError, match="no run 999"):
        store.set_run_state(999, "running")
    with pytest.raises(StoreError, match="no run 999"):
        store.run(999)
    with pytest.raises(StoreError, match="has no step 5"):
        store.start_step(rid, 5)
    sid = store.start_step(rid, 0)
    with pytest.raises(StoreError, match="unknown step status"):
        store.finish_step(sid, "ok", achieved={})
    # nothing half-written by the failed calls
    assert store.run(rid)["state"] == "created"
    assert store.verify().ok


def test_start_step_is_committed_before_it_returns(db_url: str, store: Store, new_run) -> None:
    """Intent before action: another connection (another process's view) sees the running step at once."""
    rid = new_run(store)
    sid = store.start_step(rid, 1)
    other = Store.open(db_url)
    try:
        with other.engine.connect() as conn:
            row = conn.execute(text("SELECT status, started_at FROM steps WHERE id = :i"), {"i": sid}).one()
            kinds = conn.execute(text("SELECT kind FROM events ORDER BY seq")).scalars().all()
    finally:
        other.close()
    assert row[0] == "running" and row[1] is not None
    assert kinds[-1] == "step.started"


def test_finish_step_records_commanded_vs_achieved(store: Store, new_run) -> None:
    rid = new_run(store)
    sid = store.start_step(rid, 0)
    store.finish_step(sid, "deviated", achieved={"duration": 1.2}, summary={"late": 0.2}, reason="late")
    step = store.run(rid)["steps"][0]
    assert step["params"] == {"duration": 1.0}
    assert step["achieved"] == {"duration": 1.2} and step["summary"] == {"late": 0.2}
    assert (step["status"], step["reason"]) == ("deviated", "late")
    assert step["started_at"] and step["ended_at"]
    last = store.events(rid)[-1]
    assert last["kind"] == "step.finished"
    assert json.loads(last["data"])["achieved"] == {"duration": 1.2}


def test_runs_filters(store: Store, new_run) -> None:
    a = new_run(store, sample_id="S-1")
    b = new_run(store, sample_id="S-2", protocol_name="Dip coat LiF")
    store.set_run_state(b, "running")
    assert [r["id"] for r in store.runs()] == [a, b]
    assert [r["id"] for r in store.runs(state="running")] == [b]
    assert [r["id"] for r in store.runs(protocol="Dip")] == [b]
    assert [r["id"] for r in store.runs(sample="S-1")] == [a]
    assert store.runs(since="2999-01-01") == []
    assert len(store.runs(since=time.time() - 60)) == 2
    assert store.runs()[0]["n_steps"] == 2
    with pytest.raises(StoreError, match="ISO date"):
        store.runs(since="yesterday")


def test_samples_record_the_run_that_made_the_overlayer(store: Store, new_run) -> None:
    rid = new_run(store)
    store.record_sample("LIN-001", substrate="Li foil 450 um")
    store.record_sample("LIN-001", run_id=rid, overlayer={"material": "LiIn", "thickness_m": 1e-6})
    store.record_sample("LIN-001", overlayer={"sigma_S_per_m": 1e-4})
    sample = store.run(rid)["sample"]
    assert sample["substrate"] == "Li foil 450 um" and sample["run_id"] == rid
    assert sample["overlayer"] == {"material": "LiIn", "thickness_m": 1e-6, "sigma_S_per_m": 1e-4}


def test_append_event_returns_the_next_sequence_number(store: Store, new_run) -> None:
    rid = new_run(store)
    first = store.append_event(rid, "operator.ack", {"message": "cell assembled"}, actor="ada")
    second = store.append_event(None, "store.note", {"x": [1, 2.5, "é"]})
    assert second == first + 1
    with pytest.raises(StoreError, match="not plain JSON"):
        store.append_event(rid, "bad", {"x": float("nan")})
    with pytest.raises(StoreError, match="not plain JSON"):
        store.append_event(rid, "bad", {"x": object()})
    assert store.verify().ok


# -- control ----------------------------------------------------------------------------------------


def test_control_commands_cross_processes_oldest_first(db_url: str, store: Store, new_run) -> None:
    rid = new_run(store)
    store.set_run_state(rid, "running")
    other = Store.open(db_url)  # another terminal
    try:
        c1 = other.post_control(rid, "pause", actor="bob")
        c2 = other.post_control(rid, "ack", actor="bob", args={"step": 2})
    finally:
        other.close()
    taken = store.take_control(rid)
    assert [(c["id"], c["command"], c["actor"], c["args"]) for c in taken] == [
        (c1, "pause", "bob", {}),
        (c2, "ack", "bob", {"step": 2}),
    ]
    assert all(c["consumed_at"] is None for c in taken)  # as read, before this take consumed them
    assert store.take_control(rid) == []
    posted = [json.loads(e["data"])["command"] for e in store.events(rid) if e["kind"] == "control.posted"]
    assert posted == ["pause", "ack"]


def test_control_refuses_unknown_commands_and_finished_runs(store: Store, new_run) -> None:
    rid = new_run(store)
    with pytest.raises(StoreError, match="unknown command 'stop'"):
        store.post_control(rid, "stop", actor="bob")
    with pytest.raises(StoreError, match="no run 42"):
        store.post_control(42, "pause", actor="bob")
    store.set_run_state(rid, "completed")
    with pytest.raises(StoreError, match="completed: it takes no more commands"):
        store.post_control(rid, "abort", actor="bob")
