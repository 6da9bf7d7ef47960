"""The block-by-block trigger model's schedule on its own: order and timing of events, counters, branches
once / once-excluded, the end of a model, endless models known without running them."""

from __future__ import annotations

import math

from labctl.simulators.trigger_blocks import Block, Schedule


def test_counters_reset_when_passed_as_the_manuals_example():
    blocks = {1: Block("clear"), 2: Block("measure"), 3: Block("counter", count=5, target=2),
              4: Block("delay", seconds=1.0), 5: Block("counter", count=3, target=2)}
    s = Schedule(blocks, 10.0, 0.02)
    events = s.until(100.0)
    measures = [t for t, kind, _ in events if kind == "measure"]
    assert len(measures) == 15 and measures[:2] == [10.0, 10.02]
    assert s.finish_time() == s.end and math.isclose(s.end, 10.0 + 3 * 1.0 + 15 * 0.02)
    assert [d for _, kind, d in events if kind == "count" and d[0] == 5] == [(5, 1), (5, 2), (5, 3)]


def test_events_come_as_the_clock_reaches_them_and_finish_time_keeps_them():
    blocks = {1: Block("measure", count=4), 2: Block("source", on=False)}
    s = Schedule(blocks, 0.0, 0.5)
    assert [t for t, _, _ in s.until(0.6)] == [0.0, 0.5]
    assert s.finish_time() == 2.0  # runs ahead to know the end ...
    assert [(t, k) for t, k, _ in s.until(5.0)] == [(1.0, "measure"), (1.5, "measure"), (2.0, "source")]
    assert s.until(9.0) == []  # ... and the events still come once, in order


def test_once_and_once_excluded():
    once = {1: Block("measure"), 2: Block("once", target=1)}
    assert len(Schedule(once, 0, 1).until(10)) == 2  # back the first time only
    # skipped the first time only: the measure runs on the first pass, the second pass jumps over it
    excluded = {1: Block("once_excluded", target=3), 2: Block("measure"),
                3: Block("counter", count=2, target=1)}
    assert [e[1] for e in Schedule(excluded, 0, 1).until(100)] == ["measure", "count", "count"]


def test_endless_models():
    spin = Schedule({1: Block("measure"), 2: Block("always", target=1)}, 0, 0.1)
    assert spin.finish_time() == math.inf and len(spin.until(1.0)) == 11
    escape = {1: Block("measure"), 2: Block("counter", count=3, target=4), 3: Block("always", target=1),
              4: Block("nop")}
    assert Schedule(escape, 0, 0.1).finish_time() < math.inf
    assert Schedule({1: Block("nop"), 2: Block("always", target=1)}, 0, 1).finish_time() == math.inf
    assert Schedule({}, 5.0, 1).finish_time() == 5.0
