"""The per-segment traffic kernel equals its plain-Python reference (numpy's interp and searchsorted)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from brain.kernels.segments import segment_figures, segment_figures_reference
from brain.vitals import traffic

TABLE = traffic.congestion_table()


def values(n, low, high):
    special = st.sampled_from([0.0, np.nan, np.inf, 1e-300])
    return hnp.arrays(np.float64, n, elements=st.one_of(st.floats(low, high, allow_nan=False), special))


@settings(max_examples=120, deadline=None)
@given(n=st.integers(0, 40), n_ticks=st.integers(1, 3), n_seg=st.integers(1, 5), data=st.data())
def test_kernel_equals_reference(n, n_ticks, n_seg, data):
    ti = np.sort(data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, n_ticks - 1))))
    k = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, n_seg - 1)))
    flags = [data.draw(hnp.arrays(np.bool_, n)) for _ in range(3)]
    vol, speed, tt = data.draw(values(n, -5, 200)), data.draw(values(n, 0, 150)), data.draw(values(n, -10, 2000))
    length = data.draw(hnp.arrays(np.float64, n_seg, elements=st.floats(0.0, 5.0)))
    free_flow = data.draw(hnp.arrays(np.float64, n_seg, elements=st.floats(0.0, 120.0)))
    lanes = data.draw(hnp.arrays(np.float64, n_seg, elements=st.integers(1, 6).map(float)))
    edges = TABLE.speed_edges_kmh[data.draw(hnp.arrays(np.int64, n_seg, elements=st.integers(0, 2)))]
    args = (ti, k, vol, flags[0], speed, flags[1], tt, flags[2], length, free_flow, lanes, edges, n_ticks,
            TABLE.tti_points, TABLE.tpi_points, TABLE.level_tpi_min)
    with np.errstate(all="ignore"):
        got = segment_figures(*args)
        want = segment_figures_reference(*args)
    assert got[-1] == want[-1]
    for g, w in zip(got[:-1], want[:-1]):
        np.testing.assert_array_equal(g, w)  # the same operations in the same order: the same bits


def test_tpi_follows_the_table_and_edges_give_levels():
    # TTI 1.35 is halfway between 1.2 (TPI 2) and 1.5 (TPI 4): TPI 3 (traffic.tpi_from_tti's example)
    length, ff = np.array([1.0]), np.array([60.0])  # free-flow time 60 s
    out = segment_figures(np.array([0]), np.array([0]), np.array([np.nan]), np.array([False]), np.array([np.nan]),
                          np.array([False]), np.array([81.0]), np.array([True]), length, ff, np.array([2.0]),
                          TABLE.speed_edges_kmh[[1]], 1, TABLE.tti_points, TABLE.tpi_points, TABLE.level_tpi_min)
    speed, speed_ok, travel_time, tti, tpi, tpi_level, speed_level, source, vkm, bad = out
    assert tti[0] == 1.35 and abs(tpi[0] - 3.0) < 1e-12 and tpi_level[0] == 2 and source[0] == 0 and bad == 0
    assert speed_level[0] == traffic.speed_level([1.0 / (81.0 / 3600.0)], ["arterial"])[0]
    assert vkm[0] == 2.0 * 1.0  # probe only, no detector volume in the tick: 1 vehicle per lane
