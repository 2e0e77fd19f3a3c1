"""Small WGS84 geometry helpers for city data: distances, polyline length, point-in-polygon.

City data is at most tens of kilometres across, so the local equirectangular approximation is
used for point-to-ring distances (error well below a metre at that scale); great-circle
distances use the haversine formula. Polygons are lists of rings of ``[lon, lat]``; a point is
inside when it is inside an odd number of rings (even-odd rule), which handles holes and
multi-part areas flattened into one list of rings.

Example:
    >>> round(haversine_m(120.0, 30.0, 120.01, 30.0))
    963
    >>> square = [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]]]
    >>> point_in_rings(0.5, 0.5, square), point_in_rings(1.5, 0.5, square)
    (True, False)
"""
from __future__ import annotations

import math
from collections.abc import Sequence

EARTH_RADIUS_M = 6_371_008.8

Ring = Sequence[Sequence[float]]


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres between two WGS84 points given in degrees (NaN if any is not finite)."""
    if not all(map(math.isfinite, (lon1, lat1, lon2, lat2))):
        return math.nan
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def polyline_length_m(points: Sequence[Sequence[float]]) -> float:
    """Length in metres of a polyline of ``[lon, lat]`` points (0 for fewer than two points)."""
    return sum(haversine_m(a[0], a[1], b[0], b[1]) for a, b in zip(points, points[1:]))


def point_in_rings(lon: float, lat: float, rings: Sequence[Ring]) -> bool:
    """True when the point lies inside an odd number of the rings (even-odd rule)."""
    inside = False
    for ring in rings:
        n = len(ring)
        j = n - 1
        for i in range(n):
            xi, yi = ring[i][0], ring[i][1]
            xj, yj = ring[j][0], ring[j][1]
            if (yi > lat) != (yj > lat):
                x_cross = xi + (lat - yi) * (xj - xi) / (yj - yi)
                if lon < x_cross:
                    inside = not inside
            j = i
    return inside


def distance_to_rings_m(lon: float, lat: float, rings: Sequence[Ring]) -> float:
    """Distance in metres from the point to the nearest ring edge (0 when there are no edges)."""
    kx = math.cos(math.radians(lat)) * math.pi / 180 * EARTH_RADIUS_M  # metres per degree lon
    ky = math.pi / 180 * EARTH_RADIUS_M  # metres per degree lat
    best = math.inf
    for ring in rings:
        for a, b in zip(ring, ring[1:]):
            ax, ay = (a[0] - lon) * kx, (a[1] - lat) * ky
            bx, by = (b[0] - lon) * kx, (b[1] - lat) * ky
            dx, dy = bx - ax, by - ay
            seg2 = dx * dx + dy * dy
            t = 0.0 if seg2 == 0 else max(0.0, min(1.0, -(ax * dx + ay * dy) / seg2))
            best = min(best, math.hypot(ax + t * dx, ay + t * dy))
    return 0.0 if best == math.inf else best


def distance_to_line_m(lon: float, lat: float, line: Sequence[Sequence[float]]) -> float:
    """Distance in metres from the point to a polyline of ``[lon, lat]`` points."""
    return distance_to_rings_m(lon, lat, [line])


def within_m(lon: float, lat: float, rings: Sequence[Ring], tolerance_m: float) -> bool:
    """True when the point is inside the polygon or at most ``tolerance_m`` metres outside it."""
    return point_in_rings(lon, lat, rings) or distance_to_rings_m(lon, lat, rings) <= tolerance_m


def bbox(rings: Sequence[Ring]) -> tuple[float, float, float, float]:
    """``(min_lon, min_lat, max_lon, max_lat)`` of all ring points."""
    xs = [p[0] for r in rings for p in r]
    ys = [p[1] for r in rings for p in r]
    return min(xs), min(ys), max(xs), max(ys)
