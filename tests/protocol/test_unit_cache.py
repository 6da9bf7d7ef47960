"""The unit registry's disk cache (issue 18 item 3): filled in a private folder and renamed into place whole,
used on the next start, and a damaged cache never stops labctl (it is set aside and rebuilt)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pint

# `ureg`: the registry itself (a parse alone may be served by the stored factors, without pint)
PROBE = "from labctl.units import parse, ureg; print(parse('2 mA/cm^2', 'current_density'))"


def start(cache_home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "XDG_CACHE_HOME": str(cache_home), **env}
    cmd = [sys.executable, "-c", PROBE]
    return subprocess.run(cmd, env=full, capture_output=True, text=True, timeout=120)


def test_cache_is_filled_whole_and_reused(tmp_path: Path) -> None:
    r = start(tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "20.0", r.stderr
    folder = tmp_path / "labctl" / f"pint-{pint.__version__}"
    pickles = sorted(folder.glob("*.pickle"))
    assert pickles, list(tmp_path.rglob("*"))
    folders = [p.name for p in (tmp_path / "labctl").iterdir() if p.is_dir()]
    assert folders == [folder.name]  # no half-filled private folder
    stamps = {p: p.stat().st_mtime_ns for p in pickles}
    r = start(tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "20.0", r.stderr
    assert {p: p.stat().st_mtime_ns for p in folder.glob("*.pickle")} == stamps  # read, not rewritten


def test_a_damaged_cache_is_rebuilt(tmp_path: Path) -> None:
    assert start(tmp_path).returncode == 0
    folder = tmp_path / "labctl" / f"pint-{pint.__version__}"
    for p in folder.glob("*.pickle"):  # as if killed mid-write
        p.write_bytes(p.read_bytes()[: 100])
    r = start(tmp_path)
    assert r.returncode == 0 and r.stdout.strip() == "20.0", r.stderr
    assert all(p.stat().st_size > 100 for p in folder.glob("*.pickle"))
    assert start(tmp_path).returncode == 0


def test_cache_can_be_disabled_or_unwritable(tmp_path: Path) -> None:
    r = start(tmp_path, LABCTL_UNIT_CACHE="0")
    assert r.returncode == 0 and not (tmp_path / "labctl").exists()
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    r = start(blocked)  # the cache dir cannot be created: the registry is built without it
    assert r.returncode == 0 and r.stdout.strip() == "20.0", r.stderr


def test_pint_without_its_optional_integrations_leaves_them_importable() -> None:
    """labctl keeps pint from importing dask/uncertainties at start-up; other code can still import them."""
    code = ("import sys, importlib.util\n"
            "import labctl.units\n"
            "assert 'dask' not in sys.modules and 'uncertainties' not in sys.modules\n"
            "assert sys.modules.get('dask', 0) is not None\n"
            "print(importlib.util.find_spec('uncertainties') is not None)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    if r.stdout.strip() == "True":  # installed here: still importable after pint
        r = subprocess.run([sys.executable, "-c", "import labctl.units, uncertainties"], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
