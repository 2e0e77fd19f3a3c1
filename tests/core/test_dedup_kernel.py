"""The duplicate-marking kernel equals its plain-Python reference, and the Deduper built on it."""
from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.eventtime import Deduper
from brain.kernels.dedup import first_unseen, first_unseen_reference, record_keys, record_keys_reference

# Small pools make repeats likely; 0 and 2**64-1 are edge keys (0 is the kernel's empty-slot marker).
keys = st.lists(st.sampled_from([0, 1, 2, 3, 2**63, 2**64 - 1]) | st.integers(0, 2**64 - 1), max_size=200)


@settings(max_examples=300, deadline=None)
@given(batch=keys, known=keys)
def test_kernel_equals_reference(batch, known):
    b = np.array(batch, dtype=np.uint64)
    k = np.array(known, dtype=np.uint64)
    assert first_unseen(b, k).tolist() == first_unseen_reference(b, k).tolist()


@settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=60),
       cut=st.integers(0, 60))
def test_each_record_is_applied_once_however_the_stream_is_cut(rows, cut):
    frame = pl.DataFrame(rows, schema={"sensor_id": pl.Int64, "ts_ms": pl.Int64}, orient="row")
    d = Deduper()
    applied = []
    for part in (frame.head(cut), frame.slice(cut)):
        sensor, ts = part["sensor_id"].to_numpy(), part["ts_ms"].to_numpy()
        applied += part.filter(pl.Series(d.first_copies("traffic", d.keys("traffic", part, sensor, ts), ts))).rows()
    # exactly the first copy of each distinct record, in arrival order
    assert applied == list(dict.fromkeys(rows))


ints64 = st.integers(-(2**63), 2**63 - 1)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.tuples(ints64 | st.integers(-3, 3), ints64 | st.integers(-3, 3), st.integers(0, 2**64 - 1)), max_size=50),
       with_extra=st.booleans())
def test_record_keys_equal_reference(parts, with_extra):
    idx = np.array([p[0] for p in parts], dtype=np.int64)
    ts = np.array([p[1] for p in parts], dtype=np.int64)
    extra = np.array([p[2] for p in parts], dtype=np.uint64) if with_extra else None
    assert record_keys(idx, ts, extra).tolist() == record_keys_reference(idx, ts, extra).tolist()


def test_record_keys_tell_regular_records_apart():
    # Every (terminal, time) pair of a dense grid, swapped pairs included: one key each.
    idx, ts = np.meshgrid(np.arange(400), np.arange(1_780_000_000_000, 1_780_000_000_000 + 400 * 60_000, 60_000))
    keys = record_keys(idx.ravel(), ts.ravel())
    assert len(np.unique(keys)) == keys.size
    small = np.arange(50)
    a, b = np.meshgrid(small, small)
    assert len(np.unique(record_keys(a.ravel(), b.ravel()))) == small.size**2
