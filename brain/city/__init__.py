"""The city model and its loader.

A city is a folder of data (``city.yaml`` + ``districts.geojson`` + ``cells.geojson``);
:func:`load_city` reads and checks one, :func:`demo_city_path` is the shipped demo city.

Example:
    >>> city = load_city(demo_city_path())
    >>> city.timezone, city.sensor(city.sensors[0].id).family
    ('Asia/Shanghai', 'traffic')
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from brain.city.loader import CityError, Problem, city_from_data, load_city
from brain.city.model import (
    SENSOR_FAMILY,
    City,
    Corridor,
    District,
    Family,
    GridCell,
    HazardSource,
    HealthWeights,
    Intersection,
    NoiseClass,
    Phase,
    RoadClass,
    RoadSegment,
    Sensor,
    Street,
)


def demo_city_path() -> Path:
    """Folder of the demo city shipped inside the package (``brain/city/demo``)."""
    return Path(str(resources.files("brain.city.demo")))


__all__ = [
    "SENSOR_FAMILY",
    "City",
    "CityError",
    "Corridor",
    "District",
    "Family",
    "GridCell",
    "HazardSource",
    "HealthWeights",
    "Intersection",
    "NoiseClass",
    "Phase",
    "Problem",
    "RoadClass",
    "RoadSegment",
    "Sensor",
    "Street",
    "city_from_data",
    "demo_city_path",
    "load_city",
]
