"""`Lab.submit` is `labctl.queue.submit` plus a start by the lab's own dispatcher: the request is a queue row
like `labctl submit`'s, a submission whose instruments are busy waits queued and starts when they are free,
and a station that cannot be read is reported by the handle without queueing anything."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import labctl
from labctl.api import SubmitError
from labctl.store import requests

WAIT = "labctl: 1\nname: API queue wait\nsteps:\n  - wait: {duration: 2 s}\n"
HOLD = "labctl: 1\nname: API queue hold\nsteps:\n  - ocv: {duration: 1 s, sample_every: 1 s}\n" \
       "  - wait: {duration: 10 min}\n"


@pytest.fixture(autouse=True)
def spool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LABCTL_SPOOL", str(tmp_path / "spool"))
    monkeypatch.setenv("LABCTL_AUDIT_KEY", str(tmp_path / "audit.key"))
    return tmp_path / "spool"


def _until(pred, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_submission_is_a_queue_request_run_once(tmp_path: Path) -> None:
    proto = tmp_path / "wait.yaml"
    proto.write_text(WAIT)
    with labctl.connect(str(tmp_path / "lab.db")) as lab:
        sub = lab.submit(proto, seed=11, operator="nb-user")
        run = sub.wait(120)
        row = requests.get(lab.store, sub.request_id)
        assert row["state"] == "finished" and row["run_id"] == run.id == sub.run_id
        assert row["requested_by"] == "nb-user" and row["protocol_text"] == WAIT
        assert row["worker"].startswith("api@")
        assert run.provenance["seed"] == 11 and sub.summary["run_id"] == run.id and sub.returncode == 0
        assert "--db" not in sub.argv and str(lab.store.url) not in sub.argv  # in its environment: not in ps
        kinds = [e["kind"] for e in lab.store.events() if e["kind"].startswith("request.")]
        assert kinds == ["request.submitted", "request.taken", "request.started", "request.finished"]
        # the `labctl queue` view of it is the CLI's own
        listed = {r["id"]: r for r in requests.listing(lab.store)}
        assert list(listed) == [sub.request_id]


def test_a_submission_waits_queued_for_busy_instruments_then_starts(tmp_path: Path) -> None:
    hold = tmp_path / "hold.yaml"
    hold.write_text(HOLD)
    with labctl.connect(str(tmp_path / "lab.db")) as lab:
        first = lab.submit(hold, realtime=True)
        _until(lambda: first.state == "running")
        second = lab.submit(hold, realtime=True)
        assert second.state == "queued"  # the simulated station's instruments are leased by the first run
        assert requests.get(lab.store, second.request_id)["state"] == "queued"
        first.abort()
        assert first.wait(60).state == "aborted"
        _until(lambda: second.state == "running")  # started at a look at its handle, once the leases are free
        second.abort()
        run = second.wait(60)
        assert run.state == "aborted" and second.returncode == 130
        assert [r["state"] for r in requests.listing(lab.store)] == ["failed", "failed"]
        runs = lab.runs()
        assert len(runs) == 2 and set(runs["state"]) == {"aborted"}


def test_an_unreadable_station_is_reported_by_the_handle_and_nothing_is_queued(tmp_path: Path) -> None:
    proto = tmp_path / "wait.yaml"
    proto.write_text(WAIT)
    with labctl.connect(str(tmp_path / "lab.db")) as lab:
        sub = lab.submit(proto, station=tmp_path / "nope.yaml")
        with pytest.raises(SubmitError, match=r"nope\.yaml: cannot read the file"):
            sub.wait(10)
        with pytest.raises(SubmitError):
            _ = sub.state
        assert requests.listing(lab.store) == [] and lab.runs().empty
        assert json.dumps(sub.argv) == "[]"
