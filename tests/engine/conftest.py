from __future__ import annotations

from typing import Any

import pytest
from engine_fakes import STATION, FakeStore, bench

from labctl.clock import VirtualClock
from labctl.compose import step_from_fields
from labctl.engine.control import Control
from labctl.engine.run import Run, RunSpec


class Harness:
    def __init__(self) -> None:
        self.clock = VirtualClock()
        self.store = FakeStore()
        self.inst = bench(self.clock)
        self.hooks: list[Any] = []
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def on(self, kind: str, when: Any, action: Any) -> None:
        """Run `action(run)` once, on the first progress event `kind` whose data satisfies `when`."""
        self.hooks.append([kind, when, action, False])

    def progress(self, kind: str, data: dict[str, Any]) -> None:
        self.seen.append((kind, data))
        for hook in self.hooks:
            if not hook[3] and hook[0] == kind and hook[1](data):
                hook[3] = True
                hook[2](self.run)

    def make(self, steps: list[tuple[str, dict[str, Any]]], *, interactive: bool = False, world: Any = None,
             **kw: Any) -> Run:
        """A dry run of `steps` on the fakes; operator steps answer themselves unless `interactive`; a `world`
        observes the run as the dry-run bench's would."""
        from labctl.simulators.dryrun import WorldObserver

        spec = RunSpec("test", [step_from_fields(i, k, p) for i, (k, p) in enumerate(steps)])
        kw.setdefault("auto_operator", not interactive)
        if world is not None:
            kw["observers"] = [WorldObserver(world)]
        self.run = Run(
            spec,
            store=self.store,
            instruments=self.inst,
            station=STATION,
            clock=self.clock,
            handle_signals=False,
            progress=self.progress,
            control=Control(poll_interval=0.0),
            **kw,
        )
        self.run.create()
        return self.run

    def post(self, command: str, actor: str = "tester") -> Any:
        return lambda run: self.store.post_control(run.run_id, command, actor=actor)


@pytest.fixture
def h() -> Harness:
    return Harness()
