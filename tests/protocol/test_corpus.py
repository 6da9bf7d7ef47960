"""The must-fail corpus: each file in bad/ names its expected line and message fragment on line 1."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from labctl.protocol import ProtocolFileError, load_protocol

BAD = sorted((Path(__file__).parent / "bad").glob("*.yaml"))
_EXPECT = re.compile(r"^# expect: (\d+): (.+)$")


def test_corpus_is_large_enough() -> None:
    assert len(BAD) >= 30


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_file_fails_with_line_and_message(path: Path) -> None:
    match = _EXPECT.match(path.read_text(encoding="utf-8").splitlines()[0])
    assert match, f"{path.name}: first line must be `# expect: LINE: fragment`"
    line, fragment = int(match.group(1)), match.group(2)
    with pytest.raises(ProtocolFileError) as info:
        load_protocol(path)
    hits = [p for p in info.value.problems if fragment in p.message]
    assert hits, [str(p) for p in info.value.problems]
    assert hits[0].line == line
    assert hits[0].file == str(path)
    assert f"{path}:{line}:" in str(info.value)


def test_every_problem_reported_at_once() -> None:
    with pytest.raises(ProtocolFileError) as info:
        load_protocol(Path(__file__).parent / "bad" / "many-problems.yaml")
    fields = [p.field for p in info.value.problems]
    assert "steps[0].wait.duration" in fields
    assert "steps[1].ocv.sample_every" in fields
    assert {"steps[2].immerse.depth", "steps[2].immerse.speed"} <= set(fields)


def test_oversized_file_rejected(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("labctl: 1\nname: big\n# " + "x" * 1_000_100 + "\nsteps: [{wait: {duration: 1 s}}]\n")
    with pytest.raises(ProtocolFileError, match="limit is 1000000"):
        load_protocol(big)


def test_not_utf8_rejected(tmp_path: Path) -> None:
    f = tmp_path / "latin.yaml"
    f.write_bytes(b"labctl: 1\nname: caf\xe9\nsteps: [{wait: {duration: 1 s}}]\n")
    with pytest.raises(ProtocolFileError, match="not valid UTF-8"):
        load_protocol(f)


def test_deep_nesting_rejected() -> None:
    from labctl.protocol import parse_protocol

    with pytest.raises(ProtocolFileError, match="nesting"):
        parse_protocol("a: " + "[" * 200 + "]" * 200 + "\n", "deep.yaml")
