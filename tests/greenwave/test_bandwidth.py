"""The bandwidth kernel: equal to its plain-Python reference, to the MAXBAND MILP, and honest."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.greenwave.milp import maxband_milp
from brain.kernels.bandwidth import (
    band_of_offsets,
    band_of_offsets_reference,
    max_bandwidth,
    max_bandwidth_reference,
)
from tests.greenwave.helpers import random_problem


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 12))
def test_kernel_equals_reference(seed, n):
    args = random_problem(np.random.default_rng(seed), n)
    bands, starts = max_bandwidth(*args)
    rb, rs = max_bandwidth_reference(*args)
    np.testing.assert_allclose(bands, rb, atol=1e-9)
    np.testing.assert_allclose(starts, rs, atol=1e-9)


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 12))
def test_band_of_offsets_equals_reference(seed, n):
    rng = np.random.default_rng(seed)
    C, go, gi, d, t_out, t_in, _, _ = random_problem(rng, n)
    starts = rng.uniform(0, C, n)
    np.testing.assert_allclose(band_of_offsets(C, go, gi, d, t_out, t_in, starts),
                               band_of_offsets_reference(C, go, gi, d, t_out, t_in, starts), atol=1e-9)


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 12))
def test_offsets_really_give_the_bands(seed, n):
    # Measured from the returned offsets alone: the promised bands exist.
    C, go, gi, d, t_out, t_in, wo, wi = args = random_problem(np.random.default_rng(seed), n)
    bands, starts = max_bandwidth(*args)
    got = band_of_offsets(C, go, gi, d, t_out, t_in, starts)
    assert got[0] >= bands[0] - 1e-6
    assert got[1] >= bands[1] - 1e-6
    assert bands[0] <= go.min() + 1e-9 and bands[1] <= gi.min() + 1e-9


@pytest.mark.parametrize("n", [3, 4, 5, 6, 8])
def test_equals_milp_optimum(n):
    rng = np.random.default_rng(1000 + n)
    checked = 0
    for _ in range(12):
        args = random_problem(rng, n)
        bands, _ = max_bandwidth(*args)
        ref = maxband_milp(*args)
        if ref["status"] == "infeasible":
            assert bands[4] < 0  # the kernel also finds no common window
            continue
        assert ref["status"] == "optimal"
        wo, wi = args[6], args[7]
        ours = wo * bands[0] + wi * bands[1]
        assert ours == pytest.approx(ref["objective"], rel=0.01, abs=1e-6)
        checked += 1
    assert checked >= 8


def test_half_cycle_spacing_gives_full_greens_both_ways():
    # Textbook case: 50/50 splits, links crossed in exactly half a cycle -> alternate offsets,
    # both bands as wide as the green.
    C, n = 80.0, 5
    g = np.full(n, 36.0)
    t_out = np.arange(n) * C / 2
    t_in = t_out[::-1].copy()
    bands, starts = max_bandwidth(C, g, g, np.zeros(n), t_out, t_in, 1.0, 1.0)
    assert bands[0] == pytest.approx(36.0) and bands[1] == pytest.approx(36.0)
    rel = np.mod(starts - starts[0], C)
    np.testing.assert_allclose(rel, [0, 40, 0, 40, 0], atol=1e-6)


def test_demand_weighting_favours_the_heavier_direction():
    rng = np.random.default_rng(7)
    C, go, gi, d, t_out, t_in, _, _ = random_problem(rng, 6, symmetric=True)
    heavy_out, _ = max_bandwidth(C, go, gi, d, t_out, t_in, 1.0, 0.3)
    heavy_in, _ = max_bandwidth(C, go, gi, d, t_out, t_in, 0.3, 1.0)
    assert heavy_out[0] >= heavy_out[1] - 1e-9
    assert heavy_in[1] >= heavy_in[0] - 1e-9
    # MAXBAND's target: the lighter band is at least k times the heavier
    assert heavy_out[1] >= 0.3 * heavy_out[0] - 1e-9


def test_one_way_street_gets_the_full_minimum_green():
    C, n = 90.0, 6
    rng = np.random.default_rng(3)
    go = rng.uniform(30, 60, n)
    t_out = np.cumsum(rng.uniform(10, 60, n)) - 10
    args = (C, go, go, np.zeros(n), t_out, t_out[::-1].copy())
    bands, starts = max_bandwidth(*args, 1.0, 0.0)
    assert bands[0] == pytest.approx(go.min()) and bands[1] == 0.0
    assert band_of_offsets(*args, starts)[0] >= go.min() - 1e-6
    assert maxband_milp(*args, 1.0, 0.0)["b_out_s"] == pytest.approx(go.min(), rel=1e-6)
    bands, starts = max_bandwidth(*args, 0.0, 1.0)
    assert bands[1] == pytest.approx(go.min()) and bands[0] == 0.0
    assert band_of_offsets(*args, starts)[1] >= go.min() - 1e-6


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 10))
def test_refinement_keeps_the_bands_and_matches_reference(seed, n):
    from brain.kernels.bandwidth import progression_score

    C, go, gi, d, t_out, t_in, wo, wi = args = random_problem(np.random.default_rng(seed), n)
    plain, s0 = max_bandwidth(*args)
    refined, s1 = max_bandwidth(*args, 3)
    rb, rs = max_bandwidth_reference(*args, 3)
    np.testing.assert_allclose(refined, rb, atol=1e-9)
    np.testing.assert_allclose(s1, rs, atol=1e-9)
    np.testing.assert_allclose(refined, plain, atol=1e-12)  # same bands...
    got = band_of_offsets(C, go, gi, d, t_out, t_in, s1)
    assert got[0] >= refined[0] - 1e-6 and got[1] >= refined[1] - 1e-6  # ...really there

    def score(starts):
        c = np.mod(starts + d - t_in, C) / C  # back to the inbound-frame green starts
        return progression_score(c, go / C, gi / C, d / C, t_out / C, t_in / C, wo, wi)

    assert score(s1) >= score(s0) - 1e-9  # the refinement never scores worse than the middles
