"""The EmStat4 simulator's MethodSCRIPT beyond labctl's own driver: the potentiostatic techniques (LSV, CV
with scans, DPV, SWV, CA), LSP, `loop`/`if`/`breakloop` with variable arithmetic, `send_string`, the idle
`v`/`i` commands, run-time errors and `rejects`. Scripts are written from the MethodSCRIPT syntax; every
current is the world's cell's answer (a SimpleWorld resistor R_s + R || C), checked against Ohm's law."""

from __future__ import annotations

import re

import numpy as np
import pytest

from labctl.clock import VirtualClock
from labctl.drivers.methodscript import decode_package
from labctl.simulators.emstat4 import EmStat4Sim
from labctl.simulators.world import SimpleWorld

OHM = 1000.0  # SimpleWorld: 1 ohm in series with 1000 ohm || 10 uF at DC and EIS; cell_voltage = I * 1000


class Raw:
    def __init__(self, farad: float = 1e-5) -> None:
        self.clock = VirtualClock()
        self.core = EmStat4Sim("es", clock=self.clock, world=SimpleWorld(cell_ohm=OHM, cell_farad=farad))

    def run(self, *lines: str, wait: float = 1e5) -> list[str]:
        """Execute a script, let it finish, return its output lines (the ack first)."""
        self.core.write(("e\n" + "".join(f"{x}\n" for x in lines) + "\n").encode())
        self.clock.sleep(wait)
        return self.core.read().decode().split("\n")


def packages(lines: list[str]) -> np.ndarray:
    return np.array([[v.value for v in decode_package(x)] for x in lines if x.startswith("P")])


def test_idle_version_and_serial_as_palmsens_reads_them():
    r = Raw()
    for cmd, first in ((b"v\n", b"v"), (b"i\n", b"i")):
        r.core.write(cmd)
        reply = r.core.read()
        assert reply.startswith(first) and reply.endswith(b"\n") and reply.count(b"\n") == 1
    assert r.core.rejects(b"q!0002\n") and not r.core.rejects(b"v0108\n")


def test_lsv_current_is_the_cells():
    r = Raw()
    out = r.run("var e", "var i", "set_pgstat_mode 3", "set_e -200m", "cell_on",
                "meas_loop_lsv e i -200m 200m 20m 100m", "pck_start", "pck_add e", "pck_add i", "pck_end",
                "endloop", "on_finished:", "cell_off")
    assert out[:2] == ["e", "M0000"] and out[-3:] == ["*", "", ""]
    data = packages(out)
    np.testing.assert_allclose(data[:, 0], np.linspace(-0.2, 0.2, 21), atol=1e-12)
    np.testing.assert_allclose(data[:, 1], data[:, 0] / OHM, rtol=0.01)  # DC: the 1 ohm R_s is 0.1 %
    assert not r.core.cell_on


def test_cv_scans_are_marked_and_return_to_the_start():
    r = Raw()
    out = r.run("var e", "var i", "set_pgstat_mode 2", "cell_on",
                "meas_loop_cv e i 0 100m -100m 50m 1 nscans(2)", "pck_start", "pck_add e", "pck_add i",
                "pck_end", "endloop", "on_finished:", "cell_off")
    assert [x for x in out if x and x[0] in "MC-*"] == ["M0000", "C0000", "-", "C0000", "-", "*"]
    e = packages(out)[:, 0]
    one = [0, 0.05, 0.1, 0.05, 0, -0.05, -0.1, -0.05, 0]
    np.testing.assert_allclose(e, one + one, atol=1e-12)


def test_dpv_and_swv_report_differences_of_the_cells_currents():
    r = Raw()
    out = r.run("var e", "var i", "set_pgstat_mode 3", "cell_on",
                "meas_loop_dpv e i 0 100m 10m 25m 20m 100m", "pck_start", "pck_add e", "pck_add i",
                "pck_end", "endloop", "on_finished:", "cell_off")
    np.testing.assert_allclose(packages(out)[:, 1], 0.025 / OHM, rtol=0.02)  # the pulse over the cell's R
    out = r.run("var e", "var i", "var f", "var b", "set_pgstat_mode 3", "cell_on",
                "meas_loop_swv e i f b 0 100m 10m 20m 10", "pck_start", "pck_add e", "pck_add i", "pck_add f",
                "pck_add b", "pck_end", "endloop", "on_finished:", "cell_off")
    data = packages(out)
    np.testing.assert_allclose(data[:, 1], data[:, 2] - data[:, 3], rtol=1e-3, atol=1e-12)
    np.testing.assert_allclose(data[:, 2], (data[:, 0] + 0.02) / OHM, rtol=0.02)
    np.testing.assert_allclose(data[:, 1], 0.04 / OHM, rtol=0.02)


def test_ca_on_a_step_shows_the_double_layer_charging():
    r = Raw(farad=1e-3)  # tau = R_s R / (R_s + R) x C, about 1 ms
    out = r.run("var e", "var i", "set_pgstat_mode 3", "set_e 0", "cell_on",
                "meas_loop_ca e i 500m 1m 50m", "pck_start", "pck_add i", "pck_end", "endloop",
                "on_finished:", "cell_off")
    i = packages(out)[:, 0]
    assert i[0] > 2 * i[-1]  # 1 ms after the step the double layer still charges
    assert np.all(np.diff(i[:10]) < 0)  # decays (then the 0.01 % noise of the steady current shows)
    assert i[-1] == pytest.approx(0.5 / 1001, rel=0.01)


