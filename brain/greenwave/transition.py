"""Moving from one timing plan to the next without unsafe phases (NTCIP-style offset correction).

Controllers never jump to a new offset: each finishes the cycle it is running, then runs a few
transition cycles, each lengthened by at most ``max_lengthen`` or shortened by at most
``max_shorten`` of the new cycle (NTCIP 1202's long-way / short-way correction), until its cycle
boundary lands on the new offset. Whichever way needs fewer cycles is used. Lengthening is
shared among phases in proportion to their greens; shortening is taken only from green above
each phase's minimum (``max(min_green_s, ped_clearance_s)``), so no phase ever drops below it.

The clock: under a plan, intersection ``i``'s outbound coordinated green starts at
``offset_s + k * cycle_s`` for integer ``k`` on the corridor's shared clock (s).

Example:
    >>> from brain.greenwave.model import CorridorSpec, IntersectionSpec, PhaseSpec
    >>> from brain.greenwave.optimizer import optimize_corridor
    >>> ph = [PhaseSpec(name="EW", min_green_s=20, coordinated=True, flow_vph=600),
    ...       PhaseSpec(name="NS", min_green_s=15, flow_vph=300)]
    >>> spec = CorridorSpec(id="C", intersections=[IntersectionSpec(id="A", position_m=0, phases=ph),
    ...                                            IntersectionSpec(id="B", position_m=420, phases=ph)])
    >>> old = optimize_corridor(spec)
    >>> new = optimize_corridor(spec, cycle_s=80.0)
    >>> tr = plan_transition(old, new, spec, switch_s=1000.0)
    >>> tr.complete_s >= 1000.0, check_transition(tr, spec)
    (True, [])
"""
from __future__ import annotations

import math

import msgspec
import numpy as np

from brain.greenwave.limits import DEFAULT_LIMITS, SafetyLimits
from brain.greenwave.model import CorridorSpec
from brain.greenwave.plan import PhaseTiming, Plan
from brain.greenwave.safety import check_phases


class TransitionCycle(msgspec.Struct, forbid_unknown_fields=True):
    """One cycle of a controller during a transition: starts at ``start_s`` (shared clock)."""

    start_s: float
    cycle_s: float
    greens_s: list[float]


class ControllerTransition(msgspec.Struct, forbid_unknown_fields=True):
    """One intersection's path: old cycle ends at ``old_end_s``, then ``cycles``, then the new plan."""

    id: str
    old_end_s: float
    correction_s: float  # + lengthened in total, - shortened in total
    cycles: list[TransitionCycle]

    @property
    def new_start_s(self) -> float:
        return self.old_end_s + sum(c.cycle_s for c in self.cycles)


class Transition(msgspec.Struct, forbid_unknown_fields=True):
    from_plan: str
    to_plan: str
    switch_s: float
    new_cycle_s: float
    new_offsets_s: list[float]
    max_lengthen: float
    max_shorten: float
    controllers: list[ControllerTransition]

    @property
    def complete_s(self) -> float:
        """When every controller runs the new plan."""
        return max(c.new_start_s for c in self.controllers)


def _validate(max_lengthen: float, max_shorten: float) -> None:
    if not (0 < max_lengthen <= 1):
        raise ValueError(f"max_lengthen must be in (0, 1], got {max_lengthen}")
    if not (0 < max_shorten < 1):
        raise ValueError(f"max_shorten must be in (0, 1), got {max_shorten}")


