"""The piecewise-linear IAQI kernel equals the numpy formulation it replaced, bit for bit."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from brain.kernels.iaqi import piecewise_linear, piecewise_linear_reference
from brain.vitals import air


@settings(max_examples=150, deadline=None)
@given(n_bp=st.integers(2, 8), cap=st.booleans(), ceil=st.booleans(), data=st.data())
def test_kernel_equals_reference(n_bp, cap, ceil, data):
    bp = np.sort(data.draw(hnp.arrays(np.float64, n_bp, elements=st.floats(0, 1000), unique=True)))
    iq = np.sort(data.draw(hnp.arrays(np.float64, n_bp, elements=st.floats(0, 500))))
    with np.errstate(all="ignore"):  # breakpoints a few ulps apart: an infinite slope is a fine test too
        slope = np.diff(iq) / np.diff(bp)
    # values on the breakpoints, between, beyond both ends, NaN and inf
    c = data.draw(hnp.arrays(np.float64, st.integers(0, 30),
                             elements=st.one_of(st.floats(-10, 2000), st.sampled_from(bp.tolist()), st.just(np.nan), st.just(np.inf))))
    got = piecewise_linear(c, bp, iq, slope, cap, ceil)
    with np.errstate(all="ignore"):
        want = piecewise_linear_reference(c, bp, iq, slope, cap, ceil)
    np.testing.assert_array_equal(got, want)
    assert (np.signbit(got) == np.signbit(want)).all()


def test_every_row_of_the_standard_table():
    table = air.aqi_table()
    c = np.concatenate([np.linspace(0, 3000, 3001), np.array([np.nan])])
    for name, row in table.rows.items():
        got = piecewise_linear(c, row.conc, row.iaqi, row.slope, row.fallback is None, table.rounding == "ceil")
        want = piecewise_linear_reference(c, row.conc, row.iaqi, row.slope, row.fallback is None, table.rounding == "ceil")
        np.testing.assert_array_equal(got, want, err_msg=name)
