"""Whatever a campaign file holds, loading and designing it either works or raises `CampaignFileError` with
positions: never another exception (hypothesis over factor and design values)."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.campaign import CampaignFileError, parse_campaign
from labctl.campaign.design import make_design

from .conftest import HEAD

scalars = st.one_of(
    st.sampled_from(["30 s", "2 min", "0.1 M", "5 mA", "-3 s", "1e400 s", "0 s", "25 degC", "abc", "",
                     "1 furlong", "InCl3", "10 mol/L", "nan s"]),
    st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none(),
)
values = st.one_of(scalars, st.lists(scalars, max_size=4), st.dictionaries(st.text(max_size=5), scalars,
                                                                           max_size=2))
factor = st.dictionaries(st.sampled_from(["range", "levels", "categories", "count", "extra"]), values,
                         max_size=3)
names = st.sampled_from(["immersion_time", "concentration", "cycles", "nope"])
design = st.dictionaries(st.sampled_from(["kind", "points", "replicates", "seed", "block_by", "max_runs",
                                          "randomise"]),
                         st.one_of(scalars, st.sampled_from(["sobol", "latin_hypercube", "full_factorial",
                                                             "concentration"])), max_size=5)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(names, factor, min_size=1, max_size=3), design)
def test_any_factors_and_design_give_a_design_or_file_problems(factors: dict, design_: dict) -> None:
    text = HEAD + "factors: " + json.dumps(factors) + "\ndesign: " + json.dumps(design_) + "\n"
    try:
        c = parse_campaign(text, "fuzz.yaml", base=Path("."))
        d = make_design(c)
    except CampaignFileError as exc:
        assert exc.problems and all(p.file == "fuzz.yaml" or p.file.endswith(".yaml") for p in exc.problems)
        return
    assert len(d.points) <= c.model.design.max_runs
    for p in d.points:
        assert set(p.values) == set(c.model.factors)


quantities = st.builds(lambda x, u: f"{x:g} {u}", st.floats(-1e6, 1e6, allow_nan=False),
                       st.sampled_from(["s", "min", "h", "M", "mol/L", "mM", "mA", ""]))
well_formed = st.one_of(
    st.builds(lambda a, b, n: {"range": [a, b], "count": n}, quantities, quantities, st.integers(2, 5)),
    st.builds(lambda xs: {"levels": xs}, st.lists(quantities, min_size=1, max_size=3)),
    st.builds(lambda xs: {"levels": xs}, st.lists(st.integers(1, 1000), min_size=1, max_size=3)),
)
kinds = st.one_of(st.just({"kind": "full_factorial"}),
                  st.builds(lambda k, n, s: {"kind": k, "points": n, "seed": s},
                            st.sampled_from(["sobol", "latin_hypercube"]), st.integers(1, 40),
                            st.integers(0, 2**32 - 1)))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(names, well_formed, min_size=1, max_size=3), kinds, st.integers(1, 3))
def test_well_formed_factors_design_within_their_ranges(factors: dict, kind: dict, reps: int) -> None:
    design_ = json.dumps({**kind, "replicates": reps})
    text = HEAD + "factors: " + json.dumps(factors) + "\ndesign: " + design_ + "\n"
    try:
        c = parse_campaign(text, "fuzz.yaml", base=Path("."))
        d = make_design(c)
    except CampaignFileError as exc:
        assert exc.problems
        return
    assert len(d.points) <= c.model.design.max_runs and sorted(p.seq for p in d.points) == \
        list(range(len(d.points)))
    for p in d.points:
        for name, f in c.model.factors.items():
            if f.levels is not None:
                assert p.values[name] in [str(v) for v in f.levels]
