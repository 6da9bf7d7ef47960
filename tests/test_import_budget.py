"""Start-up budget (issue 18 item 3): commands import only what they use. `labctl --help` and `labctl version`
must not pull in the store (SQLAlchemy), numpy, scipy, pint, the transports (pyserial, pyvisa) or the
simulators; `validate` needs no store or simulators; `runs list` needs no unit registry or simulators. Read
from `python -X importtime` in a fresh process, so a heavy import that creeps into the start path fails here
(the timings themselves are measured by benchmarks/bench_startup.py, never asserted in a test)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("sqlalchemy", "numpy", "scipy", "pint", "serial", "pyvisa", "labctl.simulators", "labctl.store",
         "labctl.engine", "alembic", "uncertainties")


def imported(*args: str, tmp_path: Path) -> set[str]:
    """Top-level packages and labctl subpackages imported by `python -m labctl *args`."""
    env = {**os.environ, "LABCTL_AUDIT_KEY": str(tmp_path / "audit.key")}
    env.pop("LABCTL_DB", None)
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "labctl", *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    names = set()
    for line in r.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            parts = name.split(".")
            names.add(parts[0])
            if parts[0] == "labctl" and len(parts) > 1:
                names.add(".".join(parts[:2]))
    return names


def heavy(names: set[str], allowed: tuple[str, ...] = ()) -> list[str]:
    return sorted(h for h in HEAVY if h not in allowed and h in names)


@pytest.mark.parametrize("args", [("--help",), ("version",), ("runs", "--help"), ("run", "--help"),
                                  ("sim", "--help"), ("audit", "--help")])
def test_help_and_version_import_nothing_heavy(args: tuple[str, ...], tmp_path: Path) -> None:
    assert heavy(imported(*args, tmp_path=tmp_path)) == []


def test_version_needs_neither_typer_nor_rich(tmp_path: Path) -> None:
    names = imported("version", tmp_path=tmp_path)
    assert "typer" not in names and "rich" not in names


def test_validate_needs_no_store_or_simulators(tmp_path: Path) -> None:
    names = imported("validate", "protocols/eis.yaml", tmp_path=tmp_path)
    assert "pint" in names  # it does parse quantities
    # pint brings numpy, and its optional `uncertainties` support brings a sliver of scipy
    assert heavy(names, allowed=("pint", "numpy", "uncertainties", "scipy")) == []


def test_runs_list_needs_no_units_or_simulators(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labctl.store import Store

    url = f"sqlite:///{tmp_path / 'x.db'}"
    monkeypatch.setenv("LABCTL_AUDIT_KEY", str(tmp_path / "audit.key"))
    Store.open(url).close()  # created and migrated: a later open needs no alembic
    names = imported("runs", "list", "--db", url, tmp_path=tmp_path)
    assert "sqlalchemy" in names
    assert [n for n in ("pint", "scipy", "labctl.simulators", "labctl.engine", "alembic") if n in names] == []


def test_store_head_revision_without_alembic() -> None:
    """`runs list` skips alembic when the database is at the newest revision: the revision read from the
    migration files must be alembic's own head."""
    from alembic.script import ScriptDirectory

    from labctl.store import migrate

    assert migrate.head_revision() == ScriptDirectory.from_config(migrate.config()).get_current_head()
