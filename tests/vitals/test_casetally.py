"""Grid-case figures from the incrementally kept tally == the same figures recounted over every case.

Any sequence of case updates (new cases, progress, out-of-order stages, cells outside the city, null
cells and categories, deadlines passing), prunes, checkpoint round trips, folds of the table's tail and
compactions, and ticks (one or several per call, sometimes going back in time): the grid_cell,
grid_category, district and city tables of ``compute_vitals_batch(..., cases=tally)`` equal those of
the frame path that counts every case at every tick.
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
from brain.kernels.cases import case_counts_reference
from brain.vitals.stack.casetally import CaseTally
from brain.vitals.stack.keys import HOUR_MS, _ints
from tests.vitals.steps import lifecycle_steps, maintenance_step, tick_ends

ID, STAGES, FIELDS, _ = LIFECYCLE_KINDS["grid_case"]
MIN = 60_000
LOOKBACK_S = 1800.0  # short: cases leave the closed-recently figures within a test's span
COMPARED = ("grid_cell", "grid_category", "district", "city")


@pytest.fixture(scope="module")
def city():
    return load_city(demo_city_path())


def _cells(city):
    return [c.id for c in city.cells[:5]] + ["NOT-A-CELL", None]


update = st.fixed_dictionaries({
    ID: st.sampled_from([f"GC-{k}" for k in range(12)]),
    "status": st.sampled_from(list(STAGES)),
    # Times, deadlines and ticks on a 5-minute grid (often +7 ms): interval ends often fall on a tick exactly.
    "ts_ms": st.tuples(st.integers(0, 48), st.sampled_from([0, 0, 7])).map(lambda m: m[0] * 5 * MIN + m[1]),
    "category": st.sampled_from(["litter", "noise", "road_damage", None]),
    "cell": st.integers(0, 6),
    "deadline_ms": st.one_of(st.none(), st.integers(0, 60).map(lambda m: m * 5 * MIN)),
})
step = lifecycle_steps(update)


def _recount(frame: pl.DataFrame, cells: list, ends: list[int]) -> np.ndarray:
    """Every figure (exists too) per (tick, cell of the tally's list) counted over every case."""
    group = np.asarray([cells.index(c) for c in frame["cell_id"].to_list()], dtype=np.int64)  # every case's cell is known
    times = [a for col in ("reported_ms", "closed_ms", "deadline_ms") for a in _ints(frame[col])]
    counts, duration = case_counts_reference(*times, np.asarray(ends, dtype=np.int64), int(LOOKBACK_S * 1000), HOUR_MS, group, len(cells))
    return np.concatenate([counts, duration.astype(np.int64)[:, :, None]], axis=2)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=25), tail=st.sampled_from([0, 2, 4096]), compact=st.sampled_from([0.0, 0.3]),
       block=st.sampled_from([1, 3, 16_384]))
def test_tally_equals_recount(city, steps, tail, compact, block, monkeypatch):
    monkeypatch.setattr(lifecycle, "TAIL_ROWS", tail)
    monkeypatch.setattr(lifecycle, "BLOCK_ROWS", block)
    monkeypatch.setattr(lifecycle, "COMPACT_SHARE", compact)
    cfg = VitalsConfig(case_lookback_s=LOOKBACK_S)
    table = LifecycleTable(ID, STAGES, FIELDS, retention_ms=40 * MIN)
    tally = CaseTally(table, lookback_ms=int(LOOKBACK_S * 1000))
    cells = _cells(city)
    now = 5 * MIN
    schema = _lifecycle_schema("grid_case")
    for kind, arg in steps:
        if kind == "update":
            rows = [{**u, "cell_id": cells[u.pop("cell")], "unit": "u", "sensor_id": "GI-1"} for u in [dict(x) for x in arg]]
            table.update(pl.DataFrame(rows, schema={ID: pl.Utf8, "status": pl.Utf8, "ts_ms": pl.Int64, "category": pl.Utf8,
                                                    "deadline_ms": pl.Int64, "cell_id": pl.Utf8, "unit": pl.Utf8, "sensor_id": pl.Utf8}))
            continue
        if maintenance_step(kind, arg, [table], MIN):
            continue
        now, ends = tick_ends(kind, arg, now, MIN)
        frames = {"cases": table.current(schema)}
        if steps.index((kind, arg)) % 2:  # (the counters themselves, exists too, against a recount)
            snap = tally.snapshots(ends)
            np.testing.assert_array_equal(snap.cell_counts, _recount(frames["cases"], snap.cells, ends))
        got = compute_vitals_batch(frames, city, ends, cfg, cases=tally)
        want = compute_vitals_batch(frames, city, ends, cfg)
        for name in COMPARED:
            assert_frame_equal(got[name], want[name], check_exact=True)


