"""Hostile protocol files and parameters reach no instrument: rejected before any byte is sent.

Every simulator of the simulated bench is registered (listening) before `labctl run --simulate` is given
the hostile input; afterwards every simulator must have received nothing, the exit code must be 2 and the
output must carry no traceback.
"""

from __future__ import annotations

import os
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


# -- hostile paths: the file itself is the attack (issue 14.11) ------------------------------------------


def _hostile_path(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """A path of `kind` for a protocol or station file, and what the refusal must say about it."""
    path = tmp_path / f"{kind}.yaml"
    if kind == "dev-zero symlink":
        path.symlink_to("/dev/zero")  # read to the end, it never ends
        return path, "is a character device (/dev/zero), not a regular file"
    if kind == "fifo":
        os.mkfifo(path)  # open() for reading blocks until a writer comes: none will
        return path, "is a FIFO (named pipe), not a regular file"
    if kind == "directory":
        path.mkdir()
        return path, "is a directory, not a regular file"
    if kind == "huge sparse file":
        with open(path, "wb") as fh:
            fh.truncate(10 * 1024**3)  # 10 GiB of holes: refused by its size, never read
        return path, f"file is {10 * 1024**3} bytes; the limit is 1000000 (1 MB)"
    if kind == "symlink loop":
        path.symlink_to(path)
        return path, "cannot read the file"
    if kind == "missing":
        return path, "cannot read the file: no such file"
    raise AssertionError(kind)


PATH_KINDS = ["dev-zero symlink", "fifo", "directory", "huge sparse file", "symlink loop", "missing"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", PATH_KINDS)
@pytest.mark.parametrize("command", ["validate", "plan", "plan --station", "run", "run --station"])
def test_hostile_path_is_refused_without_reading_it(tmp_path, monkeypatch, capsys, listening_bench, kind,
                                                   command):
    """`validate`, `plan` and `run` given a device, a FIFO, a directory, a 10 GiB file, a symlink loop or
    nothing, as the protocol or the station: exit 2 at once naming the file and what it is, nothing read."""
    bad, says = _hostile_path(tmp_path, kind)
    good = tmp_path / "good.yaml"
    good.write_text(HEADER + "steps:\n" + WAIT, encoding="utf-8")
    verb, _, option = command.partition(" ")
    protocol, station = (good, bad) if option else (bad, STATION)
    args = [verb, str(protocol)]
    if (verb == "plan" and option) or verb == "run":
        args += ["--station", str(station)]
    if verb == "run":
        args += ["--simulate", "--db", f"sqlite:///{tmp_path / 'h.db'}"]
    monkeypatch.setattr(sys, "argv", ["labctl", *args])
    with pytest.raises(SystemExit) as stop:
        main()
    out = capsys.readouterr()
    text = " ".join((out.out + out.err).split())
    assert stop.value.code == 2, text
    assert "Traceback" not in text
    assert f"{bad}: {says}" in text, text
    assert {n: c.received for n, c in listening_bench.items() if c.received} == {}
    assert not (tmp_path / "h.db").exists()


def test_read_bounded_limits(tmp_path):
    from labctl.textfile import FileRefused, read_bounded

    path = tmp_path / "f.yaml"
    path.write_bytes(b"x" * 100)
    assert read_bounded(path, limit=100) == b"x" * 100
    with pytest.raises(FileRefused, match="file is 100 bytes; the limit is 99"):
        read_bounded(path, limit=99)
    link = tmp_path / "link.yaml"
    link.symlink_to(path)  # a symlink to a regular file is fine
    assert read_bounded(link, limit=100) == b"x" * 100
