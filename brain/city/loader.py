"""Load a city folder and check it: types, referential integrity, physics and geometry.

A city folder holds ``city.yaml`` (every field of :class:`~brain.city.model.City` except the
polygons), ``districts.geojson`` and ``cells.geojson`` (FeatureCollections whose features'
``properties.id`` name a district / grid cell; geometry Polygon or MultiPolygon, WGS84
``[lon, lat]``). :func:`load_city` reads the three files; :func:`city_from_data` checks
already-parsed data (handy for cities built in memory, e.g. in tests).

Every problem found is collected, not just the first: a :class:`CityError` lists them all, each
naming its file and field path (``city.yaml: sensors[12].cell: unknown cell 'C99'``), so a
whole batch of registry edits can be fixed in one pass.

Polygons are stored as ``id -> list of rings``; a MultiPolygon's parts are flattened into one
list of rings, which the even-odd rule of :func:`brain.city.geo.point_in_rings` still reads
correctly (holes stay holes, parts stay parts).

Example:
    >>> from brain.city import demo_city_path
    >>> city = load_city(demo_city_path())
    >>> city.name, len(city.districts) >= 4
    ('Demo City', True)
    >>> bad = {"name": "X", "admin_code": "12", "timezone": "Asia/Shanghai", "center": [120.0, 30.0],
    ...        "districts": [], "streets": [], "cells": [], "segments": [], "intersections": [],
    ...        "corridors": [], "sensors": []}
    >>> try:
    ...     city_from_data(bad)
    ... except CityError as exc:
    ...     print(exc.problems[0])
    city.yaml: admin_code: admin code '12' is not 6 digits
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import yaml

from brain.city import flowyaml
from brain.city.checks import CityChecker
from brain.city.model import City
from brain.city.problems import CELLS_FILE, CITY_FILE, DISTRICTS_FILE, CityError, Problem
from brain.nesting import nesting_depth


def load_city(path: str | Path) -> City:
    """Read and check the city folder at ``path`` (or the ``city.yaml`` inside it).

    Raises :class:`CityError` listing every problem: missing files, YAML/JSON syntax errors,
    type errors, unknown references, implausible physics, bad geometry.
    """
    folder = Path(path)
    if folder.is_file() and folder.name == CITY_FILE:
        folder = folder.parent
    if not folder.exists():
        raise CityError([Problem(str(folder), "", "no such folder")], where=str(folder))
    if not folder.is_dir():
        raise CityError([Problem(str(folder), "", "not a folder (expected a folder holding city.yaml)")], where=str(folder))
    problems: list[Problem] = []
    data = _read(folder / CITY_FILE, _parse_yaml, problems)
    districts = _read(folder / DISTRICTS_FILE, _parse_json, problems)
    cells = _read(folder / CELLS_FILE, _parse_json, problems)
    # A file holding JSON `null` is present but wrong; None would mean "no polygons given".
    districts = None if districts is _UNREADABLE else ({} if districts is None else districts)
    cells = None if cells is _UNREADABLE else ({} if cells is None else cells)
    if data is _UNREADABLE:
        # Without city.yaml nothing else can be cross-checked; still report GeoJSON syntax.
        raise CityError(problems, where=str(folder))
    return city_from_data(data, districts, cells, _problems=problems, _where=str(folder))


def city_from_data(
    data: Any,
    districts_geojson: Any = None,
    cells_geojson: Any = None,
    *,
    _problems: list[Problem] | None = None,
    _where: str = "city",
) -> City:
    """Check parsed ``city.yaml`` data (and the two GeoJSON FeatureCollections) and build the City.

    ``None`` for a GeoJSON argument skips its polygons (an in-memory city need not have any);
    :func:`load_city` reports a missing file itself.
    """
    checker = CityChecker(list(_problems or []))
    checker.check_city(data)
    checker.check_geojson(DISTRICTS_FILE, districts_geojson, "district")
    checker.check_geojson(CELLS_FILE, cells_geojson, "cell")
    checker.check_geometry()
    if checker.problems:
        raise CityError(_dedupe(checker.problems), where=_where)
    try:
        city = msgspec.convert(data, type=City)
    except msgspec.ValidationError as exc:  # every field was checked above; this is a safety net
        raise CityError([Problem(CITY_FILE, "", str(exc))], where=_where) from None
    city.district_polygons = checker.polygons["district"]
    city.cell_polygons = checker.polygons["cell"]
    return city


def _dedupe(problems: list[Problem]) -> list[Problem]:
    """One problem per field: a NaN latitude is "not finite", not also "out of range"."""
    seen: set[tuple[str, str]] = set()
    out = []
    for p in problems:
        key = (p.file, p.field_path)
        if p.field_path and key in seen:
            continue
        seen.add(key)
        out.append(p)
    return out


_UNREADABLE = object()  # a file that is missing or does not parse (None is valid YAML: empty)


# --- reading -----------------------------------------------------------------------------------
def _read(path: Path, parse, problems: list[Problem]) -> Any:
    if not path.is_file():
        problems.append(Problem(path.name, "", f"missing file ({path})"))
        return _UNREADABLE
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(path.name, "", f"cannot read: {exc}"))
        return _UNREADABLE
    return parse(path.name, text, problems)


#: Deepest bracket nesting a city file may have (GeoJSON multipolygons need 6 with their
#: FeatureCollection; deeper files are refused before parsing, which recurses per level).
MAX_NESTING = 64


def _too_deep(name: str, text: str, problems: list[Problem]) -> bool:
    depth = nesting_depth(text.encode("utf-8", "surrogatepass"))
    if depth > MAX_NESTING:
        problems.append(Problem(name, "", f"brackets nest {depth} levels deep (at most {MAX_NESTING}): not a city file"))
        return True
    return False


def _parse_yaml(name: str, text: str, problems: list[Problem]) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    if _too_deep(name, text, problems):  # flow-style YAML nests like JSON
        return _UNREADABLE
    fast = flowyaml.parse(text)  # machine-written registries: the same data, many times faster
    if fast is not flowyaml.OUTSIDE:
        return fast
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except RecursionError:  # block-style nesting, indented thousands deep
        problems.append(Problem(name, "", "nested too deeply to read"))
        return _UNREADABLE
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = " ".join(str(x) for x in (getattr(exc, "context", None), getattr(exc, "problem", None)) if x) or str(exc)
        problems.append(Problem(name, where, f"YAML syntax error: {what}"))
        return _UNREADABLE


def _parse_json(name: str, text: str, problems: list[Problem]) -> Any:
    if _too_deep(name, text, problems):
        return _UNREADABLE
    try:
        return json.loads(text)
    except RecursionError:  # pragma: no cover - the depth check comes first
        problems.append(Problem(name, "", "nested too deeply to read"))
        return _UNREADABLE
    except json.JSONDecodeError as exc:
        problems.append(Problem(name, f"line {exc.lineno}, column {exc.colno}", f"JSON syntax error: {exc.msg}"))
        return _UNREADABLE
