"""The cycle choice's model (side-street waits of both approaches, their stops counted) and the
SUMO bench's own-cycle choice (bench/sumo_net/own_cycle.py)."""
from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.greenwave_sumo import default_corridor
from bench.sumo_net.own_cycle import candidates_s, own_cycle_plan, whole_second_greens
from brain.greenwave import delay as D
from brain.greenwave.optimizer import optimize_corridor
from brain.greenwave.webster import corridor_greens_s
from tests.greenwave.helpers import random_spec


@settings(max_examples=200, deadline=None)
@given(cycle=st.floats(30, 180), share=st.floats(0.05, 0.95), flow=st.floats(1, 1700), sat=st.floats(600, 2200))
def test_stopped_share_is_a_share_and_grows_with_the_red(cycle, share, flow, sat):
    s = D.side_stopped_share(cycle, share * cycle, flow, sat)
    assert 0.0 <= s <= 1.0
    # less green, more stops (never fewer)
    assert D.side_stopped_share(cycle, 0.5 * share * cycle, flow, sat) >= s - 1e-12


def _webster_weighted(spec, cycle, greens):
    # the figure before this change, written out: Webster only, one approach per side phase
    tot = veh = 0.0
    for it, g in zip(spec.intersections, greens):
        for k, p in enumerate(it.phases):
            if p.serves_out or p.serves_in or not p.flow_vph:
                continue
            tot += D.webster_delay_s(cycle, g[k], p.flow_vph, p.saturation_vph) * p.flow_vph
            veh += p.flow_vph
    return tot / veh, veh


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 8), approaches=st.integers(1, 3),
       loss=st.floats(0.0, 12.0))
def test_side_delay_is_webster_plus_the_stop_loss_over_every_approach(seed, n, approaches, loss):
    rng = np.random.default_rng(seed)
    spec = random_spec(rng, n)
    cycle = float(np.ceil(max(it.min_cycle_s() for it in spec.intersections))) + float(rng.uniform(0, 60))
    greens = corridor_greens_s(spec, cycle)
    base, base_veh = _webster_weighted(spec, cycle, greens)
    d0, veh0 = D.side_delay_s_per_veh(spec, cycle, greens, approaches=1, stop_loss_s=0.0)
    assert d0 == pytest.approx(base, rel=1e-12) and veh0 == pytest.approx(base_veh)
    d, veh = D.side_delay_s_per_veh(spec, cycle, greens, approaches=approaches, stop_loss_s=loss)
    assert veh == pytest.approx(approaches * base_veh)
    # every side vehicle's stop costs at most `loss` more (share <= 1) and at least nothing
    assert d0 - 1e-9 <= d <= d0 + loss + 1e-9


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 6), longer=st.floats(1.05, 2.5))
def test_side_waits_grow_with_the_cycle_at_the_same_green_shares(seed, n, longer):
    # what makes a longer cycle cost the side streets: the same shares of a longer cycle
    rng = np.random.default_rng(seed)
    spec = random_spec(rng, n)
    cycle = float(np.ceil(max(it.min_cycle_s() for it in spec.intersections))) + float(rng.uniform(0, 40))
    greens = corridor_greens_s(spec, cycle)
    d1, _ = D.side_delay_s_per_veh(spec, cycle, greens)
    d2, _ = D.side_delay_s_per_veh(spec, cycle * longer, [g * longer for g in greens])
    assert d2 >= d1 - 1e-9


def test_cycle_figure_counts_side_vehicles_once_with_both_their_waits():
    # the all-vehicle figure is the vehicle-weighted mean of the arterial (platoon model +
    # overflow, joins included) and side parts, over arterial through + side vehicles
    spec, *_ = default_corridor(8, seed=31, cycle_s=None)
    cycle = 70.0
    greens = corridor_greens_s(spec, cycle)
    v_out, v_in = D.arterial_volumes_vph(spec)
    art_veh = v_out + v_in + sum(spec.join_out_vph) + sum(spec.join_in_vph)
    res = D.delay_offsets(spec, cycle, greens, sweeps=1, step_s=4.0)
    art_d = res.delay_s_per_veh + D._overflow_s(spec, cycle, greens)
    side_d, side_veh = D.side_delay_s_per_veh(spec, cycle, greens)
    assert side_veh == pytest.approx(D.SIDE_APPROACHES * sum(it.phases[1].flow_vph for it in spec.intersections))
    want = (art_d * art_veh + side_d * side_veh) / (v_out + v_in + side_veh)
    assert D.cycle_delay_s(spec, cycle, greens) == pytest.approx(want)


def test_own_cycle_is_the_least_modelled_candidate_within_the_bounds():
    spec, *_ = default_corridor(8, seed=77, cycle_s=60.0)
    spec.cycle_min_s = 40.0
    ch = own_cycle_plan(spec)
    cands = candidates_s(spec)
    assert set(ch.modelled_s) == set(cands) and all(40.0 <= c <= spec.cycle_max_s for c in cands)
    assert ch.cycle_s == min(cands, key=lambda c: ch.modelled_s[c])
    # the splits are the whole-second Webster splits at that cycle (from the side lanes' effective
    # saturation), the same splits the baselines get at ours' cycle
    for got, want in zip(ch.greens_s, whole_second_greens(msgspec.structs.replace(spec, cycle_s=None), ch.cycle_s)):
        np.testing.assert_array_equal(got, want)
    for it, g in zip(ch.plan.intersections, ch.greens_s):
        assert sum(p.green_s + p.yellow_s + p.all_red_s for p in it.phases) == pytest.approx(ch.cycle_s)
        np.testing.assert_array_equal([p.green_s for p in it.phases], g)
    assert ch.plan_cpu_ms > 0


def test_planner_default_picks_the_same_cycle_as_the_bench_mode():
    # optimize_corridor without a cycle (bounds given) makes the same choice the bench's own-cycle mode shows
    spec, *_ = default_corridor(12, seed=5, cycle_s=None)
    spec.cycle_min_s = 40.0
    ch = own_cycle_plan(spec)
    assert optimize_corridor(spec).cycle_s == ch.cycle_s
    assert not math.isinf(ch.modelled_s[ch.cycle_s])
