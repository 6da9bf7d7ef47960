"""QCoDeS' own Keithley2450 driver, unmodified, against the simulated 2450 over a raw TCP socket (pyvisa-py
TCPIP SOCKET) and a pty (pyvisa-py ASRL): connect, reset, source current / measure voltage, a reading, a
sweep, output off, and the instrument's event log empty at the end. The cell is a 47 ohm SimpleWorld resistor,
so every voltage is the world's answer (47 ohm x the sourced current), not a canned value."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from labctl.clock import RealClock
from labctl.simulators.exposures import serve_pty, serve_tcp
from labctl.simulators.keithley2450 import Keithley2450Sim
from labctl.simulators.world import SimpleWorld

qcodes_keithley = pytest.importorskip("qcodes.instrument_drivers.Keithley")
pytest.importorskip("pyvisa_py")

OHM = 47.0
_names = itertools.count()


@pytest.fixture(params=["tcp", pytest.param("pty", marks=pytest.mark.pty)])
def smu(request):
    core = Keithley2450Sim("k-qcodes", clock=RealClock(), world=SimpleWorld(cell_ohm=OHM))
    with serve_tcp(core) if request.param == "tcp" else serve_pty(core) as exp:
        resource = exp.visa_resource if request.param == "tcp" else f"ASRL{exp.path}::INSTR"
        k = qcodes_keithley.Keithley2450(f"k2450_{next(_names)}", resource, visalib="@py", timeout=5)
        try:
            yield k, core
        finally:
            k.close()


@pytest.mark.timeout(60)
def test_connect_reset_source_current_measure_voltage_sweep_and_shut_down(smu):
    k, core = smu
    assert k.IDN()["model"] == "2450"
    k.reset()
    assert k.source_function() == "voltage" and k.sense_function() == "current"  # *RST defaults
    k.terminals("front")
    k.source_function("current")
    k.sense_function("voltage")
    k.source.limit(2.0)
    k.source.auto_range(True)
    k.source.current(1e-3)
    k.sense.four_wire_measurement(True)
    k.sense.nplc(0.5)
    k.sense.auto_range(True)
    assert k.source.limit() == 2.0 and k.source.current() == 1e-3 and float(k.sense.nplc()) == 0.5
    assert k.sense.four_wire_measurement() is True and k.terminals() == "FRON"
    assert k.line_frequency() == "50"
    k.output_enabled(True)
    assert k.sense.voltage() == pytest.approx(OHM * 1e-3)
    assert k.sense.range() == 0.2  # autorange: the smallest range holding 47 mV
    assert k.source.range() == 1e-3
    assert k.source.limit_tripped() is False
    # a sweep through the instrument's own trigger model, read back from its buffer
    k.sense.clear_trace()
    k.source.sweep_setup(0.0, 2e-3, 5, delay=0.01)
    np.testing.assert_allclose(k.sense.sweep(), OHM * np.linspace(0.0, 2e-3, 5), rtol=1e-9, atol=1e-12)
    # compliance: 50 mA into 47 ohm wants 2.35 V, the limit is 2 V
    k.source.current(50e-3)
    assert k.sense.voltage() == pytest.approx(2.0)
    assert k.source.limit_tripped() is True
    k.source.current(0.0)
    k.output_enabled(False)
    assert k.output_enabled() is False and core.output is False
    assert k.ask(":SYSTem:ERRor:COUNt?") == "0"
    assert k.ask(":SYSTem:ERRor?").startswith('0,"No error')
    assert len(core.errors) == 0 and int(k.ask("*ESR?")) & 0x3C == 0  # no command/execution/query error


@pytest.mark.timeout(60)
def test_a_user_buffer_through_qcodes(smu):
    k, core = smu
    k.reset()
    buf = k.buffer("run1", size=50)  # `:TRACe:MAKE 'run1', 50, ` (an empty style)
    assert buf.size() == 50 and buf.number_of_readings() == 0
    k.source_function("current")
    k.sense_function("voltage")
    k.source.current(1e-3)
    k.output_enabled(True)
    buf.elements(["measurement", "relative_time", "source_value", "measurement_unit"])
    k.sense.voltage()
    k.sense.voltage()
    assert buf.number_of_readings() == 2
    reading, rel, source, unit = buf.get_last_reading().split(",")
    assert float(reading) == pytest.approx(OHM * 1e-3) and float(source) == 1e-3 and unit == "Volt DC"
    assert float(rel) >= 0
    data = buf.get_data(1, 2, readings_only=True)
    assert data == pytest.approx([OHM * 1e-3] * 2)
    k.output_enabled(False)
    buf.delete()
    assert k.ask(":SYSTem:ERRor:COUNt?") == "0" and "run1" not in core.buffers  # asked first: async link


@pytest.mark.timeout(60)
def test_a_bad_command_is_logged_where_qcodes_looks(smu):
    k, core = smu
    k.write(":SOUR:CURR 5")  # beyond 1.05 A: refused, nothing answered
    k.write(":SENSe:VOLTage:BOGUS 1")
    assert k.ask(":SYSTem:ERRor:COUNt?") == "2"
    assert k.ask(":SYSTem:ERRor?").startswith('-222,"Parameter data out of range;1;')
    assert k.ask(":SYSTem:ERRor:CODE?") == "-113"
    assert int(k.ask("*ESR?")) & 0x7F == 0x20 | 0x10  # CME and EXE (and PON since power-on, bit 7)
    assert int(k.ask("*ESR?")) == 0  # reading cleared it
    k.clear_event_log()
    assert k.ask(":SYSTem:ERRor:COUNt?") == "0" and len(core.errors) == 0


@pytest.mark.timeout(120)
def test_a_full_snapshot_reads_every_parameter_of_every_function(smu):
    """`snapshot(update=True)` queries every parameter of every source/sense submodule, whatever the active
    function: all answered, nothing logged. (QCoDeS cannot build `user_delay` before `user_number` is set, it
    would send `...:USERNone?`, which a real 2450 refuses too; the sweep axis needs a sweep set up.)"""
    k, core = smu
    for sub in k.submodules.values():
        if "user_number" in getattr(sub, "parameters", {}):
            sub.user_number(2)
    k.source.user_delay(0.25)
    k.source.sweep_setup(0.0, 1e-3, 3)
    snap = k.snapshot(update=True)
    source = snap["submodules"]["_source_voltage"]["parameters"]  # the *RST source function
    assert source["limit"]["value"] == pytest.approx(1.05e-4) and source["range"]["value"] == 0.02
    assert source["user_delay"]["value"] == 0.25
    sense = snap["submodules"]["_sense_resistance"]["parameters"]
    assert sense["nplc"]["value"] == "1" and sense["four_wire_measurement"]["value"] is False
    assert snap["parameters"]["line_frequency"]["value"] == "50"
    assert k.ask(":SYSTem:ERRor:COUNt?") == "0" and len(core.errors) == 0
