"""The published tables' columnar format (streams.faust_io): what the merge writes, a consumer reads
back as the table's rows — values, order, NaN ("no data"), nulls and infinities included — and the
older row format and garbage are told apart."""
from __future__ import annotations

import json
import math

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.faust_io import decode_vitals_message, table_messages, vitals_messages
from tests.faust.workers import norm


def _marked(rows):
    return [norm(r) for r in rows]


floats = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))
texts = st.one_of(st.none(), st.text(max_size=12))
ints = st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1))


@settings(max_examples=150, deadline=None)
@given(st.data(), st.integers(min_value=0, max_value=30))
def test_columns_round_trip_to_the_frames_rows(data, n):
    frame = pl.DataFrame({
        "district": pl.Series(data.draw(st.lists(texts, min_size=n, max_size=n)), dtype=pl.Utf8),
        "health_index": pl.Series(data.draw(st.lists(floats, min_size=n, max_size=n)), dtype=pl.Float64),
        "count": pl.Series(data.draw(st.lists(ints, min_size=n, max_size=n)), dtype=pl.Int64),
        "flag": pl.Series(data.draw(st.lists(st.one_of(st.none(), st.booleans()), min_size=n, max_size=n)), dtype=pl.Boolean),
    })
    ((key, value),) = table_messages("district", 1_000, 301_000, frame)
    msg = decode_vitals_message(value)
    assert key == b"district:301000"
    assert (msg["table"], msg["window_start_ms"], msg["window_end_ms"]) == ("district", 1_000, 301_000)
    assert _marked(msg["rows"]) == _marked(frame.to_dicts())
    # the columns go straight back into the same frame (NaN stays NaN, null stays null)
    back = pl.DataFrame(msg["columns"], schema=frame.schema)
    assert back.equals(frame)


def test_columnar_is_smaller_than_rows_and_older_rows_still_read(city, tmp_path):
    from brain.pipeline import CityPipeline, PipelineConfig
    from streams.faust_driver import PUBLISHED_TABLES, merge_operators
    from streams.sim import Simulator

    sim = Simulator(city, seed=41)
    lines = [ln for b in sim.jsonl_batches(sim.start_ms + 40 * 60_000, batch_s=60) for ln in b.split(b"\n") if ln]
    pipe = CityPipeline(city, window_operators=merge_operators(city, PipelineConfig(), tmp_path))
    windows = pipe.ingest_jsonl(b"\n".join(lines)).windows
    messages = vitals_messages(windows, PUBLISHED_TABLES)
    assert {k.split(b":")[0] for k, _ in messages} >= {b"district", b"city", b"anomaly"}
    as_rows = 0
    for key, value in messages:
        msg = decode_vitals_message(value)
        name, end = key.decode().split(":")
        frame = next(w for w in windows if w.window_end_ms == int(end)).vitals[name]
        assert _marked(msg["rows"]) == _marked(frame.to_dicts())
        old = json.dumps({"table": name, "window_start_ms": msg["window_start_ms"], "window_end_ms": int(end), "rows": frame.to_dicts()},
                         separators=(",", ":")).encode()
        as_rows += len(old)
        assert _marked(decode_vitals_message(old)["rows"]) == _marked(msg["rows"])
    assert sum(len(v) for _, v in messages) < 0.8 * as_rows


@pytest.mark.parametrize("value", [b"", b"[1]", b'{"table":"x"}', b'{"table":"x","columns":{"a":[1],"b":[1,2]}}', b"\xff"])
def test_what_is_not_a_table_message_is_a_clear_error(value):
    with pytest.raises(ValueError, match="published table"):
        decode_vitals_message(value)


def test_nonfinite_values_are_listed_apart_from_nulls():
    frame = pl.DataFrame({"health_index": [math.nan, None, math.inf, 1.5, -math.inf, math.nan]})
    ((_, value),) = table_messages("city", 0, 300_000, frame)
    wire = json.loads(value)  # plain JSON (no NaN literal): any JSON reader takes it
    assert wire["columns"]["health_index"] == [None, None, None, 1.5, None, None]
    assert wire["nonfinite"] == {"health_index": {"NaN": [0, 5], "Infinity": [2], "-Infinity": [4]}}
    assert _marked(decode_vitals_message(value)["rows"]) == _marked(frame.to_dicts())
    with pytest.raises(ValueError, match="bad nonfinite"):
        decode_vitals_message(b'{"table":"x","columns":{"a":[1]},"nonfinite":{"a":{"NaN":[3]}}}')
