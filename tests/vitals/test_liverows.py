"""Incident and outage figures from the live rows (kept up to date by the rows that change) == the same
figures recounted over every row the tables keep.

Any sequence of incident and outage updates (new ones, progress, out-of-order stages, null severities,
types, units and customers, cells outside the city, incidents placed by segment or by position), prunes,
checkpoint round trips, folds of the table's tail and compactions, and ticks (one or several per call,
sometimes going back in time): the emergency, utility_outages, district and city tables of
``compute_vitals_batch(..., incidents=live, outages=live)`` equal, to the last bit, those of the
frame path that evaluates every kept row at every tick. And the live set stays the live state: rows
whose time is over leave it.
"""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import brain.lifecycle as lifecycle
from brain.city import demo_city_path, load_city
from brain.lifecycle import LifecycleTable
from brain.pipeline import LIFECYCLE_KINDS, _lifecycle_schema
from brain.vitals import compute_vitals_batch
from brain.vitals.config import VitalsConfig
from brain.vitals.stack.liverows import LiveRows, incident_until, outage_until
from tests.vitals.steps import maintenance_step, tick_ends

INC_ID, INC_STAGES, INC_FIELDS, _ = LIFECYCLE_KINDS["incident"]
OUT_ID, OUT_STAGES, OUT_FIELDS, _ = LIFECYCLE_KINDS["outage"]
MIN = 60_000
LOOKBACK_S = 1800.0  # short: incidents leave the recent figures within a test's span
COMPARED = ("emergency", "utility_outages", "district", "city")


@pytest.fixture(scope="module")
def city():
    return load_city(demo_city_path())


ts = st.tuples(st.integers(0, 30), st.sampled_from([0, 0, 7, 1234])).map(lambda m: m[0] * 5 * MIN + m[1])
incident = st.fixed_dictionaries({
    INC_ID: st.sampled_from([f"IN-{k}" for k in range(10)]),
    "status": st.sampled_from(list(INC_STAGES)),
    "ts_ms": ts,
    "type": st.sampled_from(["fire", "medical", "traffic_accident", None]),
    "severity": st.sampled_from([1, 2, 3, 4, None]),
    "place": st.integers(0, 7),  # a cell's centre, far away, or a segment
    "units": st.sampled_from([1, 2, 5, None]),
    "then": st.sampled_from([None, None, 0, 1, 3, 6]),  # often a close this many 5-minute steps later too
})
outage = st.fixed_dictionaries({
    OUT_ID: st.sampled_from([f"OU-{k}" for k in range(10)]),
    "status": st.sampled_from(list(OUT_STAGES)),
    "ts_ms": ts,
    "utility": st.sampled_from(["water", "power", "gas", None]),
    "cell": st.integers(0, 6),
    "customers": st.sampled_from([0, 12, 340, None]),
    "then": st.sampled_from([None, None, 0, 1, 3, 6]),  # often an end this many 5-minute steps later too
})
step = st.one_of(
    st.tuples(st.just("incidents"), st.lists(incident, min_size=1, max_size=6)),
    st.tuples(st.just("outages"), st.lists(outage, min_size=1, max_size=6)),
    st.tuples(st.just("tick"), st.lists(st.integers(1, 4), min_size=1, max_size=3)),  # 5-minute steps, stacked
    st.tuples(st.just("back"), st.integers(1, 12).map(lambda m: 5 * m)),
    st.tuples(st.just("prune"), st.integers(0, 300)),
    st.tuples(st.just("checkpoint"), st.none()),
)


def _then(updates, final: str) -> list[dict]:
    """Each update, then (if ``then`` is set) its entity's final stage that many 5-minute steps later."""
    out = []
    for u in updates:
        u = dict(u)
        then = u.pop("then", None)
        out.append(u)
        if then is not None:
            out.append({**u, "status": final, "ts_ms": u["ts_ms"] + then * 5 * MIN})
    return out


def _incident_rows(city, updates) -> pl.DataFrame:
    cells, segs = city.cells, city.segments
    rows = []
    for u in _then(updates, "closed"):
        place = u.pop("place")
        lon, lat, seg = None, None, None
        if place < 5:
            lon, lat = cells[place].center
        elif place == 5:
            lon, lat = cells[0].center[0] + 50.0, cells[0].center[1]  # outside every district
        else:
            seg = segs[place - 6].id
            lon, lat = cells[1].center
        rows.append({**u, "lon": lon, "lat": lat, "segment_id": seg, "sensor_id": "CAD-1"})
    return pl.DataFrame(rows, schema={INC_ID: pl.Utf8, "status": pl.Utf8, "ts_ms": pl.Int64, "type": pl.Utf8, "severity": pl.Int64,
                                      "units": pl.Int64, "lon": pl.Float64, "lat": pl.Float64, "segment_id": pl.Utf8, "sensor_id": pl.Utf8})


def _outage_rows(city, updates) -> pl.DataFrame:
    cells = [c.id for c in city.cells[:5]] + ["NOT-A-CELL", None]
    rows = [{**{k: v for k, v in u.items() if k != "cell"}, "cell_id": cells[u["cell"]], "sensor_id": "UT-1"}
            for u in _then(updates, "end")]
    return pl.DataFrame(rows, schema={OUT_ID: pl.Utf8, "status": pl.Utf8, "ts_ms": pl.Int64, "utility": pl.Utf8,
                                      "customers": pl.Int64, "cell_id": pl.Utf8, "sensor_id": pl.Utf8})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=25), tail=st.sampled_from([0, 2, 4096]), compact=st.sampled_from([0.0, 0.3]))
