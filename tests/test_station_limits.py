"""Station limit names are checked when the station is loaded (issue 14.12): `plan` refuses a misspelled limit
as `run` does, naming file, line, instrument, the bad name and the known ones; and a run refused before its
preflight is recorded failed, never left as an orphan in `created`."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

from labctl.cli import main
from labctl.station import StationFileError, load_station

ROOT = Path(__file__).resolve().parents[1]
SIMULATED = ROOT / "stations" / "simulated.yaml"
PROTOCOL = ROOT / "protocols" / "li-in-immersion.yaml"


def misspelled(tmp_path: Path) -> tuple[Path, int]:
    """stations/simulated.yaml with the stage's `speed` limit spelled `sped`; the line it is on."""
    lines = SIMULATED.read_text(encoding="utf-8").splitlines(keepends=True)
    (line,) = [i for i, text in enumerate(lines, 1) if "speed: [null, 20 mm/s]" in text]
    lines[line - 1] = lines[line - 1].replace("speed:", "sped:")
    path = tmp_path / "station.yaml"
    path.write_text("".join(lines), encoding="utf-8")
    return path, line


def cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["labctl", *args])
    with pytest.raises(SystemExit) as stop:
        main()
    out = capsys.readouterr()
    return int(stop.value.code or 0), " ".join((out.out + out.err).split())


def test_load_station_names_the_bad_limit_and_the_known_ones(tmp_path):
    path, line = misspelled(tmp_path)
    with pytest.raises(StationFileError) as err:
        load_station(path)
    (problem,) = err.value.problems
    assert (problem.file, problem.line) == (str(path), line)
    assert problem.field == "instruments.stage.limits.sped"
    assert problem.message == "unknown limit `sped` for stage (driver `grbl`); its limits are: speed, x, z"


@pytest.mark.parametrize("role", ["pump.stock", "hotplate", "mfc", "rf", "potentiostat", "eis"])
def test_every_driver_checks_its_own_names(tmp_path, role):
    text = SIMULATED.read_text(encoding="utf-8")
    start = text.index(f"  {role}:")
    at = text.index("limits: {", start) + len("limits: {")
    path = tmp_path / "s.yaml"
    path.write_text(text[:at] + "bogus: [null, 1], " + text[at:], encoding="utf-8")
    with pytest.raises(StationFileError, match=rf"unknown limit `bogus` for {role} "):
        load_station(path)


def test_plan_refuses_a_misspelled_limit(tmp_path, monkeypatch, capsys):
    path, line = misspelled(tmp_path)
    code, out = cli(monkeypatch, capsys, "plan", str(PROTOCOL), "--station", str(path))
    assert code == 2, out
    assert f"{path}:{line}:" in out and "unknown limit `sped` for stage" in out and "speed, x, z" in out
    assert "Traceback" not in out


def test_run_refuses_it_before_the_store(tmp_path, monkeypatch, capsys):
    path, _ = misspelled(tmp_path)
    db = tmp_path / "r.db"
    code, out = cli(monkeypatch, capsys, "run", str(PROTOCOL), "--simulate", "--station", str(path),
                    "--db", f"sqlite:///{db}")
    assert code == 2 and "unknown limit `sped` for stage" in out, out
    assert not db.exists()


def test_a_run_refused_before_preflight_is_recorded_failed(tmp_path, monkeypatch, capsys):
    """When the instruments cannot be built after the run was recorded (a driver plug-in that fails to load),
    the run row says failed, with the reason; no run is left `created`."""
    from labctl.engine import instruments
    from labctl.engine.errors import PreflightError

    def broken(*args, **kwargs):
        raise PreflightError("stage: driver 'grbl' is not available (injected)")

    monkeypatch.setattr(instruments, "build_instruments", broken)
    monkeypatch.setenv("LABCTL_AUDIT_KEY", str(tmp_path / "k"))
    db = tmp_path / "r.db"
    code, out = cli(monkeypatch, capsys, "run", str(PROTOCOL), "--simulate", "--station", str(SIMULATED),
                    "--db", f"sqlite:///{db}")
    assert code != 0 and "not available (injected)" in out, out
    assert "Traceback" not in out
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT state FROM runs").fetchall()
        (reason,) = con.execute("SELECT data FROM events WHERE kind = 'run.state'").fetchone()
    assert rows == [("failed",)]
    assert "refused before preflight" in reason and "injected" in reason
