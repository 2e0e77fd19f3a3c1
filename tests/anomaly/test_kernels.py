"""Every anomaly kernel equals its plain-Python reference (hypothesis property tests)."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.kernels import changepoint, detector, detector_batch, ewma, faults, robust, seasonal

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
@given(streams(max_len=120), st.floats(0.01, 1.0))
def test_peer_drift_equals_reference(s, scale):
    keys, ts, values = s
    residual = np.where(np.abs(values) > 1e3, np.nan, values * scale)  # log-ratio-like magnitudes, NaN gaps
    got = faults.peer_drift_batch(keys, ts, residual, faults.peer_drift_state(3))
    want = faults.peer_drift_batch_ref(keys, ts, residual)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_peer_drift_equals_reference_long(seed):
    """Long enough to warm up and test: ramps, steps, spikes, gaps longer than the window, late points."""
    rng = np.random.default_rng(seed)
    n = 1500
    keys = rng.integers(0, 2, n).astype(np.int64)
    steps = rng.choice([60_000, 300_000, -300_000, 0, 6 * 3_600_000], n, p=[0.4, 0.48, 0.05, 0.05, 0.02])
    ts = (1_767_571_200_000 + np.cumsum(steps)).astype(np.int64)
    r = rng.normal(0.0, 0.08, n) + np.linspace(0.0, rng.normal(0.0, 1.0), n)
    r[n // 2:] += rng.choice([0.0, 0.5])
    r[rng.random(n) < 0.02] *= 40.0
    r[rng.random(n) < 0.03] = np.nan
    got = faults.peer_drift_batch(keys, ts, r, faults.peer_drift_state(2))
    want = faults.peer_drift_batch_ref(keys, ts, r)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert np.abs(got[0]).max() > 0.0  # the test statistic was reached, not only the warm-up


@SETTINGS
@given(st.floats(-50, 50), st.floats(-50, 50), st.floats(0, 10), st.floats(0, 10))
def test_scalar_helpers_equal_reference(a, b, c, d):
    assert faults.drift_z(a, b, c, d) == faults.drift_z_ref(a, b, c, d)
    assert faults.peer_drift_pvalue(a, b) == faults.peer_drift_pvalue_ref(a, b)
    assert faults.spike_pvalue(a) == faults.spike_pvalue_ref(a)
    assert ewma.decay_alpha(c, d, 3.0) == ewma.decay_alpha_ref(c, d, 3.0)
    assert robust.clip(a, c) == robust.clip_ref(a, c)
    assert robust.quantile_step(a, b, 0.9, 0.05) == robust.quantile_step_ref(a, b, 0.9, 0.05)


@SETTINGS
@given(streams(max_len=80))
def test_detector_equals_reference_short(s):
    keys, ts, values = s
    S, SEA = detector.detector_state(3)
    got = detector_batch.detector_batch(keys, ts, values, S, SEA)
    want = detector_batch.detector_batch_ref(keys, ts, values)
    for g, w in zip(got, want):
        _same(g, w)


@SETTINGS
@given(streams(max_len=80), st.floats(0.5, 2.0))
def test_detector_with_peers_equals_reference_short(s, ratio):
    keys, ts, values = s
    peers = np.where(np.arange(values.size) % 4 == 3, np.nan, values * ratio)  # some points without a peer
    S, SEA = detector.detector_state(3)
    got = detector_batch.detector_batch_peer(keys, ts, values, peers, S, SEA, faults.peer_drift_state(3))
    want = detector_batch.detector_batch_ref(keys, ts, values, peers=peers)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@settings(max_examples=4, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_detector_with_peers_equals_reference_long(seed):
    """A speed series against a noisy peer, drifting away from it for hours: every branch of the peer path."""
    rng = np.random.default_rng(seed)
    n = 2500
    keys = rng.integers(0, 2, n).astype(np.int64)
    ts = 1_767_571_200_000 + np.cumsum(rng.choice([60_000, 300_000, -60_000], n, p=[0.3, 0.65, 0.05])).astype(np.int64)
    city_kmh = 40 + 15 * np.sin(np.arange(n) / 80.0)
    values = np.round(city_kmh * np.exp(rng.normal(0, 0.02, n)) * np.r_[np.ones(n - 150), np.linspace(1.0, 0.4, 150)], 1)
    peers = city_kmh * np.exp(rng.normal(0, 0.08, n))
    values[rng.random(n) < 0.02] = np.nan
    peers[rng.random(n) < 0.05] = np.nan
    S, SEA = detector.detector_state(2)
    PD = faults.peer_drift_state(2)
    got = detector_batch.detector_batch_peer(keys, ts, values, peers, S, SEA, PD)
    want = detector_batch.detector_batch_ref(keys, ts, values, peers=peers)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert (got[3] == detector.REASON_DRIFT).any()
    scores_only = detector_batch.detector_scores_peer(keys, ts, values, peers, *detector.detector_state(2), faults.peer_drift_state(2),
                                                np.empty(n))
    np.testing.assert_array_equal(scores_only, got[0])


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
    got = detector_batch.detector_batch(keys, ts, values, S, SEA)
    want = detector_batch.detector_batch_ref(keys, ts, values)
    for g, w in zip(got, want):
        _same(g, w)
    scores_only = detector_batch.detector_scores(keys, ts, values, *detector.detector_state(2), np.empty(n))
    _same(scores_only, got[0])
