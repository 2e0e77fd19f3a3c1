"""TTI, TPI and levels against hand-computed cases; network aggregation against the numpy references."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.vitals import traffic


@pytest.mark.parametrize(
    "tti, tpi, level_name",
    [
        (1.0, 0.0, "畅通"),  # free flow
        (1.1, 1.0, "畅通"),  # +10 %: halfway to the +20 % edge (TPI 2)
        (1.2, 2.0, "基本畅通"),  # +20 %: the edge belongs to the upper level
        (1.65, 5.0, "轻度拥堵"),  # 4 + (1.65-1.5)/0.3*2 = 5
        (1.8, 6.0, "中度拥堵"),  # +80 %
        (2.0, 6.0 + 0.2 / 0.3 * 2, "中度拥堵"),  # 7.33
        (2.1, 8.0, "严重拥堵"),  # +110 %
        (2.25, 9.0, "严重拥堵"),
        (3.0, 10.0, "严重拥堵"),  # clamped
        (0.7, 0.0, "畅通"),  # faster than free flow is not negative congestion
    ],
)
def test_tpi_hand_computed(tti, tpi, level_name):
    got = traffic.tpi_from_tti([tti])
    assert got[0] == pytest.approx(tpi)
    assert traffic.tpi_level_names(traffic.tpi_level(got)) == [level_name]


def test_tti_from_travel_time_and_speed_agree():
    # 800 m at free flow 60 km/h = 48 s. 72 s -> TTI 1.5, the same as driving it at 40 km/h.
    assert traffic.tti_from_travel_time([72.0], [48.0]).tolist() == [1.5]
    assert traffic.tti_from_speed([40.0], [60.0]).tolist() == [1.5]
    assert traffic.tpi_from_tti([1.5]).tolist() == [4.0]


@pytest.mark.parametrize(
    "speed, road_class, level",
    [(70, "expressway", 1), (65, "expressway", 2), (50.1, "expressway", 2), (50, "expressway", 3), (35, "expressway", 4),
     (20.5, "expressway", 4), (20, "expressway", 5), (41, "arterial", 1), (40, "arterial", 2), (25, "arterial", 3),
     (15.5, "arterial", 4), (15, "arterial", 5), (36, "secondary", 1), (30, "secondary", 2), (20, "secondary", 3),
     (12, "secondary", 4), (10, "secondary", 5), (0, "secondary", 5)],
)
def test_speed_bands(speed, road_class, level):
    assert traffic.speed_level([speed], [road_class]).tolist() == [level]


def test_speed_level_unknown_class_is_clear():
    with pytest.raises(ValueError, match="unknown road class"):
        traffic.speed_level([30.0], ["footpath"])


def test_bad_inputs():
    with pytest.raises(ValueError, match="free-flow travel times must be > 0"):
        traffic.tti_from_travel_time([10.0], [0.0])
    with pytest.raises(ValueError, match="speeds must be >= 0"):
        traffic.tti_from_speed([-1.0], [50.0])


def test_congested_share_hand():
    # 2 km severe + 1 km moderate of 8 km known: 3/8; with min level 5 only the 2 km: 2/8.
    assert traffic.congested_share([2, 1, 5, 3], [5, 4, 1, 0]) == 0.375
    assert traffic.congested_share([2, 1, 5, 3], [5, 4, 1, 0], min_level=5) == 0.25


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 50, allow_nan=False), min_size=2, max_size=40))
def test_tpi_bounded_and_monotone_in_tti(ttis):
    t = np.sort(np.asarray(ttis))
    tpi = traffic.tpi_from_tti(t)
    assert np.all((tpi >= 0) & (tpi <= 10))
    assert np.all(np.diff(tpi) >= 0)
    lv = traffic.tpi_level(tpi)
    assert np.all(np.diff(lv) >= 0) and np.all((lv >= 1) & (lv <= 5))


seg_row = st.tuples(
    st.one_of(st.none(), st.floats(0, 10, allow_nan=False)),  # tpi
    st.one_of(st.none(), st.floats(1, 5, allow_nan=False)),  # tti
    st.one_of(st.none(), st.floats(0, 120, allow_nan=False)),  # speed
    # vkm: no subnormal weights (5e-324 veh-km at 2 km/h underflows to 0 h: the numpy reference then
    # rescales, the polars aggregation gives inf; no real weight is that small)
    st.one_of(st.none(), st.floats(0, 1000, allow_nan=False, allow_subnormal=False)),  # vkm
    st.floats(0.01, 5, allow_nan=False),  # length
    st.integers(0, 5),  # level
)


@settings(max_examples=150, deadline=None)
@given(st.lists(seg_row, min_size=1, max_size=30), st.integers(1, 5))
def test_network_aggregations_match_numpy_references(rows, min_level):
    cols = ["tpi", "tti", "speed_kmh", "vkm", "length_km", "congestion_level"]
    f = pl.DataFrame(rows, schema=dict(zip(cols, [pl.Float64] * 5 + [pl.Int64])), orient="row")
    got = f.select(traffic.network_aggregations(min_level)).row(0, named=True)

    def arr(c):
        return f[c].cast(pl.Float64).fill_null(np.nan).to_numpy()

    def same(a, b):
        if a is None or (isinstance(a, float) and np.isnan(a)):
            return b is None or np.isnan(b)
        return b == pytest.approx(a, rel=1e-9, abs=1e-12)

    assert same(got["tpi"], traffic.weighted_mean(arr("tpi"), arr("vkm")))
    assert same(got["tti"], traffic.weighted_mean(arr("tti"), arr("vkm")))
    assert same(got["mean_speed_kmh"], traffic.space_mean_speed_kmh(arr("speed_kmh"), arr("vkm")))
    assert same(got["congested_km_share"], traffic.congested_share(arr("length_km"), f["congestion_level"].to_numpy(), min_level))
