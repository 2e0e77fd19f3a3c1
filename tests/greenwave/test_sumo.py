"""A short SUMO run: our plan stops arterial traffic less than all-zero offsets.

Skipped only when the ``sumo`` extra (eclipse-sumo, sumolib, traci) is not installed.
"""
from __future__ import annotations

import numpy as np
import pytest

sumo = pytest.importorskip("sumo", reason="SUMO not installed: pip install eclipse-sumo sumolib traci (the 'sumo' extra)")
pytest.importorskip("sumolib", reason="sumolib not installed (the 'sumo' extra)")

from bench.sumo_net.arterial import build_arterial, integer_timings, run, write_offsets, write_routes  # noqa: E402
from brain.greenwave.model import CorridorSpec, IntersectionSpec, PhaseSpec  # noqa: E402
from brain.greenwave.optimizer import optimize_corridor  # noqa: E402


def corridor() -> CorridorSpec:
    inters = [
        IntersectionSpec(id=f"J{i}", position_m=x, phases=[
            PhaseSpec(name="arterial", min_green_s=15, coordinated=True, flow_vph=450),
            PhaseSpec(name="side", min_green_s=12, ped_clearance_s=15, flow_vph=250),
        ])
        for i, x in enumerate([0.0, 430.0, 810.0, 1280.0])
    ]
    return CorridorSpec(id="t4", intersections=inters, speed_out_kmh=45, speed_in_kmh=45,
                        cycle_min_s=70, cycle_max_s=100, volume_out_vph=900, volume_in_vph=500)


@pytest.mark.timeout(240)
def test_our_plan_stops_the_coordinated_direction_less_than_zero_offsets(tmp_path):
    spec = corridor()
    plan = optimize_corridor(spec)
    greens = [np.array([g for g, _, _ in row]) for row in integer_timings(plan)]
    plan = optimize_corridor(spec, cycle_s=round(plan.cycle_s), greens_s=greens)
    art = build_arterial(spec, plan, tmp_path)
    routes = write_routes(art, tmp_path / "d.rou.xml", 900, 500, [250] * 4, 600)
    ours = run(art, routes, [write_offsets(art, plan.offsets_s(), tmp_path / "ours.add.xml")], 7, 900, "ours")
    zero = run(art, routes, [write_offsets(art, [0.0] * 4, tmp_path / "zero.add.xml")], 7, 900, "zero")
    assert len(ours["out"]["stops"]) > 100 and len(zero["out"]["stops"]) > 100  # the demand really ran
    assert np.mean(ours["out"]["stops"]) < np.mean(zero["out"]["stops"])
