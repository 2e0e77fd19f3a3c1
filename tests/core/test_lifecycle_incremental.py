"""The in-place lifecycle table equals the whole-table merge it replaced: same rows, same order, after any
sequence of updates, prunes, folds of the tail, compactions and checkpoint round trips."""
from __future__ import annotations

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import brain.lifecycle as lifecycle
from brain.lifecycle import LifecycleTable, merge

STAGES = {"reported": "reported_ms", "dispatched": "dispatched_ms", "closed": "closed_ms"}
FIELDS = ["segment_id", "severity"]
SCHEMA = {"incident_id": pl.Utf8, "status": pl.Utf8, "ts_ms": pl.Int64, "segment_id": pl.Utf8, "severity": pl.Int64}
RETENTION_MS = 1_000


class WholeTable:
    """The previous formulation: every update merges the whole table; prune filters it."""

    def __init__(self):
        self.rows_of = LifecycleTable("incident_id", STAGES, FIELDS, RETENTION_MS)
        self.frame = None

    def update(self, updates: pl.DataFrame) -> None:
        rows = self.rows_of._as_rows(updates)  # noqa: SLF001 - the same rows the table merges
        stacked = rows if self.frame is None or not self.frame.height else self.frame.vstack(rows)
        self.frame = merge(stacked, "incident_id", list(STAGES.values()), FIELDS)

    def prune(self, now_ms: int) -> None:
        if self.frame is not None and self.frame.height:
            col = pl.col("closed_ms")
            self.frame = self.frame.filter(col.is_null() | (col >= now_ms - RETENTION_MS))


update_op = st.lists(st.fixed_dictionaries({
    "incident_id": st.sampled_from([f"i{k}" for k in range(8)]),
    "status": st.sampled_from(list(STAGES)),
    "ts_ms": st.integers(0, 6_000),
    "segment_id": st.one_of(st.none(), st.sampled_from(["A", "B", "C"])),
    "severity": st.one_of(st.none(), st.integers(1, 4)),
}), min_size=0, max_size=6).map(lambda rows: ("update", rows))
prune_op = st.integers(0, 8_000).map(lambda t: ("prune", t))
ops = st.lists(st.one_of(update_op, update_op, prune_op, st.just(("checkpoint", None))), max_size=25)


@settings(max_examples=250, deadline=None)
@given(ops, st.sampled_from([0, 1, 3, 4096]), st.sampled_from([0.0, 0.3, 1.0]), st.sampled_from([1, 2, 5, 16_384]))
def test_in_place_table_is_the_whole_table_merge(sequence, tail_rows, compact_share, block_rows):
    old = (lifecycle.TAIL_ROWS, lifecycle.COMPACT_SHARE, lifecycle.BLOCK_ROWS)
    lifecycle.TAIL_ROWS, lifecycle.COMPACT_SHARE, lifecycle.BLOCK_ROWS = tail_rows, compact_share, block_rows
    try:
        table, whole = LifecycleTable("incident_id", STAGES, FIELDS, RETENTION_MS), WholeTable()
        held = []  # every frame handed out, with its rows then: later writes must not reach them
        for op, arg in sequence:
            if op == "update":
                batch = pl.DataFrame(arg, schema=SCHEMA)
                table.update(batch)
                whole.update(batch) if batch.height else None
            elif op == "prune":
                table.prune(arg)
                whole.prune(arg)
            else:
                restored = LifecycleTable("incident_id", STAGES, FIELDS, RETENTION_MS)
                restored.load(table.state())
                table = restored
            got = None if table.frame is None else table.frame.rows()
            want = None if whole.frame is None else whole.frame.rows()
            assert got == want, (op, arg)
            held.append((table.frame, got))  # (it shares the table's buffers)
        for frame, rows in held:
            assert (None if frame is None else frame.rows()) == rows
    finally:
        lifecycle.TAIL_ROWS, lifecycle.COMPACT_SHARE, lifecycle.BLOCK_ROWS = old


def test_a_reader_keeps_its_frame_while_the_table_moves_on():
    table = LifecycleTable("incident_id", STAGES, FIELDS, RETENTION_MS)
    table.update(pl.DataFrame([{"incident_id": "a", "status": "reported", "ts_ms": 1, "segment_id": "A", "severity": 1}], schema=SCHEMA))
    before = table.frame
    table.update(pl.DataFrame([{"incident_id": "a", "status": "closed", "ts_ms": 9, "segment_id": "B", "severity": 2}], schema=SCHEMA))
    assert before.get_column("closed_ms").to_list() == [None] and before.get_column("segment_id").to_list() == ["A"]
    assert table.frame.get_column("closed_ms").to_list() == [9]


@pytest.mark.parametrize("kept", [1_000, 50_000])
def test_a_small_update_does_not_touch_the_whole_table(kept):
    """A 14-row update costs about the same with 1k or 50k entities kept (not 50x more)."""
    import time

    def build():
        t = LifecycleTable("incident_id", STAGES, FIELDS, 10**12)
        t.update(pl.DataFrame({"incident_id": [f"c{k}" for k in range(kept)], "status": ["reported"] * kept,
                               "ts_ms": list(range(kept)), "segment_id": ["A"] * kept, "severity": [1] * kept}, schema=SCHEMA))
        return t

    t = build()
    batch = pl.DataFrame({"incident_id": [f"c{k}" for k in range(0, 7 * 97, 97)] + [f"n{k}" for k in range(7)],
                          "status": ["closed"] * 14, "ts_ms": [10**6] * 14, "segment_id": ["B"] * 14, "severity": [2] * 14},
                         schema=SCHEMA)
    t.update(batch)  # the index is built once, on the first update
    start = time.perf_counter()
    for _ in range(20):
        t.update(batch)
    per_update_ms = (time.perf_counter() - start) / 20 * 1000
    assert per_update_ms < 25, per_update_ms  # the whole-table merge costs ~150 ms at 50k on this machine
    assert t.frame.height == kept + 7


def test_a_held_frame_makes_an_update_copy_only_the_blocks_it_touches(monkeypatch):
    """A reader holding the previous tick's frame (the pipeline does, a live view does) must not make
    the next small update copy every column: only the block written to is copied."""
    monkeypatch.setattr(lifecycle, "BLOCK_ROWS", 100)
    table = LifecycleTable("incident_id", STAGES, FIELDS, 10**12)
    n = 1_000
    table.update(pl.DataFrame({"incident_id": [f"c{k}" for k in range(n)], "status": ["reported"] * n,
                               "ts_ms": list(range(n)), "segment_id": ["A"] * n, "severity": [1] * n}, schema=SCHEMA))
    table.update(pl.DataFrame({"incident_id": ["c0"], "status": ["reported"], "ts_ms": [0], "segment_id": ["A"], "severity": [1]},
                              schema=SCHEMA))  # the index, and a first write, out of the way

    def addresses():
        # closed_ms's values buffer per block (Arrow export shares polars' buffers)
        return [blk[3].to_arrow().buffers()[1].address for blk in table._blocks]  # noqa: SLF001

    held = table.frame
    before = addresses()
    table.update(pl.DataFrame({"incident_id": ["c250"], "status": ["closed"], "ts_ms": [5_000], "segment_id": ["B"], "severity": [2]},
                              schema=SCHEMA))
    after = addresses()
    assert [k for k, (a, b) in enumerate(zip(before, after)) if a != b] == [2]  # row 250 lives in block 2
    assert held.row(250)[3] is None and table.frame.row(250)[3] == 5_000  # closed_ms: the reader's is unchanged
