"""The GRBL simulator: bytes, motion timing, alarms, offsets, jogging, check mode; the driver against it in
process. The driver over TCP and a pty and every fault kind: test_conformance.py."""

from __future__ import annotations

import pytest

from labctl.clock import VirtualClock
from labctl.drivers.grbl import Grbl
from labctl.drivers.transport import SerialTransport
from labctl.errors import (
    InstrumentBusy,
    InstrumentReportedError,
    SafeStateError,
)
from labctl.simulators import registry
from labctl.simulators.core import FaultKind
from labctl.simulators.grbl import BANNER, UNLOCK_MSG, GrblSim
from labctl.simulators.world import SimpleWorld

# -- raw bytes against the core -------------------------------------------------------------------------


class Raw:
    """Write bytes to a core and read what it has said by now, on a virtual clock."""

    def __init__(self, settings: dict[int, float] | None = None) -> None:
        self.clock = VirtualClock()
        self.world = SimpleWorld()
        self.core = GrblSim("grbl", clock=self.clock, world=self.world, settings=settings)
        self.banner = self.core.read()

    def __call__(self, data: bytes) -> bytes:
        self.core.write(data)
        return self.core.read()

    def at(self, t: float, data: bytes = b"?") -> bytes:
        self.clock.advance_to(t)
        return self(data)


def test_banner_and_alarm_lock_on_power_up():
    r = Raw()
    assert r.banner == BANNER + UNLOCK_MSG
    assert r(b"?") == b"<Alarm|MPos:0.000,0.000,0.000|FS:0,0|WCO:0.000,0.000,0.000>\r\n"
    assert r(b"?") == b"<Alarm|MPos:0.000,0.000,0.000|FS:0,0|Ov:100,100,100>\r\n"
    assert r(b"G1 Z-1 F60\n") == b"error:9\r\n"
    assert r(b"$X\n") == b"[MSG:Caution: Unlocked]\r\nok\r\n"
    assert r(b"$X\n") == b"ok\r\n"


def test_no_homing_boots_idle():
    r = Raw({22: 0, 20: 0})
    assert r.banner == BANNER
    assert r(b"$H\n") == b"error:5\r\n"
    assert r(b"$20=1\n") == b"error:10\r\n"


def test_move_10_mm_at_5_mm_s_is_idle_after_2_s_not_before():
    r = Raw({122: 1e9})            # (nearly) infinite acceleration: constant speed (+5 ns)
    r(b"$X\n")
    assert r(b"G21 G90 G1 Z-10 F300\n") == b"ok\r\n"
    assert r.at(1.0).startswith(b"<Run|MPos:0.000,0.000,-5.000|FS:300,0")
    assert r.at(1.999).startswith(b"<Run|")
    assert r.at(2.0 + 1e-6).startswith(b"<Idle|MPos:0.000,0.000,-10.000|FS:0,0")
    assert r.world.moves == [(0.0, (0.0, 0.0, 0.0), (0.0, 0.0, -0.01), pytest.approx(0.005))]


def test_move_with_acceleration_takes_v_over_a_longer():
    r = Raw()                        # $122 = 100 mm/s^2: 2 s + v/a = 2.05 s
    r(b"$X\n")
    r(b"G1 Z-10 F300\n")
    assert r.at(0.025).startswith(b"<Run|MPos:0.000,0.000,-0.031|FS:150,0")   # accelerating
    assert r.at(2.049).startswith(b"<Run|")
    assert r.at(2.05).startswith(b"<Idle|MPos:0.000,0.000,-10.000")


def test_realtime_bytes_inside_a_line_and_sequential_blocks():
    r = Raw({122: 1e9, 120: 1e9})
    r(b"$X\n")
    out = r(b"G1 Z-?5 F600\nG1 X10\n")         # `?` is taken out of the line
    assert out.startswith(b"<Idle|") and out.endswith(b"ok\r\nok\r\n")
    assert r.at(0.5).startswith(b"<Idle|MPos:0.000,0.000,-5.000") is False
    assert r.at(0.5).startswith(b"<Run|MPos:0.000,0.000,-5.000")          # end of block 1
    assert r.at(1.5 + 1e-6).startswith(b"<Idle|MPos:10.000,0.000,-5.000")


