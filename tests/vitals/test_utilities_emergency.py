"""Utility deviation and outages; emergency active counts and delays, on hand-made state frames."""
from __future__ import annotations

import math

import polars as pl
import pytest

from brain.vitals import emergency, utilities

H = 3_600_000


def test_deviation_pct():
    # (255 - 300) / 300 = -15 %; (4.4 - 4.0) / 4.0 = +10 %; no nominal -> unknown.
    got = utilities.deviation_pct([255.0, 4.4, 5.0], [300.0, 4.0, math.nan])
    assert got[0] == pytest.approx(-15.0) and got[1] == pytest.approx(10.0) and math.isnan(got[2])


def test_measured_value_by_unit_case_insensitive():
    f = pl.DataFrame({"unit": ["KPA", "m3/h"], "pressure_kpa": [310.0, 1.0], "flow_m3h": [None, 42.0], "load_kw": [None, None]})
    assert utilities.measured_value(f).to_list() == [310.0, 42.0]


def test_active_outages_by_utility():
    out = pl.DataFrame(
        [("o1", "water", "C1", 120, 1 * H, None),  # active
         ("o2", "power", "C1", 40, 2 * H, 4 * H),  # ended before t = 5 h
         ("o3", "power", "C2", 300, 3 * H, 6 * H),  # ends after t: active at t
         ("o4", "gas", "C2", 10, 6 * H, None)],  # starts after t
        schema={"outage_id": pl.String, "utility": pl.String, "cell_id": pl.String, "customers": pl.Int64,
                "started_ms": pl.Int64, "ended_ms": pl.Int64}, orient="row")
    assert utilities.active_outages(out, 5 * H).row(0) == (2, 420)
    assert utilities.active_outages(out, 5 * H, by=["utility"]).rows() == [("power", 1, 300), ("water", 1, 120)]
    assert utilities.active_outages(out.clear(), 5 * H).row(0) == (0, 0)


INCIDENTS = pl.DataFrame(
    # id, type, severity, reported, dispatched, on scene, closed, units
    [("i1", "fire", 1, 0, 90_000, 600_000, None, 4),  # active; dispatch 90 s, arrival 510 s
     ("i2", "fire", 2, 100_000, 160_000, None, None, 2),  # active; dispatch 60 s, not on scene yet
     ("i3", "medical", 3, 200_000, 230_000, 530_000, 900_000, 1),  # closed; dispatch 30 s, arrival 300 s
     ("i4", "traffic", 4, 1_000_000, 1_500_000, None, None, 1),  # dispatched only after t: not counted in delays
     ("i5", "fire", 1, 5_000_000, None, None, None, 0)],  # reported after t: does not exist yet
    schema={"incident_id": pl.String, "type": pl.String, "severity": pl.Int64, "reported_ms": pl.Int64, "dispatched_ms": pl.Int64,
            "on_scene_ms": pl.Int64, "closed_ms": pl.Int64, "units": pl.Int64}, orient="row")
T = 1_200_000


def test_incident_metrics_city():
    m = emergency.incident_metrics(INCIDENTS, T).row(0, named=True)
    assert (m["active_incidents"], m["active_sev1"], m["active_sev2"], m["active_sev3"], m["active_sev4"]) == (3, 1, 1, 0, 1)
    assert m["active_units"] == 4 + 2 + 1
    assert m["reported_recent"] == 4
    # dispatch delays known by t: 90, 60, 30 -> mean 60; arrivals known: 510, 300 -> mean 405
    assert m["mean_dispatch_delay_s"] == pytest.approx(60.0)
    assert m["mean_arrival_delay_s"] == pytest.approx(405.0)
    # p90 of (30, 60, 90) with linear interpolation: 30 + 0.9 * 2 * 30 ... = position 1.8 -> 60 + 0.8 * 30 = 84
    assert m["p90_dispatch_delay_s"] == pytest.approx(84.0)


