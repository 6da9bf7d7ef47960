"""PalmSens' own MethodSCRIPT example scripts (github PalmSens/MethodSCRIPT_Examples, v1.8), sent unmodified
to the simulated EmStat4 over TCP (pyserial `socket://`) and a pty, the way PalmSens' Python example does it:
the file's lines written as they are, then lines read until the empty one. Each run must answer `e`, nest its
loop markers (M/C/L against */-/+), carry no `!XXXX` error, give the package count the script's parameters
imply, and values that are the world's cell's (a 1 kohm SimpleWorld resistor, so Ohm's law can be checked).

The scripts are PalmSens' and are not copied into labctl: point LABCTL_MSCRIPT_EXAMPLES at a checkout of
that repository (its `MethodSCRIPTs/` and `Example_Python/` folders) to run these tests; skipped without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from labctl.clock import VirtualClock
from labctl.drivers.methodscript import decode_package
from labctl.simulators.emstat4 import EmStat4Sim
from labctl.simulators.exposures import serve_pty, serve_tcp
from labctl.simulators.world import SimpleWorld

serial = pytest.importorskip("serial")

ROOT = Path(os.environ.get("LABCTL_MSCRIPT_EXAMPLES", "/nonexistent"))
LOOPS = "MethodSCRIPTs/Measurement_Loops"
PY = "Example_Python/Example_Python/scripts"
OHM = 1000.0


def _v(rows, k):  # column k of the packages
    return np.array([row[k] for row in rows])


# script -> (packages, a check of the values against the 1 kohm cell)
SCRIPTS = {
    f"{LOOPS}/MSLoopExample001-LSV.mscr": (101, lambda r: np.allclose(_v(r, 1), _v(r, 0) / OHM, rtol=0.01,
                                                                      atol=1e-7)),
    f"{LOOPS}/MSLoopExample003-LSP.mscr": (101, lambda r: np.allclose(_v(r, 1), _v(r, 0) * OHM, rtol=0.01,
                                                                      atol=1e-4)),
    f"{LOOPS}/MSLoopExample004-CV.mscr": (603, lambda r: np.allclose(_v(r, 1), _v(r, 0) / OHM, rtol=0.02,
                                                                     atol=2e-6)),
    f"{LOOPS}/MSLoopExample005-DPV.mscr": (101, lambda r: np.allclose(_v(r, 1), 0.020 / OHM, rtol=0.02)),
    f"{LOOPS}/MSLoopExample006-SWV.mscr": (101, lambda r: np.allclose(_v(r, 1), 0.030 / OHM, rtol=0.02)),
    f"{LOOPS}/MSLoopExample008-CA.mscr": (20, lambda r: np.allclose(_v(r, 1)[5:], 0.1 / OHM, rtol=0.01)),
    f"{LOOPS}/MSLoopExample009-CP.mscr": (20, lambda r: np.allclose(_v(r, 2), _v(r, 1) * OHM, rtol=1e-3,
                                                                    atol=1e-4)),
    f"{LOOPS}/MSLoopExample011-OCP.mscr": (21, lambda r: np.allclose(_v(r, 1), 0.0, atol=1e-4)),
    f"{LOOPS}/MSLoopExample012-EIS.mscr": (11, lambda r: np.allclose(_v(r, 1)[-1], 1 + OHM / (
        1 + (2 * np.pi * 100 * OHM * 1e-6) ** 2), rtol=0.01)),
    f"{LOOPS}/MSLoopExample013-GEIS.mscr": (11, lambda r: bool(np.all(_v(r, 1) > 0))),
    # these three precondition with a CA loop that sends no packages
    f"{PY}/example_cv.mscr": (201, lambda r: np.allclose(_v(r, 1), _v(r, 0) / OHM, rtol=0.02, atol=2e-6)),
    f"{PY}/example_cv_nscans.mscr": (603, lambda r: bool(np.all(np.abs(_v(r, 1)) < 1e-3))),
    f"{PY}/example_eis.mscr": (41, lambda r: bool(np.all(_v(r, 1) > 0))),
    f"{PY}/example_advanced_swv.mscr": (242, lambda r: np.allclose(_v(r, 1), 0.1 / OHM, rtol=0.02)),
    # 100 charge/discharge cycles of CP with arrays, `meas`, `loop`, `if ... breakloop`, f-strings: 100 mA
    # into the 1 kohm cell is far beyond the 4.3 V / 2.5 V cut-offs: each half-cycle stops at its first point
    "MethodSCRIPTs/MSExample029-Charge_versus_cycles.mscr": (
        300, lambda r: [row[0] for row in r[2::3]] == list(range(1, 101))
        and np.allclose([row[1] for row in r[0::3]], OHM * 0.1, rtol=1e-3)),
}


def _nesting_ok(lines: list[str]) -> bool:
    """Every M/C/L start is closed by its own end (* / - / +), in order."""
    ends = {"M": "*", "C": "-", "L": "+"}
    stack: list[str] = []
    for line in lines:
        if line[:1] in ends:
            stack.append(ends[line[0]])
        elif line in ("*", "-", "+") and (not stack or stack.pop() != line):
            return False
    return not stack


@pytest.mark.skipif(not (ROOT / LOOPS).is_dir(), reason="LABCTL_MSCRIPT_EXAMPLES: no PalmSens examples")
@pytest.mark.timeout(120)
@pytest.mark.parametrize("link", ["tcp", pytest.param("pty", marks=pytest.mark.pty)])
@pytest.mark.parametrize("script", list(SCRIPTS))
def test_palmsens_example_script_runs_unmodified(script: str, link: str):
    count, check = SCRIPTS[script]
    path = ROOT / script
    if not path.is_file():
        pytest.skip(f"{script} not in this checkout")
    clock = VirtualClock()
    core = EmStat4Sim("es4", clock=clock, world=SimpleWorld(cell_ohm=OHM, cell_farad=1e-6))
    with serve_tcp(core) if link == "tcp" else serve_pty(core) as exp:
        port = serial.serial_for_url(exp.serial_url, baudrate=921600, timeout=5.0)
        try:
            for cmd in (b"t\n", b"v\n", b"i\n"):  # what PalmSens' example asks first
                port.write(cmd)
                assert port.readline()[:1] == cmd[:1]
                if cmd == b"t\n":
                    assert port.readline().endswith(b"*\n")
            with path.open("rt", encoding="ascii") as f:
                for line in f.readlines():  # as PalmSens' send_script: the file's lines, '\n' endings
                    port.write(line.rstrip("\r\n").encode("ascii") + b"\n")
            assert port.readline() == b"e\n"
            clock.sleep(1e6)  # the virtual clock runs the whole script
            lines: list[str] = []
            while (line := port.readline()) != b"\n":
                assert line.endswith(b"\n"), f"timeout after {len(lines)} lines"
                lines.append(line.decode("ascii").rstrip("\n"))
        finally:
            port.close()
    assert not [x for x in lines if "!" in x], lines[:3]
    assert _nesting_ok(lines)
    rows = [[v.value for v in decode_package(x)] for x in lines if x.startswith("P")]
    assert len(rows) == count
    assert check(rows)
