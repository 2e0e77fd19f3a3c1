"""JSON lines -> per-kind columns, with every unreadable line accounted for."""
from __future__ import annotations

import msgspec
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.ingest import KIND_DTYPES, decode_jsonl
from brain.schemas import Record

GOOD = {
    "kind": "traffic",
    "sensor_id": "L1",
    "ts_ms": 1000,
    "volume_veh": 3,
    "occupancy_pct": 4.5,
    "speed_kmh": 40.0,
}


def test_every_kind_decodes_to_its_schema_columns():
    lines = [
        msgspec.json.encode(GOOD),
        b'{"kind":"air","sensor_id":"A1","ts_ms":5,"pm25_ugm3":80.5}',
        b'{"kind":"grid_case","sensor_id":"G1","ts_ms":7,"case_id":"c1","status":"reported","category":"litter","cell_id":"C1","unit":"u","deadline_ms":99}',
    ]
    frames, dead = decode_jsonl(b"\n".join(lines))
    assert dead.height == 0
    assert set(frames) == {"traffic", "air", "grid_case"}
    for kind, frame in frames.items():
        assert frame.columns == list(KIND_DTYPES[kind])
    assert frames["air"]["pm25_ugm3"].to_list() == [80.5]
    assert frames["air"]["pm10_ugm3"].to_list() == [None]
    assert frames["traffic"]["interval_s"].to_list() == [60.0]  # the schema's documented default


def test_reasons_name_the_problem():
    lines = [
        b"{not json",
        b"[1, 2]",
        b'{"kind":"traffic","sensor_id":"L1","ts_ms":1.5}',
        b'{"kind":"traffic","sensor_id":"L1","ts_ms":1,"speed_kmh":true}',
        b'{"kind":"teleport","sensor_id":"L1","ts_ms":1}',
        b'{"sensor_id":"L1","ts_ms":1}',
        msgspec.json.encode(GOOD),
    ]
    frames, dead = decode_jsonl(b"\n".join(lines))
    assert frames["traffic"].height == 1
    reasons = dict(zip(dead["raw"].to_list(), dead["reason"].to_list()))
    codes = sorted(dead["reason_code"].to_list())
    assert codes == ["malformed", "malformed", "unknown_kind", "unknown_kind", "wrong_type", "wrong_type"]
    assert "ts_ms" in reasons['{"kind":"traffic","sensor_id":"L1","ts_ms":1.5}']
    assert "speed_kmh" in reasons['{"kind":"traffic","sensor_id":"L1","ts_ms":1,"speed_kmh":true}']
    assert any("teleport" in r for r in reasons.values())


_junk = st.one_of(
    st.binary(min_size=1, max_size=30).filter(lambda b: b"\n" not in b),
    st.builds(lambda k, v: msgspec.json.encode({**GOOD, k: v}), st.sampled_from(list(GOOD)), st.one_of(st.none(), st.booleans(), st.text(max_size=5), st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**70), 2**70), st.lists(st.integers(), max_size=2))),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.just(msgspec.json.encode(GOOD)), _junk), min_size=1, max_size=40), st.integers(1, 7))
def test_nothing_lost_and_chunking_does_not_matter(lines, chunk):
    lines = [line for line in lines if line.strip()]
    buf = b"\n".join(lines)
    frames, dead = decode_jsonl(buf)
    applied = sum(f.height for f in frames.values())
    assert applied + dead.height == len([line for line in buf.split(b"\n") if line.strip()])
    frames2, dead2 = decode_jsonl(buf)
    assert sum(f.height for f in frames2.values()) == applied
    assert sorted(dead2["reason_code"].to_list()) == sorted(dead["reason_code"].to_list())


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from([msgspec.json.encode(GOOD)]) | _junk, min_size=1, max_size=20))
def test_exactly_the_lines_the_typed_schema_accepts_are_read(lines):
    """Agreement with the strict typed decoder of brain.schemas, line by line, whatever the grouping."""
    buf = b"\n".join(line for line in lines if line.strip())
    frames, dead = decode_jsonl(buf)
    accepted = 0
    for line in buf.split(b"\n"):
        if not line.strip():
            continue
        try:
            rec = msgspec.json.decode(line, type=Record)
        except (msgspec.DecodeError, msgspec.ValidationError):
            assert line.decode("utf-8", "replace")[:2000] in set(dead["raw"].to_list())
            continue
        if any(isinstance(v, int) and not -(2**63) <= v < 2**63 for v in msgspec.structs.asdict(rec).values()):
            continue  # columns are 64-bit: wider integers are dead-lettered as wrong_type, by design
        accepted += 1
    assert sum(f.height for f in frames.values()) == accepted
    assert sum(f.height for f in frames.values()) + dead.height == len([ln for ln in buf.split(b"\n") if ln.strip()])


def test_bytes_that_are_not_utf8_are_a_malformed_line_not_a_crash():
    bad = b'{"kind":"noise","sensor_id":"\xff","ts_ms":1,"laeq_db":5}'
    good = b'{"kind":"noise","sensor_id":"N1","ts_ms":1,"laeq_db":5}'
    for fast in (True, False):
        frames, dead = decode_jsonl(b"\n".join([bad, good, bad + b" "]), fast=fast)
        assert frames["noise"]["sensor_id"].to_list() == ["N1"]
        # The behaviour, not the decoder library's sentence: dead-lettered as malformed, with a reason
        # and the line kept (invalid bytes replaced) so an operator can see what came in.
        assert dead["reason_code"].to_list() == ["malformed", "malformed"]
        assert all(len(r) > 0 for r in dead["reason"].to_list())
        assert all('"kind":"noise"' in raw for raw in dead["raw"].to_list())
