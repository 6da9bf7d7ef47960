"""labctl.api against a real SQLite store and real dry runs (`labctl run` subprocesses started by submit)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import labctl
from labctl.api import STREAM_UNITS, Protocol, SubmitError
from labctl.cli import app as cli_app
from labctl.protocol import ProtocolFileError

ROOT = Path(__file__).resolve().parents[2]
STATION = ROOT / "stations" / "simulated.yaml"

SHORT = """\
labctl: 1
name: API test, OCV and EIS
sample: {id: API-0001, substrate: Li foil 450 um, area: 1.13 cm^2, li_thickness: 450 um}
parameters: {rest: 10 min}
steps:
  - operator: {message: Connect the cell.,
               cell: {kind: symmetric, electrolyte: carbonate, separator: celgard, coated: none}}
  - ocv: {duration: "${rest}", sample_every: 10 s}
  - eis: {frequencies: 200 kHz..0.1 Hz, points_per_decade: 10, amplitude: 10 mV}
"""


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("proto") / "short.yaml"
    path.write_text(SHORT)
    return path


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory, short: Path):
    """One completed dry run (rest 2 min, seed 3) in a fresh store, and the lab that submitted it."""
    db = tmp_path_factory.mktemp("db") / "lab.db"
    lab = labctl.connect(str(db))
    sub = lab.submit(short, {"rest": "2 min"}, seed=3, sample="API-0042")
    run = sub.wait(120)
    yield lab, sub, run
    lab.close()


def test_import_labctl_stays_light() -> None:
    code = ("import sys, labctl; labctl.__version__; heavy = [m for m in "
            "('pandas', 'labctl.store', 'sqlalchemy', 'labctl.api') if m in sys.modules]; print(heavy); "
            "assert not heavy; assert callable(labctl.connect); assert 'labctl.api' in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_connect_resolves_like_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABCTL_DB", str(tmp_path / "env.db"))
    with labctl.connect() as lab:
        assert lab.url.endswith(str(tmp_path / "env.db"))
        assert lab.runs().empty
        assert list(lab.runs().columns)[:3] == ["protocol_name", "protocol_path", "protocol_sha256"]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LABCTL_DB")
    with labctl.connect() as lab:
        assert lab.url == f"sqlite:///{tmp_path / 'labctl.db'}"


def test_submitted_dry_run_completes_and_reads_back(done) -> None:
    _, sub, run = done
    assert run.state == "completed"
    assert sub.state == "completed" and sub.returncode == 0
    assert sub.summary["state"] == "completed" and sub.summary["run_id"] == run.id
    assert sub.progress == {"state": "completed", "steps_done": 3, "steps_total": 3, "fraction": 1.0,
                            "step": None, "points": sub.summary["points"]}
    prov = run.provenance
    assert prov["seed"] == 3 and prov["mode"] == "dry-run" and prov["parameters"] == {"rest": "2 min"}
    assert prov["sample_id"] == "API-0042" and prov["protocol_name"] == "API test, OCV and EIS"
    assert prov["versions"]["labctl"] == labctl.__version__


def test_runs_frame_filters(done) -> None:
    lab, _, run = done
    df = lab.runs()
    assert run.id in df.index and df.loc[run.id, "state"] == "completed"
    assert isinstance(df.loc[run.id, "created_at"], pd.Timestamp) and df.loc[run.id, "n_steps"] == 3
    assert list(lab.runs(state="completed").index) == [run.id]
    assert lab.runs(state="failed").empty
    assert list(lab.runs(sample="API-0042", protocol="OCV and").index) == [run.id]
    assert lab.runs(since="2999-01-01").empty


def test_steps_commanded_achieved_with_units(done) -> None:
    _, _, run = done
    steps = run.steps
    assert list(steps["kind"]) == ["operator", "ocv", "eis"] and set(steps["status"]) == {"done"}
    ocv = steps.loc[1]
    assert ocv["commanded"]["duration"] == 120.0 and ocv["units"]["duration"] == "s"
    assert ocv["achieved"]["points"] == 12
    assert steps.loc[2]["units"]["amplitude"] == "V" and steps.loc[2]["commanded"]["amplitude"] == 0.01


def test_data_frames_carry_units(done) -> None:
    _, _, run = done
    ocv = run.data("ocv")
    # the OCV step (12 points) and the EIS step's OCV before its sweep, told apart by `step`
    streams = run.streams.set_index(["stream", "step"])["points"]
    assert ocv.groupby("step").size().to_dict() == {1: 12, 2: streams[("ocv", 2)]}
    assert ocv.attrs["units"] == {"t": "s", "voltage": "V"} and ocv.attrs["stream"] == "ocv"
    assert ocv["voltage"].map(math.isfinite).all() and ocv["t"].is_monotonic_increasing
    named = run.data("ocv", step=1, unit_names=True)
    assert list(named.columns) == ["step", "t [s]", "voltage [V]"] and len(named) == 12
    assert named.attrs["units"] == {"t [s]": "s", "voltage [V]": "V"}
    eis = run.data("eis", step=2)
    assert eis.attrs["units"] == STREAM_UNITS["eis"]
    assert len(eis) == 64 and eis["freq"].iloc[0] == pytest.approx(2e5, rel=1e-3)
    assert (eis["z_real"] > 0).all()
    with pytest.raises(labctl.api.runs.StoreError, match=r"no stream 'cycling' \(it has: eis, ocv\)"):
        run.data("cycling")


def test_events_io_and_verify(done) -> None:
    lab, _, run = done
    ev = run.events
    assert ev["kind"].iloc[0] == "run.created" and "io.sealed" in set(ev["kind"])
    assert ev["data"].iloc[0]["seed"] == 3
    io = run.io
    assert set(io["instrument"]) == {"potentiostat", "eis"}
    assert b"*IDN?\n" in set(io.loc[io["direction"] == "tx", "bytes"])
    v = run.verify()
    # the chain also holds the key fingerprint that starts it (audit.key, no run) and the request's queueing
    # (request.submitted, worker.started of the lab's dispatcher, request.taken: before the run existed)
    queued = [e for e in lab.store.events() if e["run_id"] is None and e["kind"] != "audit.key"]
    assert sorted(e["kind"] for e in queued) == ["request.submitted", "request.taken", "worker.started"]
    assert v.ok and v.chain_ok and v.checked == len(ev) + 1 + len(queued) and v.problems == []
    assert v.sealed_streams == 3


def test_report_is_the_cli_report(done, tmp_path: Path) -> None:
    lab, _, run = done
    db = lab.store.url.removeprefix("sqlite:///")
    cli = CliRunner().invoke(cli_app, ["runs", "report", str(run.id), "--json", "--db", db,
                                             "--out", str(tmp_path / "cli")])
    assert cli.exit_code == 0, cli.output
    written = run.report(tmp_path / "api")
    from_cli = json.loads(cli.output)
    assert json.loads(json.dumps(written, default=str)) == from_cli
    assert (tmp_path / "api" / "summary.html").is_file()
    assert written["figures"] == ["step02-eis-nyquist.png", "step02-eis-bode.png"]
    metrics = run.report()  # no folder: the metrics only
    assert "figures" not in metrics and metrics["steps"] == from_cli["steps"]
    sigma = next(s for s in metrics["steps"] if "eis" in s)["eis"]
    assert all(math.isfinite(float(v)) for v in sigma["params"].values())


def test_plan_has_the_cli_problems(tmp_path: Path, short: Path) -> None:
    p = Protocol.load(short)
    assert p.parameters == {"rest": "10 min"} and p.name == "API test, OCV and EIS"
    ok = p.plan(STATION, rest="1 min")
    assert ok.ok and ok.parameters == {"rest": "1 min"}
    assert ok.steps[1].duration == pytest.approx(60.0)
    bad = p.plan(STATION, rest="20 year")  # valid, but beyond the plan's 10-year bound on a step
    cli = CliRunner().invoke(cli_app, ["plan", str(short), "--station", str(STATION), "-p",
                                             "rest=20 year", "--json"])
    assert not bad.ok and cli.exit_code == 2
    assert bad.errors == json.loads(cli.output)["errors"]
    frame = p.plan_frame(STATION)
    assert list(frame["kind"]) == ["operator", "ocv", "eis"] and frame.loc[1, "duration_s"] == 600.0


def test_bad_protocol_is_reported_with_its_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(SHORT.replace("sample_every: 10 s", "sample_every: 10 kg"))
    with pytest.raises(ProtocolFileError) as exc:
        Protocol.load(f)
    assert any(p.line == 8 and "sample_every" in p.field for p in exc.value.problems)


def test_submit_a_loaded_protocol_keeps_its_parameters(tmp_path: Path, short: Path) -> None:
    with labctl.connect(str(tmp_path / "lab.db")) as lab:
        sub = lab.submit(Protocol.load(short, rest="30 s"), seed=5)
        run = sub.wait(120)
        assert run.provenance["parameters"] == {"rest": "30 s"}
        assert run.steps.loc[1, "commanded"]["duration"] == 30.0
        assert "-p" in sub.argv and "rest=30 s" in sub.argv


def test_submit_that_cannot_start_says_why(tmp_path: Path, short: Path) -> None:
    with labctl.connect(str(tmp_path / "lab.db")) as lab:
        sub = lab.submit(short, station=tmp_path / "nope.yaml")
        with pytest.raises(SubmitError, match=r"nope\.yaml: cannot read the file"):
            sub.wait(120)
        with pytest.raises(SubmitError):
            _ = sub.state
        assert lab.runs().empty


def _until(pred, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


HOLD = """\
labctl: 1
name: API test, OCV then a long wait
steps:
  - ocv: {duration: 2 s, sample_every: 1 s}
  - wait: {duration: 10 min}
