"""`failure.median` is `np.median` bit for bit: the short criterion and the half-cycle metrics use it
(issue 19), and a run's report must agree with what it said before."""

from __future__ import annotations

import numpy as np
import pytest

from labctl.analysis.failure import median


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 10, 11, 900, 1801, 3600])
def test_median_equals_numpy_bit_for_bit(n: int) -> None:
    rng = np.random.default_rng(n)
    for x in (rng.normal(0.03, 1e-3, n), rng.integers(-3, 3, n).astype(float), np.full(n, -1.13e-3),
              np.abs(rng.standard_cauchy(n))):
        assert median(x) == float(np.median(x))
        assert median(list(x)) == float(np.median(x))  # a history list of floats
        assert type(median(x)) is float


def test_median_nan_and_empty_as_numpy() -> None:
    assert np.isnan(median(np.array([1.0, np.nan, 2.0])))
    assert np.isnan(median(np.array([np.nan, 1.0])))
    with pytest.warns(RuntimeWarning):
        assert np.isnan(median(np.zeros(0)))
