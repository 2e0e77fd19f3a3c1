"""Two corridors crossing at one shared signal: one cycle, and one timing there that both plans agree on.

A corridor's offsets are relative (only their differences move traffic), so two corridors that
share exactly one signal can both keep their own best offsets: plan the first, give the second
the same cycle and, at the shared signal, the first plan's greens, then shift the whole second
plan so that its coordinated green at the shared signal starts when the first plan has that
phase start. Nothing is lost on either corridor; the shared controller receives one timing
whichever corridor's plan it reads. (Corridors sharing two or more signals form a loop whose
offsets are constrained: not handled here.)

The shared signal must list the same phases (by name) in both specs, in the same ring order
(each spec may start the ring at its own coordinated phase): the second spec's coordinated phase
is, physically, a non-coordinated phase of the first.

Example:
    >>> from brain.greenwave.model import CorridorSpec, IntersectionSpec, PhaseSpec
    >>> def node(i, x, mine, other, flow=400.0):
    ...     return IntersectionSpec(id=i, position_m=x, phases=[
    ...         PhaseSpec(name=mine, min_green_s=15, coordinated=True, flow_vph=flow),
    ...         PhaseSpec(name=other, min_green_s=15, flow_vph=200.0)])
    >>> a = CorridorSpec(id="EW", intersections=[node("A0", 0, "EW", "NS"), node("X", 420, "EW", "NS"),
    ...                  node("A2", 800, "EW", "NS")], cycle_min_s=60, cycle_max_s=120)
    >>> b = CorridorSpec(id="NS", intersections=[node("B0", 0, "NS", "EW", 300.0), node("X", 500, "NS", "EW", 300.0),
    ...                  node("B2", 950, "NS", "EW", 300.0)], cycle_min_s=60, cycle_max_s=120)
    >>> pa, pb = plan_crossing(a, b, "X")
    >>> pa.cycle_s == pb.cycle_s
    True
    >>> shared_timing(pa, "X") == shared_timing(pb, "X")     # one timing at the shared signal
    True
"""
from __future__ import annotations

import msgspec
import numpy as np

from brain.greenwave.model import CorridorSpec
from brain.greenwave.optimizer import optimize_corridor
from brain.greenwave.plan import Plan


def _names(spec: CorridorSpec, iid: str) -> list[str]:
    return [p.name for p in spec.intersections[[it.id for it in spec.intersections].index(iid)].phases]


def shared_timing(plan: Plan, iid: str, ndigits: int = 6) -> dict[str, tuple[float, float]]:
    """Phase name -> (green start modulo the cycle, green length) at intersection ``iid`` (s)."""
    it = next(x for x in plan.intersections if x.id == iid)
    C = plan.cycle_s
    return {p.name: (round((it.offset_s + it.phase_start_s(k)) % C, ndigits) % round(C, ndigits), round(p.green_s, ndigits))
            for k, p in enumerate(it.phases)}


def plan_crossing(spec_a: CorridorSpec, spec_b: CorridorSpec, shared: str, *, cycle_s: float | None = None,
                  greens_a_s: list[np.ndarray] | None = None, greens_b_s: list[np.ndarray] | None = None,
                  **kw) -> tuple[Plan, Plan]:
    """Plans for corridors ``spec_a`` and ``spec_b`` crossing at intersection ``shared``.

    The common cycle is ``cycle_s`` or the longer of the two corridors' own cycles (it must lie in
    both corridors' bounds); the shared signal runs ``spec_a``'s splits; ``greens_a_s`` /
    ``greens_b_s`` (per intersection, in spec phase order) override Webster's (B's at the shared
    signal are replaced by A's there); ``kw`` goes to
    :func:`~brain.greenwave.optimizer.optimize_corridor` (e.g. ``objective``). A clear
    ``ValueError`` when the shared signal is missing, its phases differ, or no cycle fits both.
    """
    ids_a = [it.id for it in spec_a.intersections]
    ids_b = [it.id for it in spec_b.intersections]
    if shared not in ids_a or shared not in ids_b:
        raise ValueError(f"shared intersection {shared!r} must be on both corridors {spec_a.id!r} and {spec_b.id!r}")
    common = (set(ids_a) & set(ids_b)) - {shared}
    if common:
        raise ValueError(f"corridors {spec_a.id!r} and {spec_b.id!r} share more than one signal ({sorted(common)}): "
                         "a loop of offsets, not handled")
    na, nb_ = _names(spec_a, shared), _names(spec_b, shared)
    rotations = [na[r:] + na[:r] for r in range(len(na))]
    if len(set(na)) != len(na) or nb_ not in rotations:
        raise ValueError(f"shared intersection {shared!r}: phases {nb_} on {spec_b.id!r} are not those of "
                         f"{spec_a.id!r} {na} in the same ring order")
    if cycle_s is None:
        cycle_s = max(optimize_corridor(spec_a, **kw).cycle_s, optimize_corridor(spec_b, **kw).cycle_s)
    for s in (spec_a, spec_b):
        lo, hi = s.cycle_min_s, s.cycle_max_s
        fixed = s.fixed_cycle_s()
        if (fixed is not None and abs(fixed - cycle_s) > 1e-6) or not (lo - 1e-6 <= cycle_s <= hi + 1e-6):
            raise ValueError(f"common cycle {cycle_s:.1f} s does not fit corridor {s.id!r} "
                             f"(bounds [{lo}, {hi}] s{'' if fixed is None else f', fixed {fixed} s'})")
    pa = optimize_corridor(spec_a, cycle_s=cycle_s, greens_s=greens_a_s, **kw)
    if greens_b_s is None:
        own_b = optimize_corridor(spec_b, cycle_s=cycle_s, **kw)
        greens_b_s = [np.array([p.green_s for p in it.phases]) for it in own_b.intersections]
    greens_b = [np.asarray(g, dtype=float) for g in greens_b_s]
    ja, jb = ids_a.index(shared), ids_b.index(shared)
    green_of = {p.name: p.green_s for p in pa.intersections[ja].phases}
    greens_b[jb] = np.array([green_of[n] for n in nb_])
    pb = optimize_corridor(spec_b, cycle_s=cycle_s, greens_s=greens_b, **kw)
    # B's coordinated green at the shared signal starts when A's plan starts that phase there
    it_a, it_b = pa.intersections[ja], pb.intersections[jb]
    kb = next(k for k, p in enumerate(it_b.phases) if p.coordinated in ("out", "both"))
    ka = na.index(it_b.phases[kb].name)
    delta = it_a.offset_s + it_a.phase_start_s(ka) - (it_b.offset_s + it_b.phase_start_s(kb))
    C = pb.cycle_s
    shifted = [msgspec.structs.replace(it, offset_s=float((it.offset_s + delta) % C)) for it in pb.intersections]
    pb = msgspec.structs.replace(pb, intersections=shifted,
                                 band_out_start_s=float((pb.band_out_start_s + delta) % C),
                                 band_in_start_s=float((pb.band_in_start_s + delta) % C),
                                 method=f"{pb.method}; shifted {delta % C:.1f} s to agree with {spec_a.id!r} at {shared!r}")
    return pa, pb
