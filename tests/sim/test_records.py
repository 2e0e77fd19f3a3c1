"""Every emitted record is a valid, registered, physically plausible record of the right kind."""
from __future__ import annotations

import msgspec
import numpy as np
import polars as pl
import pytest

from brain.schemas import KIND_SENSOR_TYPES, PHYSICAL_RANGE, PRIMARY_FIELD, Record
from streams.sim import KIND_SCHEMAS, Scenario, Simulator, to_jsonl
from streams.sim.lifelines import utility_field

HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def demo_day_part(demo):
    """06:00-12:00 of the demo city's default Monday: rush hour, default scenarios and faults."""
    sim = Simulator(demo, seed=3)
    sim.batches(sim.start_ms + 6 * HOUR_MS, batch_s=6 * 3600).__next__()
    frames: dict[str, list[pl.DataFrame]] = {}
    jsonl = []
    for b in sim.batches(sim.start_ms + 12 * HOUR_MS, batch_s=3600):
        jsonl.append(to_jsonl(b.frames))
        for k, df in b.frames.items():
            frames.setdefault(k, []).append(df)
    return sim, {k: pl.concat(v) for k, v in frames.items()}, b"".join(jsonl)


def test_every_line_decodes_registered_and_allowed(demo, demo_day_part):
    sim, frames, data = demo_day_part
    sensors = {s.id: s for s in demo.sensors}
    dec = msgspec.json.Decoder(Record)
    lines = data.splitlines()
    assert len(lines) == sum(df.height for df in frames.values()) > 100_000
    kinds_seen = set()
    for line in lines[::7]:  # a stride keeps this fast while covering every kind
        rec = dec.decode(line)
        kind = type(rec).__struct_config__.tag
        kinds_seen.add(kind)
        assert rec.sensor_id in sensors, rec
        assert sensors[rec.sensor_id].type in KIND_SENSOR_TYPES[kind], rec
    # Lifecycle kinds are rarer than the stride: check them all.
    for line in lines:
        if b'"kind":"incident"' in line or b'"kind":"grid_case"' in line or b'"kind":"outage"' in line:
            rec = dec.decode(line)
            assert sensors[rec.sensor_id].type in KIND_SENSOR_TYPES[type(rec).__struct_config__.tag]
    assert {"traffic", "probe", "air", "noise", "water_quality", "weather", "utility", "hazard", "grid_case", "incident"} <= kinds_seen | set(frames)


def test_frames_have_exact_schema_and_time_order(demo_day_part):
    _, frames, _ = demo_day_part
    for kind, df in frames.items():
        assert df.schema == KIND_SCHEMAS[kind], kind
        assert df["ts_ms"].is_sorted(), kind


def _faulted(sim) -> dict[str, list[tuple[int, int]]]:
    out: dict[str, list[tuple[int, int]]] = {}
    for row in sim.ground_truth.filter(pl.col("type").str.starts_with("sensor_")).iter_rows(named=True):
        for sid in row["sensor_ids"]:
            out.setdefault(sid, []).append((row["start_ms"], row["end_ms"]))
    return out


def test_values_in_physical_and_sensor_ranges(demo, demo_day_part):
    sim, frames, _ = demo_day_part
    sensors = {s.id: s for s in demo.sensors}
    faulted = _faulted(sim)
    assert faulted, "the default schedule should have put sensor faults in this window"
    for kind, df in frames.items():
        for col, dtype in df.schema.items():
            if col in PHYSICAL_RANGE:
                lo, hi = PHYSICAL_RANGE[col]
                vals = df[col].drop_nulls()
                assert vals.min() >= lo and vals.max() <= hi, (kind, col, vals.min(), vals.max())
        ids = df["sensor_id"].to_list()
        ts = df["ts_ms"].to_numpy()
        fields = [PRIMARY_FIELD[kind]] if PRIMARY_FIELD[kind] else []
        if kind == "utility":
            fields = ["pressure_kpa", "flow_m3h", "load_kw"]
        for field in fields:
            vals = df[field].to_numpy()
            vmin = np.array([sensors[i].valid_min for i in ids])
            vmax = np.array([sensors[i].valid_max for i in ids])
            if kind == "utility":
                mine = np.array([utility_field(sensors[i]) == field for i in ids])
                assert np.isnan(vals[~mine]).all(), "a utility sensor reports only its own quantity"
            else:
                mine = np.ones(len(ids), bool)
            healthy = np.array([not any(a <= t < b for a, b in faulted.get(i, [])) for i, t in zip(ids, ts)])
            ok = mine & healthy
            assert (vals[ok] >= vmin[ok]).all() and (vals[ok] <= vmax[ok]).all(), (kind, field)


