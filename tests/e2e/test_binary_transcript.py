"""A dry run's transcript keeps the Keithley's binary buffer replies: every command, and each `#0` block with
its length and sha256, whose float64 values are the stored measurements bit for bit."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from labctl.cli import app
from labctl.store import Store

PROTOCOL = """\
labctl: 1
name: Li|Li binary transcript
sample: {id: BIN-1, substrate: Li foil 450 um, area: 1.13 cm^2, li_thickness: 450 um}
steps:
  - operator: {message: Assemble the Li|Li coin cell., cell: {coated: none}}
  - cycle_symmetric: {current_density: 1 mA/cm^2, capacity: 1 mAh/cm^2, cycles: 2, sample_every: 1 s,
                      voltage_limit: 0.5 V}
"""


@pytest.mark.timeout(120)
def test_binary_buffer_replies_in_the_transcript(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "proto.yaml").write_text(PROTOCOL)
    db = tmp_path / "run.db"
    result = CliRunner().invoke(
        app, ["run", "proto.yaml", "--simulate", "--seed", "3", "--db", str(db), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["state"] == "completed" and summary["points"] == 4 * 3600
    store = Store.open(str(db))
    try:
        io = store.io(summary["run_id"], "potentiostat")
        stored = store.measurements(summary["run_id"], "cycling")
    finally:
        store.close()
    sent = [r["bytes"] for r in io if r["direction"] == "tx"]
    fetches = [
        i for i, r in enumerate(io) if r["direction"] == "tx" and r["bytes"].startswith(b":TRAC:DATA?")
    ]
    assert len(fetches) == 4
    assert (
        sent.index(b":FORM:DATA REAL\n")
        < sent.index(b":FORM:BORD SWAP\n")
        < sent.index(io[fetches[0]]["bytes"])
    )
    values = []
    for i in fetches:
        reply = io[i + 1]
        block = reply["bytes"]
        assert reply["direction"] == "rx" and reply["length"] == len(block) == 2 + 3600 * 24 + 1
        assert reply["sha256"] == hashlib.sha256(block).hexdigest()
        assert block[:2] == b"#0" and block[-1:] == b"\n"
        values.append(np.frombuffer(block[2:-1], "<f8").reshape(-1, 3))
    rel, volts, amps = np.concatenate(values).T
    np.testing.assert_array_equal(stored["voltage"], volts)
    np.testing.assert_array_equal(stored["current"], amps)
    np.testing.assert_allclose(np.diff(stored["t"])[:3599], np.diff(rel)[:3599], rtol=0, atol=1e-9)
