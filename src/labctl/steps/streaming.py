"""Points to the store as they arrive: a crash on the real clock loses at most the last second of them.

A driver that streams takes an `on_points` callback and hands over each batch of new points while it
measures (Keithley 2450: buffer reads during the trigger model; EmStat4: each data package). `streamed`
calls any driver the same way: every point of the returned Trace/Spectrum goes through `store` exactly
once, as it arrives when the driver streams, or all at the end when it does not.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np


def _arrays(obj: Any) -> dict[str, np.ndarray]:
    return {
        f.name: getattr(obj, f.name)
        for f in dataclasses.fields(obj)
        if isinstance(getattr(obj, f.name), np.ndarray | list | tuple)
    }


def size(obj: Any) -> int:
    """Points in a Trace or Spectrum (the length of its first array)."""
    return len(next(iter(_arrays(obj).values()), ()))


def streamed(call: Callable[..., Any], store: Callable[[Any], None], **kw: Any) -> Any:
    """`call(**kw)`, with every point of its result through `store` exactly once (see the module)."""
    sent = 0

    def on_points(part: Any) -> None:
        nonlocal sent
        store(part)
        sent += size(part)

    try:
        takes = "on_points" in inspect.signature(call).parameters
    except (TypeError, ValueError):
        takes = False
    result = call(**kw, on_points=on_points) if takes else call(**kw)
    if size(result) > sent:
        rest = {k: np.asarray(v)[sent:] for k, v in _arrays(result).items()}
        store(dataclasses.replace(result, **rest))
    return result
