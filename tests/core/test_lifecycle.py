"""Lifecycle tables: the same updates in any batching give the same table (the module's promise)."""
from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.lifecycle import LifecycleTable

STAGES = {"reported": "reported_ms", "dispatched": "dispatched_ms", "closed": "closed_ms"}


def _table() -> LifecycleTable:
    return LifecycleTable("incident_id", STAGES, ["segment_id", "severity"])


def _reference(updates: list[dict]) -> dict:
    """Per entity, by plain rules: first time of each stage; each field from its newest non-null update;
    status of the newest update."""
    out: dict = {}
    for u in sorted(updates, key=lambda u: u["ts_ms"]):
        e = out.setdefault(u["incident_id"], {col: None for col in STAGES.values()} | {"segment_id": None, "severity": None})
        col = STAGES[u["status"]]
        e[col] = u["ts_ms"] if e[col] is None else min(e[col], u["ts_ms"])
        for f in ("segment_id", "severity"):
            if u[f] is not None:
                e[f] = u[f]
        e["status"], e["updated_ms"] = u["status"], u["ts_ms"]
    return out


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 10_000), min_size=1, max_size=30, unique=True).flatmap(lambda times: st.tuples(
        st.lists(st.fixed_dictionaries({
            "incident_id": st.sampled_from(["i1", "i2", "i3"]),
            "status": st.sampled_from(list(STAGES)),
            "segment_id": st.one_of(st.none(), st.sampled_from(["A", "B", "C"])),
            "severity": st.one_of(st.none(), st.integers(1, 4)),
        }), min_size=len(times), max_size=len(times)).map(lambda rows: [r | {"ts_ms": t} for r, t in zip(rows, times)]),
        st.lists(st.integers(0, len(times)), max_size=4),
    ))
)
def test_any_batching_gives_the_table_of_the_plain_rules(data):
    updates, cuts = data
    schema = {"incident_id": pl.Utf8, "status": pl.Utf8, "ts_ms": pl.Int64, "segment_id": pl.Utf8, "severity": pl.Int64}
    table = _table()
    bounds = [0, *sorted(cuts), len(updates)]
    for a, b in zip(bounds, bounds[1:]):
        if b > a:
            table.update(pl.DataFrame(updates[a:b], schema=schema))
    got = {row["incident_id"]: {k: v for k, v in row.items() if k != "incident_id"}
           for row in table.current({"incident_id": pl.Utf8, **{c: pl.Int64 for c in STAGES.values()}, "segment_id": pl.Utf8,
                                     "severity": pl.Int64, "status": pl.Utf8, "updated_ms": pl.Int64}).rows(named=True)}
    assert got == _reference(updates)


def test_a_field_keeps_its_newest_value_however_the_updates_are_cut():
    """A value set by an older update is not overwritten by an even older one that arrives in a
    later batch whose newest update leaves the field empty."""
    schema = {"incident_id": pl.Utf8, "status": pl.Utf8, "ts_ms": pl.Int64, "segment_id": pl.Utf8, "severity": pl.Int64}
    updates = pl.DataFrame({"incident_id": ["i1"] * 3, "status": ["reported", "reported", "dispatched"],
                            "ts_ms": [100, 50, 200], "segment_id": ["A", "B", None], "severity": [2, None, None]}, schema=schema)
    results = []
    for cut in range(4):
        table = _table()
        for part in (updates[:cut], updates[cut:]):
            table.update(part)
        results.append(table.current(table.frame.schema)["segment_id"].to_list())
    assert results == [["A"]] * 4


_ROW_SCHEMA = {"incident_id": pl.Utf8, "reported_ms": pl.Int64, "closed_ms": pl.Int64, "segment_id": pl.Utf8,
               "lat": pl.Float64, "_segment_id_set_ms": pl.Int64, "_lat_set_ms": pl.Int64, "status": pl.Utf8, "updated_ms": pl.Int64}
_times = st.one_of(st.none(), st.integers(0, 6))  # few distinct times: many ties


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["i1", "i2", "i3", "i4"]), _times, _times,
                          st.one_of(st.none(), st.sampled_from(["A", "B"])), st.one_of(st.none(), st.sampled_from([1.5, -2.0, 7.25])),
                          _times, _times, st.sampled_from(["reported", "closed"]), st.integers(0, 6)), min_size=1, max_size=25))
def test_the_numpy_merge_is_polars_group_by(rows):
    """Row order of entities, ties (the later row wins), nulls: the numpy merge gives, cell for
    cell, the table polars' group-by gives."""
    from brain.lifecycle import merge, merge_reference

    frame = pl.DataFrame(rows, schema=_ROW_SCHEMA, orient="row")
    got = merge(frame, "incident_id", ["reported_ms", "closed_ms"], ["segment_id", "lat"])
    want = merge_reference(frame, "incident_id", ["reported_ms", "closed_ms"], ["segment_id", "lat"])
    assert got.schema == want.schema
    assert got.rows() == want.rows()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=3)), max_size=30),
       st.lists(st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)), max_size=30))
def test_not_null_is_polars_is_not_null(texts, numbers):
    """The shared null mask (numpy's NaN for numbers, Python for short strings) is polars' own,
    NaN values that are not nulls included."""
    from brain import series

    for col in (pl.Series("s", texts, dtype=pl.Utf8), pl.Series("x", numbers, dtype=pl.Float64)):
        assert series.not_null(col).tolist() == col.is_not_null().to_list()


_ms = st.one_of(st.just(float("nan")), st.integers(0, 5).map(float))  # few times: many ties


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 4).flatmap(lambda n_groups: st.tuples(
    st.just(n_groups), st.integers(0, 3), st.integers(0, 3),
    st.lists(st.integers(0, n_groups - 1), min_size=0, max_size=20))).flatmap(lambda t: st.tuples(
        st.just(t[0]), st.just(np.array(t[3], dtype=np.int64)),
        st.lists(_ms, min_size=t[1] * len(t[3]), max_size=t[1] * len(t[3])).map(lambda v, s=t[1], n=len(t[3]): np.array(v, dtype=np.float64).reshape(s, n)),
        st.lists(_ms, min_size=t[2] * len(t[3]), max_size=t[2] * len(t[3])).map(lambda v, f=t[2], n=len(t[3]): np.array(v, dtype=np.float64).reshape(f, n)),
        st.lists(st.booleans(), min_size=t[2] * len(t[3]), max_size=t[2] * len(t[3])).map(lambda v, f=t[2], n=len(t[3]): np.array(v, dtype=bool).reshape(f, n)),
        st.lists(_ms, min_size=len(t[3]), max_size=len(t[3])).map(lambda v: np.array(v, dtype=np.float64)))))
def test_merge_kernel_matches_its_reference(data):
    """First row, first stage time, newest valid value (ties to the later row, null times lowest),
    largest set time and newest row per group: the kernel and its plain twin agree, NaN for NaN."""
    from brain.kernels.lifecycle import merge_rows, merge_rows_reference

    n_groups, group, stage, set_ms, valid, updated = data
    got = merge_rows(group, n_groups, stage, set_ms, valid, updated)
    want = merge_rows_reference(group, n_groups, stage, set_ms, valid, updated)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
