"""Property: any valid field turned invalid is reported at its path; the checker never crashes."""
from __future__ import annotations

import functools
import json
import math

import yaml

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brain.city import CityError, city_from_data, demo_city_path

REFS = {
    "streets": {"district": "districts"},
    "cells": {"district": "districts", "street": "streets"},
    "segments": {"district": "districts", "cell": "cells"},
    "intersections": {"district": "districts", "cell": "cells"},
    "hazards": {"district": "districts", "cell": "cells"},
    "sensors": {"district": "districts", "cell": "cells", "segment": "segments", "hazard": "hazards"},
}
POSITIVE = {
    "segments": ["length_m", "free_flow_kmh", "lanes"],
    "corridors": ["speed_out_kmh", "speed_in_kmh", "cycle_min_s"],
}
POINTS = {"intersections", "hazards", "sensors"}  # items with lon/lat fields
REQUIRED = {
    "districts": ["id", "name", "admin_code", "center"],
    "streets": ["id", "name", "district"],
    "cells": ["id", "district", "street", "center"],
    "segments": ["id", "name", "district", "cell", "road_class", "length_m", "free_flow_kmh", "lanes", "line"],
    "intersections": ["id", "name", "district", "cell", "lon", "lat", "phases"],
    "corridors": ["id", "name", "intersections", "positions_m", "speed_out_kmh", "speed_in_kmh"],
    "hazards": ["id", "name", "kind", "district", "cell", "lon", "lat", "alarm_high", "unit"],
    "sensors": ["id", "type", "lon", "lat", "district", "cell", "owner", "unit", "valid_min", "valid_max"],
}

not_positive = st.one_of(st.floats(max_value=0.0, allow_nan=False), st.just(math.nan), st.just(-math.inf))
bad_lon = st.one_of(st.floats(min_value=180.0, exclude_min=True), st.floats(max_value=-180.0, exclude_max=True), st.just(math.nan))
bad_lat = st.one_of(st.floats(min_value=90.0, exclude_min=True), st.floats(max_value=-90.0, exclude_max=True), st.just(math.nan))
wrong_type = st.one_of(st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.booleans())


def mutation(draw, data: dict, section: str, i: int) -> tuple[str, object]:
    """Apply one invalid edit to ``data[section][i]``; return the path that must be reported."""
    item = data[section][i]
    p = f"{section}[{i}]"
    kinds = ["type", "delete"]
    refs = [f for f in REFS.get(section, {}) if item.get(f) is not None]
    kinds += ["ref"] * bool(refs) + ["positive"] * bool(POSITIVE.get(section)) + ["point"] * (section in POINTS)
    kinds += {"sensors": ["range"], "corridors": ["positions"], "intersections": ["green"],
              "segments": ["line"], "districts": ["admin_code", "center"], "cells": ["center"]}.get(section, [])
    kinds += ["duplicate", "blank_id"]
    kind = draw(st.sampled_from(kinds))
    if kind == "type":
        field = draw(st.sampled_from(REQUIRED[section]))
        item[field] = draw(wrong_type)
        return f"{p}.{field}"
    if kind == "delete":
        field = draw(st.sampled_from(REQUIRED[section]))
        del item[field]
        return f"{p}.{field}"
    if kind == "ref":
        field = draw(st.sampled_from(refs))
        known = {x.get("id") for x in data[REFS[section][field]] if isinstance(x.get("id"), str)}
        item[field] = draw(st.text(min_size=1, max_size=8).filter(lambda t: t not in known))
        return f"{p}.{field}"
    if kind == "positive":
        field = draw(st.sampled_from(POSITIVE[section]))
        item[field] = draw(st.integers(max_value=0)) if field == "lanes" else draw(not_positive)
        return f"{p}.{field}"
    if kind == "point":
        field = draw(st.sampled_from(["lon", "lat"]))
        item[field] = draw(bad_lon if field == "lon" else bad_lat)
        return f"{p}.{field}"
    if kind == "range":
        item["valid_min"] = item["valid_max"] + draw(st.floats(min_value=0, max_value=1e6))
        return f"{p}.valid_max"
    if kind == "positions":
        pos = item["positions_m"]
        j = draw(st.integers(1, len(pos) - 1))
        pos[j] = pos[j - 1] - draw(st.floats(min_value=0, max_value=1e4))
        return f"{p}.positions_m[{j}]"
    if kind == "green":
        k = draw(st.integers(0, len(item["phases"]) - 1))
        item["phases"][k]["min_green_s"] = draw(not_positive)
        return f"{p}.phases[{k}].min_green_s"
    if kind == "line":
        j = draw(st.integers(0, len(item["line"]) - 1))
        item["line"][j][1] = draw(bad_lat)
        return f"{p}.line[{j}][1]"
    if kind == "admin_code":
        item["admin_code"] = draw(st.text(max_size=8).filter(lambda t: not (len(t) == 6 and t.isascii() and t.isdigit())))
        return f"{p}.admin_code"
    if kind == "center":
        item["center"][0] = draw(bad_lon)
        return f"{p}.center[0]"
    if kind == "blank_id":
        item["id"] = draw(st.sampled_from(["", " ", "\t"])) + draw(st.sampled_from(["", item["id"] + " "]))
        return f"{p}.id"
    # duplicate: take another item's id
    j = draw(st.integers(0, len(data[section]) - 1).filter(lambda j: j != i))
    item["id"] = data[section][j]["id"]
    return f"{section}[{max(i, j)}].id"  # the later of the two is the duplicate


