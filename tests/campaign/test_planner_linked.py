"""Planner campaigns with linked runs: each approved suggestion is a cell (fabrication on the bench, then its
test on a free cycler channel once the fabrication completed), the planner sees a cell only once its test run
ended and was observed, and approvals stop when the campaign does.

- `campaigns/li-in-optuna-linked.yaml` run dry through `labctl campaign run --simulate`: 4 cells in 2 batches,
  each with its lineage, the second batch proposed from the first two lives (hash and points reproduced from
  the rows by a rebuilt planner);
- in the store (no processes): approving queues the fabrication only; a failed fabrication excludes the cell
  from the planner's input; an edit refused by its plan makes no lineage row;
- kill -9 of the campaign process while a fabrication and a test run, then `campaign resume`: nothing lost,
  nothing started twice, the killed test's cell excluded and the next batch's hash reproduced;
- a finished or cancelled campaign refuses approvals (core, `resume --approve`, the Python API).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

import labctl
from labctl.campaign import lineage, state, suggestions
from labctl.campaign.drive import start
from labctl.campaign.planners import Observation
from labctl.campaign.planners import suggest as ask
from labctl.store import Store, requests
from labctl.store.models import Campaign

from .conftest import ROOT, labctl_cli, started_per_request
from .test_linked import _fake_end

EXAMPLE = ROOT / "campaigns" / "li-in-optuna-linked.yaml"
FAB_NAME = "Li-In overlayer by immersion (fabrication)"


def _labctl(*args: str, timeout: float = 300, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    if stdin is None:
        return labctl_cli(*args, timeout=timeout)
    return subprocess.run([sys.executable, "-m", "labctl", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "COLUMNS": "200"}, input=stdin)


def _planned_file(tmp_path: Path, *, test: Path | None = None, fab: Path | None = None, budget: int = 4,
                  batch: int = 2, concentration: str = "{range: [0.02 M, 0.24 M]}") -> Path:
    """The example campaign with absolute paths (and optionally another test or fabrication protocol or
    factor)."""
    text = EXAMPLE.read_text()
    if fab is not None:
        text = text.replace("li-in-24-cells/fabricate.yaml", str(fab))
    text = text.replace("li-in-24-cells/", f"{ROOT}/campaigns/li-in-24-cells/")
    text = text.replace("li-in-optuna-linked/test.yaml", str(test or ROOT / "campaigns" /
                                                              "li-in-optuna-linked" / "test.yaml"))
    text = text.replace("../stations/", f"{ROOT}/stations/")
    text = text.replace("budget: 4, batch: 2", f"budget: {budget}, batch: {batch}")
    text = text.replace("concentration: {range: [0.02 M, 0.24 M]}", f"concentration: {concentration}")
    p = tmp_path / "planned-linked.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def _observed_before(store: Store, campaign_id: int, seqs: set[int]) -> list[Observation]:
    """The planner's observations as they were given: the lives of the cells `seqs`, in run order."""
    return [Observation(dict(r["values"]), r["status"], r["hours"], dict(r["metrics"]))
            for r in state.points(store, campaign_id)
            if r["seq"] in seqs and r["status"] in ("failed", "censored")]


def _check_batch_reproduced(store: Store, campaign_id: int, batch: int, seqs: set[int]) -> None:
    """Batch `batch` was proposed from exactly the lives of the cells `seqs` (nothing pending): its recorded
    hash is theirs, and the planner rebuilt from the rows proposes the same points again."""
    rows = [s for s in suggestions.all_suggestions(store, campaign_id) if s["batch"] == batch]
    obs = _observed_before(store, campaign_id, seqs)
    assert {s["observations_sha256"] for s in rows} == {suggestions.digest(obs, [])}
    assert {s["observations"] for s in rows} == {len(obs)} and {s["pending"] for s in rows} == {0}
    again = ask(suggestions.planner_of(state.get(store, campaign_id)), len(rows), obs, [])
    assert again == [s["values"] for s in rows]


