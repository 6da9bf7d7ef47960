"""The EmStat4 simulator on its own lines, then the driver against it in process (over TCP and a pty, and
every fault kind: test_conformance.py)."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.clock import RealClock, VirtualClock
from labctl.drivers.emstat4 import EmStat4
from labctl.drivers.methodscript import decode_package
from labctl.drivers.transport import SerialTransport
from labctl.errors import (
    InstrumentReportedError,
    InstrumentTimeout,
    SafeStateError,
)
from labctl.simulators import registry
from labctl.simulators.core import FaultKind
from labctl.simulators.emstat4 import EmStat4Sim
from labctl.simulators.exposures import serve_pty
from labctl.simulators.world import SimpleWorld


class Raw:
    def __init__(self) -> None:
        self.clock = VirtualClock()
        self.world = SimpleWorld()
        self.core = EmStat4Sim("es", clock=self.clock, world=self.world)

    def __call__(self, text: str) -> bytes:
        self.core.write(text.encode())
        return self.core.read()

    def script(self, *lines: str) -> bytes:
        return self("e\n" + "".join(f"{x}\n" for x in lines) + "\n")


OCP = ("var p", "cell_off", "meas_loop_ocp p 1 3", "pck_start", "pck_add p", "pck_end", "endloop")


def test_idle_commands():
    r = Raw()
    assert r("t\n") == b"tes4_lr1.3.1\n#2024-01-16 labctl-sim*\n"
    assert r("Z\n") == b"Z!0006\n"
    assert r("q\n") == b"q!0003\n"  # "The command was not recognized"


def test_a_script_streams_on_the_clock():
    r = Raw()
    assert r.script(*OCP) == b"e\nM0000\n"  # the rest comes as time passes
    r.clock.sleep(1.0)
    first = r.core.read()
    assert first.startswith(b"Pab") and first.count(b"\n") == 1
    assert r("t\n") == b""  # busy: ignored
    r.clock.sleep(2.0)
    rest = r.core.read()
    assert rest.count(b"\nPab") == 1 and rest.endswith(b"*\n\n")
    assert r("t\n").startswith(b"tes4")


def test_script_errors():
    r = Raw()
    # codes as PalmSens' SDK names them (see simulators/mscript.py)
    assert r.script("var p", "frobnicate") == b"e\n!4001: Line 2\n\n"
    assert r.script("set_e") == b"e\n!0007: Line 1\n\n"
    assert r.script("set_e 1x") == b"e\n!4004: Line 1\n\n"
    assert r.script("meas_loop_ocp p 1 3", "endloop") == b"e\n!4004: Line 1\n\n"  # undeclared variable
    assert r.script("endloop") == b"e\n!400E: Line 1\n\n"
    assert r.script("var p", "meas_loop_ocp p 1 3", "pck_start") == b"e\n!4018: Line 3\n\n"
    assert (
        r.script(
            "var f", "var r", "var j", "set_pgstat_mode 3", "meas_loop_geis f r j 1m 1k 1 4 0", "endloop"
        )
        == b"e\n!0023: Line 5\n\n"
    )
    assert r.script("var f", "var r", "var j", "meas_loop_eis f r j 10m 1M 1 4 0", "endloop") == (
        b"e\n!0011: Line 4\n\n"
    )  # 1 MHz is beyond the EmStat4
    assert r.script("var p", "meas_loop_ocp p 5 1", "endloop") == b"e\n!0007: Line 2\n\n"
    assert r.script("var p", "meas_loop_ocp p 1m 1M", "endloop") == b"e\n!0007: Line 2\n\n"  # > MAX_POINTS
    assert r("t\n").startswith(b"tes4")  # nothing of them ran


def test_abort_runs_on_finished():
    r = Raw()
    r.script(
        "var p",
        "var c",
        "set_pgstat_mode 6",
        "cell_on",
        "meas_loop_cp p c 1m 1 100",
        "pck_start",
        "pck_add p",
        "pck_add c",
        "pck_end",
        "endloop",
        "on_finished:",
        "cell_off",
    )
    assert r.core.cell_on
    r.clock.sleep(5.5)
    assert r.core.read().count(b"\nP") == 4
    assert r("Z\n") == b"Z\n*\n\n" and not r.core.cell_on
    r.clock.sleep(10.0)
    assert r.core.read() == b""
    assert r("Z\n") == b"Z!0006\n"


def test_cp_and_ocp_values_come_from_the_world():
    r = Raw()
    r.script(
        "var p",
        "var c",
        "set_pgstat_mode 6",
        "cell_on",
        "meas_loop_cp p c 2m 1 2",
        "pck_start",
        "pck_add p",
        "pck_add c",
        "pck_end",
        "endloop",
        "on_finished:",
        "cell_off",
    )
    r.clock.sleep(3.0)
    lines = [x for x in r.core.read().split(b"\n") if x.startswith(b"P")]
    p, c = decode_package(lines[0].decode())
    assert p.value == pytest.approx(0.02, abs=1e-4) and c.value == pytest.approx(2e-3)  # 10 ohm x 2 mA
    assert not r.core.cell_on  # on_finished ran at the end


# a script written the way PalmSens' example scripts (MethodSCRIPT_Examples, Measurement_Loops) are: comments,
# indentation, technique parameters in variables set by store_var, an `i` integer, the timer in the packages
MANUAL_STYLE_CP = """e
# chronopotentiometry, parameters in variables
var potential
var current
var dc_current
var time_interval
var time_run
var t
store_var dc_current 2m ja
store_var time_interval 250m ja
store_var time_run 1 ja
set_pgstat_chan 0
set_pgstat_mode 6
set_max_bandwidth 10
set_range ab 1
set_range db 20m
set_i 0   # current when the cell turns on
cell_on
timer_start
meas_loop_cp potential current dc_current time_interval time_run
    timer_get t
    pck_start
    pck_add t
    pck_add current
    pck_add potential
    pck_add time_interval
    pck_end