def geo_mutation(draw, fc: dict, file: str) -> tuple[str, str]:
    """Apply one invalid edit to a feature of a FeatureCollection; return (file, path) to be reported."""
    i = draw(st.integers(0, len(fc["features"]) - 1))
    feat = fc["features"][i]
    p = f"features[{i}]"
    kind = draw(st.sampled_from(["unclosed", "short", "bad_point", "geom_type", "id_type", "unknown_id"]))
    ring = feat["geometry"]["coordinates"][0]
    if kind == "unclosed":
        ring[-1] = [ring[-1][0] + draw(st.floats(1e-6, 0.01)), ring[-1][1]]
        return file, f"{p}.geometry.coordinates[0]"
    if kind == "short":
        feat["geometry"]["coordinates"][0] = ring[: draw(st.integers(0, 3))]
        return file, f"{p}.geometry.coordinates[0]"
    if kind == "bad_point":
        k = draw(st.integers(0, len(ring) - 1))
        ring[k] = draw(st.one_of(st.just([1.0]), st.just("x"), st.tuples(bad_lon, st.just(30.0)).map(list)))
        return file, f"{p}.geometry.coordinates[0][{k}]"
    if kind == "geom_type":
        feat["geometry"]["type"] = draw(st.sampled_from(["Point", "LineString", "polygon", None]))
        return file, f"{p}.geometry.type"
    if kind == "id_type":
        feat["properties"]["id"] = draw(st.one_of(st.integers(), st.none(), st.lists(st.integers(), max_size=2)))
        return file, f"{p}.properties.id"
    known = {f["properties"]["id"] for f in fc["features"]}
    feat["properties"]["id"] = draw(st.text(min_size=1, max_size=8).filter(lambda t: t not in known))
    return file, f"{p}.properties.id"


def copy_city(data: dict) -> dict:
    # Lists of dicts two levels deep are all a mutation touches; cheaper than deepcopy.
    def cp(v):
        if isinstance(v, dict):
            return {k: cp(x) for k, x in v.items()}
        if isinstance(v, list):
            return [cp(x) for x in v]
        return v

    return cp(data)


@functools.cache
def demo_raw() -> tuple[dict, dict, dict]:
    folder = demo_city_path()
    return (yaml.load((folder / "city.yaml").read_text(encoding="utf-8"), Loader=yaml.CSafeLoader),
            json.loads((folder / "districts.geojson").read_text(encoding="utf-8")),
            json.loads((folder / "cells.geojson").read_text(encoding="utf-8")))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_invalid_edits_are_all_reported(data):
    city, districts, cells = demo_raw()
    broken = copy_city(city)
    sections = [s for s in REQUIRED if len(broken[s]) >= 2]
    targets = data.draw(st.lists(st.tuples(st.sampled_from(sections), st.integers(0, 10**6)), min_size=1, max_size=3,
                                 unique_by=lambda t: t[0]))
    expected = []
    for section, n in targets:
        i = n % len(broken[section])
        expected.append(("city.yaml", mutation(data.draw, broken, section, i)))
    districts, cells = copy_city(districts), copy_city(cells)
    for fc, file in ((districts, "districts.geojson"), (cells, "cells.geojson")):
        if data.draw(st.booleans()):
            expected.append(geo_mutation(data.draw, fc, file))
    try:
        city_from_data(broken, districts, cells)
    except CityError as exc:
        reported = [(p.file, p.field_path) for p in exc.problems]
        assert str(exc)  # renders
    else:
        raise AssertionError(f"no problem reported for edits at {expected}")
    for file, path in expected:
        assert any(f == file and (r == path or r.startswith((path + ".", path + "["))) for f, r in reported), (path, reported)
