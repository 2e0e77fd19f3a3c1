"""The window kernel equals its plain-Python reference; windows close on the watermark."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from brain.kernels.window import accumulate, accumulate_reference
from brain.windows import TumblingWindows


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 50),
    n_keys=st.integers(1, 5),
    n_fields=st.integers(1, 3),
    data=st.data(),
)
def test_kernel_equals_reference(n, n_keys, n_fields, data):
    slot = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 1)))
    key = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, n_keys - 1)))
    values = data.draw(hnp.arrays(np.float64, (n, n_fields), elements=st.one_of(st.just(np.nan), st.floats(-1e6, 1e6))))
    shape = (2, n_keys, n_fields)
    got = [np.zeros(shape), np.zeros(shape), np.full(shape, -np.inf)]
    want = [np.zeros(shape), np.zeros(shape), np.full(shape, -np.inf)]
    accumulate(slot, key, values, *got)
    accumulate_reference(slot, key, values, *want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(ts=st.lists(st.integers(0, 10_000), min_size=1, max_size=60), split=st.integers(0, 60))
def test_batching_does_not_change_window_sums(ts, split):
    ts = np.array(sorted(ts), dtype=np.int64)
    keys = ts % 3
    vals = (ts.astype(np.float64) / 7.0)[:, None]
    one = TumblingWindows(3, 1000, ["v"])
    one.add(ts, keys, vals)
    two = TumblingWindows(3, 1000, ["v"])
    two.add(ts[:split], keys[:split], vals[:split])
    two.add(ts[split:], keys[split:], vals[split:])
    a, b = one.close(20_000), two.close(20_000)
    assert [w.start_ms for w in a] == [w.start_ms for w in b] == sorted({int(t) // 1000 * 1000 for t in ts})
    for wa, wb in zip(a, b):
        np.testing.assert_array_equal(wa.sums, wb.sums)  # bit-identical: the differential test relies on it
        np.testing.assert_array_equal(wa.counts, wb.counts)
        # the window holds exactly the records whose time falls inside it
        inside = (ts >= wa.start_ms) & (ts < wa.end_ms)
        assert wa.counts.sum() == inside.sum()


def test_window_stays_open_until_watermark_reaches_its_end():
    w = TumblingWindows(1, 1000, ["v"])
    w.add(np.array([100, 999]), np.array([0, 0]), np.array([[1.0], [3.0]]))
    assert w.close(999) == []
    (closed,) = w.close(1000)
    assert closed.mean("v").tolist() == [2.0] and closed.max("v").tolist() == [3.0]
