"""一键护航 in SUMO: the escort's windows, through signed requests to emulated controllers that drive
SUMO's signals via TraCI, take the red-light wait off an ambulance with special rights.

Skipped only when the ``sumo`` extra (eclipse-sumo, sumolib, traci) is not installed.
"""
from __future__ import annotations

import pytest

pytest.importorskip("sumo", reason="SUMO not installed: pip install eclipse-sumo sumolib traci (the 'sumo' extra)")
pytest.importorskip("traci", reason="traci not installed (the 'sumo' extra)")

from bench.greenwave_sumo import ARTERIAL_KMH, default_corridor, shared_timing  # noqa: E402
from bench.sumo_net.arterial import build_arterial, write_offsets  # noqa: E402
from bench.sumo_net.escort_sumo import run_escort  # noqa: E402
from brain.greenwave.optimizer import optimize_corridor  # noqa: E402


@pytest.mark.timeout(400)
def test_priority_through_controllers_clears_the_ambulances_reds(tmp_path):
    spec, side, turns_out, turns_in = default_corridor(5, 11)
    C, greens = shared_timing(spec)
    art = build_arterial(spec, optimize_corridor(spec, cycle_s=C, greens_s=greens, objective="bandwidth"), tmp_path,
                         arterial_kmh=ARTERIAL_KMH)
    plan = optimize_corridor(spec, cycle_s=C, greens_s=greens)
    add = write_offsets(art, plan.offsets_s(), tmp_path / "ours.add.xml")
    args = (spec, art, plan, add, side, turns_out, turns_in, 2, 330.0)
    plain = run_escort(*args, priority=False, special_rights=True)
    prio = run_escort(*args, priority=True, special_rights=True)
    assert plain["red_wait_s"] > 5.0  # the case is not vacuous: without priority the ambulance meets reds
    assert prio["red_wait_s"] < plain["red_wait_s"] and prio["travel_s"] < plain["travel_s"]
    # every signal got its request through the hub, applied by its controller and released after
    assert prio["applied"] >= spec.n - 1 and prio["refused"] == 0 and prio["released"] == spec.n
    assert prio["cross_green_max_s"] <= 30.0 + 1e-6
