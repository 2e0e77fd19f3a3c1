"""The safety checker every plan and transition passes before it leaves the engine.

:func:`check_plan` lists every violation (empty list = safe): the absolute limits of
:mod:`brain.greenwave.limits` (yellow, all-red, green and pedestrian floors, cycle range, a fixed
cycle inside the corridor's bounds), the cycle within the corridor's
bounds (or equal to its fixed cycle), every phase present with its spec's yellow and all-red,
every green at least ``max(min_green_s, ped_clearance_s)``, each intersection's phases summing
to the cycle, offsets inside ``[0, cycle)``, all numbers finite, and the advertised bands really
produced by the offsets. :func:`assert_safe` raises :class:`UnsafePlanError` instead.

Example:
    >>> from brain.greenwave.model import CorridorSpec, IntersectionSpec, PhaseSpec
    >>> from brain.greenwave.optimizer import optimize_corridor
    >>> ph = [PhaseSpec(name="EW", min_green_s=20, coordinated=True), PhaseSpec(name="NS", min_green_s=20)]
    >>> spec = CorridorSpec(id="C", intersections=[IntersectionSpec(id="A", position_m=0, phases=ph),
    ...                                            IntersectionSpec(id="B", position_m=300, phases=ph)])
    >>> plan = optimize_corridor(spec)
    >>> check_plan(plan, spec)
    []
    >>> plan.intersections[1].phases[1].green_s = 5.0
    >>> [v.split(":")[0] for v in check_plan(plan, spec)][:1]
    ['B/NS']
"""
from __future__ import annotations

import math

import numpy as np

from brain.greenwave.band import band_problem
from brain.greenwave.limits import DEFAULT_LIMITS, SafetyLimits, cycle_limit_violations, phase_limit_violations
from brain.greenwave.model import CorridorSpec
from brain.greenwave.plan import Plan
from brain.kernels.bandwidth import band_of_offsets

TOL_S = 1e-6


class UnsafePlanError(ValueError):
    """A plan or transition failed the safety checker; ``violations`` lists why."""

    def __init__(self, violations: list[str]):
        self.violations = violations
        super().__init__("unsafe signal plan: " + "; ".join(violations))


def check_phases(where: str, phases, spec_phases, total_s: float | None,
                 limits: SafetyLimits = DEFAULT_LIMITS) -> list[str]:
    """Minimum greens, pedestrian clearance and clearance intervals of one cycle's phases: the
    spec's own, and the absolute :class:`~brain.greenwave.limits.SafetyLimits` under them."""
    out = []
    if len(phases) != len(spec_phases):
        return [f"{where}: {len(phases)} phases, the intersection has {len(spec_phases)}"]
    for p, sp in zip(phases, spec_phases):
        w = f"{where}/{sp.name}"
        if not all(math.isfinite(x) for x in (p.green_s, p.yellow_s, p.all_red_s)):
            out.append(f"{w}: non-finite timing")
            continue
        if p.green_s < sp.min_green_s - TOL_S:
            out.append(f"{w}: green {p.green_s:.2f} s below the minimum green {sp.min_green_s} s")
        if p.green_s < sp.ped_clearance_s - TOL_S:
            out.append(f"{w}: green {p.green_s:.2f} s shorter than the pedestrian clearance {sp.ped_clearance_s} s")
        if p.yellow_s < sp.yellow_s - TOL_S or p.all_red_s < sp.all_red_s - TOL_S:
            out.append(f"{w}: yellow/all-red {p.yellow_s}/{p.all_red_s} s shorter than {sp.yellow_s}/{sp.all_red_s} s")
        out.extend(phase_limit_violations(w, green_s=p.green_s, yellow_s=p.yellow_s, all_red_s=p.all_red_s,
                                          ped_clearance_s=sp.ped_clearance_s, limits=limits))
    if total_s is not None:
        s = sum(p.green_s + p.yellow_s + p.all_red_s for p in phases)
        if abs(s - total_s) > 1e-3:
            out.append(f"{where}: phases sum to {s:.3f} s, not the cycle {total_s:.3f} s")
    return out


def check_plan(plan: Plan, spec: CorridorSpec, limits: SafetyLimits = DEFAULT_LIMITS) -> list[str]:
    """Every violation of ``plan`` against ``spec`` and the absolute ``limits`` (empty: safe)."""
    C = plan.cycle_s
    if not (math.isfinite(C) and C > 0):
        return [f"cycle {C} is not a positive number"]
    v = cycle_limit_violations(C, fixed_s=spec.cycle_s, bounds_s=(spec.cycle_min_s, spec.cycle_max_s), limits=limits)
    fixed = spec.cycle_s
    if fixed is not None:
        if abs(C - fixed) > TOL_S:
            v.append(f"cycle {C} s differs from the corridor's fixed cycle {fixed} s")
    elif C < spec.cycle_min_s - TOL_S or C > spec.cycle_max_s + TOL_S:
        v.append(f"cycle {C} s outside [{spec.cycle_min_s}, {spec.cycle_max_s}] s")
    if [it.id for it in plan.intersections] != [it.id for it in spec.intersections]:
        return v + ["plan intersections do not match the corridor's"]
    for it, sit in zip(plan.intersections, spec.intersections):
        if not (math.isfinite(it.offset_s) and -TOL_S <= it.offset_s < C + TOL_S):
            v.append(f"{it.id}: offset {it.offset_s} s outside [0, {C})")
        v.extend(check_phases(it.id, it.phases, sit.phases, C, limits))
    if not v and (plan.band_out_s > 0 or plan.band_in_s > 0):
        v.extend(_check_bands(plan, spec))
    return v


def _check_bands(plan: Plan, spec: CorridorSpec) -> list[str]:
    # The advertised bands must be what the offsets give; a controller cannot see a promise.
    greens = [np.array([p.green_s for p in it.phases]) for it in plan.intersections]
    prob = band_problem(spec, plan.cycle_s, greens)
    starts = np.array([it.offset_s for it in plan.intersections])
    got = band_of_offsets(plan.cycle_s, prob.green_out_s, prob.green_in_s, prob.in_shift_s,
                          prob.travel_out_s, prob.travel_in_s, starts)
    out = []
    if got[0] < plan.band_out_s - 1e-3 or got[1] < plan.band_in_s - 1e-3:
        out.append(f"advertised bands {plan.band_out_s:.2f}/{plan.band_in_s:.2f} s exceed what the offsets give "
                   f"{got[0]:.2f}/{got[1]:.2f} s")
    return out


def assert_safe(plan: Plan, spec: CorridorSpec, limits: SafetyLimits = DEFAULT_LIMITS) -> None:
    v = check_plan(plan, spec, limits)
    if v:
        raise UnsafePlanError(v)
