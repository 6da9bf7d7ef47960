"""Replay (issue 17.3): a short protocol is dry-run into a temporary database; its stored I/O transcript is
then replayed byte for byte: the same protocol runs again with every instrument link replaced by a
ScriptedTransport playing what that link recorded. The drivers must send exactly the recorded bytes, parse
every recorded reply into the same run (same end state, same stored measurements), and use the whole
transcript."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from labctl.cli import app
from labctl.store import Store
from labctl.testing import ScriptedTransport, TranscriptMismatch
from labctl.testing.replay import replaying, scripted_links, transcript_script

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = """\
labctl: 1
name: replay check
sample: {id: RPL-0001, substrate: Li foil 450 um, area: 1.13 cm^2}
steps:
  - prepare_bath: {bath: alloy, salt: InCl3, solvent: THF, concentration: 0.05 M, volume: 2 mL,
                   temperature: 25 degC, stir: 200 rpm, settle: 1 s}
  - immerse: {bath: alloy, depth: 10 mm, speed: 10 mm/s, time: 5 s}
  - ocv: {duration: 5 s, sample_every: 1 s}
  - eis: {frequencies: 10 kHz..100 Hz, points_per_decade: 2, amplitude: 10 mV}
"""
STREAMS = ("ocv", "eis")


def _run(tmp_path: Path, db: Path) -> dict:
    args = ["run", str(tmp_path / "replay.yaml"), "--simulate", "--seed", "1", "--json", "--db", f"sqlite:///{db}",
            "--station", str(ROOT / "stations" / "simulated.yaml")]
    done = CliRunner().invoke(app, args)
    assert done.exception is None or isinstance(done.exception, SystemExit), done.exception
    return json.loads(done.stdout)


@pytest.fixture
def recorded(tmp_path, monkeypatch):
    monkeypatch.setenv("LABCTL_AUDIT_KEY", str(tmp_path / "audit.key"))
    (tmp_path / "replay.yaml").write_text(PROTOCOL)
    summary = _run(tmp_path, tmp_path / "recorded.db")
    assert summary["state"] == "completed", summary["reason"]
    store = Store.open(f"sqlite:///{tmp_path / 'recorded.db'}")
    try:
        rows = store.io(summary["run_id"])
        data = {s: store.measurements(summary["run_id"], s) for s in STREAMS}
    finally:
        store.close()
    return tmp_path, summary, rows, data


def test_a_dry_run_replays_byte_for_byte(recorded):
    tmp_path, summary, rows, data = recorded
    scripts = scripted_links(rows)
    assert {"stage", "hotplate", "potentiostat", "eis"} <= set(scripts)
    assert any("+" in link for link in scripts)                        # the two pumps' shared port
    with replaying(scripts) as opened:
        again = _run(tmp_path, tmp_path / "replayed.db")
    assert again["state"] == "completed", again["reason"]
    assert set(opened) == set(scripts)
    for link, transport in opened.items():
        transport.assert_done()                                        # every recorded exchange, in order
        assert transport.sent, link
    store = Store.open(f"sqlite:///{tmp_path / 'replayed.db'}")
    try:
        for stream in STREAMS:
            replayed = store.measurements(again["run_id"], stream)
            assert replayed.keys() == data[stream].keys()
            for column, values in data[stream].items():
                if column == "t_received":  # when each point reached labctl: transport timing, not data
                    assert np.all(np.diff(replayed[column]) >= 0), f"{stream}.{column}"
                    continue
                np.testing.assert_array_equal(replayed[column], values, err_msg=f"{stream}.{column}")
    finally:
        store.close()
    assert again["points"] == summary["points"] > 0


def test_a_driver_that_sends_other_bytes_fails_on_the_first(recorded):
    _tmp_path, _summary, rows, _data = recorded
    script = transcript_script(rows, "hotplate")
    assert script[0][0] is not None and script[0][0].endswith(b"\r\n")
    t = ScriptedTransport(script)
    t.open()
    wrong = script[0][0].replace(b"IN_", b"OUT_", 1) if b"IN_" in script[0][0] else b"X" + script[0][0]
    with pytest.raises(TranscriptMismatch, match="transcript expects"):
        t.write(wrong)


def test_transcript_script_grouping():
    rows = [
        {"instrument": "stage", "direction": "event", "bytes": b"", "note": "open"},
        {"instrument": "stage", "direction": "rx", "bytes": b"\r\nGrbl 1.1h ['$' for help]\r\n", "note": ""},
        {"instrument": "stage", "direction": "tx", "bytes": b"$I\n", "note": ""},
        {"instrument": "gauge", "direction": "tx", "bytes": b"PR1\r\n", "note": ""},
        {"instrument": "stage", "direction": "rx", "bytes": b"[VER:1.1h.20190830:]\r\n", "note": ""},
        {"instrument": "stage", "direction": "rx", "bytes": b"ok\r\n", "note": ""},
        {"instrument": "stage", "direction": "tx", "bytes": b"$X\n", "note": ""},
        {"instrument": "stage", "direction": "event", "bytes": b"ok\r\n", "note": "discarded"},
        {"instrument": "stage", "direction": "event", "bytes": b"Grbl 1.1h",
         "note": "re-identified after reconnect"},
        {"instrument": "stage", "direction": "tx", "bytes": None, "data": "?", "note": ""},
    ]
    assert transcript_script(rows, "stage") == [
        (None, b"\r\nGrbl 1.1h ['$' for help]\r\n"),
        (b"$I\n", b"[VER:1.1h.20190830:]\r\nok\r\n"),
        (b"$X\n", b"ok\r\n"),          # drained bytes came from the instrument: replayed, to be drained
        (b"?", b""),
    ]
    assert list(scripted_links(rows)) == ["stage", "gauge"]
