"""A dry run is sealed off from hardware (issue 14.1).

`labctl run X --simulate` against a station whose links are real (the reference bench's serial ports and
VISA socket, or `socket://` links) is refused before any byte, naming each role and link; nothing is opened
(serial.Serial, socket.create_connection and pyvisa's open_resource are replaced by functions that record the
attempt and fail loudly). Behind that check, the transport itself is sealed for the dry run's life: a run that
got past the CLI (the check patched out, or the engine driven directly) still opens nothing.
"""

from __future__ import annotations

import re
import socket
import sys
from pathlib import Path

import pytest
import serial

from labctl.cli import main
from labctl.clock import RealClock, VirtualClock
from labctl.drivers import transport as tp
from labctl.drivers.transport import SealedLink, SerialTransport, VisaTransport, is_simulator_link, sealed
from labctl.engine import protocol_adapter as pa
from labctl.engine.instruments import build_instruments, lease_keys, roles_for
from labctl.engine.machine import RunState
from labctl.engine.run import Run
from labctl.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
PROTOCOLS = sorted((ROOT / "protocols").glob("*.yaml"))
REFERENCE = ROOT / "stations" / "reference.yaml"
SIMULATED = ROOT / "stations" / "simulated.yaml"


def socket_station(folder: Path) -> Path:
    """stations/simulated.yaml with every link a network link: serial ones `socket://`, VISA `TCPIP::`."""
    text = SIMULATED.read_text(encoding="utf-8")
    names = sorted(set(re.findall(r"labsim://(\w+)", text)))
    for i, name in enumerate(names):
        text = re.sub(rf"(?<!ASRL)labsim://{name}\b", f"socket://127.0.0.1:{47000 + i}", text)
    text = re.sub(r"ASRLlabsim://(\w+)::INSTR", "TCPIP0::127.0.0.1::5025::SOCKET", text)
    assert "labsim" not in text
    path = folder / "sockets.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def opened(monkeypatch) -> list[str]:
    """Every way labctl could reach hardware, replaced by a recorder that fails loudly."""
    attempts: list[str] = []

    def refuse(what: str):
        def fail(*args, **kwargs):
            attempts.append(f"{what}{args!r}")
            raise AssertionError(f"a dry run tried to open hardware: {what}{args!r}")

        return fail

    monkeypatch.setattr(serial, "Serial", refuse("serial.Serial"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    pyvisa = pytest.importorskip("pyvisa")
    monkeypatch.setattr(pyvisa.ResourceManager, "open_resource", refuse("ResourceManager.open_resource"))
    return attempts


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["labctl", *args])
    with pytest.raises(SystemExit) as stop:
        main()
    out = capsys.readouterr()
    return int(stop.value.code or 0), " ".join((out.out + out.err).split())  # rich wraps long lines


@pytest.mark.parametrize("station", ["reference", "sockets"])
@pytest.mark.parametrize("protocol", PROTOCOLS, ids=[p.stem for p in PROTOCOLS])
def test_simulate_against_real_links_is_refused_before_anything_opens(
    tmp_path, monkeypatch, capsys, opened, protocol, station
):
    path = REFERENCE if station == "reference" else socket_station(tmp_path)
    db = tmp_path / "dry.db"
    code, out = run_cli(monkeypatch, capsys, "run", str(protocol), "--simulate", "--station", str(path),
                        "--db", f"sqlite:///{db}")
    assert code == 2, out
    assert "Traceback" not in out
    assert "--simulate refused" in out
    link = "/dev/serial/by-id/usb-grbl-stage" if station == "reference" else "socket://127.0.0.1:"
    assert "stage on " + link in out and "potentiostat on TCPIP0::" in out, out  # names role and link
    assert "stations/simulated.yaml" in out and "labctl sim serve --station-out" in out
    assert opened == []
    assert not db.exists()  # refused before the store: no run row left in `created`
    assert tp.sealed_reason() is None  # and the process is not left sealed


def test_simulate_realtime_is_refused_too(tmp_path, monkeypatch, capsys, opened):
    code, out = run_cli(monkeypatch, capsys, "run", str(ROOT / "protocols" / "eis.yaml"), "--simulate",
                        "--realtime", "--station", str(socket_station(tmp_path)),
                        "--db", f"sqlite:///{tmp_path / 'd.db'}")
    assert code == 2 and "--simulate refused" in out and "eis on socket://127.0.0.1:" in out, out
    assert opened == []


def test_transport_is_sealed_during_the_dry_run_behind_the_cli_check(tmp_path, monkeypatch, capsys, opened):
    """With the CLI's refusal patched out, the dry run's transports still refuse every real link: the run
    fails in preflight naming the role and the link, and nothing was opened."""
    from labctl.drivers import transport

    monkeypatch.setattr(transport, "require_simulators", lambda *a, **k: None)
    code, out = run_cli(monkeypatch, capsys, "run", str(ROOT / "protocols" / "eis.yaml"), "--simulate",
                        "--realtime", "--json", "--station", str(socket_station(tmp_path)),
                        "--db", f"sqlite:///{tmp_path / 'd.db'}")
    assert code == 1, out
    assert '"state": "failed"' in out
    assert "eis: refused to open socket://127.0.0.1:" in out and "during a dry run (--simulate)" in out, out
    assert opened == []
    assert tp.sealed_reason() is None


def test_engine_dry_run_on_the_virtual_clock_seals_itself(tmp_path, opened):
    """The engine driven directly (no CLI) in a dry run on the virtual clock is sealed too: the stage on a
    socket is refused in preflight, the run fails naming the role and link, is terminal, leases released."""
    from labctl.store import Store

    _, info = pa.station_from(socket_station(tmp_path))
    spec = pa.run_spec(pa.load_protocol(ROOT / "protocols" / "li-in-immersion.yaml", {}))
    roles, missing = roles_for([s.kind for s in spec.steps], info)
    assert not missing and "stage" in roles
    store = Store.open(f"sqlite:///{tmp_path / 'e.db'}")
    try:
        run = Run(spec, store=store, instruments={}, station=info, clock=VirtualClock(), mode="dry-run",
                  lease_keys=lease_keys(info, roles), handle_signals=False)
        run_id = run.create()
        run.instruments = build_instruments(info, roles, clock=run.clock, recorder=store.io_recorder(run_id))
        result = run.execute()
        assert result.state is RunState.FAILED
        assert "refused to open socket://127.0.0.1:" in result.reason, result.reason
        assert "during a dry run on the virtual clock" in result.reason
        assert store.run(run_id)["state"] == "failed"
        assert not any(lease["held"] for lease in store.run(run_id)["leases"])
    finally:
        store.close()
    assert opened == []
    assert tp.sealed_reason() is None


@pytest.mark.parametrize(
    "link",
    ["/dev/ttyUSB0", "COM3", "socket://127.0.0.1:5025", "rfc2217://10.0.0.2:2217", "loop://", "spy:///dev/ttyS0",
     "hwgrep://usb", "socket://localhost:1"],
)
def test_sealed_serial_transport_refuses_before_pyserial(opened, link):
    t = SerialTransport("stage", link, clock=VirtualClock())
    with sealed("a test dry run"), pytest.raises(SealedLink) as err:
        t.open()
    assert link in str(err.value) and "stage" in str(err.value) and "a test dry run" in str(err.value)
    assert opened == [] and not t.is_open


@pytest.mark.parametrize(
    "resource",
    ["TCPIP0::192.168.10.24::5025::SOCKET", "TCPIP::10.0.0.5::INSTR", "USB0::0x05E6::0x2450::04096331::INSTR",
     "GPIB0::24::INSTR", "ASRL/dev/ttyUSB0::INSTR"],
)
def test_sealed_visa_transport_refuses_before_a_resource_manager(opened, resource):
    t = VisaTransport("potentiostat", resource, clock=VirtualClock())
    with sealed(), pytest.raises(SealedLink, match="potentiostat"):
        t.open()
    assert opened == []


def test_simulators_open_while_sealed_and_the_seal_lifts_after():
    from labctl.simulators import registry
    from labctl.simulators.tpg361 import Tpg361Sim

    core = Tpg361Sim("sealtest", clock=VirtualClock())
    registry.register("sealtest", core)
    try:
        with sealed():
            for t in (tp.open_link("gauge", port="labsim://sealtest"),
                      tp.open_link("gauge", visa="ASRLlabsim://sealtest::INSTR")):
                t.open()
                assert t.is_open
                t.close()
        assert tp.sealed_reason() is None
    finally:
        registry.unregister("sealtest")


@pytest.mark.parametrize(
    ("link", "simulated"),
    [("labsim://stage", True), ("LABSIM://stage", True), ("ASRLlabsim://potentiostat::INSTR", True),
     ("labsim://", False), ("/dev/ttyUSB0", False), ("socket://127.0.0.1:1", False), ("", False),
     ("TCPIP0::1.2.3.4::5025::SOCKET", False), ("spy://labsim://x", False), ("labsimx://a", False)],
)
def test_is_simulator_link(link, simulated):
    assert is_simulator_link(link) is simulated


def test_require_simulators_names_every_offending_role():
    with pytest.raises(ConfigError) as err:
        tp.require_simulators({"stage": "labsim://stage", "gauge": "/dev/ttyS0", "rf": "socket://h:1"},
                              station="bench.yaml")
    msg = str(err.value)
    assert "gauge on /dev/ttyS0" in msg and "rf on socket://h:1" in msg and "stage" not in msg.split("(")[1]
    tp.require_simulators({"stage": "labsim://stage"})  # all simulated: nothing to say


def test_real_clock_read_is_cut_by_an_armed_abort():
    """A read on the wall clock waiting for a reply that never comes (here 60 s) ends as soon as an abort is
    armed on the clock, as a signal handler or `labctl abort` does; the exchange is recorded as abandoned."""
    import threading
    import time

    from labctl.engine.errors import RunAborted

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    clock = RealClock()
    records = []
    t = SerialTransport("eis", f"socket://127.0.0.1:{port}", clock=clock, recorder=records.append)
    t.open()
    peer, _ = server.accept()
    try:
        abort = RunAborted("abort requested", "SIGTERM")
        threading.Timer(0.3, lambda: clock.interrupt(lambda: abort)).start()
        t0 = time.monotonic()
        with pytest.raises(RunAborted):
            t.read_until(b"\n", timeout=60)
        assert time.monotonic() - t0 < 1.0
        assert records[-1].note == "exchange abandoned: interrupted"
    finally:
        t.close()
        peer.close()
        server.close()


@pytest.fixture
def silent_server():
    """A TCP server on 127.0.0.1 that accepts one connection and never sends a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    yield server
    server.close()


@pytest.mark.timeout(60)
def test_a_silent_link_on_the_virtual_clock_still_times_out(silent_server, monkeypatch):
    """Unsealed, on a virtual clock (which does not advance while nothing answers), a link that never answers
    fails by the exchange's wall-clock deadline instead of looping for ever; so does a driver's retried
    read."""
    import time

    from labctl.drivers.tpg361 import Tpg361
    from labctl.errors import InstrumentTimeout

    monkeypatch.setattr(tp, "VIRTUAL_WALL_GRACE_S", 0.5)
    port = silent_server.getsockname()[1]
    clock = VirtualClock()
    t = SerialTransport("gauge", f"socket://127.0.0.1:{port}", clock=clock, timeout=1.0)
    t.open()
    peer, _ = silent_server.accept()
    try:
        t0 = time.monotonic()
        with pytest.raises(InstrumentTimeout, match="gauge"):
            t.read_until(b"\n")
        with pytest.raises(InstrumentTimeout):
            t.read_exact(4)
        gauge = Tpg361(t, name="gauge")
        gauge.RETRIES = 1
        with pytest.raises(InstrumentTimeout):
            gauge.pressure()
        took = time.monotonic() - t0
        assert took < 20, f"{took:.1f} s"  # 4 exchanges of 1 s + 0.5 s each, and the resync quiet time
        assert clock.monotonic() < 5  # the virtual clock barely moved: the wall clock ended the waits
    finally:
        t.close()
        peer.close()
