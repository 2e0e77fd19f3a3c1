"""Payload -> JSON lines, topic levels and URLs: properties over generated input (no broker needed)."""
from __future__ import annotations

import json

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.ingest import MAX_LINE_BYTES
from streams.mqtt_publish import messages_of
from streams.sources.mqtt import MqttUrl, payload_lines, topic_for

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=12))
records = st.dictionaries(st.text(max_size=8), scalars, max_size=6)


@given(st.lists(records, max_size=8), st.sampled_from([None, 1, 4]))
def test_an_array_gives_its_records_in_order_whatever_the_layout(items, indent):
    payload = json.dumps(items, indent=indent).encode()
    lines = payload_lines(payload)
    assert [msgspec.json.decode(line) for line in lines] == items
    assert all(b"\n" not in line and b"\r" not in line for line in lines)


@given(records, st.sampled_from([None, 2]))
def test_one_record_is_one_line_with_the_same_meaning(item, indent):
    lines = payload_lines(json.dumps(item, indent=indent).encode())
    assert len(lines) == 1 and msgspec.json.decode(lines[0]) == item


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_any_bytes_never_raise_and_never_split_a_non_array(payload):
    lines = payload_lines(payload)
    assert all(b"\n" not in line and b"\r" not in line for line in lines)
    if not payload.strip():
        assert lines == []
    elif not payload.strip().startswith(b"["):
        assert len(lines) == 1  # one payload, one record or one dead letter


def test_oversized_and_deep_payloads_are_one_bounded_line():
    (line,) = payload_lines(b'{"a":"' + b"x" * (MAX_LINE_BYTES * 2) + b'"}')
    assert len(line) == MAX_LINE_BYTES + 1  # the decoder refuses it unread as too_large
    (deep,) = payload_lines(b"[" * 100_000)
    assert deep.startswith(b"[[[")


@given(st.text(max_size=10), st.text(max_size=10), st.text(max_size=10))
def test_topic_levels_are_safe(district, kind, sensor):
    topic = topic_for(district or None, kind or None, sensor or None)
    levels = topic.split("/")
    assert len(levels) == 4 and levels[0] == "city"
    assert all(level and not set(level) & set("+#/") for level in levels)


@pytest.mark.parametrize("url, message", [
    ("mqtt://host", "must look like"),
    ("mqtt://host:99999/city/#", "port"),
    ("mqtt://host/city/#/x", "'#' may only"),
    ("mqtt://host/city/a+/x", r"'\+' a whole level"),
    ("mqtt://host/city/#?clock=moon", "clock"),
    ("mqtt://host/city/#?qos=2", "unknown"),
])
def test_bad_urls_say_what_is_wrong(url, message):
    with pytest.raises(ValueError, match=message):
        MqttUrl.parse(url)


def test_gateway_blocks_keep_file_order_and_district():
    lines = [b'{"kind":"noise","sensor_id":"A%d","ts_ms":%d}' % (i, i) for i in range(7)]
    district = {f"A{i}": ("D1" if i < 4 else "D2") for i in range(7)}.get
    out = list(messages_of(lines, district, per_message=3))
    assert [t for t, _ in out] == ["city/D1/gateway/citybrain-publish"] * 2 + ["city/D2/gateway/citybrain-publish"]
    assert [line for _, p in out for line in payload_lines(p)] == lines
