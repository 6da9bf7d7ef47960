"""Campaign files: loading with file:line:col problems, designs (factorial, Sobol, LHS, replicates, seeded
order, blocks, cap), every point planned, the JSON Schema, and `labctl campaign validate|plan`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest

from labctl.campaign import CampaignFileError, campaign_schema, load_campaign
from labctl.campaign.design import make_design, plan_design
from labctl.units import quantity

from .conftest import ROOT

GRID = """factors:
  immersion_time: {range: [30 s, 120 s], count: 3}
  concentration: {levels: [0.05 M, 0.1 M]}
design: {kind: full_factorial, replicates: 2, seed: 7, block_by: concentration}
objectives: [{maximise: hours_to_failure}]
"""


def _problems(path: Path) -> list[str]:
    with pytest.raises(CampaignFileError) as info:
        load_campaign(path)
    assert "Traceback" not in str(info.value)
    return [str(p) for p in info.value.problems]


def test_example_campaigns_load_and_plan() -> None:
    for f in sorted((ROOT / "campaigns").glob("*.yaml")):
        c = load_campaign(f)
        d = plan_design(c, make_design(c))
        assert d.points and not d.failed, f


def test_full_factorial_replicates_blocks_and_seeded_order(write: Callable[[str], Path]) -> None:
    c = load_campaign(write(GRID))
    d = make_design(c)
    assert d.seed == 7 and len(d.points) == 12
    combos = {(p.values["immersion_time"], p.values["concentration"]) for p in d.points}
    assert combos == {(t, x) for t in ("30 s", "75 s", "120 s") for x in ("0.05 M", "0.1 M")}
    assert sorted((p.point, p.replicate) for p in d.points) == [(i, r) for i in range(6) for r in range(2)]
    blocks = [p.block for p in d.points]  # each block's runs are contiguous: one bath per block
    assert blocks[:6] == [blocks[0]] * 6 and blocks[6:] == [blocks[6]] * 6 and blocks[0] != blocks[6]
    assert all(p.values["concentration"] == p.block for p in d.points)
    again = make_design(load_campaign(write(GRID, "again.yaml")))
    assert [p.values for p in again.points] == [p.values for p in d.points]  # the seed reproduces the order
    other = make_design(load_campaign(write(GRID.replace("seed: 7", "seed: 8"), "other.yaml")))
    assert [p.values for p in other.points] != [p.values for p in d.points]


def test_unseeded_design_records_the_seed_it_drew(write: Callable[[str], Path]) -> None:
    c = load_campaign(write(GRID.replace("seed: 7, ", "")))
    d = make_design(c)
    assert isinstance(d.seed, int) and 0 <= d.seed < 2**32
    assert c.model.design.seed is None


@pytest.mark.parametrize("kind", ["sobol", "latin_hypercube"])
def test_space_filling_designs_stay_in_range(write: Callable[[str], Path], kind: str) -> None:
    body = f"""factors:
  immersion_time: {{range: [0.5 min, 120 s]}}
  concentration: {{levels: [0.05 M, 0.1 M, 0.2 M]}}
  cycles: {{range: [100, 300]}}
