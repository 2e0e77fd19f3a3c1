"""Webster cycle and splits; corridor validation errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.greenwave.model import CorridorSpec
from brain.greenwave.webster import allocate_greens_s, corridor_cycle_s, corridor_greens_s, webster_cycle_s
from tests.greenwave.helpers import random_spec


def test_webster_textbook_values():
    # Webster (1958) C0 = (1.5 L + 5) / (1 - Y): L = 12 s, Y = 0.5 -> 46 s; L = 16, Y = 0.75 -> 116 s.
    assert webster_cycle_s(12.0, 0.5) == pytest.approx(46.0)
    assert webster_cycle_s(16.0, 0.75) == pytest.approx(116.0)
    assert webster_cycle_s(16.0, 0.97) == float("inf")


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), nph=st.integers(2, 6))
def test_greens_fill_the_cycle_and_respect_minimums(seed, nph):
    rng = np.random.default_rng(seed)
    clear = rng.uniform(3, 6, nph)
    mins = rng.uniform(5, 20, nph)
    y = rng.uniform(0.0, 0.5, nph)
    cycle = clear.sum() + mins.sum() + rng.uniform(0, 80)
    g = allocate_greens_s(cycle, clear, y, mins)
    assert g.sum() + clear.sum() == pytest.approx(cycle)
    assert np.all(g >= mins - 1e-9)
    # a phase above its minimum gets green in proportion to its flow ratio
    free = g > mins + 1e-9
    if free.sum() >= 2:
        ratio = g[free] / np.maximum(y[free], 1e-6)
        assert np.allclose(ratio, ratio[0], rtol=1e-6)


def test_impossible_minimum_greens_in_allocation():
    with pytest.raises(ValueError, match="impossible minimum greens"):
        allocate_greens_s(40.0, [5.0, 5.0], [0.3, 0.3], [20.0, 20.0])


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 8))
def test_corridor_cycle_within_bounds_and_covers_critical_intersection(seed, n):
    spec = random_spec(np.random.default_rng(seed), n)
    C = corridor_cycle_s(spec)
    assert spec.cycle_min_s <= C <= spec.cycle_max_s
    assert C >= max(it.min_cycle_s() for it in spec.intersections) - 1e-9
    for it, g in zip(spec.intersections, corridor_greens_s(spec, C)):
        assert g.sum() + it.lost_time_s() == pytest.approx(C)


def base(**over) -> dict:
    d = {"id": "X", "speed_out_kmh": 50, "speed_in_kmh": 50, "cycle_min_s": 60, "cycle_max_s": 120,
         "intersections": [
             {"id": "A", "position_m": 0, "phases": [
                 {"name": "EW", "min_green_s": 15, "coordinated": True},
                 {"name": "NS", "min_green_s": 15}]},
             {"id": "B", "position_m": 500, "phases": [
                 {"name": "EW", "min_green_s": 15, "coordinated": True},
                 {"name": "NS", "min_green_s": 15}]}]}
    d.update(over)
    return d


def test_valid_corridor_decodes():
    spec = CorridorSpec.from_json(json.dumps(base()))
    assert spec.travel_out_s()[1] == pytest.approx(36.0)
    assert spec.travel_in_s()[0] == pytest.approx(36.0)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["intersections"][1].update(position_m=-10), "strictly increasing"),
        (lambda d: d["intersections"][1].update(position_m=0), "strictly increasing"),
        (lambda d: d.update(speed_out_kmh=-30), "speed_out_kmh must be a positive speed"),
        (lambda d: d.update(speed_in_kmh=0), "speed_in_kmh must be a positive speed"),
        (lambda d: d["intersections"][0]["phases"][1].update(min_green_s=200), "impossible minimum greens"),
        (lambda d: d["intersections"][0]["phases"][1].update(ped_clearance_s=150), "impossible minimum greens"),
        (lambda d: d["intersections"][0]["phases"][0].update(coordinated=False), "exactly one phase"),
        (lambda d: d.update(cycle_min_s=130), "cycle bounds"),
        (lambda d: d.update(link_speed_out_kmh=[40, 40]), "one per link"),
        (lambda d: d.update(intersections=d["intersections"][:1]), "at least 2 intersections"),
        (lambda d: d.update(colour="red"), "unknown field"),
    ],
)
def test_invalid_corridors_get_clear_errors(change, message):
    d = base()
    change(d)
    with pytest.raises(ValueError, match=message):
        CorridorSpec.from_json(json.dumps(d))


def test_not_json():
    with pytest.raises(ValueError, match="not valid JSON"):
        CorridorSpec.from_json(b"{nope")
