"""Side lanes shared by permissive left turners (brain/greenwave/side_streets.py) and how the
planner uses them: the cycle, the splits and the side-street model see the lane's real saturation."""
from __future__ import annotations

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.greenwave_sumo import default_corridor
from brain.greenwave import delay as D
from brain.greenwave.optimizer import optimize_corridor
from brain.greenwave.side_streets import (LEFT_OPPOSING_VPH, left_equivalent, shared_lane_saturation_vph,
                                          with_effective_side_saturation)
from brain.greenwave.webster import corridor_greens_s

flows = st.floats(1.0, 1500.0)


@settings(max_examples=300, deadline=None)
@given(sat=st.floats(600, 2400), flow=flows, left_share=st.floats(0.0, 1.0), opposing=st.floats(0, 1500),
       more=st.floats(0, 500))
def test_shared_lane_saturation_falls_with_left_share_and_opposing_flow(sat, flow, left_share, opposing, more):
    left = left_share * flow
    s = shared_lane_saturation_vph(sat, flow_vph=flow, left_vph=left, opposing_vph=opposing)
    assert 0.0 < s <= sat + 1e-9
    # the HCM factor written out: one left turner takes E_L through cars' time
    want = sat / (1.0 + left_share * (1.0 + opposing / LEFT_OPPOSING_VPH - 1.0))
    assert s == pytest.approx(want, rel=1e-9)
    # more opposing traffic or more of the lane turning left: never a higher saturation flow
    assert shared_lane_saturation_vph(sat, flow_vph=flow, left_vph=left, opposing_vph=opposing + more) <= s + 1e-9
    more_left = min(flow, left + more)
    assert shared_lane_saturation_vph(sat, flow_vph=flow, left_vph=more_left, opposing_vph=opposing) <= s + 1e-9
    # a left turner never costs less than a through car
    assert left_equivalent(opposing) >= 1.0


@settings(max_examples=20, deadline=None)
@given(n=st.integers(3, 10), seed=st.integers(0, 10_000))
def test_only_side_saturation_changes_and_never_twice(n, seed):
    spec, side, turns_out, turns_in = default_corridor(n, seed, cycle_s=None)
    assert spec.joins_permissive_left
    eff = with_effective_side_saturation(spec)
    assert not eff.joins_permissive_left and with_effective_side_saturation(eff) is eff
    for i, (a, b) in enumerate(zip(spec.intersections, eff.intersections)):
        art_a, side_a = a.phases
        art_b, side_b = b.phases
        assert art_b == art_a  # the arterial's lanes carry no permissive lefts
        assert msgspec.structs.replace(side_b, saturation_vph=side_a.saturation_vph) == side_a
        left = max(spec.join_out_vph[i], spec.join_in_vph[i])
        if left > 0:
            # the critical approach: its own join turns left against the other approach's through + join
            through = side_a.flow_vph - left
            opposing = through + min(spec.join_out_vph[i], spec.join_in_vph[i])
            assert side_b.saturation_vph == pytest.approx(
                side_a.saturation_vph / (1 + left / side_a.flow_vph * opposing / LEFT_OPPOSING_VPH))
            assert side_b.saturation_vph < side_a.saturation_vph
    # off: the very same corridor object (every other corridor plans exactly as before)
    off = msgspec.structs.replace(spec, joins_permissive_left=False)
    assert with_effective_side_saturation(off) is off


def test_planner_gives_side_streets_more_green_and_models_their_longer_waits():
    spec, *_ = default_corridor(12, seed=1012, cycle_s=60.0)
    nominal = msgspec.structs.replace(spec, joins_permissive_left=False)
    with_lefts = optimize_corridor(spec)
    without = optimize_corridor(nominal)
    g_with = np.array([it.phases[1].green_s for it in with_lefts.intersections])
    g_without = np.array([it.phases[1].green_s for it in without.intersections])
    # every side street gets at least as much green, and in sum clearly more (SUMO: 38 s waits at
    # the nominal splits on this corridor, 20 s at these)
    assert (g_with >= g_without - 1e-9).all() and g_with.sum() > g_without.sum() + 2 * spec.n
    # at the same splits, the model's side wait is longer with the shared lanes' saturation
    greens = corridor_greens_s(nominal, 60.0)
    eff = with_effective_side_saturation(spec)
    assert D.side_delay_s_per_veh(eff, 60.0, greens)[0] > D.side_delay_s_per_veh(nominal, 60.0, greens)[0] + 3.0
    # the plan document says nothing new: only the greens differ, the cycle is the corridor's
    assert with_lefts.cycle_s == without.cycle_s == 60.0


def test_corridor_json_round_trips_the_flag():
    spec, *_ = default_corridor(4, seed=3, cycle_s=60.0)
    back = type(spec).from_json(spec.to_json())
    assert back.joins_permissive_left is True
    assert type(spec).from_json(msgspec.json.encode(msgspec.structs.replace(spec, joins_permissive_left=False))
                                ).joins_permissive_left is False
