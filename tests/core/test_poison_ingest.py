"""Poison-proof ingest: no line, however built, raises out of a reader, and every line is counted.

The seeds (tests/poison.py) are hypothesis strategies; the bounded fuzz run mutates 100k real records
of the demo city and pushes them through the whole pipeline, checking ``in = applied + dead + late``
exactly, with ``in`` the number of non-blank lines (one line is one record).
"""
from __future__ import annotations

import io
import random
import time

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brain.city import demo_city_path, load_city
from brain.ingest import decode_jsonl, nesting_depth
from brain.pipeline import CityPipeline, PipelineConfig
from streams.faust_driver import bounded_lines, record_key
from tests.poison import GOOD_LINE, expected_records, mutate, poison_line

LIMIT = 4096  # a small line limit, so the huge-line seeds stay cheap to draw


@pytest.fixture(scope="module")
def city():
    return load_city(demo_city_path())


def _decoded(buf: bytes, **kw) -> int:
    frames, dead = decode_jsonl(buf, max_line_bytes=LIMIT, **kw)
    return sum(f.height for f in frames.values()) + dead.height


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(poison_line(LIMIT), min_size=1, max_size=12))
def test_any_poison_line_is_one_record_or_blank(lines):
    buf = b"\n".join(lines)
    n = expected_records(buf, LIMIT)
    assert _decoded(buf) == n
    assert _decoded(buf, fast=False) == n
    fast, slow = decode_jsonl(buf, max_line_bytes=LIMIT), decode_jsonl(buf, max_line_bytes=LIMIT, fast=False)
    assert sorted(fast[1]["reason_code"].to_list()) == sorted(slow[1]["reason_code"].to_list())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(poison_line(LIMIT), min_size=1, max_size=8))
def test_the_pipeline_accounts_for_every_poison_line(lines):
    pipe = _pipeline()
    buf = b"\n".join(lines) + b"\n"
    pipe.ingest_jsonl(buf)
    assert pipe.counters["records_in"] == expected_records(buf, LIMIT)
    assert pipe.invariant_holds()


_PIPE = {}


def _pipeline() -> CityPipeline:
    # One city load per session; a fresh pipeline per example.
    if "city" not in _PIPE:
        _PIPE["city"] = load_city(demo_city_path())
    return CityPipeline(_PIPE["city"], PipelineConfig(max_line_bytes=LIMIT))


def test_the_reported_faults_before_and_after():
    """The issue's lines: a 2 KB record nesting 995 brackets (was a RecursionError out of the
    batch), and a whitespace-only line with a two-object line (was 2 records for 1 line, both applied)."""
    deep = GOOD_LINE[:-1] + b',"x":' + b"[" * 995 + b"]" * 995 + b"}"
    frames, dead = decode_jsonl(GOOD_LINE + b"\n" + deep + b"\n")
    assert frames["noise"].height == 1 and dead["reason_code"].to_list() == ["too_deep"]
    other = GOOD_LINE.replace(b"1780243200000", b"1780243260000")
    frames, dead = decode_jsonl(b"\r\n" + GOOD_LINE + other + b"\n")
    assert "noise" not in frames and dead["reason_code"].to_list() == ["malformed"]
    assert "trailing characters" in dead["reason"][0]


def test_depth_just_under_the_limit_is_read_and_over_is_refused():
    ok = GOOD_LINE[:-1] + b',"x":' + b"[" * 63 + b"]" * 63 + b"}"  # the record's own braces make 64
    over = GOOD_LINE[:-1] + b',"x":' + b"[" * 64 + b"]" * 64 + b"}"
    strings = GOOD_LINE[:-1] + b',"x":"' + b"[" * 500 + b'"}'  # brackets in a string are not nesting
    frames, dead = decode_jsonl(b"\n".join([ok, over, strings]))
    assert frames["noise"].height == 2 and dead["reason_code"].to_list() == ["too_deep"]
    assert nesting_depth(ok) == 64 and nesting_depth(strings) == 1


def test_too_large_lines_are_refused_unread_with_their_start():
    line = GOOD_LINE[:-1] + b',"pad":"' + b"y" * LIMIT + b'"}'
    frames, dead = decode_jsonl(line + b"\n" + GOOD_LINE, max_line_bytes=LIMIT)
    assert frames["noise"].height == 1
    assert dead["reason_code"].to_list() == ["too_large"] and dead["raw"][0].startswith('{"kind":"noise"')
    assert f"longer than the limit of {LIMIT} bytes" in dead["reason"][0]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(poison_line(LIMIT))
def test_the_kafka_key_of_any_line_never_raises(line):
    key = record_key(line)
    assert key is None or isinstance(key, bytes)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=80).map(lambda b: b.replace(b"\n", b"")), max_size=10), st.integers(8, 40))
def test_bounded_lines_reads_each_line_once_and_never_more_than_the_limit(lines, limit):
    got = list(bounded_lines(io.BytesIO(b"\n".join(lines)), limit))
    want = []
    for line in lines:
        if len(line) > limit:
            want.append((line[:limit], True))
        elif line.rstrip(b"\r").strip():
            want.append((line.rstrip(b"\r"), len(line.rstrip(b"\r"))))
    assert len(got) == len(want)
    for (chunk, length), (w_chunk, w_len) in zip(got, want):
        assert chunk == w_chunk and len(chunk) <= limit
        assert length > limit if w_len is True else length == w_len


def _fuzz_corpus(city, n_lines: int, seed: int) -> bytes:
    from streams.sim import Simulator
    from streams.sim.frames import to_jsonl

    sim = Simulator(city, seed=seed % 1000)
    lines = to_jsonl(sim.run(hours=6)).splitlines()[:n_lines]  # in event-time order, as a feed sends them
    rng = random.Random(seed)
    return b"\n".join(mutate(line, rng, LIMIT) if rng.random() < 0.5 else line for line in lines) + b"\n"


def test_bounded_fuzz_run_100k_mutated_lines(city):
    """100,000 lines, half of them damaged at random, through the whole pipeline in 5,000-line
    batches: no exception, and every non-blank line is applied, dead-lettered or late."""
    seed = random.randrange(2**31)
    buf = _fuzz_corpus(city, 100_000, seed)
    pipe = CityPipeline(city, PipelineConfig(max_line_bytes=LIMIT))
    lines = buf.split(b"\n")[:-1]
    started = time.monotonic()
    for i in range(0, len(lines), 5000):
        pipe.ingest_jsonl(b"\n".join(lines[i : i + 5000]) + b"\n")
    pipe.flush()
    wall = time.monotonic() - started
    c = pipe.counters
    assert c["records_in"] == expected_records(buf, LIMIT), f"seed {seed}"
    assert c["records_in"] == c["applied"] + c["dead_lettered"] + c["late"], f"seed {seed}"
    assert len(lines) == 100_000
    assert c["applied"] > 30_000 and c["dead_lettered"] > 30_000, (seed, dict(c))
    assert wall < 60, f"fuzz run took {wall:.1f} s"
