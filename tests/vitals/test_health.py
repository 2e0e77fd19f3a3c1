"""Health index: sub-score mappings, weight normalisation, bounds."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.city.model import HealthWeights
from brain.vitals import health


def test_weight_normalisation():
    w = health.normalised_weights(HealthWeights(traffic=3, environment=1, grid=0, utilities=0, emergency=0, sensors=0))
    assert w["traffic"] == 0.75 and w["environment"] == 0.25 and sum(w.values()) == pytest.approx(1.0)
    # Defaults already sum to 1.
    assert sum(health.normalised_weights(HealthWeights()).values()) == pytest.approx(1.0)


def test_scaling_weights_does_not_change_the_index():
    scores = {"traffic": [40.0], "environment": [80.0], "grid": [70.0], "utilities": [100.0], "emergency": [60.0], "sensors": [90.0]}
    a = health.health_index(scores, HealthWeights())
    b = health.health_index(scores, HealthWeights(traffic=2.5, environment=2.5, grid=1.5, utilities=1.0, emergency=1.5, sensors=1.0))
    # By hand: 0.25*40 + 0.25*80 + 0.15*70 + 0.1*100 + 0.15*60 + 0.1*90 = 10 + 20 + 10.5 + 10 + 9 + 9 = 68.5
    assert a[0] == pytest.approx(68.5) and b[0] == pytest.approx(68.5)


def test_missing_subscores_spread_their_weight():
    # Only traffic 40 and sensors 100 measured: (0.25*40 + 0.1*100) / 0.35 = 57.14
    got = health.health_index({"traffic": [40.0], "environment": [math.nan], "sensors": [100.0]})
    assert got[0] == pytest.approx(20 / 0.35)
    assert math.isnan(health.health_index({"traffic": [math.nan]})[0])


def test_bad_weights_and_keys():
    with pytest.raises(ValueError, match="sum to 0"):
        health.normalised_weights(HealthWeights(0, 0, 0, 0, 0, 0))
    with pytest.raises(ValueError, match=">= 0"):
        health.normalised_weights(HealthWeights(traffic=-1))
    with pytest.raises(ValueError, match="unknown sub-score"):
        health.health_index({"vibes": [1.0]})


def test_subscore_mappings_by_hand():
    assert health.traffic_score([7.5]).tolist() == [25.0]
    # AQI 100: 100 * (300 - 100) / 250 = 80
    assert health.air_score([100.0]).tolist() == [80.0]
    # 4 open, 1 overdue -> 75; on-time 0.5 -> 50; mean 62.5
    assert health.grid_score([4], [1], [0.5]).tolist() == [62.5]
    # one of two meters out of tolerance, 5000 of 10000 customers out: 100 * 0.5 * 0.5
    assert health.utilities_score([0.5], [5000]).tolist() == [25.0]
    assert health.emergency_score([[1, 0, 0, 0]]).tolist() == [60.0]


def test_scoring_validation():
    with pytest.raises(ValueError, match="air_share"):
        health.HealthScoring(air_share=1.5)
    with pytest.raises(ValueError, match="severity_penalty"):
        health.HealthScoring(severity_penalty=(1.0, 2.0, -3.0, 4.0))


score = st.one_of(st.just(math.nan), st.floats(-50, 150, allow_nan=False))
weight = st.floats(0, 10, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(*[score] * 6), min_size=1, max_size=10), st.tuples(*[weight] * 6))
def test_health_index_bounded_and_between_subscores(rows, ws):
    if sum(ws) <= 0:
        return
    arr = np.asarray(rows, dtype=float)
    scores = {k: arr[:, i] for i, k in enumerate(health.SUBSCORES)}
    weights = HealthWeights(*ws)
    idx = health.health_index(scores, weights)
    norm = health.normalised_weights(weights)
    w = np.asarray([norm[k] for k in health.SUBSCORES])
    for i in range(len(rows)):
        present = ~np.isnan(arr[i]) & (w > 0)
        if not present.any():
            assert math.isnan(idx[i])
            continue
        clipped = np.clip(arr[i][present], 0, 100)
        assert 0 <= idx[i] <= 100
        assert clipped.min() - 1e-9 <= idx[i] <= clipped.max() + 1e-9
