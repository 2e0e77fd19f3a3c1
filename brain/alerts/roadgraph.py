"""The road network as correlation sees it: which segments feed a segment, and how far back along the road.

A queue behind an accident grows *upstream*, segment by segment, along the road: after half an
hour it can reach 2-3 km back, far outside any straight-line radius that would not also swallow
the unrelated roads around it. :class:`RoadNetwork` links segment ``u`` to segment ``s`` when ``u``
ends where ``s`` starts (within ``join_m`` metres) and is not ``s`` driven the other way, and
answers "which segments lie upstream of ``s`` within ``max_m`` metres of road" with the distance
from ``s``'s start back to each one's downstream end (0 for a segment feeding ``s`` directly, plus
the length of every segment in between otherwise; shortest path, Dijkstra).

Correlate rules use it with ``upstream_m`` (``rules/emergency.yaml``): an incident on a segment
explains the congestion on the segments feeding it up to that many metres back.

Example: a straight road of three 800 m segments A -> B -> C, and the same road westbound:
    >>> from brain.city.model import RoadSegment
    >>> def seg(i, x0, x1):
    ...     return RoadSegment(id=i, name="r", district="D", cell="C1", road_class="arterial", length_m=800.0,
    ...                        free_flow_kmh=50.0, lanes=2, line=[[x0, 30.0], [x1, 30.0]])
    >>> k = 0.0083  # ~800 m of longitude at 30 N
    >>> net = RoadNetwork([seg("A", 0, k), seg("B", k, 2 * k), seg("C", 2 * k, 3 * k), seg("Bw", 2 * k, k)])
    >>> net.upstream("C", 3000.0)
    {'B': 0.0, 'A': 800.0}
    >>> net.upstream("C", 500.0), net.upstream("A", 3000.0)
    ({'B': 0.0}, {})
"""
from __future__ import annotations

import heapq
import math


def _metres(a: list[float], b: list[float]) -> float:
    kx = 111_320.0 * math.cos(math.radians((a[1] + b[1]) / 2))
    return math.hypot((a[0] - b[0]) * kx, (a[1] - b[1]) * 110_540.0)


class RoadNetwork:
    """Upstream links between road segments (see the module docstring); ``segments`` are
    :class:`brain.city.model.RoadSegment` (anything with ``id``, ``length_m`` and ``line``)."""

    def __init__(self, segments, join_m: float = 40.0):
        self.length = {s.id: float(s.length_m) for s in segments}
        self.feeders: dict[str, list[str]] = {s.id: [] for s in segments}
        # bucket segment ends on a grid of ~join_m so linking is near-linear in the number of segments
        cell = join_m / 111_000.0
        ends: dict[tuple[int, int], list] = {}
        for u in segments:
            if u.line:
                x, y = u.line[-1]
                ends.setdefault((int(x // cell), int(y // cell)), []).append(u)
        for s in segments:
            if not s.line:
                continue
            x, y = s.line[0]
            gx, gy = int(x // cell), int(y // cell)
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    for u in ends.get((gx + dx, gy + dy), ()):
                        if (u.id != s.id and _metres(u.line[-1], s.line[0]) < join_m
                                and _metres(u.line[0], s.line[-1]) > join_m):  # not s the other way
                            self.feeders[s.id].append(u.id)
        self._cache: dict[tuple[str, float], dict[str, float]] = {}

    @classmethod
    def of_city(cls, city) -> "RoadNetwork":
        return cls(city.segments)

    def upstream(self, segment_id: str, max_m: float) -> dict[str, float]:
        """Segments upstream of ``segment_id`` within ``max_m`` metres of road -> that distance (m)."""
        key = (segment_id, float(max_m))
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        out: dict[str, float] = {}
        heap = [(0.0, u) for u in self.feeders.get(segment_id, ())]
        heapq.heapify(heap)
        while heap:
            d, u = heapq.heappop(heap)
            if u in out or u == segment_id or d > max_m:
                continue
            out[u] = d
            for w in self.feeders.get(u, ()):
                if w not in out:
                    heapq.heappush(heap, (d + self.length.get(u, 0.0), w))
        self._cache[key] = out
        return out
