"""The plugin contract: entry points found through real dist-info directories on the path (as pip leaves
them), API versions checked, broken plug-ins reported and never fatal, the example plug-in listed and
recorded in a dry run's provenance."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "plugin"


def make_site(site: Path, name: str, version: str, entry_points: dict[str, dict[str, str]],
              modules: dict[str, str] | None = None, packages: list[Path] | None = None) -> Path:
    """A directory like `pip install --target` leaves: the modules and `<name>-<version>.dist-info`."""
    site.mkdir(parents=True, exist_ok=True)
    for mod, text in (modules or {}).items():
        (site / f"{mod}.py").write_text(text)
    for pkg in packages or []:
        shutil.copytree(pkg, site / pkg.name)
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = []
    for group, eps in entry_points.items():
        lines.append(f"[{group}]")
        lines += [f"{k} = {v}" for k, v in eps.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return site


GOOD = '''
LABCTL_PLUGIN_API = 1
from labctl.drivers.tpg361 import Tpg361

class OtherGauge(Tpg361):
    NAME = "othergauge"
'''
OLD = "LABCTL_PLUGIN_API = 2\nfrom labctl.drivers.tpg361 import Tpg361 as Gauge\n"
UNDECLARED = "from labctl.drivers.tpg361 import Tpg361 as Gauge\n"
BROKEN = "import labctl_no_such_module  # noqa\n"


@pytest.fixture(scope="module")
def fake_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_site(
        tmp_path_factory.mktemp("site"), "fake-plugins", "1.2.3",
        {"labctl.drivers": {"othergauge": "goodplug:OtherGauge", "oldgauge": "oldplug:Gauge",
                            "plaingauge": "plainplug:Gauge", "brokengauge": "brokenplug:Gauge",
                            "tpg361": "goodplug:OtherGauge"},
         "labctl.planners": {"bayes": "goodplug:OtherGauge"}},
        {"goodplug": GOOD, "oldplug": OLD, "plainplug": UNDECLARED, "brokenplug": BROKEN},
    )


@pytest.fixture(scope="module")
def glovebox_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example plug-in as installed: its package and the dist-info its pyproject.toml describes."""
    meta = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]
    return make_site(tmp_path_factory.mktemp("glovebox"), meta["name"], meta["version"], meta["entry-points"],
                     packages=[PLUGIN / "src" / "labctl_glovebox"])


def labctl(*args: str, site: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(site)]), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "labctl", *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=cwd)


def test_scan_checks_the_declared_api(fake_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labctl import plugins

    monkeypatch.syspath_prepend(str(fake_site))
    found = {e.name: e for e in plugins.scan() if e.distribution == "fake-plugins"}
    assert found["othergauge"].loaded and found["othergauge"].version == "1.2.3"
    assert found["othergauge"].provides == ("driver for role gauge (simulator "
                                            "labctl.simulators.tpg361:Tpg361Sim)")
    assert not found["oldgauge"].loaded
    assert "written for plugin API 2; this labctl implements 1" in found["oldgauge"].problem
    assert "declares no LABCTL_PLUGIN_API" in found["plaingauge"].problem
    assert "failed to import: ModuleNotFoundError" in found["brokengauge"].problem
    assert not found["bayes"].loaded and "not a campaign planner" in found["bayes"].problem
    assert plugins.versions()["plugin:fake-plugins"] == "1.2.3"


def test_registry_keeps_only_good_plugins(fake_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from labctl.drivers import registry

    monkeypatch.syspath_prepend(str(fake_site))
    registry._entries.cache_clear()
    try:
        names = registry.entries()
        assert "othergauge" in names and registry.driver_class("othergauge").NAME == "othergauge"
        assert not {"oldgauge", "plaingauge", "brokengauge"} & set(names)
        assert registry.entry("tpg361").driver == "labctl.drivers.tpg361:Tpg361"  # a built-in stays
        problems = registry.plugin_problems()
        assert any("oldgauge" in p and "plugin API 2" in p for p in problems)
        assert any("brokengauge" in p and "labctl_no_such_module" in p for p in problems)
        assert any("'tpg361' reuses a built-in" in p for p in problems)
    finally:
        registry._entries.cache_clear()


def test_cli_lists_broken_plugins_and_keeps_working(fake_site: Path) -> None:
    out = labctl("plugins", "list", "--json", site=fake_site)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)["plugins"]}
    assert rows["othergauge"]["loaded"] and not rows["brokengauge"]["loaded"]
    assert not rows["tpg361"]["loaded"] and "reuses a built-in" in rows["tpg361"]["problem"]
    human = labctl("plugins", "list", site=fake_site)
    assert human.returncode == 0 and "not loaded" in human.stdout and "fake-plugins 1.2.3" in human.stdout
    plan = labctl("plan", str(ROOT / "protocols" / "eis.yaml"), "--station",
                  str(ROOT / "stations" / "simulated.yaml"), site=fake_site)
    assert plan.returncode == 0, plan.stdout + plan.stderr


