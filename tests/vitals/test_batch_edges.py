"""compute_vitals_batch == the one-window reference on inputs the simulated day does not produce.

The batch places rows by integer keys and numpy masks instead of polars joins and expressions; these
inputs exercise the semantics that could drift in that translation: NaN values (not null; polars
orders NaN above every number), unknown ids, null keys, several windows of one sensor in a tick,
and the registry's last-seen table in repeated and irregular blocks.
"""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from brain.vitals import compute_vitals_batch, split_ticks
from brain.vitals.reference import compute_vitals_reference

M5 = 300_000
T0 = 1_780_000_000_000 - 1_780_000_000_000 % M5
NAN = float("nan")


def ids(city, kind: str, n: int) -> list[str]:
    return [s.id for s in city.sensors if s.type == kind][:n]


def per_tick(frames: dict[str, pl.DataFrame], t: int) -> dict[str, pl.DataFrame]:
    return {name: f.filter(pl.col("tick_end_ms") == t).drop("tick_end_ms") if "tick_end_ms" in f.columns else f
            for name, f in frames.items()}


def assert_batch_is_reference(frames: dict[str, pl.DataFrame], city, ends: list[int]) -> None:
    out = split_ticks(compute_vitals_batch(frames, city, ends), ends)
    for t, got in zip(ends, out):
        want = compute_vitals_reference(per_tick(frames, t), city, t)
        assert set(got) == set(want)
        for name in want:
            try:
                # as test_batch: polars itself may round a one-row frame's float ops differently
                assert_frame_equal(got[name], want[name], check_exact=False, rel_tol=1e-9, abs_tol=0.0)
            except AssertionError as exc:
                raise AssertionError(f"tick {t}, table {name}: {exc}") from None


def test_nan_values_unknown_ids_and_repeated_windows(city):
    segs = [s.id for s in city.segments[:5]]
    ends = [T0 + M5, T0 + 2 * M5, T0 + 3 * M5]
    traffic = pl.DataFrame({
        "segment_id": [segs[0], segs[1], segs[2], "NOT-A-SEGMENT", segs[0], segs[3], segs[3], None],
        "window_start_ms": [T0, T0, T0, T0, T0 + M5, T0 + M5, T0 + M5, T0 + M5],
        "window_end_ms": [T0 + M5, T0 + M5, T0 + M5, T0 + M5, T0 + 2 * M5, T0 + 2 * M5, T0 + 2 * M5, T0 + 2 * M5],
        # NaN volume (polars: NaN > 0), NaN speed, a zero volume, and two windows of one segment ending together
        "volume_veh": [NAN, 30.0, 0.0, 5.0, 12.0, 8.0, 9.0, 1.0],
        "speed_kmh": [40.0, NAN, 25.0, 30.0, None, 35.0, 36.0, 20.0],
        "occupancy_pct": [5.0, 6.0, None, 1.0, 7.0, NAN, 8.0, 1.0],
        "n_readings": [3, 3, 3, 3, 3, 3, 3, 3],
        "tick_end_ms": [ends[0]] * 4 + [ends[1]] * 4,
    })
    probe = pl.DataFrame({
        "segment_id": [segs[1], segs[4], segs[0]], "window_start_ms": [T0, T0, T0 + M5],
        "window_end_ms": [T0 + M5, T0 + M5, T0 + 2 * M5], "travel_time_s": [NAN, 0.0, 60.0], "n_readings": [2, 2, 2],
        "tick_end_ms": [ends[0], ends[0], ends[1]],
    })
    noise_ids = ids(city, "noise", 3)
    noise = pl.DataFrame({
        "sensor_id": [noise_ids[0], noise_ids[1], noise_ids[2], noise_ids[0], "NOPE"],
        "window_start_ms": [T0, T0, T0, T0 + M5, T0], "window_end_ms": [T0 + M5, T0 + M5, T0 + M5, T0 + 2 * M5, T0 + M5],
        "laeq_db": [NAN, 61.0, None, 58.0, 50.0], "lamax_db": [70.0, NAN, 80.0, None, 60.0],
        "tick_end_ms": [ends[0], ends[0], ends[0], ends[1], ends[0]],
    })
    util_ids = ids(city, "utility_water", 2) + ids(city, "utility_power", 1)
    utility = pl.DataFrame({
        "sensor_id": util_ids + [util_ids[0]], "window_start_ms": [T0] * 4, "window_end_ms": [T0 + M5] * 4,
        "pressure_kpa": [NAN, None, 5.0, 300.0], "flow_m3h": [10.0, 12.0, None, None], "load_kw": [None, None, NAN, None],
        "tick_end_ms": [ends[0], ends[0], ends[0], ends[1]],
    })
    air_ids = ids(city, "air", 2)
    air_1h = pl.DataFrame({
        "sensor_id": air_ids, "window_start_ms": [T0 - 3_600_000] * 2, "window_end_ms": [T0, T0],
        "pm25_ugm3": [NAN, 40.0], "pm10_ugm3": [80.0, None], "so2_ugm3": [900.0, 10.0], "no2_ugm3": [None, 30.0],
        "o3_ugm3": [100.0, NAN], "co_mgm3": [1.0, 0.5], "tick_end_ms": [ends[0], ends[2]],
    })
    frames = {"traffic": traffic, "probe": probe, "noise": noise, "utility": utility, "air_1h": air_1h}
    assert_batch_is_reference(frames, city, ends)


