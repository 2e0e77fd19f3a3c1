"""compute_vitals on the shipped demo city (brain/city/demo), with uniform synthetic windows whose
vital signs are known in advance."""
from __future__ import annotations

import polars as pl
import pytest

from brain.vitals import compute_vitals

city_mod = pytest.importorskip("brain.city")

T = 1_768_000_000_000
M = 60_000


@pytest.fixture(scope="module")
def demo():
    return city_mod.load_city(city_mod.demo_city_path())


@pytest.fixture(scope="module")
def out(demo):
    segs = demo.segments
    # Every segment at half its free-flow speed: TTI 2.0 -> TPI 6 + 0.2/0.3*2 = 7.333 everywhere.
    traffic = pl.DataFrame({
        "segment_id": [s.id for s in segs], "window_start_ms": [T - 5 * M] * len(segs), "window_end_ms": [T] * len(segs),
        "volume_veh": [10.0 * s.lanes for s in segs], "speed_kmh": [s.free_flow_kmh / 2 for s in segs],
        "occupancy_pct": [20.0] * len(segs), "n_readings": [5] * len(segs),
    })
    air_ids = [s.id for s in demo.sensors if s.type == "air"]
    # Every station PM2.5 80 -> 107 (and nothing else measured): every district with a station has AQI 107.
    air_1h = pl.DataFrame({"sensor_id": air_ids, "window_start_ms": [T - 60 * M] * len(air_ids), "window_end_ms": [T] * len(air_ids),
                           "pm25_ugm3": [80.0] * len(air_ids)})
    seen = pl.DataFrame({"sensor_id": [s.id for s in demo.sensors], "last_seen_ms": [T - 1000] * len(demo.sensors)})
    return compute_vitals({"traffic": traffic, "air_1h": air_1h, "sensor_last_seen": seen}, demo, T)


def test_demo_districts(out, demo):
    d = out["district"]
    assert d["district"].to_list() == [x.id for x in demo.districts]
    with_segments = {s.district for s in demo.segments}
    with_air = {s.district for s in demo.sensors if s.type == "air"}
    for row in d.iter_rows(named=True):
        if row["district"] in with_segments:
            assert row["tpi"] == pytest.approx(6 + 0.2 / 0.3 * 2)
            assert row["tpi_level_name"] == "中度拥堵"
        if row["district"] in with_air:
            assert (row["aqi"], row["primary_pollutant"]) == (107.0, "pm25")
        assert row["sensors_fresh_share"] == 1.0 and row["registry_metadata_share"] == 1.0
        assert 0 <= row["health_index"] <= 100
    assert out["segment_traffic"].height == len(demo.segments)
    assert out["city"]["sensors_registered"].to_list() == [len(demo.sensors)]