def test_live_rows_equal_recount(city, steps, tail, compact, monkeypatch):
    monkeypatch.setattr(lifecycle, "TAIL_ROWS", tail)
    monkeypatch.setattr(lifecycle, "COMPACT_SHARE", compact)
    cfg = VitalsConfig(incident_lookback_s=LOOKBACK_S)
    incidents = LifecycleTable(INC_ID, INC_STAGES, INC_FIELDS, retention_ms=40 * MIN)
    outages = LifecycleTable(OUT_ID, OUT_STAGES, OUT_FIELDS, retention_ms=40 * MIN)
    inc_schema, out_schema = _lifecycle_schema("incident"), _lifecycle_schema("outage")
    live_inc = LiveRows(incidents, incident_until(int(LOOKBACK_S * 1000)), list(inc_schema))
    live_out = LiveRows(outages, outage_until, list(out_schema))
    now = 5 * MIN
    for kind, arg in steps:
        if kind == "incidents":
            incidents.update(_incident_rows(city, arg))
            continue
        if kind == "outages":
            outages.update(_outage_rows(city, arg))
            continue
        if maintenance_step(kind, arg, [incidents, outages], MIN):
            continue
        now, ends = tick_ends(kind, arg, now, MIN)
        frames = {"incidents": incidents.current(inc_schema), "outages": outages.current(out_schema)}
        got = compute_vitals_batch(frames, city, ends, cfg, incidents=live_inc, outages=live_out)
        want = compute_vitals_batch(frames, city, ends, cfg)
        for name in COMPARED:
            assert_frame_equal(got[name], want[name], check_exact=True)
        # the live set is the live state: exactly the rows that can count at these ticks or later
        assert live_inc.size == _can_count(incidents.frame, ends[0], "reported_ms", "closed_ms", int(LOOKBACK_S * 1000))
        assert live_out.size == _can_count(outages.frame, ends[0], "started_ms", "ended_ms", 0)


def _can_count(frame, t0: int, start: str, end: str, lookback_ms: int) -> int:
    """Rows that count at some tick >= t0: started, and not over (ended by t0 — an outage —, and for an incident
    also reported more than the lookback before t0)."""
    if frame is None or not frame.height:
        return 0
    over = pl.col(end).is_not_null() & (pl.col(end) <= t0)
    if lookback_ms:  # an incident also counts as recent for the lookback after its report
        over &= pl.col(start) + lookback_ms <= t0
    return frame.filter(pl.col(start).is_not_null() & ~over).height


def test_live_rows_read_only_the_live_rows(city):
    """2,000 outages kept, 1,990 of them long over: a tick reads the 10 live ones (and the same figures)."""
    table = LifecycleTable(OUT_ID, OUT_STAGES, OUT_FIELDS)
    schema = _lifecycle_schema("outage")
    live = LiveRows(table, outage_until, list(schema))
    n = 2_000
    cells = [c.id for c in city.cells]
    table.update(pl.DataFrame({OUT_ID: [f"o{i}" for i in range(n)], "status": ["start"] * n, "ts_ms": np.arange(n, dtype=np.int64),
                               "utility": ["power"] * n, "cell_id": [cells[i % len(cells)] for i in range(n)],
                               "customers": [10] * n, "sensor_id": ["UT-1"] * n}))
    table.update(pl.DataFrame({OUT_ID: [f"o{i}" for i in range(n - 10)], "status": ["end"] * (n - 10),
                               "ts_ms": np.full(n - 10, 10 * MIN, dtype=np.int64), "utility": [None] * (n - 10),
                               "cell_id": [None] * (n - 10), "customers": [None] * (n - 10), "sensor_id": ["UT-1"] * (n - 10)},
                              schema_overrides={"utility": pl.Utf8, "cell_id": pl.Utf8, "customers": pl.Int64}))
    ends = [60 * MIN, 65 * MIN]
    assert live.frame(ends[0]).height == 10 and live.size == 10
    frames = {"outages": table.current(schema)}
    got = compute_vitals_batch(frames, city, ends, incidents=None, outages=live)
    want = compute_vitals_batch(frames, city, ends)
    for name in COMPARED:
        assert_frame_equal(got[name], want[name], check_exact=True)
    assert got["city"]["outages_active"].to_list() == [10, 10]


def test_bad_live_rows_are_refused(city):
    with pytest.raises(ValueError, match="LiveRows"):
        compute_vitals_batch({}, city, [MIN], outages="live")


def test_another_lookback_is_not_used(city):
    """Live incidents kept for another lookback give way to the recount (same answer, never a wrong one)."""
    table = LifecycleTable(INC_ID, INC_STAGES, INC_FIELDS)
    schema = _lifecycle_schema("incident")
    live = LiveRows(table, incident_until(1), list(schema))
    table.update(_incident_rows(city, [{INC_ID: "a", "status": "reported", "ts_ms": MIN, "type": "fire", "severity": 2,
                                        "place": 0, "units": 2},
                                       {INC_ID: "a", "status": "closed", "ts_ms": 2 * MIN, "type": None, "severity": None,
                                        "place": 0, "units": None}]))
    frames = {"incidents": table.current(schema)}
    got = compute_vitals_batch(frames, city, [20 * MIN], incidents=live)
    want = compute_vitals_batch(frames, city, [20 * MIN])
    assert_frame_equal(got["emergency"], want["emergency"], check_exact=True)
    assert want["emergency"].height == 1  # recent (the default lookback is a day): counted by the recount
