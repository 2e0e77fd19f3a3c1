"""The cockpit's ``grid_unit`` table from the incrementally kept (unit, category) tally == the same
table recounted over every case kept with ``case_metrics`` per tick (the previous path, kept as
:meth:`CockpitTables._grid_unit_recount`).

Any sequence of case updates (new cases, progress, out-of-order stages, units and categories null,
"" or set, moved from one unit to another, deadlines passing), prunes, checkpoint round trips, folds
of the table's tail and compactions, and ticks (one or several per call, sometimes going back in
time): rows, values, dtypes and order equal, exactly. Also through a real pipeline on the demo city
with a checkpoint restore in the middle.
"""
from __future__ import annotations

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

import brain.lifecycle as lifecycle
from brain.city import demo_city_path, load_city
from brain.lifecycle import LifecycleTable
from brain.pipeline import LIFECYCLE_KINDS, CityPipeline, _lifecycle_schema
from brain.vitals.config import VitalsConfig
from brain.vitals.stack.unittally import UnitCaseTally, grid_unit_frame
from streams.cockpit_tables import CockpitTables
from streams.sim import Simulator
from tests.vitals.steps import lifecycle_steps, maintenance_step, tick_ends

ID, STAGES, FIELDS, _ = LIFECYCLE_KINDS["grid_case"]
MIN = 60_000
LOOKBACK_S = 1800.0  # short: cases leave the closed-recently figures within a test's span
SCHEMA = {ID: pl.Utf8, "status": pl.Utf8, "ts_ms": pl.Int64, "category": pl.Utf8, "deadline_ms": pl.Int64,
          "cell_id": pl.Utf8, "unit": pl.Utf8, "sensor_id": pl.Utf8}


@pytest.fixture(scope="module")
def city():
    return load_city(demo_city_path())


update = st.fixed_dictionaries({
    ID: st.sampled_from([f"GC-{k}" for k in range(12)]),
    "status": st.sampled_from(list(STAGES)),
    # Times, deadlines and ticks on a 5-minute grid (often +7 ms): interval ends often fall on a tick exactly.
    "ts_ms": st.tuples(st.integers(0, 48), st.sampled_from([0, 0, 7])).map(lambda m: m[0] * 5 * MIN + m[1]),
    "category": st.sampled_from(["litter", "noise", "", "Ä-road", None]),
    "unit": st.sampled_from(["U1", "U2", "", "u1", None]),
    "cell_id": st.sampled_from(["C1", None]),
    "deadline_ms": st.one_of(st.none(), st.integers(0, 60).map(lambda m: m * 5 * MIN)),
})
step = lifecycle_steps(update)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.lists(update, min_size=4, max_size=16), steps=st.lists(step, min_size=1, max_size=25), tail=st.sampled_from([0, 2, 4096]), compact=st.sampled_from([0.0, 0.3]),
       block=st.sampled_from([1, 3, 16_384]))
def test_grid_unit_from_tally_equals_recount(city, first, steps, tail, compact, block, monkeypatch):
    monkeypatch.setattr(lifecycle, "TAIL_ROWS", tail)
    monkeypatch.setattr(lifecycle, "BLOCK_ROWS", block)
    monkeypatch.setattr(lifecycle, "COMPACT_SHARE", compact)
    ops = CockpitTables(city, VitalsConfig(case_lookback_s=LOOKBACK_S))
    table = LifecycleTable(ID, STAGES, FIELDS, retention_ms=40 * MIN)
    tally = UnitCaseTally(table, lookback_ms=int(LOOKBACK_S * 1000))
    now, schema = 5 * MIN, _lifecycle_schema("grid_case")
    for kind, arg in [("update", first), *steps, ("tick", [1])]:
        if kind == "update":
            table.update(pl.DataFrame([{**u, "sensor_id": "GI-1"} for u in arg], schema=SCHEMA))
            continue
        if maintenance_step(kind, arg, [table], MIN):
            continue
        now, ends = tick_ends(kind, arg, now, MIN)
        frame = table.current(schema)
        got = grid_unit_frame(tally.snapshots(ends), ends)
        if frame.height == 0:  # (the operator answers an empty table without reading anything)
            assert got.height == 0
            continue
        want = ops._grid_unit_recount(frame, ends)
        assert_frame_equal(got, want, check_exact=True)


def test_whole_table_read_interns_by_join():
    """A table read whole (more than 4096 rows: the join path of the interning) gives the recount's rows."""
    n = 6000
    table = LifecycleTable(ID, STAGES, FIELDS)
    units = ["U1", None, "", "U2", "u0"]
    cats = ["litter", None, "noise", ""]
    table.update(pl.DataFrame({ID: [f"c{i}" for i in range(n)], "status": ["reported"] * n, "ts_ms": [(i % 97) * MIN for i in range(n)],
                               "category": [cats[i % 4] for i in range(n)], "deadline_ms": [(i % 13) * 10 * MIN for i in range(n)],
                               "cell_id": ["C1"] * n, "unit": [units[i % 5] for i in range(n)], "sensor_id": ["GI-1"] * n}, schema=SCHEMA))
    half = n // 2
    table.update(pl.DataFrame({ID: [f"c{i}" for i in range(half)], "status": ["closed"] * half, "ts_ms": [(i % 130) * MIN for i in range(half)],
                               "category": [None] * half, "deadline_ms": [None] * half, "cell_id": [None] * half,
                               "unit": [None] * half, "sensor_id": ["GI-1"] * half}, schema=SCHEMA))
    tally = UnitCaseTally(table, lookback_ms=3_600_000)
    ends = [t * 5 * MIN for t in range(1, 40)]
    got = grid_unit_frame(tally.snapshots(ends), ends)
    want = CockpitTables.__new__(CockpitTables)
    want.config = VitalsConfig(case_lookback_s=3600.0)
    want = want._grid_unit_recount(table.current(_lifecycle_schema("grid_case")), ends)
    assert want.height > 20 * len(ends) // 2 and want["overdue"].sum() > 0 and want["closed_on_time"].sum() > 0
    assert_frame_equal(got, want, check_exact=True)


class _Checked(CockpitTables):
    """The operator checking its tally's table against the recount of the very batch, every batch."""

    batches = 0

    def _grid_unit(self, batch):
        got = super()._grid_unit(batch)
        cases = batch.inputs["cases"]
        if cases.height:
            assert_frame_equal(got, self._grid_unit_recount(cases, batch.ends), check_exact=True)
            self.batches += 1
        return got


def test_pipeline_grid_unit_equals_recount_across_restore(city):
    """Four simulated hours of the demo city through a pipeline (stacked ticks, cases dispatched to
    units, closed, overdue), restored from its checkpoint half-way into a new pipeline: every batch's
    ``grid_unit`` equals the recount of that batch's cases."""
    op = _Checked(city)
    pipe = CityPipeline(city, window_operators=[op])
    assert op.tally is not None
    sim = Simulator(city, seed=3)
    rows = 0
    for k, b in enumerate(sim.batches(sim.start_ms + 4 * 3_600_000, batch_s=1200)):
        if k == 6:
            blob = pipe.snapshot()
            op = _Checked(city)
            pipe = CityPipeline(city, window_operators=[op])
            pipe.restore(blob)
        for w in pipe.ingest_frames(b.frames).windows + pipe.advance_to(b.end_ms).windows:
            rows += w.batch.vitals["grid_unit"].height
    assert op.batches > 3 and rows > 0
