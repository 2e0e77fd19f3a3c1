"""Timing plans: what the optimizer produces and controllers receive.

A :class:`Plan` holds the common cycle, each intersection's phase splits and offset, and the two
progression bands. Offsets are seconds from a common reference (the first intersection's
outbound coordinated green start is 0) to the start of the intersection's outbound coordinated
green — NTCIP 1202's "offset to the start of the first coordinated phase". Phases run in list
order from the coordinated phase, wrapping.

:func:`to_ntcip` renders the NTCIP 1202-style pattern / split / offset JSON sent to controllers
(documented in docs/greenwave.md).

Example:
    >>> ph = [PhaseTiming(number=1, name="EW", green_s=40.0, yellow_s=3.0, all_red_s=2.0,
    ...                   min_green_s=15.0, coordinated="both"),
    ...       PhaseTiming(number=2, name="NS", green_s=40.0, yellow_s=3.0, all_red_s=2.0, min_green_s=15.0)]
    >>> p = Plan(plan_id="C1-1", corridor="C1", cycle_s=90.0,
    ...          intersections=[IntersectionTiming(id="A", position_m=0.0, offset_s=0.0, phases=ph)])
    >>> p.intersections[0].phases[0].split_s
    45.0
    >>> to_ntcip(p)["controllers"][0]["pattern"]["cycle_time"]
    90.0
"""
from __future__ import annotations

import datetime as dt

import msgspec


class PhaseTiming(msgspec.Struct, forbid_unknown_fields=True):
    """One phase of a timing plan (s). ``coordinated``: "out", "in", "both" or "" (not coordinated)."""

    number: int
    name: str
    green_s: float
    yellow_s: float
    all_red_s: float
    min_green_s: float
    ped_clearance_s: float = 0.0
    coordinated: str = ""

    @property
    def split_s(self) -> float:
        return self.green_s + self.yellow_s + self.all_red_s


class IntersectionTiming(msgspec.Struct, forbid_unknown_fields=True):
    """Offset (s, from the corridor reference) and splits of one intersection."""

    id: str
    position_m: float
    offset_s: float
    phases: list[PhaseTiming]

    def phase_start_s(self, k: int) -> float:
        """Local start (s after the outbound coordinated green start) of phase ``k``'s green."""
        first = next(i for i, p in enumerate(self.phases) if p.coordinated in ("out", "both"))
        t = 0.0
        i = first
        while i != k:
            t += self.phases[i].split_s
            i = (i + 1) % len(self.phases)
        return t

    @property
    def cycle_s(self) -> float:
        return sum(p.split_s for p in self.phases)


class Plan(msgspec.Struct, forbid_unknown_fields=True):
    """A corridor timing plan. Band starts are on the same clock as the offsets.

    ``band_out_start_s`` is when the outbound band passes the first intersection,
    ``band_in_start_s`` when the inbound band passes the last one.
    """

    plan_id: str
    corridor: str
    cycle_s: float
    intersections: list[IntersectionTiming]
    band_out_s: float = 0.0
    band_in_s: float = 0.0
    band_out_start_s: float = 0.0
    band_in_start_s: float = 0.0
    speed_out_kmh: float = 0.0
    speed_in_kmh: float = 0.0
    valid_from_ms: int | None = None
    method: str = "maxband-numba"

    def offsets_s(self) -> list[float]:
        return [it.offset_s for it in self.intersections]

    def to_dict(self) -> dict:
        return msgspec.to_builtins(self)


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_ntcip(plan: Plan, pattern: int = 1) -> dict:
    """NTCIP 1202-style rendering: per controller a pattern (cycle, offset, split number,
    sequence), a split table (per phase split time, mode, coordinated phase) and the phase sequence.
    """
    controllers = []
    for it in plan.intersections:
        coord = next(p.number for p in it.phases if p.coordinated in ("out", "both"))
        controllers.append(
            {
                "intersection": it.id,
                "pattern": {
                    "number": pattern,
                    "cycle_time": plan.cycle_s,
                    "offset_time": round(it.offset_s, 3),
                    "split_number": pattern,
                    "sequence_number": 1,
                },
                "split_table": {
                    "number": pattern,
                    "coord_phase": coord,
                    "splits": [
                        {
                            "phase": p.number,
                            "name": p.name,
                            "time": round(p.split_s, 3),
                            "mode": "coordinated" if p.coordinated else "none",
                            "green_s": round(p.green_s, 3),
                            "yellow_s": p.yellow_s,
                            "all_red_s": p.all_red_s,
                            "min_green_s": p.min_green_s,
                        }
                        for p in it.phases
                    ],
                },
                "sequence": [p.number for p in it.phases],
            }
        )
    return {
        "plan_id": plan.plan_id,
        "corridor": plan.corridor,
        "valid_from": _iso(plan.valid_from_ms),
        "valid_from_ms": plan.valid_from_ms,
        "cycle_s": plan.cycle_s,
        "bands": {
            "outbound_s": round(plan.band_out_s, 3),
            "inbound_s": round(plan.band_in_s, 3),
            "outbound_start_s": round(plan.band_out_start_s, 3),
            "inbound_start_s": round(plan.band_in_start_s, 3),
        },
        "controllers": controllers,
    }