def plan_transition(old: Plan, new: Plan, spec: CorridorSpec, switch_s: float,
                    max_lengthen: float = 0.2, max_shorten: float = 0.17,
                    limits: SafetyLimits = DEFAULT_LIMITS) -> Transition:
    """The transition from ``old`` to ``new`` requested at ``switch_s`` (shared clock, s).

    No transition cycle leaves the absolute cycle range of ``limits``: near its ends the
    correction takes more, smaller steps (or only goes the other way)."""
    _validate(max_lengthen, max_shorten)
    if not math.isfinite(switch_s):
        raise ValueError("switch_s must be finite")
    if [i.id for i in old.intersections] != [i.id for i in new.intersections]:
        raise ValueError("the two plans cover different intersections")
    C = new.cycle_s
    out = []
    for it_old, it_new, sit in zip(old.intersections, new.intersections, spec.intersections):
        k = math.ceil((switch_s - it_old.offset_s) / old.cycle_s - 1e-12)
        t0 = it_old.offset_s + k * old.cycle_s
        err = (it_new.offset_s - t0) % C
        if err < 1e-6 or C - err < 1e-6:
            out.append(ControllerTransition(id=it_new.id, old_end_s=t0, correction_s=0.0, cycles=[]))
            continue
        g = np.array([p.green_s for p in it_new.phases])
        mins = np.array([max(p.min_green_s, p.ped_clearance_s) for p in sit.phases])
        slack = np.maximum(g - mins, 0.0)
        step_long = min(max_lengthen * C, limits.cycle_max_s - C)
        step_short = min(max_shorten * C, slack.sum(), C - limits.cycle_min_s)
        n_long = math.ceil(err / step_long - 1e-9) if step_long > 1e-9 else 10**9
        n_short = math.ceil((C - err) / step_short - 1e-9) if step_short > 1e-9 else 10**9
        cycles = []
        if n_short < n_long:
            total = -(C - err)
            d = (C - err) / n_short
            greens = g - d * slack / slack.sum()
            n = n_short
        else:
            total = err
            d = err / n_long
            greens = g + d * g / g.sum()
            n = n_long
        t = t0
        for _ in range(n):
            length = float(greens.sum() + sum(p.yellow_s + p.all_red_s for p in it_new.phases))
            cycles.append(TransitionCycle(start_s=t, cycle_s=length, greens_s=[float(x) for x in greens]))
            t += length
        out.append(ControllerTransition(id=it_new.id, old_end_s=t0, correction_s=total, cycles=cycles))
    return Transition(from_plan=old.plan_id, to_plan=new.plan_id, switch_s=switch_s, new_cycle_s=C,
                      new_offsets_s=new.offsets_s(), max_lengthen=max_lengthen, max_shorten=max_shorten,
                      controllers=out)


def check_transition(tr: Transition, spec: CorridorSpec, limits: SafetyLimits = DEFAULT_LIMITS) -> list[str]:
    """Violations of a transition (empty = safe): phases below minimum (the spec's and the
    absolute ``limits``), cycles changed by more than the allowed correction or outside the
    absolute cycle range, or controllers not landing on the new offsets."""

    v: list[str] = []
    C = tr.new_cycle_s
    for ct, sit in zip(tr.controllers, spec.intersections):
        for j, cyc in enumerate(ct.cycles):
            phases = [PhaseTiming(number=k + 1, name=p.name, green_s=g, yellow_s=p.yellow_s, all_red_s=p.all_red_s,
                                  min_green_s=p.min_green_s, ped_clearance_s=p.ped_clearance_s)
                      for k, (p, g) in enumerate(zip(sit.phases, cyc.greens_s))]
            v.extend(check_phases(f"{ct.id} transition cycle {j + 1}", phases, sit.phases, cyc.cycle_s, limits))
            if not (limits.cycle_min_s - 1e-6 <= cyc.cycle_s <= limits.cycle_max_s + 1e-6):
                v.append(f"{ct.id} transition cycle {j + 1}: {cyc.cycle_s:.2f} s outside the absolute range "
                         f"[{limits.cycle_min_s}, {limits.cycle_max_s}] s")
            if not (C * (1 - tr.max_shorten) - 1e-6 <= cyc.cycle_s <= C * (1 + tr.max_lengthen) + 1e-6):
                v.append(f"{ct.id} transition cycle {j + 1}: {cyc.cycle_s:.2f} s changes the {C} s cycle by more than allowed")
        off = tr.new_offsets_s[[c.id for c in tr.controllers].index(ct.id)]
        miss = (ct.new_start_s - off) % C
        if min(miss, C - miss) > 1e-6:
            v.append(f"{ct.id}: lands {miss:.3f} s off the new offset")
        if ct.old_end_s < tr.switch_s - 1e-9:
            v.append(f"{ct.id}: the running cycle is cut before it ends")
    return v
