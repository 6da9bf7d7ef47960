"""The streaming short detector: physics.md §4.1 criteria and the protocol's `short_detection` rule."""

from __future__ import annotations

import numpy as np

from labctl.steps.cycling import ShortDetector


def chunks(v: np.ndarray, size: int, t0: float = 0.0):
    t = t0 + np.arange(len(v), dtype=float)
    for k in range(0, len(v), size):
        yield t[k : k + size], v[k : k + size], np.full(len(v[k : k + size]), 1e-3)


def first_short(det: ShortDetector, v: np.ndarray, size: int) -> tuple[float, str] | None:
    for t, vv, i in chunks(v, size):
        found = det.check(t, vv, i)
        if found is not None:
            return found
    return None


def test_low_voltage_held_for_the_window_is_a_short_at_its_start():
    # 2.5 mV, then 1.5 mV from t = 1000 s: no 50 % collapse, so only the protocol's rule can see it
    v = np.concatenate([np.full(1000, 0.0025), np.full(900, 0.0015)])
    found = first_short(ShortDetector(threshold=0.002, window=600.0), v, size=250)
    assert found is not None and found[0] == 1000.0 and "below 2 mV for 600 s" in found[1]


def test_the_stretch_is_carried_across_calls_of_one_point():
    v = np.concatenate([np.full(10, 0.0025), np.full(700, 0.0015)])
    found = first_short(ShortDetector(threshold=0.002, window=600.0), v, size=1)
    assert found is not None and found[0] == 10.0


def test_shorter_dips_or_a_break_are_not_a_short():
    v = np.full(3000, 0.03)
    v[100:650] = 0.001  # 550 s: shorter than the window
    v[1000:1400] = v[1401:1800] = 0.001  # 799 s low, but broken at t = 1400
    assert first_short(ShortDetector(threshold=0.002, window=600.0), v, size=300) is None


def test_a_collapse_found_earlier_by_physics_criteria_wins():
    v = np.concatenate([np.full(1000, 0.03), np.full(900, 0.001)])  # 30 mV, then 1 mV
    found = first_short(ShortDetector(threshold=0.002, window=600.0), v, size=250)
    assert found is not None and found[0] == 1000.0 and "half-cycle median" in found[1]


def test_without_a_threshold_only_the_physics_criteria_apply():
    v = np.concatenate([np.full(1000, 0.03), np.full(900, 0.001)])
    det = ShortDetector()
    assert det._held_low(np.arange(1900.0), np.abs(v)) is None