def test_loops_conditions_arithmetic_and_strings():
    r = Raw()
    out = r.run(
        "var n", "var k", "var p", "var v",
        "store_var n 0i ja", "store_var k 3i ja",
        "set_pgstat_mode 6", "set_i 2m", "cell_on",
        "loop n < k",
        "  add_var n 1i",
        "  meas_loop_cp p v 2m 100m 1",
        "    if p > 1",
        "      breakloop",
        "    endif",
        "  endloop",
        '  send_string f"round {n}"',
        "  pck_start",
        "  pck_add n",
        "  pck_end",
        "endloop",
        'send_string "done"',
        "on_finished:", "cell_off",
    )
    # each CP stops at its first point: 2 mA into 1000 ohm is 2 V > 1 V
    assert [x[:1] for x in out if x] == ["e", "L"] + ["M", "*", "T", "P"] * 3 + ["+", "T"]
    assert [x for x in out if x.startswith("T")] == ["Tround 1", "Tround 2", "Tround 3", "Tdone"]
    assert packages(out)[:, 0].tolist() == [1, 2, 3]


def test_errors_before_and_while_running():
    r = Raw()
    # codes as PalmSens' SDK names them (see simulators/mscript.py)
    assert r.run("var n", "loop n < 3", "endloop") == ["e", "!4004: Line 2", "", ""]  # n has no value
    assert r.run("var n", "if 1 < 2", "endloop") == ["e", "!400E: Line 3", "", ""]  # no loop to end
    assert r.run("var e", "var i", "set_pgstat_mode 6", "meas_loop_lsv e i 0 1 10m 1", "endloop") == [
        "e", "!0023: Line 4", "", ""]  # potentiostatic technique in galvanostatic mode
    assert r.run("var e", "var i", "meas_loop_cv e i 0 1 -1 10m 1 nscans(2) nscans(3)", "endloop")[1] == (
        "!4008: Line 3"
    )
    assert r.run("var a", "var a")[1] == "!4026: Line 2"  # declared twice
    assert r.run("var Big")[1] == "!402B: Line 1"  # a-z, 0-9 and _ only
    assert r.run("set_pgstat_mode 5")[1] == "!0021: Line 1"
    assert r.run("var x", "store_var x 1 ja", "div_var x 0") == ["e", "!0028: Line 3", "", ""]
    assert r.run("var p", "cell_on", "meas_loop_ocp p 1 2", "endloop")[1] == "!0014: Line 3"  # cell on
    # a parameter is checked when its loop starts: what ran before it has run
    out = r.run("var x", "var e", "var i", "store_var x 0 ja", 'send_string "before"',
                "meas_loop_lsv e i 0 1 x 1", "endloop")
    assert out == ["e", "Tbefore", "!0007: Line 6", "", ""]
    assert r.core.rejects("\n".join(out).encode())
    r.core.write(b"t\n")
    assert r.core.read().startswith(b"tes4")


def test_arrays_single_measurements_and_type_changes():
    r = Raw()
    out = r.run(
        "var k", "var v", "var x", "array acc 4i",
        "store_var k 0i ja",
        "set_pgstat_mode 6", "set_i 2m", "cell_on ocp(k)",
        "meas 100m v ab",  # one reading of the cell's voltage: 2 mA into 1 kohm
        "loop k < 4i",
        "  add_var acc[k] v",
        "  add_var k 1i",
        "endloop",
        "copy_var acc[3] x",
        "alter_vartype x as",
        'send_string f"acc3 {acc[3]} x {x}"',
        "pck_start", "pck_add x", "pck_add acc[0]", "pck_end",
        "on_finished:", "cell_off",
    )
    [text] = [x for x in out if x.startswith("T")]
    assert re.fullmatch(r"Tacc3 (2|1\.99999|2\.00001) x (2|1\.99999|2\.00001)", text)  # 2 V, 10 uV noise
    [[x, first]] = [decode_package(line) for line in out if line.startswith("P")]
    assert (x.type_id, first.type_id) == ("as", "ab") and x.value == pytest.approx(2.0, rel=1e-3)
    assert r.run("array big 1000000i")[1] == "!000B: Line 1"  # beyond the simulated memory
    assert r.run("var k", "array a 2i", "store_var k 2i ja", "copy_var a[k] k")[1] == "!400F: Line 4"
    assert r.run("var v", "array a 2i", "add_var v a[0]")[1] == "!4004: Line 3"  # v has no value


def test_arithmetic_and_abort():
    r = Raw()
    out = r.run(
        "var a", "var b", "var c", "var d",
        "store_var a 7i ja", "store_var b 12i ja", "store_var c 2.5 ja", "store_var d 10i ja",
        "mod_var a 4i", "bit_and_var b 10i", "bit_lsl_var b 1i", "pow_var c 2", "float_to_int c",
        "bit_xor_var d 3i",
        'send_string f"{a} {b} {c} {d}"',
        "loop a < 10i",
        "  add_var a 1i",
        "  if a == 5i",
        "    abort",
        "  endif",
        "endloop",
        'send_string "not reached"',
        "on_finished:", "cell_off",
    )
    # 7 mod 4 = 3; (12 & 10) << 1 = 16; trunc(2.5^2) = 6; 10 ^ 3 = 9; abort at a == 5 closes the loop
    assert out == ["e", "T3 16 6 9", "L", "+", "", ""]
    assert r.run("var a", "store_var a 1 ja", "mod_var a 0")[1] == "!0028: Line 3"
