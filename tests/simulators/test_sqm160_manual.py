"""The SQM-160 core's system parameters (`B`, `C`), their effect on readings, non-volatile film data, and
`rejects`. Byte-exact."""

from __future__ import annotations

import pytest

from labctl.clock import VirtualClock
from labctl.drivers.sqm160 import packet, response
from labctl.simulators.sqm160 import C_F, F_Q, Sqm160Sim
from labctl.simulators.world import SimpleWorld


@pytest.fixture
def core():
    return Sqm160Sim("qcm", clock=VirtualClock(), world=SimpleWorld())


def say(core: Sqm160Sim, message: str) -> bytes:
    core.write(packet(message.encode()))
    return core.read()


def ok(text: str = "") -> bytes:
    return response("A", text.encode())


def test_system_parameters_round_trip_and_refusals(core):
    assert say(core, "B?") == ok("0.25 0 0 0 1 100 100 100 100 100 100")
    assert say(core, "C?") == ok("5.000 6.000 0.000 999.000 0.000 999.000 0")
    assert say(core, "B 0.50 0 1 1 4 200 100 100 100 100 100") == ok()
    assert say(core, "B?") == ok("0.50 0 1 1 4 200 100 100 100 100 100")
    assert say(core, "B 5.00 0 1 1 4 200 100 100 100 100 100") == response("D")   # time base > 2 s
    assert say(core, "B 0.50 0 1") == response("D")
    assert say(core, "C 5.500 6.000 0 100 0 500 1") == ok()
    assert say(core, "C 6.000 5.500 0 100 0 500 1") == response("D")             # min above max
    assert say(core, "Q") == response("C")


def test_tooling_etch_and_life_follow_the_system_parameters(core):
    core.world._mass += 1e-6
    thick = float(say(core, "N1")[3:-2])
    assert say(core, "B 0.25 0 0 0 1 200 100 100 100 100 100") == ok()
    assert float(say(core, "N1")[3:-2]) == pytest.approx(2 * thick, rel=1e-3)      # crystal tooling 200 %
    assert say(core, "C 5.500 6.000 0 100 0 500 1") == ok()
    assert float(say(core, "N1")[3:-2]) == pytest.approx(-2 * thick, rel=1e-3)     # etch mode
    f = F_Q - C_F * 1e-6
    assert float(say(core, "R1")[3:-2]) == pytest.approx(100 * (f - 5.5e6) / 0.5e6, abs=0.01)


def test_rate_filter_averages_readings(core):
    assert say(core, "B 0.25 0 0 0 2 100 100 100 100 100 100") == ok()
    say(core, "L1")                                           # first internal reading
    core.world._mass += 1e-7
    core.clock.advance_to(0.25)
    r1 = float(say(core, "L1")[3:-2])
    core.clock.advance_to(0.50)
    r2 = float(say(core, "L1")[3:-2])                         # no new mass: averaged with the previous
    assert r1 > 0 and r2 == pytest.approx(r1 / 2, rel=0.02)


def test_film_and_system_survive_a_power_cycle(core):
    assert say(core, "A1LITHIUM 0.53 100 0.540 1.000 0.000 0 1") == ok()
    assert say(core, "B 0.50 0 0 0 1 100 100 100 100 100 100") == ok()
    core.power_cycle()
    assert say(core, "A1?") == response("B", b"LITHIUM  0.53 100 0.540 1.000 0.000 0 1")
    assert say(core, "B?")[3:7] == b"0.50"
    assert say(core, "Z") == ok() and say(core, "B?")[3:7] == b"0.25"


def test_rejects(core):
    assert core.rejects(response("C")) and core.rejects(b"")
    assert not core.rejects(response("D")) and not core.rejects(ok("2")) and not core.rejects(response("B"))
