"""Hypothesis fuzzing: whatever the bytes, the loader returns a protocol or raises `ProtocolFileError`."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labctl.protocol import ProtocolFileError, parse_protocol

ROOT = Path(__file__).resolve().parents[2]
VALID = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "protocols").glob("*.yaml"))]
YAML_BITS = [
    "\n",
    ": ",
    "- ",
    "{",
    "}",
    "[",
    "]",
    ",",
    "&a ",
    "*a",
    "!!python/object ",
    "!x ",
    "'",
    '"',
    "#",
    "---\n",
    "...",
    "${",
    "}",
    "${x}",
    ".nan",
    ".inf",
    "1e999",
    "\t",
    "  ",
    "|",
    ">",
    "? ",
    "<<: ",
    "\x00",
    "\u2028",
    "\\",
    "%YAML 1.2\n",
    "steps:",
    "labctl: 1",
    "mA/cm^2",
    "5 mm",
    "°C",
]


def _check(text: str) -> None:
    try:
        parse_protocol(text, "fuzz.yaml", None)
    except ProtocolFileError as exc:
        for p in exc.problems:
            assert p.file in ("fuzz.yaml", "<command line>") and p.line >= 0 and p.column >= 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(VALID),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 40), st.sampled_from(YAML_BITS)), max_size=6),
)
def test_mutated_valid_files(text: str, edits: list[tuple[int, int, str]]) -> None:
    for pos, cut, insert in edits:
        pos %= len(text) + 1
        text = text[:pos] + insert + text[pos + cut :]
    _check(text)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    _check(text)


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from(["60 s", "5 mm", "0.1 M", "${x}", "1 mA/cm^2"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["labctl", "name", "steps", "sample", "parameters", "override", "x"]),
        _values,
        max_size=6,
    )
)
def test_random_structures(data: dict) -> None:
    import json

    _check(json.dumps(data))  # JSON is YAML


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["immerse", "cycle_symmetric", "eis", "sputter", "wait", "operator", "prepare_bath"]),
    st.dictionaries(
        st.sampled_from(
            [
                "bath",
                "time",
                "depth",
                "speed",
                "cycles",
                "amplitude",
                "frequencies",
                "message",
                "duration",
                "power",
                "volume",
                "salt",
                "label",
            ]
        ),
        _scalars,
        max_size=6,
    ),
)
def test_random_steps(kind: str, body: dict) -> None:
    import json

    _check(json.dumps({"labctl": 1, "name": "f", "steps": [{kind: body}]}))
