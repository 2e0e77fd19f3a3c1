"""Corridor plan: Webster cycle and splits, then offsets by modelled delay from the MAXBAND optimum.

:func:`optimize_corridor` is the whole pipeline for one corridor: common cycle (Webster at the
critical intersection, within the corridor's bounds, unless fixed), splits from critical flow
ratios (never below a phase's minimum), offsets from the MAXBAND optimum found by the numba
kernel :func:`brain.kernels.bandwidth.max_bandwidth`, then moved by the platoon delay model
(:mod:`brain.greenwave.delay`; ``objective="bandwidth"`` stops at MAXBAND), and the safety check
(:func:`brain.greenwave.safety.assert_safe`) before the plan is returned.

Example:
    >>> from brain.greenwave.model import CorridorSpec, IntersectionSpec, PhaseSpec
    >>> def inter(i, x):
    ...     return IntersectionSpec(id=i, position_m=x, phases=[
    ...         PhaseSpec(name="EW", min_green_s=15, coordinated=True, flow_vph=700),
    ...         PhaseSpec(name="NS", min_green_s=15, flow_vph=400)])
    >>> spec = CorridorSpec(id="C1", intersections=[inter("A", 0), inter("B", 450), inter("C", 800)])
    >>> plan = optimize_corridor(spec)
    >>> plan.cycle_s, plan.intersections[0].offset_s
    (60.0, 0.0)
    >>> plan.band_out_s > 0 and plan.band_in_s > 0
    True
"""
from __future__ import annotations

import hashlib
from typing import Literal

import msgspec
import numpy as np

from brain.greenwave.band import BandProblem, band_problem, demand_weights  # noqa: F401 (re-exported)
from brain.greenwave.delay import choose_cycle_s, delay_offsets
from brain.greenwave.model import CorridorSpec
from brain.greenwave.plan import IntersectionTiming, PhaseTiming, Plan
from brain.greenwave.limits import cycle_limit_violations
from brain.greenwave.safety import UnsafePlanError, assert_safe
from brain.greenwave.side_streets import with_effective_side_saturation
from brain.greenwave.webster import corridor_cycle_s, corridor_greens_s
from brain.kernels.bandwidth import band_of_offsets, max_bandwidth

Objective = Literal["delay", "bandwidth"]


#: Cycles the delay objective compares when the corridor gives bounds (s): Webster's own cycle
#: and those of these above it within the bounds (a longer cycle can buy better progression).
#: 45-55 s matter only where the bounds allow cycles under 60 s (side streets wait less).
CYCLE_CANDIDATES = (45.0, 50.0, 55.0, 60.0, 70.0, 80.0, 90.0, 100.0, 120.0, 150.0)


def _delay_cycle_s(spec: CorridorSpec, webster_s: float) -> float:
    need = max(it.min_cycle_s() for it in spec.intersections)
    # never below Webster's cycle: the fluid model undercounts random overflow at short cycles
    cands = sorted({webster_s} | {c for c in CYCLE_CANDIDATES
                                  if webster_s < c <= spec.cycle_max_s and c >= need})
    cycle, _ = choose_cycle_s(spec, cands, lambda c: corridor_greens_s(spec, c))
    return cycle


def _plan_id(spec: CorridorSpec, body: bytes) -> str:
    return f"{spec.id}-{hashlib.sha1(body).hexdigest()[:10]}"