def test_reporting_intervals(demo, demo_day_part):
    sim, frames, _ = demo_day_part
    dropped = set(_faulted(sim))
    expected_s = {"traffic": 60, "probe": 300, "air": 300, "noise": 60, "utility": 60, "weather": 600, "hazard": 60, "water_quality": 300}
    for kind, interval in expected_s.items():
        gaps = (frames[kind].filter(~pl.col("sensor_id").is_in(list(dropped)))
                .group_by("sensor_id").agg(pl.col("ts_ms").diff().drop_nulls().unique().alias("gaps")))
        assert all(g.to_list() == [interval * 1000] for g in gaps["gaps"]), kind


def test_rush_hour_slower_than_night_on_arterials(demo):
    sim = Simulator(demo, seed=0, scenarios=[])
    arterial_dets = {s.id for s in demo.sensors if s.type in KIND_SENSOR_TYPES["traffic"] and s.segment
                     and demo.segment(s.segment).road_class == "arterial"}
    night = next(sim.batches(sim.start_ms + 4 * HOUR_MS, batch_s=4 * 3600)).frames["traffic"]
    next(sim.batches(sim.start_ms + 7 * HOUR_MS + 45 * 60_000, batch_s=3 * 3600 + 45 * 60))
    rush = next(sim.batches(sim.start_ms + 8 * HOUR_MS + 15 * 60_000, batch_s=30 * 60)).frames["traffic"]

    def mean(df, col):
        return df.filter(pl.col("sensor_id").is_in(list(arterial_dets)))[col].mean()

    assert mean(rush, "speed_kmh") < 0.8 * mean(night, "speed_kmh")
    assert mean(rush, "occupancy_pct") > 3 * mean(night, "occupancy_pct")
    assert mean(rush, "volume_veh") > 3 * mean(night, "volume_veh")


def test_weekend_morning_quieter_than_weekday(toy):
    weekday = Simulator(toy, seed=0, scenarios=[])
    saturday = Simulator(toy, seed=0, scenarios=[], start_ms=weekday.start_ms + 5 * 24 * HOUR_MS)

    def morning_volume(sim):
        next(sim.batches(sim.start_ms + 7 * HOUR_MS + 30 * 60_000, batch_s=7 * 3600 + 1800))
        return next(sim.batches(sim.start_ms + 8 * HOUR_MS + 30 * 60_000, batch_s=3600)).frames["traffic"]["volume_veh"].sum()

    assert morning_volume(saturday) < 0.8 * morning_volume(weekday)


def test_speed_flow_density_consistent(demo):
    """Occupancy follows density q/v: at the same throughput, slower readings carry higher occupancy."""
    sim = Simulator(demo, seed=1, scenarios=[])
    df = next(sim.batches(sim.start_ms + 10 * HOUR_MS, batch_s=10 * 3600)).frames["traffic"]
    seg_lanes = {s.id: s.lanes for s in demo.segments}
    lanes = np.array([seg_lanes[demo.sensor(i).segment] for i in df["sensor_id"].to_list()])
    q = df["volume_veh"].to_numpy() * 60 / lanes  # veh/h/lane
    k = q / df["speed_kmh"].to_numpy()  # veh/km/lane
    occ = df["occupancy_pct"].to_numpy()
    busy = q > 200
    # Density implied by the readings explains occupancy (6.5 m effective length), within detector noise.
    assert np.corrcoef(k[busy], occ[busy])[0, 1] > 0.9
    assert 0.4 < np.median(occ[busy] / k[busy]) < 0.9


