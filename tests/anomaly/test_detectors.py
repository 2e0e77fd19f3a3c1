"""The default and batch detectors: quiet on clean seasonal data, loud on injected faults."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.anomaly import BatchDetector, SeasonalDetector, default_detector, warm_up
from brain.kernels import detector as kernel
from brain.kernels import detector_batch as kernel_batch
from models.simhistory import DAY_MS, make_series

STEP_S = 300  # five-minute data keeps these tests fast
PER_DAY = 86400 // STEP_S
THRESHOLD = 0.999


def _scores(series) -> np.ndarray:
    keys = np.zeros(series.ts_ms.size, dtype=np.int64)
    return BatchDetector(1).score_learn_many(keys, series.ts_ms, series.values)


@pytest.mark.parametrize("kind", ["speed_kmh", "occupancy_pct", "pm25_ugm3", "pressure_kpa", "volume_veh"])
@pytest.mark.parametrize("seed", [101, 202])
def test_clean_seasonal_data_has_few_alarms(kind, seed):
    s = make_series(kind, days=14, step_s=STEP_S, seed=seed)
    after_warmup = _scores(s)[7 * PER_DAY:]  # one week to learn the weekly profile
    # calibrated score: ~0.1% of clean points reach 0.999; allow 3x for the non-Gaussian kinds
    assert np.mean(after_warmup >= THRESHOLD) <= 0.003
    assert np.mean(after_warmup >= 0.99) <= 0.03


@pytest.mark.parametrize(
    "kind,event",
    [
        ("speed_kmh", "spike"),
        ("speed_kmh", "stuck"),
        ("speed_kmh", "dropout"),
        ("speed_kmh", "accident"),
        ("pressure_kpa", "drift"),
        ("occupancy_pct", "level_shift"),
        ("pm25_ugm3", "pollution_episode"),
        ("pressure_kpa", "burst"),
        ("pressure_kpa", "level_shift"),
        ("load_kw", "spike"),
    ],
)
def test_injected_faults_are_flagged(kind, event):
    s = make_series(kind, days=9, step_s=STEP_S, seed=7, events=[(event, 8.4)])
    scores = _scores(s)
    a, b, _ = s.events[0]
    assert scores[a:b].max() >= THRESHOLD, f"{event} on {kind} not flagged"
    assert np.mean(scores[7 * PER_DAY:a] >= THRESHOLD) <= 0.005  # and it was quiet before


def test_reason_names_the_fault():
    s = make_series("speed_kmh", days=9, step_s=STEP_S, seed=3, events=[("stuck", 8.4)])
    det = BatchDetector(1)
    a, b, _ = s.events[0]
    keys = np.zeros(s.ts_ms.size, dtype=np.int64)
    res = det.explain_learn_many(keys, s.ts_ms, s.values)
    flagged = res["reason"][a:b][res["score"][a:b] >= THRESHOLD]
    assert flagged.size and set(flagged) == {"flatline"}
    assert np.isfinite(res["expected"][a:b]).all()


def test_irregular_sampling_quiet_then_detects_spike():
    s = make_series("pressure_kpa", days=10, step_s=STEP_S, seed=5, jitter_s=140.0, events=[("spike", 9.5)])
    scores = _scores(s)
    a, _, _ = s.events[0]
    assert np.mean(scores[7 * PER_DAY:a] >= THRESHOLD) <= 0.003
    assert scores[a] >= THRESHOLD


def test_warmup_scores_zero_and_level_shift_is_absorbed():
    rng = np.random.default_rng(0)
    ts = np.arange(3000, dtype=np.int64) * 60_000
    x = 10 + rng.normal(0, 1, 3000)
    x[1500:] += 8.0
    scores = _scores(type("S", (), {"ts_ms": ts, "values": x})())
    assert (scores[: int(kernel.WARMUP_N)] == 0).all()
    assert scores[1500:1520].max() >= THRESHOLD  # the shift is reported...
    assert np.mean(scores[1700:] >= THRESHOLD) <= 0.003  # ...then becomes the new normal


def test_scores_do_not_depend_on_units():
    """No per-series parameters: the same series in other units and offsets scores the same."""
    s = make_series("speed_kmh", days=4, step_s=STEP_S, seed=9, events=[("spike", 3.5)])
    keys = np.zeros(s.ts_ms.size, dtype=np.int64)
    a = BatchDetector(1).score_learn_many(keys, s.ts_ms, s.values)
    b = BatchDetector(1).score_learn_many(keys, s.ts_ms, s.values / 3.6 * 1000.0 + 7.0)  # m/h, shifted
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert a.max() >= THRESHOLD


def test_batch_equals_one_detector_per_key():
    series = [make_series(k, days=2, step_s=STEP_S, seed=i) for i, k in enumerate(["speed_kmh", "cases", "load_kw"])]
    keys = np.concatenate([np.full(s.ts_ms.size, i, dtype=np.int64) for i, s in enumerate(series)])
    ts = np.concatenate([s.ts_ms for s in series])
    vals = np.concatenate([s.values for s in series])
    order = np.argsort(ts, kind="stable")  # interleave the keys as a live stream would
    batch = BatchDetector(n_keys_hint=1).score_learn_many(keys[order], ts[order], vals[order])
    for i, s in enumerate(series):
        det = default_detector()
        one = [det.score_learn_one(t / 1000.0, v) for t, v in zip(s.ts_ms.tolist(), s.values.tolist())]
        np.testing.assert_allclose(batch[keys[order] == i], one, rtol=0, atol=1e-12)


def test_snapshot_restore_continues_identically():
    s = make_series("pm25_ugm3", days=3, step_s=STEP_S, seed=4, events=[("spike", 2.5)])
    keys = (np.arange(s.ts_ms.size) % 4).astype(np.int64)
    half = s.ts_ms.size // 2
    whole = BatchDetector(2).score_learn_many(keys, s.ts_ms, s.values)
    first = BatchDetector(2)
    first.score_learn_many(keys[:half], s.ts_ms[:half], s.values[:half])
    resumed = BatchDetector.from_snapshot(first.snapshot())
    assert resumed.n_keys == first.n_keys
    np.testing.assert_array_equal(resumed.score_learn_many(keys[half:], s.ts_ms[half:], s.values[half:]), whole[half:])


def test_score_one_accepts_datetimes_and_learns():
    det = default_detector()
    start = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)
    for i in range(100):
        det.score_learn_one(start + dt.timedelta(minutes=i), 5.0 + (i % 3))
    assert det.n_seen == 100
    assert det.score_learn_one(start + dt.timedelta(minutes=100), 60.0) >= THRESHOLD
    assert det.last_reason == "spike"
    assert abs(det.last_expected - 6.0) < 1.5


def test_missing_values_are_scored_as_dropout():
    det = SeasonalDetector()
    for i in range(300):
        det.score_learn_one(60.0 * i, 20.0 + np.sin(i / 9.0))
    scores, reasons = [], []
    for i in range(8):
        scores.append(det.score_learn_one(60.0 * (300 + i), float("nan")))
        reasons.append(det.last_reason)
    first = int(np.argmax(np.array(scores) >= THRESHOLD))
    assert scores[first] >= THRESHOLD and reasons[first] == "missing" and first >= 1  # one gap is not news
    # onset semantics: the outage is paged when it starts, not at every missing point after
    assert max(scores[first + 3:]) < THRESHOLD


def test_bad_input_gives_clear_errors():
    det = BatchDetector(2)
    with pytest.raises(ValueError, match="non-negative"):
        det.score_learn_many(np.array([-1]), np.array([0]), np.array([1.0]))
    with pytest.raises(ValueError, match="one length"):
        det.score_learn_many(np.array([0, 1]), np.array([0]), np.array([1.0]))
    with pytest.raises(ValueError, match="snapshot"):
        det.restore(b"not a snapshot")
    with pytest.raises(ValueError, match="n_keys_hint"):
        BatchDetector(0)
    with pytest.raises(TypeError, match="timestamp"):
        default_detector().score_learn_one("yesterday", 1.0)
    with pytest.raises(ValueError, match="dense ids"):
        det.score_learn_many(np.array([10**12]), np.array([0]), np.array([1.0]))
    with pytest.raises(TypeError, match="number or None"):
        default_detector().score_learn_one(0.0, "12")
    assert default_detector().score_learn_one(0.0, None) == 0.0  # no reading: missing, and still warming up
    grown = det.score_learn_many(np.array([5000]), np.array([0]), np.array([1.0]))
    assert grown.shape == (1,) and det.n_keys >= 5001


def test_warm_up_compiles_the_hot_path():
    took = warm_up()
    assert took >= 0.0
    compiled = len(kernel_batch.detector_scores.signatures)
    assert compiled >= 1
    BatchDetector(4).score_learn_many(np.array([0, 1, 2]), np.array([0, 1, 2]), np.array([1.0, 2.0, 3.0]))
    assert len(kernel_batch.detector_scores.signatures) == compiled  # nothing left to compile in the first window


def test_snapshot_from_before_onset_scores_restores():
    """A 21-column state (before episodes and tail percentiles) keeps what it learned."""
    import io

    s = make_series("speed_kmh", days=2, step_s=STEP_S, seed=8)
    keys = np.zeros(s.ts_ms.size, dtype=np.int64)
    det = BatchDetector(1)
    det.score_learn_many(keys, s.ts_ms, s.values)
    buf = io.BytesIO()
    buf.write(b"CBAD1\n")
    np.savez(buf, S=det._S[:, :21], SEA=det._SEA, PD=det._PD)
    old = BatchDetector.from_snapshot(buf.getvalue())
    assert old._S.shape == det._S.shape
    np.testing.assert_array_equal(old._S[:, :21], det._S[:, :21])
    assert old._S[0, kernel.C_QLO] == kernel.QLO_S  # fresh tail percentile
    nxt = old.score_learn_many(np.array([0]), np.array([s.ts_ms[-1] + 300_000]), np.array([s.values[-1]]))
    assert 0.0 <= nxt[0] < 0.999


def test_scores_rank_strong_evidence_without_saturating():
    """Scores are a strictly increasing map of the surprise: a huge spike is not 1.0, and a
    larger one ranks higher."""
    rng = np.random.default_rng(4)
    base = 50 + rng.normal(0, 1, 2000)
    ts = np.arange(2001, dtype=np.int64) * 60_000
    tops = []
    for size in (40.0, 400.0, 4000.0):
        det = BatchDetector(1)
        tops.append(det.score_learn_many(np.zeros(2001, dtype=np.int64), ts, np.r_[base, 50 + size])[-1])
    assert 0.999 < tops[0] < tops[1] < tops[2] < 1.0


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.floats(0.5, 600.0), st.floats(-50.0, 150.0),
                          st.sampled_from(["none", "peer", "nan_peer", "nan_value", "int_ts"])),
                min_size=5, max_size=120))
def test_one_point_fast_path_equals_the_kernel(points):
    """The one-point path (range check and a peered key's peer statistic inside the one-key kernel)
    answers what the array kernels answer, whatever mix of peers, missing peers and missing values."""
    det = default_detector()
    S, SEA = kernel.detector_state(1)
    PD = kernel.peer_drift_state(1)
    t = 1_767_571_200.0
    for gap_s, x, kind in points:
        t += gap_s
        value = math.nan if kind == "nan_value" else x
        ts = int(t) if kind == "int_ts" else t
        peer = 0.9 * x + 1.0 if kind == "peer" else (math.nan if kind == "nan_peer" else None)
        got = det.score_learn_one(ts, value, peer)
        ts_ms = int(round(float(ts) * 1000.0))
        if peer is None and not det._peered:
            want = kernel.detector_step(S, SEA, 0, ts_ms, value)
        else:
            want = kernel.detector_step_peer(S, SEA, PD, 0, ts_ms, value, math.nan if peer is None else peer)
        assert got == want[0]
        assert det.last_reason == kernel.REASONS[want[3]]


def test_out_of_range_timestamps_are_refused_and_learn_nothing():
    det = default_detector()
    for i in range(50):
        det.score_learn_one(60.0 * i, 1.0 + i % 3)
    before = det._buf.copy()
    for bad in (1e13, -1e13, math.inf, math.nan, 10**20):
        with pytest.raises(ValueError, match="timestamp"):
            det.score_learn_one(bad, 2.0)
    with pytest.raises(TypeError, match="timestamp"):
        det.score_learn_one("yesterday", 2.0)
    assert np.array_equal(det._buf, before)
