"""The latest-window kernel equals its plain-Python reference and a sort-based formulation."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from brain.kernels.latest import latest_rows, latest_rows_reference


@settings(max_examples=100, deadline=None)
@given(n=st.integers(0, 50), n_ticks=st.integers(1, 4), n_keys=st.integers(1, 5), max_age=st.integers(1, 400), data=st.data())
def test_kernel_equals_reference(n, n_ticks, n_keys, max_age, data):
    ti = data.draw(hnp.arrays(np.int64, n, elements=st.integers(-1, n_ticks - 1)))
    k = data.draw(hnp.arrays(np.int64, n, elements=st.integers(-1, n_keys - 1)))
    # few distinct ends, so that ties (several windows ending together) happen
    end = data.draw(hnp.arrays(np.float64, n, elements=st.one_of(st.just(np.nan), st.sampled_from([0.0, 100.0, 150.0, 200.0, 300.0]))))
    ticks = np.sort(data.draw(hnp.arrays(np.int64, n_ticks, elements=st.integers(0, 400), unique=True)))
    got = latest_rows(ti, k, end, ticks, max_age, n_keys)
    want = latest_rows_reference(ti, k, end, ticks, max_age, n_keys)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60), data=st.data())
def test_kernel_equals_stable_sort(n, data):
    # the formulation it replaced: rows in window, stable sort by (key, end), the last of each key
    ti = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 2)))
    k = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 3)))
    end = data.draw(hnp.arrays(np.float64, n, elements=st.sampled_from([100.0, 200.0, 250.0, 300.0])))
    ticks = np.array([200, 300, 400])
    tick = ticks[ti]
    sel = np.flatnonzero((end <= tick) & (end > tick - 150))
    key = ti[sel] * 4 + k[sel]
    order = np.lexsort((end[sel], key))
    s, key = sel[order], key[order]
    last = np.ones(len(s), dtype=bool)
    last[:-1] = key[1:] != key[:-1]
    rows, keys = latest_rows(ti, k, end, ticks, 150, 4)
    np.testing.assert_array_equal(rows, s[last])
    np.testing.assert_array_equal(keys, key[last])
