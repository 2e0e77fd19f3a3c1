"""The checks of a city folder: types, referential integrity and physics of every section.

:class:`CityChecker` walks ``city.yaml``'s parsed data section by section and collects every
:class:`Problem` (file, field path, message) instead of stopping at the first; the polygons and
every placed item's geometry are checked by :class:`brain.city.shapes.ShapeChecks`, which it
inherits. :func:`brain.city.loader.load_city` reads the files and runs it.

Example:
    >>> checker = CityChecker([])
    >>> checker.check_city({"name": "X"})
    >>> [str(p) for p in checker.problems][:2]
    ['city.yaml: admin_code: missing required field', 'city.yaml: timezone: missing required field']
"""
from __future__ import annotations

import functools
import math
import re
import typing
import zoneinfo
from collections import Counter
from collections.abc import Mapping
from typing import Any

import msgspec

from brain.city import geo
from brain.city.model import (
    SENSOR_FAMILY,
    City,
    Corridor,
    District,
    GridCell,
    HazardSource,
    HealthWeights,
    Intersection,
    NoiseClass,
    RoadClass,
    RoadSegment,
    Sensor,
    Street,
)
from brain.city.problems import CELLS_FILE, CITY_FILE, DISTRICTS_FILE, Problem
from brain.city.shapes import FAR_FROM_CENTER_M, ShapeChecks


#: How far from the intersection an approach segment may end.
APPROACH_TOLERANCE_M = 300.0
#: How far from its segment's line a traffic sensor may lie.
SENSOR_SEGMENT_TOLERANCE_M = 500.0
#: How far from its hazard source a hazard sensor may lie.
HAZARD_SENSOR_TOLERANCE_M = 2_000.0

#: Unit of a utility sensor -> the :class:`brain.schemas.UtilityReading` field it measures.
UTILITY_UNIT_FIELD: dict[str, str] = {"kPa": "pressure_kpa", "m3/h": "flow_m3h", "kW": "load_kw"}
UTILITY_TYPES = frozenset({"utility_power", "utility_water", "utility_gas", "utility_heat"})
SEGMENT_SENSOR_TYPES = frozenset({"loop", "video", "radar", "probe"})

# section name -> item struct (order: referenced kinds first, so error lists read top-down)
SECTIONS: dict[str, type[msgspec.Struct]] = {
    "districts": District,
    "streets": Street,
    "cells": GridCell,
    "segments": RoadSegment,
    "intersections": Intersection,
    "corridors": Corridor,
    "hazards": HazardSource,
    "sensors": Sensor,
}
_CITY_FIELDS = {f.name: f for f in msgspec.structs.fields(City)}
_POLYGON_FIELDS = ("district_polygons", "cell_polygons")
_SCALAR_FIELDS = [n for n in _CITY_FIELDS if n not in SECTIONS and n not in _POLYGON_FIELDS]
_LITERAL_FIELDS = {"noise_class": typing.get_args(NoiseClass), "road_class": typing.get_args(RoadClass)}
_AT_RE = re.compile(r"^(?P<msg>.*) - at `\$(?P<path>.*)`$")
_FIELD_RE = re.compile(r"^Object (?P<what>missing required field|contains unknown field) `(?P<field>[^`]*)`$")


# --- checking ----------------------------------------------------------------------------------
@functools.cache
def _numeric_fields(cls: type) -> tuple[str, ...]:
    """Fields of a struct that can hold floats (directly, in lists, or in nested structs)."""
    skip = (str, int, bool, list[str], str | None)
    return tuple(f.name for f in msgspec.structs.fields(cls)
                 if f.type not in skip and typing.get_origin(f.type) is not typing.Literal)


def _admin_code_ok(code: str) -> bool:
    return len(code) == 6 and code.isascii() and code.isdigit()


