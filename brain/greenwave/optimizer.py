"""Corridor plan: Webster cycle and splits, then offsets that maximise two-way bandwidth.

:func:`optimize_corridor` is the whole pipeline for one corridor: common cycle (Webster at the
critical intersection, within the corridor's bounds, unless fixed), splits from critical flow
ratios (never below a phase's minimum), offsets from the MAXBAND optimum found by the numba
kernel :func:`brain.kernels.bandwidth.max_bandwidth`, and the safety check
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

import msgspec
import numpy as np

from brain.greenwave.model import CorridorSpec
from brain.greenwave.plan import IntersectionTiming, PhaseTiming, Plan
from brain.greenwave.webster import corridor_cycle_s, corridor_greens_s
from brain.kernels.bandwidth import max_bandwidth


class BandProblem(msgspec.Struct):
    """The arrays the bandwidth kernel takes (s), for a given cycle and splits."""

    cycle_s: float
    green_out_s: np.ndarray
    green_in_s: np.ndarray
    in_shift_s: np.ndarray
    travel_out_s: np.ndarray
    travel_in_s: np.ndarray
    weight_out: float
    weight_in: float

    def args(self) -> tuple:
        return (self.cycle_s, self.green_out_s, self.green_in_s, self.in_shift_s,
                self.travel_out_s, self.travel_in_s, self.weight_out, self.weight_in)


def demand_weights(volume_out_vph: float | None, volume_in_vph: float | None) -> tuple[float, float]:
    """MAXBAND's weights (1, k) with k = inbound / outbound volume, scaled so the larger is 1."""
    if volume_out_vph is None or volume_in_vph is None:
        return 1.0, 1.0
    top = max(volume_out_vph, volume_in_vph)
    if top <= 0:
        return 1.0, 1.0
    return volume_out_vph / top, volume_in_vph / top


def band_problem(spec: CorridorSpec, cycle_s: float, greens_s: list[np.ndarray]) -> BandProblem:
    n = spec.n
    g_out = np.empty(n)
    g_in = np.empty(n)
    shift = np.empty(n)
    for i, it in enumerate(spec.intersections):
        ko, ki = it.phase_index("out"), it.phase_index("in")
        g = greens_s[i]
        g_out[i], g_in[i] = g[ko], g[ki]
        # local start of the inbound coordinated green after the outbound one, walking the ring
        t, k = 0.0, ko
        while k != ki:
            t += g[k] + it.phases[k].clearance_s
            k = (k + 1) % len(it.phases)
        shift[i] = t
    wo, wi = demand_weights(spec.volume_out_vph, spec.volume_in_vph)
    return BandProblem(cycle_s, g_out, g_in, shift, spec.travel_out_s(), spec.travel_in_s(), wo, wi)


def _plan_id(spec: CorridorSpec, body: bytes) -> str:
    return f"{spec.id}-{hashlib.sha1(body).hexdigest()[:10]}"


def optimize_corridor(spec: CorridorSpec, *, valid_from_ms: int | None = None, plan_id: str | None = None,
                      cycle_s: float | None = None, greens_s: list[np.ndarray] | None = None,
                      refine_sweeps: int = 0) -> Plan:
    """The corridor's plan (checked safe). ``cycle_s``/``greens_s`` override Webster when given;
    ``refine_sweeps`` > 0 re-places the greens within the max-band ranges by the progression score."""
    from brain.greenwave.safety import assert_safe

    cycle = float(cycle_s) if cycle_s is not None else corridor_cycle_s(spec)
    greens = greens_s if greens_s is not None else corridor_greens_s(spec, cycle)
    prob = band_problem(spec, cycle, greens)
    bands, starts = max_bandwidth(*prob.args(), refine_sweeps)
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
    )
    plan.plan_id = plan_id or _plan_id(spec, msgspec.json.encode(plan))
    assert_safe(plan, spec)
    return plan
