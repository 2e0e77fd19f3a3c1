"""Side streets whose joining traffic turns left on a permissive green from one shared lane.

On a side street with a single lane per approach, a vehicle turning left onto the arterial on a
permissive green waits for a gap in the opposing side flow, and every through vehicle behind it
waits too. The lane then discharges well below its nominal saturation flow: the Highway Capacity
Manual's shared-lane permissive-left factor ``f_LT = 1 / (1 + P_L (E_L - 1))``, with ``P_L`` the
left-turning share of the lane and ``E_L`` the through-car equivalents of one left turner, which
grows with the opposing flow ``v_o``: here ``E_L = 1 + v_o / LEFT_OPPOSING_VPH``.

Why it matters (issue 15): on the SUMO bench (single-lane side streets, joins turning left) the
side streets carry two thirds of the vehicles, and at Webster's splits from the nominal 1800 veh/h
they waited 38 s in SUMO against 25 s modelled (corridor sumo-12-s1012 at 60 s); four more seconds
of side green cut all-vehicle delay by 19 %. With this factor the model's side wait follows SUMO's
across side greens +0/+4/+8/+12 s (36/25/19/15 s modelled vs 38/23/17/13 s in SUMO), and
Webster's splits computed from the effective saturation give the side street its due.

:func:`with_effective_side_saturation` returns the corridor with each non-coordinated phase's
``saturation_vph`` replaced by the shared lane's, when the corridor says its joins turn left
permissively (``CorridorSpec.joins_permissive_left``); the planner applies it before choosing the
cycle, the splits and the offsets. Per phase the critical approach is used (the one carrying the
larger join: its ``flow_vph`` is the phase's), opposed by the other approach (through + its join).

Example:
    >>> round(left_equivalent(300.0), 2)
    3.0
    >>> round(shared_lane_saturation_vph(1800.0, flow_vph=300.0, left_vph=100.0, opposing_vph=300.0))
    1080
    >>> shared_lane_saturation_vph(1800.0, flow_vph=300.0, left_vph=0.0, opposing_vph=300.0)
    1800.0
"""
from __future__ import annotations

import msgspec

from brain.greenwave.model import CorridorSpec

#: Opposing flow (veh/h) that adds one through-car equivalent to a permissive left turner.
#: Fitted on one SUMO corridor (sumo-12-s1012, side greens +0 to +12 s at a 60 s cycle: 1/100,
#: 1/150, 1/200, 1/250 and constants 2-4 tried; 150 followed SUMO's side waits best) and checked
#: on another (notes of issue 15); never fitted on the held-out corridors of the final tables.
LEFT_OPPOSING_VPH = 150.0


def left_equivalent(opposing_vph: float) -> float:
    """Through-car equivalents of one permissive left turner against ``opposing_vph`` veh/h."""
    return 1.0 + max(opposing_vph, 0.0) / LEFT_OPPOSING_VPH


def shared_lane_saturation_vph(saturation_vph: float, *, flow_vph: float, left_vph: float,
                               opposing_vph: float) -> float:
    """A shared lane's saturation flow (veh/h) when ``left_vph`` of its ``flow_vph`` turn left on
    a permissive green against ``opposing_vph``: ``saturation_vph / (1 + P_L (E_L - 1))``."""
    if flow_vph <= 0.0 or left_vph <= 0.0:
        return float(saturation_vph)
    share = min(left_vph / flow_vph, 1.0)
    return float(saturation_vph) / (1.0 + share * (left_equivalent(opposing_vph) - 1.0))


def with_effective_side_saturation(spec: CorridorSpec) -> CorridorSpec:
    """``spec`` with its non-coordinated phases' saturation flows lowered for permissive lefts
    (a copy; ``spec`` itself when ``joins_permissive_left`` is off or no joins are given)."""
    if not spec.joins_permissive_left or (not spec.join_out_vph and not spec.join_in_vph):
        return spec
    n = spec.n
    jo = spec.join_out_vph or [0.0] * n
    ji = spec.join_in_vph or [0.0] * n
    inters = []
    for i, it in enumerate(spec.intersections):
        left, other = max(jo[i], ji[i]), min(jo[i], ji[i])
        phases = []
        for p in it.phases:
            if p.serves_out or p.serves_in or not p.flow_vph or left <= 0.0:
                phases.append(p)
                continue
            through = max(p.flow_vph - left, 0.0)
            sat = shared_lane_saturation_vph(p.saturation_vph, flow_vph=p.flow_vph, left_vph=left,
                                             opposing_vph=through + other)
            phases.append(msgspec.structs.replace(p, saturation_vph=sat))
        inters.append(msgspec.structs.replace(it, phases=phases))
    # only the saturation flows change: joins_permissive_left off so it is never applied twice
    return msgspec.structs.replace(spec, intersections=inters, joins_permissive_left=False)