def test_incident_metrics_by_type_and_severity():
    rows = emergency.incident_metrics(INCIDENTS, T, by=["type", "severity"]).select(
        "type", "severity", "active_incidents", "mean_dispatch_delay_s").rows()
    assert rows == [("fire", 1, 1, 90.0), ("fire", 2, 1, 60.0), ("medical", 3, 0, 30.0), ("traffic", 4, 1, None)]


def test_incident_bad_frames():
    with pytest.raises(ValueError, match="lacks column"):
        emergency.incident_metrics(INCIDENTS.drop("severity"), T)


def test_incident_state_then_metrics():
    up = pl.DataFrame(
        [("i1", "reported", 0, "fire", 2, 116.4, 39.9), ("i1", "dispatched", 90_000, "fire", 2, 116.4, 39.9),
         ("i1", "on_scene", 600_000, "fire", 1, 116.4, 39.9),  # upgraded on arrival
         ("i2", "closed", 900_000, "medical", 3, 116.4, 39.9), ("i2", "reported", 200_000, "medical", 3, 116.4, 39.9),
         ("i2", "dispatched", 230_000, "medical", 3, 116.4, 39.9)],
        schema={"incident_id": pl.String, "status": pl.String, "ts_ms": pl.Int64, "type": pl.String, "severity": pl.Int64,
                "lon": pl.Float64, "lat": pl.Float64}, orient="row")
    state = emergency.incident_state(up)
    assert state.select("incident_id", "severity", "reported_ms", "dispatched_ms", "on_scene_ms", "closed_ms").rows() == [
        ("i1", 1, 0, 90_000, 600_000, None), ("i2", 3, 200_000, 230_000, None, 900_000)]
    m = emergency.incident_metrics(state, 1_000_000).row(0, named=True)
    # active: i1 only (severity I now); dispatch delays 90 s and 30 s -> 60 s; arrival 510 s.
    assert (m["active_incidents"], m["active_sev1"], m["mean_dispatch_delay_s"], m["mean_arrival_delay_s"]) == (1, 1, 60.0, 510.0)


def test_outage_state_restart_after_end_is_active():
    up = pl.DataFrame([("o1", "power", "start", "C1", 50, 1 * H), ("o1", "power", "end", "C1", 0, 2 * H),
                       ("o1", "power", "start", "C1", 70, 3 * H), ("o2", "gas", "start", "C2", 5, 1 * H),
                       ("o2", "gas", "end", "C2", 0, 1 * H)],  # zero-length: over
                      schema={"outage_id": pl.String, "utility": pl.String, "status": pl.String, "cell_id": pl.String,
                              "customers": pl.Int64, "ts_ms": pl.Int64}, orient="row")
    state = utilities.outage_state(up)
    assert state.rows() == [("o1", "power", "C1", 70, 1 * H, None), ("o2", "gas", "C2", 5, 1 * H, 1 * H)]
    assert utilities.active_outages(state, 4 * H).row(0) == (1, 70)
    with pytest.raises(ValueError, match="unknown outage status"):
        utilities.outage_state(up.with_columns(pl.lit("paused").alias("status")))


def test_tolerance_per_quantity():
    # Defaults: pressure ±10 %, flow and load ±60 %. A night flow at -48 % is normal demand, a pressure
    # drop of 12 % is a fault; a custom table can tighten flow to ±30 %.
    q = ["pressure_kpa", "flow_m3h", "load_kw", "flow_m3h"]
    assert utilities.within_tolerance([-12.0, -48.0, 61.0, 10.0], q).tolist() == [False, True, False, True]
    assert utilities.within_tolerance([-12.0, -48.0], q[:2], {"pressure_kpa": 15.0, "flow_m3h": 30.0}).tolist() == [True, False]
    # A quantity without a tolerance is unknown, not "fine".
    assert utilities.within_tolerance([1.0], ["load_kw"], {"pressure_kpa": 10.0}).tolist() == [None]


def test_config_rejects_unknown_quantity():
    from brain.vitals import VitalsConfig

    with pytest.raises(ValueError, match="utility_tolerance_pct"):
        VitalsConfig(utility_tolerance_pct={"voltage_v": 5.0})
