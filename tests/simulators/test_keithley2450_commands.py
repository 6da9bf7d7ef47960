"""The 2450 simulator's wider command set (what QCoDeS and PyMeasure send beyond labctl's own driver): the
reading of each sense function, voltage sourcing on the world's cell, *WAI/*OPC? in simulated time, status
registers, saved setups, sweeps, buffer elements and statistics, and `rejects`."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.clock import VirtualClock
from labctl.simulators.keithley2450 import Keithley2450Sim
from labctl.simulators.world import SimpleWorld


class Raw:
    def __init__(self, ohm: float = 10.0) -> None:
        self.clock = VirtualClock(start_unix=1_764_057_600.0)  # 2025-11-25 08:00:00 UTC
        self.core = Keithley2450Sim("k", clock=self.clock, world=SimpleWorld(cell_ohm=ohm))

    def __call__(self, text: str) -> bytes:
        self.core.write(text.encode() + b"\n")
        return self.core.read()

    def errors(self) -> list[int]:
        out = []
        while (code := int(self(":SYST:ERR:CODE?"))) != 0:
            out.append(code)
        return out


def test_the_reading_is_of_the_sense_function():
    r = Raw(ohm=20.0)
    r(":SOUR:FUNC CURR;:SOUR:CURR 5e-3;:OUTP ON")
    assert float(r(":READ?")) == pytest.approx(5e-3)  # *RST sense function: current
    assert float(r(":MEAS:VOLT?")) == pytest.approx(0.1)  # :MEASure:<function>? switches to it
    assert r(":SENS:FUNC?") == b'"VOLT:DC"\n'
    assert float(r(':SENS:FUNC "RES";:READ?')) == pytest.approx(20.0)
    assert r(':READ? "defbuffer1", READ, UNIT, SOUR, SOURUNIT') == (
        b"2.000000000e+01,Ohm,5.000000000e-03,Amp DC\n"
    )
    assert r.errors() == []


def test_sourcing_voltage_draws_the_cells_current_and_limits_it():
    r = Raw(ohm=10.0)
    r(':SOUR:FUNC VOLT;:SOUR:VOLT 0.1;:SOUR:VOLT:ILIM 0.05;:SENS:FUNC "CURR";:OUTP ON')
    r.clock.sleep(1.0)
    i = float(r(":READ?"))
    assert i == pytest.approx(0.01, rel=0.02)  # the world's 10 ohm cell, through the Randles estimate
    assert r(":SOUR:VOLT:ILIM:TRIP?") == b"0\n"
    r(":SOUR:VOLT 2")  # 200 mA wanted, 50 mA allowed
    r.clock.sleep(1.0)
    assert float(r(":READ?")) == pytest.approx(0.05)
    assert r(":SOUR:VOLT:ILIM:TRIP?") == b"1\n"
    r(":OUTP OFF")
    assert float(r(":READ?")) == 0.0
    assert r.errors() == []


def test_wai_and_opc_query_hold_until_the_trigger_model_ends():
    r = Raw()
    r(':SOUR:FUNC CURR;:SOUR:CURR 1e-3;:SENS:FUNC "VOLT";:OUTP 1;:TRIG:LOAD "SimpleLoop", 10, 0.5;:INIT')
    assert r("*OPC?") == b""  # not before the model ends at t0 + 5 s
    r.clock.sleep(4.9)
    assert r.core.read() == b""
    r.clock.sleep(0.1)
    assert r.core.read() == b"1\n"
    r(":TRAC:CLE;:INIT;*WAI")
    assert r(":TRAC:ACT?") == b""  # executed when the model is done, answered then
    r.clock.sleep(5.0)
    assert r.core.read() == b"10\n"
    assert r(":TRIG:STAT?") == b"IDLE;IDLE;9\n"


def test_opc_sets_the_esr_bit_when_the_model_ends_and_errors_set_theirs():
    r = Raw()
    assert r("*ESR?") == b"128\n" and r("*ESR?") == b"0\n"  # power-on, then cleared by the read
    r(':TRIG:LOAD "DurationLoop", 2, 1;:INIT;*OPC')
    assert r("*ESR?") == b"0\n"
    r.clock.sleep(2.0)
    assert r("*ESR?") == b"1\n"
    r(":BOGUS;")
    r(":SOUR:CURR 7")
    assert r("*STB?") == b"4\n"  # EAV: the event log holds errors
    r("*ESE 48;*SRE 32")
    assert r("*STB?") == b"100\n"  # EAV + ESB + MSS
    assert r("*ESR?") == b"48\n"
    r("*CLS")
    assert r("*STB?") == b"0\n"


def test_saved_setups_and_reset():
    r = Raw()
    r(":SOUR:FUNC CURR;:SOUR:CURR 2e-3;:SENS:VOLT:NPLC 5;:ROUT:TERM REAR;*SAV 1;*RST")
    assert r(":SOUR:FUNC?;:SENS:VOLT:NPLC?;:ROUT:TERM?") == b"VOLT;1;FRON\n"
    r("*RCL 1")
    assert r(":SOUR:FUNC?;:SOUR:CURR?;:SENS:VOLT:NPLC?;:ROUT:TERM?") == b"CURR;2.000000e-03;5;REAR\n"
    r("*RCL 3")
    assert r.errors() == [-224]


def test_settings_read_back_in_every_spelling():
    r = Raw()
    cases = {
        ":SOUR:CURR:DEL 0.25;DEL?": b"2.500000e-01",
        ":SOURce:CURRent:DELay:USER3 1.5;:SOUR:CURR:DEL:USER3?": b"1.500000e+00",
        ":SENS:CURR:AVER:TCON MOV;:SENS:CURR:AVER:TCON?": b"MOV",
        ":SENS:CURR:AVER:COUN 7;COUN?": b"7",
        ":OUTP:CURR:SMOD HIMPedance;:OUTP:CURR:SMOD?": b"HIMP",
        ":SENS:VOLT:RANG 3;:SENS:VOLT:RANG?": b"2.000000e+01",
        ":SENS:VOLT:RANG DOWN;:SENS:VOLT:RANG?": b"2.000000e+00",
        ":SENS:VOLT:RANG:AUTO?": b"0",
        ":VOLT:NPLC 2;:SENSe:VOLTage:DC:NPLCycles?": b"2",  # [:SENSe] left out
        ":SOUR:CURR:RANG 1e-3;:SOUR:CURR:RANG?": b"1.000000e-03",
        ":SENS:COUN 3;:SENS:COUN?": b"3",
        ":TRAC:MAKE 'b', 100, COMPact;:TRAC:FILL:MODE? 'b'": b"ONCE",
        ":SYST:VERS?": b"1999.0",
    }
    for line, reply in cases.items():
        assert r(line) == reply + b"\n", line
    r(":SOUR:CURR 0.5")  # beyond the fixed 1 mA range
    assert r.errors() == [-222]


def test_multi_reading_read_and_statistics():
    r = Raw()
    r(':SOUR:FUNC CURR;:SOUR:CURR 3e-3;:SENS:FUNC "VOLT";:OUTP 1;:SENS:COUN 5;:SENS:VOLT:NPLC 1')
    assert r(":READ?") == b""  # 5 readings 20 ms apart: the answer comes with the last
    r.clock.sleep(0.08)
    assert float(r.core.read()) == pytest.approx(0.03)
    rel = np.array(r(":TRAC:DATA? 1, 5, 'defbuffer1', REL").split(b","), dtype=float)
    np.testing.assert_allclose(rel, np.arange(5) * 0.02, atol=1e-9)
    assert float(r(":TRAC:STAT:AVER?")) == pytest.approx(0.03)
    assert float(r(":TRAC:STAT:PK2P?")) == pytest.approx(0.0, abs=1e-12)
    assert r(":TRAC:DATA? 1, 1, 'defbuffer1', DATE, TIME").startswith(b"11/25/2025,08:00:00.")


def test_a_linear_sweep_runs_in_the_trigger_model():
    r = Raw(ohm=100.0)
    r(':SENS:FUNC "VOLT";:SOUR:SWE:CURR:LIN 0, 1e-3, 6, 0.1, 1, BEST, ON, ON, "defbuffer1";:INIT')
    r.clock.sleep(5.0)
    assert r(":TRIG:STAT?") == b"IDLE;IDLE;9\n"
    data = np.array(r(":TRAC:DATA? 1, 12, 'defbuffer1', SOUR, READ").split(b","), dtype=float).reshape(-1, 2)
    up = np.linspace(0, 1e-3, 6)
    np.testing.assert_allclose(data[:, 0], np.concatenate((up, up[::-1])))  # dual: up and back
    np.testing.assert_allclose(data[:, 1], 100.0 * data[:, 0], atol=1e-12)
    assert r.errors() == []


def test_rejects_reads_the_event_log():
    r = Raw()
    r(":SOUR:CURR 1e-3")
    assert r.core.rejects(b"") is False
    r(":SOUR:CURR:BOGUS?")
    assert r.core.rejects(b"") is True
    assert r.core.rejects(b"") is False  # each call covers the messages since the previous one
    r("*IDN?;:SYST:BEEP 100000, 1")
    assert r.core.rejects(b"") is True


def test_step_and_log_sweeps_and_settings_for_every_function():
    r = Raw(ohm=10.0)
    r(':SENS:FUNC "CURR";:SOUR:VOLT:ILIM 1;:SOUR:SWE:VOLT:LIN:STEP 0, 1, 0.25, 0.01;:INIT')
    r.clock.sleep(1.0)
    data = np.array(r(":TRAC:DATA? 1, 5, 'defbuffer1', SOUR, READ").split(b","), dtype=float).reshape(-1, 2)
    np.testing.assert_allclose(data[:, 0], [0, 0.25, 0.5, 0.75, 1.0], atol=1e-12)
    np.testing.assert_allclose(data[1:, 1], data[1:, 0] / 10.0, rtol=0.02)  # the cell's current
    r(":TRAC:CLE;:SOUR:SWE:CURR:LOG 1e-6, 1e-3, 4, 0, 1, BEST, ON, OFF, 0, 'defbuffer1';:INIT")
    r.clock.sleep(1.0)
    sour = np.array(r(":TRAC:DATA? 1, 4, 'defbuffer1', SOUR").split(b","), dtype=float)
    np.testing.assert_allclose(sour, [1e-6, 1e-5, 1e-4, 1e-3], rtol=1e-9)
    assert r(":SENS:NPLC 2;:SENS:VOLT:NPLC?;:SENS:RES:NPLC?") == b"2;2\n"  # no function: all of them
    assert r(":SENS:CURR:RANG:AUTO:LLIM 1e-6;LLIM?;ULIM?") == b"1.000000e-06;1.000000e+00\n"
    assert r.errors() == []


def test_voltage_compliance_keeps_the_cells_ratio():
    r = Raw(ohm=10.0)
    r(':SOUR:FUNC VOLT;:SOUR:VOLT 1;:SOUR:VOLT:ILIM 0.01;:SENS:FUNC "VOLT";:OUTP ON')
    r.clock.sleep(1.0)
    assert float(r(":READ?")) == pytest.approx(0.1, rel=0.02)  # 10 mA through 10 ohm, not the 1 V asked
    assert r(":SOUR:VOLT:ILIM:TRIP?") == b"1\n"


def test_a_trigger_model_built_block_by_block_as_the_manuals_example():
    """2450-901-01 p. 6-128: clear, measure, counter 5 back to the measure, 1 s delay, counter 3 back: 15
    readings, 5 at a time NPLC / line frequency apart, 1 s between the groups."""
    r = Raw()
    r(':SOUR:FUNC CURR;:SOUR:CURR 1e-3;:SENS:FUNC "VOLT";:OUTP ON')
    model = ('TRIG:LOAD "EMPTY"', "TRIG:BLOC:BUFF:CLEAR 1", "TRIG:BLOC:MEAS 2", "TRIG:BLOC:BRAN:COUN 3, 5, 2",
             "TRIG:BLOC:DEL:CONS 4, 1", "TRIG:BLOC:BRAN:COUN 5, 3, 2", "INIT")
    for line in model:
        assert r(line) == b"", line
    assert r(":TRIG:STAT?;:TRAC:ACT?") == b"RUNNING;RUNNING;4;1\n"  # the first reading at :INIT
    assert r("*OPC?") == b""  # held until the model ends: 3 delays of 1 s + 15 x 20 ms
    r.clock.sleep(3.29)
    assert r.core.read() == b""
    r.clock.sleep(0.02)
    assert r.core.read() == b"1\n"
    assert r(":TRIG:STAT?;:TRAC:ACT?;:TRIG:BLOC:BRAN:COUN:COUN? 5") == b"IDLE;IDLE;9;15;3\n"
    rel = np.array(r(":TRAC:DATA? 1, 15, 'defbuffer1', REL").split(b","), dtype=float)
    group = np.arange(5) * 0.02
    np.testing.assert_allclose(rel, np.concatenate((group, group + 1.1, group + 2.2)), atol=1e-9)
    assert r.errors() == []


def test_block_models_switch_the_source_and_never_ending_ones_run_until_abort():
    r = Raw(ohm=10.0)
    r(':SOUR:FUNC CURR;:SOUR:CURR 2e-3;:SENS:FUNC "VOLT";:TRIG:LOAD "Empty"')
    r("TRIG:BLOC:SOUR:STAT 1, ON;TRIG:BLOC:MEAS 2, 'defbuffer1', 3;TRIG:BLOC:SOUR:STAT 3, OFF;INIT")
    r.clock.sleep(1.0)
    assert r(":OUTP?;:TRAC:ACT?") == b"0;3\n"
    np.testing.assert_allclose(np.array(r(":TRAC:DATA? 1, 3").split(b","), dtype=float), 0.02)
    r(':TRIG:LOAD "Empty";TRIG:BLOC:MEAS 1;TRIG:BLOC:BRAN:ALW 2, 1;INIT')
    r.clock.sleep(1.0)
    assert r(":TRIG:STAT?") == b"RUNNING;RUNNING;4\n" and r("*OPC?") == b""  # never ends: no answer
    r(":ABOR")
    assert r(":TRIG:STAT?") == b"ABORTED;ABORTED;4\n"
    r(":TRIG:BLOC:WAIT 1, COMM")  # waits on events: not simulated
    r(":TRIG:BLOC:MEAS 99")  # beyond the block numbers
    assert r.errors() == [-113, -222]
