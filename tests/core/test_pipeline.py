"""The topology end to end: nothing lost, event time, duplicates, snapshot/restore."""
from __future__ import annotations

import msgspec
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brain.pipeline import CityPipeline, PipelineConfig
from tests.core.conftest import T0, inputs_only, traffic_lines


def _pipe(city, **cfg):
    return CityPipeline(city, PipelineConfig(**cfg), vitals_fn=inputs_only)


def test_every_record_is_accounted_for(city):
    lines = traffic_lines(city, 12)
    bad = [
        b"{broken",
        b'{"kind":"traffic","sensor_id":"GHOST","ts_ms":%d,"volume_veh":1,"occupancy_pct":1,"speed_kmh":1}' % T0,
        b'{"kind":"traffic","sensor_id":"%s","ts_ms":%d,"volume_veh":-4,"occupancy_pct":1,"speed_kmh":1}' % (city.sensors[0].id.encode(), T0),
        lines[5],  # a duplicate of an applied record
    ]
    pipe = _pipe(city)
    result = pipe.ingest_jsonl(b"\n".join(lines + bad))
    c = pipe.counters
    assert c["records_in"] == len(lines) + len(bad)
    assert c["applied"] == len(lines)
    assert c["dead_lettered"] == result.dead.height == 4
    assert sorted(result.dead["reason_code"].to_list()) == ["duplicate", "malformed", "out_of_range", "unknown_sensor"]
    assert pipe.invariant_holds()


def test_late_and_out_of_order(city):
    pipe = _pipe(city, window_s=300, allowed_lateness_s=60)
    sensor = next(s for s in city.sensors if s.type == "loop")

    def line(ts, speed):
        return msgspec.json.encode({"kind": "traffic", "sensor_id": sensor.id, "ts_ms": ts, "volume_veh": 10, "occupancy_pct": 5, "speed_kmh": speed})

    windows = pipe.ingest_jsonl(line(T0 + 200_000, 40.0)).windows
    # 30 s behind the newest record but within the 60 s lateness: applied to its window
    r = pipe.ingest_jsonl(line(T0 + 170_000, 20.0) + b"\n" + line(T0 + 400_000, 50.0))
    assert r.late.height == 0
    windows += r.windows
    # 5 min behind: late, routed to the late output with its reason
    r = pipe.ingest_jsonl(line(T0 + 100_000, 99.0))
    assert r.late.height == 1 and "watermark" in r.late["reason"][0]
    windows += r.windows + pipe.flush().windows
    first = next(w for w in windows if w.window_end_ms == T0 + 300_000)
    seg = first.inputs["traffic"].filter(pl.col("segment_id") == sensor.segment)
    assert seg["speed_kmh"][0] == 30.0  # (40*10 + 20*10) / 20: the out-of-order record counted, the late one not
    assert pipe.counters["late"] == 1 and pipe.invariant_holds()


def test_a_wild_clock_does_not_make_everything_late(city):
    pipe = _pipe(city)
    lines = traffic_lines(city, 3)
    wild = b'{"kind":"traffic","sensor_id":"%s","ts_ms":%d,"volume_veh":1,"occupancy_pct":1,"speed_kmh":30}' % (
        next(s for s in city.sensors if s.type == "loop").id.encode(), T0 + 10 * 86_400_000)
    r = pipe.ingest_jsonl(b"\n".join(lines[:50] + [wild]))
    assert r.dead["reason_code"].to_list() == ["too_far_ahead"]
    r = pipe.ingest_jsonl(b"\n".join(lines[50:]))
    assert r.late.height == 0 and pipe.counters["applied"] == len(lines)


def test_a_lone_wild_clock_of_another_kind_is_judged_with_the_whole_batch(city):
    """The too-far-ahead guard takes the batch's times over every kind: one hazard reading a year
    ahead among an hour of traffic is refused, and stream time stays where the traffic is."""
    pipe = _pipe(city)
    lines = traffic_lines(city, 3)
    hazard = next(s for s in city.sensors if s.type == "hazard")
    wild = msgspec.json.encode({"kind": "hazard", "sensor_id": hazard.id, "ts_ms": T0 + 365 * 86_400_000, "value": 1.0})
    r = pipe.ingest_jsonl(b"\n".join(lines + [wild]))
    assert r.dead["reason_code"].to_list() == ["too_far_ahead"]
    assert pipe.clock.max_ts_ms < T0 + 3_600_000
    assert pipe.ingest_jsonl(traffic_lines(city, 4)[-1]).late.height == 0


def test_the_first_tick_does_not_depend_on_which_kind_comes_first(city):
    noise = next(s for s in city.sensors if s.type == "noise")
    early = msgspec.json.encode({"kind": "noise", "sensor_id": noise.id, "ts_ms": T0 + 10_000, "laeq_db": 55.0})
    late = traffic_lines(city, 1, t0=T0 + 900_000)[:1]  # a detector 15 minutes later
    ticks = []
    for order in ([early] + late, late + [early]):
        pipe = _pipe(city)
        windows = pipe.ingest_jsonl(b"\n".join(order)).windows + pipe.flush().windows
        ticks.append((windows[0].window_end_ms, sum(w.inputs["noise"].height for w in windows)))
    assert ticks[0] == ticks[1] == (T0 + 300_000, 1)


