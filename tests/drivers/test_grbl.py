"""Byte-exact transcripts of every public operation of the GRBL driver (terminators included)."""

from __future__ import annotations

import itertools

import pytest

from labctl.drivers.grbl import ALARMS, ERRORS, Grbl, parse_status
from labctl.errors import (
    InstrumentBusy,
    InstrumentReportedError,
    LimitViolation,
    MalformedReply,
    SafeStateError,
)
from labctl.roles import Stage
from labctl.testing import ScriptedTransport

BANNER = b"\r\nGrbl 1.1h ['$' for help]\r\n"
UNLOCK = b"[MSG:'$H'|'$X' to unlock]\r\n"


def st(state: str, x: float = 0.0, z: float = 0.0, feed: int = 0) -> bytes:
    return f"<{state}|MPos:{x:.3f},0.000,{z:.3f}|FS:{feed},0>\r\n".encode()


SETTINGS = (b"$100=250.000\r\n$102=800.000\r\n$110=1500.000\r\n$112=600.000\r\n$120=100.000\r\n"
            b"$122=100.000\r\n$130=300.000\r\nok\r\n")


def make(script) -> tuple[Grbl, ScriptedTransport]:
    t = ScriptedTransport(script)
    return Grbl(t, name="stage"), t


def test_is_a_stage():
    g, _ = make([])
    assert isinstance(g, Stage)


def test_connect_flushes_the_banner_and_reads_status():
    report = b"<Alarm|MPos:0.000,0.000,0.000|FS:0,0|WCO:0.000,0.000,0.000>\r\n"
    g, t = make([(None, BANNER + UNLOCK), (b"?", report), (b"$$\n", SETTINGS)])
    g.connect()
    t.assert_done()
    assert t.sent == [b"?", b"$$\n"]
    assert g.messages == ["[MSG:'$H'|'$X' to unlock]"]


def test_connect_mid_move_skips_the_settings_and_predicts_l_over_v():
    g, t = make([(b"?", st("Run", 0, -5, 300))])
    g.connect()
    t.assert_done()
    assert g.move_time(dz=-0.012, speed=0.005) == pytest.approx(2.4)


def test_move_time_is_grbls_trapezoid_from_the_settings():
    g, _ = make([(b"?", st("Idle")), (b"$$\n", SETTINGS)])
    g.connect()
    # Z: 12 mm at 5 mm/s, 100 mm/s^2 -> L/v + v/a
    assert g.move_time(dz=-0.012, speed=0.005) == pytest.approx(2.4 + 0.05)
    # too short to reach the feed: a triangle, 2 sqrt(L/a)
    assert g.move_time(dz=-0.0001, speed=0.02) == pytest.approx(2 * (0.1 / 100) ** 0.5)
    # feed capped by $112 = 600 mm/min = 10 mm/s on Z
    assert g.move_time(dz=-0.02, speed=0.02) == pytest.approx(2.0 + 0.1)
    # a diagonal: X's share limits nothing here, Z's acceleration share does
    assert g.move_time(dx=0.003, dz=-0.004, speed=0.005) == pytest.approx(1.0 + 0.005 / (100 / 0.8) * 1000)


def test_identify():
    g, t = make([(b"$I\n", b"[VER:1.1h.20190830:]\r\n[OPT:V,15,128]\r\nok\r\n")])
    assert g.identify() == "Grbl 1.1h.20190830"
    t.assert_done()


def test_status_position_is_idle():
    g, t = make([(b"?", b"<Run|MPos:100.000,0.000,-12.500|FS:300,0|Ov:100,100,100>\r\n"),
                 (b"?", st("Idle", 100, -20)), (b"?", st("Run", 100, -15, 300))])
    s = g.status()
    assert (s.state, s.substate, s.x, s.z, s.feed) == ("Run", None, 0.1, -0.0125, pytest.approx(0.005))
    assert g.position() == (0.1, -0.02)
    assert g.is_idle() is False
    t.assert_done()


def test_parse_status_hold_substate_and_wpos():
    s = parse_status("<Hold:0|WPos:1.000,2.000,-3.000|FS:0,0|WCO:10.000,0.000,1.000>")
    assert (s.state, s.substate) == ("Hold", 0)
    assert s.mpos == (pytest.approx(0.011), pytest.approx(0.002), pytest.approx(-0.002))
    with pytest.raises(MalformedReply):
        parse_status("<Idle|FS:0,0>")
    with pytest.raises(MalformedReply):
        parse_status("Idle")


