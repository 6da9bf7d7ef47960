"""PyMeasure's Keithley2450 driver, unmodified, against the simulated 2450 over a raw TCP socket (pyvisa-py
TCPIP SOCKET) and a pty (pyvisa-py ASRL): connect, reset, source current / measure voltage, readings, the
buffer statistics, output off through its own `shutdown()` (a ramp to zero), and an empty error queue as
PyMeasure's `check_errors()` reads it. The cell is a 33 ohm SimpleWorld resistor: voltages are the world's."""

from __future__ import annotations

import pytest

from labctl.clock import RealClock
from labctl.simulators.exposures import serve_pty, serve_tcp
from labctl.simulators.keithley2450 import Keithley2450Sim
from labctl.simulators.world import SimpleWorld

keithley = pytest.importorskip("pymeasure.instruments.keithley")
pytest.importorskip("pyvisa_py")

OHM = 33.0


@pytest.fixture(params=["tcp", pytest.param("pty", marks=pytest.mark.pty)])
def smu(request):
    core = Keithley2450Sim("k-pymeasure", clock=RealClock(), world=SimpleWorld(cell_ohm=OHM))
    with serve_tcp(core) if request.param == "tcp" else serve_pty(core) as exp:
        resource = exp.visa_resource if request.param == "tcp" else f"ASRL{exp.path}::INSTR"
        k = keithley.Keithley2450(resource, visa_library="@py", read_termination="\n",
                                  write_termination="\n", timeout=5000)
        try:
            yield k, core
        finally:
            k.adapter.close()


@pytest.mark.timeout(90)
def test_connect_reset_source_current_measure_voltage_and_shut_down(smu):
    k, core = smu
    assert k.id.startswith("KEITHLEY INSTRUMENTS,MODEL 2450,")
    k.reset()  # '*RST;:stat:pres;:*CLS;'
    k.use_front_terminals()
    k.apply_current(compliance_voltage=1.5)  # checks the error queue itself
    k.measure_voltage(nplc=1, voltage=2.0, auto_range=False)
    k.source_current = 2e-3
    k.enable_source()
    assert k.source_enabled is True
    assert k.voltage == pytest.approx(OHM * 2e-3)
    assert (k.source_mode, k.compliance_voltage, k.voltage_range) == ("current", 1.5, 2.0)
    assert k.voltage_nplc == 1.0 and k.current_output_off_state == "NORM"
    assert k.source_current_range == 1e-2  # autorange: the range holding 2 mA
    k.current_output_off_state = "HIMP"
    assert k.current_output_off_state == "HIMP"
    k.source_current = 4e-3
    assert k.voltage == pytest.approx(OHM * 4e-3)
    # :TRACe:STATistics:AVERage? over the buffer's two readings: one number on a native-SCPI 2450 (PyMeasure's
    # mean_voltage indexes a 2400-style triple, so it is not used here)
    assert k.means == pytest.approx(OHM * 3e-3)
    assert k.maximums == pytest.approx(OHM * 4e-3) and k.minimums == pytest.approx(OHM * 2e-3)
    k.beep(1000, 0.05)
    assert k.ask("*OPC?") == "1"  # the link is asynchronous: the simulator has taken the beep by now
    assert core.beeps and core.beeps[-1][1:] == (1000.0, 0.05)
    k.shutdown()  # ramps the current to zero, aborts, output off
    assert k.ask(":OUTP?") == "0" and float(k.ask(":SOUR:CURR?")) == 0.0
    assert core.output is False and core.level == 0.0
    assert k.check_errors() == []
    assert len(core.errors) == 0


@pytest.mark.timeout(60)
def test_pymeasure_sees_a_refused_setting(smu):
    k, core = smu
    k.write(":SENS:VOLT:NPLC 20")  # NPLC is 0.01 .. 10
    errors = k.check_errors()
    assert len(errors) == 1 and int(errors[0][0]) == -222
    assert len(core.errors) == 0
