"""The corridor as the green-wave optimizer sees it, and its self-contained JSON form.

A :class:`CorridorSpec` is an ordered list of signalised intersections with their positions
along the arterial (m, strictly increasing), progression speeds (one per direction, or one per
link and direction), the cycle (fixed, or bounds for Webster), and per-intersection phases with
either measured critical flows (for Webster splits) or fixed greens.

Phase order is the controller's ring order; local time 0 of an intersection is the start of the
green of its outbound coordinated phase, and phases run in list order from there (wrapping).

Coordination: ``coordinated`` is ``true``/``"both"`` for the arterial through phase serving both
directions, ``"out"``/``"in"`` when the two directions get separate phases (lead/lag lefts).
Exactly one phase per intersection serves each direction.

Example:
    >>> spec = CorridorSpec.from_json(b'''{"id": "C1", "speed_out_kmh": 50, "speed_in_kmh": 50,
    ...   "cycle_s": 90, "intersections": [
    ...     {"id": "A", "position_m": 0, "phases": [
    ...        {"name": "EW", "min_green_s": 15, "coordinated": true, "green_s": 45},
    ...        {"name": "NS", "min_green_s": 15, "green_s": 35}]},
    ...     {"id": "B", "position_m": 400, "phases": [
    ...        {"name": "EW", "min_green_s": 15, "coordinated": true, "green_s": 45},
    ...        {"name": "NS", "min_green_s": 15, "green_s": 35}]}]}''')
    >>> [round(float(t), 1) for t in spec.travel_out_s()]
    [0.0, 28.8]
"""
from __future__ import annotations

import math
from typing import Literal, Union

import msgspec
import numpy as np

Coordination = Union[bool, Literal["both", "out", "in"]]

#: Critical flow ratios assumed for a phase with neither a measured flow nor a fixed green:
#: the arterial (coordinated) phase carries the main flow.
DEFAULT_FLOW_RATIO = 0.1
DEFAULT_COORDINATED_FLOW_RATIO = 0.3


class PhaseSpec(msgspec.Struct, forbid_unknown_fields=True):
    """One signal phase. Times in s; ``flow_vph`` is the phase's critical lane-group flow.

    The phase's green must last at least ``max(min_green_s, ped_clearance_s)`` (the pedestrian
    walk + clearance runs during the vehicle green). ``green_s`` fixes the split instead of Webster.
    """

    name: str
    min_green_s: float
    ped_clearance_s: float = 0.0
    yellow_s: float = 3.0
    all_red_s: float = 2.0
    coordinated: Coordination = False
    flow_vph: float | None = None
    saturation_vph: float = 1800.0
    green_s: float | None = None

    @property
    def min_duration_green_s(self) -> float:
        return max(self.min_green_s, self.ped_clearance_s)

    @property
    def clearance_s(self) -> float:
        return self.yellow_s + self.all_red_s

    @property
    def serves_out(self) -> bool:
        return self.coordinated is True or self.coordinated in ("both", "out")

    @property
    def serves_in(self) -> bool:
        return self.coordinated is True or self.coordinated in ("both", "in")


class IntersectionSpec(msgspec.Struct, forbid_unknown_fields=True):
    """A signalised intersection on the corridor at ``position_m`` (m along the arterial)."""

    id: str
    position_m: float
    phases: list[PhaseSpec]
    name: str = ""

    def phase_index(self, direction: str) -> int:
        for k, ph in enumerate(self.phases):
            if (ph.serves_out if direction == "out" else ph.serves_in):
                return k
        raise ValueError(f"intersection {self.id!r} has no phase coordinated for the {direction}bound direction")

    def min_cycle_s(self) -> float:
        return sum(ph.min_duration_green_s + ph.clearance_s for ph in self.phases)

    def lost_time_s(self) -> float:
        return sum(ph.clearance_s for ph in self.phases)