def test_settings_and_set_setting():
    g, t = make([(b"$$\n", b"$0=10\r\n$110=1500.000\r\n$132=60.000\r\nok\r\n"), (b"$122=50\n", b"ok\r\n")])
    assert g.settings() == {0: 10.0, 110: 1500.0, 132: 60.0}
    g.set_setting(122, 50.0)
    t.assert_done()


def test_reset_unlock_home():
    g, t = make([
        (b"\x18", BANNER + UNLOCK), (b"?", st("Alarm")),
        (b"$X\n", b"[MSG:Caution: Unlocked]\r\nok\r\n"),
        (b"$H\n", b"ok\r\n"),
    ])
    assert g.reset().state == "Alarm"
    g.unlock()
    assert "[MSG:Caution: Unlocked]" in g.messages
    g.home()
    t.assert_done()


def test_reset_during_motion_records_alarm_3():
    g, t = make([(b"\x18", b"ALARM:3\r\n" + BANNER + UNLOCK), (b"?", st("Alarm", 0, -3.2))])
    assert g.reset().state == "Alarm"
    assert g.alarms == [3]
    t.assert_done()


def test_move_to_waits_on_the_clock_then_polls():
    g, t = make([
        (b"?", st("Idle", 100, 0)),
        (b"G21 G90 G1 Z-12.000 F300.000\n", b"ok\r\n"),
        (b"?", st("Run", 100, -11.9, 300)),
        (b"?", st("Idle", 100, -12)),
    ])
    t0 = t.clock.monotonic()
    assert g.move_to(z=-0.012, speed=0.005) == (0.1, -0.012)
    # slept the expected 2.4 s before the first poll, then one fast poll period
    assert t.clock.monotonic() - t0 == pytest.approx(2.4 + Grbl.FAST_POLL_S)
    t.assert_done()


def test_wait_idle_polls_fast_just_after_the_predicted_end_then_at_5_hz():
    n_fast = round(Grbl.FAST_WINDOW / Grbl.FAST_POLL_S)
    script = [(b"?", st("Idle", 100, 0)), (b"G21 G90 G1 Z-12.000 F300.000\n", b"ok\r\n")]
    script += [(b"?", st("Run", 100, -11.9, 300))] * (n_fast + 2) + [(b"?", st("Idle", 100, -12))]
    g, t = make(script)
    polls: list[float] = []
    write = t._write

    def spy(data: bytes) -> None:
        if data == b"?":
            polls.append(t.clock.monotonic())
        write(data)

    t._write = spy
    t0 = t.clock.monotonic()
    g.move_to(z=-0.012, speed=0.005)
    t.assert_done()
    gaps = [b - a for a, b in itertools.pairwise(polls[1:])]
    assert polls[1] - t0 == pytest.approx(2.4)
    assert gaps[: n_fast - 1] == pytest.approx([Grbl.FAST_POLL_S] * (n_fast - 1))
    assert gaps[-1] == pytest.approx(Grbl.POLL_S)


def test_move_to_both_axes_no_wait_then_wait_idle():
    g, t = make([
        (b"?", st("Idle", 0, 0)),
        (b"G21 G90 G1 X250.000 Z-5.000 F1200.000\n", b"ok\r\n"),
        (b"?", st("Idle", 250, -5)),
    ])
    assert g.move_to(x=0.25, z=-0.005, speed=0.02, wait=False) == (0.0, 0.0)
    assert g.wait_idle(30) == (0.25, -0.005)
    t.assert_done()


def test_limits_are_checked_before_any_byte():
    g, t = make([])
    for kw in ({"x": 0.31}, {"z": 0.001}, {"z": -0.07}, {"x": float("nan")}):
        with pytest.raises(LimitViolation):
            g.move_to(speed=0.005, **kw)
    with pytest.raises(LimitViolation):
        g.move_to(z=-0.01, speed=0.05)
    with pytest.raises(LimitViolation):
        g.move_to(z=-0.01, speed=1e-6)   # below GRBL's 1 mm/min
    assert t.sent == []


