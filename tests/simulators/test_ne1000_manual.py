"""The NE-1000 core against the manual beyond a single dispense: safe-mode framing, CRC and time out, the
Pumping Program (PHN/FUN), the settings commands and the number format. Byte-exact."""

from __future__ import annotations

import pytest

from labctl.clock import VirtualClock
from labctl.simulators.ne1000 import NE1000Sim, fmt4, safe_packet
from labctl.simulators.world import SimpleWorld

ML = 1e-6


def f(address: int, body: str) -> bytes:
    return b"\x02" + f"{address:02d}{body}".encode() + b"\x03"


def s(address: int, body: str) -> bytes:
    return safe_packet(f"{address:02d}{body}".encode())


@pytest.fixture
def core():
    c = NE1000Sim("pumps", clock=VirtualClock(), world=SimpleWorld(), addresses=(0, 1))
    for a in (0, 1):
        c.write(f"{a}\r".encode())
    assert c.read() == f(0, "A?R") + f(1, "A?R")
    return c


def say(core: NE1000Sim, text: str) -> bytes:
    core.write(text.encode() + b"\r")
    return core.read()


def test_manual_return_to_basic_packet_and_crc():
    assert safe_packet(b"SAF0") == b"\x02\x08SAF0\x55\x43\x03"        # manual §10.2.2, byte for byte
    c = NE1000Sim("p", clock=VirtualClock(), addresses=(0,))
    c.write(b"\x02\x08SAF0\x55\x43\x03")
    assert c.read() == f(0, "A?R")                                    # the alarm first, in basic framing


def test_safe_packet_then_basic_command_in_one_write(core):
    core.write(safe_packet(b"0SAF0") + b"0VER\r")                   # what nesp-lib's opening looks like
    assert core.read() == f(0, "S") + f(0, "SNE1000V3.928")


def test_bad_crc_and_basic_lines_in_safe_mode_are_invalid_packets(core):
    core.write(safe_packet(b"1SAF5"))
    assert core.read() == s(1, "S")
    bad = bytearray(safe_packet(b"1DIA"))
    bad[-2] ^= 0xFF
    core.write(bytes(bad))
    assert core.read() == s(1, "S?COM")
    assert say(core, "1DIA") == s(1, "S?COM")                        # basic framing is not a safe packet
    core.write(safe_packet(b"1DIA"))
    assert core.read() == s(1, "S0.000")
    assert say(core, "0DIA") == f(0, "S0.000")                       # pump 0 is still in basic mode


def test_safe_mode_time_out_stops_the_pump_and_sends_the_alarm_by_itself(core):
    for cmd in (b"1DIA26.59", b"1RAT1MM", b"1VOL0", b"1SAF5", b"1RUN"):
        core.write(safe_packet(cmd))
    assert core.read().endswith(s(1, "I"))
    core.clock.advance_to(3.0)
    core.write(safe_packet(b"1"))                                    # a valid packet re-arms the time out
    assert core.read() == s(1, "I")
    core.clock.advance_to(7.9)
    assert core.read() == b""
    assert core.next_release() == pytest.approx(8.0)                 # an exposure wakes up for the alarm
    core.clock.advance_to(8.5)
    assert core.read() == s(1, "A?T")                                # auto-alarm, unasked
    assert core.world.pumped_m3["pumps.1"] == pytest.approx(8.0 * ML / 60)   # stopped at the time out
    core.write(safe_packet(b"1DIA"))                                 # the auto-alarm did not acknowledge it
    assert core.read() == s(1, "A?T")
    core.write(safe_packet(b"1"))
    assert core.read() == s(1, "S")


def test_power_cycle_in_safe_mode_announces_the_reset(core):
    core.write(safe_packet(b"1SAF10"))
    assert core.read() == s(1, "S")
    core.power_cycle()
    assert core.read() == s(1, "A?R")
    core.clock.advance_to(100.0)
    assert core.read() == b""                                        # timer off until the first valid packet


def test_pumping_program_phases(core):
    steps = [("0DIA 26.59", "S"), ("0FUN", "SRAT"), ("0RAT 60 MH", "S"), ("0VOL 1", "S"),
             ("0PHN 2", "S"), ("0PHN", "S02"), ("0RAT", "S?NA"), ("0FUN PAS 10", "S"), ("0FUN", "SPAS10"),
             ("0PHN 3", "S"), ("0FUN INC", "S"), ("0RAT 60 MH", "S"), ("0VOL 2", "S"),
             ("0PHN 4", "S"), ("0FUN", "SSTP"), ("0FUN XYZ", "S?"), ("0FUN JMP 42", "S?OOR"),
             ("0PHN 42", "S?OOR"), ("0RUN", "I")]
    for cmd, body in steps:
        assert say(core, cmd) == f(0, body), cmd
    assert say(core, "0PHN") == f(0, "I01") and say(core, "0FUN RAT") == f(0, "I?NA")
    core.clock.advance_to(65.0)                                      # phase 1 (1 mL at 1 mL/min) is over
    assert say(core, "0") == f(0, "T") and say(core, "0PHN") == f(0, "T02")
    core.clock.advance_to(71.0)                                      # pause phase over: INC to 2 mL/min
    assert say(core, "0") == f(0, "I") and say(core, "0PHN") == f(0, "I03")
    core.clock.advance_to(131.0)                                     # 2 mL at 2 mL/min, then STP
    assert say(core, "0") == f(0, "S") and say(core, "0PHN") == f(0, "S01")
    assert say(core, "0DIS") == f(0, "SI3.000W0.000ML")
    assert core.world.pumped_m3["pumps.0"] == pytest.approx(1 * ML)         # settled up to the pause
    assert core.world._flows["pumps.0"] == (70.0, pytest.approx(2 * ML / 60), pytest.approx(130.0))


