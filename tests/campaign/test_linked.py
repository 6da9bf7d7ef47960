"""Linked campaigns: each cell a fabrication run on the bench, then its test run on a cycler channel.

- a real dry run of 2 cells end to end through `labctl campaign run|status` and `lab.campaign(ID)`: lineage
  sample -> fabrication run -> cell -> test run, each test request submitted only after its fabrication
  completed, the test world started from the sample its fabrication made, the assembly auto-answered;
- in the store (no processes): a failed fabrication excludes its cell and never submits a test; submitting
  twice (or after a dead process committed an unlinked request) queues nothing twice;
- the campaign process killed with SIGKILL while a test runs (its run killed too), then `campaign resume`:
  no run lost, none started twice, the killed cell recorded as interrupted and excluded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import labctl
from labctl.campaign import drive, lineage, state
from labctl.store import Store, requests

from .conftest import ROOT, _store_fixtures, labctl_cli, started_per_request

DATA = Path(__file__).resolve().parent / "data"
CYCLER = ROOT / "stations" / "cycler-8ch.yaml"
STATION = ROOT / "stations" / "simulated.yaml"


def linked_file(tmp_path: Path, *, test: str = "linked-test.yaml", levels: str = "[30 s, 5 min]",
                cycler: Path = CYCLER) -> Path:
    p = tmp_path / "linked.yaml"
    p.write_text(f"""labctl: 1
name: linked cells
protocols: {{fabrication: {DATA / 'linked-fab.yaml'}, test: {DATA / test}}}
station: {STATION}
cycler: {cycler}
factors:
  immersion_time: {{levels: {levels}}}
