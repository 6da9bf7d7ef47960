"""numat `alicat` 0.9 (GPL-2.0; its own asyncio serial/TCP client) drives the simulated MFC unmodified.

`FlowController(address)` opens `host:port` with its `TcpClient` and a `/dev/...` path with its `SerialClient`
(pyserial-asyncio-fast), so the TCP and pty exposures are used exactly as a user would.
"""

from __future__ import annotations

import asyncio

import pytest

from labctl.clock import RealClock
from labctl.simulators.alicat import AlicatSim
from labctl.simulators.exposures import serve_pty, serve_tcp
from labctl.simulators.world import SimpleWorld

alicat = pytest.importorskip("alicat")

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=[serve_tcp, pytest.param(serve_pty, marks=pytest.mark.pty)], ids=["tcp", "pty"])
def mfc_link(request):
    world = SimpleWorld()
    core = AlicatSim("mfc-numat", clock=RealClock(), world=world)
    with request.param(core) as exposure:
        yield core, world, exposure.address


def test_connect_configure_measure_shutdown(mfc_link):
    core, world, address = mfc_link

    async def session() -> None:
        async with alicat.FlowController(address, unit="A", timeout=1.0) as fc:
            assert fc.control_point is None or fc.control_point == "mass flow"
            assert (await fc.get_firmware()).startswith("A 10v05")
            state = await fc.get()                          # AR122 (control point) first, then the frame
            assert fc.control_point == "mass flow"
            assert state["gas"] == "N2" and state["setpoint"] == 0.0 and state["control_point"] == "mass flow"

            await fc.set_gas("Ar")                          # A$$W46=1, then A$$R46 read back
            await fc.set_flow_rate(25.0)                    # AS25.00, frame field 5 checked
            state = await fc.get()
            assert state["gas"] == "Ar" and state["setpoint"] == 25.0
            assert state["mass_flow"] == pytest.approx(25.0)
            assert world.gas_flow_actual(0.0) == pytest.approx(25.0)

            await fc.lock()
            assert await fc.is_locked()
            await fc.unlock()
            assert not await fc.is_locked()
            await fc.hold()
            assert core.hold == pytest.approx(25.0)
            await fc.cancel_hold()
            pid = await fc.get_pid()                        # $$r85, $$r21..23
            assert pid["loop_type"] == "PD/PDF" and pid["P"] == "100" and pid["D"] == "5000"
            await fc.set_pid(p=150, loop_type="PD2I")
            assert (await fc.get_pid())["loop_type"] == "PD2I" and core.registers[21] == 150

            await fc.set_flow_rate(0.0)                     # shutdown: no gas
            state = await fc.get()
            assert state["setpoint"] == 0.0 and state["mass_flow"] == 0.0
        assert core.setpoint == 0.0 and core.hold is None and not core.locked

    asyncio.run(session())


def test_refusals_reach_numat_as_its_errors(mfc_link):
    core, _world, address = mfc_link

    async def session() -> None:
        async with alicat.FlowController(address, unit="A", timeout=1.0) as fc:
            await fc.get()
            with pytest.raises(OSError, match="Cannot set gas"):
                await fc.set_gas(25)                        # gas 25 (a mix) is not in this unit's table
            await fc.set_flow_rate(500.0)                   # over full scale: `?` (numat does not check)
            assert (await fc.get())["setpoint"] == 0.0
            with pytest.raises(ValueError):
                await fc.set_pressure(10.0)                 # W122=34 refused `?`: numat fails to parse it
            assert fc.control_point == "mass flow" and core.registers[122] == 37
            assert (await fc.get())["setpoint"] == 0.0

    asyncio.run(session())
