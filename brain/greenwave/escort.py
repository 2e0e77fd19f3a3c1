"""一键护航 across the city: one vehicle, a route over several corridors, green ahead, released behind.

A request names a vehicle and a destination (or an explicit list of intersections). The route is
the fastest path (free-flow time) over the city's directed road segments; its signals are the
intersections it passes, split into *legs*: maximal runs along one corridor in one direction.
Signals on no corridor (no coordinated plan to bend) are listed in :attr:`Escort.unplanned`.

Positions arrive as WGS84 points (``vehicle_position`` records). :meth:`Escort.update` projects
each onto the route polyline (array-based: all segments at once), never backwards by more than
``back_tol_m`` (GNSS jitter), converts the distance along the route into each leg's corridor
position and lets that leg's :class:`~brain.greenwave.priority.EmergencyPriority` predict the
arrival at every signal ahead, request its green window within the bounds (cross-street cost
``max_cross_delay_s`` per intersection, absolute :mod:`~brain.greenwave.limits`) and ``restore``
it once the vehicle is past. The cycle length is kept, so each intersection is back on its
coordinated offset at the next cycle. :meth:`Escort.cost` reports the green taken from cross
streets per intersection.

Example:
    >>> from brain.city import demo_city_path
    >>> from brain.city.loader import load_city
    >>> city = load_city(demo_city_path())
    >>> route = plan_route(city, "JF08", "QT03")
    >>> route.signals                 # fastest by free-flow time: across on an unsignalised street
    ['JF08', 'JF09', 'JF10', 'QT01', 'QT02', 'QT03']
    >>> plan_route(city, "JF08", "QT03", via=["X01"]).signals
    ['JF08', 'JF09', 'JF10', 'X01', 'QT01', 'QT02', 'QT03']
    >>> esc = Escort.for_city(city, route, vehicle_id="AMB-1", incident_id="INC-9")
    >>> [(leg.corridor, leg.signals, leg.direction) for leg in esc.legs]
    [('jiefang', ['JF08', 'JF09', 'JF10'], 'out'), ('qiutao', ['QT01', 'QT02', 'QT03'], 'out')]
    >>> esc.unplanned                 # signals on no corridor: nothing to bend (see Escort)
    []
    >>> lon, lat = route.point_at(0.0)
    >>> reqs = esc.update(t_s=0.0, lon=lon, lat=lat, speed_kmh=50.0)
    >>> sorted({r.intersection for r in reqs})        # within the 90 s horizon at 50 km/h
    ['JF08', 'JF09', 'JF10']
"""
from __future__ import annotations

import heapq
import math
from typing import Sequence

import numpy as np

from brain.greenwave.limits import DEFAULT_LIMITS, SafetyLimits
from brain.greenwave.model import CorridorSpec, corridor_from_city
from brain.greenwave.optimizer import optimize_corridor
from brain.greenwave.plan import Plan
from brain.greenwave.priority import EmergencyPriority, PriorityRequest

EARTH_RADIUS_M = 6_371_008.8
#: Road segment end points closer than this (m) are the same node of the road graph.
NODE_TOL_M = 15.0