design: {{kind: full_factorial, replicates: 1, seed: 3, max_runs: 8}}
horizon: 2 h
""", encoding="utf-8")
    return p


def _labctl(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return labctl_cli(*args, timeout=timeout)


def test_linked_dry_run_end_to_end(sqlite_db: str, tmp_path: Path) -> None:
    r = _labctl("campaign", "run", str(linked_file(tmp_path)), "--simulate", "--max-parallel", "2",
                "--db", sqlite_db)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "8 channel(s)" in r.stdout and "censored 2" in r.stdout, r.stdout
    r = _labctl("campaign", "status", "1", "--json", "--db", sqlite_db)
    assert r.returncode == 0, r.stderr
    status = json.loads(r.stdout)
    assert status["campaign"]["state"] == "finished"
    cells = status["lineage"]
    assert [c["state"] for c in cells] == ["tested", "tested"]
    with Store.open(sqlite_db) as store:
        reqs = {q["id"]: q for q in requests.listing(store)}
        assert len(reqs) == 4 and {q["state"] for q in reqs.values()} == {"finished"}
        # every run forked by the campaign's one warm launcher, none a cold `python -m labctl run` (issue 19)
        vias = {requests.raw(store, q).process["via"].split()[0] for q in reqs}
        assert vias == {"launcher"}
        for c in cells:
            fab, test = store.run(c["fabrication_run"]), store.run(c["test_run"])
            assert fab["protocol_name"] == "linked test fabrication" and fab["state"] == "completed"
            assert test["protocol_name"] == "linked test cycling" and test["state"] == "completed"
            assert fab["sample_id"] == test["sample_id"] == c["sample_id"]
            # the test was asked for only once its fabrication had ended
            fab_req = requests.raw(store, c["fabrication_request"])
            test_req = requests.raw(store, c["test_request"])
            assert test_req.created_at >= fab_req.ended_at
            assert c["channel"].startswith("campaign1-ch")
            assert c["assembly"]["acknowledged_by"] == "auto (dry run)" and c["assembly"]["auto"] is True
            assert c["assembly"]["run_id"] == c["test_run"] and c["cell_id"] == c["sample_id"] + "/cell"
            # the test run's world started from the sample its fabrication made, and says so
            (carried,) = [json.loads(e["data"]) for e in store.events(c["test_run"])
                          if e["kind"] == "sample.carried"]
            sample = store.sample(c["sample_id"])
            assert sample is not None and sample["run_id"] == c["fabrication_run"]
            assert carried["from_run"] == c["fabrication_run"] and carried["layer"] == "li_in"
            assert carried["thickness_m"] == pytest.approx(sample["overlayer"]["thickness_m"])
        thick = {c["seq"]: store.sample(c["sample_id"])["overlayer"]["thickness_m"] for c in cells}
        values = {p["seq"]: p["values"]["immersion_time"] for p in status["points"]}
        longer = next(s for s, v in values.items() if v == "5 min")
        assert thick[longer] == max(thick.values())  # 5 min in the bath grows more alloy than 30 s
        kinds = [e["kind"] for e in store.events()]
        assert kinds.count("campaign.fabricated") == 2 and kinds.count("campaign.cell.tested") == 2
        assert kinds.count("campaign.fabrication.submitted") == 2 and store.verify().ok
        # observed on the campaign's observer thread as each test ended, and after the loop: once per cell
        assert kinds.count("campaign.observed") == 2
    r = _labctl("campaign", "status", "1", "--db", sqlite_db)
    assert "lineage: sample -> fabrication run -> cell -> test run" in r.stdout
    assert "auto (dry run)" in r.stdout
    with labctl.connect(sqlite_db) as lab:
        lin = lab.campaign(1).lineage()
        assert list(lin.index) == [1, 2] and set(lin["state"]) == {"tested"}
        obs = lab.campaign(1).observations()
        assert sorted(obs["run_id"]) == sorted(lin["test_run"])  # the cell's life is its test run's


# -- in the store, no processes -------------------------------------------------------------------------


def _fake_end(store: Store, rid: int, *, ok: bool, run_state: str) -> int:
    """End request `rid` as a runner would, with a recorded run in `run_state`."""
    run_id = _store_fixtures.make_run(store, sample_id=requests.raw(store, rid).sample_id)
    store.set_run_state(run_id, run_state)
    assert requests.take(store, rid, "t")
    requests.started(store, rid, run_id, "t")
    requests.finish(store, rid, ok=ok, reason=f"run {run_id} {run_state}", actor="t")
    return run_id


@pytest.fixture
def linked_store(sqlite_db: str, tmp_path: Path) -> Callable[..., tuple[Store, int]]:
    opened: list[Store] = []

    def make(**kw: str) -> tuple[Store, int]:
        store = Store.open(sqlite_db)
        opened.append(store)
        return store, drive.start(store, linked_file(tmp_path, **kw), simulate=True, actor="ada")

    yield make
    for s in opened:
        s.close()


def test_failed_fabrication_excludes_the_cell_and_never_tests_it(linked_store) -> None:
    store, cid = linked_store()
    cells = lineage.cells(store, cid)
    assert [c["state"] for c in cells] == ["fabricating", "fabricating"]
    assert all(c["test_request_id"] is None for c in cells)
    bad, good = cells
    _fake_end(store, bad["fab_request_id"], ok=False, run_state="failed")
    _fake_end(store, good["fab_request_id"], ok=True, run_state="completed")
    moved = lineage.advance(store, cid, actor="ada")
    assert moved == {"fabricated": 1, "excluded": 1, "tests": 1, "tested": 0}
    again = lineage.advance(store, cid, actor="ada")
    assert again == {"fabricated": 0, "excluded": 0, "tests": 0, "tested": 0}
    rows = {c["seq"]: c for c in lineage.lineage(store, cid)}
    assert rows[bad["seq"]]["state"] == "fabrication failed" and rows[bad["seq"]]["test_request"] is None
    assert "fabrication failed" in rows[bad["seq"]]["reason"]
    assert rows[good["seq"]]["state"] == "testing" and rows[good["seq"]]["test_request"] is not None
    pts = {p["seq"]: p for p in state.points(store, cid)}
    assert pts[bad["seq"]]["status"] == "excluded" and pts[bad["seq"]]["hours"] is None  # never a short life
    assert pts[good["seq"]]["request_id"] == rows[good["seq"]]["test_request"]
    test_req = requests.raw(store, rows[good["seq"]]["test_request"])
    assert test_req.protocol_name == "linked test cycling" and test_req.sample_id == good["sample_id"]
    assert test_req.parameters == {}  # immersion_time is the fabrication's parameter, not the test's
    prog = state.progress(store, cid)
    assert prog["excluded"] == 1 and prog["pending"] == 1 and prog["unsubmitted"] == 0
    assert not state.finish_if_done(store, cid)


def test_an_interrupted_fabrication_is_recorded_as_such(linked_store) -> None:
    store, cid = linked_store(levels="[30 s]")
    (cell,) = lineage.cells(store, cid)
    run_id = _fake_end(store, cell["fab_request_id"], ok=False, run_state="interrupted")
    lineage.advance(store, cid, actor="ada")
    (row,) = lineage.lineage(store, cid)
    assert row["state"] == "interrupted" and row["fabrication_run"] == run_id
    assert f"fabrication interrupted (run {run_id})" in row["reason"]
    assert state.progress(store, cid)["excluded"] == 1 and state.finish_if_done(store, cid)


def test_submitting_again_or_after_a_dead_process_queues_nothing_twice(linked_store) -> None:
    store, cid = linked_store()
    first = [c["fab_request_id"] for c in lineage.cells(store, cid)]
    assert state.submit_pending(store, cid, actor="ada") == []  # resume: all already queued
    cell = lineage.cells(store, cid)[0]
    _fake_end(store, cell["fab_request_id"], ok=True, run_state="completed")
    # a dead campaign process had committed the test request but not linked it
    camp = state.get(store, cid)
    orphan, adopted = lineage._submit(store, camp, "test", cell["sample_id"], cell["factor_values"], "ada")
    assert not adopted
    lineage.advance(store, cid, actor="ada")
    row = lineage.cells(store, cid)[0]
    assert row["test_request_id"] == orphan and row["state"] == "testing"
    assert [c["fab_request_id"] for c in lineage.cells(store, cid)] == first
    assert len(requests.listing(store)) == 3  # 2 fabrications + 1 test, nothing twice
    events = [json.loads(e["data"]) for e in store.events() if e["kind"] == "campaign.point.submitted"]
    assert [(e["request_id"], e["adopted"], e["role"]) for e in events] == [(orphan, True, "test")]


def test_a_linked_campaign_needs_an_assembly_step_and_two_different_protocols(tmp_path: Path) -> None:
    from labctl.campaign import CampaignFileError, load_campaign

    no_assembly = tmp_path / "t.yaml"
    no_assembly.write_text((DATA / "linked-test.yaml").read_text().replace(
        "  - operator: {message: Assemble the Li|Li coin cell and connect it to the channel.,\n"
        "               cell: {kind: symmetric, electrolyte: carbonate, separator: celgard, coated: both}}\n",
        ""))
    p = linked_file(tmp_path, test=str(no_assembly))
    with pytest.raises(CampaignFileError) as err:
        load_campaign(p)
    (prob,) = err.value.problems
    assert prob.field == "protocols.test" and prob.line == 3
    assert "must assemble the cell first" in prob.message
    same = linked_file(tmp_path, test=str(DATA / "linked-fab.yaml"))
    with pytest.raises(CampaignFileError, match="the same text"):
        load_campaign(same)


# -- kill -9 of the campaign process, then resume -------------------------------------------------------


def _test_running(db: str) -> dict | None:
    """The first test run once it is running (its row), else None."""
    with Store.open(db) as store:
        for r in store.runs():
            if r["protocol_name"] == "linked test cycling (long)" and r["state"] == "running":
                return store.run(r["id"])
    return None


def test_kill9_of_the_campaign_then_resume(sqlite_db: str, tmp_path: Path) -> None:
    long = tmp_path / "long-test.yaml"
    long.write_text((DATA / "linked-test.yaml").read_text().replace(
        "name: linked test cycling", "name: linked test cycling (long)").replace(
        "cycles: 3}", "cycles: 150}").replace("sample_every: 10 s", "sample_every: 1 s"))
    f = linked_file(tmp_path, test=str(long))
    log = open(tmp_path / "campaign.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([sys.executable, "-m", "labctl", "campaign", "run", str(f), "--simulate",
                             "--max-parallel", "2", "--db", sqlite_db], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, env=os.environ.copy())
    try:
        end, run = time.monotonic() + 180, None
        while time.monotonic() < end and proc.poll() is None:
            run = _test_running(sqlite_db)
            if run is not None:
                break
            time.sleep(0.2)
        assert run is not None, (tmp_path / "campaign.log").read_text()
        proc.send_signal(signal.SIGKILL)  # the campaign process dies...
        os.kill(run["pid"], signal.SIGKILL)  # ...and so does the test run it had going
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()
    r = _labctl("campaign", "resume", "1", "--max-parallel", "2", "--db", sqlite_db)
    assert r.returncode == 0, r.stdout + r.stderr
    with Store.open(sqlite_db) as store:
        reqs = requests.listing(store)
        assert len(reqs) == 4 and all(requests.is_ended(q["state"]) for q in reqs)  # none lost
        assert set(started_per_request(store).values()) == {1}  # none started twice
        rows = {c["test_run"]: c for c in lineage.lineage(store, 1)}
        killed = rows[run["id"]]
        assert killed["state"] == "interrupted" and f"test run {run['id']} interrupted" in killed["reason"]
        assert store.run(run["id"])["state"] == "interrupted"
        (other,) = [c for rid, c in rows.items() if rid != run["id"]]
        assert other["state"] == "tested"
        pts = {p["run_id"]: p for p in state.points(store, 1)}
        assert pts[run["id"]]["status"] == "excluded" and "interrupted" in pts[run["id"]]["reason"]
        assert pts[other["test_run"]]["status"] in ("failed", "censored")
        assert state.get(store, 1)["state"] == "finished" and store.verify().ok
        # one run per request: 2 fabrications + 2 tests, each sample tested once
        samples = [c["sample_id"] for c in rows.values()]
        assert sorted(r["sample_id"] for r in store.runs()) == sorted(2 * samples)
