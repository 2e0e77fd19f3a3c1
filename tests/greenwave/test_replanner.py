"""Live re-planning: hysteresis, and no input sequence yields an unsafe plan or transition."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.greenwave.replanner import CorridorReplanner
from brain.greenwave.safety import check_plan
from brain.greenwave.transition import check_transition, plan_transition
from tests.greenwave.helpers import random_spec

MIN = 60_000


def flows_for(spec, base, rng, noise):
    return {it.id: list(np.maximum(base[i][: len(it.phases)] * (1 + rng.uniform(-noise, noise, len(it.phases))), 0))
            for i, it in enumerate(spec.intersections)}


def test_noise_does_not_replan_but_a_shift_does_once():
    rng = np.random.default_rng(3)
    spec = random_spec(rng, 5)
    base = rng.uniform(200, 600, (5, 4))
    rp = CorridorReplanner(spec, threshold=0.15, min_hold_ms=5 * MIN, smoothing=0.5)
    assert rp.update(0, flows_for(spec, base, rng, 0.0), 800, 600) is not None
    t = 0
    for _ in range(40):  # +-5 % noise for 40 windows: never a new plan
        t += MIN
        assert rp.update(t, flows_for(spec, base, rng, 0.05), 800, 600) is None
    shifted = base * 1.8
    new = []
    for _ in range(30):
        t += MIN
        p = rp.update(t, flows_for(spec, shifted, rng, 0.05), 800, 600)
        if p is not None:
            new.append((t, p))
    assert len(new) == 1  # one re-plan, then quiet again
    assert new[0][1].valid_from_ms == new[0][0]


def test_min_hold_is_respected():
    rng = np.random.default_rng(8)
    spec = random_spec(rng, 3)
    rp = CorridorReplanner(spec, threshold=0.05, min_hold_ms=10 * MIN, smoothing=1.0)
    times = []
    for k in range(60):
        level = rng.uniform(100, 900, (3, 4))
        if rp.update(k * MIN, flows_for(spec, level, rng, 0), rng.uniform(100, 900), rng.uniform(100, 900)) is not None:
            times.append(k * MIN)
    assert len(times) >= 2
    assert all(b - a >= 10 * MIN for a, b in zip(times, times[1:]))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 6), steps=st.integers(2, 12),
       smoothing=st.floats(0.1, 1.0), threshold=st.floats(0.01, 1.0))
def test_no_sequence_of_flows_gives_an_unsafe_plan_or_transition(seed, n, steps, smoothing, threshold):
    rng = np.random.default_rng(seed)
    spec = random_spec(rng, n)
    rp = CorridorReplanner(spec, threshold=threshold, min_hold_ms=0, smoothing=smoothing)
    prev = None
    for k in range(steps):
        # anything from empty roads to oversaturation, with missing detectors (NaN)
        f = rng.choice([0.0, 50.0, 400.0, 1500.0, 3000.0], size=(n, 4)) * rng.uniform(0.5, 1.5, (n, 4))
        f[rng.random((n, 4)) < 0.2] = np.nan
        plan = rp.update(k * MIN, f, float(rng.uniform(0, 2000)), float(rng.uniform(0, 2000)))
        if plan is None:
            continue
        assert check_plan(plan, spec) == []
        if prev is not None:
            tr = plan_transition(prev, plan, spec, switch_s=k * 60.0)
            assert check_transition(tr, spec) == []
        prev = plan


def test_bad_inputs():
    spec = random_spec(np.random.default_rng(1), 3)
    with pytest.raises(ValueError, match="smoothing"):
        CorridorReplanner(spec, smoothing=0)
    rp = CorridorReplanner(spec)
    with pytest.raises(ValueError, match="unknown intersection"):
        rp.update(0, {"nope": [1, 2]})
    with pytest.raises(ValueError, match="phases"):
        rp.update(0, {spec.intersections[0].id: [1.0] * 9})
    with pytest.raises(ValueError, match=">= 0"):
        rp.update(0, np.full((3, 4), -5.0))
