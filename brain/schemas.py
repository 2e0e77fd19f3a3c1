"""Event schemas for the four feed families, as columnar batches.

Every input record is one JSON object per line with a ``kind`` tag, the terminal that sent it
(``sensor_id``, checked against the sensor registry) and its event time ``ts_ms`` (Unix epoch,
milliseconds, UTC). Units are in the field names. The typed ``msgspec`` structs below are the
documentation and the strict per-record decoder; the hot path decodes whole batches of lines
straight into columns (:mod:`brain.ingest`).

Example:
    >>> import msgspec
    >>> line = b'{"kind":"traffic","sensor_id":"L1","ts_ms":0,"volume_veh":12,"occupancy_pct":8.5,"speed_kmh":52.0}'
    >>> rec = msgspec.json.decode(line, type=Record)
    >>> type(rec).__name__, rec.speed_kmh
    ('TrafficReading', 52.0)
"""
from __future__ import annotations

from typing import Literal, Union

import msgspec


class _Base(msgspec.Struct, tag_field="kind", forbid_unknown_fields=False, kw_only=True):
    sensor_id: str
    ts_ms: int


# --- traffic -------------------------------------------------------------------------------------
class TrafficReading(_Base, tag="traffic"):
    """Detector reading (loop, video, radar) over ``interval_s`` seconds for one segment's lanes."""

    volume_veh: float
    occupancy_pct: float
    speed_kmh: float
    interval_s: float = 60.0


class ProbeTravelTime(_Base, tag="probe"):
    """Floating-car / probe travel time over a whole road segment."""

    travel_time_s: float
    samples: int = 1


# --- environment ---------------------------------------------------------------------------------
class AirReading(_Base, tag="air"):
    """Air-quality station hourly/minute means; µg/m³ except CO in mg/m³. Missing pollutants are null."""

    pm25_ugm3: float | None = None
    pm10_ugm3: float | None = None
    so2_ugm3: float | None = None
    no2_ugm3: float | None = None
    o3_ugm3: float | None = None
    co_mgm3: float | None = None


class NoiseReading(_Base, tag="noise"):
    """Equivalent continuous A-weighted sound level over ``interval_s`` and its maximum."""

    laeq_db: float
    lamax_db: float | None = None
    interval_s: float = 60.0


class WaterQualityReading(_Base, tag="water_quality"):
    ph: float | None = None
    turbidity_ntu: float | None = None
    dissolved_oxygen_mgl: float | None = None


class WeatherReading(_Base, tag="weather"):
    temp_c: float | None = None
    humidity_pct: float | None = None
    wind_ms: float | None = None
    rain_mm: float | None = None


# --- grid events: cases and utility lifelines ----------------------------------------------------
CaseStatus = Literal["reported", "dispatched", "handling", "closed"]


class GridCase(_Base, tag="grid_case"):
    """A city-management grid case update (网格化管理 / 12345). One record per lifecycle step."""

    case_id: str
    status: CaseStatus
    category: str
    cell_id: str
    unit: str
    deadline_ms: int


class UtilityReading(_Base, tag="utility"):
    """Lifeline sensor: pressure (water, gas, heat), flow, or electrical load (power)."""

    pressure_kpa: float | None = None
    flow_m3h: float | None = None
    load_kw: float | None = None


class UtilityOutage(_Base, tag="outage"):
    """An outage reported by a utility's feed; ``status`` start or end."""

    outage_id: str
    utility: Literal["power", "water", "gas", "heat"]
    status: Literal["start", "end"]
    cell_id: str
    customers: int = 0


ControllerMode = Literal["coordinated", "free", "flash", "manual", "preempt", "off"]


class SignalStatus(_Base, tag="signal_status"):
    """What a signal controller is actually running (NTCIP 1202 status objects: the running
    pattern, the phase in green and for how long, detector faults); one record per report."""

    intersection_id: str
    plan_id: str
    pattern: int
    phase: int
    phase_time_s: float
    mode: ControllerMode = "coordinated"
    cycle_time_s: float = 0.0
    detector_faults: int = 0


VehicleType = Literal["ambulance", "fire", "police", "bus", "other"]


class VehiclePosition(_Base, tag="vehicle_position"):
    """A tracked vehicle's position (AVL / GNSS): WGS84, speed and heading (0 = north, clockwise)."""

    vehicle_id: str
    vehicle_type: VehicleType
    lon: float
    lat: float
    speed_kmh: float
    heading_deg: float


# --- emergency -----------------------------------------------------------------------------------
IncidentStatus = Literal["reported", "dispatched", "on_scene", "closed"]


