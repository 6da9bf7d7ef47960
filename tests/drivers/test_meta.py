"""Every driver in the registry has its driver class, its simulator class and its transcript tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.drivers import registry

TESTS = Path(__file__).parent
#: drivers another engineer is writing now; xfail (not fail) while their pieces are missing
IN_PROGRESS = {"emstat4", "sqm160"}


def _missing(name: str) -> list[str]:
    entry = registry.entry(name)
    missing = []
    for what, path in (("driver", entry.driver), ("simulator", entry.simulator)):
        try:
            registry.load(path)
        except (ImportError, AttributeError) as exc:
            missing.append(f"{what} {path} ({exc.__class__.__name__}: {exc})")
    if not (TESTS / f"test_{name}.py").is_file():
        missing.append(f"tests/drivers/test_{name}.py")
    return missing


@pytest.mark.parametrize("name", sorted(registry.BUILTIN))
def test_registry_entry_is_complete(name):
    missing = _missing(name)
    if missing and name in IN_PROGRESS:
        pytest.xfail(f"{name} is being written: missing {'; '.join(missing)}")
    assert not missing, f"{name}: missing {'; '.join(missing)}"


@pytest.mark.parametrize("name", sorted(registry.BUILTIN))
def test_driver_declares_what_the_engine_and_plan_read(name):
    try:
        cls = registry.driver_class(name)
    except ImportError:
        pytest.xfail(f"{name}: driver not written yet") if name in IN_PROGRESS else pytest.fail(name)
    entry = registry.entry(name)
    assert name == cls.NAME and entry.role == cls.ROLE
    assert callable(getattr(cls, "safe_state", None)) and callable(getattr(cls, "identify", None))
    for key, limit in cls.LIMITS.items():
        assert limit.name == key and limit.low < limit.high
