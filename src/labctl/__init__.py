"""labctl: a lab-automation controller for protective overlayers on Li-metal anodes.

`labctl.connect`, `labctl.Protocol` and the rest of `labctl.api` are resolved on first use (module
`__getattr__`), so `import labctl` (and `labctl --help`) imports neither pandas nor the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"


if TYPE_CHECKING:
    from labctl.api import Lab, Protocol, RunHandle, Submission, SubmitError, Verification, connect


def __getattr__(name: str) -> Any:
    if name in __all__ and name != "__version__":
        from labctl import api

        return getattr(api, name)
    raise AttributeError(f"module 'labctl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "Lab", "Protocol", "RunHandle", "Submission", "SubmitError", "Verification", "__version__", "connect",
]