class Incident(_Base, tag="incident"):
    """An emergency incident update from a dispatch system. ``severity`` 1 (I, most severe) .. 4 (IV)."""

    incident_id: str
    status: IncidentStatus
    type: str
    severity: int
    lon: float
    lat: float
    units: int = 0
    segment_id: str | None = None


class HazardReading(_Base, tag="hazard"):
    """A hazard-source parameter (tank level, gas concentration, temperature) in the sensor's unit."""

    value: float


Record = Union[
    TrafficReading,
    ProbeTravelTime,
    AirReading,
    NoiseReading,
    WaterQualityReading,
    WeatherReading,
    GridCase,
    UtilityReading,
    UtilityOutage,
    Incident,
    HazardReading,
    SignalStatus,
    VehiclePosition,
]

RECORD_TYPES: dict[str, type] = {t.__struct_config__.tag: t for t in Record.__args__}  # type: ignore[attr-defined]
KINDS: tuple[str, ...] = tuple(RECORD_TYPES)

#: Which sensor types may send which record kinds (anything else is "kind not allowed for sensor type").
KIND_SENSOR_TYPES: dict[str, frozenset[str]] = {
    "traffic": frozenset({"loop", "video", "radar"}),
    "probe": frozenset({"probe"}),
    "air": frozenset({"air"}),
    "noise": frozenset({"noise"}),
    "water_quality": frozenset({"water_quality"}),
    "weather": frozenset({"weather"}),
    "grid_case": frozenset({"grid_inspector", "hotline_12345", "citizen_app"}),
    "utility": frozenset({"utility_power", "utility_water", "utility_gas", "utility_heat"}),
    "outage": frozenset({"utility_outage_feed"}),
    "incident": frozenset({"cad_police", "cad_fire", "cad_medical", "cad_emergency_mgmt"}),
    "hazard": frozenset({"hazard"}),
    "signal_status": frozenset({"signal_controller"}),
    "vehicle_position": frozenset({"vehicle_avl"}),
}

#: Physically possible range of each numeric field, whatever the sensor (inclusive).
#: A value outside is "out of physical range"; the sensor's own valid range is checked too.
PHYSICAL_RANGE: dict[str, tuple[float, float]] = {
    # Event time from 1970 to 2200: a clock outside is broken (and would drag stream time with it).
    "ts_ms": (0, 7_258_118_400_000),
    "volume_veh": (0, 2000),
    "occupancy_pct": (0, 100),
    "speed_kmh": (0, 200),
    "interval_s": (1, 3600),
    "travel_time_s": (0, 7200),
    "samples": (1, 100000),
    "pm25_ugm3": (0, 2000),
    "pm10_ugm3": (0, 3000),
    "so2_ugm3": (0, 5000),
    "no2_ugm3": (0, 5000),
    "o3_ugm3": (0, 2000),
    "co_mgm3": (0, 200),
    "laeq_db": (0, 150),
    "lamax_db": (0, 160),
    "ph": (0, 14),
    "turbidity_ntu": (0, 4000),
    "dissolved_oxygen_mgl": (0, 25),
    "temp_c": (-60, 60),
    "humidity_pct": (0, 100),
    "wind_ms": (0, 80),
    "rain_mm": (0, 500),
    "pressure_kpa": (0, 5000),
    "flow_m3h": (0, 100000),
    "load_kw": (0, 1e6),
    "customers": (0, 1e7),
    "severity": (1, 4),
    "units": (0, 1000),
    "lon": (-180, 180),
    "lat": (-90, 90),
    "value": (-1e6, 1e6),
    "pattern": (0, 255),  # NTCIP 1202 pattern numbers; 0 = free running
    "phase": (1, 255),
    "phase_time_s": (0, 3600),
    "cycle_time_s": (0, 600),
    "detector_faults": (0, 1000),
    "heading_deg": (0, 360),
}

#: The field a sensor's ``valid_min``/``valid_max`` applies to, per record kind (None: no primary value).
PRIMARY_FIELD: dict[str, str | None] = {
    "traffic": "speed_kmh",
    "probe": "travel_time_s",
    "air": "pm25_ugm3",
    "noise": "laeq_db",
    "water_quality": "ph",
    "weather": "temp_c",
    "grid_case": None,
    "utility": None,  # which of pressure/flow/load depends on the utility; see the sensor's unit
    "outage": None,
    "incident": None,
    "hazard": "value",
    "signal_status": None,
    "vehicle_position": "speed_kmh",
}


def record_fields(kind: str) -> dict[str, object]:
    """Field name -> annotation of one record kind (without ``kind`` itself)."""
    t = RECORD_TYPES[kind]
    return {f: t.__annotations__.get(f) for f in t.__struct_fields__}


def encode_record(rec: msgspec.Struct) -> bytes:
    """One JSON line (no newline) for a record struct."""
    return msgspec.json.encode(rec)
