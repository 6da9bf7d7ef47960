"""`labctl run --simulate` end to end through the CLI (store replaced by the in-memory fake)."""

from __future__ import annotations

import json
import re

import pytest
from engine_fakes import FakeStore
from typer.testing import CliRunner

from labctl.cli import app

STATION = """\
labctl_station: 1
name: cli-sim
instruments:
  stage: {driver: grbl, port: "labsim://cli-stage"}
  pump.stock: {driver: ne1000, port: "labsim://cli-pumps", address: 1}
  pump.solvent: {driver: ne1000, port: "labsim://cli-pumps", address: 2}
baths:
  alloy: {x: 50 mm, surface_z: -20 mm, capacity: 50 mL, pumps: [pump.stock, pump.solvent]}
  solvent: {x: 100 mm, surface_z: -20 mm, capacity: 50 mL, pumps: [pump.solvent]}
stocks:
  incl3: {pump: pump.stock, salt: InCl3, concentration: 0.5 M, solvent: THF, syringe_diameter: 14.5 mm}
  thf: {pump: pump.solvent, solvent: THF, syringe_diameter: 14.5 mm}
cell: {area: 1.13 cm^2}
"""
PROTOCOL = """\
labctl: 1
name: Li-In immersion (CLI test)
parameters: {immersion_time: 60 s, concentration: 0.1 M}
steps:
  - prepare_bath: {bath: alloy, salt: InCl3, solvent: THF, concentration: "${concentration}", volume: 20 mL}
  - immerse: {bath: alloy, depth: 12 mm, speed: 5 mm/s, time: "${immersion_time}",
              rinse: {bath: solvent, time: 10 s}, dry: 60 s}
  - operator: {message: Assemble the Li|Li coin cell.}
  - wait: {duration: 30 s}
"""


class ClosableStore(FakeStore):
    url = "memory://"

    def close(self) -> None: ...

    def run(self, run_id: int) -> dict:
        return self.runs[run_id]

    def find_dead_runs(self) -> list[dict]:
        return []  # one process, in memory: no run can have died before this one


@pytest.fixture
def files(tmp_path, monkeypatch):
    (tmp_path / "station.yaml").write_text(STATION)
    (tmp_path / "proto.yaml").write_text(PROTOCOL)
    store = ClosableStore()
    monkeypatch.setattr("labctl.cli.run_cmds._open_store", lambda db: store)
    return tmp_path, store


def test_run_simulate_json(files) -> None:
    pytest.importorskip("labctl.protocol.plan", reason="preflight needs the plan (labctl.protocol.plan)")
    tmp, store = files
    res = CliRunner().invoke(
        app,
        [
            "run",
            str(tmp / "proto.yaml"),
            "--station",
            str(tmp / "station.yaml"),
            "--simulate",
            "--json",
            "-p",
            "immersion_time=90 s",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["state"] == "completed"
    assert [s["status"] for s in out["steps"]] == ["done"] * 4
    imm = out["steps"][1]["achieved"]
    assert imm["commanded_time_s"] == 90.0 and imm["immersion_time_s"] == pytest.approx(90.0, abs=0.5)
    assert out["steps"][0]["achieved"]["concentration"] == pytest.approx(100.0, rel=0.01)
    assert {s["role"] for s in out["safe_state"] if s["ok"]} == {"stage", "pump.stock", "pump.solvent"}
    assert store.states(out["run_id"])[-1] == "completed" and store.io


def test_run_simulate_human_summary(files) -> None:
    pytest.importorskip("labctl.protocol.plan", reason="preflight needs the plan (labctl.protocol.plan)")
    tmp, _ = files
    res = CliRunner().invoke(
        app, ["run", str(tmp / "proto.yaml"), "--station", str(tmp / "station.yaml"), "--simulate"]
    )
    assert res.exit_code == 0, res.output
    assert "completed" in res.output and "immersion_time:" in res.output
    assert re.search(r"│\s+[0-9.]+ s → [0-9.]+ s\s+│", res.output), res.output  # value and unit whole


def test_bad_override_is_a_clear_error(files) -> None:
    tmp, _ = files
    res = CliRunner().invoke(
        app,
        ["run", str(tmp / "proto.yaml"), "--simulate", "--station", str(tmp / "station.yaml"), "-p", "oops"],
    )
    assert res.exit_code != 0 and isinstance(res.exception, Exception)
    assert "name=value" in str(res.exception)


def test_control_commands_post_to_the_store(files) -> None:
    _, store = files
    rid = store.create_run(steps=[])
    for cmd in ("pause", "resume", "abort", "ack"):
        res = CliRunner().invoke(app, [cmd, str(rid), "--operator", "ana"])
        assert res.exit_code == 0, res.output
    assert [(c["command"], c["actor"]) for c in store.control] == [
        ("pause", "ana"),
        ("resume", "ana"),
        ("abort", "ana"),
        ("ack", "ana"),
    ]
