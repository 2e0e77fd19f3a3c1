"""The city loader on broken files: GeoJSON that is not what it claims, files missing or unparseable.

Each case breaks one thing in a copy of the demo city and checks the loader names the file, the
field and the value, and collects every problem rather than stopping at the first.
"""
from __future__ import annotations

import pytest

from brain.city import Problem, load_city
from tests.city.conftest import find, problems_of


# --- GeoJSON -----------------------------------------------------------------------------------------
def test_geojson_unknown_and_missing_ids(city_dir, demo_raw):
    old = demo_raw[1]["features"][1]["properties"]["id"]

    def mutate_districts(fc):
        fc["features"][1]["properties"]["id"] = "atlantis"

    problems = problems_of(city_dir(mutate_districts=mutate_districts))
    assert "unknown district 'atlantis'" in find(problems, "districts.geojson", "features[1].properties.id").message
    assert f"no polygon for district '{old}'" in find(problems, "districts.geojson", "features").message


def test_geojson_unclosed_ring_and_bad_geometry(city_dir):
    def mutate_cells(fc):
        fc["features"][3]["geometry"]["coordinates"][0][-1] = [120.0, 30.0]
        fc["features"][5]["geometry"] = {"type": "Point", "coordinates": [120.1, 30.2]}
        fc["features"][6]["geometry"]["coordinates"][0] = fc["features"][6]["geometry"]["coordinates"][0][:3]
        fc["features"][7]["geometry"]["coordinates"][0][2][0] = 200.0

    problems = problems_of(city_dir(mutate_cells=mutate_cells))
    assert "not closed" in find(problems, "cells.geojson", "features[3].geometry.coordinates[0]").message
    assert "Polygon or MultiPolygon" in find(problems, "cells.geojson", "features[5].geometry.type").message
    assert "at least 4 positions" in find(problems, "cells.geojson", "features[6].geometry.coordinates[0]").message
    assert "longitude 200.0 out of range" in find(problems, "cells.geojson", "features[7].geometry.coordinates[0][2][0]").message
    assert not [p for p in problems if p.file == "city.yaml"]  # GeoJSON problems are filed under their own file


def test_multipolygon_is_accepted_and_flattened(city_dir):
    def mutate_districts(fc):
        g = fc["features"][0]["geometry"]
        fc["features"][0]["geometry"] = {"type": "MultiPolygon", "coordinates": [g["coordinates"]]}

    city = load_city(city_dir(mutate_districts=mutate_districts))
    assert len(city.district_polygons[city.districts[0].id]) == 1


def test_geojson_not_a_feature_collection(city_dir):
    def mutate_cells(fc):
        fc["type"] = "Feature"

    assert "FeatureCollection" in find(problems_of(city_dir(mutate_cells=mutate_cells)), "cells.geojson", "type").message


# --- files -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["city.yaml", "districts.geojson", "cells.geojson"])
def test_missing_file(city_dir, name):
    folder = city_dir()
    (folder / name).unlink()
    p = find(problems_of(folder), name, "")
    assert "missing file" in p.message


def test_missing_folder_and_file_instead_of_folder(tmp_path):
    problems = problems_of(tmp_path / "nope")
    assert problems == [Problem(str(tmp_path / "nope"), "", "no such folder")]
    f = tmp_path / "x.txt"
    f.write_text("hi")
    assert "not a folder" in problems_of(f)[0].message


def test_yaml_syntax_error(city_dir):
    folder = city_dir()
    text = (folder / "city.yaml").read_text(encoding="utf-8").splitlines()
    text[5] = text[5] + " [unclosed"
    text.insert(8, "  - : : bad: [")
    (folder / "city.yaml").write_text("\n".join(text), encoding="utf-8")
    problems = problems_of(folder)
    assert len(problems) == 1
    p = problems[0]
    assert p.file == "city.yaml" and p.field_path.startswith("line ") and "YAML syntax error" in p.message


def test_json_syntax_error(city_dir):
    folder = city_dir()
    (folder / "cells.geojson").write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")
    p = find(problems_of(folder), "cells.geojson", "line 1, column 44")
    assert "JSON syntax error" in p.message


@pytest.mark.parametrize(("text", "what"), [("", "empty"), ("- a\n- b\n", "list"), ("42\n", "int")])
def test_top_level_not_a_mapping(city_dir, text, what):
    folder = city_dir()
    (folder / "city.yaml").write_text(text, encoding="utf-8")
    p = find(problems_of(folder), "city.yaml", "")
    assert what in p.message
