"""A SUMO signal's phase schedule, as an emulated controller runs it through TraCI.

:class:`Schedule` holds the plan's phases at its offset on SUMO's clock; a priority request a
controller applied replaces the affected cycle (:meth:`Schedule.apply`). Used by the 一键护航
trial, :mod:`bench.sumo_net.escort_sumo`.
"""
from __future__ import annotations

import bisect

import numpy as np

from bench.sumo_net.arterial import integer_timings


class Schedule:
    """Absolute phase schedule of one SUMO signal: sorted starts and SUMO phase indices."""

    def __init__(self, plan, i: int, end_s: float):
        it = plan.intersections[i]
        self.C = plan.cycle_s
        self.idx_of: dict[int, tuple[int, int, int | None]] = {}
        base: list[tuple[float, int]] = []
        sidx, t = 0, 0.0
        for k, (g, y, r) in enumerate(integer_timings(plan)[i]):
            num = it.phases[k].number
            red_idx = sidx + 2 if r > 0 else None
            self.idx_of[num] = (sidx, sidx + 1, red_idx)
            base += [(t, sidx), (t + g, sidx + 1)] + ([(t + g + y, red_idx)] if r > 0 else [])
            sidx += 3 if r > 0 else 2
            t += g + y + r
        self.clear = {p.number: (p.yellow_s, p.all_red_s) for p in it.phases}
        starts, idx = [], []
        k0 = int(np.floor(-it.offset_s / self.C)) - 1
        for k in range(k0, int(end_s / self.C) + 2):
            for t0, s in base:
                starts.append(it.offset_s + k * self.C + t0)
                idx.append(s)
        self.base = (starts, idx)
        self.starts, self.idx = list(starts), list(idx)

    def apply(self, greens: list[list[float]], region_end: float) -> None:
        """Replace [first green start, region_end) with the adjusted green intervals (start from the base)."""
        self.starts, self.idx = list(self.base[0]), list(self.base[1])
        a = greens[0][1]
        lo = bisect.bisect_left(self.starts, a - 1e-6)
        hi = bisect.bisect_left(self.starts, region_end - 1e-6)
        new: list[tuple[float, int]] = []
        for n, (num, g0, g1) in enumerate(greens):
            gi, yi, ri = self.idx_of[int(num)]
            new.append((g0, gi))
            if g1 < region_end - 1e-6:
                y, r = self.clear[int(num)]
                new.append((g1, yi))
                if ri is not None:
                    new.append((g1 + y, ri))
        self.starts[lo:hi] = [s for s, _ in new]
        self.idx[lo:hi] = [x for _, x in new]

    def revert_if_ahead(self, t: float) -> None:
        """Back to the plan's schedule unless an adjusted cycle is already under way at ``t``
        (that one ends on the planned cycle boundary by itself: switching now would cut a phase)."""
        if self.starts != self.base[0] or self.idx != self.base[1]:
            k = bisect.bisect_right(self.starts, t + 1e-9) - 1
            kb = bisect.bisect_right(self.base[0], t + 1e-9) - 1
            if self.starts[: k + 1] == self.base[0][: kb + 1] and self.idx[: k + 1] == self.base[1][: kb + 1]:
                self.starts, self.idx = list(self.base[0]), list(self.base[1])

    def at(self, t: float) -> tuple[int, float]:
        k = bisect.bisect_right(self.starts, t + 1e-9) - 1
        return self.idx[k], self.starts[k + 1] - t