def test_station_limits_tighten():
    g = Grbl(ScriptedTransport([]), limits={"z": (-0.03, 0.0)})
    with pytest.raises(LimitViolation):
        g.move_to(z=-0.04, speed=0.005)
    with pytest.raises(LimitViolation):
        Grbl(ScriptedTransport([]), limits={"z": (-0.1, 0.0)})


def test_error_codes_become_messages():
    g, _ = make([(b"?", st("Alarm")), (b"G21 G90 G1 Z-1.000 F300.000\n", b"error:9\r\n")])
    with pytest.raises(InstrumentReportedError, match="G-code lock") as info:
        g.move_to(z=-0.001, speed=0.005)
    assert info.value.code == 9
    assert set(ERRORS) == set(range(1, 18)) | set(range(20, 39))  # GRBL's error_codes_en_US.csv
    assert set(range(1, 10)) <= set(ALARMS)


def test_alarm_in_reply_to_a_line():
    g, _ = make([(b"?", st("Idle")),
                 (b"G21 G90 G1 Z-1.000 F300.000\n", b"ALARM:2\r\n[MSG:Reset to continue]\r\n")])
    with pytest.raises(InstrumentReportedError, match="Soft limit") as info:
        g.move_to(z=-0.001, speed=0.005)
    assert info.value.code == "ALARM:2"


def test_banner_mid_exchange_means_restart():
    g, _ = make([(b"$I\n", BANNER + UNLOCK)])
    with pytest.raises(InstrumentReportedError, match="restarted") as info:
        g.identify()
    assert info.value.code == "reset"


def test_wait_idle_times_out_busy_and_reports_alarm():
    g, _ = make([(b"?", st("Run", 0, -1, 300))] * 100)
    with pytest.raises(InstrumentBusy):
        g.wait_idle(1.0)
    g, _ = make([(b"?", st("Alarm"))])
    with pytest.raises(InstrumentReportedError, match="Alarm"):
        g.wait_idle(1.0)


def test_hold_and_resume_are_single_bytes():
    g, t = make([(b"!", b""), (b"~", b"")])
    g.hold()
    g.resume()
    assert t.sent == [b"!", b"~"]
    t.assert_done()


def _lift(z_from: float) -> list:
    dt = b"G21 G90 G1 Z0.000 F300.000\n"
    return [(b"?", st("Idle", 100, z_from)), (dt, b"ok\r\n"), (b"?", st("Idle", 100, 0)),
            (b"?", st("Idle", 100, 0))]


def test_safe_state_when_idle_lifts_and_confirms():
    g, t = make([(b"?", st("Idle", 100, -12)), *_lift(-12)])
    out = g.safe_state()
    assert out == {"state": "Idle", "x": 0.1, "z": 0.0, "actions": ["lift to z=0"], "position_lost": False}
    t.assert_done()


def test_safe_state_while_moving_holds_resets_and_lifts():
    g, t = make([
        (b"?", st("Run", 100, -20, 300)), (b"!", b""),
        (b"?", b"<Hold:1|MPos:100.000,0.000,-20.100|FS:150,0>\r\n"),
        (b"?", b"<Hold:0|MPos:100.000,0.000,-20.125|FS:0,0>\r\n"),
        (b"\x18", BANNER), (b"?", st("Idle", 100, -20.125)),
        *_lift(-20.125),
    ])
    out = g.safe_state()
    assert out["actions"] == ["feed hold", "soft reset", "lift to z=0"]
    assert out["z"] == 0.0 and out["position_lost"] is False
    t.assert_done()


def test_safe_state_in_alarm_resets_and_unlocks():
    g, t = make([
        (b"?", st("Alarm", 100, -20)),
        (b"\x18", BANNER + UNLOCK), (b"?", st("Alarm", 100, -20)),
        (b"$X\n", b"[MSG:Caution: Unlocked]\r\nok\r\n"),
        *_lift(-20),
    ])
    out = g.safe_state()
    assert out["actions"] == ["soft reset", "unlock ($X)", "lift to z=0"]
    t.assert_done()


def test_safe_state_unconfirmed_raises():
    g, _ = make([(b"?", st("Idle", 100, -12)), *_lift(-12)[:3], (b"?", st("Idle", 100, -11))])
    with pytest.raises(SafeStateError):
        g.safe_state()


def test_close():
    g, t = make([])
    t.open()
    g.close()
    assert not t.is_open