def test_state_tables_with_null_keys(city):
    cells = [c.id for c in city.cells[:3]]
    ends = [T0 + M5, T0 + 2 * M5]
    cases = pl.DataFrame({
        "case_id": ["a", "b", "c", "d", "e"], "category": ["road", None, "road", "litter", None],
        "cell_id": [cells[0], cells[1], None, "NO-CELL", cells[2]], "unit": ["u"] * 5,
        "reported_ms": [T0, T0 + 10, T0 + M5 + 1, T0 - 5, None], "dispatched_ms": [None] * 5,
        "closed_ms": [T0 + M5 + 7, None, None, T0 + 100, None], "deadline_ms": [T0 + 50, None, T0 + 2 * M5, T0 + 200, None],
        "status": ["closed", "reported", "reported", "closed", "reported"],
    })
    outages = pl.DataFrame({
        "outage_id": ["o1", "o2", "o3"], "utility": ["water", None, "power"], "cell_id": [cells[0], None, "NO-CELL"],
        "customers": [10, None, 5], "started_ms": [T0, T0 + M5, T0], "ended_ms": [None, None, T0 + M5 + 1],
    })
    incidents = pl.DataFrame({
        "incident_id": ["i1", "i2", "i3"], "type": ["fire", "traffic", None], "severity": [2, None, 1],
        "lon": [city.cells[0].center[0], None, 0.0], "lat": [city.cells[0].center[1], None, 0.0],
        "reported_ms": [T0, T0 + M5, T0 - 1], "dispatched_ms": [T0 + 60_000, None, T0 + 10], "on_scene_ms": [None, None, T0 + 20],
        "closed_ms": [None, None, T0 + M5 + 3], "status": ["dispatched", "reported", "closed"],
        "segment_id": [None, city.segments[0].id, "NO-SEG"], "units": [2, None, 1],
    })
    assert_batch_is_reference({"cases": cases, "outages": outages, "incidents": incidents}, city, ends)


@pytest.mark.parametrize("layout", ["blocks", "blocks-again", "irregular", "with-nulls"])
def test_registry_last_seen_layouts(city, layout):
    registry = [s.id for s in city.sensors]
    ends = [T0 + M5, T0 + 2 * M5, T0 + 3 * M5]
    rng = np.random.default_rng(len(layout))
    seen = rng.integers(T0 - 3_600_000, T0 + M5, len(registry)).astype(float)
    seen[rng.random(len(registry)) < 0.2] = np.nan
    parts = []
    for i, t in enumerate(ends):
        block = pl.DataFrame({"sensor_id": registry, "tick_end_ms": t, "last_seen_ms": pl.Series(seen, nan_to_null=True).cast(pl.Int64)})
        if layout == "irregular":
            block = block.sample(fraction=0.7, seed=int(t % 1000))
        if layout == "with-nulls":
            # nulls at other places in every block: no block may stand for another
            block = block.with_columns(pl.when(pl.int_range(pl.len()) % 7 == i).then(None).otherwise(pl.col("sensor_id")).alias("sensor_id"))
        parts.append(block)
    frames = {"sensor_last_seen": pl.concat(parts)}
    assert_batch_is_reference(frames, city, ends)
    if layout == "blocks-again":  # the registry block looked up in an earlier call is reused
        assert_batch_is_reference(frames, city, ends)


def test_no_tick_is_refused(city):
    with pytest.raises(ValueError, match="at least one tick"):
        compute_vitals_batch({}, city, [])