class Route:
    """A path through the road graph: its polyline, signals and their distance along it (m).

    ``lon``/``lat`` are the polyline's vertices, ``s_m`` the distance along the route at each
    vertex, ``signals`` the intersections passed and ``signal_s_m`` where (numpy arrays).

    Example: ``plan_route(city, "JF08", "QT03")`` (see the module docstring).
    """

    def __init__(self, lon: Sequence[float], lat: Sequence[float], signals: list[str], signal_s_m: Sequence[float]):
        self.lon = np.asarray(lon, dtype=np.float64)
        self.lat = np.asarray(lat, dtype=np.float64)
        if self.lon.size < 2 or self.lon.shape != self.lat.shape:
            raise ValueError("a route needs at least two points")
        seg = _dist_m(self.lon[:-1], self.lat[:-1], self.lon[1:], self.lat[1:])
        self.s_m = np.concatenate([[0.0], np.cumsum(seg)])
        self.signals = list(signals)
        self.signal_s_m = np.asarray(signal_s_m, dtype=np.float64)

    @property
    def length_m(self) -> float:
        return float(self.s_m[-1])

    def point_at(self, s_m: float) -> tuple[float, float]:
        """The (lon, lat) ``s_m`` metres along the route (clamped to its ends)."""
        s = min(max(float(s_m), 0.0), self.length_m)
        return float(np.interp(s, self.s_m, self.lon)), float(np.interp(s, self.s_m, self.lat))

    def project(self, lon: float, lat: float) -> tuple[np.ndarray, np.ndarray]:
        """For every polyline segment: distance along the route of the nearest point and the
        distance (m) from the point to it. Local equirectangular metres: routes are city-sized."""
        kx = math.cos(math.radians(float(np.mean(self.lat)))) * EARTH_RADIUS_M * math.pi / 180.0
        ky = EARTH_RADIUS_M * math.pi / 180.0
        ax, ay = self.lon[:-1] * kx, self.lat[:-1] * ky
        dx, dy = self.lon[1:] * kx - ax, self.lat[1:] * ky - ay
        px, py = lon * kx, lat * ky
        L2 = dx * dx + dy * dy
        u = np.clip(np.where(L2 > 0, ((px - ax) * dx + (py - ay) * dy) / np.where(L2 > 0, L2, 1.0), 0.0), 0.0, 1.0)
        off = np.hypot(ax + u * dx - px, ay + u * dy - py)
        return self.s_m[:-1] + u * (self.s_m[1:] - self.s_m[:-1]), off


def _dist_m(lon1, lat1, lon2, lat2):
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(np.radians(np.asarray(lon2) - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(a)))


def plan_route(city, origin: str, destination: str, via: Sequence[str] = ()) -> Route:
    """Fastest route (free-flow time over the directed road segments) from intersection ``origin``
    to intersection ``destination`` through ``via`` in order. A clear ``ValueError`` if an id is
    unknown or no path exists."""
    stops = [origin, *via, destination]
    nodes = {}
    for iid in stops:
        try:
            x = city.intersection(iid)
        except KeyError:
            raise ValueError(f"unknown intersection {iid!r} in the route request") from None
        nodes[iid] = (x.lon, x.lat)
    # graph nodes: segment end points merged within NODE_TOL_M, keyed by a rounded coordinate
    key = lambda lon, lat: (round(lon / 1e-4), round(lat / 1e-4))  # ~10 m cells: demo coordinates coincide exactly
    adj: dict = {}
    for seg in city.segments:
        a, b = key(*seg.line[0]), key(*seg.line[-1])
        adj.setdefault(a, []).append((seg.free_flow_time_s, b, seg))
    inter_at = {key(x.lon, x.lat): x for x in city.intersections}
    lon: list[float] = []
    lat: list[float] = []
    for a_id, b_id in zip(stops, stops[1:]):
        src, dst = key(*nodes[a_id]), key(*nodes[b_id])
        best, prev, heap = {src: 0.0}, {}, [(0.0, src)]
        while heap:
            t, n = heapq.heappop(heap)
            if n == dst:
                break
            if t > best.get(n, math.inf):
                continue
            for dt, m, seg in adj.get(n, ()):
                if t + dt < best.get(m, math.inf):
                    best[m], prev[m] = t + dt, (n, seg)
                    heapq.heappush(heap, (t + dt, m))
        if dst not in best:
            raise ValueError(f"no road path from {a_id!r} to {b_id!r}")
        segs = []
        n = dst
        while n != src:
            n, seg = prev[n]
            segs.append(seg)
        if not lon:
            lon.append(nodes[a_id][0])
            lat.append(nodes[a_id][1])
        for seg in reversed(segs):
            for p in seg.line[1:]:
                lon.append(p[0])
                lat.append(p[1])
    r = Route(lon, lat, [], [])
    sig, s_sig = [], []
    for k in range(len(lon)):
        x = inter_at.get(key(lon[k], lat[k]))
        if x is not None and (not sig or sig[-1] != x.id):
            sig.append(x.id)
            s_sig.append(float(r.s_m[k]))
    r.signals, r.signal_s_m = sig, np.asarray(s_sig)
    return r


