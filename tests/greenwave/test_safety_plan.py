"""Plans from any corridor pass the safety checker; broken plans are caught."""
from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.greenwave.optimizer import optimize_corridor
from brain.greenwave.plan import to_ntcip
from brain.greenwave.safety import UnsafePlanError, assert_safe, check_plan
from tests.greenwave.helpers import random_spec


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 10), flows=st.booleans())
def test_every_plan_is_safe(seed, n, flows):
    spec = random_spec(np.random.default_rng(seed), n, with_flows=flows)
    plan = optimize_corridor(spec)
    assert check_plan(plan, spec) == []
    for it, sit in zip(plan.intersections, spec.intersections):
        assert it.cycle_s == pytest.approx(plan.cycle_s)
        for p, sp in zip(it.phases, sit.phases):
            assert p.green_s >= max(sp.min_green_s, sp.ped_clearance_s) - 1e-9
    assert spec.cycle_min_s <= plan.cycle_s <= spec.cycle_max_s


@pytest.fixture
def spec_plan():
    spec = random_spec(np.random.default_rng(11), 5)
    return spec, optimize_corridor(spec)


def test_short_green_is_caught(spec_plan):
    spec, plan = spec_plan
    bad = copy.deepcopy(plan)
    ph = bad.intersections[2].phases[1]
    ph.green_s = spec.intersections[2].phases[1].min_green_s - 1
    bad.intersections[2].phases[0].green_s += spec.intersections[2].phases[1].min_green_s  # keep the sum
    v = check_plan(bad, spec)
    assert any("below the minimum green" in x for x in v)
    with pytest.raises(UnsafePlanError):
        assert_safe(bad, spec)


def test_phases_not_summing_to_cycle_are_caught(spec_plan):
    spec, plan = spec_plan
    bad = copy.deepcopy(plan)
    bad.intersections[0].phases[0].green_s += 7
    assert any("sum to" in x for x in check_plan(bad, spec))


def test_cycle_out_of_bounds_is_caught(spec_plan):
    spec, plan = spec_plan
    bad = copy.deepcopy(plan)
    bad.cycle_s = spec.cycle_max_s + 30
    for it in bad.intersections:
        it.phases[0].green_s += 30
    assert any("outside" in x for x in check_plan(bad, spec))


def test_shortened_clearance_and_bad_offset_are_caught(spec_plan):
    spec, plan = spec_plan
    bad = copy.deepcopy(plan)
    bad.intersections[1].phases[0].yellow_s -= 1
    bad.intersections[1].phases[0].green_s += 1
    bad.intersections[3].offset_s = plan.cycle_s + 5
    v = check_plan(bad, spec)
    assert any("yellow/all-red" in x for x in v) and any("offset" in x for x in v)


def test_inflated_band_is_caught(spec_plan):
    spec, plan = spec_plan
    bad = copy.deepcopy(plan)
    bad.band_out_s += 5
    assert any("advertised bands" in x for x in check_plan(bad, spec))


def test_ntcip_rendering(spec_plan):
    spec, plan = spec_plan
    doc = to_ntcip(plan)
    assert len(doc["controllers"]) == spec.n
    for ctl, it in zip(doc["controllers"], plan.intersections):
        assert ctl["pattern"]["cycle_time"] == plan.cycle_s
        assert sum(s["time"] for s in ctl["split_table"]["splits"]) == pytest.approx(plan.cycle_s, abs=0.01)
        assert ctl["split_table"]["coord_phase"] in ctl["sequence"]