def test_example_plugin_is_listed(glovebox_site: Path) -> None:
    out = labctl("plugins", "list", "--json", site=glovebox_site)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)["plugins"]}
    assert {n: (r["loaded"], r["distribution"], r["version"]) for n, r in rows.items()} == {
        "teledyne3000ta": (True, "labctl-glovebox", "0.1.0"),
        "vaisala_dmt143": (True, "labctl-glovebox", "0.1.0"),
        "glovebox_check": (True, "labctl-glovebox", "0.1.0"),
    }
    assert rows["glovebox_check"]["provides"] == "step kind glovebox_check (roles glovebox.o2, glovebox.h2o)"


def test_example_plugin_dry_run_records_it_in_provenance(glovebox_site: Path, tmp_path: Path) -> None:
    db = tmp_path / "lab.db"
    out = labctl("run", str(PLUGIN / "protocols" / "glovebox-ocv.yaml"), "--station",
                 str(PLUGIN / "stations" / "glovebox.yaml"), "--simulate", "--seed", "4", "--json",
                 "--db", str(db), site=glovebox_site)
    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads(out.stdout)
    assert summary["state"] == "completed"
    from labctl.store import Store

    with Store.open(str(db)) as store:
        run = store.run(summary["run_id"])
        check = run["steps"][0]
        data = store.measurements(run["id"], "glovebox")
        io = store.io(run["id"], "glovebox.h2o")
    assert run["versions"]["plugin:labctl-glovebox"] == "0.1.0"
    assert check["kind"] == "glovebox_check" and check["status"] == "done"
    assert 0.3 < check["achieved"]["o2_ppm_max"] < 0.7 and 0.5 < check["achieved"]["h2o_ppm_max"] < 1.0
    assert len(data["o2"]) == 3 and all(1e-7 < x < 1e-6 for x in data["o2"])
    sent = [r["bytes"] for r in io if r["direction"] == "tx"]
    # identify, the safe-state check at preflight, the three samples, the safe-state check at the end
    assert sent == [b"VERS\r", b"ERRS\r", b"SEND\r"] + [b"SEND\r"] * 3 + [b"ERRS\r", b"SEND\r"]


def test_example_plugin_fails_a_wet_box(glovebox_site: Path, tmp_path: Path) -> None:
    """max_h2o below what the simulated box holds (0.8 ppm): the step fails naming H2O, nothing else runs."""
    out = labctl("run", str(PLUGIN / "protocols" / "glovebox-ocv.yaml"), "--station",
                 str(PLUGIN / "stations" / "glovebox.yaml"), "--simulate", "--seed", "4", "--json",
                 "-p", "max_h2o=0.1 ppm", "--db", str(tmp_path / "lab.db"), site=glovebox_site)
    assert out.returncode == 1, out.stdout + out.stderr
    summary = json.loads(out.stdout)
    assert summary["state"] == "failed"
    assert "glovebox atmosphere not fit for lithium: H2O" in summary["reason"]
    assert "above max_h2o 0.1 ppm" in summary["reason"] and "O2 " not in summary["reason"]