"""


def test_pause_resume_abort_through_the_store(tmp_path: Path) -> None:
    """On the wall clock (a 10 min wait): each control reaches the run from this process through the store."""
    proto = tmp_path / "hold.yaml"
    proto.write_text(HOLD)
    with labctl.connect(str(tmp_path / "lab.db")) as lab:
        sub = lab.submit(proto, seed=1, realtime=True, operator="tester")
        assert sub.state in ("starting", "created", "preflight", "running")
        _until(lambda: sub.progress["step"] == {"index": 1, "kind": "wait"})
        sub.pause()
        _until(lambda: sub.state == "paused")
        sub.resume()
        _until(lambda: sub.state == "running")
        sub.abort()
        run = sub.wait(60)
        assert run.state == "aborted" and sub.returncode == 130
        ev = run.events
        posted = ev[ev["kind"] == "control.posted"]
        assert [(d["command"], a) for d, a in zip(posted["data"], posted["actor"], strict=True)] == [
            ("pause", "tester"), ("resume", "tester"), ("abort", "tester")]
        states = [d["to"] for d in ev.loc[ev["kind"] == "run.state", "data"]]
        assert states[-3:] == ["paused", "running", "aborted"] and run.verify().ok
        assert run.steps.loc[1, "status"] == "deviated" and len(run.data("ocv")) == 2


def test_compare_is_the_cli_compare(done) -> None:
    lab, _, run = done
    table = lab.compare([run])
    cli = CliRunner().invoke(cli_app, ["runs", "compare", str(run.id), "--json", "--db",
                                       lab.store.url.removeprefix("sqlite:///")])
    assert cli.exit_code == 0, cli.output
    row = json.loads(cli.output)[0]
    assert list(table.index) == [run.id] and table.loc[run.id, "state"] == "completed"
    assert table.loc[run.id, "R_film_ohm"] == pytest.approx(row["R_film_ohm"])
    assert table.loc[run.id, "sample"] == row["sample"] == "API-0042"