def test_feed_hold_resume_and_reset_after_hold_keeps_position():
    r = Raw({122: 100})
    r(b"$X\n")
    r(b"G1 Z-20 F300\n")
    r.at(1.0, b"!")                            # decelerate from 5 mm/s at 100 mm/s^2: 0.05 s, 0.125 mm
    assert r.at(1.01).startswith(b"<Hold:1|")
    held = r.at(1.2)
    assert held.startswith(b"<Hold:0|MPos:0.000,0.000,-5.000|FS:0,0")  # 0.025 + 4.875 + 0.125 mm
    assert r.at(10.0).startswith(b"<Hold:0|")  # stays held
    r.at(10.0, b"~")
    assert r.at(10.5).startswith(b"<Run|")
    assert r.at(10.0 + 0.05 + 15 / 5).startswith(b"<Idle|MPos:0.000,0.000,-20.000")
    r(b"G1 Z-30\n")
    r.at(14.0, b"!")
    assert r.at(15.0, b"\x18") == BANNER      # reset after a completed hold: no alarm
    assert r(b"?").startswith(b"<Idle|")


def test_reset_during_motion_is_alarm_3_and_needs_unlock():
    r = Raw()
    r(b"$X\n")
    r(b"G1 Z-20 F300\n")
    assert r.at(1.0, b"\x18") == b"ALARM:3\r\n" + BANNER + UNLOCK_MSG
    assert r(b"?").startswith(b"<Alarm|MPos:0.000,0.000,-4.875")
    assert r.at(5.0).startswith(b"<Alarm|MPos:0.000,0.000,-4.875")       # motion flushed
    assert r(b"G1 Z0\n") == b"error:9\r\n"


def test_soft_limit_is_a_critical_alarm():
    r = Raw()
    r(b"$X\n")
    assert r(b"G1 Z5 F300\n") == b"ALARM:2\r\n[MSG:Reset to continue]\r\n"
    assert r(b"$X\n") == b""                   # nothing but real-time bytes until a reset
    assert r(b"?").startswith(b"<Alarm|")
    assert r(b"\x18") == BANNER + UNLOCK_MSG
    assert r(b"$X\n") == b"[MSG:Caution: Unlocked]\r\nok\r\n"


def test_homing_takes_time_and_reports_home():
    r = Raw()
    assert r(b"$H\n") == b""
    assert r.at(1.0).startswith(b"<Home|")
    t_end = 2 * 3 * 1.0 / (25 / 60)           # Z then X: each 3 pull-off lengths at $24
    assert r.at(t_end - 0.01).startswith(b"<Home|")
    assert r.at(t_end).startswith(b"ok\r\n<Idle|MPos:0.000,0.000,0.000")


def test_settings_and_errors():
    r = Raw()
    out = r(b"$$\n")
    assert out.startswith(b"$0=10\r\n$1=25\r\n") and b"$122=100.000\r\n" in out and out.endswith(b"ok\r\n")
    assert r(b"$122=50\n") == b"ok\r\n" and r.core.settings[122] == 50.0
    assert r(b"$999=1\n") == b"error:3\r\n"
    assert r(b"$110=-1\n") == b"error:4\r\n"
    assert r(b"$I\n") == b"[VER:1.1h.20190830:]\r\n[OPT:V,15,128]\r\nok\r\n"
    r(b"$X\n")
    assert r(b"G1 Z-1\n") == b"error:22\r\n"       # no feed yet
    assert r(b"G2 Z-1 F10\n") == b"error:20\r\n"
    assert r(b"G0 G1 Z-1 F10\n") == b"error:21\r\n"
    assert r(b"G1 Z-1 Z-2 F10\n") == b"error:25\r\n"
    assert r(b"G1 Z-1 F-10\n") == b"error:4\r\n"
    assert r(b"G1 Z1.2.3 F10\n") == b"error:1\r\n"    # read_float stops at the 2nd '.': a letter expected
    assert r(b"G1 Z F10\n") == b"error:2\r\n"
    assert r(b"\n") == b"ok\r\n"
    assert r(b"G4\n") == b"error:28\r\n"
    assert r(b"X" * 81 + b"\n") == b"error:11\r\n"
    assert r(b"$G\n") == b"[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]\r\nok\r\n"


