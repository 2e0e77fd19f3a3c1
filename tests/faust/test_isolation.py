"""A record that makes the pipeline itself fail (a fault injected by the test: no known line does any
more) is refused alone, from a rolled-back state; the rest of its batch is applied and every line is
accounted for, so the worker's offsets can move on."""
from __future__ import annotations

import json

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.pipeline import CityPipeline
from streams.faust_driver import ingest_isolating


class Fragile(CityPipeline):
    """Fails on any batch holding BOOM, after damaging its counters (which the rollback must undo)."""

    def ingest_jsonl(self, buf):
        if b"BOOM" in buf:
            self.counters["records_in"] += 1000
            self.counters["applied"] += 7
            raise RuntimeError("injected")
        return super().ingest_jsonl(buf)


_PIPE: dict = {}


def _line(i: int) -> bytes:
    return msgspec.json.encode({"kind": "noise", "sensor_id": "NS-01", "ts_ms": 1_780_243_200_000 + i * 60_000, "laeq_db": 55.0})


@settings(max_examples=40, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=40))
def test_only_the_failing_lines_are_refused(city, bombs):
    pipe = Fragile(city)
    lines = [b'{"BOOM":%d}' % i if bomb else _line(i) for i, bomb in enumerate(bombs)]
    results, refused = ingest_isolating(pipe, lines)
    c = pipe.counters
    assert c["records_in"] == len(lines) and pipe.invariant_holds()
    assert c["dead.unprocessable"] == len(refused) == sum(bombs)
    assert c["applied"] == len(lines) - sum(bombs)
    assert sorted(json.loads(r)["raw"] for r in refused) == sorted(line.decode() for line in lines if b"BOOM" in line)
    assert sum(r.records_in for r in results) == len(lines) - sum(bombs)


def test_a_healthy_batch_is_one_step(city):
    pipe = CityPipeline(city)
    results, refused = ingest_isolating(pipe, [_line(i) for i in range(5)])
    assert len(results) == 1 and refused == [] and pipe.counters["applied"] == 5