class Leg:
    """Consecutive route signals along one corridor in one direction, with their priority follower."""

    def __init__(self, corridor: str, signals: list[str], route_s_m: np.ndarray, corridor_pos_m: np.ndarray,
                 direction: str, follower: EmergencyPriority):
        self.corridor, self.signals, self.direction = corridor, signals, direction
        self.route_s_m, self.corridor_pos_m = route_s_m, corridor_pos_m
        self.follower = follower

    def corridor_position(self, s_m: float) -> float:
        """Route distance -> corridor position: piecewise linear through the leg's signals,
        extended at travel speed beyond its ends (so arrival at the leg is predicted too)."""
        sign = 1.0 if self.direction == "out" else -1.0
        s0, s1 = self.route_s_m[0], self.route_s_m[-1]
        if s_m <= s0:
            return float(self.corridor_pos_m[0] + sign * (s_m - s0))
        if s_m >= s1:
            return float(self.corridor_pos_m[-1] + sign * (s_m - s1))
        return float(np.interp(s_m, self.route_s_m, self.corridor_pos_m))


class Escort:
    """Follows one vehicle along a :class:`Route` and asks each corridor's signals for green.

    ``specs``/``plans`` map corridor id to its spec and running plan; the priority bounds
    (``pre_s``, ``post_s``, ``max_cross_delay_s``, ``horizon_s``, ``reissue_s``, ``clear_m``) go
    to every leg's :class:`EmergencyPriority`; ``kind`` is ``"emergency"`` or ``"bus"`` (buses get
    tighter bounds: pass them). Within ``arrive_m`` of the route's end the vehicle has arrived
    and every hold is released (:meth:`finish`, also for a cancelled escort). Every request is in :attr:`log`, in order.

    Conditional priority (buses): with a ``timetable`` — ``(distance along the route m, scheduled
    time s on the plan clock)`` pairs, distances increasing — the vehicle is escorted only while it
    runs more than ``late_s`` behind it (interpolated at its position): an on-time bus takes no
    green from cross streets, and one that catches up releases what it held. :attr:`lateness_s`
    is the last figure.

    Example: see the module docstring.
    """

    def __init__(self, route: Route, specs: dict[str, CorridorSpec], plans: dict[str, Plan], vehicle_id: str, *,
                 incident_id: str | None = None, kind: str = "emergency", back_tol_m: float = 30.0, arrive_m: float = 15.0,
                 limits: SafetyLimits = DEFAULT_LIMITS, timetable: Sequence[tuple[float, float]] | None = None,
                 late_s: float = 60.0, **bounds):
        if kind not in ("emergency", "bus"):
            raise ValueError(f"kind must be 'emergency' or 'bus', got {kind!r}")
        self.timetable = None
        if timetable is not None:
            tt = np.asarray(timetable, dtype=np.float64)
            if tt.ndim != 2 or tt.shape[1] != 2 or len(tt) < 1 or not np.isfinite(tt).all() \
                    or (np.diff(tt[:, 0]) <= 0).any() or (np.diff(tt[:, 1]) < 0).any():
                raise ValueError("timetable must be (distance m, time s) pairs with increasing distance "
                                 "and non-decreasing time")
            if not (math.isfinite(late_s) and late_s >= 0):
                raise ValueError(f"late_s must be >= 0, got {late_s}")
            self.timetable = tt
        self.late_s = float(late_s)
        self.lateness_s: float | None = None
        self.route, self.vehicle_id, self.kind = route, vehicle_id, kind
        self.back_tol_m, self.arrive_m = back_tol_m, arrive_m
        self.legs: list[Leg] = []
        self.unplanned: list[str] = []
        where = {}
        for cid, spec in specs.items():
            for k, it in enumerate(spec.intersections):
                where.setdefault(it.id, (cid, k))
        sig = route.signals
        i = 0
        while i < len(sig):
            if sig[i] not in where or where[sig[i]][0] not in plans:
                self.unplanned.append(sig[i])
                i += 1
                continue
            cid, k0 = where[sig[i]]
            j, step = i + 1, 0
            while j < len(sig) and sig[j] in where and where[sig[j]][0] == cid:
                d = where[sig[j]][1] - where[sig[j - 1]][1]
                if d not in (1, -1) or (step and d != step):
                    break
                step, j = d, j + 1
            ids = sig[i:j]
            spec = specs[cid]
            pos = np.asarray([spec.intersections[where[s][1]].position_m for s in ids])
            fol = EmergencyPriority(spec, plans[cid], route=ids, vehicle_id=vehicle_id, incident_id=incident_id,
                                    kind=kind, limits=limits, **bounds)
            self.legs.append(Leg(cid, ids, route.signal_s_m[i:j], pos, fol.direction, fol))
            i = j
        self.s_m = 0.0
        self.log: list[PriorityRequest] = []

    @classmethod
    def for_city(cls, city, route: Route, vehicle_id: str, plans: dict[str, Plan] | None = None, **kw) -> "Escort":
        """Specs from the city's corridors; plans optimised now unless given."""
        specs = {c.id: corridor_from_city(city, c.id) for c in city.corridors}
        plans = plans or {cid: optimize_corridor(s, valid_from_ms=0) for cid, s in specs.items()}
        return cls(route, specs, plans, vehicle_id, **kw)

    def locate(self, lon: float, lat: float) -> float:
        """Distance along the route of the nearest route point, never behind the last by more than
        ``back_tol_m`` (so a crossing route's earlier part cannot capture the vehicle)."""
        s, off = self.route.project(lon, lat)
        ok = s >= self.s_m - self.back_tol_m
        s_new = float(s[ok][np.argmin(off[ok])]) if ok.any() else self.s_m
        self.s_m = max(self.s_m, s_new)
        return self.s_m

    def update(self, t_s: float, lon: float, lat: float, speed_kmh: float) -> list[PriorityRequest]:
        """A new position (WGS84) at ``t_s`` (plan clock, s): the requests and releases issued now."""
        if not all(map(math.isfinite, (t_s, lon, lat, speed_kmh))) or speed_kmh < 0:
            raise ValueError("t_s, lon, lat must be finite and speed_kmh >= 0")
        s = self.locate(lon, lat)
        out = []
        if self.timetable is not None:
            self.lateness_s = float(t_s - np.interp(s, self.timetable[:, 0], self.timetable[:, 1]))
            if self.lateness_s <= self.late_s:
                # on time (or caught up): nothing requested, anything still held goes back to the plan
                out = [r for leg in self.legs for r in leg.follower.hold_off(t_s, leg.corridor_position(s))]
                self.log += out
                return out
        for leg in self.legs:
            out += leg.follower.update(t_s=t_s, position_m=leg.corridor_position(s), speed_kmh=speed_kmh)
        self.log += out
        if s >= self.route.length_m - self.arrive_m:
            out += self.finish(t_s)  # at the destination: nothing ahead is needed any more
        return out

    def finish(self, t_s: float) -> list[PriorityRequest]:
        """Arrived or cancelled: release every intersection still held."""
        out = [r for leg in self.legs for r in leg.follower.release(t_s)]
        self.log += out
        return out

    def active(self) -> list[str]:
        """Intersections currently held for the vehicle (requested, not yet released)."""
        return [iid for leg in self.legs for iid in leg.follower.active()]

    def cost(self) -> dict[str, float]:
        """Green taken from cross streets (s) per intersection: the last request before release."""
        last: dict[str, float] = {}
        for r in self.log:
            if r.action != "restore":
                last[r.intersection] = r.cross_delay_s
        return last


def red_wait_s(plan: Plan, spec: CorridorSpec, intersection: str, direction: str, arrive_s: float,
               greens: list[list[float]] | None = None) -> float:
    """How long a vehicle arriving at ``arrive_s`` waits for its green (s, no queue): under the
    plan, or under a priority request's adjusted ``greens`` when given (its served-phase entries).
    A first-order estimate of what priority saves, not a simulation."""
    ids = [it.id for it in spec.intersections]
    i = ids.index(intersection)
    it = plan.intersections[i]
    k = spec.intersections[i].phase_index(direction)
    num, g, C = it.phases[k].number, it.phases[k].green_s, plan.cycle_s
    served = [(a, b) for ph, a, b in (greens or []) if int(ph) == num]
    for a, b in served:
        if a - 1e-9 <= arrive_s <= b + 1e-9:
            return 0.0
    later = [a for a, _ in served if a > arrive_s]
    if later:
        return min(later) - arrive_s
    start = it.offset_s + it.phase_start_s(k)
    into = (arrive_s - start) % C
    return 0.0 if into <= g else C - into
