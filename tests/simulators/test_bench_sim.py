"""The simulated bench: one core per link of the station, its three exposures, the rewritten station, and the
drivers of the reference bench talking to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.clock import RealClock, VirtualClock
from labctl.drivers import registry as drivers
from labctl.drivers.ika_rct import IkaRct
from labctl.drivers.keithley2450 import Keithley2450
from labctl.drivers.ne1000 import NE1000
from labctl.drivers.transport import SerialSettings, SerialTransport, VisaTransport
from labctl.errors import ConfigError
from labctl.simulators import registry
from labctl.simulators.bench import SimulatedBench
from labctl.simulators.ne1000 import NE1000Sim
from labctl.station import load_station

STATION = Path(__file__).parents[2] / "stations" / "simulated.yaml"


@pytest.fixture
def station():
    return load_station(STATION)


def test_one_core_per_link_and_shared_pumps(station):
    with SimulatedBench(station, clock=VirtualClock(), seed=3) as bench:
        pumps = bench.core("pump.stock")
        assert isinstance(pumps, NE1000Sim) and bench.core("pump.solvent") is pumps
        assert bench.address("pump.stock") == bench.address("pump.solvent") == {"port": "labsim://pumps"}
        assert registry.get("pumps") is pumps
        assert bench.address("stage") == {"port": "labsim://stage"}
        visa = bench.address("potentiostat")["visa"]
        assert visa.startswith("TCPIP::127.0.0.1::") and visa.endswith("::SOCKET")
        assert registry.get("potentiostat") is bench.core("potentiostat")  # ASRLlabsim still works
        for role in bench.unavailable:  # only roles still being written
            assert station.instruments[role].driver in ("emstat4", "sqm160")
        with pytest.raises(ConfigError, match="no simulated instrument"):
            bench.address("eis") if "eis" in bench.unavailable else bench.address("nope")
    assert registry.get("pumps") is None


def test_simulated_station_rewrites_the_addresses(station):
    bench = SimulatedBench(station, clock=VirtualClock()).start(roles=["potentiostat", "hotplate"])
    try:
        sim = bench.simulated_station()
        assert sim.instruments["potentiostat"].visa == bench.address("potentiostat")["visa"]
        assert sim.instruments["potentiostat"].port is None
        assert sim.instruments["hotplate"].port == "labsim://hotplate"
        assert sim.instruments["stage"] == station.instruments["stage"]  # not simulated: untouched
        assert sim.instruments["potentiostat"].limits == station.instruments["potentiostat"].limits
        with pytest.raises(ConfigError, match="no role"):
            SimulatedBench(station).start(roles=["nope"])
        with pytest.raises(ConfigError, match="exposure"):
            SimulatedBench(station).start("usb")
    finally:
        bench.close()


def test_drivers_over_the_in_process_bench(station):
    clock = VirtualClock()
    with SimulatedBench(station, clock=clock).start(
        roles=["pump.stock", "pump.solvent", "hotplate", "potentiostat"]
    ) as bench:
        t = SerialTransport("pumps", bench.address("pump.stock")["port"], NE1000.SERIAL, clock=clock)
        for address in (1, 2):
            pump = NE1000(t, address=address)
            pump.connect()
            assert "NE1000" in pump.identify() or pump.identify()
        hp = IkaRct(
            SerialTransport("hotplate", bench.address("hotplate")["port"], IkaRct.SERIAL, clock=clock)
        )
        hp.connect()
        assert hp.identify() == "RCT digital"
        k = Keithley2450(VisaTransport("potentiostat", bench.address("potentiostat")["visa"], clock=clock))
        k.connect()
        k.configure_galvanostatic(voltage_limit=2.0)
        tr = k.acquire(current=1e-3, duration=3600.0, interval=1.0)
        assert len(tr.t) == 3600
        k.close()


@pytest.mark.parametrize("exposure", ["tcp", pytest.param("pty", marks=pytest.mark.pty)])
def test_tcp_and_pty_exposures(station, exposure):
    with SimulatedBench(station, clock=RealClock()).start(exposure, roles=["hotplate", "gauge"]) as bench:
        port = bench.address("hotplate")["port"]
        assert port.startswith("socket://127.0.0.1:") if exposure == "tcp" else port.startswith("/dev/")
        line = IkaRct.SERIAL if exposure == "tcp" else SerialSettings(9600)  # ptys refuse 7E1 here
        hp = IkaRct(SerialTransport("hotplate", port, line, timeout=1.0))
        hp.connect()
        assert hp.identify() == "RCT digital"
        hp.close()


def test_the_engine_uses_it(station):
    from labctl.simulators.dryrun import DryRunBench

    bench = DryRunBench(station, clock=VirtualClock(), seed=1)
    try:
        assert isinstance(bench.bench, SimulatedBench)
        assert registry.get("pumps") is not None and registry.get("potentiostat") is not None
    finally:
        bench.close()


def test_every_registry_simulator_takes_the_bench_constructor():
    for name, entry in drivers.entries().items():
        try:
            cls = drivers.simulator_class(name)
        except ImportError:
            continue  # reported by tests/drivers/test_meta.py
        core = cls(f"ctor-{name}", clock=VirtualClock(), world=None, seed=0)
        assert core.name == f"ctor-{name}", entry


def _serve(*args: str):
    import json
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "from labctl.cli import main; main()", "sim", "serve",
                             "--station", str(STATION), "--json", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise AssertionError(proc.stderr.read())
    return proc, json.loads(line)


def _stop(proc) -> None:
    import signal

    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0


@pytest.mark.parametrize("flag", ["--tcp", pytest.param("--pty", marks=pytest.mark.pty)])
def test_sim_serve_cli_with_plain_pyserial(flag):
    import serial

    proc, found = _serve(flag)
    try:
        roles = found["roles"]
        assert "visa" in roles["potentiostat"] and roles["potentiostat"]["visa"].endswith("::SOCKET")
        port = roles["gauge"]["port"]
        link = serial.serial_for_url(port, timeout=2.0)
        try:
            link.write(b"PR1\r\n")                       # TPG 361: mnemonic, then ENQ for the data
            assert link.read_until(b"\r\n") == b"\x06\r\n"
            link.write(b"\x05")
            status, value = link.read_until(b"\r\n").decode().strip().split(",")
            assert status in "012345" and float(value) > 0
        finally:
            link.close()
    finally:
        _stop(proc)