def test_comments_and_spaces_do_not_count_towards_the_line_limit():
    r = Raw({122: 1e9})
    r(b"$X\n")
    comment = b"(" + b"lift the sample out of the alloy bath slowly, then rinse it in THF " * 2 + b")"
    assert len(comment) > 80
    assert r(b"G1 Z-1 F600 " + comment + b"\n") == b"ok\r\n"
    assert r(b"g1 z-2 ; " + b"x" * 100 + b"\n") == b"ok\r\n"          # lower case, ';' to the end
    assert r(b"G1" + b" " * 100 + b"Z-3\n") == b"ok\r\n"
    assert r(b"G1 X" + b"1" * 77 + b"\n") == b"error:11\r\n"         # 80 kept characters overflow


def test_offsets_g10_g92_g28_and_the_wco():
    r = Raw({122: 1e9})
    r(b"$X\n")
    out = r(b"$#\n")
    assert out.startswith(b"[G54:0.000,0.000,0.000]\r\n[G55:0.000,0.000,0.000]\r\n")
    assert out.endswith(b"[G92:0.000,0.000,0.000]\r\n[TLO:0.000]\r\n[PRB:0.000,0.000,0.000:0]\r\nok\r\n")
    assert r(b"G10 L2 P1 X50 Z-10\n") == b"ok\r\n"                   # G54 origin at X50 Z-10 (machine)
    assert b"[G54:50.000,0.000,-10.000]" in r(b"$#\n")
    assert r(b"G1 X5 Z-2 F600\n") == b"ok\r\n"                       # work coordinates
    r.at(10.0)
    status = r.at(10.0)
    assert status.startswith(b"<Idle|MPos:55.000,0.000,-12.000")
    assert b"|WCO:50.000,0.000,-10.000" in r(b"?" * 10)
    assert r(b"G92 Z0\n") == b"ok\r\n" and b"[G92:0.000,0.000,-2.000]" in r(b"$#\n")
    assert r(b"G92.1\n") == b"ok\r\n"
    assert r(b"G10 L20 P2 X0\n") == b"ok\r\n" and b"[G55:55.000,0.000,0.000]" in r(b"$#\n")
    assert r(b"G28.1\n") == b"ok\r\n" and b"[G28:55.000,0.000,-12.000]" in r(b"$#\n")
    r(b"G53 G0 X0 Z0\n")
    r.at(20.0)
    assert r(b"G28 Z-1\n") == b"ok\r\n"                               # via Z-1 (work), then home Z only
    assert r.at(30.0).startswith(b"<Idle|MPos:0.000,0.000,-12.000")
    assert r(b"G55\n") == b"ok\r\n" and r(b"$G\n").startswith(b"[GC:G0 G55 ")
    assert r(b"G10 L2 P7 X0\n") == b"error:29\r\n" and r(b"G92\n") == b"error:26\r\n"
    assert r(b"G10 L2 P1 X0 G1 Z-1\n") == b"error:24\r\n"
    assert r(b"G43.1 Z1\n") == b"ok\r\n" and b"[TLO:1.000]" in r(b"$#\n")    # an offset, not a move
    assert r(b"G43.1 X1\n") == b"error:37\r\n" and r(b"G49\n") == b"ok\r\n"
    assert r(b"G2 X1 Y1 I1\n") == b"error:20\r\n"                      # no arcs on this controller
    assert r(b"G1 Z-1 I3\n") == b"error:36\r\n"


def test_jog_state_cancel_and_travel():
    r = Raw({122: 1e9})
    r(b"$X\n")
    assert r(b"$J=G91 Z-10 F600\n") == b"ok\r\n"                   # 10 mm at 10 mm/s
    assert r.at(0.5).startswith(b"<Jog|MPos:0.000,0.000,-5.000")
    assert r(b"G1 Z-1 F60\n") == b"error:9\r\n"                        # G-code locked while jogging
    assert r(b"$J=G91 Z-5 F600\n") == b"ok\r\n"                        # jogs queue
    r.at(0.5, bytes([0x85]))                                           # jog cancel: every jog stops
    assert r.at(0.6).startswith(b"<Idle|MPos:0.000,0.000,-5.000")      # (no deceleration at 1e9 mm/s^2)
    r(b"G1 Z-6 F60\n")
    assert r(b"$J=G91 Z+5 F100\n") == b"error:8\r\n"                 # not idle (running the G1)
    r.at(60.0)
    assert r(b"$J=G53 Z+5 F100\n") == b"error:15\r\n"                # beyond travel: refused, no alarm
    assert r(b"?").startswith(b"<Idle|")
    assert r(b"$J=G91 Z-1\n") == b"error:22\r\n" and r(b"$J=G1 Z-1 F10\n") == b"error:16\r\n"
    assert r(b"$J=M3 Z-1 F10\n") == b"error:16\r\n"


