"""compute_vitals end to end on a tiny hand-built city, every expected value worked out by hand."""
from __future__ import annotations

import datetime as dt
import math
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from brain.city.model import City, District, GridCell, RoadSegment, Sensor, Street
from brain.vitals import VitalsConfig, compute_vitals

M = 60_000
H = 3_600_000
# 2026-01-10 23:05 in Beijing: night for the noise rules.
T = int(dt.datetime(2026, 1, 10, 23, 5, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp() * 1000)


def _sensor(id, type, district, cell, unit="-", segment=None, nominal=None, lon=116.40, lat=39.90):
    return Sensor(id=id, type=type, lon=lon, lat=lat, district=district, cell=cell, owner="ops", unit=unit,
                  valid_min=0.0, valid_max=1e6, segment=segment, nominal=nominal)


@pytest.fixture(scope="module")
def city():
    return City(
        name="Tiny", admin_code="110000", timezone="Asia/Shanghai", center=[116.35, 39.9],
        districts=[District(id="D1", name="East", admin_code="110101", center=[116.40, 39.90]),
                   District(id="D2", name="West", admin_code="110102", center=[116.30, 39.90])],
        streets=[Street(id="ST1", name="e", district="D1"), Street(id="ST2", name="w", district="D2")],
        cells=[GridCell(id="C1", district="D1", street="ST1", center=[116.40, 39.90], noise_class="1"),
               GridCell(id="C2", district="D2", street="ST2", center=[116.30, 39.90], noise_class="4a")],
        segments=[
            RoadSegment(id="S1", name="a", district="D1", cell="C1", road_class="arterial", length_m=800.0, free_flow_kmh=60.0,
                        lanes=2, line=[[116.40, 39.90], [116.41, 39.90]]),
            RoadSegment(id="S2", name="x", district="D1", cell="C1", road_class="expressway", length_m=2000.0, free_flow_kmh=80.0,
                        lanes=3, line=[[116.40, 39.91], [116.42, 39.91]]),
            RoadSegment(id="S3", name="s", district="D2", cell="C2", road_class="secondary", length_m=500.0, free_flow_kmh=40.0,
                        lanes=1, line=[[116.30, 39.90], [116.305, 39.90]]),
        ],
        intersections=[], corridors=[],
        sensors=[
            _sensor("L1", "loop", "D1", "C1", "km/h", segment="S1"),
            _sensor("P2", "probe", "D1", "C1", "s", segment="S2"),
            _sensor("L3", "loop", "D2", "C2", "km/h", segment="S3"),
            _sensor("A1", "air", "D1", "C1", "ug/m3"),
            _sensor("A2", "air", "D2", "C2", "ug/m3"),
            _sensor("N1", "noise", "D1", "C1", "dB(A)"),
            _sensor("U1", "utility_water", "D2", "C2", "kPa", nominal=300.0),
            _sensor("U2", "utility_power", "D1", "C1", "kW", nominal=100.0),
            _sensor("L4", "loop", "D2", "C2", "km/h"),  # no segment: incomplete registry entry
        ],
    )


def _frame(rows, schema):
    return pl.DataFrame(rows, schema=schema, orient="row")


W = {"window_start_ms": pl.Int64, "window_end_ms": pl.Int64}


@pytest.fixture(scope="module")
def frames():
    traffic = _frame([
        ("S1", T - 10 * M, T - 5 * M, 50.0, 60.0, 5.0, 5),  # older window: superseded
        ("S1", T - 5 * M, T, 120.0, 30.0, 18.0, 5),
        ("S1", T, T + 5 * M, 10.0, 5.0, 50.0, 5),  # after the window end: not yet
        ("S3", T - 5 * M, T, 30.0, 8.0, 40.0, 5),
        ("S404", T - 5 * M, T, 30.0, 8.0, 40.0, 5),  # unknown segment: ignored
    ], {"segment_id": pl.String, **W, "volume_veh": pl.Float64, "speed_kmh": pl.Float64, "occupancy_pct": pl.Float64, "n_readings": pl.Int64})
    probe = _frame([("S2", T - 5 * M, T, 120.0, 12)], {"segment_id": pl.String, **W, "travel_time_s": pl.Float64, "n_readings": pl.Int64})
    air_schema = {"sensor_id": pl.String, **W, "pm25_ugm3": pl.Float64, "pm10_ugm3": pl.Float64, "so2_ugm3": pl.Float64,
                  "no2_ugm3": pl.Float64, "o3_ugm3": pl.Float64, "co_mgm3": pl.Float64}
    air_1h = _frame([("A1", T - 65 * M, T - 5 * M, 80.0, None, None, None, 180.0, None),
                     ("A2", T - 65 * M, T - 5 * M, 20.0, None, None, None, None, None)], air_schema)
    air_24h = _frame([("A1", T - 24 * H - 5 * M, T - 5 * M, 60.0, None, None, None, None, None)], air_schema)
    air_8h = _frame([("A1", T - 5 * M, 120.0)], {"sensor_id": pl.String, "window_end_ms": pl.Int64, "o3_8h_ugm3": pl.Float64})
    noon = T - 11 * H - 5 * M  # 12:00 local
    noise = _frame([("N1", noon, noon + 5 * M, 50.0, 60.0), ("N1", T - 10 * M, T - 5 * M, 44.0, 55.0), ("N1", T - 5 * M, T, 48.0, 62.0)],
                   {"sensor_id": pl.String, **W, "laeq_db": pl.Float64, "lamax_db": pl.Float64})
    utility = _frame([("U1", T - 5 * M, T, 250.0, None, None), ("U2", T - 5 * M, T, None, None, 105.0)],
                     {"sensor_id": pl.String, **W, "pressure_kpa": pl.Float64, "flow_m3h": pl.Float64, "load_kw": pl.Float64})
    outages = _frame([("O1", "water", "C2", 200, T - 2 * H, None), ("O2", "power", "C1", 50, T - 3 * H, T - 1 * H)],
                     {"outage_id": pl.String, "utility": pl.String, "cell_id": pl.String, "customers": pl.Int64,
                      "started_ms": pl.Int64, "ended_ms": pl.Int64})
    z = T - 12 * H  # the grid test's case list, shifted so that t = 12 h is T
    cases = _frame([
        ("a", "road", "C1", z + int(11.5 * H), None, z + 20 * H),
        ("b", "road", "C1", z + 2 * H, None, z + 10 * H),
        ("c", "litter", "C1", z + 1 * H, z + 3 * H, z + 4 * H),
        ("d", "litter", "C2", z + 4 * H, z + 11 * H, z + 8 * H),
        ("f", "road", "C2", z + 5 * H, z + 13 * H, z + 6 * H),
    ], {"case_id": pl.String, "category": pl.String, "cell_id": pl.String, "reported_ms": pl.Int64, "closed_ms": pl.Int64,
        "deadline_ms": pl.Int64})
    incidents = _frame([
        ("I1", "fire", 1, 116.30, 39.90, T - 10 * M, T - 9 * M, T - 2 * M, None, "on_scene", "S3", 4),
        ("I2", "medical", 3, 116.401, 39.899, T - 60 * M, T - 59 * M, T - 50 * M, T - 30 * M, "closed", None, 1),
        ("I3", "police", 2, 116.30, 39.90, T - 48 * H, T - 47 * H, T - 46 * H, T - 40 * H, "closed", None, 1),
    ], {"incident_id": pl.String, "type": pl.String, "severity": pl.Int64, "lon": pl.Float64, "lat": pl.Float64,
        "reported_ms": pl.Int64, "dispatched_ms": pl.Int64, "on_scene_ms": pl.Int64, "closed_ms": pl.Int64,
        "status": pl.String, "segment_id": pl.String, "units": pl.Int64})
    last_seen = _frame([("L1", T - 30_000), ("P2", T - 100_000), ("L3", T - 30_000), ("A1", T - 300_000), ("A2", T - 3 * H),
                        ("N1", T - 10_000), ("U1", T - 60_000), ("L4", T - 2 * H)],
                       {"sensor_id": pl.String, "last_seen_ms": pl.Int64})
    return {"traffic": traffic, "probe": probe, "air_1h": air_1h, "air_24h": air_24h, "air_8h_o3": air_8h, "noise": noise,
            "utility": utility, "outages": outages, "cases": cases, "incidents": incidents, "sensor_last_seen": last_seen}


@pytest.fixture(scope="module")
def out(frames, city):
    return compute_vitals(frames, city, T)


def _by(frame, key):
    return {r[key]: r for r in frame.iter_rows(named=True)}


# Hand figures for the segments:
# S1: 800 m, free flow 60 km/h; detector 30 km/h -> TTI 2.0 -> TPI 6 + 0.2/0.3*2 = 7.333; arterial 30 km/h is level 3.
# S2: 2 km, free flow 80 km/h = 90 s; probe 120 s -> TTI 1.333 -> TPI 2 + 0.1333/0.3*2 = 2.889; 60 km/h expressway level 2.
# S3: 500 m, free flow 40; 8 km/h -> TTI 5 -> TPI 10; secondary <= 10 km/h is level 5.
# vkm: S1 120 veh * 0.8 km = 96; S3 30 * 0.5 = 15; S2 (probe only) 3 lanes * (150 veh / 3 lanes) * 2 km = 300.
TPI1, TPI2, TPI3 = 6 + 0.2 / 0.3 * 2, 2 + (120 / 90 - 1.2) / 0.3 * 2, 10.0


def test_segment_traffic(out):
    seg = _by(out["segment_traffic"], "segment_id")
    assert set(seg) == {"S1", "S2", "S3"}
    s1, s2, s3 = seg["S1"], seg["S2"], seg["S3"]
    assert (s1["volume_veh"], s1["speed_kmh"], s1["speed_source"]) == (120.0, 30.0, "detector")
    assert s1["tti"] == pytest.approx(2.0) and s1["tpi"] == pytest.approx(TPI1)
    assert (s1["tpi_level_name"], s1["speed_level"], s1["speed_level_name"]) == ("中度拥堵", 3, "轻度拥堵")
    assert s2["speed_source"] == "probe" and s2["speed_kmh"] == pytest.approx(60.0)
    assert s2["tti"] == pytest.approx(120 / 90) and s2["tpi"] == pytest.approx(TPI2) and s2["speed_level"] == 2
    assert s3["tpi"] == 10.0 and s3["speed_level"] == 5
    assert (s1["vkm"], s2["vkm"], s3["vkm"]) == (pytest.approx(96.0), pytest.approx(300.0), pytest.approx(15.0))


def test_district_traffic(out):
    d = _by(out["district"], "district")
    assert d["D1"]["tpi"] == pytest.approx((TPI1 * 96 + TPI2 * 300) / 396)  # 3.966
    assert (d["D1"]["tpi_level"], d["D1"]["tpi_level_name"]) == (2, "基本畅通")
    assert d["D1"]["tti"] == pytest.approx((2.0 * 96 + 120 / 90 * 300) / 396)
    assert d["D1"]["mean_speed_kmh"] == pytest.approx(396 / (96 / 30 + 300 / 60))  # 48.3
    assert d["D1"]["congested_km_share"] == 0.0
    assert d["D2"]["tpi"] == 10.0 and d["D2"]["congested_km_share"] == 1.0
    c = out["city"].row(0, named=True)
    assert c["tpi"] == pytest.approx((TPI1 * 96 + TPI2 * 300 + TPI3 * 15) / 411)
    assert c["congested_km_share"] == pytest.approx(0.5 / 3.3)
    assert c["name"] == "Tiny" and c["district"] is None


def test_air(out):
    st = _by(out["air_station"], "sensor_id")
    # A1: PM2.5 1 h 80 -> 107; O3 1 h 180 -> 75; O3 8 h 120 -> 50 + 50/60*20 = 66.7 -> 67.
    assert (st["A1"]["iaqi_pm25"], st["A1"]["iaqi_o3_1h"], st["A1"]["iaqi_o3_8h"]) == (107.0, 75.0, 67.0)
    assert (st["A1"]["aqi"], st["A1"]["primary_pollutant"], st["A1"]["level"]) == (107.0, "pm25", "III")
    assert st["A1"]["pm25_24h_ugm3"] == 60.0  # carried, not scored on the 1 h basis
    # A2: PM2.5 20 -> 50/35*20 = 28.6 -> 29.
    assert (st["A2"]["aqi"], st["A2"]["primary_pollutant"]) == (29.0, None)
    d = _by(out["district"], "district")
    assert (d["D1"]["aqi"], d["D1"]["primary_pollutant"], d["D1"]["aqi_category_zh"]) == (107.0, "pm25", "轻度污染")
    # City: mean PM2.5 (80 + 20)/2 = 50 -> 50 + 50/40*15 = 68.75 -> 69; O3 1 h 180 -> 75 is the max.
    c = out["city"].row(0, named=True)
    assert (c["aqi"], c["primary_pollutant"], c["aqi_level"]) == (75.0, "o3_1h", "II")


def test_noise(out):
    n = out["noise_sensor"].row(0, named=True)
    # 23:00-23:05 in a class 1 zone: night limit 45; LAeq 48 -> 3 dB over; LAmax 62 vs 45 + 15 -> 2 dB over.
    assert (n["period"], n["noise_class"], n["limit_db"], n["exceedance_db"], n["night_max_exceedance_db"]) == ("night", "1", 45.0, 3.0, 2.0)
    assert n["laeq_day_db"] == pytest.approx(50.0) and n["day_exceedance_db"] == 0.0
    ln = 10 * math.log10((10 ** 4.4 + 10 ** 4.8) / 2)  # two equal 5-min night windows
    assert n["laeq_night_db"] == pytest.approx(ln) and n["night_exceedance_db"] == pytest.approx(ln - 45)


def test_utilities(out):
    u = _by(out["utility_sensor"], "sensor_id")
    assert u["U1"]["value"] == 250.0 and u["U1"]["deviation_pct"] == pytest.approx(-50 / 3) and u["U1"]["within_tolerance"] is False
    assert u["U2"]["value"] == 105.0 and u["U2"]["deviation_pct"] == pytest.approx(5.0) and u["U2"]["within_tolerance"] is True
    assert out["utility_outages"].rows() == [("D2", "water", 1, 200)]


def test_grid(out):
    cells = _by(out["grid_cell"], "cell_id")
    assert (cells["C1"]["district"], cells["C1"]["open_backlog"], cells["C1"]["overdue"], cells["C1"]["on_time_closure_rate"]) == ("D1", 2, 1, 1.0)
    assert (cells["C2"]["open_backlog"], cells["C2"]["overdue"], cells["C2"]["mean_time_to_close_h"]) == (1, 1, 7.0)
    cat = _by(out["grid_category"], "category")
    assert cat["litter"]["closed_recent"] == 2 and cat["road"]["open_backlog"] == 3


def test_emergency(out):
    rows = out["emergency"].select("district", "type", "severity", "active_incidents", "mean_dispatch_delay_s", "mean_arrival_delay_s").rows()
    # I1 on S3 -> D2, active; I2 has no segment and lies next to C1's centre -> D1; I3 is two days old: left out.
    assert rows == [("D1", "medical", 3, 0, 60.0, 540.0), ("D2", "fire", 1, 1, 60.0, 420.0)]


def test_sensor_health(out):
    d = _by(out["district"], "district")
    # D1: L1, P2, A1, N1 fresh; U2 never seen. D2: L3, U1 fresh; A2 3 h old (air: 1 h interval) stale; L4 2 h old (loop) silent.
    assert (d["D1"]["sensors_registered"], d["D1"]["sensors_fresh_share"], d["D1"]["registry_reported_share"]) == (5, 0.8, 0.8)
    assert (d["D2"]["sensors_fresh_share"], d["D2"]["sensors_silent_share"], d["D2"]["registry_metadata_share"]) == (0.5, 0.25, 0.75)
    sh = {(r["district"], r["family"]): r for r in out["sensor_health"].iter_rows(named=True)}
    assert sh[("D2", "environment")]["stale"] == 1 and sh[("D1", "grid")]["never"] == 1


def test_health_index(out):
    d = _by(out["district"], "district")
    tpi_d1 = (TPI1 * 96 + TPI2 * 300) / 396
    # D1 sub-scores by hand: traffic 100 - 10*TPI; environment 0.7*air(107) + 0.3*noise (0 of 1 sensor within limit);
    # grid mean(100*(1 - 1/2), 100*1.0); utilities 100 (meter within, no outage); emergency 100; sensors 80.
    air_d1 = 100 * (300 - 107) / 250
    expect = {"traffic": 100 - 10 * tpi_d1, "environment": 0.7 * air_d1, "grid": 75.0, "utilities": 100.0, "emergency": 100.0, "sensors": 80.0}
    for k, v in expect.items():
        assert d["D1"][f"score_{k}"] == pytest.approx(v), k
    w = {"traffic": 0.25, "environment": 0.25, "grid": 0.15, "utilities": 0.1, "emergency": 0.15, "sensors": 0.1}
    assert d["D1"]["health_index"] == pytest.approx(sum(w[k] * expect[k] for k in w))
    # D2: traffic 0, environment 100 (AQI 29, no noise sensor), grid 0 (1 of 1 overdue, on-time 0), utilities
    # 100 * 0 (the one meter is off by 16.7 %) = 0, emergency 100 - 40 (one severity I) = 60, sensors 50.
    expect2 = {"traffic": 0.0, "environment": 100.0, "grid": 0.0, "utilities": 0.0, "emergency": 60.0, "sensors": 50.0}
    for k, v in expect2.items():
        assert d["D2"][f"score_{k}"] == pytest.approx(v), k
    assert d["D2"]["health_index"] == pytest.approx(0.25 * 100 + 0.15 * 60 + 0.1 * 50)


def test_custom_weights_change_the_index(frames, city):
    from brain.city.model import HealthWeights

    only_traffic = msgspec_replace(city, health_weights=HealthWeights(1, 0, 0, 0, 0, 0))
    d = _by(compute_vitals(frames, only_traffic, T)["district"], "district")
    assert d["D2"]["health_index"] == 0.0


def msgspec_replace(city, **kw):
    import msgspec

    return msgspec.structs.replace(city, **kw)


def test_all_outputs_present_and_empty_input(city):
    out = compute_vitals({}, city, T)
    for name in ("segment_traffic", "district", "city", "air_station", "noise_sensor", "grid_cell", "grid_category",
                 "utility_sensor", "emergency", "sensor_health"):
        assert isinstance(out[name], pl.DataFrame), name
    assert out["district"]["district"].to_list() == ["D1", "D2"]
    assert out["segment_traffic"].height == 0
    # No last-seen table: freshness unknown, so no sensors sub-score (not a city full of silent sensors) ...
    assert out["city"].select("sensors_fresh_share", "score_sensors").row(0) == (None, None)
    assert out["city"]["registry_metadata_share"].to_list() == [8 / 9]  # L4 lacks its segment
    # ... while an empty last-seen table means nobody has reported: all silent.
    empty_seen = pl.DataFrame(schema={"sensor_id": pl.String, "last_seen_ms": pl.Int64})
    out = compute_vitals({"sensor_last_seen": empty_seen}, city, T)
    assert out["city"].select("sensors_silent_share", "registry_reported_share", "score_sensors").row(0) == (1.0, 0.0, 0.0)


def test_input_errors(frames, city):
    with pytest.raises(ValueError, match="unknown window frame"):
        compute_vitals({"trafic": frames["traffic"]}, city, T)
    with pytest.raises(ValueError, match="lacks column"):
        compute_vitals({"traffic": frames["traffic"].drop("speed_kmh")}, city, T)
    with pytest.raises(ValueError, match="wrong type"):
        compute_vitals({"traffic": frames["traffic"].with_columns(pl.lit("fast").alias("speed_kmh"))}, city, T)
    with pytest.raises(ValueError, match="must be a polars DataFrame"):
        compute_vitals({"traffic": [1, 2]}, city, T)
    with pytest.raises(ValueError, match="unknown standard table"):
        VitalsConfig(aqi_standard="epa-1999")
    with pytest.raises(ValueError, match="window_end_ms must be an integer"):
        compute_vitals({}, city, "2026-01-10T15:05Z")
    with pytest.raises(ValueError, match="city must be"):
        compute_vitals({}, {"name": "x"}, T)


def test_max_age_drops_old_windows(frames, city):
    # With traffic windows allowed to be at most 1 minute old, the windows ending at T still count ...
    out = compute_vitals(frames, city, T, VitalsConfig(traffic_max_age_s=60))
    assert out["segment_traffic"].height == 3
    # ... but 2 minutes later they are stale and dropped.
    out = compute_vitals(frames, city, T + 2 * M, VitalsConfig(traffic_max_age_s=60))
    assert out["segment_traffic"].height == 0


def test_datetime_columns_are_read_as_epoch_ms(frames, city):
    # The same traffic frame with datetime (µs) window columns gives the same segment vital signs.
    as_dt = frames["traffic"].with_columns(pl.from_epoch("window_start_ms", time_unit="ms").dt.cast_time_unit("us"),
                                           pl.from_epoch("window_end_ms", time_unit="ms").dt.cast_time_unit("us"))
    a = compute_vitals({"traffic": frames["traffic"]}, city, T)["segment_traffic"]
    b = compute_vitals({"traffic": as_dt}, city, T)["segment_traffic"]
    assert b.height == 2 and a.equals(b)


def test_zero_probe_time_and_empty_detector_window_are_no_measurement(city):
    # S2 probe time 0 and S1 detector window with no vehicle (speed 0 reported): neither gives a TTI.
    probe = pl.DataFrame({"segment_id": ["S2"], "window_start_ms": [T - 5 * M], "window_end_ms": [T], "travel_time_s": [0.0], "n_readings": [1]})
    traffic = pl.DataFrame({"segment_id": ["S1"], "window_start_ms": [T - 5 * M], "window_end_ms": [T], "volume_veh": [0.0],
                            "speed_kmh": [0.0], "occupancy_pct": [0.0], "n_readings": [5]})
    seg = _by(compute_vitals({"probe": probe, "traffic": traffic}, city, T)["segment_traffic"], "segment_id")
    assert seg["S1"]["tti"] is None and seg["S1"]["vkm"] == 0.0
    assert seg["S2"]["tti"] is None and seg["S2"]["speed_kmh"] is None
