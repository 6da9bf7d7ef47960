"""PyMeasure's Inficon SQM-160 driver (MIT) drives the simulated QCM unmodified, through pyvisa-py, over a TCP
socket (`TCPIP::host::port::SOCKET`) and the pty (`ASRL/dev/pts/N::INSTR`).

PyMeasure has no film-parameter command of its own; film and system parameters are sent through its `write`
and `read` (its framing and CRC check), as its docstring tells users to do for commands it lacks.
"""

from __future__ import annotations

import time

import pytest
from thirdparty_links import visa_resource

from labctl.clock import RealClock
from labctl.simulators.exposures import serve_pty, serve_tcp
from labctl.simulators.sqm160 import Sqm160Sim
from labctl.simulators.world import SimpleWorld

sqm160 = pytest.importorskip("pymeasure.instruments.inficon.sqm160")
pytest.importorskip("pyvisa_py")

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=[serve_tcp, pytest.param(serve_pty, marks=pytest.mark.pty)], ids=["tcp", "pty"])
def qcm(request):
    world = SimpleWorld()
    core = Sqm160Sim("qcm-pymeasure", clock=RealClock(), world=world)
    with request.param(core) as exposure:
        inst = sqm160.SQM160(visa_resource(exposure.serial_url), visa_library="@py")
        try:
            yield inst, core, world
        finally:
            inst.adapter.close()


def test_connect_configure_measure_shutdown(qcm):
    inst, core, world = qcm
    # connect
    assert inst.firmware_version == "MON Ver 4.13"
    assert inst.number_of_channels == 2
    assert inst.reset_flag is True and inst.reset_flag is False      # set once after power-up, then cleared

    # configure: defaults, a film (Li, 0.534 g/cc, Z 0.54) selected, system tooling, zeroes
    inst.reset_system_parameters()                                   # Z
    inst.write("A1LITHIUM 0.53 100 0.540 1.000 0.000 0 1")
    assert inst.read() == ""
    inst.write("D1")
    inst.read()
    inst.write("B 0.25 0 0 0 1 100 100 100 100 100 100")
    inst.read()
    inst.write("A1?")
    assert inst.read() == "LITHIUM  0.53 100 0.540 1.000 0.000 0 1"
    inst.reset_thickness_rate()                                      # S
    inst.reset_time()                                                # T

    # measure
    assert inst.sensor_1.frequency == pytest.approx(6.0e6)
    assert inst.sensor_1.crystal_life == pytest.approx(100.0)
    assert inst.sensor_1.thickness == 0.0 and inst.sensor_1.rate == 0.0
    assert inst.average_rate == 0.0 and inst.average_thickness == 0.0
    assert inst.sensor_2.frequency == 0.0                            # no crystal on sensor 2
    world._mass += 1e-6                                              # 0.1 ug/cm^2 lands on the crystal
    f = inst.sensor_1.frequency
    assert f == pytest.approx(6.0e6 - 2 * 6.0e6**2 / (2648.0 * 2.947e10) ** 0.5 * 1e-6, abs=1e-3)
    assert inst.sensor_1.thickness == pytest.approx(1e-6 / 534 * 1e10, rel=0.02)   # ~18.7 A of Li
    values = inst.all_values              # W: PyMeasure splits on ',' so a whitespace reply stays one string
    assert isinstance(values, str)
    rate1, thick1, freq1, rate2, thick2, freq2 = (float(v) for v in values.split())
    assert freq1 == pytest.approx(f) and thick1 > 18 and rate1 >= 0
    assert rate2 == thick2 == freq2 == 0.0
    with pytest.raises(ConnectionError, match="Problem with data"):
        _ = inst.sensor_3.rate                                       # a 2-channel unit: status D
    time.sleep(0.05)
    inst.adapter.flush_read_buffer()      # PyMeasure raises before reading the CRC of a D/C answer

    # shutdown: shutter closed, readings zeroed; the instrument's status is clean (A, not C/D/E)
    inst.write("U0")
    inst.read()
    inst.reset_thickness_rate()
    assert inst.sensor_1.thickness == 0.0
    assert core.shutter_open is False and not core.status_b


def test_bad_checksum_is_refused_with_status_c(qcm):
    inst, _core, _world = qcm
    inst.write_bytes(b"!#@XX")                                       # firmware query with a wrong CRC
    with pytest.raises(ConnectionError, match="invalid command"):
        inst.read()
    time.sleep(0.05)
    inst.adapter.flush_read_buffer()      # the C answer's CRC, which PyMeasure leaves unread
    assert inst.firmware_version == "MON Ver 4.13"                   # the next exchange is clean
