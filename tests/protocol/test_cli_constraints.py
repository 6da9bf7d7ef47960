"""Issue 14.3/14.4 as a user meets them: `validate` and `plan` refuse the hostile-but-plausible inputs of the
issue with file:line messages naming the field or the steps, exit 2, and no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATION = ROOT / "stations" / "simulated.yaml"


def labctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "labctl", *args], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def write(tmp_path: Path, *steps: str, sample: str = "") -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(
        "labctl: 1\nname: p\n" + sample + "steps:\n" + "".join(f"  - {s}\n" for s in steps), encoding="utf-8"
    )
    return path


def test_validate_refuses_a_negative_depth_with_file_line_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "immerse: {bath: alloy, depth: -12 mm, speed: 5 mm/s, time: 60 s}")
    r = labctl("validate", str(path))
    assert r.returncode == 2 and "Traceback" not in r.stdout + r.stderr
    assert f"{path}:4:" in r.stderr
    assert "steps[0].immerse.depth: `depth` must be greater than 0 mm" in r.stderr


def test_plan_refuses_a_zero_rate_instead_of_crashing(tmp_path: Path) -> None:
    path = write(tmp_path, "prepare_bath: {bath: solvent, solvent: THF, volume: 20 mL, rate: 0 mL/min}")
    r = labctl("plan", str(path), "--station", str(STATION))
    assert r.returncode == 2 and "Traceback" not in r.stdout + r.stderr
    assert "`rate` must be greater than 0 mL/min" in r.stderr


def test_plan_refuses_three_fills_of_a_bath_naming_the_steps(tmp_path: Path) -> None:
    fill = "prepare_bath: {bath: alloy, salt: InCl3, solvent: THF, concentration: 0.1 M, volume: 20 mL}"
    r = labctl("plan", str(write(tmp_path, fill, fill, fill)), "--station", str(STATION), "--json")
    assert r.returncode == 2 and "Traceback" not in r.stdout + r.stderr
    assert "over its capacity 50 mL" in r.stdout and "step 1 (line 4, 20 mL)" in r.stdout


def test_plan_refuses_a_vanishing_current_density_naming_it(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cycle_symmetric: {current_density: 1e-9 mA/cm^2, capacity: 1 mAh/cm^2, cycles: 1, "
        "voltage_limit: 0.5 V}",
        sample="sample: {id: S1, area: 1.13 cm^2}\n",
    )
    r = labctl("plan", str(path), "--station", str(STATION), "--json")
    assert r.returncode == 2 and "Traceback" not in r.stdout + r.stderr
    assert "sanity bound of 10 years" in r.stdout and "`current_density` = 1e-09 mA/cm^2" in r.stdout