def test_a_long_quiet_stretch_is_skipped_not_ticked_through(city):
    """Stream time jumping 30 days ahead closes a day of ticks after the data, then the ticks of the
    new data: bounded work, and every record still applied once."""
    day_ms, w = 86_400_000, 300_000
    pipe = _pipe(city)
    first = pipe.ingest_jsonl(b"\n".join(traffic_lines(city, 10)))
    later = traffic_lines(city, 10, t0=T0 + 30 * day_ms)
    r = pipe.ingest_jsonl(b"\n".join(later))
    done = first.windows + r.windows + pipe.flush().windows
    ends = [x.window_end_ms for x in done]
    assert ends == sorted(set(ends))
    gap = [e for e in ends if T0 + day_ms + w < e < T0 + 30 * day_ms]
    assert gap == []  # nothing ticked in the quiet month but its first day
    assert any(e > T0 + day_ms - w for e in ends if e < T0 + 30 * day_ms)  # that first day is there
    assert [e for e in ends if e > T0 + 30 * day_ms][:2] == [T0 + 30 * day_ms + w, T0 + 30 * day_ms + 2 * w]
    assert pipe.counters["ticks_skipped"] == (ends[-1] - ends[0]) // w + 1 - len(ends) > 28 * day_ms // w
    assert pipe.counters["applied"] == 20 * len(later) // 10 and pipe.invariant_holds()


def test_a_clock_past_the_year_2200_is_out_of_range(city):
    pipe = _pipe(city)
    rec = msgspec.json.decode(traffic_lines(city, 1)[0])
    lines = [msgspec.json.encode(rec | {"ts_ms": ts}) for ts in (2**62, 7_258_118_400_001, -1)]
    r = pipe.ingest_jsonl(b"\n".join(lines))
    assert r.dead["reason_code"].to_list() == ["out_of_range"] * 3 and "ts_ms" in r.dead["reason"][0]


def _frames_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].equals(b[k], null_equal=True), k


def test_snapshot_restore_gives_identical_results(city):
    lines = traffic_lines(city, 40, seed=3)
    half = len(lines) // 2
    straight = _pipe(city)
    straight.ingest_jsonl(b"\n".join(lines[:half]))
    blob = straight.snapshot()
    rest_straight = straight.ingest_jsonl(b"\n".join(lines[half:]))
    restored = _pipe(city)
    restored.restore(blob)
    rest_restored = restored.ingest_jsonl(b"\n".join(lines[half:]))
    assert [w.window_end_ms for w in rest_straight.windows] == [w.window_end_ms for w in rest_restored.windows]
    assert rest_straight.windows, "the second half must close windows"
    for a, b in zip(rest_straight.windows, rest_restored.windows):
        _frames_equal(a.inputs, b.inputs)
    assert straight.counters == restored.counters


def test_restore_refuses_other_settings(city):
    blob = _pipe(city, window_s=300).snapshot()
    other = _pipe(city, window_s=600)
    try:
        other.restore(blob)
    except ValueError as exc:
        assert "settings" in str(exc)
    else:
        raise AssertionError("restore accepted a snapshot taken with other settings")


_corrupt = st.sampled_from(["truncate", "negative", "ghost", "dup", "old", "type", "kind"])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 10_000), _corrupt), max_size=40), st.integers(1, 5))
def test_invariant_under_random_bad_input(city, corruptions, n_batches):
    lines = traffic_lines(city, 4, seed=1)
    for pos, how in corruptions:
        i = pos % len(lines)
        line = lines[i]
        if how == "truncate":
            lines[i] = line[: len(line) // 2]
        elif how == "negative":
            lines[i] = line.replace(b'"volume_veh":', b'"volume_veh":-1', 1)
        elif how == "ghost":
            lines[i] = line.replace(b'"sensor_id":"', b'"sensor_id":"X', 1)
        elif how == "dup":
            lines.append(line)
        elif how == "old":
            lines.append(line.replace(b'"ts_ms":17', b'"ts_ms":16', 1))
        elif how == "type":
            lines[i] = line.replace(b'"speed_kmh":', b'"speed_kmh":"fast","x":', 1)
        elif how == "kind":
            lines[i] = line.replace(b'"traffic"', b'"trafic"', 1)
    pipe = _pipe(city)
    step = max(1, len(lines) // n_batches)
    dead = late = 0
    for start in range(0, len(lines), step):
        r = pipe.ingest_jsonl(b"\n".join(lines[start : start + step]))
        dead += r.dead.height
        late += r.late.height
        assert set(r.dead["reason_code"].to_list()) <= {"malformed", "wrong_type", "out_of_range", "unknown_sensor", "duplicate", "unknown_kind", "too_far_ahead", "out_of_sensor_range"}
        assert r.dead["reason"].null_count() == 0
    c = pipe.counters
    assert c["records_in"] == len([ln for ln in lines if ln.strip()])
    assert c["dead_lettered"] == dead and c["late"] == late
    assert pipe.invariant_holds()