def test_another_lookback_is_not_used(city):
    """A tally kept for another lookback gives way to the recount (same answer, never a wrong one)."""
    table = LifecycleTable(ID, STAGES, FIELDS)
    tally = CaseTally(table, lookback_ms=1)
    table.update(pl.DataFrame({ID: ["a"], "status": ["closed"], "ts_ms": [10 * MIN], "category": ["litter"],
                               "cell_id": [city.cells[0].id], "unit": ["u"], "deadline_ms": [None], "sensor_id": ["GI-1"]},
                              schema_overrides={"deadline_ms": pl.Int64}))
    table.update(pl.DataFrame({ID: ["a"], "status": ["reported"], "ts_ms": [MIN], "category": [None],
                               "cell_id": [None], "unit": [None], "deadline_ms": [None], "sensor_id": ["GI-1"]},
                              schema_overrides={k: t for k, t in _lifecycle_schema("grid_case").items() if k in ("category", "cell_id", "unit", "deadline_ms")}))
    frames = {"cases": table.current(_lifecycle_schema("grid_case"))}
    got = compute_vitals_batch(frames, city, [20 * MIN], cases=tally)
    want = compute_vitals_batch(frames, city, [20 * MIN])
    assert got["city"]["cases_mean_time_to_close_h"].to_list() == want["city"]["cases_mean_time_to_close_h"].to_list() == [0.15]


def test_bad_tally_is_refused(city):
    with pytest.raises(ValueError, match="CaseTally"):
        compute_vitals_batch({}, city, [MIN], cases="tally")


def test_update_costs_follow_the_change():
    """Counters change only by the touched cases: 14 cases progressed in a table of 20k leave the other
    cells' counters as they were, and the events waiting are only those of cases with a future change."""
    table = LifecycleTable(ID, STAGES, FIELDS)
    tally = CaseTally(table, lookback_ms=86_400_000)
    n = 20_000
    table.update(pl.DataFrame({ID: [f"c{i}" for i in range(n)], "status": ["closed"] * n, "ts_ms": [MIN] * n,
                               "category": ["litter"] * n, "cell_id": [f"cell{i % 50}" for i in range(n)], "unit": ["u"] * n,
                               "deadline_ms": [0] * n, "sensor_id": ["GI-1"] * n}))
    table.update(pl.DataFrame({ID: [f"c{i}" for i in range(n)], "status": ["reported"] * n, "ts_ms": [0] * n,
                               "category": [None] * n, "cell_id": [None] * n, "unit": [None] * n,
                               "deadline_ms": [None] * n, "sensor_id": ["GI-1"] * n},
                              schema_overrides={"category": pl.Utf8, "cell_id": pl.Utf8, "unit": pl.Utf8, "deadline_ms": pl.Int64}))
    before = tally.snapshots([2 * MIN])
    assert tally.pending_events() == 3 * n  # each closed case leaves the closed-recently figures a day later
    table.update(pl.DataFrame({ID: ["new"], "status": ["reported"], "ts_ms": [3 * MIN], "category": ["litter"],
                               "cell_id": ["cell7"], "unit": ["u"], "deadline_ms": [None], "sensor_id": ["GI-1"]},
                              schema_overrides={"deadline_ms": pl.Int64}))
    after = tally.snapshots([4 * MIN])
    changed = (after.cell_counts[0, :50] != before.cell_counts[0, :50]).any(axis=1)
    assert changed.nonzero()[0].tolist() == [before.cells.index("cell7")]


def test_interval_ends_on_ticks_exactly():
    """Every interval end (reported, +1 h, closed, deadline, closed + lookback) falling on a tick: the
    counters as of each tick equal the recount, before and after the cases change."""
    table = LifecycleTable(ID, STAGES, FIELDS, retention_ms=10 * HOUR_MS)
    tally = CaseTally(table, lookback_ms=int(LOOKBACK_S * 1000))
    five = 5 * MIN
    rows = []
    for k, (rep, dead, close) in enumerate([(0, 2, None), (1, 3, 6), (2, 20, 4), (3, None, 3), (4, 4, 4), (6, 5, None)]):
        common = {"category": "litter", "cell_id": f"c{k % 2}", "unit": "u", "sensor_id": "GI-1"}
        rows.append({ID: f"k{k}", "status": "reported", "ts_ms": rep * five, "deadline_ms": None if dead is None else dead * five, **common})
        if close is not None:
            rows.append({ID: f"k{k}", "status": "closed", "ts_ms": close * five, "deadline_ms": None, **common})
    schema = {ID: pl.Utf8, "status": pl.Utf8, "ts_ms": pl.Int64, "category": pl.Utf8, "deadline_ms": pl.Int64,
              "cell_id": pl.Utf8, "unit": pl.Utf8, "sensor_id": pl.Utf8}
    ends = [t * five for t in range(0, 30)]
    table.update(pl.DataFrame(rows[:4], schema=schema))
    half = ends[:8]
    snap = tally.snapshots(half)
    np.testing.assert_array_equal(snap.cell_counts, _recount(table.frame, snap.cells, half))
    table.update(pl.DataFrame(rows[4:], schema=schema))  # some changes land before the last tick asked for
    rest = ends[8:]
    snap = tally.snapshots(rest)
    np.testing.assert_array_equal(snap.cell_counts, _recount(table.frame, snap.cells, rest))
    assert snap.cell_counts[:, :, 3].max() > 0 and snap.cell_counts[:, :, 5].max() > 0  # overdue and on-time closes seen
