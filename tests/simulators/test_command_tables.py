"""The command tables (docs/instruments/<driver>.md) against the simulators: every implemented row's probe is
answered without the instrument's "unknown/invalid command" reply (the core's `rejects`), every row has a
Status, every `not implemented` row says why; every simulator core can tell its own rejection.

A table not written yet is skipped (with the reason), so each simulator's table makes this stricter when it
lands."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from labctl.clock import VirtualClock
from labctl.drivers import registry

DOCS = Path(__file__).resolve().parents[2] / "docs" / "instruments"
COLUMNS = ["Command", "Manual", "Status", "Probe", "Notes"]
STATUSES = ("implemented", "not implemented")
#: virtual seconds a probe's replies may take (a homing cycle, a settling reading, a short measurement)
SETTLE_S = 30.0


@dataclass(frozen=True)
class Row:
    line: int
    command: str
    manual: str
    status: str
    probe: bytes | None
    notes: str

    def where(self, doc: Path) -> str:
        return f"{doc.name}:{self.line} ({self.command})"


def _cells(line: str) -> list[str]:
    """A Markdown table row's cells; `\\|` is a literal bar inside a cell."""
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", inner)]


def _probe(cell: str, where: str) -> bytes | None:
    if not cell:
        return None
    m = re.fullmatch(r"`(b(['\"]).*\2)`", cell)
    if m is None:
        raise AssertionError(f"{where}: Probe must be a Python bytes literal in backticks, got {cell!r}")
    value = ast.literal_eval(m.group(1))
    if not isinstance(value, bytes) or not value:
        raise AssertionError(f"{where}: Probe {cell!r} is not a non-empty bytes literal")
    return value


def parse_table(doc: Path) -> list[Row]:
    """The one command table of `doc`; AssertionError naming file:line for anything off-format."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    tables = [i for i, line in enumerate(lines) if line.lstrip().startswith("|")
              and (i == 0 or not lines[i - 1].lstrip().startswith("|"))]
    assert len(tables) == 1, f"{doc.name}: expected exactly one table, found {len(tables)}"
    start = tables[0]
    header = _cells(lines[start])
    assert header == COLUMNS, f"{doc.name}:{start + 1}: columns {header}, expected {COLUMNS}"
    assert re.fullmatch(r"\|?(\s*:?-+:?\s*\|)+\s*:?-*:?\s*", lines[start + 1].strip()), (
        f"{doc.name}:{start + 2}: not a Markdown table separator")
    rows = []
    for i in range(start + 2, len(lines)):
        if not lines[i].lstrip().startswith("|"):
            break
        cells = _cells(lines[i])
        where = f"{doc.name}:{i + 1}"
        assert len(cells) == len(COLUMNS), f"{where}: {len(cells)} cells, expected {len(COLUMNS)}"
        command, manual, status, probe, notes = cells
        rows.append(Row(i + 1, command.replace("`", ""), manual, status, _probe(probe, where), notes))
    assert rows, f"{doc.name}: the table has no rows"
    return rows


def _doc(name: str) -> Path:
    doc = DOCS / f"{name}.md"
    if not doc.exists():
        pytest.skip(f"docs/instruments/{name}.md not written yet (its simulator's engineer adds it)")
    return doc


DRIVERS = sorted(registry.BUILTIN)


@pytest.mark.parametrize("name", DRIVERS)
def test_table_format_status_and_reasons(name):
    doc = _doc(name)
    rows = parse_table(doc)
    problems = []
    for row in rows:
        if not row.command:
            problems.append(f"{row.where(doc)}: no Command")
        if not row.manual:
            problems.append(f"{row.where(doc)}: no Manual page or section")
        if row.status not in STATUSES:
            problems.append(f"{row.where(doc)}: Status {row.status!r} is not one of {STATUSES}")
        elif row.status == "not implemented":
            if row.probe is not None:
                problems.append(f"{row.where(doc)}: a `not implemented` row has a Probe")
            if len(row.notes) < 10:
                problems.append(f"{row.where(doc)}: a `not implemented` row must say why in Notes")
        elif row.probe is None and len(row.notes) < 10:
            problems.append(f"{row.where(doc)}: implemented without a Probe: Notes must say why none is safe")
    assert not problems, "\n".join(problems)
    assert any(r.status == "implemented" and r.probe for r in rows), f"{doc.name}: no probe at all"


def _core(name: str):
    from labctl.simulators.world import SimpleWorld

    clock = VirtualClock()
    core = registry.simulator_class(name)(f"table-{name}", clock=clock, world=SimpleWorld())
    clock.sleep(SETTLE_S)   # past any boot time
    core.read()             # a power-up banner is not a reply to the probe
    return core, clock


@pytest.mark.parametrize("name", DRIVERS)
def test_every_implemented_probe_is_not_rejected(name):
    doc = _doc(name)
    cls = registry.simulator_class(name)
    assert callable(getattr(cls, "rejects", None)), f"{cls.__name__} has no rejects(reply)"
    rejected = []
    for row in parse_table(doc):
        if row.status != "implemented" or row.probe is None:
            continue
        core, clock = _core(name)      # a fresh instrument per row: a probe's side effects stay its own
        core.write(row.probe)
        reply = core.read()
        clock.sleep(SETTLE_S)
        reply += core.read()
        if core.rejects(reply):
            rejected.append(f"{row.where(doc)}: probe {row.probe!r} rejected: {reply[:120]!r}")
    assert not rejected, "\n".join(rejected)


@pytest.mark.parametrize("name", DRIVERS)
def test_every_simulator_core_can_tell_its_rejection(name):
    cls = registry.simulator_class(name)
    if getattr(cls, "rejects", None) is None:
        if not (DOCS / f"{name}.md").exists():
            pytest.skip(f"{cls.__name__}.rejects not written yet (comes with docs/instruments/{name}.md)")
        pytest.fail(f"{cls.__name__} has a command table but no rejects(reply)")
    core, _clock = _core(name)
    assert isinstance(core.rejects(b""), bool)


def test_parse_table_names_file_and_line(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("intro\n\n| Command | Manual | Status | Probe | Notes |\n|---|---|---|---|---|\n"
                   "| `A` | p. 1 | implemented | `b\"A\\r\"` | reply |\n| `B` | p. 2 | maybe | | |\n"
                   "| `C\\|D` | p. 3 | implemented | `'C'` | |\n")
    with pytest.raises(AssertionError, match=r"x.md:7: Probe must be a Python bytes literal"):
        parse_table(doc)
    doc.write_text(doc.read_text().replace("`'C'`", "`b\"C|D\\n\"`".replace("|", "\\|")))
    rows = parse_table(doc)
    assert [r.probe for r in rows] == [b"A\r", None, b"C|D\n"] and rows[2].command == "C|D"
    assert [r.line for r in rows] == [5, 6, 7]