def test_loop_and_running_past_the_last_phase():
    c = NE1000Sim("p", clock=VirtualClock(), addresses=(0,))
    say(c, "0")
    steps = ["0DIA 26.59", "0FUN LPS", "0PHN 2", "0FUN RAT", "0RAT 60 MH", "0VOL 0.5", "0PHN 3",
             "0FUN LOP 2", "0PHN 4", "0FUN STP", "0RUN"]
    for cmd in steps:
        assert b"?" not in say(c, cmd), cmd
    c.clock.advance_to(1000.0)
    assert say(c, "0DIS") == f(0, "SI1.500W0.000ML")                # the loop body ran 1 + 2 times
    for cmd in ("0PHN 41", "0FUN RAT", "0RAT 60 MH", "0VOL 0.1", "0RUN 41"):
        assert b"?" not in say(c, cmd), cmd
    c.clock.advance_to(2000.0)
    assert say(c, "0") == f(0, "A?O")                                # the program ran off phase 41


def test_settings_commands(core):
    for cmd, body in [("1LOC 1", "S"), ("1LOC", "S1"), ("1LOC 2", "S?OOR"), ("1ALA 1", "S"), ("1AL", "S1"),
                      ("1PF", "S0"), ("1PF 1", "S"), ("1TRG", "SFT"), ("1TRG LE", "S"), ("1TRG", "SLE"),
                      ("1TRG XX", "S?"), ("1DIN 1", "S"), ("1ROM 1", "S"), ("1BP", "S1"), ("1BP 0", "S"),
                      ("1OUT 5 1", "S"), ("1OUT 5", "S1"), ("1OUT 3 1", "S?OOR"), ("1IN 2", "S1"),
                      ("1IN 5", "S?OOR"), ("1BUZ 1", "S"), ("1BUZ", "S1"), ("1BUZ 0", "S"), ("1BUZ 1 3", "S"),
                      ("1BUZ", "S0"), ("1SAF", "S0"), ("1SAF 256", "S?OOR"), ("1LOG", "S?"), ("1ADR", "S01"),
                      ("1ADR 0", "S?NA"), ("1ADR 5 B 9600", "S")]:
        assert say(core, cmd) == f(5 if cmd.startswith("1ADR 5") else 1, body), cmd   # ADR: from the new one
    assert say(core, "1") == b"" and say(core, "5") == f(5, "S")
    assert core.SERIAL.baudrate == 9600


def test_four_digit_numbers_keep_the_decimal_point():
    assert fmt4(2500) == "2500." and fmt4(26.59) == "26.59" and fmt4(0.5) == "0.500" and fmt4(150) == "150.0"


def test_rejects(core):
    assert core.rejects(f(1, "S?")) and core.rejects(s(1, "S?COM")) and core.rejects(b"")
    assert not core.rejects(f(1, "S?OOR")) and not core.rejects(f(1, "A?R")) and not core.rejects(s(1, "S"))


def test_running_into_the_end_of_the_plunger_travel_stalls_the_motor():
    c = NE1000Sim("p", clock=VirtualClock(), world=SimpleWorld(), addresses=(0,), plungers={0: (60.0, 1.0)})
    say(c, "0")
    for cmd in ("0DIA 14.43", "0RAT 1 MM", "0VOL ML", "0VOL 5", "0RUN"):
        assert b"?" not in say(c, cmd), cmd
    area = 3.141592653589793 / 4 * 14.43**2                           # mm^2: 1 mm of plunger = 0.1635 mL
    c.clock.advance_to(5.0)
    assert say(c, "0") == f(0, "I")
    c.clock.advance_to(20.0)                                          # 1 mm left -> stalled at 9.81 s
    assert say(c, "0DIS") == f(0, "A?S")
    assert say(c, "0DIS") == f(0, f"SI{area * 1e-3:.3f}W0.000ML")
    assert c.world._flows["p.0"] == (0.0, pytest.approx(ML / 60), pytest.approx(area * 1e-3 * 60))
    assert say(c, "0RUN") == f(0, "I")                                # still at the end: stalls at once
    assert say(c, "0") == f(0, "A?S")
    assert say(c, "0DIR WDR") == f(0, "S") and say(c, "0RUN") == f(0, "W")   # withdrawing is free
    assert c.pumps[0].position_mm == 0.0


def test_network_command_burst(core):
    for a in (0, 1):
        assert say(core, f"{a}DIA 14.43") == f(a, "S")
    reply = say(core, "0RAT 1 MM*1RAT 2 MM*")                      # both answer at once: noise
    assert len(reply) == len(f(0, "S")) and core.rejects(reply)
    assert say(core, "0RAT") == f(0, "S1.000MM") and say(core, "1RAT") == f(1, "S2.000MM")
    assert say(core, "1DIR WDR*") == f(1, "S")                    # a burst of one is one clean answer


def test_bad_plunger_settings_are_refused_by_name():
    with pytest.raises(ValueError, match="plungers: pump 3"):
        NE1000Sim("p", addresses=(1,), plungers={3: (60.0, 1.0)})
    with pytest.raises(ValueError, match=r"withdrawn 70\.0 mm"):
        NE1000Sim("p", addresses=(1,), plungers={1: (60.0, 70.0)})
