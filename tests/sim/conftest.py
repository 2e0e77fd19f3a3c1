from __future__ import annotations

import pytest

from brain.city import demo_city_path, load_city
from streams.sim.toycity import toy_city

HOUR_MS = 3_600_000


@pytest.fixture(scope="session")
def toy():
    return toy_city()


@pytest.fixture(scope="session")
def demo():
    return load_city(demo_city_path())
