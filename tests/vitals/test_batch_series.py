"""The batch's typed Series constructors build what polars' public constructor builds."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_series_equal

from brain.series import CONSTRUCTORS as _SERIES


@pytest.mark.parametrize("n", [0, 1, 7, 1000])
def test_typed_constructors_equal_public_ones(n):
    rng = np.random.default_rng(n)
    floats = rng.standard_normal(n)
    floats[::3] = np.nan
    for nan_to_null in (False, True):
        assert_series_equal(_SERIES["f64"]("x", floats, nan_to_null), pl.Series("x", floats, nan_to_null=nan_to_null))
    ints = rng.integers(-(2**62), 2**62, n)
    assert_series_equal(_SERIES["i64"]("k", ints), pl.Series("k", ints))
    rows = rng.integers(0, 2**31, n).astype(np.uint32)
    assert_series_equal(_SERIES["u32"]("_i", rows), pl.Series("_i", rows))
    # non-contiguous and other-dtype inputs are converted, not misread
    assert_series_equal(_SERIES["f64"]("x", floats[::2], False), pl.Series("x", floats[::2]))
    assert_series_equal(_SERIES["i64"]("k", ints.astype(np.int32)[::-1]), pl.Series("k", ints.astype(np.int32)[::-1].astype(np.int64)))
