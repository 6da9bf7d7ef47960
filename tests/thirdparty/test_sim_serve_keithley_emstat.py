"""`labctl sim serve` (its own process, the real clock, the physical world), with QCoDeS' Keithley2450
driver on the served 2450 (a VISA TCPIP SOCKET in both modes, as the bench serves VISA instruments) and a
MethodSCRIPT client written the way PalmSens' Python example is (pyserial, a script's lines, lines read to
the empty one) on the served EmStat4 (`socket://` with `--tcp`, a pty with `--pty`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from labctl.drivers.methodscript import decode_package

qcodes_keithley = pytest.importorskip("qcodes.instrument_drivers.Keithley")
serial = pytest.importorskip("serial")
pytest.importorskip("pyvisa_py")

ROOT = Path(__file__).resolve().parents[2]
EIS = ["var f", "var r", "var j", "set_pgstat_chan 0", "set_pgstat_mode 3", "set_e 0", "cell_on",
       "meas_loop_eis f r j 10m 1k 10 3i 0", "pck_start", "pck_add f", "pck_add r", "pck_add j", "pck_end",
       "endloop", "on_finished:", "cell_off"]


@pytest.fixture(params=["--tcp", pytest.param("--pty", marks=pytest.mark.pty)])
def served(request):
    proc = subprocess.Popen(
        [sys.executable, "-m", "labctl", "sim", "serve", "--json", request.param, "--seed", "3"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy(),
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line, proc.stderr.read()  # type: ignore[union-attr]
        yield json.loads(line)["roles"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)


@pytest.mark.timeout(90)
def test_qcodes_and_a_methodscript_client_on_the_served_bench(served):
    k = qcodes_keithley.Keithley2450("k2450_served", served["potentiostat"]["visa"], visalib="@py", timeout=5)
    try:
        k.reset()
        k.source_function("current")
        k.sense_function("voltage")
        k.source.limit(2.0)
        k.source.current(1e-3)
        k.output_enabled(True)
        v = k.sense.voltage()
        assert 0 < v < 2.0  # 1 mA into the world's Li|Li cell: its overpotential, below the limit
        k.output_enabled(False)
        assert k.ask(":SYSTem:ERRor:COUNt?") == "0"
    finally:
        k.close()
    port = serial.serial_for_url(served["eis"]["port"], baudrate=921600, timeout=5.0)
    try:
        port.write(b"t\n")
        assert port.readline().startswith(b"tes4") and port.readline().endswith(b"*\n")
        port.write(b"e\n" + b"".join(x.encode() + b"\n" for x in EIS) + b"\n")
        lines = []
        while (line := port.readline()) != b"\n":
            assert line.endswith(b"\n"), f"timeout after {lines}"
            lines.append(line.decode().rstrip("\n"))
    finally:
        port.close()
    assert lines[:2] == ["e", "M0000"] and lines[-1] == "*" and not [x for x in lines if "!" in x]
    rows = [[v.value for v in decode_package(x)] for x in lines if x.startswith("P")]
    assert [r[0] for r in rows] == pytest.approx([1e3, 100.0, 10.0])
    assert all(r[1] > 0 for r in rows)  # the cell's impedance: a positive real part
