"""The hour-of-day noise profile (brain.kernels.seasonal.noise_value / noise_learn): each kernel
equals its plain twin, and the detector uses it (noisy hours are normal, quiet hours stay sharp)."""
from __future__ import annotations

import io

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.anomaly import BatchDetector
from brain.kernels import detector as kernel
from brain.kernels import seasonal

START_MS = 1_767_571_200_000  # a Monday, 00:00 UTC
O = kernel.NOISE0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3 * 86_400_000), st.floats(0.0, 1e6, allow_nan=False),
                          st.sampled_from([0.0, 1.0, 60.0, 300.0, 7200.0])), min_size=1, max_size=60),
       st.sampled_from([0.0, 3.0, 30.0]))
def test_noise_kernels_equal_their_plain_twins(points, min_tod):
    sea = np.zeros((1, kernel.SEA_COLS))
    row = [0.0] * kernel.SEA_COLS
    for t, r, dt in points:
        ts = START_MS + t
        assert seasonal.noise_value(sea, 0, ts, O, min_tod) == seasonal.noise_value_ref(row, ts, O, min_tod)
        seasonal.noise_learn(sea, 0, ts, O, r, dt, min_tod)
        seasonal.noise_learn_ref(row, ts, O, r, dt, min_tod)
        # the hour bins' visit weights move after the noise profile learns (as in the detector)
        seasonal.seasonal_learn(sea, 0, ts, r, dt)
        seasonal.seasonal_learn_ref(row, ts, r, dt)
        np.testing.assert_array_equal(sea[0], np.array(row))


def _day_noise_series(days, rng):
    """Minute data: a daily mean profile, noise 0.2 at night and 4.0 from 12:00 to 18:00 UTC."""
    ts = START_MS + np.arange(days * 1440, dtype=np.int64) * 60_000
    h = (ts // 3_600_000) % 24
    sd = np.where((h >= 12) & (h < 18), 4.0, 0.2)
    smooth = 100.0 + 10.0 * np.sin(2 * np.pi * (ts / 3_600_000.0) / 24.0)
    return ts, smooth + sd * rng.standard_normal(ts.size), h


def test_noisy_hours_are_learned_as_normal_and_quiet_hours_stay_sharp():
    rng = np.random.default_rng(11)
    ts, x, h = _day_noise_series(10, rng)
    spike_at = 9 * 1440 + 3 * 60 + 17  # 03:17 on the last day: a quiet hour
    x[spike_at] += 3.0  # 15 sigmas of the night's noise, < 1 sigma of the afternoon's
    det = BatchDetector(1)
    scores = det.score_learn_many(np.zeros(ts.size, dtype=np.int64), ts, x)
    noise = det._SEA[0, O:O + seasonal.N_TOD]
    assert noise[15] > 5.0 * noise[3]  # the afternoon's |residual| against the night's
    clean = np.ones(ts.size, dtype=bool)
    clean[spike_at] = False
    late = np.arange(ts.size) >= 3 * 1440
    assert np.mean(scores[clean & late] >= 0.999) <= 0.002
    assert np.mean(scores[clean & late & (h >= 12) & (h < 18)] >= 0.999) <= 0.002  # the noisy hours too
    assert scores[spike_at] >= 0.999


def test_snapshot_from_before_the_noise_profile_restores():
    """A state whose seasonal rows are the hour bins alone keeps them; the noise profile starts at 0."""
    rng = np.random.default_rng(3)
    ts, x, _ = _day_noise_series(3, rng)
    keys = np.zeros(ts.size, dtype=np.int64)
    det = BatchDetector(1)
    det.score_learn_many(keys, ts, x)
    buf = io.BytesIO()
    buf.write(b"CBAD1\n")
    np.savez(buf, S=det._S, SEA=det._SEA[:, :O], PD=det._PD)
    old = BatchDetector.from_snapshot(buf.getvalue())
    assert old._SEA.shape == det._SEA.shape
    np.testing.assert_array_equal(old._SEA[:, :O], det._SEA[:, :O])
    assert not old._SEA[:, O:].any()
    nxt = old.score_learn_many(np.array([0]), np.array([ts[-1] + 60_000]), np.array([x[-1]]))
    assert 0.0 <= nxt[0] < 0.999
