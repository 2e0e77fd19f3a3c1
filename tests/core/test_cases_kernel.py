"""The grid-case count kernel equals the (ticks x cases) mask formulation it replaced."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from brain.kernels.cases import case_counts, case_counts_reference

H = 3_600_000


@settings(max_examples=120, deadline=None)
@given(n=st.integers(0, 30), n_ticks=st.integers(1, 5), n_groups=st.integers(1, 4), data=st.data())
def test_kernel_equals_reference(n, n_ticks, n_groups, data):
    def times():
        return data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 6 * H))), data.draw(hnp.arrays(np.bool_, n))

    (rep, rep_ok), (closed, closed_ok), (deadline, deadline_ok) = times(), times(), times()
    ticks = np.sort(data.draw(hnp.arrays(np.int64, n_ticks, elements=st.integers(0, 7 * H), unique=True)))
    group = data.draw(hnp.arrays(np.int64, n, elements=st.integers(-1, n_groups - 1)))
    lookback = data.draw(st.sampled_from([H // 2, H, 24 * H]))
    args = (rep, rep_ok, closed, closed_ok, deadline, deadline_ok, ticks, lookback, H, group, n_groups)
    got_counts, got_duration = case_counts(*args)
    want_counts, want_duration = case_counts_reference(*args)
    np.testing.assert_array_equal(got_counts, want_counts)
    np.testing.assert_array_equal(got_duration, want_duration)
