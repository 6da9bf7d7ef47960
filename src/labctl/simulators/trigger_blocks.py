"""The 2450's trigger model built block by block (`:TRIGger:BLOCk:*`, 2450-901-01 pp. 6-128 ... 6-148), as a
stream of timed events the simulated instrument plays on its clock.

A model is numbered blocks run in order from block 1; branches jump. From `:INIT` the model runs in simulated
time as a stream of events, made as the clock reaches them, `(time, kind, data)`: `measure` (a reading into a
buffer), `source` (the output on/off), `clear` (a buffer emptied), `count` (a branch counter's value as the
model passes it). Readings take NPLC / line frequency each, as the instrument's measure block does; delays
are the block's. When the model's end is asked for (`*OPC?`, `*WAI`) it is run ahead: an always-branch back
over blocks that cannot branch past it never ends (known at once), and any model still running after
`MAX_EVENTS` events counts as never ending: the instrument keeps "running" until `:ABORt`, as the real one
would. The branch counters are reset at `:INIT` and count as the manual's example shows (p. 6-128: an inner
counter of 5 inside an outer one of 3 makes 15 readings): incremented when reached, the branch taken while
the count is below the setting, and reset when the model goes on past it.

Blocks simulated: BUFFer:CLEar, MEASure, DELay:CONStant, BRANch:COUNter, BRANch:ALWays, BRANch:ONCE,
BRANch:ONCE:EXCLuded, SOURce:STATe, NOP. The others (waits on events, limits, digital I/O, configuration
lists, notify, log) are undefined headers (-113) here; `docs/instruments/keithley2450.md` says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_EVENTS = 1_000_000
MAX_STEPS = 10 * MAX_EVENTS  # blocks passed: a loop of delays alone makes no events but must end too


@dataclass
class Block:
    kind: str  # "clear", "measure", "delay", "counter", "always", "once", "once_excluded", "source", "nop"
    buffer: str = "defbuffer1"
    count: int = 1
    seconds: float = 0.0
    target: int = 0
    on: bool = False


class Schedule:
    """A running model's events, made as they are needed (`until(t)`); `end` once the model has ended."""

    def __init__(self, blocks: dict[int, Block], start: float, reading_s: float) -> None:
        self._gen = _run(dict(blocks), start, reading_s, self)
        self._endless = _inescapable(blocks)
        self._next: tuple[float, str, object] | None = None
        self.made = 0
        self.end: float | None = None  # known when the model has ended (inf: cut, never ends)

    def until(self, t: float) -> list[tuple[float, str, object]]:
        """The events due by `t`, in order, each once."""
        out = []
        while True:
            if self._next is None:
                self._next = next(self._gen, None)
                if self._next is None:
                    return out
            if self._next[0] > t + 1e-12:
                return out
            out.append(self._next)
            self._next = None

    def finish_time(self) -> float:
        """When the model ends (runs it through, at most `MAX_EVENTS` events; inf if it never does)."""
        if self._endless:
            return math.inf
        pending = []
        while self.end is None:
            item = next(self._gen, None)
            if item is None:
                break
            pending.append(item)
        if pending:  # keep them to be played in order
            self._gen = _chain(self._next, pending, self._gen)
            self._next = None
        return math.inf if self.end is None else self.end


def _chain(first, pending, rest):
    if first is not None:
        yield first
    yield from pending
    yield from rest


def _run(blocks: dict[int, Block], start: float, reading_s: float, out: Schedule):
    """The model's events from `start`; sets `out.end` when it ends (`reading_s`: one reading's time)."""
    counters: dict[int, int] = {}
    once_used: set[int] = set()
    order = sorted(blocks)
    t = start
    if not order:
        out.end = t
        return
    pc = order[0]
    steps = 0
    while True:
        steps += 1
        if steps > MAX_STEPS or out.made >= MAX_EVENTS:
            out.end = math.inf
            return
        if pc not in blocks:  # past the last block (or a branch to a number with no block)
            if pc > order[-1] or pc < order[0]:
                out.end = t
                return
            pc = next(n for n in order if n > pc)
        b = blocks[pc]
        nxt = next((n for n in order if n > pc), order[-1] + 1)
        if b.kind == "clear":
            out.made += 1
            yield (t, "clear", b.buffer)
        elif b.kind == "measure":
            for _ in range(b.count):
                out.made += 1
                yield (t, "measure", b.buffer)
                t += reading_s
        elif b.kind == "delay":
            t += b.seconds
        elif b.kind == "source":
            out.made += 1
            yield (t, "source", b.on)
        elif b.kind == "counter":
            c = counters.get(pc, 0) + 1
            out.made += 1
            yield (t, "count", (pc, c))
            if c < b.count:
                counters[pc] = c
                nxt = b.target
            else:
                counters[pc] = 0  # gone on past it: the next pass counts afresh
        elif b.kind == "always":
            nxt = b.target
        elif b.kind == "once":
            if pc not in once_used:
                once_used.add(pc)
                nxt = b.target
        elif b.kind == "once_excluded":
            if pc in once_used:
                nxt = b.target
            once_used.add(pc)
        if b.kind in ("always", "counter") and nxt <= pc and not _progresses(blocks, nxt, pc):
            out.end = math.inf  # a loop with no time in it would spin forever at one instant
            return
        pc = nxt


def _inescapable(blocks: dict[int, Block]) -> bool:
    """Whether an always-branch jumps back over blocks none of which can branch past it (endless)."""
    for n, b in blocks.items():
        if b.kind == "always" and b.target <= n:
            inside = [x for m, x in blocks.items() if b.target <= m <= n]
            if not any(x.kind in ("counter", "once", "once_excluded") and x.target > n for x in inside):
                return True
    return False


def _progresses(blocks: dict[int, Block], first: int, last: int) -> bool:
    """Whether the blocks first..last take time or count (so a backward branch over them ends or moves on)."""
    return any(
        b.kind in ("measure", "delay", "counter") and (b.kind != "delay" or b.seconds > 0)
        for n, b in blocks.items()
        if first <= n <= last
    )
