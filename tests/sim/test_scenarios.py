"""Ground truth matches what the data shows, compared against a scenario-free run with the same seed."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from streams.sim import FAULT_TYPES, Scenario, Simulator

HOUR_MS = 3_600_000


def _run(city, scenarios, hours, seed=11, faults=None):
    sim = Simulator(city, seed=seed, scenarios=scenarios, faults=faults)
    return sim, sim.run(hours)


def _window(df, sensor_ids, a, b):
    return df.filter(pl.col("sensor_id").is_in(list(sensor_ids)) & (pl.col("ts_ms") >= a) & (pl.col("ts_ms") < b))


@pytest.fixture(scope="module")
def clean_demo(demo):
    return _run(demo, [], 14)[1]


def test_accident_slows_upstream_detectors_and_raises_incident_and_cases(demo, clean_demo):
    base = Simulator(demo, scenarios=[]).start_ms
    start = base + 11 * HOUR_MS
    sc = Scenario(type="accident", start_ms=start, duration_s=45 * 60, target="JF-05W", scenario_id="acc")
    sim, frames = _run(demo, [sc], 14)
    truth = sim.ground_truth.row(0, named=True)
    assert truth["type"] == "accident" and truth["segment_id"] == "JF-05W"
    seg = demo.segment("JF-05W")
    assert truth["cell"] == seg.cell and truth["district"] == seg.district
    dets = [s for s in truth["sensor_ids"] if demo.sensor(s).type in ("loop", "video", "radar")]
    assert dets and any(demo.sensor(s).segment != "JF-05W" for s in dets), "upstream detectors are part of the truth"
    a, b = start + 10 * 60_000, truth["end_ms"] - 10 * 60_000
    hit = _window(frames["traffic"], dets, a, b)
    ref = _window(clean_demo["traffic"], dets, a, b)
    assert hit.height == ref.height > 0
    assert hit["speed_kmh"].mean() < 0.75 * ref["speed_kmh"].mean()
    assert hit["occupancy_pct"].mean() > 1.2 * ref["occupancy_pct"].mean()
    # Before the accident the same detectors read exactly the same as in the clean run.
    before = _window(frames["traffic"], dets, start - HOUR_MS, start)
    assert before.equals(_window(clean_demo["traffic"], dets, start - HOUR_MS, start))
    inc = frames["incident"].filter(pl.col("incident_id").str.contains("acc"))
    assert inc["status"].to_list() == ["reported", "dispatched", "on_scene", "closed"]
    assert set(inc["type"]) == {"traffic_accident"} and set(inc["segment_id"]) == {"JF-05W"}
    assert start <= inc["ts_ms"].min() and inc["ts_ms"].max() <= truth["end_ms"]
    cases = frames["grid_case"].filter(pl.col("case_id").str.contains("acc") & (pl.col("status") == "reported"))
    assert cases.height >= 2 and set(cases["cell_id"]) == {seg.cell}


def test_pollution_episode_reaches_heavy_pollution(demo, clean_demo):
    base = Simulator(demo, scenarios=[]).start_ms
    sc = Scenario(type="pollution_episode", start_ms=base + 1 * HOUR_MS, duration_s=12 * 3600, target="gangkou")
    sim, frames = _run(demo, [sc], 14)
    truth = sim.ground_truth.row(0, named=True)
    stations = truth["sensor_ids"]
    assert stations and all(demo.sensor(s).district == "gangkou" for s in stations)
    # The plateau: 40%..75% of the episode.
    a = truth["start_ms"] + int(0.45 * (truth["end_ms"] - truth["start_ms"]))
    b = truth["start_ms"] + int(0.7 * (truth["end_ms"] - truth["start_ms"]))
    hit = _window(frames["air"], stations, a, b)
    ref = _window(clean_demo["air"], stations, a, b)
    assert hit["pm25_ugm3"].mean() > 150  # HJ 633: 24h PM2.5 above 150 ug/m3 is IAQI > 200, heavy pollution
    assert ref["pm25_ugm3"].mean() < 100
    assert hit["pm10_ugm3"].mean() > ref["pm10_ugm3"].mean() + 150
    # It builds up over hours rather than jumping.
    early = _window(frames["air"], stations, truth["start_ms"], truth["start_ms"] + HOUR_MS)["pm25_ugm3"].mean()
    assert early < hit["pm25_ugm3"].mean() - 80
    others = [s.id for s in demo.sensors if s.type == "air" and s.id not in stations]
    assert _window(frames["air"], others, a, b).equals(_window(clean_demo["air"], others, a, b))


def test_water_main_burst_pressure_drop_flow_spike_cases_and_outage(demo, clean_demo):
    base = Simulator(demo, scenarios=[]).start_ms
    sc = Scenario(type="water_main_burst", start_ms=base + 9 * HOUR_MS, duration_s=2 * 3600, target="WP-03", scenario_id="burst")
    sim, frames = _run(demo, [sc], 14)
    truth = sim.ground_truth.row(0, named=True)
    pressure_id = "WP-03"
    nominal = demo.sensor(pressure_id).nominal
    a, b = truth["start_ms"] + 10 * 60_000, truth["end_ms"] - 30 * 60_000
    p = _window(frames["utility"], [pressure_id], a, b)["pressure_kpa"]
    assert p.max() < 0.7 * nominal
    flow_ids = [s for s in truth["sensor_ids"] if s != pressure_id]
    assert flow_ids and demo.sensor(flow_ids[0]).unit == "m3/h"
    f_hit = _window(frames["utility"], flow_ids, a, b)["flow_m3h"].mean()
    f_ref = _window(clean_demo["utility"], flow_ids, a, b)["flow_m3h"].mean()
    assert f_hit > 1.5 * f_ref
    assert f_hit > 1.6 * demo.sensor(flow_ids[0]).nominal  # beyond a 60 % flow tolerance, night or day
    cell = demo.sensor(pressure_id).cell
    assert truth["cell"] == cell
    leaks = frames["grid_case"].filter(pl.col("case_id").str.contains("burst") & (pl.col("status") == "reported"))
    assert leaks.height >= 3 and set(leaks["category"]) == {"water_leak"} and set(leaks["cell_id"]) == {cell}
    out = frames["outage"].filter(pl.col("outage_id").str.contains("burst"))
    assert out["status"].to_list() == ["start", "end"] and set(out["utility"]) == {"water"}


@pytest.mark.parametrize("ftype", FAULT_TYPES)
def test_sensor_faults_show_in_the_data(toy, ftype):
    clean = Simulator(toy, seed=2, scenarios=[])
    start = clean.start_ms + 2 * HOUR_MS
    sensor = {"sensor_stuck": "LP-A2", "sensor_dropout": "NS-E1", "sensor_spikes": "WP-01", "sensor_drift": "AQ-east-1"}[ftype]
    kind, field = {"LP-A2": ("traffic", "speed_kmh"), "NS-E1": ("noise", "laeq_db"), "WP-01": ("utility", "pressure_kpa"),
                   "AQ-east-1": ("air", "pm25_ugm3")}[sensor]
    sc = Scenario(type=ftype, start_ms=start, duration_s=3 * 3600, target=sensor)
    sim = Simulator(toy, seed=2, scenarios=[], faults=[sc])
    got, ref = sim.run(6), clean.run(6)
    truth = sim.ground_truth.row(0, named=True)
    assert truth["sensor_ids"] == [sensor] and truth["type"] == ftype
    w = _window(got[kind], [sensor], start, truth["end_ms"])
    r = _window(ref[kind], [sensor], start, truth["end_ms"])
    if ftype == "sensor_dropout":
        assert w.height == 0 and r.height > 100
    elif ftype == "sensor_stuck":
        assert w[field].n_unique() == 1 and r[field].n_unique() > 10
    elif ftype == "sensor_spikes":
        ratio = w[field].to_numpy() / r[field].to_numpy()
        assert ((ratio > 2.4).mean() > 0.1) and (np.isclose(ratio, 1.0).mean() > 0.5)
    else:
        ratio = w[field].to_numpy() / r[field].to_numpy()
        assert abs(ratio[-1] - 1) > 0.4 and abs(ratio[0] - 1) < 0.05
    # Outside the fault window the sensor is healthy again.
    after_w = _window(got[kind], [sensor], truth["end_ms"], truth["end_ms"] + HOUR_MS)
    assert after_w.equals(_window(ref[kind], [sensor], truth["end_ms"], truth["end_ms"] + HOUR_MS))


def test_default_schedule_places_every_kind_each_day(toy):
    sim = Simulator(toy, seed=4)
    sim.run(48)
    gt = sim.ground_truth
    assert gt.height == 2 * 9  # per day: 3 accidents, 1 episode, 1 burst, 4 sensor faults
    counts = gt.group_by("type").len()
    got = dict(zip(counts["type"], counts["len"]))
    assert got["accident"] == 6 and got["pollution_episode"] == 2 and got["water_main_burst"] == 2
    assert all(got[f] == 2 for f in FAULT_TYPES)
    assert gt["end_ms"].min() > gt["start_ms"].min() and (gt["end_ms"] > gt["start_ms"]).all()
    assert gt["scenario_id"].n_unique() == gt.height
    # Clean means clean: no scenario, no fault.
    clean = Simulator(toy, seed=4, scenarios=[])
    clean.run(24)
    assert clean.ground_truth.height == 0
