"""The event clock's p1/p99 guard equals numpy's quantiles (``higher`` / ``lower``) exactly."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.eventtime import _p1_p99


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-(2**62), 2**62), min_size=1, max_size=500))
def test_one_partition_gives_numpys_quantiles(values):
    ts = np.array(values, dtype=np.int64)
    expected = (int(np.quantile(ts, 0.01, method="higher")), int(np.quantile(ts, 0.99, method="lower")))
    assert _p1_p99(ts) == expected
