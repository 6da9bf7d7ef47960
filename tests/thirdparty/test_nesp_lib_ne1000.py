"""nesp-lib 2.0 (MIT, written from the NE-1000 manual) drives the simulated NE-1000 unmodified, over TCP
and a pty.

nesp-lib's `Port` opens a device path with `serial.Serial`, so the pty exposure is used exactly as a user
would; over TCP the same `Port` class is given pyserial's `socket://` handler (that only swaps how
the serial object is opened, see `thirdparty_links.nesp_port`; `Pump` and every byte it sends are
nesp-lib's own).
"""

from __future__ import annotations

import time

import pytest
from thirdparty_links import nesp_port

from labctl.clock import RealClock
from labctl.simulators.exposures import serve_pty, serve_tcp
from labctl.simulators.ne1000 import NE1000Sim

nesp_lib = pytest.importorskip("nesp_lib")

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=[serve_tcp, pytest.param(serve_pty, marks=pytest.mark.pty)], ids=["tcp", "pty"])
def pump_link(request):
    core = NE1000Sim("ne1000-nesp", clock=RealClock(), addresses=(0,))
    with request.param(core) as exposure:
        port = nesp_port(exposure.serial_url)
        try:
            yield core, port
        finally:
            port.close()


def test_connect_configure_dispense_and_stop(pump_link):
    core, port = pump_link
    pump = nesp_lib.Pump(port)        # safe-mode SAF0 packet (answered A?R, then S), then VER
    assert pump.model_number == 1000 and pump.firmware_version == (3, 928) and pump.firmware_upgrade == 0
    assert core.received[0] == b"\x02\x090SAF0" + b"\x59\xad" + b"\x03"

    pump.syringe_diameter_mm = 26.59
    pump.pumping_direction = nesp_lib.PumpingDirection.INFUSE
    pump.pumping_volume_ml = 0.05     # sent as VOL UL, VOL 50
    pump.pumping_rate_ml_per_min = 6.0  # sent as RAT6000UM; answered 6000.UM
    assert pump.syringe_diameter_mm == 26.59
    assert pump.pumping_direction is nesp_lib.PumpingDirection.INFUSE
    assert pump.pumping_volume_ml == pytest.approx(0.05)
    assert pump.pumping_rate_ml_per_min == pytest.approx(6.0)
    assert b"0RAT6000UM\r" in core.received

    pump.volume_infused_clear()
    pump.volume_withdrawn_clear()
    t0 = time.monotonic()
    pump.run()                        # polls status until the 0.05 mL are in (0.5 s at 6 mL/min)
    assert 0.4 < time.monotonic() - t0 < 5
    assert pump.status is nesp_lib.Status.STOPPED
    assert pump.volume_infused_ml == pytest.approx(0.05, abs=1e-3)
    assert pump.volume_withdrawn_ml == 0.0

    pump.pumping_volume_ml = 10.0     # a longer run, stopped half way: STP pauses, a second STP stops
    pump.run(wait_while_running=False)
    assert pump.running and pump.status is nesp_lib.Status.INFUSING
    time.sleep(0.3)                   # ~0.03 mL more
    pump.stop()
    assert pump.status is nesp_lib.Status.PAUSED
    pump.stop()
    assert pump.status is nesp_lib.Status.STOPPED
    assert 0.06 < pump.volume_infused_ml < 0.5

    pump0 = core.pumps[0]
    assert pump0.alarm is None and pump0.prompt == "S"      # no alarm pending, program stopped


def test_safe_mode_round_trip_and_heartbeat(pump_link):
    core, port = pump_link
    pump = nesp_lib.Pump(port, safe_mode_timeout_s=4)   # SAF4 in safe framing; replies come back framed
    assert core.pumps[0].safe_timeout == 4
    assert pump.safe_mode_timeout_s == 4
    pump.syringe_diameter_mm = 14.43
    assert pump.syringe_diameter_mm == 14.43
    time.sleep(2.5)                   # nesp-lib's heartbeat (status every 2 s) keeps the time out away
    assert pump.status is nesp_lib.Status.STOPPED and core.pumps[0].alarm is None
    pump.safe_mode_timeout_s = 0      # back to basic mode
    assert core.pumps[0].safe_timeout == 0 and core.pumps[0].safe_deadline is None
    assert pump.syringe_diameter_mm == 14.43
    assert core.pumps[0].alarm is None


def test_alarm_reaches_nesp_lib_as_its_exception(pump_link):
    core, port = pump_link
    pump = nesp_lib.Pump(port)
    core.power_cycle()
    with pytest.raises(nesp_lib.StatusAlarmException) as err:
        pump.syringe_diameter_mm = 10.0   # A?R: acknowledged, not executed
    assert err.value.alarm_status is nesp_lib.AlarmStatus.RESET
    assert pump.syringe_diameter_mm == 0.0
    with pytest.raises(ValueError):
        pump.syringe_diameter_mm = 55.0   # ?OOR (the NE-1000 takes 0.1-50 mm)
    assert core.pumps[0].alarm is None



def test_a_stall_reaches_nesp_lib_as_its_alarm(pump_link):
    core, port = pump_link
    core.pumps[0].travel_mm, core.pumps[0].position_mm = 60.0, 0.2    # 0.2 mm of plunger left to infuse
    pump = nesp_lib.Pump(port)
    pump.syringe_diameter_mm = 26.59
    pump.pumping_direction = nesp_lib.PumpingDirection.INFUSE
    pump.pumping_volume_ml = 1.0
    pump.pumping_rate_ml_per_min = 6.0                                  # 0.11 mL left: stalls after ~1.1 s
    with pytest.raises(nesp_lib.StatusAlarmException) as err:
        pump.run()                                                      # polls status until it stops
    assert err.value.alarm_status is nesp_lib.AlarmStatus.STALLED
    assert pump.status is nesp_lib.Status.STOPPED and core.pumps[0].alarm is None
    assert pump.volume_infused_ml == pytest.approx(0.2 * 3.14159 / 4 * 26.59**2 * 1e-3, abs=2e-3)
