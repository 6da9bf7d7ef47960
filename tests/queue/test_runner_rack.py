"""`labctl runner --station RACK`: a rack file (the 8-channel cycler) is not a station; the runner refuses it
before registering, naming every channel station file to serve instead, and a channel station is served."""

from __future__ import annotations

from pathlib import Path

from queue_helpers import labctl

ROOT = Path(__file__).resolve().parents[2]
RACK = ROOT / "stations" / "cycler-8ch.yaml"


def test_runner_refuses_a_rack_naming_its_channel_stations(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'lab.db'}"
    r = labctl("runner", "--station", str(RACK), "--simulate", "--once", "--db", db)
    assert r.returncode == 2, r.stdout + r.stderr
    err = " ".join(r.stderr.split())  # rich wraps long lines
    assert f"{RACK} is a rack of 8 channel stations" in err and "not a station" in err
    for n in range(1, 9):
        assert str(ROOT / "stations" / "cycler-8ch" / f"ch{n}.yaml") in err
    assert "Traceback" not in r.stderr
    shown = labctl("workers", "--json", "--db", db)
    assert shown.returncode == 0 and shown.stdout.strip() in ("[]", ""), shown.stdout  # never registered
    ch1 = labctl("runner", "--station", str(ROOT / "stations" / "cycler-8ch" / "ch1.yaml"), "--simulate",
                 "--once", "--db", db)
    assert ch1.returncode == 0 and "serving station" in ch1.stdout, ch1.stdout + ch1.stderr
