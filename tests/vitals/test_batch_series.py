"""The batch's typed Series constructors build what polars' public constructor builds."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal, assert_series_equal

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


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=True)), max_size=40),
       st.lists(st.one_of(st.none(), st.text(max_size=4)), max_size=40), st.data())
def test_gathers_and_frames_equal_public_ones(numbers, texts, data):
    """``take``/``take_rows``/``frame`` (polars' own calls) give what the public API gives: nulls, NaN
    values, strings, repeated and reversed positions; a position past the end is an error, not a
    wrong row."""
    from brain import series

    n = min(len(numbers), len(texts))
    table = pl.DataFrame([pl.Series("x", numbers[:n], dtype=pl.Float64), pl.Series("s", texts[:n], dtype=pl.Utf8)])
    idx = np.array(data.draw(st.lists(st.integers(0, max(n - 1, 0)), max_size=30) if n else st.just([])), dtype=np.int64)
    for col in table.get_columns():
        assert_series_equal(series.take(col, idx), col[idx])
    assert_frame_equal(series.take_rows(table, idx), table[idx])
    assert_frame_equal(series.frame(table.get_columns()), pl.DataFrame(table.get_columns()))
    with pytest.raises((IndexError, pl.exceptions.PolarsError)):
        series.take(table["x"], np.array([n]))


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)), max_size=40).map(
           lambda v: pl.Series("x", v, dtype=pl.Float64)),
       st.lists(st.one_of(st.none(), st.integers(-(2**53), 2**53)), max_size=40).map(lambda v: pl.Series("n", v, dtype=pl.Int64)),
       st.lists(st.one_of(st.none(), st.floats(width=32)), max_size=40).map(lambda v: pl.Series("f", v, dtype=pl.Float32))))
def test_floats_equal_fill_null_nan(col):
    """``series.floats`` (the operators' numpy view of a numeric column) gives what the query it
    replaced gives: the values as float64, NaN where null, NaN values and infinities kept."""
    from brain import series

    got, want = series.floats(col), col.cast(pl.Float64).fill_null(np.nan).to_numpy()
    assert got.dtype == np.float64 and got.shape == want.shape
    assert np.array_equal(got.view(np.int64), want.view(np.int64)) or np.array_equal(got, want, equal_nan=True)
