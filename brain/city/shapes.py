"""Geometry checks of a city: its GeoJSON polygons and where every placed item lies.

:class:`ShapeChecks` is the part of :class:`brain.city.checks.CityChecker` that reads
``districts.geojson`` / ``cells.geojson`` (FeatureCollections of Polygon / MultiPolygon features
whose ``properties.id`` names a district or grid cell) and then checks that every sensor, cell
centre, intersection and hazard source lies in (or near) its district and cell.

Example:
    >>> from brain.city.checks import CityChecker
    >>> c = CityChecker([])
    >>> c.check_geojson("cells.geojson", {"type": "FeatureCollection", "features": [{"type": "Feature"}]}, "cell")
    >>> [str(p) for p in c.problems]
    ['cells.geojson: features[0].properties.id: expected the cell id as a string']
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from brain.city import geo
from brain.city.problems import CITY_FILE, is_finite_number

#: A point further than this from the city centre is "far outside the city".
FAR_FROM_CENTER_M = 50_000.0
#: How far outside its district polygon a point (sensor, cell centre, segment...) may lie.
DISTRICT_TOLERANCE_M = 1_000.0
#: How far outside its grid-cell polygon a sensor, intersection or hazard source may lie.
CELL_TOLERANCE_M = 500.0


class ShapeChecks:
    """Polygon and placement checks; mixed into :class:`brain.city.checks.CityChecker` (which holds the state)."""

    def check_geojson(self, file: str, fc: Any, kind: str) -> None:
        if fc is None:
            return  # not given (in-memory city) or missing/unreadable (already reported by load_city)
        add = lambda path, msg: self.add(path, msg, file)  # noqa: E731
        if not isinstance(fc, Mapping) or fc.get("type") != "FeatureCollection":
            add("type", "expected a GeoJSON FeatureCollection")
            return
        features = fc.get("features")
        if not isinstance(features, list):
            add("features", "expected a list of features")
            return
        section = f"{kind}s"
        polygons = self.polygons[kind]
        for i, feat in enumerate(features):
            fp = f"features[{i}]"
            if not isinstance(feat, Mapping) or feat.get("type") != "Feature":
                add(f"{fp}.type", "expected a GeoJSON Feature")
                continue
            props = feat.get("properties")
            fid = props.get("id") if isinstance(props, Mapping) else None
            if not isinstance(fid, str):
                add(f"{fp}.properties.id", f"expected the {kind} id as a string")
                continue
            if fid in polygons:
                add(f"{fp}.properties.id", f"duplicate {kind} id '{fid}'")
            elif self.city_ok and fid not in self.ids[section]:
                add(f"{fp}.properties.id", f"unknown {kind} '{fid}' (not in {CITY_FILE} {section})")
            rings = self.geometry(file, f"{fp}.geometry", feat.get("geometry"))
            if rings is not None and fid not in polygons:
                polygons[fid] = rings
        if self.city_ok:
            for i, obj in self.items[section]:
                if obj.id not in polygons:
                    add("features", f"no polygon for {kind} '{obj.id}' ({CITY_FILE} {section}[{i}])")

    def geometry(self, file: str, gp: str, geom: Any) -> list | None:
        add = lambda path, msg: self.add(path, msg, file)  # noqa: E731
        if not isinstance(geom, Mapping):
            add(gp, "expected a Polygon or MultiPolygon geometry")
            return None
        gtype, coords = geom.get("type"), geom.get("coordinates")
        if gtype == "Polygon":
            polys, paths = [coords], [f"{gp}.coordinates"]
        elif gtype == "MultiPolygon":
            if not isinstance(coords, list) or not coords:
                add(f"{gp}.coordinates", "expected a non-empty list of polygons")
                return None
            polys, paths = coords, [f"{gp}.coordinates[{k}]" for k in range(len(coords))]
        else:
            add(f"{gp}.type", f"expected Polygon or MultiPolygon, got {gtype!r}")
            return None
        rings_out, ok = [], True
        for poly, pp in zip(polys, paths):
            if not isinstance(poly, list) or not poly:
                add(pp, "expected a non-empty list of rings")
                ok = False
                continue
            for r, ring in enumerate(poly):
                rp = f"{pp}[{r}]"
                if not isinstance(ring, list) or len(ring) < 4:
                    add(rp, "a ring needs at least 4 positions (closed triangle)")
                    ok = False
                    continue
                pts_ok = True
                for k, pt in enumerate(ring):
                    if not (isinstance(pt, list) and len(pt) in (2, 3) and all(is_finite_number(v) for v in pt)):
                        add(f"{rp}[{k}]", "expected a position [lon, lat]")
                        pts_ok = False
                    elif not self.lonlat(f"{rp}[{k}]", pt[0], pt[1], paths=(f"{rp}[{k}][0]", f"{rp}[{k}][1]"), file=file):
                        pts_ok = False
                    if not pts_ok:
                        break
                if not pts_ok:
                    ok = False
                    continue
                if list(ring[0][:2]) != list(ring[-1][:2]):
                    add(rp, f"ring is not closed: first position {ring[0]} != last {ring[-1]}")
                    ok = False
                    continue
                rings_out.append([[float(p[0]), float(p[1])] for p in ring])
        return rings_out if ok else None

    # -- where things are ----------------------------------------------------------------------
    def check_geometry(self) -> None:
        """Points and lines must lie in their district (and cell) polygons, within a tolerance."""
        dpoly, cpoly = self.polygons["district"], self.polygons["cell"]
        if not (dpoly or cpoly):
            return

        def place(path: str, item_id: str, lon: float, lat: float, district: str, cell: str | None) -> None:
            if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
                return  # already reported as out of range
            if self.center is not None and geo.haversine_m(*self.center, lon, lat) > FAR_FROM_CENTER_M:
                return  # already reported as far outside the city
            if district in dpoly and not geo.within_m(lon, lat, dpoly[district], DISTRICT_TOLERANCE_M):
                d = geo.distance_to_rings_m(lon, lat, dpoly[district])
                self.add(path, f"[{lon}, {lat}] lies {d:.0f} m outside its district '{district}' ({item_id})")
            elif cell is not None and cell in cpoly and not geo.within_m(lon, lat, cpoly[cell], CELL_TOLERANCE_M):
                d = geo.distance_to_rings_m(lon, lat, cpoly[cell])
                self.add(path, f"[{lon}, {lat}] lies {d:.0f} m outside its cell '{cell}' ({item_id})")

        for i, c in self.items["cells"]:
            if len(c.center) == 2:
                place(f"cells[{i}].center", c.id, c.center[0], c.center[1], c.district, c.id)
        for i, d in self.items["districts"]:
            if len(d.center) == 2:
                place(f"districts[{i}].center", d.id, d.center[0], d.center[1], d.id, None)
        for i, s in self.items["segments"]:
            for j, p in enumerate(s.line):
                if len(p) == 2:
                    place(f"segments[{i}].line[{j}]", s.id, p[0], p[1], s.district, None)
        for section in ("intersections", "hazards", "sensors"):
            for i, x in self.items[section]:
                place(f"{section}[{i}]", x.id, x.lon, x.lat, x.district, x.cell)