class CorridorSpec(msgspec.Struct, forbid_unknown_fields=True):
    """A self-contained corridor (see the module docstring and docs/greenwave.md).

    ``link_speed_out_kmh``/``link_speed_in_kmh`` (one per link, n-1 values) override the
    per-direction speeds. ``volume_out_vph``/``volume_in_vph`` are the arterial through volumes
    that weight the two bands (MAXBAND's k = volume_in / volume_out) and enter the delay model
    (:mod:`brain.greenwave.delay`) at the corridor's ends. For that model, per intersection:
    ``join_out_vph``/``join_in_vph`` side-street traffic turning into the arterial there (veh/h,
    released in the side phase), ``exit_share_out``/``exit_share_in`` the share of the arterial
    traffic that turns off there (0-1); ``lanes_per_direction`` the arterial's through lanes;
    ``joins_permissive_left`` the joins turn left on a permissive green from one shared side lane.
    """

    id: str
    intersections: list[IntersectionSpec]
    speed_out_kmh: float = 50.0
    speed_in_kmh: float = 50.0
    name: str = ""
    cycle_s: float | None = None
    cycle_min_s: float = 60.0
    cycle_max_s: float = 150.0
    link_speed_out_kmh: list[float] | None = None
    link_speed_in_kmh: list[float] | None = None
    volume_out_vph: float | None = None
    volume_in_vph: float | None = None
    lanes_per_direction: int = 1
    join_out_vph: list[float] | None = None
    join_in_vph: list[float] | None = None
    exit_share_out: list[float] | None = None
    exit_share_in: list[float] | None = None
    #: the joins turn left from the side street's single shared lane on a permissive green
    #: (yielding to the opposing side flow): the planner lowers the side phase's saturation flow
    #: for the through vehicles they block (:mod:`brain.greenwave.side_streets`)
    joins_permissive_left: bool = False

    def __post_init__(self) -> None:
        self.validate()

    @classmethod
    def from_json(cls, data: bytes | str) -> "CorridorSpec":
        """Decode and validate; any problem is a ``ValueError`` with a readable message."""
        try:
            return msgspec.json.decode(data, type=cls)
        except msgspec.ValidationError as exc:
            raise ValueError(f"invalid corridor: {exc}") from None
        except msgspec.DecodeError as exc:
            raise ValueError(f"corridor is not valid JSON: {exc}") from None

    def to_json(self) -> bytes:
        return msgspec.json.encode(self)

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        n = len(self.intersections)
        if n < 2:
            raise ValueError(f"corridor {self.id!r}: needs at least 2 intersections, got {n}")
        ids = [it.id for it in self.intersections]
        if len(set(ids)) != n:
            raise ValueError(f"corridor {self.id!r}: duplicate intersection ids")
        pos = [it.position_m for it in self.intersections]
        for a, b, ia, ib in zip(pos, pos[1:], ids, ids[1:]):
            if not (math.isfinite(a) and math.isfinite(b)) or b <= a:
                raise ValueError(
                    f"corridor {self.id!r}: positions must be strictly increasing along the corridor "
                    f"({ia} at {a} m, then {ib} at {b} m)"
                )
        for label, v in (("speed_out_kmh", self.speed_out_kmh), ("speed_in_kmh", self.speed_in_kmh)):
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"corridor {self.id!r}: {label} must be a positive speed, got {v}")
        for label, speeds in (("link_speed_out_kmh", self.link_speed_out_kmh), ("link_speed_in_kmh", self.link_speed_in_kmh)):
            if speeds is None:
                continue
            if len(speeds) != n - 1:
                raise ValueError(f"corridor {self.id!r}: {label} needs {n - 1} values (one per link), got {len(speeds)}")
            if not all(math.isfinite(v) and v > 0 for v in speeds):
                raise ValueError(f"corridor {self.id!r}: {label} must all be positive speeds, got {speeds}")
        if not (0 < self.cycle_min_s <= self.cycle_max_s and math.isfinite(self.cycle_max_s)):
            raise ValueError(
                f"corridor {self.id!r}: cycle bounds must satisfy 0 < cycle_min_s <= cycle_max_s "
                f"(got {self.cycle_min_s}, {self.cycle_max_s})"
            )
        if self.cycle_s is not None and not (math.isfinite(self.cycle_s) and self.cycle_s > 0):
            raise ValueError(f"corridor {self.id!r}: cycle_s must be positive, got {self.cycle_s}")
        for label, v in (("volume_out_vph", self.volume_out_vph), ("volume_in_vph", self.volume_in_vph)):
            if v is not None and not (math.isfinite(v) and v >= 0):
                raise ValueError(f"corridor {self.id!r}: {label} must be >= 0, got {v}")
        if not (isinstance(self.lanes_per_direction, int) and 1 <= self.lanes_per_direction <= 8):
            raise ValueError(f"corridor {self.id!r}: lanes_per_direction must be 1-8, got {self.lanes_per_direction}")
        for label, vals, top in (("join_out_vph", self.join_out_vph, math.inf), ("join_in_vph", self.join_in_vph, math.inf),
                                 ("exit_share_out", self.exit_share_out, 1.0), ("exit_share_in", self.exit_share_in, 1.0)):
            if vals is None:
                continue
            if len(vals) != n:
                raise ValueError(f"corridor {self.id!r}: {label} needs {n} values (one per intersection), got {len(vals)}")
            if not all(math.isfinite(v) and 0 <= v <= top for v in vals):
                raise ValueError(f"corridor {self.id!r}: {label} values must be in [0, {top}], got {vals}")
        for it in self.intersections:
            self._validate_intersection(it)

    def _validate_intersection(self, it: IntersectionSpec) -> None:
        where = f"corridor {self.id!r}, intersection {it.id!r}"
        if len(it.phases) < 2:
            raise ValueError(f"{where}: needs at least 2 phases")
        outs = [p.name for p in it.phases if p.serves_out]
        ins = [p.name for p in it.phases if p.serves_in]
        if len(outs) != 1 or len(ins) != 1:
            raise ValueError(
                f"{where}: exactly one phase must be coordinated for each direction "
                f"(outbound: {outs or 'none'}, inbound: {ins or 'none'})"
            )
        fixed = [p.green_s is not None for p in it.phases]
        if any(fixed) and not all(fixed):
            raise ValueError(f"{where}: give green_s for every phase or for none")
        for p in it.phases:
            pw = f"{where}, phase {p.name!r}"
            for label in ("min_green_s", "ped_clearance_s", "yellow_s", "all_red_s"):
                v = getattr(p, label)
                if not (math.isfinite(v) and v >= 0):
                    raise ValueError(f"{pw}: {label} must be >= 0, got {v}")
            if p.min_green_s <= 0:
                raise ValueError(f"{pw}: min_green_s must be > 0, got {p.min_green_s}")
            if p.flow_vph is not None and not (math.isfinite(p.flow_vph) and p.flow_vph >= 0):
                raise ValueError(f"{pw}: flow_vph must be >= 0, got {p.flow_vph}")
            if not (math.isfinite(p.saturation_vph) and p.saturation_vph > 0):
                raise ValueError(f"{pw}: saturation_vph must be > 0, got {p.saturation_vph}")
            if p.green_s is not None and p.green_s < p.min_duration_green_s - 1e-9:
                raise ValueError(
                    f"{pw}: green_s {p.green_s} is below its minimum green "
                    f"max(min_green_s, ped_clearance_s) = {p.min_duration_green_s}"
                )
        need = it.min_cycle_s()
        if need > self.cycle_max_s + 1e-9:
            raise ValueError(
                f"{where}: impossible minimum greens: the phases need {need:.1f} s per cycle "
                f"(min greens + pedestrian clearance + yellow + all-red) but cycle_max_s is {self.cycle_max_s}"
            )
        if self.cycle_s is not None and need > self.cycle_s + 1e-9:
            raise ValueError(
                f"{where}: impossible minimum greens: the phases need {need:.1f} s per cycle "
                f"but cycle_s is {self.cycle_s}"
            )
        if all(fixed):
            total = sum(p.green_s + p.clearance_s for p in it.phases)  # type: ignore[operator]
            if self.cycle_s is not None and abs(total - self.cycle_s) > 1e-6:
                raise ValueError(
                    f"{where}: fixed greens plus clearances sum to {total:.2f} s, not the cycle {self.cycle_s} s"
                )

    # ----------------------------------------------------------------- geometry
    @property
    def n(self) -> int:
        return len(self.intersections)

    def positions_m(self) -> np.ndarray:
        return np.array([it.position_m for it in self.intersections], dtype=np.float64)

    def _link_speeds_ms(self, direction: str) -> np.ndarray:
        links = self.link_speed_out_kmh if direction == "out" else self.link_speed_in_kmh
        if links is None:
            v = self.speed_out_kmh if direction == "out" else self.speed_in_kmh
            links = [v] * (self.n - 1)
        return np.asarray(links, dtype=np.float64) / 3.6

    def travel_out_s(self) -> np.ndarray:
        """Outbound travel time from the first intersection to each one (s)."""
        gaps = np.diff(self.positions_m())
        return np.concatenate([[0.0], np.cumsum(gaps / self._link_speeds_ms("out"))])

    def travel_in_s(self) -> np.ndarray:
        """Inbound travel time from the last intersection to each one (s)."""
        times = np.diff(self.positions_m()) / self._link_speeds_ms("in")
        rev = np.concatenate([np.cumsum(times[::-1])[::-1], [0.0]])
        return rev

    def fixed_cycle_s(self) -> float | None:
        """The cycle implied by fixed greens, if every intersection has them and no cycle_s is given."""
        if self.cycle_s is not None:
            return self.cycle_s
        totals = set()
        for it in self.intersections:
            if it.phases[0].green_s is None:
                return None
            totals.add(round(sum(p.green_s + p.clearance_s for p in it.phases), 6))  # type: ignore[operator]
        if len(totals) == 1:
            return totals.pop()
        raise ValueError(f"corridor {self.id!r}: fixed greens give different cycles per intersection {sorted(totals)}; set cycle_s")


