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


def _reference_reason(kind, row, sensors):
    """The documented check order, one row at a time in plain Python (None: the row is applied)."""
    from brain.validate import MEASURED_FIELDS, UNIT_FIELD, _required
    from brain.schemas import PRIMARY_FIELD

    for name in _required(kind):
        if row.get(name) is None:
            return "missing_field"
    measured = MEASURED_FIELDS.get(kind)
    if measured and all(row.get(m) is None for m in measured):
        return "missing_field"
    for name in KIND_DTYPES[kind]:
        v = row.get(name)
        if name in PHYSICAL_RANGE and v is not None:
            lo, hi = PHYSICAL_RANGE[name]
            if not lo <= v <= hi:  # NaN fails this too
                return "out_of_range"
    sensor = sensors.get(row["sensor_id"])
    if sensor is None:
        return "unknown_sensor"
    if sensor.type not in KIND_SENSOR_TYPES[kind]:
        return "kind_not_allowed"
    field = PRIMARY_FIELD[kind] or (UNIT_FIELD.get(sensor.unit) if kind == "utility" else None)
    v = row.get(field) if field else None
    if v is not None and not sensor.valid_min <= v <= sensor.valid_max:
        return "out_of_sensor_range"
    return None


_value = st.one_of(st.none(), st.floats(-10, 6000, allow_nan=False), st.sampled_from([float("nan"), 0.0, 100.0, 150.0, 2000.0]))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), kind=st.sampled_from(["traffic", "utility", "noise", "water_quality", "probe"]))
def test_numpy_checks_equal_a_row_by_row_reference(city, data, kind):
    """The columnar checks give each row the reason the plain per-row rules give, in the same order."""
    sensors = {s.id: s for s in city.sensors}
    pool = [s.id for s in city.sensors if s.type in KIND_SENSOR_TYPES[kind]][:6] + [city.sensors[0].id, "NOPE-9", None]
    names = [n for n in KIND_DTYPES[kind] if n not in ("sensor_id", "ts_ms")]
    rows = data.draw(st.lists(st.fixed_dictionaries(
        {"sensor_id": st.sampled_from(pool), "ts_ms": st.one_of(st.none(), st.integers(0, 10**13))}
        | {n: (_value if KIND_DTYPES[kind][n] == pl.Float64 else st.one_of(st.none(), st.integers(-5, 200_000))) for n in names}
    ), min_size=1, max_size=40))
    frame = pl.DataFrame(rows, schema=KIND_DTYPES[kind])
    good, bad = Validator.from_city(city).validate(kind, frame)
    expected = [_reference_reason(kind, r, sensors) for r in frame.rows(named=True)]
    assert good.height == expected.count(None)
    assert bad["reason_code"].to_list() == [e for e in expected if e is not None]
    assert good["sensor_id"].to_list() == [r["sensor_id"] for r, e in zip(frame.rows(named=True), expected) if e is None]