def test_example_planner_campaign_with_linked_runs_end_to_end(sqlite_db: str) -> None:
    r = _labctl("campaign", "validate", str(EXAMPLE))
    assert r.returncode == 0 and "planner optuna, budget 4" in r.stdout, r.stdout + r.stderr
    t0 = time.monotonic()
    r = _labctl("campaign", "run", str(EXAMPLE), "--simulate", "--max-parallel", "2", "--db", sqlite_db)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("queued as fabrication request") == 4 and "8 channel(s)" in r.stdout, r.stdout
    status = json.loads(_labctl("campaign", "status", "1", "--json", "--db", sqlite_db).stdout)
    assert status["campaign"]["state"] == "finished"
    assert status["campaign"]["design_kind"] == "planner:optuna"
    assert status["progress"]["points"] == 4 and status["progress"]["excluded"] == 0
    assert all(p["status"] in ("failed", "censored") for p in status["points"])
    sugg = status["suggestions"]
    assert [(s["batch"], s["state"]) for s in sugg] == [(1, "queued")] * 2 + [(2, "queued")] * 2
    assert [s["point_id"] for s in sugg] == [p["id"] for p in status["points"]]
    cells = status["lineage"]
    assert [c["state"] for c in cells] == ["tested"] * 4
    with Store.open(sqlite_db) as store:
        reqs = requests.listing(store)
        assert len(reqs) == 8 and {q["state"] for q in reqs} == {"finished"}  # 4 fabrications + 4 tests
        assert set(started_per_request(store).values()) == {1}
        for c, p in zip(cells, status["points"], strict=True):
            fab, test = store.run(c["fabrication_run"]), store.run(c["test_run"])
            assert fab["protocol_name"] == FAB_NAME and fab["state"] == "completed"
            assert test["state"] == "completed" and fab["sample_id"] == test["sample_id"] == c["sample_id"]
            fab_req = requests.raw(store, c["fabrication_request"])
            test_req = requests.raw(store, c["test_request"])
            assert test_req.created_at >= fab_req.ended_at  # the test asked for only after its fabrication
            # the suggestion's values went to the fabrication; the test protocol has none of these parameters
            assert fab_req.parameters == p["values"] and test_req.parameters == {}
            assert p["request_id"] == c["test_request"] and p["run_id"] == c["test_run"]
            assert c["assembly"]["auto"] is True and c["channel"].startswith("campaign1-ch")
            assert store.sample(c["sample_id"])["run_id"] == c["fabrication_run"]
        # the second batch was proposed once the first two cells' test runs had ended and been observed
        second = min(s["created_at"] for s in sugg if s["batch"] == 2)
        assert all(requests.raw(store, c["test_request"]).ended_at <= second for c in cells[:2])
        assert all(requests.raw(store, c["fabrication_request"]).created_at >= second for c in cells[2:])
        _check_batch_reproduced(store, 1, 1, set())
        _check_batch_reproduced(store, 1, 2, {0, 1})
        assert store.verify().ok
    assert took < 120, f"the example's dry run took {took:.1f} s"  # a loose bound: ~30 s on an idle machine


# -- in the store, no processes -------------------------------------------------------------------------


@pytest.fixture
def planned(sqlite_db: str, tmp_path: Path) -> Iterator[Callable[..., tuple[Store, int]]]:
    opened: list[Store] = []

    def make(**kw: Any) -> tuple[Store, int]:
        store = Store.open(sqlite_db)
        opened.append(store)
        return store, start(store, _planned_file(tmp_path, **kw), simulate=True, actor="ada")

    yield make
    for s in opened:
        s.close()


def test_an_approved_suggestion_is_a_cell_queued_as_its_fabrication(planned) -> None:
    store, cid = planned()
    ids = suggestions.top_up(store, cid, actor="ada")
    assert len(ids) == 2
    rid = suggestions.approve(store, cid, ids[0], actor="bob")
    (cell,) = lineage.cells(store, cid)
    assert cell["fab_request_id"] == rid and cell["state"] == "fabricating"
    assert cell["test_request_id"] is None
    fab_req = requests.raw(store, rid)
    assert fab_req.protocol_name == FAB_NAME and fab_req.sample_id == cell["sample_id"]
    (pt,) = state.points(store, cid)
    assert pt["request_id"] is None and pt["fab_request_id"] == rid  # the point's request: its test's, later
    prog = state.progress(store, cid)
    assert prog["pending"] == 1 and prog["unsubmitted"] == 0
    # in flight for the planner: the fabricating cell and the proposal still awaiting a decision
    obs, pend = suggestions.inputs(store, cid)
    assert obs == [] and len(pend) == 2
    assert suggestions.budget_left(store, cid) == (2, 0) and not suggestions.spent(store, cid)

    # the fabrication failed: the cell is excluded, never tested, and tells the planner nothing
    _fake_end(store, rid, ok=False, run_state="failed")
    assert lineage.advance(store, cid, actor="ada")["excluded"] == 1
    (row,) = lineage.lineage(store, cid)
    assert row["state"] == "fabrication failed" and row["test_request"] is None
    obs, pend = suggestions.inputs(store, cid)
    assert obs == [] and pend == [suggestions.pending(store, cid)[0]["values"]]
    assert state.progress(store, cid)["excluded"] == 1

    # the second cell's fabrication completed: only now its test request
    rid2 = suggestions.approve(store, cid, ids[1], actor="bob")
    assert len(requests.listing(store)) == 2
    _fake_end(store, rid2, ok=True, run_state="completed")
    assert lineage.advance(store, cid, actor="ada")["tests"] == 1
    second = lineage.lineage(store, cid)[1]
    assert second["state"] == "testing" and second["fabrication_run"] is not None
    assert state.points(store, cid)[1]["request_id"] == second["test_request"]
    assert len(suggestions.inputs(store, cid)[1]) == 1  # the cell under test is pending, not observed
    events = [e["kind"] for e in store.events()]
    assert events.count("campaign.fabrication.submitted") == 2 and events.count("campaign.fabricated") == 1
    assert store.verify().ok


