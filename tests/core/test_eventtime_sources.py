"""Per-source clocks: one sensor's clock, whatever its offset and however the feed is batched,
sends no record but its own to "late" or "too far ahead"."""
from __future__ import annotations

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.eventtime import EventClock
from brain.pipeline import CityPipeline, PipelineConfig
from tests.core.conftest import T0

MINUTES = 60


@pytest.fixture(scope="module")
def detectors(city):
    return [s.id for s in city.sensors if s.type in ("loop", "video", "radar")][:20]


def _feed(detectors, wild: str, offset_ms: int, seed: int) -> list[tuple[str, bytes]]:
    """A reading per detector per minute (a few seconds of jitter), in arrival order; the wild
    detector's event times shifted by ``offset_ms``."""
    rng = np.random.default_rng(seed)
    rows = []
    for m in range(MINUTES):
        for sid in detectors:
            arrival = T0 + m * 60_000 + int(rng.integers(0, 5000))
            ts = arrival + (offset_ms if sid == wild else 0)
            rows.append((arrival, sid, msgspec.json.encode({"kind": "traffic", "sensor_id": sid, "ts_ms": ts, "volume_veh": 10,
                                                            "occupancy_pct": 8.0, "speed_kmh": 45.0})))
    rows.sort()
    return [(sid, line) for _, sid, line in rows]


def _refused_by_sensor(city, feed, cuts: list[int]) -> dict[str, int]:
    pipe = CityPipeline(city, PipelineConfig(window_s=300, allowed_lateness_s=120))
    refused: dict[str, int] = {}
    bounds = [0, *sorted(set(cuts)), len(feed)]
    for a, b in zip(bounds, bounds[1:]):
        if b <= a:
            continue
        step = pipe.ingest_jsonl(b"\n".join(line for _, line in feed[a:b]))
        for frame in (step.late, step.dead):
            for raw in frame["raw"].to_list():
                sid = msgspec.json.decode(raw)["sensor_id"]
                refused[sid] = refused.get(sid, 0) + 1
    assert pipe.invariant_holds()
    return refused


@settings(max_examples=40, deadline=None)
@given(st.data(), st.integers(-3 * 3_600_000, 3 * 3_600_000), st.lists(st.integers(1, 20 * MINUTES - 1), max_size=25),
       st.integers(0, 2**16))
def test_one_wild_clock_refuses_only_its_own_records(city, detectors, data, offset_ms, cuts, seed):
    wild = data.draw(st.sampled_from(detectors))
    feed = _feed(detectors, wild, offset_ms, seed)
    # The first batch holds at least two honest sources (a lone first source is the city's clock
    # until a second one speaks: see brain.eventtime).
    first_honest = [i for i, (sid, _) in enumerate(feed) if sid != wild][1]
    cuts = [c for c in cuts if c > first_honest]
    refused = _refused_by_sensor(city, feed, cuts)
    assert set(refused) <= {wild}, (wild, offset_ms, refused)


def test_the_issue_case_one_sensor_half_an_hour_fast_in_small_batches(city, detectors):
    """Before per-source clocks, one detector 30 minutes fast made nearly every record late in
    small batches; now it refuses nothing (its readings land in their own future windows)."""
    feed = _feed(detectors, detectors[3], 1_800_000, seed=1)
    refused = _refused_by_sensor(city, feed, list(range(40, len(feed), 40)))
    assert refused == {}


def test_a_minority_of_wild_clocks_cannot_move_the_city_clock():
    clock = EventClock(allowed_lateness_ms=0, n_sources=100, wild_share=0.05)
    honest = np.full(95, 1_000_000)
    wild = np.full(5, 9_000_000)
    clock.observe(np.concatenate([honest, wild]), np.arange(100))
    assert clock.max_ts_ms == 1_000_000
    clock.observe(np.array([500_000]), np.array([1]))  # an old reading: no clock goes back
    assert clock.max_ts_ms == 1_000_000 and clock.source_ms[1] == 1_000_000
    clock.observe(np.array([2_000_000]), np.array([0]))  # a sixth clock ahead is past the tolerated share
    assert clock.max_ts_ms == 2_000_000


def test_idle_sources_stop_counting_and_the_clock_never_goes_back():
    clock = EventClock(allowed_lateness_ms=0, n_sources=3, idle_ms=600_000)
    clock.observe(np.array([0, 0, 0]), np.array([0, 1, 2]))
    clock.observe(np.array([3_600_000, 3_600_000]), np.array([0, 1]))
    assert clock.max_ts_ms == 3_600_000  # source 2, an hour behind, no longer holds the city
    state = clock.state()
    again = EventClock(allowed_lateness_ms=0, n_sources=3, idle_ms=600_000)
    again.load(state)
    assert again.max_ts_ms == 3_600_000 and again.source_ms.tolist() == [3_600_000, 3_600_000, 0]