def test_check_mode_moves_nothing_and_leaves_through_a_reset():
    r = Raw({122: 1e9})
    r(b"$X\n")
    assert r(b"$C\n") == b"[MSG:Enabled]\r\nok\r\n"
    assert r(b"G1 Z-20 F600\n") == b"ok\r\n" and r(b"G4 P5\n") == b"ok\r\n"
    assert r.at(1.0).startswith(b"<Check|MPos:0.000,0.000,0.000")
    assert r(b"G1 Z-20 Q1\n") == b"error:20\r\n"
    assert r(b"$C\n") == b"[MSG:Disabled]\r\nok\r\n" + BANNER
    assert r(b"?").startswith(b"<Idle|MPos:0.000,0.000,0.000")


def test_spindle_coolant_tool_and_program_flow():
    r = Raw({122: 1e9})
    r(b"$X\n")
    assert r(b"M3 S1200 M8 T2\n") == b"ok\r\n"
    assert r(b"$G\n") == b"[GC:G0 G54 G17 G21 G90 G94 M3 M8 T2 F0 S1200]\r\nok\r\n"
    assert b"|FS:0,1000" in r(b"?")                                     # clamped to $30 = 1000 rpm
    assert r(b"M5 M9\n") == b"ok\r\n" and b"|FS:0,0" in r(b"?")
    r(b"G1 Z-10 F600\n")
    assert r(b"M0\n") == b""                                            # ok once the motion is done
    assert r.at(1.0 + 1e-6, b"") == b"ok\r\n"
    assert r(b"G1 Z-20\n") == b"ok\r\n"
    assert r.at(2.0).startswith(b"<Hold:0|MPos:0.000,0.000,-10.000")  # paused, the G1 waits
    r.at(2.0, b"~")
    assert r.at(3.0 + 1e-6).startswith(b"<Idle|MPos:0.000,0.000,-20.000")
    assert r(b"M2\n") == b"[MSG:Pgm End]\r\nok\r\n"
    assert r(b"$G\n").startswith(b"[GC:G1 G54 G17 G21 G90 G94 M5 M9 T2 F600")


def test_startup_lines_build_info_restore_and_sleep():
    r = Raw({22: 0, 20: 0})                                            # no homing: boots Idle
    assert r(b"$N0=G21 G90 (metric)\n") == b"ok\r\n" and r(b"$N1=G4\n") == b"error:28\r\n"
    assert r(b"$N\n") == b"$N0=G21G90\r\n$N1=\r\nok\r\n"
    assert r(b"\x18") == BANNER + b">G21G90:ok\r\n"
    assert r(b"$I=dip coater\n") == b"ok\r\n"
    assert r(b"$I\n") == b"[VER:1.1h.20190830:DIPCOATER]\r\n[OPT:V,15,128]\r\nok\r\n"
    assert r(b"$110=500\n") == b"ok\r\n" and r(b"$RST=$\n") == b"[MSG:Restoring defaults]\r\nok\r\n"
    assert r.core.settings[110] == 1500.0
    assert r(b"$SLP\n") == b"ok\r\n[MSG:Sleeping]\r\n"
    assert r(b"?").startswith(b"<Sleep|") and r(b"G0 Z-1\n") == b""
    assert r(b"\x18") == BANNER + UNLOCK_MSG and r(b"?").startswith(b"<Alarm|")
    assert r.core.rejects(b"error:20\r\n") and not r.core.rejects(b"error:9\r\nok\r\n")


