"""One run: preflight, the steps in order, interrupts at safe points, and safe state on every exit path.

`Run` owns the run machine and talks to the store (audited state changes, step intent before action, data,
control commands, leases). It never prints: progress goes to the `progress(kind, data)` callback. Each step is
its typed model, run by its kind (`labctl.steps`); what the steps did is told to the run's `observers` (a dry
run's simulated world listens; the engine never knows whether one does).
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from labctl.clock import Clock
from labctl.drivers.transport import sealed
from labctl.engine.control import Command, Control
from labctl.engine.errors import InterlockTripped, PreflightError, RunAborted
from labctl.engine.machine import TERMINAL, RunMachine, RunState
from labctl.engine.safety import SafeResult, _jsonable, make_safe
from labctl.engine.store import RunStore
from labctl.station import Station
from labctl.steps import StepContext, StepModel, kind_of
from labctl.steps.base import Observer
from labctl.steps.interlocks import Watch

Progress = Callable[[str, dict[str, Any]], None]


@dataclass
class StepSpec:
    """One step of a run: its index and its validated, typed model."""

    index: int
    step: StepModel
    estimate_s: float | None = None

    @property
    def kind(self) -> str:
        return str(self.step.kind)  # type: ignore[attr-defined]

    def commanded(self) -> dict[str, Any]:
        """What the protocol asked, as recorded (SI values, nested blocks as mappings)."""
        return self.step.model_dump(exclude={"kind"})


@dataclass
class RunSpec:
    """A resolved protocol: what the store records and the engine executes."""

    name: str
    steps: list[StepSpec]
    path: str = ""
    text: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    sample_id: str | None = None
    sample: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepResult:
    index: int
    kind: str
    status: str
    commanded: dict[str, Any]
    achieved: dict[str, Any]
    reason: str = ""
    duration_s: float = 0.0
    points: int = 0


@dataclass
class RunResult:
    run_id: int
    state: RunState
    reason: str
    steps: list[StepResult]
    safe: list[SafeResult]
    duration_s: float
    points: int
    mode: str
    seed: int | None = None

    @property
    def ok(self) -> bool:
        return self.state is RunState.COMPLETED


class Run:
    """Execute `spec` on `instruments` (role -> driver), recording everything in `store`."""

    def __init__(
        self,
        spec: RunSpec,
        *,
        store: RunStore,
        instruments: dict[str, Any],
        station: Station,
        clock: Clock,
        mode: str = "dry-run",
        seed: int | None = None,
        operator: str = "",
        auto_operator: bool = False,
        observers: list[Observer] | None = None,
        control: Control | None = None,
        progress: Progress | None = None,
        prompt: Callable[[str], bool] | None = None,
        plan_check: Callable[[], None] | None = None,
        lease_keys: list[str] | None = None,
        station_text: str = "",
        handle_signals: bool = True,
        sleep_chunk: float = 1.0,
        heartbeat_every: float = 10.0,
    ) -> None:
        self.spec, self.store, self.instruments, self.station = spec, store, instruments, station
        self.clock, self.mode, self.seed, self.operator = clock, mode, seed, operator
        self.auto_operator, self.prompt, self.plan_check = auto_operator, prompt, plan_check
        self.observers: list[Observer] = list(observers or [])
        self.lease_keys = lease_keys if lease_keys is not None else sorted(instruments)
        self.station_text = station_text or station.source_text
        self.handle_signals, self.sleep_chunk, self.heartbeat_every = (
            handle_signals,
            sleep_chunk,
            heartbeat_every,
        )
        self.progress = IsolatedProgress(progress, self._progress_failed)
        self.run_id: int | None = None
        self.control = control
        self.machine = RunMachine(self._record_transition)
        self.notes: dict[str, Any] = {}
        self.watch = Watch()
        self.touched: list[str] = []
        self.results: list[StepResult] = []
        self._acks: list[Command] = []
        self._pause_pending: Command | None = None
        self._leased = False
        self._last_heartbeat = time.monotonic()
        self.t0 = clock.monotonic()

    # -- store ----------------------------------------------------------------------------------------

    def create(self) -> int:
        """Record the run (state `created`) and its steps (`pending`)."""
        s = self.spec
        self.run_id = self.store.create_run(
            protocol_name=s.name,
            protocol_path=s.path,
            protocol_text=s.text,
            parameters=_jsonable(s.parameters),
            station_name=self.station.name,
            station_text=self.station_text,
            operator=self.operator,
            mode=self.mode,
            seed=self.seed,
            sample_id=s.sample_id,
            steps=[
                {"index": st.index, "kind": st.kind, "params": _jsonable(st.commanded())} for st in s.steps
            ],
        )
        if self.control is None:
            self.control = Control(self.store, self.run_id)
        elif self.control.run_id is None:
            self.control.store, self.control.run_id = self.store, self.run_id
        self.progress("run.created", {"run_id": self.run_id, "name": s.name, "steps": len(s.steps)})
        return self.run_id

    def refuse(self, reason: str) -> None:
        """A run refused after it was recorded but before its preflight (its instruments could not even be
        built): recorded `failed` with the reason, never left `created`. Nothing touched: no safe state."""
        if self.run_id is not None:
            self._finish("fail", f"refused before preflight: {reason}", "labctl")

    def _record_transition(self, src: RunState, dst: RunState, trigger: str, reason: str, actor: str) -> None:
        self.store.set_run_state(self.run_id, dst.value, reason=reason or trigger, actor=actor)
        self.progress("run.state", {"from": src.value, "to": dst.value, "reason": reason, "actor": actor})

    def _event(self, kind: str, data: dict[str, Any]) -> None:
        self.store.append_event(self.run_id, kind, _jsonable(data))

    # -- interrupts -----------------------------------------------------------------------------------

    def checkpoint(self, pausable: bool = True) -> None:
        """A safe point: handle abort/pause/resume/ack commands; pause here if allowed."""
        assert self.control is not None
        self._heartbeat()
        for cmd in self.control.poll():
            self._handle(cmd)
        if self._pause_pending is not None and pausable and self.machine.state is RunState.RUNNING:
            cmd, self._pause_pending = self._pause_pending, None
            self._pause(f"pause requested by {cmd.actor} ({cmd.source})", cmd.actor)

    def _handle(self, cmd: Command) -> None:
        self._event(
            "control.received",
            {
                "command": cmd.name,
                "actor": cmd.actor,
                "source": cmd.source,
                "state": self.machine.state.value,
            },
        )
        if cmd.name == "abort":
            self._disarm()
            raise RunAborted(f"abort requested by {cmd.actor} ({cmd.source})", cmd.actor)
        if cmd.name == "pause":
            self._pause_pending = self._pause_pending or cmd
            self.progress("run.pause_requested", {"actor": cmd.actor})
        elif cmd.name == "ack":
            self._acks.append(cmd)
        elif cmd.name == "resume" and self._pause_pending is not None:
            self._pause_pending = None  # a resume cancels a pause that has not taken effect yet

    def _pause(self, reason: str, actor: str) -> None:
        assert self.control is not None
        self.machine.fire("pause", reason=reason, actor=actor)
        while True:
            self._heartbeat()
            self.control.wake.wait(0.2)
            for cmd in self.control.poll(force=True):
                if cmd.name == "resume":
                    self._event(
                        "control.received",
                        {"command": "resume", "actor": cmd.actor, "source": cmd.source, "state": "paused"},
                    )
                    self.machine.fire(
                        "resume", reason=f"resumed by {cmd.actor} ({cmd.source})", actor=cmd.actor
                    )
                    self.control.resumed()
                    return
                if cmd.name in ("abort", "ack"):
                    self._handle(cmd)

    def _abort_waits(self, why: str, who: str) -> None:
        """An abort signal: a wait inside an instrument call (a long acquisition, a slow stream) raises
        RunAborted at once instead of running to its end. Delivered once: what the abort then does (an
        immersion's withdrawal, the safe state) waits normally."""

        def deliver() -> RunAborted:
            self._disarm()
            return RunAborted(why, who)

        self.clock.interrupt(deliver)

    def _disarm(self) -> None:
        if self.control is not None:
            self.control.on_abort = None
            self.control.stop_watching()
        if hasattr(self.clock, "interrupt"):
            self.clock.interrupt(None)

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if self._leased and now - self._last_heartbeat >= self.heartbeat_every:
            self._last_heartbeat = now
            self.store.heartbeat(self.run_id)

    def _sleep_chunk(self) -> float:
        """On the wall clock, waits are cut at the control's store-poll interval so that a command posted from
        another terminal (`labctl abort RUN`) is read within it; local requests wake a wait at once."""
        if self.clock.is_virtual or self.control is None:
            return self.sleep_chunk
        return min(self.sleep_chunk, max(self.control.poll_interval, 0.05))

    def _take_acks(self) -> list[Command]:
        acks, self._acks = self._acks, []
        return acks

    # -- the run --------------------------------------------------------------------------------------

    def execute(self) -> RunResult:
        """Run to a terminal state. Never raises for a failed run: the result says what happened."""
        if self.run_id is None:
            self.create()
        assert self.control is not None
        outcome, reason, actor = "complete", "all steps done", "labctl"
        safe: list[SafeResult] = []
        self.t0 = self.clock.monotonic()
        signals = self.control.signals() if self.handle_signals else _nullcontext()
        if self.mode == "dry-run" and self.clock.is_virtual:  # simulators only: nothing else runs on its time
            signals = _both(signals, sealed("a dry run on the virtual clock"))
        if hasattr(self.clock, "interrupt"):
            self.control.on_abort = self._abort_waits
            if not self.clock.is_virtual:
                self.control.watch_store()
        with signals:
            try:
                self.checkpoint(False)  # an abort queued before the start ends it here
                self.machine.fire("start_preflight")
                self._preflight()
                self.checkpoint(False)
                self.machine.fire("start", reason="preflight passed")
                for step in self.spec.steps:
                    self.checkpoint(True)
                    self._run_step(step)
                self.checkpoint(True)
            except RunAborted as exc:
                outcome, reason, actor = "abort", exc.reason, exc.actor
            except KeyboardInterrupt:
                outcome, reason, actor = "abort", "interrupted (KeyboardInterrupt)", "ctrl-c"
            except InterlockTripped as exc:
                outcome, reason = ("abort" if exc.action == "abort" else "fail"), str(exc)
            except Exception as exc:
                outcome, reason = "fail", f"{type(exc).__name__}: {exc}"
                if not hasattr(exc, "exit_code"):
                    self._safe_event("run.exception", {"traceback": traceback.format_exc()[-4000:]})
            except BaseException as exc:  # SystemExit and the like: still safe, still ended, then re-raised
                outcome, reason = "abort", f"interrupted ({type(exc).__name__})"
                raise
            finally:  # whatever happened above, and whatever fails in here: safe state, then the end
                safe = self._cleanup()
                bad = [r.role for r in safe if not r.ok]
                if bad and outcome == "complete":
                    outcome, reason = "fail", f"safe state not confirmed for {', '.join(bad)}"
                elif bad:
                    reason += f"; safe state not confirmed for {', '.join(bad)}"
                self._finish(outcome, reason, actor)
        duration = self.clock.monotonic() - self.t0
        return RunResult(
            self.run_id or 0,
            self.machine.state,
            reason,
            self.results,
            safe,
            duration,
            sum(r.points for r in self.results),
            self.mode,
            self.seed,
        )

    def _finish(self, trigger: str, reason: str, actor: str) -> None:
        """The terminal state, recorded; leases released. Never raises: a store that fails twice leaves the
        run (and, if it cannot release them, its leases) for `labctl recover` to find."""
        if self.machine.state in TERMINAL:
            return
        if not self.machine.can(trigger):
            trigger = "abort" if self.machine.can("abort") else "fail"
        try:  # the transcript's digest goes into the chain before the run's last state change
            self.store.seal_io(self.run_id)
        except Exception as exc:
            self.progress("run.error", {"error": f"could not seal the instrument transcript: {exc}"})
        try:
            for attempt in (1, 2):  # once more: a store briefly locked or busy must not leave the run open
                try:
                    self.machine.fire(trigger, reason=reason, actor=actor)
                    break
                except Exception as exc:  # the store is failing: leave the run for `recover` to find
                    self.progress("run.error", {"error": f"could not record the end of the run: {exc}"})
                    if attempt == 2 or self.machine.state in TERMINAL:
                        break
        finally:
            if self._leased:
                try:
                    self.store.release_leases(self.run_id)
                    self._leased = False
                except Exception as exc:
                    self.progress("run.error", {"error": f"could not release leases: {exc}"})

    def _progress_failed(self, kind: str, exc: Exception) -> None:
        self._safe_event("progress.failed", {"kind": kind, "error": f"{type(exc).__name__}: {exc}",
                                             "traceback": traceback.format_exc()[-2000:]})

    def _safe_event(self, kind: str, data: dict[str, Any]) -> None:
        try:
            self._event(kind, data)
        except Exception as exc:
            self.progress("run.error", {"error": f"could not record {kind}: {exc}"})

    def _preflight(self) -> None:
        if self.plan_check is not None:
            self.plan_check()
            self._event("preflight.plan", {"ok": True})
        self.store.acquire_leases(self.run_id, self.lease_keys)
        self._leased = True
        self._event("preflight.leases", {"instruments": self.lease_keys})
        for role, inst in self.instruments.items():
            self.touched.append(role)
            try:
                inst.connect()
                ident = inst.identify()
                self._lease_identity(role, inst, ident)
                confirmed = inst.safe_state()
            except RunAborted:
                raise  # an abort cut a wait on the link short: an abort, not a failed preflight
            except Exception as exc:
                raise PreflightError(f"{role}: {exc}") from exc
            self._event("instrument.ready", {"role": role, "identity": ident, "safe": confirmed})
            self.progress("preflight.instrument", {"role": role, "identity": ident})
        self._check_interlocks_clear()

    def _lease_identity(self, role: str, inst: Any, ident: str) -> None:
        """Lease the unit by its identification too (same instrument on another link: another run's)."""
        from labctl.store.lease_keys import identity_key

        key = identity_key(inst, ident, self.station.roles[role].link if role in self.station.roles else "")
        if key is None or not hasattr(self.store, "acquire_leases"):
            return
        try:
            self.store.acquire_leases(self.run_id, [key])
        except Exception:
            self.touched.remove(role)  # another run's instrument: its safe state is not ours to command
            raise

    def _check_interlocks_clear(self) -> None:
        """Nothing is out of its window before the run starts (readable gauge, a bath below Li's limit)."""
        readings: dict[str, float] = {}
        if "gauge" in self.instruments:
            readings["pressure_pa"] = float(self.instruments["gauge"].pressure())
        if "hotplate" in self.instruments:
            t = readings["bath_c"] = float(self.instruments["hotplate"].bath_temperature())
            if t > 100.0:
                raise PreflightError(f"bath at {t:.1f} degC, above the 100 degC hard limit for Li")
        self.watch.check(self.clock.monotonic(), force=True)
        self._event("preflight.interlocks", {"clear": True, "readings": readings})

    def _run_step(self, step: StepSpec) -> None:
        kind = kind_of(step.step)
        step_id = self.store.start_step(self.run_id, step.index)
        ctx = StepContext(
            index=step.index,
            kind=step.kind,
            instruments=self.instruments,
            clock=self.clock,
            t0=self.t0,
            station=self.station,
            checkpoint=self.checkpoint,
            store=self.store,
            run_id=self.run_id,
            step_id=step_id,
            auto_operator=self.auto_operator,
            observers=self.observers,
            operator=self.operator,
            notes=self.notes,
            watch=self.watch,
            progress=self.progress,
            take_acks=self._take_acks,
            prompt=self.prompt,
            sleep_chunk=self._sleep_chunk(),
            wake=self.control.wake if self.control is not None else None,
            transition=lambda trig, why: self.machine.fire(trig, reason=why, actor=self.operator or "labctl"),
        )
        estimate = step.estimate_s if step.estimate_s is not None else kind.estimate(step.step)
        self.progress(
            "step.started",
            {"index": step.index, "kind": step.kind, "of": len(self.spec.steps), "estimate_s": estimate},
        )
        start = self.clock.monotonic()
        status, reason, pending = "done", "", None
        try:
            kind.run(ctx, step.step)
            status, reason = ctx.status, ctx.reason
        except InterlockTripped as exc:
            status = "deviated" if exc.action in ("pause", "end_step") else "failed"
            reason = str(exc) if not ctx.reason else f"{exc}; {ctx.reason}"
            if exc.action not in ("pause", "end_step"):
                pending = exc
            elif exc.action == "pause":
                self._pause_pending = Command("pause", "interlock", {"interlock": exc.name}, "interlock")
        except RunAborted as exc:
            status = "deviated" if ctx.status == "deviated" else "failed"
            reason, pending = ctx.reason or exc.reason, exc
        except BaseException as exc:
            status, reason, pending = "failed", ctx.reason or f"{type(exc).__name__}: {exc}", exc
        finally:
            ctx.close_writers()
            if kind.MAKES_SAMPLE:  # an observer may report what it saw made (recorded under its own label)
                try:
                    for note in ctx.announce("sample.changed", {"kind": step.kind}):
                        ctx.achieved.update(note)
                except Exception as exc:  # a failing observer must not hide how the step ended
                    ctx.achieved["observer_error"] = f"{type(exc).__name__}: {exc}"
            if self.machine.state is RunState.AWAITING_OPERATOR and pending is not None:
                pass  # fail/abort are allowed from awaiting_operator
        duration = self.clock.monotonic() - start
        result = StepResult(
            step.index,
            step.kind,
            status,
            _jsonable(step.commanded()),
            _jsonable(ctx.achieved),
            reason,
            duration,
            ctx.points,
        )
        self.results.append(result)
        summary = {"duration_s": duration, "points": ctx.points, "commanded": result.commanded}
        try:
            self.store.finish_step(step_id, status, achieved=result.achieved, summary=summary, reason=reason)
        finally:
            self.progress(
                "step.finished",
                {
                    "index": step.index,
                    "kind": step.kind,
                    "status": status,
                    "reason": reason,
                    "duration_s": duration,
                    "points": ctx.points,
                },
            )
        if pending is not None:
            raise pending

    def _cleanup(self) -> list[SafeResult]:
        """Safe state for every touched instrument (each recorded; errors do not stop the others). Never
        raises: nothing before `make_safe` (the disarm, the display) may skip it."""
        try:
            self._disarm()  # the safe state's own waits run to their end, whatever signal comes
        except Exception as exc:
            self.progress("run.error", {"error": f"could not disarm the abort watch: {exc}"})
        roles = [(r, self.instruments[r]) for r in dict.fromkeys(self.touched) if r in self.instruments]
        self.progress("run.safe_state", {"roles": [r for r, _ in roles]})
        results = make_safe(roles, record=lambda kind, data: self._event(kind, data))
        for role, inst in roles:
            try:
                inst.close()
            except Exception as exc:
                self._safe_event("instrument.close_failed", {"role": role, "error": str(exc)})
        return results


class IsolatedProgress:
    """The run's progress callback behind a fuse: the display (or any observer) can never break the run.

    Its first exception (say, a step estimate the display cannot render) is handed to `on_error` (the run
    records it) and the callback is switched off for the rest of the run; the engine never sees it.
    """

    def __init__(self, callback: Progress | None, on_error: Callable[[str, Exception], None]) -> None:
        self.callback, self.on_error = callback, on_error
        self.failed: Exception | None = None

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        callback = self.callback
        if callback is None:
            return
        try:
            callback(kind, data)
        except Exception as exc:
            self.callback, self.failed = None, exc
            with contextlib.suppress(Exception):
                self.on_error(kind, exc)


@contextlib.contextmanager
def _both(first: Any, second: Any) -> Iterator[None]:
    with first, second:
        yield


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
