"""The city model: districts, streets, grid cells, road segments, intersections, corridors, sensors.

A city is a folder: ``city.yaml`` (everything below, coordinates WGS84 ``[lon, lat]``) plus
``districts.geojson`` and ``cells.geojson`` holding the area polygons (feature ``properties.id``
matches the ``id`` here). :func:`brain.city.load_city` reads and checks a folder.

The sensor registry (一终端一标识) is :attr:`City.sensors`: every input record names its terminal
by ``sensor_id``; a record whose terminal is not registered is quarantined, never guessed.
Grid-case sources (inspector apps, the 12345 gateway, citizen apps) and emergency dispatch
systems are terminals too, so the same gate covers all four feed families.

Example:
    >>> seg = RoadSegment(id="S1", name="Ring Rd", district="D1", cell="C1", road_class="arterial",
    ...                   length_m=800.0, free_flow_kmh=60.0, lanes=3, line=[[116.0, 39.9], [116.01, 39.9]])
    >>> round(seg.free_flow_time_s, 1)
    48.0
"""
from __future__ import annotations

from typing import Literal

import msgspec

RoadClass = Literal["expressway", "arterial", "secondary"]
NoiseClass = Literal["0", "1", "2", "3", "4a", "4b"]
Family = Literal["traffic", "grid", "environment", "emergency"]

#: Sensor type -> feed family. The record kinds each type may send are in :data:`brain.schemas.KIND_SENSOR_TYPES`.
SENSOR_FAMILY: dict[str, str] = {
    # traffic
    "loop": "traffic",
    "video": "traffic",
    "radar": "traffic",
    "probe": "traffic",
    "signal_controller": "traffic",
    "vehicle_avl": "traffic",
    # grid events: case sources and utility lifelines
    "grid_inspector": "grid",
    "hotline_12345": "grid",
    "citizen_app": "grid",
    "utility_power": "grid",
    "utility_water": "grid",
    "utility_gas": "grid",
    "utility_heat": "grid",
    "utility_outage_feed": "grid",
    # environment
    "air": "environment",
    "noise": "environment",
    "water_quality": "environment",
    "weather": "environment",
    # emergency
    "cad_police": "emergency",
    "cad_fire": "emergency",
    "cad_medical": "emergency",
    "cad_emergency_mgmt": "emergency",
    "hazard": "emergency",
}

#: Terminal types the shipped demo city does not carry yet (its simulator sends no such feed):
#: signal controllers report through streams/controllers, vehicles through a priority request.
NOT_IN_DEMO_CITY: frozenset[str] = frozenset({"signal_controller", "vehicle_avl"})


class District(msgspec.Struct, forbid_unknown_fields=True):
    """A district (区). ``admin_code`` is the 6-digit GB/T 2260 code used in CAP identifiers."""

    id: str
    name: str
    admin_code: str
    center: list[float]  # [lon, lat]


class Street(msgspec.Struct, forbid_unknown_fields=True):
    """A street / sub-district office (街道), the lowest escalation tier."""

    id: str
    name: str
    district: str


class GridCell(msgspec.Struct, forbid_unknown_fields=True):
    """A city-management grid cell (网格). ``noise_class`` is its GB 3096-2008 acoustic zone."""

    id: str
    district: str
    street: str
    center: list[float]  # [lon, lat]
    noise_class: NoiseClass = "2"


class RoadSegment(msgspec.Struct, forbid_unknown_fields=True):
    """A directed road segment with its free-flow speed (for TTI) and class (for TPI speed bands)."""

    id: str
    name: str
    district: str
    cell: str
    road_class: RoadClass
    length_m: float
    free_flow_kmh: float
    lanes: int
    line: list[list[float]]  # [[lon, lat], ...]

    @property
    def free_flow_time_s(self) -> float:
        return self.length_m / (self.free_flow_kmh / 3.6)


class Phase(msgspec.Struct, forbid_unknown_fields=True):
    """One signal phase. Times in seconds. ``coordinated`` marks the arterial through phase."""

    name: str
    min_green_s: float
    ped_clearance_s: float = 0.0
    yellow_s: float = 3.0
    all_red_s: float = 2.0
    coordinated: bool = False


class Intersection(msgspec.Struct, forbid_unknown_fields=True):
    """A signalised intersection; ``approach_segments`` feed its detector flows."""

    id: str
    name: str
    district: str
    cell: str
    lon: float
    lat: float
    phases: list[Phase]
    approach_segments: list[str] = []


