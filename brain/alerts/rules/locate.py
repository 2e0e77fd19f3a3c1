"""Where an alert is: labels (street, district, cell) and a point from the city model.

Example:
    >>> from brain.city import demo_city_path, load_city
    >>> loc = Locator(load_city(demo_city_path()))
    >>> labels = {"sensor_id": "AQ-nanhu-1"}
    >>> lon, lat = loc.enrich(labels, {})
    >>> sorted(labels), round(lon, 2)
    (['cell', 'district', 'sensor_id', 'street'], 120.1)
"""
from __future__ import annotations

import math

import numpy as np

from brain.alerts.routing import point_in_polygon


class Locator:
    """Adds ``street``/``district`` labels and a point (lon, lat) from the city model, when one is given.

    A ``key`` label (detector output) naming a segment, sensor, cell or district gets the matching label.
    :meth:`enrich` is the reference; :meth:`enrich_cached` gives the same result from a memo keyed by
    everything :meth:`enrich` reads (the compiled evaluator calls it once per candidate row).

    >>> loc = Locator()  # no city: the row's own point, nothing added
    >>> labels = {"sensor_id": "N1"}
    >>> loc.enrich(labels, {"lon": 120.1, "lat": 30.2}), labels
    ((120.1, 30.2), {'sensor_id': 'N1'})
    >>> loc.enrich_cached(labels, 120.1, 30.2)
    (120.1, 30.2)
    """

    def __init__(self, city=None):
        self.city = city
        self._memo: dict[tuple, tuple[dict[str, str], float | None, float | None]] = {}
        self._sensor = {s.id: s for s in city.sensors} if city else {}
        self._cell = {c.id: c for c in city.cells} if city else {}
        self._segment = {s.id: s for s in city.segments} if city else {}
        self._district = {d.id: d for d in city.districts} if city else {}
        self._polygons = [(self._cell[cid], ring[0]) for cid, ring in (city.cell_polygons.items() if city else [])
                          if cid in self._cell and ring and len(ring[0]) >= 3]
        cells = list(self._cell.values())
        self._centres = (cells, np.array([c.center for c in cells], dtype=np.float64).reshape(-1, 2))

    def cell_at(self, lon: float, lat: float):
        """The grid cell holding a point: by the cell polygons when the city has them, else the nearest centre."""
        for cell, ring in self._polygons:
            if point_in_polygon(lon, lat, ring):
                return cell
        cells, xy = self._centres
        if not cells:
            return None
        kx = math.cos(math.radians(lat))
        d2 = ((xy[:, 0] - lon) * kx) ** 2 + (xy[:, 1] - lat) ** 2
        return cells[int(np.argmin(d2))]

    def enrich(self, labels: dict[str, str], row: dict) -> tuple[float | None, float | None]:
        lon, lat = row.get("lon"), row.get("lat")
        if not self.city:
            return (float(lon), float(lat)) if isinstance(lon, (int, float)) and isinstance(lat, (int, float)) else (None, None)
        key = labels.get("key")
        if key and "segment_id" not in labels and "sensor_id" not in labels:
            # detector output names what it scored only as "key": a segment, a sensor, a cell or a district
            if key in self._segment:
                labels["segment_id"] = key
            elif key in self._sensor:
                labels["sensor_id"] = key
            elif key in self._cell:
                labels.setdefault("cell", key)
            elif key in self._district:
                labels.setdefault("district", key)
        sensor = self._sensor.get(labels.get("sensor_id", "")) if "sensor_id" in labels else None
        seg = self._segment.get(labels.get("segment_id", "")) if "segment_id" in labels else None
        cell_id = labels.get("cell") or (sensor.cell if sensor else None) or (seg.cell if seg else None)
        cell = self._cell.get(cell_id or "")
        if cell is None and "district" not in labels and isinstance(lon, (int, float)) and isinstance(lat, (int, float)):
            cell = self.cell_at(float(lon), float(lat))  # a point only (an incident off the road network)
        if cell is not None:
            labels.setdefault("cell", cell.id)
            labels.setdefault("street", cell.street)
            labels.setdefault("district", cell.district)
        if isinstance(lon, (int, float)) and isinstance(lat, (int, float)):
            return float(lon), float(lat)
        if sensor is not None:
            return sensor.lon, sensor.lat
        if seg is not None and seg.line:
            mid = seg.line[len(seg.line) // 2]
            return float(mid[0]), float(mid[1])
        if cell is not None:
            return float(cell.center[0]), float(cell.center[1])
        d = self._district.get(labels.get("district", ""))
        if d is not None:
            return float(d.center[0]), float(d.center[1])
        return None, None

    def enrich_cached(self, labels: dict[str, str], lon: object, lat: object) -> tuple[float | None, float | None]:
        """:meth:`enrich` for a row whose point is ``lon``/``lat`` (None when the row has none), memoised.

        :meth:`enrich` reads only the labels in :data:`READS`, and the point when it is a number; it
        only adds labels. So the labels it adds and the point it returns are a function of those, and
        are applied here in the order :meth:`enrich` adds them."""
        if not isinstance(lon, (int, float)) or not isinstance(lat, (int, float)):
            lon = lat = None
        if not self.city:
            return (float(lon), float(lat)) if lon is not None else (None, None)  # type: ignore[arg-type]
        key = (labels.get("key"), labels.get("sensor_id"), labels.get("segment_id"), labels.get("cell"),
               labels.get("district"), labels.get("street"), lon, lat)
        hit = self._memo.get(key)
        if hit is None:
            probe = {k: v for k, v in zip(READS, key) if v is not None}
            before = set(probe)
            point = self.enrich(probe, {} if lon is None else {"lon": lon, "lat": lat})
            hit = ({k: v for k, v in probe.items() if k not in before}, *point)
            if len(self._memo) > 200_000:  # rows with their own points (incidents) keep coming: stay bounded
                self._memo.clear()
            self._memo[key] = hit
        if hit[0]:
            labels.update(hit[0])
        return hit[1], hit[2]


#: The labels :meth:`Locator.enrich` reads (and the order of the memo key).
READS = ("key", "sensor_id", "segment_id", "cell", "district", "street")
