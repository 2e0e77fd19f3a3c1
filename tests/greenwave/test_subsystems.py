"""Subsystem cuts of a long corridor: valid cuts, never worse (in the model) than the single band,
figures that are the plan's own, and a cut where the geometry breaks the wave."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.greenwave.band import band_problem
from brain.greenwave.delay import delay_offsets, delay_params
from brain.greenwave.subsystems import MIN_SUBSYSTEM, _objective, split_subsystems
from brain.kernels import platoon as K
from tests.greenwave.test_platoon import corridor


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 18), bound=st.sampled_from([1e9, 3.0]))
def test_cuts_are_valid_and_never_worse_than_the_single_band(seed, n, bound):
    spec = corridor(n, seed)
    greens = [np.array([33.0, 17.0])] * n
    nb, bin_s, prm = delay_params(spec, 60.0, greens)
    res = split_subsystems(nb, bin_s, prm, band_problem(spec, 60.0, greens).args(), bound, 6.0)
    assert res.objective <= res.single_objective + 1e-9
    edges = [0] + res.cuts + [n]
    assert res.cuts == sorted(set(res.cuts))
    if res.cuts:                                                                 # no subsystem too short
        assert all(b - a >= MIN_SUBSYSTEM for a, b in zip(edges[:-1], edges[1:]))
    assert res.objective == pytest.approx(_objective(nb, res.u, prm, bound, 6.0))  # the plan's own figure
    assert res.u.shape == (n,) and ((0 <= res.u) & (res.u < nb)).all()
    if not res.cuts:
        assert res.objective == pytest.approx(res.single_objective)


def test_a_wave_broken_in_the_middle_is_cut_there():
    # two stretches of 6 signals spaced at half a cycle per link (each a perfect two-way band on
    # its own) joined by a link of three quarters of a cycle: one band over both is half as wide,
    # a cut at the join is not. The cut must fall at the join (signal 6), give or take one signal.
    nb, n = 60, 12
    prm = K.example_params(n, nb=nb)
    links = np.array([30.0] * 5 + [45.0] + [30.0] * 5)
    prm[K.P_LINK_OUT, :-1] = links
    prm[K.P_LINK_IN, 1:] = links
    g = np.full(n, 30.0)
    t = np.concatenate([[0.0], np.cumsum(links)])
    res = split_subsystems(nb, 1.0, prm, (60.0, g, g, np.zeros(n), t, -t, 1.0, 0.6), 1e9, 6.0)
    assert res.cuts and any(abs(c - 6) <= 1 for c in res.cuts)
    assert res.objective < 0.95 * res.single_objective


def test_long_corridor_plan_reports_its_cuts():
    spec = corridor(30, 63456)
    greens = [np.array([33.0, 17.0])] * 30
    res = delay_offsets(spec, 60.0, greens)
    off = delay_offsets(spec, 60.0, greens, split=False)
    if "subsystems" in res.start:
        assert res.cuts and all(spec.intersections[c].id in res.start for c in res.cuts)
    else:
        assert res.cuts == []
    # a cut start only enters the race: the chosen plan is never worse than the best coarse start
    assert res.delay_s_per_veh <= res.maxband_delay_s_per_veh + 1e-9
    assert off.cuts == []
