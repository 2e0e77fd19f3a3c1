"""Helpers: copies of the shipped demo city, broken on purpose."""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest
import yaml

from brain.city import CityError, Problem, demo_city_path, load_city

DEMO_FILES = ("city.yaml", "districts.geojson", "cells.geojson")


@pytest.fixture(scope="session")
def demo_raw() -> tuple[dict, dict, dict]:
    """The demo city's parsed files: (city.yaml data, districts FeatureCollection, cells FeatureCollection)."""
    folder = demo_city_path()
    data = yaml.load((folder / "city.yaml").read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)
    districts = json.loads((folder / "districts.geojson").read_text(encoding="utf-8"))
    cells = json.loads((folder / "cells.geojson").read_text(encoding="utf-8"))
    return data, districts, cells


@pytest.fixture
def city_dir(tmp_path: Path, demo_raw):
    """``make(mutate=None, mutate_districts=None, mutate_cells=None) -> folder``: a demo copy, edited."""

    def make(mutate=None, mutate_districts=None, mutate_cells=None) -> Path:
        folder = tmp_path / "city"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir()
        for name, raw, fn, dump in zip(DEMO_FILES, demo_raw, (mutate, mutate_districts, mutate_cells), (_yaml, _json, _json)):
            if fn is None:  # unedited: the shipped file itself
                shutil.copyfile(demo_city_path() / name, folder / name)
            else:
                obj = copy.deepcopy(raw)
                fn(obj)
                (folder / name).write_text(dump(obj), encoding="utf-8")
        return folder

    return make


def _yaml(obj) -> str:
    return yaml.dump(obj, Dumper=yaml.CSafeDumper, sort_keys=False, allow_unicode=True)


def _json(obj) -> str:
    return json.dumps(obj, ensure_ascii=False)


def problems_of(folder: Path) -> list[Problem]:
    with pytest.raises(CityError) as info:
        load_city(folder)
    return info.value.problems


def find(problems: list[Problem], file: str, path: str) -> Problem:
    """The problem reported for exactly this file and field path (fails with the whole list otherwise)."""
    hits = [p for p in problems if p.file == file and p.field_path == path]
    assert hits, f"no problem at {file}: {path}; got:\n" + "\n".join(map(str, problems))
    return hits[0]
