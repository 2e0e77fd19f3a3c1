"""KeyedDetector: polars frames in, the anomaly stream out, keys stable across batches and restarts."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from brain.anomaly import BatchDetector, KeyedDetector
from models.simhistory import make_series


def _frame(n_days=3, seed=0):
    a = make_series("speed_kmh", n_days, 300, seed=seed, events=[("spike", n_days - 0.5)])
    b = make_series("pm25_ugm3", n_days, 300, seed=seed + 1)
    return pl.DataFrame({
        "sensor_id": ["LP-1"] * a.ts_ms.size + ["AQ-1"] * b.ts_ms.size,
        "ts_ms": np.r_[a.ts_ms, b.ts_ms],
        "v": np.r_[a.values, b.values],
    }).sort("ts_ms", maintain_order=True), a


def test_frames_in_batches_equal_one_batch_detector_per_key():
    df, a = _frame()
    keyed = KeyedDetector(n_keys_hint=1)
    parts = [keyed.score_learn_many(df.slice(i, 97), "v") for i in range(0, df.height, 97)]
    out = pl.concat(parts)
    assert out.height == df.height and keyed.n_keys == 2
    ref = BatchDetector(1).score_learn_many(np.zeros(a.ts_ms.size, dtype=np.int64), a.ts_ms, a.values)
    np.testing.assert_array_equal(out.filter(pl.col("sensor_id") == "LP-1")["score"].to_numpy(), ref)
    flagged = out.filter(pl.col("score") >= 0.999)
    assert "LP-1" in flagged["sensor_id"].to_list() and set(flagged["metric"]) == {"v"}


def test_metrics_of_one_sensor_are_separate_keys_and_nulls_are_missing():
    keyed = KeyedDetector()
    n = 400
    df = pl.DataFrame({"sensor_id": ["S"] * n, "ts_ms": np.arange(n) * 60_000,
                       "a": 10.0 + np.sin(np.arange(n) / 5.0), "b": 1000.0 + np.cos(np.arange(n) / 3.0)})
    keyed.score_learn_many(df, "a")
    keyed.score_learn_many(df, "b")
    assert keyed.n_keys == 2
    gap = pl.DataFrame({"sensor_id": ["S"] * 6, "ts_ms": (n + np.arange(6)) * 60_000, "a": [None] * 6},
                       schema={"sensor_id": pl.String, "ts_ms": pl.Int64, "a": pl.Float64})
    twin = KeyedDetector().restore(keyed.snapshot())
    out = keyed.score_learn_many(gap, "a")
    assert out["reason"][-1] == "missing" and out["ongoing"][-1] >= 0.999  # the outage holds...
    assert (out["score"] >= 0.999).sum() == 1  # ...and is paged once, when it starts
    paged = twin.score_learn_many(gap, "a", min_score=0.999)
    assert paged.height == 1 and paged["ts_ms"][0] == out.filter(pl.col("score") >= 0.999)["ts_ms"][0]


def test_snapshot_keeps_keys_and_state():
    df, _ = _frame(seed=3)
    half = df.height // 2
    whole = KeyedDetector().score_learn_many(df, "v")["score"].to_numpy()
    first = KeyedDetector()
    first.score_learn_many(df.slice(0, half), "v")
    again = KeyedDetector().restore(first.snapshot())
    np.testing.assert_array_equal(again.score_learn_many(df.slice(half), "v")["score"].to_numpy(), whole[half:])
    with pytest.raises(ValueError, match="bad header"):
        again.restore(b"nope")


def test_bad_columns_are_clear_errors():
    with pytest.raises(ValueError, match="column 'speed' not in frame"):
        KeyedDetector().score_learn_many(pl.DataFrame({"sensor_id": ["a"], "ts_ms": [0]}), "speed")
    empty = KeyedDetector().score_learn_many(pl.DataFrame({"sensor_id": [], "ts_ms": [], "v": []},
                                                     schema={"sensor_id": pl.String, "ts_ms": pl.Int64, "v": pl.Float64}), "v")
    assert empty.height == 0 and "score" in empty.columns


def test_same_id_in_different_key_columns_are_different_series():
    keyed = KeyedDetector()
    df = pl.DataFrame({"segment_id": ["X"] * 50, "sensor_id": ["X"] * 50, "ts_ms": np.arange(50) * 60_000,
                       "value": np.linspace(0.0, 1.0, 50)})
    keyed.score_learn_many(df, "value", key="segment_id")
    keyed.score_learn_many(df, "value", key="sensor_id")
    assert keyed.n_keys == 2
