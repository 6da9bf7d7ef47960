"""`labctl sim serve`: the simulated bench on the wall clock, reachable from other programs (TCP or ptys)."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated

import typer

from labctl.errors import ConfigError

sim_app = typer.Typer(help="Simulated instruments.", no_args_is_help=True)
DEFAULT_STATION = Path("stations/simulated.yaml")


@sim_app.command("serve")
def serve(
    station: Annotated[Path, typer.Option("--station", "-s", help="Station file.")] = DEFAULT_STATION,
    tcp: Annotated[bool, typer.Option("--tcp", help="Every instrument on 127.0.0.1 (default).")] = False,
    pty: Annotated[bool, typer.Option("--pty", help="Serial instruments on pseudo-terminals.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the simulated world.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the addresses as one JSON line.")] = False,
    station_out: Annotated[
        Path | None,
        typer.Option("--station-out", help="Write a station file whose links are these simulators."),
    ] = None,
) -> None:
    """Start the station's simulators on the real clock, print where each role is, run until Ctrl-C."""
    from labctl.cli import console
    from labctl.clock import RealClock
    from labctl.simulators.bench import SimulatedBench
    from labctl.station import load_station

    if tcp and pty:
        raise ConfigError("choose one of --tcp and --pty")
    if not station.is_file():
        raise ConfigError(f"{station}: no such station file")
    model = load_station(station)
    clock = RealClock()
    bench = SimulatedBench(model, clock=clock, world=_world(model, clock, seed), seed=seed)
    bench.start("pty" if pty else "tcp")
    stop = threading.Event()  # Ctrl-C / SIGTERM stop serving, whenever they come (even while printing)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        addresses = bench.addresses()
        if station_out is not None:
            write_station(station, addresses, station_out)
        if as_json:
            sys.stdout.write(json.dumps({"roles": addresses, "unavailable": bench.unavailable}) + "\n")
        else:
            from labctl.cli.output import Col, print_table

            rows = []
            for role, where in sorted(addresses.items()):
                kind, value = next(iter(where.items()))
                rows.append((role, model.instruments[role].driver, f"{kind}: {value}"))
            for role, why in sorted(bench.unavailable.items()):
                rows.append((role, model.instruments[role].driver, f"not simulated: {why}"))
            cols = (Col("role", key=True), Col("driver"), Col("address", wrap=True))
            print_table(console, cols, rows, title=f"{model.name}: simulated instruments (Ctrl-C stops)")
        sys.stdout.flush()
        while not stop.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        bench.close()


def write_station(source: Path, addresses: dict[str, dict[str, str]], out: Path) -> None:
    """`source` with each served role's `port`/`visa` replaced by where it is served (comments kept)."""
    from ruamel.yaml import YAML

    yaml = YAML()  # round trip: the copy keeps the source's comments, limits and geometry
    doc = yaml.load(source.read_text(encoding="utf-8"))
    for role, where in addresses.items():
        spec = doc["instruments"][role]
        for key in ("port", "visa"):
            spec.pop(key, None)
        spec.update(where)
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(f"# written by `labctl sim serve` from {source}: the simulators' addresses\n")
        yaml.dump(doc, fh)
    tmp.replace(out)  # whole file or none: a reader polling for it never sees half


def _world(model: object, clock: object, seed: int) -> object:
    """The physical world for the station, as a dry run builds it (an error names the station)."""
    from labctl.simulators.dryrun import make_world

    return make_world(model, clock=clock, seed=seed)  # type: ignore[arg-type]


def register(app: typer.Typer) -> None:
    """Add `labctl sim ...` to `app`."""
    app.add_typer(sim_app, name="sim")