def test_planner_full_delays_ok():
    r = Raw({122: 1e9})
    r(b"$X\n")
    oks = b"".join(r(b"G1 Z-%d F600\n" % (i + 1)) for i in range(16))
    assert oks.count(b"ok") == 15                # the 16th waits for a free block
    assert r.at(0.0999, b"") == b""
    assert r.at(0.1 + 1e-6, b"") == b"ok\r\n"   # first block (1 mm at 10 mm/s) done at 0.1 s


def test_dwell_syncs():
    r = Raw({122: 1e9})
    r(b"$X\n")
    assert r(b"G1 Z-10 F600\n") == b"ok\r\n"
    assert r(b"G4 P0.5\n") == b""
    assert r.at(1.499, b"") == b""
    assert r.at(1.5 + 1e-6, b"") == b"ok\r\n"


# -- the driver against the simulator -------------------------------------------------------------------


@pytest.fixture
def bench():
    clock = VirtualClock()
    world = SimpleWorld()
    core = GrblSim("grbl-t", clock=clock, world=world)
    registry.register("grbl-t", core)
    t = SerialTransport("stage", "labsim://grbl-t", Grbl.SERIAL, clock=clock, timeout=1.0)
    g = Grbl(t, name="stage")
    g.connect()
    yield g, core, clock
    g.close()
    registry.unregister("grbl-t")


def test_driver_home_move_safe_state_in_process(bench):
    g, _core, clock = bench
    assert g.identify() == "Grbl 1.1h.20190830"
    assert g.status().state == "Alarm"
    g.home()
    t0 = clock.monotonic()
    assert g.move_to(x=0.1, z=-0.012, speed=0.005) == (0.1, -0.012)
    assert clock.monotonic() - t0 >= 0.1 / 0.005
    g.move_to(z=-0.05, speed=0.005, wait=False)
    clock.sleep(1.0)
    out = g.safe_state()
    assert out["state"] == "Idle" and out["z"] == 0.0 and out["x"] == 0.1
    assert out["actions"] == ["feed hold", "soft reset", "lift to z=0"] and not out["position_lost"]
    assert g.settings()[132] == 60.0


def test_driver_immersion_timing_from_the_instrument(bench):
    g, _core, clock = bench
    g.unlock()
    g.move_to(z=-0.01, speed=0.005, wait=False)
    assert not g.is_idle()
    clock.sleep(1.9)
    assert g.status().state == "Run"
    _x, z = g.wait_idle(10)
    assert z == -0.01 and 2.0 <= clock.monotonic() <= 2.05 + Grbl.POLL_S


def test_driver_hold_resume(bench):
    g, _core, clock = bench
    g.unlock()
    g.move_to(z=-0.02, speed=0.005, wait=False)
    clock.sleep(1.0)
    g.hold()
    clock.sleep(0.2)
    s = g.status()
    assert (s.state, s.substate) == ("Hold", 0)
    g.resume()
    assert g.wait_idle(10) == (0.0, -0.02)


def test_driver_sees_alarm_3_after_reset_in_motion_and_safe_state_recovers(bench):
    g, _core, clock = bench
    g.unlock()
    g.move_to(z=-0.02, speed=0.005, wait=False)
    clock.sleep(1.0)
    assert g.reset().state == "Alarm"
    assert g.alarms[-1] == 3
    with pytest.raises(InstrumentReportedError, match="G-code lock"):
        g.move_to(z=-0.01, speed=0.005)
    out = g.safe_state()
    assert out["actions"] == ["soft reset", "unlock ($X)", "lift to z=0"] and out["z"] == 0.0


def test_safe_state_cannot_confirm_when_stuck_busy(bench):
    g, core, _clock = bench
    g.unlock()
    core.set_stuck_busy()
    with pytest.raises(SafeStateError):
        g.safe_state()


# -- faults beyond the generic matrix (test_conformance.py) --------------------------------------------------


def test_fault_stuck_busy(bench):
    g, core, clock = bench
    g.unlock()
    core.inject(FaultKind.STUCK_BUSY, rb"G1")
    t0 = clock.monotonic()
    with pytest.raises(InstrumentBusy):
        g.move_to(z=-0.001, speed=0.005, timeout=3.0)
    assert clock.monotonic() - t0 <= 3.0 + 1e-9
    assert g.status().state == "Run"           # it keeps saying so, and the exchange is clean
