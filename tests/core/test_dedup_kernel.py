"""The duplicate-marking kernel equals its plain-Python reference, and the Deduper built on it."""
from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.eventtime import Deduper
from brain.kernels.dedup import first_unseen, first_unseen_reference

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
    fresh_a, _ = d.split("traffic", frame.head(cut))
    fresh_b, _ = d.split("traffic", frame.slice(cut))
    applied = pl.concat([fresh_a, fresh_b]).rows()
    # exactly the first copy of each distinct record, in arrival order
    assert applied == list(dict.fromkeys(rows))