def test_lifecycles_in_order_and_some_cases_breach(toy):
    sim = Simulator(toy, seed=5, scenarios=[])
    frames = sim.run(48)
    cases = frames["grid_case"]
    order = {"reported": 0, "dispatched": 1, "handling": 2, "closed": 3}
    closed = 0
    breached = 0
    for (cid,), g in cases.group_by(["case_id"]):
        g = g.sort("ts_ms")
        steps = [order[s] for s in g["status"]]
        assert steps == list(range(len(steps))), cid
        assert g["deadline_ms"].n_unique() == 1 and g["deadline_ms"][0] > g["ts_ms"][0]
        if steps[-1] == 3:
            closed += 1
            breached += int(g["ts_ms"][-1] > g["deadline_ms"][0])
    assert closed > 15 and 0 < breached < closed / 2
    inc = frames["incident"]
    istatus = {"reported": 0, "dispatched": 1, "on_scene": 2, "closed": 3}
    for (iid,), g in inc.group_by(["incident_id"]):
        steps = [istatus[s] for s in g.sort("ts_ms")["status"]]
        assert steps == list(range(len(steps))), iid
    assert inc.filter(pl.col("type") == "traffic_accident")["segment_id"].null_count() == 0


def test_bad_parameters_raise_clear_errors(toy):
    with pytest.raises(ValueError, match="step_s"):
        Simulator(toy, step_s=0)
    with pytest.raises(ValueError, match="seed"):
        Simulator(toy, seed=-1)
    with pytest.raises(ValueError, match="scenarios"):
        Simulator(toy, scenarios="lots")
    with pytest.raises(ValueError, match="bad_fraction"):
        Simulator(toy, bad_fraction=2.0)
    with pytest.raises(ValueError, match="unknown segment"):
        Simulator(toy, scenarios=[Scenario(type="accident", start_ms=0, duration_s=60, target="NOPE")])
    with pytest.raises(ValueError, match="batch_s"):
        next(Simulator(toy).batches(10**13, batch_s=90))


@pytest.mark.parametrize("keep", [{"loop"}, {"air", "noise"}, {"utility_water", "hotline_12345"}, set()])
def test_any_city_subset_simulates(toy, keep):
    """A city folder with only some sensor types (or none) still simulates, with the scenarios it can host."""
    city = msgspec.structs.replace(toy, sensors=[s for s in toy.sensors if s.type in keep])
    sim = Simulator(city, seed=1)
    frames = sim.run(24)
    ids = {s.id for s in city.sensors}
    for kind, df in frames.items():
        assert set(df["sensor_id"].unique()) <= ids
        assert {city.sensor(i).type for i in df["sensor_id"].unique()} <= KIND_SENSOR_TYPES[kind]
    for row in sim.ground_truth.iter_rows(named=True):
        assert set(row["sensor_ids"]) <= ids
    if keep == {"loop"}:
        assert set(sim.ground_truth["type"]) >= {"accident", "sensor_stuck"}


def test_a_demo_day_is_much_faster_than_real_time(demo):
    """Loose guard only (bench/sim_speed.py measures): a simulated day in well under a minute of CPU."""
    import time

    sim = Simulator(demo, seed=0)
    t0 = time.process_time()
    n = sum(b.n_events for b in sim.batches(sim.start_ms + 24 * HOUR_MS, batch_s=3600))
    cpu_s = time.process_time() - t0
    assert n > 300_000 and cpu_s < 30.0


def test_seasons_and_day_cycle_in_weather(toy):
    import datetime as dt
    from zoneinfo import ZoneInfo

    def day_temps(month):
        start = int(dt.datetime(2026, month, 12, tzinfo=ZoneInfo(toy.timezone)).timestamp() * 1000)
        wx = Simulator(toy, seed=0, start_ms=start, scenarios=[]).run(24)["weather"]
        hour = ((wx["ts_ms"] - start) // HOUR_MS).to_numpy()
        t = wx["temp_c"].to_numpy()
        return t.mean(), t[(hour >= 13) & (hour < 16)].mean(), t[(hour >= 3) & (hour < 6)].mean()

    jan, jul = day_temps(1), day_temps(7)
    assert jan[0] + 10 < jul[0]  # winter is colder at 30 N
    for mean, afternoon, before_dawn in (jan, jul):
        assert afternoon > before_dawn + 3
