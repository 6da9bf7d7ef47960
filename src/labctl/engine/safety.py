"""Safe state on every exit path: every touched instrument, each confirmed by read-back, each recorded.

One instrument's failure is recorded and does not stop the others (as bluesky's cleanup does).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SafeResult:
    role: str
    ok: bool
    confirmed: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def make_safe(
    instruments: Iterable[tuple[str, Any]], *, record: Callable[[str, dict[str, Any]], None] | None = None
) -> list[SafeResult]:
    """Call `safe_state()` on every (role, instrument), record each outcome, never stop on one error.

    `record(kind, data)` gets `instrument.safe` with what read-back confirmed, or `instrument.safe_failed`
    with the error. A failure of `record` itself is swallowed too: the next instrument still gets made safe.
    """
    results: list[SafeResult] = []
    for role, inst in instruments:
        try:
            confirmed = _jsonable(inst.safe_state() or {})
            res = SafeResult(role, True, confirmed)
        except BaseException as exc:
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                res = SafeResult(role, False, error=f"interrupted: {type(exc).__name__}")
            else:
                res = SafeResult(role, False, error=f"{type(exc).__name__}: {exc}")
                res.confirmed = {"traceback": traceback.format_exception_only(type(exc), exc)[-1].strip()}
        results.append(res)
        if record is not None:
            try:
                if res.ok:
                    record("instrument.safe", {"role": role, "confirmed": res.confirmed})
                else:
                    record("instrument.safe_failed", {"role": role, "error": res.error})
            except Exception:
                pass
    return results
