"""The count model (brain.kernels.counts): the kernel equals its plain twin bit for bit, continuous
series never reach it, and through the whole default detector low-rate integer counts (Poisson and
negative binomial, mean 0.2 to 5) stay calibrated at 0.999 while a x4 burst of the rate pages."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.anomaly import BatchDetector
from brain.kernels import counts as ct

_point = st.tuples(st.integers(0, 3_600_000), st.one_of(st.integers(0, 12).map(float), st.floats(-5.0, 50.0)))


@settings(max_examples=200, deadline=None)
@given(st.lists(_point, min_size=1, max_size=400), st.integers(0, 150))
def test_count_step_equals_reference(points, n0):
    """Random walks of time with integer and non-integer values, the gate on and off (``n0``
    points already seen): every surprise and every state column is the same."""
    S = np.zeros((2, 3 + ct.COUNT_COLS))
    row = [0.0] * (3 + ct.COUNT_COLS)
    t = 0
    for i, (dt, x) in enumerate(points):
        t += dt
        s = ct.count_step(S, 1, 3, np.int64(t), x, float(n0 + i))
        assert s == ct.count_step_ref(row, 3, t, x, float(n0 + i))
        assert s >= 0.0 or s == -1.0  # -1: not (yet) a count key
    assert S[1].tolist() == row
    assert not S[0].any()  # another key's row is untouched


def test_continuous_values_never_read_as_counts():
    S = np.zeros((1, ct.COUNT_COLS))
    rng = np.random.default_rng(3)
    x = np.abs(rng.normal(1.0, 0.5, 3000))
    # -1: not a count key, the detector keeps its continuous residual
    assert max(ct.count_step(S, 0, 0, 300_000 * i, x[i], float(i)) for i in range(x.size)) == -1.0


def _series(rng, n=6000):
    """Counts every 5 min: Poisson or negative binomial (size 1 to 5), mean 0.2 to 5 with a mild
    daily rhythm; returns (ts_ms, values, normal mask, burst windows)."""
    ts = (np.arange(n) * 300_000).astype(np.int64)
    mean = 10 ** rng.uniform(np.log10(0.2), np.log10(5.0)) * np.exp(0.4 * np.sin(2 * np.pi * (ts / 3.6e6 % 24) / 24))
    r = rng.uniform(1.0, 5.0) if rng.random() < 0.5 else None

    def draw(m):
        return rng.poisson(m) if r is None else rng.negative_binomial(r, r / (r + m))

    x = draw(mean).astype(float)
    normal = np.ones(n, bool)
    windows = []
    for a in (3000, 4500):
        d = int(rng.integers(30, 90))
        x[a:a + d] = draw(4.0 * mean[a:a + d])  # the rate x4, drawn as counts
        normal[a:a + d] = False
        windows.append((a, a + d))
    return ts, x, normal, windows


def test_low_rate_counts_are_calibrated_and_a_rate_burst_pages():
    """On the base detector (continuous residual only) 9 of the 20 bursts below are missed; the
    count model catches them, and quantisation (a 0 -> 2 jump at mean 0.3) does not page."""
    rng = np.random.default_rng(20261207)
    flagged = normal_n = caught = bursts = 0
    for _ in range(10):
        ts, x, normal, windows = _series(rng)
        s = BatchDetector(1).score_learn_many(np.zeros(x.size, dtype=np.int64), ts, x)
        flagged += int((s[normal] >= 0.999).sum())
        normal_n += int(normal.sum())
        for a, b in windows:
            bursts += 1
            caught += bool((s[a:b] >= 0.999).any())
    assert flagged / normal_n <= 0.002, flagged / normal_n
    assert caught >= 18, (caught, bursts)


def test_a_snapshot_from_before_the_count_model_restores():
    """A 28-column state (before the count model) keeps what it learned; the count columns start
    empty and the key scores on."""
    from brain.kernels import detector as kernel

    rng = np.random.default_rng(9)
    n = 2000
    ts = np.arange(n, dtype=np.int64) * 300_000
    x = rng.poisson(0.5, n).astype(float)
    det = BatchDetector(1)
    det.score_learn_many(np.zeros(n, dtype=np.int64), ts, x)
    arrays = det.state_arrays()
    old = BatchDetector(1).restore_arrays({**arrays, "S": np.ascontiguousarray(arrays["S"][:, :28])})
    assert old._S.shape[1] == kernel.N_COLS
    np.testing.assert_array_equal(old._S[:, :28], det._S[:, :28])
    assert not old._S[:, kernel.C_CT0:].any()
    nxt = old.score_learn_many(np.array([0]), np.array([ts[-1] + 300_000]), np.array([1.0]))
    assert 0.0 <= nxt[0] < 0.999