endloop
on_finished:
    cell_off

"""


def test_scripts_in_the_style_of_the_manual_examples():
    r = Raw()
    r.clock.sleep(7.0)  # the timer counts from timer_start, not from the simulator's start
    assert r(MANUAL_STYLE_CP) == b"e\nM0000\n"
    r.clock.sleep(2.0)
    out = r.core.read()
    rows = [decode_package(x.decode()) for x in out.split(b"\n") if x.startswith(b"P")]
    assert out.endswith(b"*\n\n") and len(rows) == 4
    assert [v.type_id for v in rows[0]] == ["eb", "ba", "ab", "ja"]
    assert [row[0].value for row in rows] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert all(row[1].value == pytest.approx(2e-3) and row[3].value == 0.25 for row in rows)
    assert rows[0][2].value == pytest.approx(0.02, abs=1e-4)  # 10 ohm x 2 mA
    assert not r.core.cell_on
    eis = r.script(
        "var f",
        "var r",
        "var j",
        "var n",
        "var a",
        "store_var n 4i ja",
        "store_var a 10m ja",
        "set_pgstat_mode 3   # potentiostatic",
        "   # an indented comment line",
        "meas_loop_eis f r j a 1k 1 n 0",
        "  pck_start",
        "  pck_add f",
        "  pck_end",
        "endloop",
    )
    assert eis == b"e\nM0000\n"
    r.clock.sleep(10.0)
    freqs = [decode_package(x.decode())[0].value for x in r.core.read().split(b"\n") if x.startswith(b"P")]
    assert freqs == pytest.approx([1e3, 1e2, 10.0, 1.0])


def test_variable_errors():
    r = Raw()
    assert r.script("store_var x 1 ja") == b"e\n!4004: Line 1\n\n"  # not declared
    assert r.script("var x", "store_var x 1 JA") == b"e\n!0002: Line 2\n\n"  # bad type id
    assert r.script("var x", "set_e x") == b"e\n!4004: Line 2\n\n"  # declared, never given a value
    assert r.script("var p", "var q", "meas_loop_ocp p 1 3", "pck_add q", "endloop") == (
        b"e\n!4004: Line 4\n\n"
    )  # nothing sets q
    assert r.script("var t", "timer_get u") == b"e\n!4004: Line 2\n\n"
    assert r.script("var p", "pck_add p") == b"e\n!401B: Line 2\n\n"
    assert r.script("# only a comment", "var p", "frob # and a command") == b"e\n!4001: Line 3\n\n"
    assert r("t\n").startswith(b"tes4")


# -- the driver against the simulator -------------------------------------------------------------------


@pytest.fixture
def eis():
    clock = VirtualClock()
    world = SimpleWorld(cell_ohm=50.0, cell_farad=2e-6)
    core = EmStat4Sim("eis-t", clock=clock, world=world)
    registry.register("eis-t", core)
    d = EmStat4(
        SerialTransport("eis", "labsim://eis-t", EmStat4.SERIAL, clock=clock, timeout=1.0), name="eis"
    )
    d.connect()
    yield d, core, world, clock
    d.close()
    registry.unregister("eis-t")


def test_rc_cell_recovered(eis):
    d, _, world, clock = eis
    t0 = clock.monotonic()
    spec = d.eis(f_start=1e5, f_end=0.1, points_per_decade=10, amplitude=0.01)
    assert len(spec.freq) == 61
    truth = world.cell_impedance(0.0, spec.freq)
    measured = spec.z_real + 1j * spec.z_imag
    assert np.all(np.abs(measured - truth) <= 5e-3 * np.abs(truth))  # 0.1 % noise per point
    assert spec.z_real[0] == pytest.approx(1.0 + 50 / (1 + (2 * np.pi * 1e5 * 1e-4) ** 2), rel=0.01)
    assert spec.z_real[-1] == pytest.approx(51.0, rel=0.01)
    expected = sum(max(3 / f, 0.1) for f in spec.freq)  # the sweep took its measurement time
    assert clock.monotonic() - t0 == pytest.approx(expected, rel=1e-3)
    g = d.eis(f_start=1e3, f_end=1, points_per_decade=5, amplitude=1e-4, galvanostatic=True)
    truth = world.cell_impedance(0.0, g.freq)
    assert np.all(np.abs(g.z_real + 1j * g.z_imag - truth) <= 5e-3 * np.abs(truth))


def test_eis_at_the_frequency_limits(eis):
    """The driver's frequency limit is the simulator's: 10 uHz and 200 kHz are accepted by both."""
    d, _, world, clock = eis
    t0 = clock.monotonic()
    spec = d.eis(f_start=1e-3, f_end=1e-5, points_per_decade=1, amplitude=0.01)
    assert spec.freq.tolist() == [1e-3, 1e-4, 1e-5]
    assert clock.monotonic() - t0 == pytest.approx(3 / 1e-3 + 3 / 1e-4 + 3 / 1e-5, rel=1e-6)
    truth = world.cell_impedance(0.0, spec.freq)
    assert np.all(np.abs(spec.z_real + 1j * spec.z_imag - truth) <= 5e-3 * np.abs(truth))
    top = d.eis(f_start=2e5, f_end=2e4, points_per_decade=1, amplitude=0.01)
    assert top.freq.tolist() == [2e5, 2e4]


def test_ocp_cp_abort_safe_state(eis):
    d, core, _, _ = eis
    trace = d.ocp(5.0, 1.0)
    assert trace.t.tolist() == [1, 2, 3, 4, 5] and np.all(np.abs(trace.voltage) < 1e-4)
    cp = d.chronopotentiometry(1e-3, 3.0, 0.5)
    assert len(cp.t) == 6 and cp.voltage == pytest.approx(np.full(6, 0.05), abs=1e-4)
    d.abort()  # nothing running: fine
    assert d.safe_state()["script_running"] is False and not core.cell_on


def test_device_error_then_clean(eis):
    d, _, _, _ = eis
    with pytest.raises(InstrumentReportedError) as exc:
        d.run_script(["frobnicate"])
    assert exc.value.code == 0x4001  # "The script command is unknown"
    assert d.identify().startswith("es4_lr")


@pytest.mark.pty
def test_a_manual_only_client_over_the_pty():
    """Plain pyserial and the MethodSCRIPT examples' grammar: version, then an OCP script."""
    import serial

    with serve_pty(EmStat4Sim("eis-raw", clock=RealClock())) as exp:
        port = serial.Serial(exp.path, 921600, timeout=2.0)
        try:
            port.write(b"t\n")
            assert port.readline().startswith(b"tes4") and port.readline().endswith(b"*\n")
            port.write(b"e\nvar p\nmeas_loop_ocp p 100m 200m\npck_start\npck_add p\npck_end\nendloop\n\n")
            lines = [port.readline() for _ in range(6)]
            assert lines[0] == b"e\n" and lines[1] == b"M0000\n" and lines[4:] == [b"*\n", b"\n"]
            assert all(line.startswith(b"Pab") for line in lines[2:4])
        finally:
            port.close()


# -- faults beyond the generic matrix (test_conformance.py) --------------------------------------------------


def test_fault_stuck_busy(eis):
    d, core, _, _ = eis
    core.inject(FaultKind.STUCK_BUSY, rb"^t\n$")
    with pytest.raises(InstrumentTimeout):
        d.identify()  # a device stuck in a script ignores the query
    with pytest.raises(SafeStateError):
        d.safe_state()
