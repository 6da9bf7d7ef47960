"""Exchange rates through the simulator exposures, each next to a baseline measured in the same run.

1. in process (`labsim://`): driver queries/s (Keithley 2450 `:SOUR:CURR:VLIM:TRIP?`, IKA `IN_PV_1`) against
   the bare core (write + read, no transport, no driver);
2. TCP on 127.0.0.1: the same driver queries (`socket://` and VISA `TCPIP::...::SOCKET`) against a raw socket
   echo round trip;
3. pty: a plain pyserial client's round trip to the simulator's pty against the same client and a raw echo
   thread on a pty (goal: ratio <= 1.3);
4. a potentiostat buffer (`acquire`, N points) over pyvisa-py's ASRL session on `ASRLlabsim://` (one byte per
   read call) against the same over TCP VISA: why the bench serves VISA instruments on TCP.

Usage: python benchmarks/bench_exchange.py [--seconds 1.0] [--points 3600]
"""

from __future__ import annotations

import argparse
import os
import socket
import threading
import time
import tty
from collections.abc import Callable

import serial

from labctl.clock import RealClock, VirtualClock
from labctl.drivers.ika_rct import IkaRct
from labctl.drivers.keithley2450 import Keithley2450
from labctl.drivers.transport import SerialSettings, SerialTransport, VisaTransport
from labctl.simulators import registry
from labctl.simulators.exposures import serve_pty, serve_tcp
from labctl.simulators.ika_rct import IkaRctSim
from labctl.simulators.keithley2450 import Keithley2450Sim


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of `fn` over about `seconds` of wall time (after 20 warm-up calls)."""
    for _ in range(20):
        fn()
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        for _ in range(20):
            fn()
        n += 20
    return n / elapsed


def row(label: str, value: float, baseline: float | None = None, unit: str = "/s") -> None:
    extra = f"   ({value / baseline:.2f} x baseline)" if baseline else ""
    print(f"  {label:<58} {value:>12,.0f} {unit}{extra}")


def in_process(seconds: float) -> None:
    print("1. in process (labsim://, virtual clock)")
    clock = VirtualClock()
    k_core = Keithley2450Sim("bx-k", clock=clock)
    ika_core = IkaRctSim("bx-ika", clock=clock)
    registry.register("bx-k", k_core)
    registry.register("bx-ika", ika_core)
    try:
        def bare() -> bytes:
            k_core.write(b":SOUR:CURR:VLIM:TRIP?\n")
            return k_core.read()

        base = rate(bare, seconds)
        row("baseline: bare Keithley core write+read", base)
        k = Keithley2450(SerialTransport("k", "labsim://bx-k", clock=clock))
        k.connect()
        row("Keithley2450.limit_tripped() over labsim://", rate(k.limit_tripped, seconds), base)
        h = IkaRct(SerialTransport("h", "labsim://bx-ika", IkaRct.SERIAL, clock=clock))
        h.connect()
        row("IkaRct.bath_temperature() over labsim://", rate(h.bath_temperature, seconds), base)
    finally:
        registry.unregister("bx-k")
        registry.unregister("bx-ika")


def _echo_server() -> tuple[socket.socket, threading.Thread]:
    server = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        conn, _ = server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return server, thread


def over_tcp(seconds: float) -> None:
    print("2. TCP on 127.0.0.1 (real clock)")
    server, _ = _echo_server()
    client = socket.create_connection(server.getsockname()[:2])
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def echo() -> bytes:
        client.sendall(b":SOUR:CURR:VLIM:TRIP?\n")
        buf = b""
        while not buf.endswith(b"\n"):
            buf += client.recv(65536)
        return buf

    base = rate(echo, seconds)
    client.close()
    server.close()
    row("baseline: raw socket echo round trip", base)
    with serve_tcp(Keithley2450Sim("bx-k-tcp", clock=RealClock())) as exp:
        k = Keithley2450(SerialTransport("k", exp.serial_url))
        k.connect()
        row("Keithley2450.limit_tripped() over socket://", rate(k.limit_tripped, seconds), base)
        k.close()
        k = Keithley2450(VisaTransport("k", exp.visa_resource))
        k.connect()
        row("Keithley2450.limit_tripped() over VISA TCPIP SOCKET", rate(k.limit_tripped, seconds), base)
        k.close()


def over_pty(seconds: float) -> None:
    print("3. pty round trip, plain pyserial client (real clock)")
    master, slave = os.openpty()
    tty.setraw(slave)
    stop = threading.Event()

    def echo() -> None:
        while not stop.is_set():
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            os.write(master, data.replace(b"IN_PV_1", b"22.0 1"))

    threading.Thread(target=echo, daemon=True).start()
    port = serial.Serial(os.ttyname(slave), 9600, timeout=1.0)

    def ask() -> bytes:
        port.write(b"IN_PV_1\r\n")
        return port.read_until(b"\r\n")

    base = rate(ask, seconds)
    port.close()
    stop.set()
    os.close(master)
    os.close(slave)
    row("baseline: raw echo thread on a pty", base)
    with serve_pty(IkaRctSim("bx-ika-pty", clock=RealClock())) as exp:
        port = serial.Serial(exp.path, 9600, timeout=1.0)
        sim = rate(ask, seconds)
        port.close()
        row("IKA simulator on its pty", sim, base)
        print(f"  ratio baseline/simulator round-trip time: {base / sim:.2f} (goal <= 1.3)")
        h = IkaRct(SerialTransport("h", exp.path, SerialSettings(9600)))
        h.connect()
        row("IkaRct.bath_temperature() (driver) on the pty", rate(h.bath_temperature, seconds), base)
        h.close()


def buffers(points: int) -> None:
    print(f"4. potentiostat buffer of {points} points (acquire, interval 1 s)")
    clock = VirtualClock()
    core = Keithley2450Sim("bx-k-asrl", clock=clock)
    registry.register("bx-k-asrl", core)
    try:
        k = Keithley2450(VisaTransport("k", "ASRLlabsim://bx-k-asrl::INSTR", clock=clock, timeout=600.0))
        k.connect()
        t0 = time.perf_counter()
        tr = k.acquire(current=1e-3, duration=float(points), interval=1.0)
        asrl = time.perf_counter() - t0
        assert len(tr.t) == points
        k.close()
    finally:
        registry.unregister("bx-k-asrl")
    with serve_tcp(Keithley2450Sim("bx-k-tcp2", clock=VirtualClock())) as exp:
        k = Keithley2450(VisaTransport("k", exp.visa_resource, clock=exp.core.clock))
        k.connect()
        t0 = time.perf_counter()
        tr = k.acquire(current=1e-3, duration=float(points), interval=1.0)
        tcp = time.perf_counter() - t0
        assert len(tr.t) == points
        k.close()
    print(f"  pyvisa-py ASRL on ASRLlabsim:// : {asrl:8.3f} s  ({points / asrl:12,.0f} points/s)")
    print(f"  pyvisa-py TCPIP SOCKET (bench)  : {tcp:8.3f} s  ({points / tcp:12,.0f} points/s)"
          f"   -> {asrl / tcp:.0f} x faster")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="wall time per rate measurement")
    ap.add_argument("--points", type=int, default=3600, help="buffer size for part 4")
    args = ap.parse_args()
    in_process(args.seconds)
    over_tcp(args.seconds)
    over_pty(args.seconds)
    buffers(args.points)


if __name__ == "__main__":
    main()