design: {{kind: {kind}, points: 16, seed: 3, randomise: false}}
"""
    d = make_design(load_campaign(write(body)))
    assert len(d.points) == 16 and [p.point for p in d.points] == list(range(16))
    times = [quantity(p.values["immersion_time"]).to("s").magnitude for p in d.points]
    assert all(30 - 1e-9 <= t <= 120 + 1e-9 for t in times)
    assert max(times) - min(times) > 45  # spread over the range, not one corner
    assert {p.values["concentration"] for p in d.points} == {"0.05 M", "0.1 M", "0.2 M"}
    cycles = [p.values["cycles"] for p in d.points]
    assert all(c.isdigit() and 100 <= int(c) <= 300 for c in cycles)  # an integer parameter stays whole
    assert [p.values for p in make_design(load_campaign(write(body, "b.yaml"))).points] == \
        [p.values for p in d.points]


def test_unknown_factor_is_reported_at_its_line(write: Callable[[str], Path]) -> None:
    probs = _problems(write("factors:\n  immersion_tme: {levels: [30 s]}\n"))
    assert len(probs) == 1
    assert ":7:3: factors.immersion_tme: unknown factor `immersion_tme`" in probs[0]
    assert "immersion_time" in probs[0]  # the parameters it could have meant


def test_unit_of_another_kind_is_reported(write: Callable[[str], Path]) -> None:
    probs = _problems(write("factors:\n  immersion_time: {range: [30 s, 2 mA]}\n"))
    assert any(":7:34: factors.immersion_time.range[1]: `2 mA` is not a duration" in p for p in probs), probs
    probs = _problems(write("factors:\n  concentration: {levels: [0.1 M, 5]}\n"))
    assert any("factors.concentration.levels[1]: `5` is not a concentration" in p for p in probs), probs
    probs = _problems(write("factors:\n  concentration: {categories: [low, high]}\n"))
    assert any("give `range` or `levels`, not `categories`" in p for p in probs), probs


def test_empty_range_and_schema_errors_all_at_once(write: Callable[[str], Path]) -> None:
    probs = _problems(write("factors:\n  immersion_time: {range: [2 min, 120 s]}\n"
                            "  concentration: {levels: [0.1 M], range: [0.1 M, 0.2 M]}\n"
                            "design: {kind: sobol}\nobjectives: [{maximise: beauty}]\n"))
    text = "\n".join(probs)
    assert "a factor needs exactly one of `range`, `levels` or `categories`" in text
    assert "a `sobol` design needs `points`" in text
    assert "objectives[0].maximise" in text
    probs = _problems(write("factors:\n  immersion_time: {range: [2 min, 120 s]}\n"))
    assert len(probs) == 1
    assert ":7:27: factors.immersion_time.range: empty range [2 min, 120 s]" in probs[0]


def test_unknown_block_and_missing_protocol(write: Callable[[str], Path], tmp_path: Path) -> None:
    probs = _problems(write("factors:\n  cycles: {levels: [10, 20]}\ndesign: {block_by: bath}\n"))
    assert any("design.block_by: `block_by` names `bath`, which is not a factor" in p for p in probs)
    bad = tmp_path / "nofile.yaml"
    bad.write_text("labctl: 1\nname: x\nprotocols: {test: missing.yaml}\nfactors: {cycles: {levels: [1]}}\n")
    probs = _problems(bad)
    assert any("protocols.test: the test protocol `missing.yaml` has problems" in p for p in probs)


def test_unsafe_yaml_is_refused_like_a_protocol(tmp_path: Path) -> None:
    p = tmp_path / "dup.yaml"
    p.write_text("labctl: 1\nname: a\nname: b\n")
    probs = _problems(p)
    assert any(":3:1:" in x and "duplicate" in x for x in probs), probs


def test_design_larger_than_its_cap_is_refused(write: Callable[[str], Path]) -> None:
    c = load_campaign(write(GRID.replace("block_by: concentration", "max_runs: 10")))
    with pytest.raises(CampaignFileError) as info:
        make_design(c)
    (prob,) = info.value.problems
    assert prob.field == "design.max_runs" and (prob.line, prob.column) == (9, 66)
    assert "6 point(s) x 2 replicate(s) = 12 runs, more than its cap `max_runs: 10`" in prob.message


def test_point_failing_its_plan_is_reported_not_run(write: Callable[[str], Path]) -> None:
    c = load_campaign(write("factors:\n  concentration: {levels: [0.1 M, 2 M]}\n"
                            "design: {replicates: 2, seed: 1}\n"))
    d = plan_design(c, make_design(c))
    bad = [p for p in d.points if p.values["concentration"] == "2 M"]
    assert len(d.failed) == 2 and d.failed == bad
    assert all(any("concentration = 2 M is beyond the hard limit" in e for e in p.errors) for p in bad)
    assert all(p.ok and p.duration_s > 0 for p in d.points if p not in bad)


def test_schema_accepts_the_examples_and_rejects_unknown_keys() -> None:
    schema = campaign_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    from labctl.protocol.safeyaml import load

    for f in (ROOT / "campaigns").glob("*.yaml"):
        jsonschema.validate(load(f.read_text(), str(f)).data, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"labctl": 1, "name": "x", "protocols": {"test": "a"}, "factors": {}, "oops": 1},
                            schema)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labctl", "campaign", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_cli_validate_and_plan(write: Callable[[str], Path]) -> None:
    good = ROOT / "campaigns" / "li-in-immersion-grid.yaml"
    r = _cli("validate", str(good))
    assert r.returncode == 0 and "ok" in r.stdout
    r = _cli("plan", str(good), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["ok"] and out["seed"] == 19 and len(out["points"]) == 12
    bad = write("factors:\n  immersion_tme: {levels: [30 s]}\n")
    r = _cli("validate", str(bad))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{bad}:7:3: factors.immersion_tme: unknown factor" in r.stderr
    failing = write("factors:\n  concentration: {levels: [0.1 M, 2 M]}\n", "f.yaml")
    r = _cli("plan", str(failing))
    assert r.returncode == 2 and "Traceback" not in r.stderr and "hard limit" in r.stderr


def test_a_log_scale_spaces_a_design_evenly_in_the_logarithm(write: Callable[[str], Path]) -> None:
    c = load_campaign(write(GRID.replace("[30 s, 120 s], count: 3", "[30 s, 3000 s], count: 3, scale: log")))
    times = {p.values["immersion_time"] for p in make_design(c).points}
    assert times == {"30 s", "300 s", "3000 s"}
    wide = GRID.replace("[30 s, 120 s], count: 3", "[30 s, 3000 s], count: 3")
    linear = load_campaign(write(wide, "l.yaml"))
    assert {p.values["immersion_time"] for p in make_design(linear).points} == {"30 s", "1515 s", "3000 s"}


def test_a_log_scale_reaches_the_planner_and_is_refused_where_it_cannot_apply(
        write: Callable[[str], Path]) -> None:
    from labctl.campaign.planners.space import space_of

    c = load_campaign(write(GRID.replace("count: 3", "count: 3, scale: linear")))
    axes = {a.name: a for a in space_of(c.model, {"immersion_time": "60 s"}).axes}
    assert axes["immersion_time"].logscale is False
    wide = load_campaign(write(GRID.replace("[30 s, 120 s], count: 3", "[30 s, 3000 s], count: 3"), "w.yaml"))
    assert {a.name: a for a in space_of(wide.model, {}).axes}["immersion_time"].logscale  # auto: a wide range
    narrow = load_campaign(write(GRID.replace("count: 3", "count: 3, scale: log"), "n.yaml"))
    assert {a.name: a for a in space_of(narrow.model, {}).axes}["immersion_time"].logscale
    problems = _problems(write(GRID.replace("[0.05 M, 0.1 M]}", "[0.05 M, 0.1 M], scale: log}"), "x.yaml"))
    assert any("`scale` applies to a `range` factor only" in p and "factors.concentration:" in p
               for p in problems), problems
    problems = _problems(write(GRID.replace("[30 s, 120 s], count: 3", "[0 s, 120 s], scale: log"), "z.yaml"))
    assert any("low end is above zero" in p and "factors.immersion_time:" in p for p in problems), problems
