"""The fault operator's remembered sensor rows (``_IdRows``) give, tick after tick, what a dict
lookup per row gives: same ids again (the cache), other ids, other order, nulls, unknown ids, and
a String column after a Categorical one of the same values."""
from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.fault_operator import _IdRows

IDS = ["A", "B", "C", "D"]
INDEX = {"A": 0, "B": 1, "C": 2}  # "D" is not one of the family's sensors


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.lists(st.one_of(st.none(), st.sampled_from(IDS)), max_size=8), st.booleans()), min_size=1, max_size=12))
def test_id_rows_equal_a_lookup_per_row(ticks):
    rows_of = _IdRows(INDEX)
    previous = None
    for ids, categorical in ticks:
        # half the time the very same ids again, as most ticks list the same sensors in the same order
        col = pl.Series("sensor_id", ids if previous is None or categorical else previous, dtype=pl.Utf8)
        if categorical:
            col = col.cast(pl.Categorical)
        previous = ids
        got = rows_of(col)
        want = np.array([INDEX.get(s, -1) for s in col.cast(pl.Utf8).to_list()], dtype=np.int64)
        assert got.dtype == np.int64 and np.array_equal(got, want)
        assert not got.flags.writeable  # shared between calls: a caller cannot change the next tick's rows
