"""The sensor-fault kernels equal their plain-Python twins (hypothesis), state and outputs alike."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.kernels import sensorfault as sf

SETTINGS = settings(max_examples=60, deadline=None)

# window means as feeds send them: repeats, zeros, NaN (not reported), jumps, tiny and huge values
_value = st.one_of(st.floats(-1e3, 1e6, allow_nan=False), st.sampled_from([0.0, 1.0, 1.0, 5.0, 60.25, np.nan]))


@st.composite
def ticks(draw):
    n = draw(st.integers(1, 6))
    n_fields = draw(st.integers(1, 3))
    n_types = draw(st.integers(1, 3))
    n_ticks = draw(st.integers(1, 70))
    ktype = np.array(draw(st.lists(st.integers(0, n_types - 1), min_size=n, max_size=n)), dtype=np.int64)
    prim = np.array(draw(st.lists(st.integers(0, n_fields - 1), min_size=n, max_size=n)), dtype=np.int64)
    peers = [[j for j in range(n) if j != k and draw(st.booleans())] for k in range(n)]
    # a tick either repeats the last one (a stuck stretch) or draws new values
    vals, last = [], None
    for _ in range(n_ticks):
        if last is not None and draw(st.integers(0, 3)) == 0:
            vals.append(last.copy())
        else:
            last = np.array(draw(st.lists(_value, min_size=n * n_fields, max_size=n * n_fields))).reshape(n, n_fields)
            vals.append(last)
    ref = [np.array(draw(st.lists(st.sampled_from([np.nan, 30.0, 45.5, 0.0]), min_size=n, max_size=n))) for _ in range(n_ticks)]
    block = draw(st.sampled_from([1, 3]))
    return n, n_fields, n_types, ktype, prim, peers, vals, ref, block


def _same(a, b):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-9, atol=1e-12, equal_nan=True)


@SETTINGS
@given(ticks())
def test_fault_tick_equals_reference(case):
    n, n_fields, n_types, ktype, prim, peers, vals, ref, block = case
    ptr, idx = sf.peers_csr(peers)
    fast, slow = sf.fault_state(n, n_fields, n_types), sf.fault_state(n, n_fields, n_types)
    for v, r in zip(vals, ref):
        got = sf.fault_tick(v, r, ktype, prim, ptr, idx, block, sf.STUCK_LOG_P, *fast)
        want = sf.fault_tick_ref(v, r, ktype, prim, ptr, idx, block, sf.STUCK_LOG_P, *slow)
        for a, b in zip(got, want):
            _same(a, b)
        for a, b in zip(fast, slow):
            _same(a, b)


@SETTINGS
@given(st.lists(st.lists(st.sampled_from([-1.0, 0.0, 60_000.0, 120_000.0, 600_000.0, 5e6]), min_size=3, max_size=3),
                min_size=1, max_size=40))
def test_silence_tick_equals_reference(seen_rows):
    fast, slow = sf.silence_state(3), sf.silence_state(3)
    now = 0.0
    for k, row in enumerate(seen_rows):
        now += 300_000.0
        seen = np.array(row) + (now if k % 2 else 0.0)
        got = sf.silence_tick(seen, now, fast)
        want = sf.silence_tick_ref(seen, now, slow)
        for a, b in zip(got, want):
            _same(a, b)
        _same(fast, slow)


def test_a_stuck_run_needs_the_type_to_rarely_repeat():
    """A rain gauge at 0 mm repeats by nature: zeros are no evidence; a 3-decimal reading repeated is."""
    n = 20
    ptr, idx = sf.peers_csr([[] for _ in range(n)])
    state = sf.fault_state(n, 1, 1)
    rng = np.random.default_rng(1)
    flags = None
    for _ in range(12):
        vals = np.round(rng.normal(5.0, 0.2, (n, 1)), 3)
        vals[0, 0] = 0.0  # the gauge: dry
        vals[1, 0] = 4.321  # stuck
        flags = sf.fault_tick(vals, np.full(n, np.nan), np.zeros(n, np.int64), np.zeros(n, np.int64), ptr, idx, 3, sf.STUCK_LOG_P, *state)[0]
    assert flags[1] & sf.FLAG_STUCK
    assert not flags[0] and not (flags[2:] & sf.FLAG_STUCK).any()


def test_a_step_is_not_drift_but_a_ramp_is():
    """Against steady peers: a 40 % step (an event, a recalibration) is not drift; a 50 % ramp over 3 h is."""
    n = 4
    ptr, idx = sf.peers_csr([[j for j in range(n) if j != k] for k in range(n)])
    for shape, expect in (("step", 0), ("ramp", sf.FLAG_DRIFT)):
        state = sf.fault_state(n, 1, 1)
        rng = np.random.default_rng(2)
        seen = 0
        for t in range(12 * 7):
            x = 50.0 * np.exp(rng.normal(0.0, 0.02, n))
            h = t / 12.0
            if h > 2.0:
                x[0] *= 1.4 if shape == "step" else 1.0 + 0.5 * min((h - 2.0) / 3.0, 1.0)
            flags = sf.fault_tick(x.reshape(n, 1), np.full(n, np.nan), np.zeros(n, np.int64), np.zeros(n, np.int64),
                                  ptr, idx, 3, sf.STUCK_LOG_P, *state)[0]
            seen |= int(flags[0])
        assert seen & sf.FLAG_DRIFT == expect, shape
