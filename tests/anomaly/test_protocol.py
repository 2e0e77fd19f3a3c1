"""Every detector answers the same verbs (brain.anomaly.base): scoring never changes state, learning
returns the detector, the fused pass equals scoring then learning; compact checkpoints."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import models.artifacts
from brain.anomaly import BatchDetector, BatchScorer, KeyedDetector, OnePointDetector, SeasonalDetector, load_model
from brain.anomaly.onnx_scorer import ModelError
from brain.anomaly.snapshot import SnapshotFormatError, pack_arrays, unpack_arrays
from streams.anomaly_operator import AnomalyOperator


def _series(seed: int, n: int = 400):
    rng = np.random.default_rng(seed)
    ts_s = 1_767_571_200.0 + 60.0 * np.arange(n)
    x = 20 + 3 * np.sin(np.arange(n) / 30.0) + rng.normal(0, 1, n)
    x[rng.integers(50, n)] += 25.0
    return ts_s, x


def test_every_detector_follows_the_protocol():
    onnx = load_model("segment_iforest", "1", models.artifacts.DIR)
    for det in (SeasonalDetector(), BatchDetector(), KeyedDetector(), onnx):
        assert isinstance(det, BatchScorer), type(det).__name__
    assert isinstance(SeasonalDetector(), OnePointDetector)
    assert [d.learns_online for d in (SeasonalDetector(), BatchDetector(), KeyedDetector(), onnx)] == [True, True, True, False]
    with pytest.raises(ModelError, match="trained offline"):
        onnx.learn_many(np.zeros((1, len(onnx.features))))


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.integers(20, 200))
def test_seasonal_detector_scoring_changes_nothing_and_fused_equals_score_then_learn(seed, split):
    ts_s, x = _series(seed)
    fused, stepwise = SeasonalDetector(), SeasonalDetector()
    fused.learn_many(ts_s[:split], x[:split])
    stepwise.learn_many(ts_s[:split], x[:split])
    before = fused.score_many(ts_s[split:], x[split:])
    again = fused.score_many(ts_s[split:], x[split:])
    np.testing.assert_array_equal(before, again)  # scoring twice: the same answer
    assert fused.n_seen == split
    np.testing.assert_array_equal(fused.score_learn_many(ts_s[split:], x[split:]), before)
    one = []
    for t, v in zip(ts_s[split:].tolist(), x[split:].tolist()):
        s = stepwise.score_one(t, v)
        assert stepwise.learn_one(t, v) is stepwise
        one.append(s)
    np.testing.assert_array_equal(np.array(one), before)  # score_one then learn_one == the fused pass


def test_score_learn_one_fast_path_equals_the_batch_kernel_and_the_slow_path():
    ts_s, x = _series(3, 600)
    fast, slow = SeasonalDetector(), SeasonalDetector()
    a = [fast.score_learn_one(float(t), float(v)) for t, v in zip(ts_s, x)]
    b = [slow.score_learn_one(np.float64(t), np.float64(v)) for t, v in zip(ts_s, x)]
    c = BatchDetector(1).score_learn_many(np.zeros(x.size, dtype=np.int64), np.rint(ts_s * 1000).astype(np.int64), x)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert fast.last_reason == BatchDetector(1).explain_learn_many(
        np.zeros(x.size, dtype=np.int64), np.rint(ts_s * 1000).astype(np.int64), x)["reason"][-1]
    info = fast.explain_one(ts_s[-1] + 60.0, 500.0)
    assert info["score"] > 0.999 and info["reason"] == "spike" and fast.n_seen == x.size


def test_batch_detector_score_many_touches_no_state_even_for_unseen_keys():
    det = BatchDetector(4)
    ts_s, x = _series(5)
    keys = np.tile([0, 1], x.size // 2)
    ts = np.rint(ts_s * 1000).astype(np.int64)
    det.learn_many(keys, ts, x)
    blob = det.snapshot()
    n_keys = det.n_keys
    probe = (np.array([0, 1, 7, 50_000]), np.full(4, ts[-1] + 60_000), np.array([500.0, 20.0, 3.0, 4.0]))
    first = det.score_many(*probe)
    assert det.snapshot() == blob and det.n_keys == n_keys  # nothing learned, nothing allocated
    np.testing.assert_array_equal(det.score_many(*probe), first)
    assert first[0] > 0.999 and first[2] == 0.0  # a fresh key is warming up: score 0
    np.testing.assert_array_equal(det.score_learn_many(*probe), first)


def test_keyed_detector_score_many_is_pure_and_names_no_new_keys():
    det = KeyedDetector()
    rows = pl.DataFrame({"sensor_id": ["a", "b"] * 100, "ts_ms": [i // 2 * 60_000 for i in range(200)],
                         "v": [10.0 + (i % 5) for i in range(200)]})
    det.learn_many(rows, "v")
    probe = pl.DataFrame({"sensor_id": ["a", "zz"], "ts_ms": [6_000_000, 6_000_000], "v": [90.0, 1.0]})
    blob = det.snapshot()
    out = det.score_many(probe, "v")
    assert det.snapshot() == blob and det.n_keys == 2
    assert out["score"][0] > 0.999 and out["score"][1] == 0.0
    assert det.score_learn_many(probe, "v")["score"].to_list() == out["score"].to_list()
    assert det.n_keys == 3


def test_checkpoint_holds_only_keys_seen_and_continues_identically():
    op = AnomalyOperator(n_keys_hint=20_000)  # a large allocation ahead of the keys seen
    rng = np.random.default_rng(2)
    frames = [pl.DataFrame({"sensor_id": ["p1", "p2", "p3"], "window_end_ms": [i * 300_000] * 3,
                            "value": (50 + rng.normal(0, 1, 3)).tolist()}) for i in range(120)]
    for f in frames[:60]:
        op.detector.score_learn_many(f, "value", ts="window_end_ms")
    blob = op.snapshot()
    # three keys' state (~4.2 kB each: hour bins 3 kB, the own-period block 640 B), not 20,000 rows
    assert len(blob) < 3 * 4_500
    twin = AnomalyOperator()
    twin.restore(blob)
    for f in frames[60:]:
        a = op.detector.score_learn_many(f, "value", ts="window_end_ms")
        b = twin.detector.score_learn_many(f, "value", ts="window_end_ms")
        assert a.equals(b)
    with pytest.raises(ValueError, match="another format"):
        AnomalyOperator().restore(b"garbage" * 10)


def test_array_snapshots_refuse_foreign_or_damaged_bytes():
    blob = pack_arrays("x/1", {"a": 1}, {"v": np.arange(4.0)})
    with pytest.raises(SnapshotFormatError, match="expected 'y/1'"):
        unpack_arrays("y/1", blob)
    with pytest.raises(SnapshotFormatError, match="past the end"):
        unpack_arrays("x/1", blob[:-8])
    with pytest.raises(TypeError, match="not state data"):
        pack_arrays("x/1", {}, {"o": np.array(["a"], dtype=object)})
    with pytest.raises(ValueError, match="corrupt KeyedDetector snapshot"):
        KeyedDetector().restore(pack_arrays("KeyedDetector/2", {"names": "nope"}, BatchDetector(1).state_arrays()))