def test_an_edit_refused_by_its_plan_makes_no_cell(planned) -> None:
    # 0.5 M from the 0.5 M stock needs 20 mL, more than one 10 mL stroke: the fabrication's plan refuses it
    store, cid = planned(concentration="{levels: [0.05 M, 0.5 M]}")
    (sid, _) = suggestions.top_up(store, cid, actor="ada")
    rid = suggestions.approve(store, cid, sid, values={"immersion_time": "5 min", "concentration": "0.5 M"},
                              actor="bob")
    assert rid is None
    (pt,) = state.points(store, cid)
    assert not pt["plan_ok"] and pt["plan_errors"][0].startswith("fabrication: ")
    assert lineage.cells(store, cid) == [] and requests.listing(store) == []
    assert next(s for s in suggestions.all_suggestions(store, cid) if s["id"] == sid)["state"] == "refused"


def _set_state(store: Store, cid: int, value: str) -> None:
    with store.engine.begin() as conn:  # as `campaign.finished` or a cancel would leave it
        conn.execute(update(Campaign).where(Campaign.id == cid).values(state=value))


@pytest.mark.parametrize("closed", ["finished", "cancelled"])
def test_a_finished_or_cancelled_campaign_refuses_approvals(planned, closed: str) -> None:
    store, cid = planned()
    ids = suggestions.top_up(store, cid, actor="ada")
    _set_state(store, cid, closed)
    with pytest.raises(suggestions.SuggestionError,
                       match=f"campaign {cid} is {closed}: its suggestions can no longer be approved"):
        suggestions.approve(store, cid, ids[0], actor="bob")
    assert state.points(store, cid) == [] and requests.listing(store) == []
    assert suggestions.pending(store, cid)[0]["id"] == ids[0]  # still undecided; rejecting it stays possible
    suggestions.reject(store, cid, ids[0], actor="bob", reason="campaign over")
    assert "campaign.suggestion.approved" not in {e["kind"] for e in store.events()}


def test_a_pending_proposal_keeps_the_campaign_open(planned) -> None:
    """`--approve` then quit at the last batch: the budget is taken by proposals, yet the campaign must not
    finish with them undecided (they could no longer be approved)."""
    from labctl.campaign.drive import drive

    store, cid = planned(budget=2, batch=2)
    drive(store, cid, runner=False, decide=lambda *a: False, actor="ada")  # proposes, the person quits
    assert len(suggestions.pending(store, cid)) == 2 and suggestions.budget_left(store, cid)[0] == 0
    assert state.get(store, cid)["state"] == "running"


def test_cli_and_api_refuse_approving_a_finished_campaign(sqlite_db: str, tmp_path: Path) -> None:
    f = _planned_file(tmp_path, budget=2, batch=2)
    r = _labctl("campaign", "run", str(f), "--simulate", "--approve", "--db", sqlite_db, stdin="q\n")
    assert r.returncode == 0 and "sha256" in r.stdout, r.stdout + r.stderr
    with labctl.connect(sqlite_db) as lab:
        handle = lab.campaign(1)
        ids = [s["id"] for s in handle.suggestions() if s["state"] == "proposed"]
        assert len(ids) == 2 and handle.state == "running"
        _set_state(lab.store, 1, "finished")
        with pytest.raises(suggestions.SuggestionError, match="campaign 1 is finished"):
            handle.approve(ids[0])
    r = _labctl("campaign", "resume", "1", "--approve", "--db", sqlite_db, stdin="a\n")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "campaign 1 is finished: its suggestions can no longer be approved" in r.stderr
    assert "sha256" not in r.stdout and "Traceback" not in r.stderr
    r = _labctl("campaign", "approve", "1", str(ids[0]), "--db", sqlite_db)
    assert r.returncode == 2 and "campaign 1 is finished" in r.stderr, r.stdout + r.stderr
    with Store.open(sqlite_db) as store:
        assert state.points(store, 1) == [] and requests.listing(store) == []