class Corridor(msgspec.Struct, forbid_unknown_fields=True):
    """A signalised arterial: ordered intersections and their positions along it (m, first = 0).

    ``speed_out_kmh`` is the progression speed in the direction of increasing position (outbound),
    ``speed_in_kmh`` the other way. The common cycle is chosen within ``[cycle_min_s, cycle_max_s]``.
    """

    id: str
    name: str
    intersections: list[str]
    positions_m: list[float]
    speed_out_kmh: float
    speed_in_kmh: float
    cycle_min_s: float = 60.0
    cycle_max_s: float = 150.0


class Sensor(msgspec.Struct, forbid_unknown_fields=True):
    """A registered terminal (一终端一标识).

    ``valid_min``/``valid_max`` bound its primary quantity (in ``unit``); ``nominal`` is the expected
    value for utility sensors (pressure, flow) against which deviation is measured.
    """

    id: str
    type: str
    lon: float
    lat: float
    district: str
    cell: str
    owner: str
    unit: str
    valid_min: float
    valid_max: float
    segment: str | None = None
    nominal: float | None = None
    hazard: str | None = None

    @property
    def family(self) -> str:
        return SENSOR_FAMILY[self.type]


def utility_field(sensor: "Sensor") -> str:
    """Which :class:`brain.schemas.UtilityReading` field a utility sensor reports (by unit, then type).

    >>> pump = Sensor(id="P1", type="utility_water", lon=0.0, lat=0.0, district="d", cell="c",
    ...               owner="water", unit="m³/h", valid_min=0.0, valid_max=900.0)
    >>> utility_field(pump)
    'flow_m3h'
    """
    unit = sensor.unit.lower().replace("³", "3").replace(" ", "")
    if unit in ("kpa", "mpa", "bar"):
        return "pressure_kpa"
    if unit in ("m3/h", "m3h", "t/h"):
        return "flow_m3h"
    if unit in ("kw", "mw"):
        return "load_kw"
    return "load_kw" if sensor.type == "utility_power" else "pressure_kpa"


class HazardSource(msgspec.Struct, forbid_unknown_fields=True):
    """A major hazard source (重大危险源) whose parameters are monitored by ``hazard`` sensors."""

    id: str
    name: str
    kind: str
    district: str
    cell: str
    lon: float
    lat: float
    alarm_high: float
    unit: str


class HealthWeights(msgspec.Struct, forbid_unknown_fields=True):
    """Weights of the composite district health index (0-100); normalised to sum 1 when used."""

    traffic: float = 0.25
    environment: float = 0.25
    grid: float = 0.15
    utilities: float = 0.1
    emergency: float = 0.15
    sensors: float = 0.1


class City(msgspec.Struct, forbid_unknown_fields=True, dict=True):
    """A whole city. Build with :func:`brain.city.load_city`; indexes are built on first use."""

    name: str
    admin_code: str
    timezone: str
    center: list[float]
    districts: list[District]
    streets: list[Street]
    cells: list[GridCell]
    segments: list[RoadSegment]
    intersections: list[Intersection]
    corridors: list[Corridor]
    sensors: list[Sensor]
    hazards: list[HazardSource] = []
    health_weights: HealthWeights = msgspec.field(default_factory=HealthWeights)
    # Polygons from the GeoJSON files: id -> list of rings of [lon, lat]; filled by the loader.
    district_polygons: dict[str, list[list[list[float]]]] = {}
    cell_polygons: dict[str, list[list[list[float]]]] = {}

    def sensor(self, sensor_id: str) -> Sensor:
        return self._index("sensors")[sensor_id]

    def segment(self, segment_id: str) -> RoadSegment:
        return self._index("segments")[segment_id]

    def corridor(self, corridor_id: str) -> Corridor:
        """A corridor by id or by name."""
        idx = self._index("corridors")
        if corridor_id in idx:
            return idx[corridor_id]
        for c in self.corridors:
            if c.name == corridor_id:
                return c
        raise KeyError(corridor_id)

    def intersection(self, intersection_id: str) -> Intersection:
        return self._index("intersections")[intersection_id]

    def cell(self, cell_id: str) -> GridCell:
        return self._index("cells")[cell_id]

    def district(self, district_id: str) -> District:
        return self._index("districts")[district_id]

    def _index(self, name: str) -> dict:
        # dict=True lets the struct carry this private cache next to its fields.
        cache = self.__dict__.setdefault("_indexes", {})
        if name not in cache:
            cache[name] = {item.id: item for item in getattr(self, name)}
        return cache[name]

