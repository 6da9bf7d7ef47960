"""Run requests in the store (SQLite and PostgreSQL): submit, the guarded take, start, end, cancel, each
audited; why a request waits; bad input named."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from queue_helpers import DATA

from labctl.cli.queue_cmds import parse_not_before, request_view
from labctl.errors import ConfigError, LabctlError
from labctl.queue import submit
from labctl.queue.matching import requirements_of, unmet
from labctl.store import StoreError, requests


def _events(store, kind: str) -> list[dict]:
    return [json.loads(e["data"]) for e in store.events() if e["kind"] == kind]


def test_submit_keeps_protocol_text_requirements_and_audits(store) -> None:
    rid = submit(
        DATA / "wait.yaml",
        parameters={"d": "3 s"},
        sample="S-1",
        priority=4,
        requested_by="ada",
        simulate=True,
        store=store,
    )
    row = requests.raw(store, rid)
    assert row.state == "queued" and row.protocol_text == (DATA / "wait.yaml").read_text()
    assert row.parameters == {"d": "3 s"} and row.sample_id == "S-1" and row.priority == 4
    assert row.requirements == {"kinds": ["wait"], "roles": [], "instruments": []}
    (ev,) = _events(store, "request.submitted")
    assert (
        ev["request_id"] == rid
        and ev["requested_by"] == "ada"
        and ev["protocol_sha256"] == row.protocol_sha256
    )
    assert store.verify().ok


def test_take_is_guarded_one_winner_among_racing_threads(store) -> None:
    rid = submit(DATA / "wait.yaml", simulate=True, store=store)
    wins: list[str] = []
    barrier = threading.Barrier(6)

    def race(name: str) -> None:
        barrier.wait()
        if requests.take(store, rid, name):
            wins.append(name)

    threads = [threading.Thread(target=race, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1
    assert requests.raw(store, rid).worker == wins[0]
    assert [e["worker"] for e in _events(store, "request.taken")] == wins
    assert not requests.take(store, rid, "late")


def test_started_finished_failed_and_cancel(store, new_run) -> None:
    a = submit(DATA / "wait.yaml", simulate=True, store=store)
    b = submit(DATA / "wait.yaml", simulate=True, store=store)
    c = submit(DATA / "wait.yaml", simulate=True, store=store)
    assert requests.take(store, a, "w") and requests.take(store, b, "w")
    with pytest.raises(StoreError, match="not taken by other"):
        requests.started(store, a, new_run(store), "other")
    run_id = new_run(store)
    requests.started(store, a, run_id, "w")
    assert requests.finish(store, a, ok=True, reason="run completed", actor="w")
    assert not requests.finish(store, a, ok=False, reason="again", actor="w")  # ended: stays finished
    assert requests.finish(store, b, ok=False, reason="boom", actor="w")
    with pytest.raises(StoreError, match="is failed, not queued"):
        requests.cancel(store, b, actor="ada")
    requests.cancel(store, c, actor="ada", reason="wrong sample")
    states = {r["id"]: (r["state"], r["reason"]) for r in requests.listing(store)}
    assert states == {
        a: ("finished", "run completed"),
        b: ("failed", "boom"),
        c: ("cancelled", "wrong sample"),
    }
    started = [e for e in store.events(run_id) if e["kind"] == "request.started"]
    assert len(started) == 1 and json.loads(started[0]["data"])["request_id"] == a
    kinds = [e["kind"] for e in store.events() if e["kind"].startswith("request.")]
    assert kinds.count("request.finished") == 1 and kinds.count("request.failed") == 1
    assert kinds.count("request.cancelled") == 1
    assert store.verify().ok


def test_candidates_order_priority_then_age_and_not_before(store) -> None:
    low = submit(DATA / "wait.yaml", simulate=True, store=store)
    high = submit(DATA / "wait.yaml", simulate=True, priority=9, store=store)
    later = submit(
        DATA / "wait.yaml", simulate=True, priority=99, not_before=parse_not_before("+1h"), store=store
    )
    assert [r.id for r in requests.candidates(store)] == [high, low]
    view = request_view(store, later)
    assert view["waiting"].startswith("not before")


def test_queue_show_says_no_station_can_serve_it(store) -> None:
    from labctl.queue.matching import capability
    from labctl.station import load_station

    info = load_station(DATA / "station-pot.yaml")
    requests.register_worker(
        store, "bench-pot", kind="runner", station_name=info.name, station=capability(info, True)
    )
    rid = submit(DATA / "eis.yaml", simulate=True, store=store)
    why = request_view(store, rid)["waiting"]
    assert why == "no station can serve it: bench-pot (bench-pot): no eis"
    ok = submit(DATA / "cycle.yaml", simulate=True, store=store)
    assert "can be served by bench-pot" in request_view(store, ok)["waiting"]
    bench = submit(DATA / "cycle.yaml", store=store)  # a bench request: a dry-run bench never serves it
    assert "it is a dry-run bench" in request_view(store, bench)["waiting"]


def test_matching_roles_families_and_named_instruments() -> None:
    cap = {
        "roles": {"pump.stock": "labsim://pumps#1", "potentiostat": "tcp://10.0.0.5:5025"},
        "simulate": False,
    }
    assert unmet(requirements_of(["prepare_bath"]), False, cap) is None  # pump.* = at least one pump
    assert unmet(requirements_of(["eis"]), False, cap) == "no eis"
    assert unmet(requirements_of(["wait"], ["tcp://10.0.0.5:5025"]), False, cap) is None
    assert unmet(requirements_of(["wait"], ["potentiostat"]), False, cap) is None
    assert (
        unmet(requirements_of(["wait"], ["keithley-B"]), False, cap)
        == "not the named instrument(s) keithley-B"
    )


def test_bad_input_is_named(store, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such protocol file"):
        submit(tmp_path / "nope.yaml", store=store)
    bad = tmp_path / "bad.yaml"
    bad.write_text("labctl: 1\nname: x\nsteps:\n  - wait: {duration: 5 parsecs}\n")
    with pytest.raises(LabctlError, match=r"bad\.yaml:4"):
        submit(bad, store=store)
    with pytest.raises(LabctlError, match="unknown parameter `nope`"):
        submit(DATA / "wait.yaml", parameters={"nope": "1"}, store=store)
    with pytest.raises(ConfigError, match="neither"):
        parse_not_before("tomorrow-ish")
    with pytest.raises(StoreError, match="no run request 99"):
        requests.get(store, 99)
    assert requests.listing(store) == []  # nothing was queued by the refused submissions


def test_cli_submit_list_show_cancel(db_url: str) -> None:
    from typer.testing import CliRunner

    from labctl.cli import app

    def invoke(*args: str) -> tuple[int, str]:
        res = CliRunner().invoke(app, [*args, "--db", db_url])
        return res.exit_code, res.output + str(res.exception or "")

    code, out = invoke(
        "submit",
        str(DATA / "wait.yaml"),
        "-p",
        "d=2 s",
        "--sample",
        "S-9",
        "--priority",
        "3",
        "--not-before",
        "+10m",
        "--simulate",
        "--operator",
        "ada",
        "--json",
    )
    assert code == 0, out
    rid = json.loads(out)["request_id"]
    code, out = invoke("queue", "list", "--json")
    (row,) = json.loads(out)
    assert (row["id"], row["state"], row["priority"], row["sample_id"], row["requested_by"]) == (
        rid,
        "queued",
        3,
        "S-9",
        "ada",
    )
    code, out = invoke("queue", "show", str(rid), "--json")
    shown = json.loads(out)
    assert shown["parameters"] == {"d": "2 s"} and shown["waiting"].startswith("not before")
    assert invoke("queue", "cancel", str(rid), "--operator", "ada")[0] == 0
    code, out = invoke("queue", "cancel", str(rid))
    assert code != 0 and "is cancelled, not queued" in out


def test_worker_refuses_sqlite_and_runner_a_bad_station(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from labctl.cli import app

    db = f"sqlite:///{tmp_path / 'l.db'}"
    res = CliRunner().invoke(
        app, ["worker", "--simulate", "--station", str(DATA / "station-pot.yaml"), "--db", db]
    )
    assert res.exit_code != 0 and "needs the store on PostgreSQL" in str(res.exception)
    res = CliRunner().invoke(app, ["runner", "--station", str(tmp_path / "none.yaml"), "--once", "--db", db])
    assert res.exit_code != 0 and "none.yaml" in str(res.exception)
    res = CliRunner().invoke(app, ["runner", "--simulate", "--max-parallel", "0", "--once", "--db", db])
    assert res.exit_code != 0 and "--max-parallel must be at least 1" in str(res.exception)
