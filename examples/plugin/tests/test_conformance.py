"""labctl's exported conformance suite (`labctl.testing.conformance`) over this plug-in's instruments: each
driver against its simulator core over labsim://, TCP and a pty, and (the DMT143, which is asked) the fault
matrix. Skipped, saying so, on a labctl without the suite."""

from __future__ import annotations

import pytest

conformance = pytest.importorskip("labctl.testing.conformance",
                                  reason="this labctl does not export labctl.testing.conformance")
FaultOp, InstrumentSpec = conformance.FaultOp, conformance.InstrumentSpec

SPECS = {
    "vaisala_dmt143": InstrumentSpec(
        "vaisala_dmt143", identity="DMT143", safe_read=lambda d: d.water(), core_safe=lambda c: True,
        safe_reply=lambda r: r["errors"] == "No errors",
        fault_ops={"send": FaultOp(rb"^SEND\r$", lambda d: d.water()),
                   "errs": FaultOp(rb"^ERRS\r$", lambda d: d.errors())},
        stuck_busy_refuses=False,  # a transmitter has no busy state: it only measures
    ),
    # the analyzer is never sent a byte, so no fault can ride on a host message: sessions only
    "teledyne3000ta": InstrumentSpec(
        "teledyne3000ta", identity="Teledyne 3000TA", safe_read=lambda a: a.oxygen(),
        core_safe=lambda c: True, safe_reply=lambda r: 0.0 <= r["o2_ppm"] < 10.0, fault_ops={}, timeout=5.0,
    ),
}


@pytest.mark.parametrize("exposure", conformance.EXPOSURES)
@pytest.mark.parametrize("name", sorted(SPECS))
def test_session(name: str, exposure: str) -> None:
    conformance.check_session(SPECS[name], exposure)


@pytest.mark.parametrize(("name", "kind", "op"), conformance.fault_cases(SPECS))
def test_fault(name: str, kind, op: str) -> None:
    conformance.check_fault(SPECS[name], kind, op)


def test_stuck_busy() -> None:
    conformance.check_stuck_busy(SPECS["vaisala_dmt143"])