def corridor_from_city(city, corridor_id: str, phase_flows_vph: dict | None = None) -> CorridorSpec:
    """Build a :class:`CorridorSpec` from a :class:`brain.city.model.City` corridor.

    ``phase_flows_vph`` maps ``intersection_id -> [flow per phase]`` (veh/h, phase order of the
    city model); phases without a flow get :data:`DEFAULT_FLOW_RATIO`
    (:data:`DEFAULT_COORDINATED_FLOW_RATIO` for the arterial phase).
    """
    try:
        cor = city.corridor(corridor_id)
    except KeyError:
        names = ", ".join(sorted(c.id for c in city.corridors)) or "none"
        raise ValueError(f"unknown corridor {corridor_id!r} (the city has: {names})") from None
    flows = phase_flows_vph or {}
    inters = []
    for iid, pos in zip(cor.intersections, cor.positions_m):
        x = city.intersection(iid)
        fl = flows.get(iid)
        phases = [
            PhaseSpec(
                name=p.name,
                min_green_s=p.min_green_s,
                ped_clearance_s=p.ped_clearance_s,
                yellow_s=p.yellow_s,
                all_red_s=p.all_red_s,
                coordinated=bool(p.coordinated),
                flow_vph=None if fl is None else float(fl[k]),
            )
            for k, p in enumerate(x.phases)
        ]
        inters.append(IntersectionSpec(id=iid, name=x.name, position_m=float(pos), phases=phases))
    return CorridorSpec(
        id=cor.id,
        name=cor.name,
        intersections=inters,
        speed_out_kmh=cor.speed_out_kmh,
        speed_in_kmh=cor.speed_in_kmh,
        cycle_min_s=cor.cycle_min_s,
        cycle_max_s=cor.cycle_max_s,
    )
