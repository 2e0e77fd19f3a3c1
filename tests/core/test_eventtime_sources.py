"""Per-source clocks: one sensor's clock, whatever its offset and however the feed is batched,
sends no record but its own to "late" or "too far ahead"."""
from __future__ import annotations

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.eventtime import UNKNOWN_MS, EventClock
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


# --- too far ahead, per source (issue 16) ----------------------------------------------------------
MAX_AHEAD = 3_600_000


@settings(max_examples=200, deadline=None)
@given(offsets=st.lists(st.integers(-1_800_000, 1_800_000), min_size=3, max_size=12),
       wild=st.integers(0, 11), jump=st.integers(-10_000_000, 20_000_000), step=st.integers(0, 600_000))
def test_too_far_ahead_is_judged_against_the_records_own_source(offsets, wild, jump, step):
    """A record is quarantined exactly when it is more than max_ahead past its own source's clock (an
    active source), and one source's wild reading changes no other source's verdict."""
    n = len(offsets)
    wild %= n
    clock = EventClock(120_000, MAX_AHEAD, n_sources=n)
    base = 1_780_000_000_000
    clock.observe(np.array([base + o for o in offsets], dtype=np.int64), np.arange(n))
    own = clock.source_ms.copy()
    ts = own + step
    ts[wild] = own[wild] + jump
    source = np.arange(n)
    late, ahead = clock.judge(ts, source=source)
    # its own clock, never below the batch's median (a whole stream that jumped is not a wild clock)
    median = np.sort(ts)[(n - 1) // 2]
    assert ahead[wild] == (ts[wild] > max(own[wild], median) + MAX_AHEAD)
    others = np.arange(n) != wild
    assert not ahead[others].any()  # steps of at most 10 minutes past their own clocks
    # The same records without the wild one: every other verdict unchanged.
    late2, ahead2 = clock.judge(ts[others], source=source[others])
    assert (late2 == late[others]).all() and (ahead2 == ahead[others]).all()


def test_a_reading_an_hour_past_its_own_slow_clock_is_quarantined_though_within_the_citys_hour():
    clock = EventClock(120_000, MAX_AHEAD, n_sources=4)
    t = 1_780_000_000_000
    clock.observe(np.array([t, t, t, t - 1_500_000]), np.arange(4))  # sensor 3 is 25 minutes slow
    reading = t - 1_500_000 + MAX_AHEAD + 60_000  # 61 min past its own clock, 36 min past the city's
    assert clock.judge(np.array([reading]), source=np.array([3]))[1].tolist() == [True]
    assert clock.judge(np.array([reading]), source=np.array([0]))[1].tolist() == [False]
    # A source idle for longer than idle_ms (or never heard) is held to the city's clock instead.
    assert clock.judge(np.array([t + MAX_AHEAD - 1]), source=np.array([7]))[1].tolist() == [False]


def test_a_sparse_feeds_lone_record_is_held_to_the_batch_not_refused_as_a_clock_jump():
    """An incident feed speaks rarely: its close, 75 minutes after its last update, is the only record of
    its kind in a batch whose other kinds are at the same time. Judged per kind, with no median of its
    own, it read as a jump past its own clock and was refused — so the result depended on how the stream
    was cut into batches (and on the partition it landed in). The batch's floor, over every kind, holds
    it to where the stream is; a wild reading an hour past that floor is still refused."""
    clock = EventClock(120_000, MAX_AHEAD, n_sources=3)
    t = 1_780_000_000_000
    clock.observe(np.array([t, t, t - 59 * 60_000]), np.arange(3))  # source 2 (the feed) last spoke 59 min ago
    detectors = np.array([t + m * 60_000 for m in range(10, 17)] * 2)
    batch_ts = np.r_[detectors, t + 16 * 60_000]
    batch_src = np.r_[np.zeros(7, np.int64), np.ones(7, np.int64), 2]
    floor = clock.batch_floor(batch_ts, batch_src)
    assert t + 10 * 60_000 <= floor <= t + 16 * 60_000
    close = np.array([t + 16 * 60_000])
    assert clock.judge(close, source=np.array([2]))[1].tolist() == [True]  # its kind alone: no floor (the old verdict)
    assert clock.judge(close, source=np.array([2]), floor_ms=floor)[1].tolist() == [False]
    wild = np.array([floor + MAX_AHEAD + 1])
    assert clock.judge(wild, source=np.array([2]), floor_ms=floor)[1].tolist() == [True]
    assert clock.batch_floor(batch_ts[:7], batch_src[:7]) == UNKNOWN_MS  # one source: no floor


def _ahead_walk(ts, source, clock, max_ahead):
    """The plain twin of ahead_of_own_clock: every record walked in arrival order."""
    now, out = {}, []
    for t, s, c in zip(ts.tolist(), source.tolist(), clock.tolist()):
        ref = max(now.get(s, c), c) if s not in now else now[s]
        out.append(t > ref + max_ahead)
        if not out[-1]:
            now[s] = max(ref, t)
        else:
            now.setdefault(s, ref)
    return out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 10_000)), min_size=0, max_size=60),
       st.lists(st.integers(0, 5_000), min_size=5, max_size=5))
def test_ahead_of_own_clock_matches_a_record_by_record_walk(records, clocks):
    from brain.eventtime import ahead_of_own_clock

    source = np.array([s for s, _ in records], dtype=np.int64)
    ts = np.array([t for _, t in records], dtype=np.int64)
    clock = np.array(clocks, dtype=np.int64)[source] if len(source) else np.zeros(0, np.int64)
    assert ahead_of_own_clock(ts, source, clock, 1_000).tolist() == _ahead_walk(ts, source, clock, 1_000)
