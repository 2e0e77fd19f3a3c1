"""Emergency preemption (``recover=True``): the served phase's own slack pays too, the plan is back
by the end of the next served green, and nothing breaks the safety limits a controller checks."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from brain.greenwave.limits import DEFAULT_LIMITS
from brain.greenwave.model import CorridorSpec, IntersectionSpec, PhaseSpec
from brain.greenwave.optimizer import optimize_corridor
from brain.greenwave.priority import EmergencyPriority, green_window
from streams.controllers.priority import greens_problems
from tests.greenwave.helpers import random_spec


def floor_of(sp) -> float:
    L = DEFAULT_LIMITS
    return max(sp.min_green_s, sp.ped_clearance_s, L.green_min_s, L.ped_walk_min_s if sp.ped_clearance_s > 0 else 0.0)


def tight_corridor() -> tuple[CorridorSpec, object]:
    """Side phases at their floor (15 s): a cycle-keeping priority has nothing to take."""
    ph = [PhaseSpec(name="EW", min_green_s=15, coordinated=True, green_s=35),
          PhaseSpec(name="NS", min_green_s=12, ped_clearance_s=15, green_s=15)]
    spec = CorridorSpec(id="T", cycle_s=60, intersections=[IntersectionSpec(id="A", position_m=0, phases=ph),
                                                         IntersectionSpec(id="B", position_m=500, phases=ph)])
    return spec, optimize_corridor(spec)


def test_side_phase_at_its_floor_only_preemption_holds_the_green():
    spec, plan = tight_corridor()
    it = plan.intersections[0]
    end = it.offset_s + it.phases[0].green_s + 10 * plan.cycle_s  # a planned end of A's arterial green
    arrive = end + 6.0  # 6 s into the red
    keep = green_window(plan, spec, 0, "out", arrive, 6.0, 4.0, 30.0, now_s=arrive - 40)
    assert keep[0] == "partial" and keep[3] == pytest.approx(0.0)  # nothing above the floor to take
    action, h0, h1, cost, greens = green_window(plan, spec, 0, "out", arrive, 6.0, 4.0, 30.0, now_s=arrive - 40,
                                                recover=True)
    assert action == "extend" and cost == pytest.approx(10.0)  # held to arrival + 4 s
    assert h1 == pytest.approx(arrive + 4.0)
    # the side phase keeps its 15 s, only later; the next arterial green starts 10 s late, ends as planned
    (p1, a1, b1), (p2, a2, b2), (p3, a3, b3) = greens
    assert (p1, p2, p3) == (1.0, 2.0, 1.0)
    assert b2 - a2 == pytest.approx(15.0)
    assert b3 == pytest.approx(end + plan.cycle_s)
    assert b3 - a3 == pytest.approx(35.0 - 10.0)
    assert greens_problems(greens) == []


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), arrive=st.floats(0, 2000), cap=st.floats(0, 60),
       lead=st.floats(0, 120), direction=st.sampled_from(["out", "in"]))
def test_preemption_invariants(seed, arrive, cap, lead, direction):
    rng = np.random.default_rng(seed)
    spec = random_spec(rng, 3)
    plan = optimize_corridor(spec)
    i = int(rng.integers(0, 3))
    now = arrive - lead
    plain = green_window(plan, spec, i, direction, arrive, 4.0, 3.0, cap, now_s=now)
    action, h0, h1, cost, greens = green_window(plan, spec, i, direction, arrive, 4.0, 3.0, cap, now_s=now, recover=True)
    assert cost <= cap + 1e-6
    if plain[0] in ("extend", "early"):  # more room never does worse
        assert action in ("extend", "early") and cost <= plain[3] + 1e-6
    if action == "none":
        assert greens == []
        return
    it, sit = plan.intersections[i], spec.intersections[i]
    k = sit.phase_index(direction)
    number = it.phases[k].number
    by_number = {p.number: (p, sp) for p, sp in zip(it.phases, sit.phases)}
    # every green at or above its floor, each followed by its own yellow + all-red, what a controller checks
    for (p, a, b), nxt in zip(greens, greens[1:] + [None]):
        ph, sp = by_number[int(p)]
        assert b - a >= floor_of(sp) - 1e-6
        if nxt is not None:
            assert nxt[1] - b == pytest.approx(ph.yellow_s + ph.all_red_s)
    assert greens_problems(greens) == []
    # nothing shortened so that it ends before the request was made
    for p, a, b in greens:
        if b - a < by_number[int(p)][0].green_s - 1e-6:
            assert b >= now - 1e-6
    # back on the plan: the last served green ends where a planned one ends
    start0 = it.offset_s + it.phase_start_s(k)
    C, g = plan.cycle_s, it.phases[k].green_s
    served = [x for x in greens if int(x[0]) == number]
    d = (served[-1][2] - g - start0) % C
    if int(greens[-1][0]) == number:
        assert min(d, C - d) < 1e-6
    else:  # ends with the other phases: the next served green starts on its planned time
        p_last = by_number[int(greens[-1][0])][0]
        d = (greens[-1][2] + p_last.yellow_s + p_last.all_red_s - start0) % C
        assert min(d, C - d) < 1e-6
    if action in ("extend", "early"):
        assert any(a - 1e-6 <= arrive - 4.0 and arrive + 3.0 <= b + 1e-6 for _, a, b in served)


def test_escort_with_preemption_restores_every_signal():
    spec, plan = tight_corridor()
    ev = EmergencyPriority(spec, plan, ["A", "B"], vehicle_id="AMB-1", recover=True)
    t, x = 1000.0, -400.0
    while x < 600:
        ev.update(t, x, 50.0)
        t, x = t + 1.0, x + 50 / 3.6
    assert [r.intersection for r in ev.log if r.action == "restore"] == ["A", "B"]
    assert all(not r.phase_greens or greens_problems(r.phase_greens) == [] for r in ev.log)
    assert {r.action for r in ev.log} <= {"none", "extend", "early", "partial", "restore"}
