"""Property tests of the time helpers against brute-force references."""
from __future__ import annotations

from zoneinfo import ZoneInfo

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.sim.clock import LocalClock, hash_poisson, local_time, ramp, report_rows


def _report_rows_reference(phase_ms, interval_ms, a_ms, b_ms):
    rows = []
    for i, ph in enumerate(phase_ms):
        t = ph + ((a_ms - ph) // interval_ms) * interval_ms
        while t < b_ms:
            if t >= a_ms:
                rows.append((t, i))
            t += interval_ms
    rows.sort()
    return [i for _, i in rows], [t for t, _ in rows]


@settings(max_examples=200, deadline=None)
@given(
    interval_s=st.sampled_from([1, 30, 60, 300, 600]),
    phases=st.lists(st.integers(0, 10**6), min_size=0, max_size=20),
    a_ms=st.integers(0, 10**9),
    span_ms=st.integers(0, 2_000_000),
)
def test_report_rows_matches_brute_force(interval_s, phases, a_ms, span_ms):
    interval_ms = interval_s * 1000
    phase = np.array([p % interval_ms for p in phases], dtype=np.int64)
    idx, ts = report_rows(phase, interval_ms, a_ms, a_ms + span_ms)
    ref_idx, ref_ts = _report_rows_reference(phase.tolist(), interval_ms, a_ms, a_ms + span_ms)
    assert idx.tolist() == ref_idx and ts.tolist() == ref_ts


@settings(max_examples=100, deadline=None)
@given(split=st.integers(1, 59), a_ms=st.integers(0, 10**9))
def test_report_rows_splits_cleanly(split, a_ms):
    """Cutting a window in two gives the same rows: the basis of batching-independent output."""
    phase = np.arange(0, 60_000, 7_000, dtype=np.int64)
    whole = report_rows(phase, 60_000, a_ms, a_ms + 60_000)
    mid = a_ms + split * 1000
    left, right = report_rows(phase, 60_000, a_ms, mid), report_rows(phase, 60_000, mid, a_ms + 60_000)
    assert np.concatenate([left[1], right[1]]).tolist() == whole[1].tolist()


@settings(max_examples=100, deadline=None)
@given(ts=st.lists(st.integers(1_500_000_000_000, 1_900_000_000_000), min_size=1, max_size=30),
       zone=st.sampled_from(["Asia/Shanghai", "Europe/Berlin", "America/New_York", "UTC"]))
def test_local_clock_matches_scalar_local_time(ts, zone):
    tz = ZoneInfo(zone)
    hour, weekday, day = LocalClock(tz).split(np.array(ts, dtype=np.int64))
    for i, t in enumerate(ts):
        lt = local_time(t, tz)
        assert abs(hour[i] - lt.hour) < 1e-9 and weekday[i] == lt.weekday and day[i] == lt.day


@given(lam=st.floats(0.05, 200.0))
@settings(max_examples=30, deadline=None)
def test_hash_poisson_mean_and_variance(lam):
    n = 20_000
    x = hash_poisson(3, 1, np.arange(n), np.full(n, 123_000), np.full(n, lam))
    assert (x >= 0).all() and (x == np.round(x)).all()
    se = np.sqrt(lam / n)
    assert abs(x.mean() - lam) < 6 * se + 0.01
    assert abs(x.var() / lam - 1) < 0.1


@given(start=st.integers(0, 10**6), dur=st.integers(1, 10**6), rise=st.floats(0.01, 0.5), fall=st.floats(0.01, 0.5))
def test_ramp_is_a_bounded_trapezoid(start, dur, rise, fall):
    t = np.linspace(start - dur, start + 2 * dur, 301)
    r = ramp(t, start, start + dur, rise, fall)
    assert ((r >= 0) & (r <= 1)).all()
    assert (r[(t < start) | (t >= start + dur)] == 0).all()
