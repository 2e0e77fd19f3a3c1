"""Webster's cycle and critical-flow-ratio splits.

Webster's optimal cycle is ``C0 = (1.5 L + 5) / (1 - Y)`` with ``L`` the lost time per cycle (s,
here the yellow + all-red of every phase) and ``Y`` the sum of the phases' critical flow ratios.
The corridor's common cycle is the largest intersection cycle (the critical intersection sets
it), rounded up to a whole second and clipped to the corridor's bounds; each intersection then
shares its green time ``C - L`` in proportion to its flow ratios, never below a phase's minimum.

Example:
    >>> round(webster_cycle_s(lost_time_s=10.0, flow_ratio_sum=0.6), 1)
    50.0
    >>> [round(float(g), 1) for g in allocate_greens_s(90.0, [5.0, 5.0], [0.4, 0.2], [10.0, 20.0])]
    [53.3, 26.7]
"""
from __future__ import annotations

import math

import numpy as np

from brain.greenwave.model import DEFAULT_COORDINATED_FLOW_RATIO, DEFAULT_FLOW_RATIO, CorridorSpec, IntersectionSpec

#: Above this flow-ratio sum Webster's formula diverges; the cycle goes to the corridor maximum.
Y_SATURATED = 0.95


def webster_cycle_s(lost_time_s: float, flow_ratio_sum: float) -> float:
    """Webster's optimal cycle (s); ``inf`` when the intersection is saturated (Y >= 0.95)."""
    if lost_time_s < 0 or flow_ratio_sum < 0:
        raise ValueError("lost time and flow ratios must be >= 0")
    if flow_ratio_sum >= Y_SATURATED:
        return math.inf
    return (1.5 * lost_time_s + 5.0) / (1.0 - flow_ratio_sum)


def allocate_greens_s(cycle_s: float, clearances_s, flow_ratios, min_greens_s) -> np.ndarray:
    """Share ``cycle_s - sum(clearances_s)`` among phases in proportion to ``flow_ratios``.

    Phases whose share would fall below their minimum are held at it and the rest re-shared
    (a water-filling loop, at most one pass per phase).
    """
    clear = np.asarray(clearances_s, dtype=np.float64)
    y = np.maximum(np.asarray(flow_ratios, dtype=np.float64), 1e-6)
    mins = np.asarray(min_greens_s, dtype=np.float64)
    available = cycle_s - clear.sum()
    if mins.sum() > available + 1e-9:
        raise ValueError(
            f"impossible minimum greens: they need {mins.sum():.1f} s of green but a {cycle_s:.1f} s cycle "
            f"leaves {available:.1f} s after clearances"
        )
    fixed = np.zeros(len(y), dtype=bool)
    greens = mins.copy()
    for _ in range(len(y) + 1):
        free = ~fixed
        share = available - mins[fixed].sum()
        with np.errstate(invalid="ignore", divide="ignore"):  # all phases fixed: 0/0 in the branch not taken
            greens = np.where(fixed, mins, share * y / y[free].sum())
        low = free & (greens < mins)
        if not low.any():
            break
        fixed |= low
    return greens


def flow_ratios(it: IntersectionSpec) -> np.ndarray:
    return np.array(
        [(DEFAULT_COORDINATED_FLOW_RATIO if p.coordinated else DEFAULT_FLOW_RATIO) if p.flow_vph is None
         else p.flow_vph / p.saturation_vph for p in it.phases],
        dtype=np.float64,
    )


def corridor_cycle_s(spec: CorridorSpec) -> float:
    """The common cycle: fixed if the corridor gives one, else Webster at the critical intersection."""
    fixed = spec.fixed_cycle_s()
    if fixed is not None:
        return float(fixed)
    need = max(it.min_cycle_s() for it in spec.intersections)
    best = 0.0
    for it in spec.intersections:
        best = max(best, webster_cycle_s(it.lost_time_s(), float(flow_ratios(it).sum())))
    cycle = min(max(math.ceil(best) if math.isfinite(best) else spec.cycle_max_s, spec.cycle_min_s), spec.cycle_max_s)
    cycle = max(cycle, math.ceil(need))
    if cycle > spec.cycle_max_s + 1e-9:
        raise ValueError(f"corridor {spec.id!r}: minimum greens need a {need:.1f} s cycle, above cycle_max_s {spec.cycle_max_s}")
    return float(cycle)


def corridor_greens_s(spec: CorridorSpec, cycle_s: float) -> list[np.ndarray]:
    """Per intersection, the green of every phase (s) for the common cycle."""
    out = []
    for it in spec.intersections:
        if it.phases[0].green_s is not None and spec.fixed_cycle_s() == cycle_s:
            out.append(np.array([p.green_s for p in it.phases], dtype=np.float64))
            continue
        try:
            out.append(
                allocate_greens_s(
                    cycle_s,
                    [p.clearance_s for p in it.phases],
                    flow_ratios(it) if it.phases[0].green_s is None else [p.green_s for p in it.phases],
                    [p.min_duration_green_s for p in it.phases],
                )
            )
        except ValueError as exc:
            raise ValueError(f"corridor {spec.id!r}, intersection {it.id!r}: {exc}") from None
    return out
