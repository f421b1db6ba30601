"""The logistic regression's stand-in for a missing signal: each column's median over its finite values."""

from __future__ import annotations

import warnings

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from upcurve.scoring.models import _finite_medians

values = st.one_of(st.floats(-1e6, 1e6), st.just(np.nan), st.just(np.inf), st.just(-np.inf))


@given(arrays(np.float64, st.tuples(st.integers(1, 12), st.integers(1, 6)), elements=values))
def test_medians_of_finite_values_and_zero_for_a_column_without_any(X: np.ndarray) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an all-missing column (billing data has no usage) prints nothing
        got = _finite_medians(X)
    for j in range(X.shape[1]):
        column = X[:, j][np.isfinite(X[:, j])]
        assert got[j] == (np.median(column) if column.size else 0.0)
