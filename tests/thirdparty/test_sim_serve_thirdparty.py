"""`labctl sim serve` (a separate process, the reference bench's simulators on the wall clock) driven by the
third-party packages exactly as a user would: nesp-lib on the pump network, numat `alicat` on the MFC,
PyMeasure on the QCM, over `--pty` and `--tcp`."""

from __future__ import annotations

import asyncio
import json
import os
import select
import subprocess
import sys
import time

import pytest
from thirdparty_links import alicat_address, nesp_port, visa_resource

nesp_lib = pytest.importorskip("nesp_lib")
alicat = pytest.importorskip("alicat")
sqm160 = pytest.importorskip("pymeasure.instruments.inficon.sqm160")

pytestmark = pytest.mark.timeout(90)
STATION = os.path.join(os.path.dirname(__file__), "..", "..", "stations", "simulated.yaml")


@pytest.fixture(params=["--tcp", pytest.param("--pty", marks=pytest.mark.pty)])
def served(request):
    proc = subprocess.Popen([sys.executable, "-m", "labctl", "sim", "serve", request.param, "--json",
                             "--station", STATION], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "labctl sim serve printed no addresses within 30 s"
        roles = json.loads(proc.stdout.readline())["roles"]
        yield {role: where.get("port") or where.get("visa") for role, where in roles.items()}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_three_packages_on_the_served_bench(served):
    port = nesp_port(served["pump.stock"])
    try:
        pump = nesp_lib.Pump(port, address=1)                   # the station's pump.stock
        assert pump.model_number == 1000
        pump.syringe_diameter_mm = 14.43
        pump.pumping_rate_ml_per_min = 1.0
        assert pump.syringe_diameter_mm == 14.43 and pump.pumping_rate_ml_per_min == pytest.approx(1.0)
        assert pump.status is nesp_lib.Status.STOPPED
    finally:
        port.close()

    async def mfc() -> None:
        async with alicat.FlowController(alicat_address(served["mfc"]), unit="A", timeout=1.0) as fc:
            await fc.set_gas("Ar")
            await fc.set_flow_rate(10.0)
            state = await fc.get()
            assert state["gas"] == "Ar" and state["setpoint"] == 10.0
            assert state["control_point"] == "mass flow"
            await fc.set_flow_rate(0.0)

    asyncio.run(mfc())

    qcm = sqm160.SQM160(visa_resource(served["qcm"]), visa_library="@py")
    try:
        assert qcm.firmware_version == "MON Ver 4.13" and qcm.number_of_channels == 2
        qcm.reset_thickness_rate()
        time.sleep(0.3)
        assert qcm.sensor_1.thickness == 0.0 and qcm.sensor_1.frequency > 5.0e6
    finally:
        qcm.adapter.close()
