"""Hostile protocol files and parameters reach no instrument: rejected before any byte is sent.

Every simulator of the simulated bench is registered (listening) before `labctl run --simulate` is given
the hostile input; afterwards every simulator must have received nothing, the exit code must be 2 and the
output must carry no traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from labctl.cli import main
from labctl.clock import VirtualClock
from labctl.drivers import registry as drivers
from labctl.simulators import registry
from labctl.simulators.world import SimpleWorld
from labctl.station import load_station

ROOT = Path(__file__).resolve().parents[2]
STATION = ROOT / "stations" / "simulated.yaml"
HEADER = "labctl: 1\nname: hostile\n"
WAIT = "  - wait: {duration: 1 s}\n"


def _steps(n: int) -> str:
    return HEADER + "steps:\n" + WAIT * n


HOSTILE = {
    "huge file (2 MB)": HEADER + "# " + "x" * 2_000_000 + "\nsteps:\n" + WAIT,
    "deep nesting": HEADER + "parameters: " + "[" * 5000 + "]" * 5000 + "\nsteps:\n" + WAIT,
    "a million steps": _steps(1_000_000),
    "alias bomb": HEADER + "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
                   "c: [*b, *b, *b, *b, *b, *b, *b, *b]\nsteps:\n" + WAIT,
    "python tag": HEADER + "steps:\n  - !!python/object/apply:os.system [echo pwned]\n",
    "NaN quantity": HEADER + "steps:\n  - wait: {duration: .nan}\n",
    "infinite quantity": HEADER + "steps:\n  - wait: {duration: 1e999 s}\n",
    "SCPI injection in a sample id": HEADER + 'sample: {id: "x\\n*RST"}\nsteps:\n' + WAIT,
    "command separator in a bath name": HEADER + "steps:\n  - immerse: {bath: ';OUTP ON', depth: 1 mm, "
                                        "speed: 1 mm/s, time: 1 s}\n",
    "terminator in a salt": HEADER + 'steps:\n  - prepare_bath: {bath: alloy, salt: "InCl3\\r\\n01RUN", '
                            "solvent: THF, concentration: 0.1 M, volume: 1 mL}\n",
}


@pytest.fixture
def listening_bench():
    """Every simulator of the simulated station, registered under its labsim:// name, counting input."""
    station = load_station(STATION)
    clock, world, cores = VirtualClock(), SimpleWorld(), {}
    for spec in station.instruments.values():
        link = spec.port or spec.visa or ""
        name = link.split("://", 1)[-1].split("::", 1)[0]
        if name in cores:
            continue
        try:
            cls = drivers.simulator_class(spec.driver)
        except (ImportError, AttributeError):
            continue
        cores[name] = cls(name, clock=clock, world=world, seed=0)
        registry.register(name, cores[name])
    yield cores
    for name in cores:
        registry.unregister(name)


def _run(tmp_path: Path, monkeypatch, capsys, text: str, *extra: str) -> tuple[int, str]:
    """`labctl run FILE --simulate ...` through the real entry point: (exit code, everything printed)."""
    path = tmp_path / "hostile.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["labctl", "run", str(path), "--simulate", "--station", str(STATION),
                                      "--db", f"sqlite:///{tmp_path / 'h.db'}", *extra])
    with pytest.raises(SystemExit) as stop:
        main()
    out = capsys.readouterr()
    return int(stop.value.code or 0), out.out + out.err


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_file_is_rejected_before_any_byte(tmp_path, monkeypatch, capsys, listening_bench, name):
    code, output = _run(tmp_path, monkeypatch, capsys, HOSTILE[name])
    assert code == 2, output
    assert "Traceback" not in output
    assert "hostile.yaml" in output.replace("\n", "")  # rich wraps long paths
    assert listening_bench, "no simulator was listening"
    assert {n: c.received for n, c in listening_bench.items() if c.received} == {}


@pytest.mark.parametrize("value", ["60 s\n*RST", "60 s;OUTP ON", "${immersion_time}"])
def test_hostile_parameter_override_is_rejected(tmp_path, monkeypatch, capsys, listening_bench, value):
    text = (HEADER + "parameters: {immersion_time: 60 s}\nsteps:\n"
            '  - wait: {duration: "${immersion_time}"}\n')
    code, output = _run(tmp_path, monkeypatch, capsys, text, "-p", f"immersion_time={value}")
    assert code == 2, output
    assert "Traceback" not in output
    assert {n: c.received for n, c in listening_bench.items() if c.received} == {}
