"""The registry gate and physical checks, with a reason for every rejection."""
from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.ingest import KIND_DTYPES
from brain.schemas import KIND_SENSOR_TYPES, PHYSICAL_RANGE
from brain.validate import Validator


def _traffic(sensor_id, **over):
    row = {"sensor_id": sensor_id, "ts_ms": 1_000, "volume_veh": 10.0, "occupancy_pct": 12.0, "speed_kmh": 45.0, "interval_s": 60.0}
    row.update(over)
    return pl.DataFrame([row], schema=KIND_DTYPES["traffic"])


def test_each_reason(city):
    v = Validator.from_city(city)
    loop = next(s for s in city.sensors if s.type == "loop")
    air = next(s for s in city.sensors if s.type == "air")
    cases = {
        "out_of_range": _traffic(loop.id, occupancy_pct=150.0),
        "missing_field": _traffic(loop.id, speed_kmh=None),
        "unknown_sensor": _traffic("NOPE-1"),
        "kind_not_allowed": _traffic(air.id),
        "out_of_sensor_range": _traffic(loop.id, speed_kmh=loop.valid_max + 1),
    }
    for code, frame in cases.items():
        good, bad = v.validate("traffic", frame)
        assert good.height == 0, code
        assert bad["reason_code"].to_list() == [code]
        assert bad["reason"][0]  # a readable reason, never empty
    good, bad = v.validate("traffic", _traffic(loop.id))
    assert (good.height, bad.height) == (1, 0)
    assert good["sensor_idx"][0] == [s.id for s in city.sensors].index(loop.id)


def test_events_must_name_known_places(city):
    v = Validator.from_city(city)
    src = next(s for s in city.sensors if s.type in KIND_SENSOR_TYPES["grid_case"])
    frame = pl.DataFrame(
        [{"sensor_id": src.id, "ts_ms": 5, "case_id": "c1", "status": "reported", "category": "litter",
          "cell_id": cell, "unit": "city mgmt", "deadline_ms": 10} for cell in (city.cells[0].id, "NO-CELL")],
        schema=KIND_DTYPES["grid_case"],
    )
    good, bad = v.validate("grid_case", frame)
    assert good["cell_id"].to_list() == [city.cells[0].id]
    assert bad["reason_code"].to_list() == ["unknown_cell"]
    frame = frame.with_columns(pl.lit("lost").alias("status"))
    assert v.validate("grid_case", frame)[1]["reason_code"].to_list() == ["bad_value", "bad_value"]


@settings(max_examples=80, deadline=None)
@given(
    field=st.sampled_from(["volume_veh", "occupancy_pct", "speed_kmh"]),
    value=st.floats(allow_nan=False, allow_infinity=True, width=64),
)
def test_physical_range_is_exactly_the_table(city, field, value):
    v = Validator.from_city(city)
    loop = next(s for s in city.sensors if s.type == "loop")
    good, bad = v.validate("traffic", _traffic(loop.id, **{field: value}))
    lo, hi = PHYSICAL_RANGE[field]
    inside_physical = lo <= value <= hi
    inside_sensor = field != "speed_kmh" or loop.valid_min <= value <= loop.valid_max
    assert good.height == (1 if inside_physical and inside_sensor else 0)
    assert good.height + bad.height == 1
    if not inside_physical:
        assert bad["reason_code"][0] == "out_of_range" and field in bad["reason"][0]


@settings(max_examples=40, deadline=None)
@given(ids=st.lists(st.one_of(st.text(max_size=8), st.sampled_from(["L-", "AQ-"])), min_size=1, max_size=20))
def test_unknown_terminals_are_quarantined_never_guessed(city, ids):
    v = Validator.from_city(city)
    known = {s.id for s in city.sensors}
    frame = pl.concat([_traffic(i) for i in ids])
    good, bad = v.validate("traffic", frame)
    assert good.height + bad.height == len(ids)
    assert set(good["sensor_id"].to_list()) <= known
    unknown = [i for i in ids if i not in known]
    assert bad.filter(pl.col("reason_code") == "unknown_sensor").height == len(unknown)
