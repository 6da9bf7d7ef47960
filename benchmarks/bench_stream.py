"""Streamed measurements: a long script's packages through a device core, each next to an in-run baseline.

1. the core's output queue: N timed lines scheduled with `emit(at=...)`, then drained as the virtual clock
   passes each release time (`available()` + `read()` per line, as the transport polls) against the same lines
   appended to and popped from a plain list;
2. an EmStat4 OCP of N points (one MethodSCRIPT package per second of virtual time) through the driver over
   `labsim://` against decoding the same N package lines with `methodscript.decode_package` alone.

Usage: python benchmarks/bench_stream.py [--points 3600]
"""

from __future__ import annotations

import argparse
import time

from labctl.clock import VirtualClock
from labctl.drivers.emstat4 import EmStat4
from labctl.drivers.methodscript import decode_package, encode_value
from labctl.drivers.transport import SerialTransport
from labctl.simulators import registry
from labctl.simulators.emstat4 import EmStat4Sim
from labctl.simulators.world import SimpleWorld


def row(label: str, seconds: float, n: int, baseline: float | None = None) -> None:
    extra = f"   ({seconds / baseline:.1f} x baseline time)" if baseline else ""
    print(f"  {label:<62} {n / seconds:>12,.0f} lines/s{extra}")


def core_queue(n: int) -> None:
    print(f"1. core output queue, {n} timed lines")
    lines = [encode_value("ab", 1e-3 * i).encode() + b"\n" for i in range(n)]
    t0 = time.perf_counter()
    plain: list[tuple[float, bytes]] = []
    for i, line in enumerate(lines):
        plain.append((float(i + 1), line))
    while plain:
        plain.pop(0)
    base = time.perf_counter() - t0
    row("baseline: list append + pop(0)", base, n)
    clock = VirtualClock()
    core = EmStat4Sim("bs-core", clock=clock, world=SimpleWorld())
    t0 = time.perf_counter()
    for i, line in enumerate(lines):
        core.emit(line, at=float(i + 1))
    got = 0
    for _ in range(n):
        clock.sleep(1.0)
        core.available()
        got += len(core.read())
    row("DeviceCore.emit(at=...) then available() + read() per line", time.perf_counter() - t0, n, base)
    assert got == sum(map(len, lines))


def ocp(n: int) -> None:
    print(f"2. EmStat4 OCP, {n} points over labsim:// (virtual clock)")
    lines = [f"P{encode_value('ab', 1e-4 * i, '10')}\n" for i in range(n)]
    t0 = time.perf_counter()
    for line in lines:
        decode_package(line)
    base = time.perf_counter() - t0
    row("baseline: decode_package of the same lines", base, n)
    clock = VirtualClock()
    registry.register("bs-es", EmStat4Sim("bs-es", clock=clock, world=SimpleWorld()))
    try:
        d = EmStat4(SerialTransport("eis", "labsim://bs-es", EmStat4.SERIAL, clock=clock, timeout=1.0))
        d.connect()
        t0 = time.perf_counter()
        trace = d.ocp(float(n), 1.0)
        row("EmStat4.ocp(n s, every 1 s): script, stream, decode", time.perf_counter() - t0, n, base)
        assert len(trace.t) == n
    finally:
        registry.unregister("bs-es")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=3600)
    args = parser.parse_args()
    core_queue(args.points)
    ocp(args.points)


if __name__ == "__main__":
    main()