def optimize_corridor(spec: CorridorSpec, *, valid_from_ms: int | None = None, plan_id: str | None = None,
                      cycle_s: float | None = None, greens_s: list[np.ndarray] | None = None,
                      refine_sweeps: int = 0, objective: Objective = "delay", choose_cycle: bool = True,
                      warm_start: Plan | None = None) -> Plan:
    """The corridor's plan (checked safe). ``cycle_s``/``greens_s`` override Webster when given.

    ``objective="delay"`` (the default) places the offsets by the platoon delay model
    (:func:`brain.greenwave.delay.delay_offsets`) starting from the MAXBAND optima, and when the
    corridor has cycle bounds instead of a fixed cycle it also picks the cycle among
    :data:`CYCLE_CANDIDATES` in the bounds by modelled all-vehicle delay; ``"bandwidth"`` keeps
    the MAXBAND optimum, with ``refine_sweeps`` > 0 re-placing the greens within the max-band
    ranges by the progression score. ``choose_cycle=False`` keeps Webster's cycle (what a live
    re-planner wants: the cycle then follows the flows smoothly instead of jumping between
    candidates of nearly equal modelled delay). ``warm_start`` (the plan in force, same
    intersections) seeds the offset search with its offsets instead of the cold starts
    (:func:`brain.greenwave.delay.delay_offsets`'s ``warm_start_s``): what a re-planner does.
    """
    if objective not in ("delay", "bandwidth"):
        raise ValueError(f"objective must be 'delay' or 'bandwidth', got {objective!r}")
    # joins turning left on a permissive green from one shared side lane block its through
    # vehicles: cycle, splits and the side-street model all see the lane's real saturation flow
    spec = with_effective_side_saturation(spec)
    if cycle_s is not None:
        cycle = float(cycle_s)
    else:
        cycle = corridor_cycle_s(spec)
        if objective == "delay" and choose_cycle and greens_s is None and spec.fixed_cycle_s() is None:
            cycle = _delay_cycle_s(spec, cycle)
    # An absurd cycle (a fixed 100,000 s) is refused before planning: the delay model's work grows
    # with the cycle, so checked only at the end it kept the planner busy for minutes first.
    early = cycle_limit_violations(cycle, fixed_s=spec.cycle_s, bounds_s=(spec.cycle_min_s, spec.cycle_max_s))
    if early:
        raise UnsafePlanError(early)
    greens = greens_s if greens_s is not None else corridor_greens_s(spec, cycle)
    prob = band_problem(spec, cycle, greens)
    bands, starts = max_bandwidth(*prob.args(), refine_sweeps)
    method = "maxband-numba"
    if objective == "delay":
        warm = None
        if warm_start is not None and len(warm_start.intersections) == spec.n:
            # outbound coordinated green starts of the plan in force (s, on its own clock)
            warm = [it.offset_s + it.phase_start_s(spec.intersections[i].phase_index("out"))
                    for i, it in enumerate(warm_start.intersections)]
        res = delay_offsets(spec, cycle, greens, warm_start_s=warm)
        starts = res.green_start_s.astype(np.float64)
        # what these offsets really give: the plan never advertises more than it delivers
        got = band_of_offsets(cycle, prob.green_out_s, prob.green_in_s, prob.in_shift_s,
                              prob.travel_out_s, prob.travel_in_s, starts)
        bands = np.array([got[0], got[1], got[2], got[3], bands[4]])
        method = f"delay-platoon: {res.start}"
    ref = starts[0]
    inters = []
    for i, it in enumerate(spec.intersections):
        phases = [
            PhaseTiming(
                number=k + 1,
                name=p.name,
                green_s=float(greens[i][k]),
                yellow_s=p.yellow_s,
                all_red_s=p.all_red_s,
                min_green_s=p.min_green_s,
                ped_clearance_s=p.ped_clearance_s,
                coordinated=("both" if p.serves_out and p.serves_in else "out" if p.serves_out else "in" if p.serves_in else ""),
            )
            for k, p in enumerate(it.phases)
        ]
        off = float((starts[i] - ref) % cycle)
        if off >= cycle - 1e-9:
            off = 0.0
        inters.append(IntersectionTiming(id=it.id, position_m=it.position_m, offset_s=off, phases=phases))
    plan = Plan(
        plan_id="",
        corridor=spec.id,
        cycle_s=cycle,
        intersections=inters,
        band_out_s=float(bands[0]),
        band_in_s=float(bands[1]),
        band_out_start_s=float((bands[2] - ref) % cycle),
        band_in_start_s=float((bands[3] - ref) % cycle),
        speed_out_kmh=spec.speed_out_kmh,
        speed_in_kmh=spec.speed_in_kmh,
        valid_from_ms=valid_from_ms,
        method=method,
    )
    plan.plan_id = plan_id or _plan_id(spec, msgspec.json.encode(plan))
    assert_safe(plan, spec)
    return plan
