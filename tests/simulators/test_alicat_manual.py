"""The Alicat core against the Serial Primer beyond poll/setpoint/gas: registers, LS/GS, tares, lock, unit-id
change, streaming and the ?? information blocks. Byte-exact."""

from __future__ import annotations

import pytest

from labctl.clock import VirtualClock
from labctl.simulators.alicat import AlicatSim
from labctl.simulators.world import SimpleWorld

IDLE = b"+014.70 +025.00 +000.00 +000.00 +000.00"


@pytest.fixture
def core():
    return AlicatSim("mfc", clock=VirtualClock(), world=SimpleWorld())


def say(core: AlicatSim, text: str) -> bytes:
    core.write(text.encode() + b"\r")
    return core.read()


def test_registers(core):
    assert say(core, "AR122") == b"A   122 = 37\r"
    assert say(core, "A$$R46") == b"A   046 = 8\r"
    assert say(core, "A$$W46=1") == b"A   046 = 1\r" and say(core, "A").endswith(b" Ar\r")
    assert say(core, "A$$r85") == b"A   085 = 1\r" and say(core, "A$$w21=150") == b"A   021 = 150\r"
    assert say(core, "AW122=34") == b"?\r" and say(core, "AR999") == b"?\r"
    assert say(core, "A$$W46=99") == b"?\r"


def test_volumetric_control_point_converts_the_setpoint():
    core = AlicatSim("mfc", clock=VirtualClock(), world=SimpleWorld(), inlet_psia=30.0, temperature_c=35.0)
    assert say(core, "AW122=36") == b"A   122 = 36\r"
    assert say(core, "AS 25") == b"A +030.00 +035.00 +025.00 +049.38 +025.00 N2\r"   # 25 ccm = 49.38 sccm


def test_ls_gs_and_tares(core):
    assert say(core, "ALS 10") == b"A +010.00 +010.00 4 SCCM\r"
    assert say(core, "ALS") == b"A +010.00 +010.00 4 SCCM\r"
    assert say(core, "ALS 101") == b"?\r"
    assert say(core, "AGS") == b"A 8 N2 Nitrogen\r" and say(core, "AGS 1") == b"A 1 Ar Argon\r"
    assert say(core, "AS 0") == b"A " + IDLE + b" Ar\r"
    assert say(core, "AV") == b"A " + IDLE + b" Ar\r" and core.flow_tare == 0.0
    assert say(core, "A$$PC") == b"A " + IDLE + b" Ar\r" and say(core, "AP") == b"A " + IDLE + b" Ar\r"
    assert say(core, "AT") == b"?\r" and say(core, "ALSRC") == b"?\r"         # no totalizer, no ramping


def test_lock_hold_and_new_unit_id(core):
    assert say(core, "A$$L") == b"A " + IDLE + b" N2 LCK\r"
    assert say(core, "AU") == b"A " + IDLE + b" N2\r"
    assert say(core, "A$$H") == b"A " + IDLE + b" N2 HLD\r" and say(core, "A$$C") == b"A " + IDLE + b" N2\r"
    assert say(core, "A@=B") == b"B " + IDLE + b" N2\r"
    assert say(core, "A") == b"" and say(core, "B") == b"B " + IDLE + b" N2\r"
    core.power_cycle()
    assert say(core, "B") == b"B " + IDLE + b" N2\r"                           # the id is kept


def test_streaming(core):
    assert say(core, "A@=@") == b""
    core.clock.advance_to(0.12)
    assert core.read() == (b"@ " + IDLE + b" N2\r") * 2                        # t = 0.05, 0.10
    assert core.next_release() == pytest.approx(0.15)
    assert say(core, "A") == b""                                                # A is now @
    assert say(core, "@@=A") == b"A " + IDLE + b" N2\r"
    core.clock.advance_to(1.0)
    assert core.read() == b""


def test_information_blocks(core):
    m = say(core, "A??M*").split(b"\r")[:-1]
    assert len(m) == 10 and m[0] == b"A M00 Alicat Scientific" and m[5] == b"A M05 Serial Number 190001"
    assert m[9] == b"A M09 Software Revision 10v05.0-R22"
    d = say(core, "A??D*").split(b"\r")[:-1]
    assert d[1] == b"A D01 700 Unit ID                    string          1" and len(d) == 9
    g = say(core, "A??G*").split(b"\r")[:-1]
    assert g[8] == b"A G08 N2       Nitrogen" and len(g) == 20


def test_rejects(core):
    assert core.rejects(b"?\r") and core.rejects(b"A ?\r") and core.rejects(b"")
    assert not core.rejects(say(core, "A")) and not core.rejects(say(core, "AVE"))


def test_a_tare_under_flow_offsets_readings_and_the_loop(core):
    core.write(b"AS 10\r")
    core.read()
    assert say(core, "AV") == b"A +014.70 +025.00 +000.00 +000.00 +010.00 N2\r"   # 10 sccm now reads 0
    assert core.world.gas_flow_actual(0.0) == pytest.approx(20.0)              # the loop makes it read 10
    assert say(core, "A") == b"A +014.70 +025.00 +010.00 +010.00 +010.00 N2\r"
    assert say(core, "AS 0") == b"A +014.70 +025.00 -010.00 -010.00 +000.00 N2\r"  # valve shut: reads -10
