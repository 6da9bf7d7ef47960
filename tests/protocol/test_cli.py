"""`labctl validate | plan | schema` as a user runs them: exit codes, file:line messages, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "protocol" / "bad"


def labctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from labctl.cli import main; main()", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_validate_bad_file_prints_every_problem() -> None:
    r = labctl("validate", str(BAD / "many-problems.yaml"), str(ROOT / "protocols" / "eis.yaml"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr + r.stdout
    lines = [x for x in r.stderr.splitlines() if "many-problems.yaml:" in x]
    assert len(lines) >= 4
    assert any(":7:47: steps[2].immerse.speed: `speed` must be a speed" in x for x in lines)
    assert "eis.yaml: ok" in r.stdout


def test_validate_json() -> None:
    r = labctl("validate", "--json", str(BAD / "unit-time-length.yaml"))
    assert r.returncode == 2
    out = json.loads(r.stdout)
    assert out[0]["ok"] is False and out[0]["problems"][0]["line"] == 5


def test_plan_full_protocol() -> None:
    r = labctl("plan", "protocols/li-in-alloy-cycle.yaml", "--station", "stations/simulated.yaml")
    assert r.returncode == 0, r.stderr
    assert "total" in r.stdout and "41 d 17 h" in r.stdout and "consumables" in r.stdout


def test_plan_json_with_override_param() -> None:
    r = labctl("plan", "protocols/li-in-alloy-cycle.yaml", "-p", "cycles=10", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["parameters"]["cycles"] == "10" and out["ok"] is True
    assert out["duration"] > 10 * 2 * 3600


def test_plan_errors_exit_2() -> None:
    r = labctl("plan", str(BAD / "syntax.yaml"))
    assert r.returncode == 2 and "syntax.yaml:6:" in r.stderr and "Traceback" not in r.stderr


def test_schema_prints_json() -> None:
    r = labctl("schema")
    assert r.returncode == 0
    assert json.loads(r.stdout)["title"] == "labctl protocol file"
