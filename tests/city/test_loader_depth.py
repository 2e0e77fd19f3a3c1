"""A city folder's files are read with bounded nesting: a GeoJSON nested 100k deep (a RecursionError
traceback before) is one problem naming the file."""
from __future__ import annotations

import shutil

import pytest

from brain.city import CityError, demo_city_path, load_city
from brain.city.loader import MAX_NESTING


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "city"
    shutil.copytree(demo_city_path(), d)
    return d


@pytest.mark.parametrize("name,text", [
    ("districts.geojson", '{"type":"FeatureCollection","features":' + "[" * 100_000 + "]" * 100_000 + "}"),
    ("cells.geojson", "[" * 100_000),
    ("city.yaml", "name: x\nsensors: " + "[" * 100_000 + "]" * 100_000 + "\n"),
])
def test_deep_nesting_is_one_problem_naming_the_file(folder, name, text):
    (folder / name).write_text(text)
    with pytest.raises(CityError) as err:
        load_city(folder)
    assert f"{name}: brackets nest" in str(err.value) and f"at most {MAX_NESTING}" in str(err.value)


def test_nesting_within_the_bound_still_loads(folder):
    assert load_city(folder).districts  # the demo city's own GeoJSON is well within the bound
