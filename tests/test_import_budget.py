"""Start-up budget (issue 18 item 3): commands import only what they use. `labctl --help` and `labctl
version` must not pull in the store (SQLAlchemy), numpy, scipy, pint, the transports (pyserial, pyvisa) or
the simulators; `validate` needs no store or simulators; `runs list` on SQLite needs no SQLAlchemy, unit
registry, numpy or simulators. Read from a fresh process started with `python -X importtime` (which names the
import chain of a module that should not be there), so a heavy import creeping into the start path fails
here; the timings themselves are measured by benchmarks/bench_startup.py, never asserted in a test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("sqlalchemy", "numpy", "scipy", "pint", "serial", "pyvisa", "labctl.simulators", "labctl.store",
         "labctl.engine", "alembic", "uncertainties")


CHILD = """
import atexit, json, sys
path = sys.argv.pop(1)
def dump():
    with open(path, "w") as fh:
        json.dump(sorted(k for k, v in sys.modules.items() if v is not None), fh)
atexit.register(dump)
sys.argv = ["labctl"] + sys.argv[1:]
from labctl.cli import main
main()
"""


def imported(*args: str, tmp_path: Path, **extra: str) -> set[str]:
    """Top-level packages and labctl subpackages loaded (in `sys.modules` at exit: an import that pint only
    attempted does not count) by `labctl *args` in a fresh process started with `-X importtime`."""
    env = {**os.environ, "LABCTL_AUDIT_KEY": str(tmp_path / "audit.key"), **extra}
    env.pop("LABCTL_DB", None)
    out = tmp_path / "modules.json"
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", CHILD, str(out), *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    REPORTS[args] = r.stderr
    names = set()
    for name in json.loads(out.read_text()):
        parts = name.split(".")
        names.add(parts[0])
        if parts[0] == "labctl" and len(parts) > 1:
            names.add(".".join(parts[:2]))
    return names


REPORTS: dict[tuple[str, ...], str] = {}


def chain(report: str, module: str) -> str:
    """From `-X importtime`: who imported `module` (its line and each parent's, outermost last)."""
    lines = [ln for ln in report.splitlines() if ln.startswith("import time:") and "|" in ln]
    for i, ln in enumerate(lines):
        name = ln.rsplit("|", 1)[1]
        if name.strip() == module or name.strip().startswith(module + "."):
            depth, out = len(name) - len(name.lstrip()), [name.strip()]
            for parent in lines[i + 1:]:
                pname = parent.rsplit("|", 1)[1]
                if len(pname) - len(pname.lstrip()) < depth:
                    depth = len(pname) - len(pname.lstrip())
                    out.append(pname.strip())
            return " <- ".join(out)
    return module


def heavy(names: set[str], allowed: tuple[str, ...] = ()) -> list[str]:
    found = sorted(h for h in HEAVY if h not in allowed and h in names)
    report = next(reversed(REPORTS.values()), "")
    return [chain(report, h) for h in found]


@pytest.mark.parametrize("args", [("--help",), ("version",), ("runs", "--help"), ("run", "--help"),
                                  ("sim", "--help"), ("audit", "--help")])
def test_help_and_version_import_nothing_heavy(args: tuple[str, ...], tmp_path: Path) -> None:
    assert heavy(imported(*args, tmp_path=tmp_path)) == []


def test_version_needs_neither_typer_nor_rich(tmp_path: Path) -> None:
    names = imported("version", tmp_path=tmp_path)
    assert "typer" not in names and "rich" not in names


def test_validate_needs_no_store_or_simulators(tmp_path: Path) -> None:
    cache = {"XDG_CACHE_HOME": str(tmp_path / "cache")}  # a first start with no unit factors stored yet
    names = imported("validate", "protocols/eis.yaml", tmp_path=tmp_path, **cache)
    assert "pint" in names  # it does parse quantities
    # pint brings numpy and probes scipy; its optional dask/uncertainties integrations are kept out
    assert heavy(names, allowed=("pint", "numpy", "scipy")) == []
    assert "dask" not in names


def test_validate_with_stored_unit_factors_needs_no_pint(tmp_path: Path) -> None:
    """Once pint's factors for the file's units are stored (labctl.units), validate parses without pint; numpy
    is still imported by the step modules (labctl.steps.*)."""
    cache = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    for protocol in ("protocols/eis.yaml", "protocols/li-in-alloy-cycle.yaml"):
        imported("validate", protocol, tmp_path=tmp_path, **cache)
        names = imported("validate", protocol, tmp_path=tmp_path, **cache)
        assert heavy(names, allowed=("numpy",)) == [], protocol
        assert "pint" not in names and "typer" in names
        # only validate's own command group is built (labctl.cli.COMMANDS)
        modules = set(json.loads((tmp_path / "modules.json").read_text()))
        assert sorted(m for m in modules if m.startswith("labctl.cli.")) == ["labctl.cli.output",
                                                                             "labctl.cli.protocol_cmds"]


def test_runs_list_needs_no_units_or_simulators(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labctl.store import Store

    url = f"sqlite:///{tmp_path / 'x.db'}"
    monkeypatch.setenv("LABCTL_AUDIT_KEY", str(tmp_path / "audit.key"))
    Store.open(url).close()  # created and migrated: a later open needs no alembic
    names = imported("runs", "list", "--db", url, tmp_path=tmp_path)
    assert "sqlite3" in names  # read through labctl.store.readonly
    # nor SQLAlchemy: a SQLite store at the newest revision is read with the standard library
    assert heavy(names, allowed=("labctl.store",)) == []


def test_store_head_revision_without_alembic() -> None:
    """`runs list` skips alembic when the database is at the newest revision: the revision read from the
    migration files must be alembic's own head."""
    from alembic.script import ScriptDirectory

    from labctl.store import migrate

    assert migrate.head_revision() == ScriptDirectory.from_config(migrate.config()).get_current_head()
