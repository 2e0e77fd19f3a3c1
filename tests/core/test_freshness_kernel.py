"""The freshness-count kernel equals its plain-Python reference and brain.vitals.sensors.freshness."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from brain.kernels.freshness import freshness_counts, freshness_counts_reference
from brain.vitals import sensors

H = 3_600_000.0


@settings(max_examples=80, deadline=None)
@given(n_rows=st.integers(0, 40), n_ticks=st.integers(1, 4), n_sensors=st.integers(1, 6), n_groups=st.integers(1, 3), data=st.data())
def test_kernel_equals_reference(n_rows, n_ticks, n_sensors, n_groups, data):
    tick = data.draw(hnp.arrays(np.int64, n_rows, elements=st.integers(-1, n_ticks - 1)))
    sensor = data.draw(hnp.arrays(np.int64, n_rows, elements=st.integers(-1, n_sensors - 1)))
    seen = data.draw(hnp.arrays(np.float64, n_rows, elements=st.one_of(st.just(np.nan), st.floats(0, 48 * H))))
    ticks_ms = np.sort(data.draw(hnp.arrays(np.float64, n_ticks, elements=st.floats(0, 48 * H))))
    fresh = data.draw(hnp.arrays(np.float64, n_sensors, elements=st.floats(1, 4 * H)))
    silent = fresh * data.draw(st.floats(1, 10))
    group_of = data.draw(hnp.arrays(np.int64, n_sensors, elements=st.integers(0, n_groups - 1)))
    got = freshness_counts(tick, sensor, seen, n_ticks, ticks_ms, fresh, silent, group_of, n_groups)
    want = freshness_counts_reference(tick, sensor, seen, n_ticks, ticks_ms, fresh, silent, group_of, n_groups)
    np.testing.assert_array_equal(got, want)
    assert got.sum() == n_ticks * n_sensors  # every sensor counted once per tick


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_codes_are_sensors_freshness(data):
    # one group per sensor: the counts are the one-hot codes of sensors.freshness
    n = data.draw(st.integers(1, 12))
    seen = data.draw(hnp.arrays(np.float64, n, elements=st.one_of(st.just(np.nan), st.floats(0, 30 * H))))
    interval_s = data.draw(hnp.arrays(np.float64, n, elements=st.sampled_from([60.0, 300.0, 3600.0, 86400.0])))
    t = data.draw(st.floats(0, 30 * H))
    want = sensors.freshness(seen, t, interval_s, 2.0, 10.0)
    interval_ms = interval_s * 1000.0
    counts = freshness_counts(np.zeros(n, dtype=np.int64), np.arange(n), seen, 1, np.array([t]), 2.0 * interval_ms, 10.0 * interval_ms,
                              np.arange(n), n)
    np.testing.assert_array_equal(counts[0].argmax(axis=1), want)


def test_latest_of_several_rows_wins():
    counts = freshness_counts(np.array([0, 0, 0]), np.array([0, 0, 0]), np.array([0.0, 5 * H, np.nan]), 1, np.array([6 * H]),
                              np.array([2 * H]), np.array([10 * H]), np.array([0]), 1)
    assert counts[0, 0].tolist() == [1, 0, 0, 0]  # seen 1 h before the tick (not 6 h): fresh