class CityChecker(ShapeChecks):
    """Collects every problem of one city's data; see the module docstring for an example."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        self.items: dict[str, list[tuple[int, Any]]] = {s: [] for s in SECTIONS}  # decoded (index, struct)
        self.ids: dict[str, set[str]] = {s: set() for s in SECTIONS}  # every id seen, decoded or not
        self.center: tuple[float, float] | None = None
        self.city_code: str | None = None
        self.polygons: dict[str, dict[str, list]] = {"district": {}, "cell": {}}
        self.city_ok = False
        self.cell_district: dict[str, str] = {}
        self.street_district: dict[str, str] = {}
        self.hazard_unit: dict[str, str] = {}
        self.intersection_by_id: dict[str, Intersection] = {}
        self.segment_line: dict[str, list[list[float]]] = {}
        self.hazard_site: dict[str, tuple[float, float]] = {}

    def add(self, path: str, message: str, file: str = CITY_FILE) -> None:
        self.problems.append(Problem(file, path, message))

    # -- city.yaml ---------------------------------------------------------------------------
    def check_city(self, data: Any) -> None:
        if not isinstance(data, Mapping):
            what = "empty" if data is None else type(data).__name__
            self.add("", f"expected a mapping of city fields at the top level, got {what}")
            return
        self.city_ok = True
        for key in data:
            if key in _POLYGON_FIELDS:
                self.add(str(key), f"polygons belong in {DISTRICTS_FILE} / {CELLS_FILE}, not in {CITY_FILE}")
            elif key not in _CITY_FIELDS:
                self.add(str(key), "unknown field")
        for name, info in _CITY_FIELDS.items():
            if info.required and name not in data:
                self.add(name, "missing required field")
        scalars = {}
        for name in _SCALAR_FIELDS:
            if name in data:
                value = self.convert(data[name], _CITY_FIELDS[name].type, name)
                if value is not None:
                    scalars[name] = value
        self.check_scalars(scalars)
        for section, item_type in SECTIONS.items():
            raw = data.get(section, [])
            if raw is None or not isinstance(raw, list):
                self.add(section, f"expected a list, got {'null' if raw is None else type(raw).__name__}")
                continue
            seen: Counter[str] = Counter()
            for i, item in enumerate(raw):
                path = f"{section}[{i}]"
                if isinstance(item, Mapping) and isinstance(item.get("id"), str):
                    if not item["id"] or item["id"] != item["id"].strip():
                        self.add(f"{path}.id", f"id {item['id']!r} is empty or has surrounding spaces")
                    self.ids[section].add(item["id"])
                    seen[item["id"]] += 1
                    if seen[item["id"]] == 2:
                        self.add(f"{path}.id", f"duplicate id '{item['id']}' in {section}")
                obj = self.convert(item, item_type, path)
                if obj is not None:
                    self.nonfinite(obj, path)
                    self.items[section].append((i, obj))
        # Lookups over the decoded items, shared by the per-item checks below.
        self.cell_district = {c.id: c.district for _, c in self.items["cells"]}
        self.street_district = {x.id: x.district for _, x in self.items["streets"]}
        self.hazard_unit = {h.id: h.unit for _, h in self.items["hazards"]}
        self.intersection_by_id = {x.id: x for _, x in self.items["intersections"]}
        self.segment_line = {x.id: x.line for _, x in self.items["segments"]
                             if len(x.line) >= 2 and all(len(p) == 2 and self.usable(*p) for p in x.line)}
        self.hazard_site = {h.id: (h.lon, h.lat) for _, h in self.items["hazards"]}
        for section in SECTIONS:
            check = getattr(self, f"check_{section}")
            for i, obj in self.items[section]:
                check(f"{section}[{i}]", obj)

    def convert(self, value: Any, typ: Any, path: str) -> Any:
        try:
            return msgspec.convert(value, type=typ)
        except msgspec.ValidationError as exc:
            msg = str(exc)
            at = _AT_RE.match(msg)
            if at:
                msg, path = at["msg"], path + at["path"]
            field = _FIELD_RE.match(msg)
            if field:
                path = f"{path}.{field['field']}"
                msg = "missing required field" if field["what"].startswith("missing") else "unknown field"
            name = path.rsplit(".", 1)[-1]
            if msg.startswith("Invalid enum value") and name in _LITERAL_FIELDS:
                msg += f"; expected one of {', '.join(repr(v) for v in _LITERAL_FIELDS[name])}"
            self.add(path, msg)
            return None

    def nonfinite(self, obj: Any, path: str) -> None:
        if isinstance(obj, float):
            if not math.isfinite(obj):
                self.add(path, f"{obj} is not a finite number")
        elif isinstance(obj, list):
            for j, v in enumerate(obj):
                self.nonfinite(v, f"{path}[{j}]")
        elif isinstance(obj, msgspec.Struct):
            for name in _numeric_fields(type(obj)):
                self.nonfinite(getattr(obj, name), f"{path}.{name}")

    def check_scalars(self, s: dict[str, Any]) -> None:
        if "name" in s and not s["name"].strip():
            self.add("name", "empty name")
        if "admin_code" in s:
            if _admin_code_ok(s["admin_code"]):
                self.city_code = s["admin_code"]
            else:
                self.add("admin_code", f"admin code '{s['admin_code']}' is not 6 digits")
        if "timezone" in s:
            try:
                zoneinfo.ZoneInfo(s["timezone"])
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                # Without any time-zone database (slim images, no tzdata) a name cannot be judged.
                if zoneinfo.available_timezones():
                    self.add("timezone", f"unknown IANA time zone '{s['timezone']}'")
        if "center" in s and self.coord("center", s["center"], far_check=False):
            self.center = (s["center"][0], s["center"][1])
        w = s.get("health_weights")
        if isinstance(w, HealthWeights):
            values = {n: getattr(w, n) for n in w.__struct_fields__}
            for n, v in values.items():
                if not math.isfinite(v) or v < 0:
                    self.add(f"health_weights.{n}", f"weight {v} must be a finite number >= 0")
            if all(math.isfinite(v) for v in values.values()) and sum(values.values()) <= 0:
                self.add("health_weights", "weights must not all be 0")

    def coord(self, path: str, point: list[float], *, far_check: bool = True) -> bool:
        """Check one ``[lon, lat]``; True when it is a usable point."""
        if len(point) != 2:
            self.add(path, f"expected [lon, lat], got {len(point)} numbers")
            return False
        return self.lonlat(path, point[0], point[1], far_check=far_check, paths=(f"{path}[0]", f"{path}[1]"))

    def lonlat(self, path: str, lon: float, lat: float, *, far_check: bool = True, paths: tuple[str, str] | None = None,
               file: str = CITY_FILE) -> bool:
        lon_path, lat_path = paths or (f"{path}.lon", f"{path}.lat")
        ok = True
        if not (math.isfinite(lon) and -180 <= lon <= 180):
            self.add(lon_path, f"longitude {lon} out of range [-180, 180]", file)
            ok = False
        if not (math.isfinite(lat) and -90 <= lat <= 90):
            self.add(lat_path, f"latitude {lat} out of range [-90, 90]", file)
            ok = False
        if ok and far_check and self.center is not None:
            d = geo.haversine_m(self.center[0], self.center[1], lon, lat)
            if d > FAR_FROM_CENTER_M:
                self.add(path, f"[{lon}, {lat}] is {d / 1000:.0f} km from the city centre "
                               f"(more than {FAR_FROM_CENTER_M / 1000:.0f} km: far outside the city)", file)
                ok = False
        return ok

    def usable(self, lon: float, lat: float) -> bool:
        """A point worth measuring distances from (bad ones are reported where they are)."""
        return math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90

    def ref(self, path: str, value: str, section: str, what: str, owner: str = "") -> bool:
        if value in self.ids[section]:
            return True
        self.add(path, f"unknown {what} '{value}'" + (f" ({owner})" if owner else ""))
        return False

    def positive(self, path: str, value: float, what: str = "") -> None:
        if math.isfinite(value) and value <= 0:
            self.add(path, f"{what or path.rsplit('.', 1)[-1]} must be > 0, got {value}")

    def nonneg(self, path: str, value: float) -> None:
        if math.isfinite(value) and value < 0:
            self.add(path, f"{path.rsplit('.', 1)[-1]} must be >= 0, got {value}")

    def in_district(self, path: str, item_id: str, district: str, cell: str) -> None:
        """Cell (already known to exist) must belong to the same district as the item."""
        cell_district = self.cell_district.get(cell)
        if cell_district is not None and district in self.ids["districts"] and cell_district != district:
            self.add(f"{path}.cell", f"cell '{cell}' is in district '{cell_district}', not '{district}' ({item_id})")


    def check_districts(self, path: str, d: District) -> None:
        if not d.name.strip():
            self.add(f"{path}.name", "empty name")
        if not _admin_code_ok(d.admin_code):
            self.add(f"{path}.admin_code", f"admin code '{d.admin_code}' is not 6 digits ({d.id})")
        elif self.city_code is not None:
            prefix = self.city_code[:2] if self.city_code[2:4] == "00" else self.city_code[:4]
            if not d.admin_code.startswith(prefix) or d.admin_code.endswith("00"):
                self.add(f"{path}.admin_code",
                         f"admin code '{d.admin_code}' is not a district code under the city's '{self.city_code}' ({d.id})")
        self.coord(f"{path}.center", d.center)

    def check_streets(self, path: str, s: Street) -> None:
        self.ref(f"{path}.district", s.district, "districts", "district", s.id)

    def check_cells(self, path: str, c: GridCell) -> None:
        if self.ref(f"{path}.district", c.district, "districts", "district", c.id):
            street_district = self.street_district.get(c.street)
            if street_district is not None and street_district != c.district:
                self.add(f"{path}.street", f"street '{c.street}' is in district '{street_district}', not '{c.district}' ({c.id})")
        self.ref(f"{path}.street", c.street, "streets", "street", c.id)
        self.coord(f"{path}.center", c.center)

    def check_segments(self, path: str, s: RoadSegment) -> None:
        self.ref(f"{path}.district", s.district, "districts", "district", s.id)
        if self.ref(f"{path}.cell", s.cell, "cells", "cell", s.id):
            self.in_district(path, s.id, s.district, s.cell)
        self.positive(f"{path}.length_m", s.length_m)
        self.positive(f"{path}.free_flow_kmh", s.free_flow_kmh)
        if math.isfinite(s.free_flow_kmh) and s.free_flow_kmh > 150:
            self.add(f"{path}.free_flow_kmh", f"free-flow speed {s.free_flow_kmh} km/h is implausible for a city road (> 150)")
        self.positive(f"{path}.lanes", s.lanes)
        if s.lanes > 12:
            self.add(f"{path}.lanes", f"{s.lanes} lanes is implausible (> 12)")
        if len(s.line) < 2:
            self.add(f"{path}.line", f"a line needs at least 2 points, got {len(s.line)}")
            return
        ok = all([self.coord(f"{path}.line[{j}]", p) for j, p in enumerate(s.line)])
        if ok and math.isfinite(s.length_m) and s.length_m > 0:
            drawn = geo.polyline_length_m(s.line)
            if drawn > 0 and not (0.5 * drawn <= s.length_m <= 3 * drawn + 100):
                self.add(f"{path}.length_m", f"length {s.length_m} m disagrees with its line ({drawn:.0f} m long) ({s.id})")

    def check_intersections(self, path: str, x: Intersection) -> None:
        self.ref(f"{path}.district", x.district, "districts", "district", x.id)
        if self.ref(f"{path}.cell", x.cell, "cells", "cell", x.id):
            self.in_district(path, x.id, x.district, x.cell)
        self.lonlat(path, x.lon, x.lat)
        if not x.phases:
            self.add(f"{path}.phases", f"no phases ({x.id})")
        names = Counter(p.name for p in x.phases)
        for j, p in enumerate(x.phases):
            pp = f"{path}.phases[{j}]"
            if names[p.name] > 1 and [q.name for q in x.phases].index(p.name) != j:
                self.add(f"{pp}.name", f"duplicate phase name '{p.name}' ({x.id})")
            self.positive(f"{pp}.min_green_s", p.min_green_s)
            self.positive(f"{pp}.yellow_s", p.yellow_s)
            self.nonneg(f"{pp}.ped_clearance_s", p.ped_clearance_s)
            self.nonneg(f"{pp}.all_red_s", p.all_red_s)
        for j, seg in enumerate(x.approach_segments):
            if self.ref(f"{path}.approach_segments[{j}]", seg, "segments", "segment", x.id):
                line = self.segment_line.get(seg)
                if line and self.usable(x.lon, x.lat):
                    d = geo.haversine_m(line[-1][0], line[-1][1], x.lon, x.lat)
                    if d > APPROACH_TOLERANCE_M:
                        self.add(f"{path}.approach_segments[{j}]", f"segment '{seg}' ends {d:.0f} m from the intersection "
                                                                   f"(an approach must end there) ({x.id})")

    def check_corridors(self, path: str, c: Corridor) -> None:
        n = len(c.intersections)
        if n < 2:
            self.add(f"{path}.intersections", f"a corridor needs at least 2 intersections, got {n} ({c.id})")
        seen: set[str] = set()
        known = self.intersection_by_id
        for j, iid in enumerate(c.intersections):
            ip = f"{path}.intersections[{j}]"
            if iid in seen:
                self.add(ip, f"intersection '{iid}' listed twice ({c.id})")
            seen.add(iid)
            if self.ref(ip, iid, "intersections", "intersection", c.id) and iid in known:
                coordinated = sum(p.coordinated for p in known[iid].phases)
                if coordinated != 1:
                    self.add(ip, f"intersection '{iid}' has {coordinated} coordinated phases; a corridor "
                                 f"intersection needs exactly 1 (the arterial through phase) ({c.id})")
        pos = c.positions_m
        if len(pos) != n:
            self.add(f"{path}.positions_m", f"{len(pos)} positions for {n} intersections ({c.id})")
        if pos and pos[0] != 0:
            self.add(f"{path}.positions_m[0]", f"the first position must be 0, got {pos[0]} ({c.id})")
        for j in range(1, len(pos)):
            if not pos[j] > pos[j - 1]:
                self.add(f"{path}.positions_m[{j}]", f"positions must strictly increase: {pos[j - 1]} then {pos[j]} ({c.id})")
        if len(pos) == n and all(iid in known for iid in c.intersections):
            for j in range(1, n):
                a, b = known[c.intersections[j - 1]], known[c.intersections[j]]
                gap, crow = pos[j] - pos[j - 1], geo.haversine_m(a.lon, a.lat, b.lon, b.lat)
                # Along-road distance is at least the straight line, and rarely more than double.
                if gap > 0 and math.isfinite(gap) and math.isfinite(crow) and not (0.8 * crow - 50 <= gap <= 2 * crow + 100):
                    self.add(f"{path}.positions_m[{j}]", f"gap {gap:.0f} m from '{a.id}' to '{b.id}' disagrees with their "
                                                         f"coordinates ({crow:.0f} m apart) ({c.id})")
        for name in ("speed_out_kmh", "speed_in_kmh"):
            v = getattr(c, name)
            self.positive(f"{path}.{name}", v)
            if math.isfinite(v) and v > 120:
                self.add(f"{path}.{name}", f"progression speed {v} km/h is implausible (> 120)")
        self.positive(f"{path}.cycle_min_s", c.cycle_min_s)
        if math.isfinite(c.cycle_min_s) and math.isfinite(c.cycle_max_s):
            if c.cycle_max_s < c.cycle_min_s:
                self.add(f"{path}.cycle_max_s", f"cycle_max_s {c.cycle_max_s} < cycle_min_s {c.cycle_min_s} ({c.id})")
            if c.cycle_max_s > 300:
                self.add(f"{path}.cycle_max_s", f"cycle_max_s {c.cycle_max_s} s is implausible (> 300)")
        if math.isfinite(c.cycle_max_s):
            # Each phase lasts at least max(min green, ped clearance) plus its yellow and all-red;
            # if a member's phases cannot fit in cycle_max_s no common cycle exists.
            for iid in dict.fromkeys(c.intersections):
                x = known.get(iid)
                if x is None or not x.phases:
                    continue
                need = sum(max(p.min_green_s, p.ped_clearance_s) + p.yellow_s + p.all_red_s for p in x.phases)
                if need > c.cycle_max_s:
                    self.add(f"{path}.cycle_max_s", f"intersection '{iid}' needs at least {need:g} s per cycle "
                                                    f"(min greens + clearances), more than cycle_max_s {c.cycle_max_s:g} ({c.id})")
                    break

    def check_hazards(self, path: str, h: HazardSource) -> None:
        self.ref(f"{path}.district", h.district, "districts", "district", h.id)
        if self.ref(f"{path}.cell", h.cell, "cells", "cell", h.id):
            self.in_district(path, h.id, h.district, h.cell)
        self.lonlat(path, h.lon, h.lat)
        if not h.unit.strip():
            self.add(f"{path}.unit", f"empty unit ({h.id})")

    def check_sensors(self, path: str, s: Sensor) -> None:
        if s.type not in SENSOR_FAMILY:
            self.add(f"{path}.type", f"unknown sensor type '{s.type}' ({s.id}); known: {', '.join(sorted(SENSOR_FAMILY))}")
        self.ref(f"{path}.district", s.district, "districts", "district", s.id)
        if self.ref(f"{path}.cell", s.cell, "cells", "cell", s.id):
            self.in_district(path, s.id, s.district, s.cell)
        self.lonlat(path, s.lon, s.lat)
        for name in ("owner", "unit"):
            if not getattr(s, name).strip():
                self.add(f"{path}.{name}", f"empty {name} ({s.id})")
        if math.isfinite(s.valid_min) and math.isfinite(s.valid_max) and s.valid_min >= s.valid_max:
            self.add(f"{path}.valid_max", f"valid_min {s.valid_min} >= valid_max {s.valid_max} ({s.id})")
        if s.segment is not None:
            if self.ref(f"{path}.segment", s.segment, "segments", "segment", s.id):
                line = self.segment_line.get(s.segment)
                if line and self.usable(s.lon, s.lat):
                    d = geo.distance_to_line_m(s.lon, s.lat, line)
                    if d > SENSOR_SEGMENT_TOLERANCE_M:
                        self.add(path, f"sensor lies {d:.0f} m from its segment '{s.segment}' ({s.id})")
        elif s.type in SEGMENT_SENSOR_TYPES:
            self.add(f"{path}.segment", f"a {s.type} sensor needs a segment ({s.id})")
        if s.type in UTILITY_TYPES:
            if s.unit not in UTILITY_UNIT_FIELD:
                self.add(f"{path}.unit", f"utility unit must be one of {', '.join(UTILITY_UNIT_FIELD)}, got '{s.unit}' ({s.id})")
            if s.nominal is None:
                self.add(f"{path}.nominal", f"a {s.type} sensor needs a nominal value ({s.id})")
        if s.nominal is not None and math.isfinite(s.nominal) and s.valid_min < s.valid_max:
            if not s.valid_min <= s.nominal <= s.valid_max:
                self.add(f"{path}.nominal", f"nominal {s.nominal} outside the valid range [{s.valid_min}, {s.valid_max}] ({s.id})")
        if s.hazard is not None:
            if s.type != "hazard":
                self.add(f"{path}.hazard", f"only hazard sensors name a hazard source, this is a {s.type} sensor ({s.id})")
            elif self.ref(f"{path}.hazard", s.hazard, "hazards", "hazard source", s.id):
                unit = self.hazard_unit.get(s.hazard)
                if unit is not None and unit != s.unit:
                    self.add(f"{path}.unit", f"unit '{s.unit}' differs from hazard source '{s.hazard}' unit '{unit}' ({s.id})")
                site = self.hazard_site.get(s.hazard)
                if site is not None and self.usable(*site) and self.usable(s.lon, s.lat):
                    d = geo.haversine_m(site[0], site[1], s.lon, s.lat)
                    if d > HAZARD_SENSOR_TOLERANCE_M:
                        self.add(path, f"sensor lies {d:.0f} m from its hazard source '{s.hazard}' ({s.id})")
        elif s.type == "hazard":
            self.add(f"{path}.hazard", f"a hazard sensor needs a hazard source ({s.id})")

    # -- GeoJSON -----------------------------------------------------------------------------
