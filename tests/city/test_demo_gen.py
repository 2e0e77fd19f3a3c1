"""The committed demo city is exactly the generator's output, and the generator makes valid cities."""
from __future__ import annotations

import pytest
from setuptools import find_packages

from brain.city import demo_city_path, load_city
from brain.city.demo_gen import main, write
from tests.city.test_cli import REPO


def test_committed_files_are_the_generator_output(tmp_path):
    assert main(["--out", str(tmp_path)]) == 0
    for name in ("city.yaml", "districts.geojson", "cells.geojson", "README.md"):
        assert (tmp_path / name).read_bytes() == (demo_city_path() / name).read_bytes(), (
            f"{name} differs from demo_gen output: re-run `python -m brain.city.demo_gen`")


@pytest.mark.parametrize("seed", [7])
def test_other_seeds_give_valid_but_different_cities(tmp_path, seed):
    write(tmp_path, seed=seed)
    city = load_city(tmp_path)
    demo = load_city(demo_city_path())
    assert len(city.sensors) >= 300 and len(city.segments) >= 80
    assert [s.lon for s in city.sensors[:20]] != [s.lon for s in demo.sensors[:20]]


def test_demo_folder_is_a_package_so_the_wheel_ships_it():
    # pyproject: packages.find include "brain*" + package-data *.yaml/*.geojson for every package.
    assert "brain.city.demo" in find_packages(where=str(REPO), include=["brain*"])
    assert demo_city_path().joinpath("__init__.py").is_file()
