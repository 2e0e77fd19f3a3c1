"""Every anomaly kernel equals its plain-Python reference (hypothesis property tests)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.kernels import changepoint, detector, ewma, faults, robust, seasonal

SETTINGS = settings(max_examples=40, deadline=None)

# values with repeats, NaNs, jumps and large magnitudes: what real feeds send
_value = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([0.0, 1.0, 1.0, 5.0, np.nan]),
)


@st.composite
def streams(draw, max_len=60, n_keys=3):
    n = draw(st.integers(1, max_len))
    keys = np.array(draw(st.lists(st.integers(0, n_keys - 1), min_size=n, max_size=n)), dtype=np.int64)
    # mostly forward steps of seconds to hours, sometimes out of order or repeated
    steps = draw(st.lists(st.sampled_from([0, 1_000, 60_000, 60_000, 300_000, 3_600_000, -120_000, 86_400_000]), min_size=n, max_size=n))
    ts = (1_767_571_200_000 + np.cumsum(steps)).astype(np.int64)
    values = np.array(draw(st.lists(_value, min_size=n, max_size=n)), dtype=np.float64)
    return keys, ts, values


def _same(a, b):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-12, atol=1e-12, equal_nan=True)


@SETTINGS
@given(streams(), st.sampled_from([60.0, 3600.0, 0.0]))
def test_ewma_equals_reference(s, tau_s):
    keys, ts, values = s
    mean, std = ewma.ewma_batch(keys, ts, values, tau_s, *ewma.ewma_state(3))
    rmean, rstd = ewma.ewma_batch_ref(keys, ts, values, tau_s)
    _same(mean, rmean)
    _same(std, rstd)


@SETTINGS
@given(streams(), st.sampled_from([0.01, 0.2]), st.sampled_from([2.0, 3.0]))
def test_robust_equals_reference(s, alpha_min, clip_sigmas):
    keys, _, values = s
    z = robust.robust_batch(keys, values, alpha_min, clip_sigmas, np.zeros(3), np.zeros(3), np.zeros(3))
    _same(z, robust.robust_batch_ref(keys, values, alpha_min, clip_sigmas))


@SETTINGS
@given(streams(), st.sampled_from([1.0, 3.0]))
def test_seasonal_equals_reference(s, min_count):
    keys, ts, values = s
    out = seasonal.seasonal_batch(keys, ts, values, min_count, seasonal.seasonal_state(3), np.zeros(3, dtype=np.int64))
    _same(out, seasonal.seasonal_batch_ref(keys, ts, values, min_count))


@SETTINGS
@given(streams(), st.sampled_from([0.25, 0.5]), st.sampled_from([2.0, 8.0]))
def test_cusum_equals_reference(s, k, h):
    keys, _, values = s
    z = np.where(np.abs(values) > 50, np.sign(values) * 3.0, values)  # z-like magnitudes
    stat, alarm = changepoint.cusum_batch(keys, z, k, h, np.zeros(3), np.zeros(3))
    rstat, ralarm = changepoint.cusum_batch_ref(keys, z, k, h)
    _same(stat, rstat)
    assert alarm.tolist() == ralarm.tolist()


@SETTINGS
@given(streams())
def test_flatline_equals_reference(s):
    keys, _, values = s
    _same(faults.flatline_batch(keys, values, *faults.flatline_state(3)), faults.flatline_batch_ref(keys, values))


@SETTINGS
@given(st.floats(-50, 50), st.floats(-50, 50), st.floats(0, 10), st.floats(0, 10))
def test_scalar_helpers_equal_reference(a, b, c, d):
    assert faults.drift_z(a, b, c, d) == faults.drift_z_ref(a, b, c, d)
    assert faults.spike_pvalue(a) == faults.spike_pvalue_ref(a)
    assert ewma.decay_alpha(c, d, 3.0) == ewma.decay_alpha_ref(c, d, 3.0)
    assert robust.clip(a, c) == robust.clip_ref(a, c)
    assert robust.quantile_step(a, b, 0.9, 0.05) == robust.quantile_step_ref(a, b, 0.9, 0.05)


@SETTINGS
@given(streams(max_len=80))
def test_detector_equals_reference_short(s):
    keys, ts, values = s
    S, SEA = detector.detector_state(3)
    got = detector.detector_batch(keys, ts, values, S, SEA)
    want = detector.detector_batch_ref(keys, ts, values)
    for g, w in zip(got, want):
        _same(g, w)


@settings(max_examples=4, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_detector_equals_reference_long(seed):
    """Long streams reach every branch: warm-up over, drift armed, CUSUM restarts, flatlines, NaN runs."""
    rng = np.random.default_rng(seed)
    n = 2500
    keys = rng.integers(0, 2, n).astype(np.int64)
    ts = 1_767_571_200_000 + np.cumsum(rng.choice([30_000, 60_000, 600_000, -60_000], n, p=[0.3, 0.5, 0.15, 0.05])).astype(np.int64)
    values = np.round(100 + 10 * np.sin(np.arange(n) / 50.0) + rng.standard_t(3, n) * 3, 1)
    values[rng.random(n) < 0.03] = np.nan
    a = int(rng.integers(0, n - 200))
    values[a:a + 60] = values[a]  # a stuck stretch
    values[n // 2:] += rng.choice([-40.0, 40.0])  # a level shift
    S, SEA = detector.detector_state(2)
    got = detector.detector_batch(keys, ts, values, S, SEA)
    want = detector.detector_batch_ref(keys, ts, values)
    for g, w in zip(got, want):
        _same(g, w)
    scores_only = detector.detector_scores(keys, ts, values, *detector.detector_state(2), np.empty(n))
    _same(scores_only, got[0])
