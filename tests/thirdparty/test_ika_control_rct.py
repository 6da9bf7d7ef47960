"""numat's `ika-control` (unmodified) drives the IKA RCT digital simulator over TCP (its TcpClient, written
for a serial-to-Ethernet gateway) and over a pty (its SerialClient, 9600 7E1): connect, identify, configure
the heater and the motor, read every value its `Hotplate.get()` asks for, and shut down with `RESET`.

numat checks that each reply ends with the channel digit of its query (so `STATUS_4` answers `11 4`), and
reads `STATUS_4` by its first character only (its overhead-stirrer rule: `11 4` and `12 4` both read as on),
so the motor's state is checked on the simulator. The RCT has no error queue: "clean at the end" is the
simulator having refused nothing (`rejects`) with heater and motor off."""

from __future__ import annotations

import asyncio

import pytest

from labctl.clock import RealClock
from labctl.simulators.exposures import serve_pty, serve_tcp
from labctl.simulators.ika_rct import IkaRctSim
from labctl.simulators.world import SimpleWorld

ika_driver = pytest.importorskip("ika.driver")


async def _session(address: str) -> dict:
    hotplate = ika_driver.Hotplate(address)
    try:
        info = await hotplate.get_info()
        await hotplate.set("process", 40)
        await hotplate.control("heater", on=True)
        await hotplate.set("shaker", 300)
        await hotplate.control("motor", on=True)
        running = await hotplate.get()
        await hotplate.reset()
        stopped = await hotplate.query(hotplate.READ_PROCESS_HEATER_STATUS)
        return {"info": info, "running": running, "stopped": stopped}
    finally:
        hotplate.hw.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("exposure", ["tcp", pytest.param("pty", marks=pytest.mark.pty)])
def test_numat_hotplate_connect_configure_measure_shutdown(exposure):
    core = IkaRctSim("ika-numat", clock=RealClock(), world=SimpleWorld(ambient_c=22.0))
    with (serve_tcp(core) if exposure == "tcp" else serve_pty(core)) as exp:
        out = asyncio.run(_session(exp.address))
    assert out["info"] == {"name": "RCT digital", "device_type": "RCT digital", "temp_limit": 360.0}
    running = out["running"]
    assert running["process_temp"]["setpoint"] == 40.0 and running["process_temp"]["active"] is True
    assert 21.9 < running["process_temp"]["actual"] < 40.0
    assert running["speed"] == {"setpoint": 300, "actual": 300, "active": True}
    # the double probe's second element reads the bath too (numat's serial client waits 1 s per query while
    # the bath heats, so the two readings are taken seconds apart)
    assert running["process_temp"]["actual"] <= running["fluid_temp"]["actual"] < 40.0
    assert running["surface_temp"]["actual"] >= running["process_temp"]["actual"]
    assert out["stopped"] is False                       # RESET: heater off, read back as numat reads it
    assert not core.heating and not core.stirring
    assert not core.rejects(b""), f"the simulator refused {core.not_understood}"