# -- kill -9 of the campaign process mid-batch, then resume ---------------------------------------------


def _running(store: Store) -> dict[str, dict[str, Any]]:
    """The running runs by role (fabrication, test), from the run rows."""
    out: dict[str, dict[str, Any]] = {}
    for r in store.runs(state="running"):
        out["fabrication" if r["protocol_name"] == FAB_NAME else "test"] = r
    return out


def test_kill9_mid_batch_then_resume(sqlite_db: str, tmp_path: Path) -> None:
    """The campaign process is killed while a cell's fabrication and another cell's test run (the
    fabrication made seconds long, so that moment comes in either batch); the test run is killed too.
    `campaign resume` adopts the fabrication, records the killed test as interrupted (its cell excluded: no
    life for the planner), proposes the second batch from the first batch's lives alone, and finishes: no
    request lost, none started twice."""
    long = tmp_path / "long-test.yaml"
    long.write_text((ROOT / "campaigns" / "li-in-optuna-linked" / "test.yaml").read_text().replace(
        "cycles: 3}", "cycles: 150}").replace("sample_every: 10 s", "sample_every: 1 s"))
    # a fabrication that takes seconds of a dry run (400 more rinses), not ~0.3 s: with the warm launcher the
    # next cell's fabrication and a test could otherwise overlap for too short a moment to be seen
    slow_fab = tmp_path / "slow-fab.yaml"
    slow_fab.write_text((ROOT / "campaigns" / "li-in-24-cells" / "fabricate.yaml").read_text()
                        + "  - immerse: {bath: solvent, depth: 12 mm, speed: 5 mm/s, time: 10 s}\n" * 400)
    f = _planned_file(tmp_path, test=long, fab=slow_fab)
    log = open(tmp_path / "campaign.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "labctl", "campaign", "run", str(f), "--simulate",
                             "--max-parallel", "2", "--db", sqlite_db], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, env=os.environ.copy())
    running: dict[str, dict[str, Any]] = {}
    try:
        with Store.open(sqlite_db) as store:  # one connection polled often: the overlap is short
            end = time.monotonic() + 240
            while time.monotonic() < end and proc.poll() is None:
                running = _running(store)
                if len(running) == 2:
                    break
                time.sleep(0.02)
            assert len(running) == 2, (tmp_path / "campaign.log").read_text()
            proc.send_signal(signal.SIGKILL)  # the campaign process dies mid-batch...
            test_run = store.run(running["test"]["id"])
            os.kill(test_run["pid"], signal.SIGKILL)  # ...with the test run it had going
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    fab_id, test_id = running["fabrication"]["id"], running["test"]["id"]
    r = _labctl("campaign", "resume", "1", "--max-parallel", "2", "--db", sqlite_db)
    assert r.returncode == 0, r.stdout + r.stderr
    with Store.open(sqlite_db) as store:
        reqs = requests.listing(store)
        assert len(reqs) == 8 and all(requests.is_ended(q["state"]) for q in reqs)  # none lost
        assert set(started_per_request(store).values()) == {1}  # none started twice
        assert len(store.runs()) == 8  # one run per request
        rows = lineage.lineage(store, 1)
        killed = next(c for c in rows if c["test_run"] == test_id)
        assert killed["state"] == "interrupted" and f"test run {test_id} interrupted" in killed["reason"]
        assert [c["state"] for c in rows].count("tested") == 3
        adopted = next(c for c in rows if c["fabrication_run"] == fab_id)  # adopted, not run again
        assert adopted["state"] == "tested" and store.run(fab_id)["state"] == "completed"
        pts = {p["seq"]: p for p in state.points(store, 1)}
        assert pts[killed["seq"]]["status"] == "excluded" and "interrupted" in pts[killed["seq"]]["reason"]
        assert [p["status"] in ("failed", "censored") for p in pts.values()].count(True) == 3
        # one proposal per cell; the second batch from the first batch's lives (an excluded cell has none)
        sugg = suggestions.all_suggestions(store, 1)
        assert [(s["batch"], s["state"]) for s in sugg] == [(1, "queued")] * 2 + [(2, "queued")] * 2
        _check_batch_reproduced(store, 1, 2, {0, 1})
        assert len(_observed_before(store, 1, {0, 1})) == (1 if killed["seq"] < 2 else 2)
        assert state.get(store, 1)["state"] == "finished" and store.verify().ok
