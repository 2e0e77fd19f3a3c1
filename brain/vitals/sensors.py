"""Sensor health: freshness from last-seen times, and completeness of the sensor registry (一终端一标识).

Freshness of a sensor with expected reporting interval ``I`` whose last record is ``age`` old at ``t``:

* **fresh**: ``age <= fresh_factor * I`` (default 2 intervals: one missed report is tolerated),
* **stale**: ``age <= silent_factor * I`` (default 10 intervals),
* **silent**: older than that, or **never** seen at all (counted as silent in ``silent_share``).

Registry completeness: ``reported_share`` = share of registered sensors that have reported at
least once; ``metadata_complete_share`` = share whose registry entry passes
:func:`metadata_complete` (owner, unit, valid range, known district and cell that agree, and the
link its type needs: a road segment for traffic detectors, a nominal for utility meters, a hazard
source for hazard sensors).

Example: interval 60 s at t = 1000 s: seen 100 s ago is fresh (<= 120 s), 500 s ago stale
(<= 600 s), 700 s ago silent, never seen is ``never``.
    >>> codes = freshness([900_000, 500_000, 300_000, None], 1_000_000, [60.0] * 4)
    >>> [FRESHNESS_NAMES[c] for c in codes]
    ['fresh', 'stale', 'silent', 'never']
"""
from __future__ import annotations

import numpy as np

from brain.city.model import SENSOR_FAMILY, City, Sensor

FRESH, STALE, SILENT, NEVER = 0, 1, 2, 3
FRESHNESS_NAMES: tuple[str, ...] = ("fresh", "stale", "silent", "never")

#: Expected reporting interval (s) per sensor type. Detectors and meters report on a clock. Case
#: sources (inspector apps, the 12345 gateway, citizen apps), outage feeds and dispatch (CAD)
#: systems are event driven: a quiet night is normal (one inspector per grid cell may file nothing
#: for hours), so they are expected to be heard from daily, and are stale after 2 quiet days.
DEFAULT_EXPECTED_INTERVAL_S: dict[str, float] = {
    "loop": 60.0, "video": 60.0, "radar": 60.0, "probe": 300.0,
    "air": 3600.0, "noise": 60.0, "water_quality": 3600.0, "weather": 600.0,
    "grid_inspector": 86400.0, "hotline_12345": 86400.0, "citizen_app": 86400.0,
    "utility_power": 300.0, "utility_water": 300.0, "utility_gas": 300.0, "utility_heat": 300.0,
    "utility_outage_feed": 86400.0,
    "cad_police": 86400.0, "cad_fire": 86400.0, "cad_medical": 86400.0, "cad_emergency_mgmt": 86400.0,
    "hazard": 60.0,
}

_TRAFFIC_TYPES = frozenset({"loop", "video", "radar", "probe"})
_METER_TYPES = frozenset({"utility_power", "utility_water", "utility_gas", "utility_heat"})


def freshness(last_seen_ms, t_ms, expected_interval_s, fresh_factor: float = 2.0, silent_factor: float = 10.0) -> np.ndarray:
    """Freshness code per sensor: 0 fresh, 1 stale, 2 silent, 3 never seen (None/NaN last seen).

    A last-seen time after ``t`` (clock skew) counts as fresh.

    >>> freshness([0.0, float("nan")], 600_000, [3600.0, 60.0]).tolist()  # 10 min old, hourly: fresh
    [0, 3]
    """
    if not 0 < fresh_factor <= silent_factor:
        raise ValueError(f"need 0 < fresh_factor <= silent_factor, got {fresh_factor}, {silent_factor}")
    try:
        seen = np.asarray(last_seen_ms, dtype=np.float64)
    except TypeError:  # a Python list holding None for never-seen sensors
        seen = np.asarray([np.nan if x is None else x for x in last_seen_ms], dtype=np.float64)
    interval_ms = np.asarray(expected_interval_s, dtype=np.float64) * 1000.0
    if np.any(~(interval_ms > 0)):
        raise ValueError("expected reporting intervals must be > 0")
    age = np.asarray(t_ms, dtype=np.float64) - seen  # one t, or one per sensor (batches of ticks)
    code = np.where(age <= fresh_factor * interval_ms, FRESH, np.where(age <= silent_factor * interval_ms, STALE, SILENT))
    return np.where(np.isnan(seen), NEVER, code).astype(np.int64)


def metadata_problems(sensor: Sensor, city: City) -> list[str]:
    """What is missing or inconsistent in one registry entry (empty list = complete).

    >>> from brain.city.model import City, District, GridCell, Sensor, Street
    >>> city = City(name="T", admin_code="110000", timezone="Asia/Shanghai", center=[116.4, 39.9],
    ...     districts=[District(id="D1", name="d", admin_code="110101", center=[116.4, 39.9])],
    ...     streets=[Street(id="ST1", name="s", district="D1")],
    ...     cells=[GridCell(id="C1", district="D1", street="ST1", center=[116.4, 39.9])],
    ...     segments=[], intersections=[], corridors=[], sensors=[])
    >>> s = Sensor(id="L1", type="loop", lon=116.4, lat=39.9, district="D1", cell="C1", owner="traffic police",
    ...            unit="km/h", valid_min=0, valid_max=200)
    >>> metadata_problems(s, city)
    ['traffic detector without a known road segment']
    """
    problems: list[str] = []
    if sensor.type not in SENSOR_FAMILY:
        problems.append(f"unknown sensor type {sensor.type!r}")
    if not sensor.owner.strip():
        problems.append("no owner department")
    if not sensor.unit.strip():
        problems.append("no unit of measure")
    if not sensor.valid_min < sensor.valid_max:
        problems.append("valid range empty (valid_min >= valid_max)")
    if not (-180 <= sensor.lon <= 180 and -90 <= sensor.lat <= 90) or (sensor.lon == 0 and sensor.lat == 0):
        problems.append("no usable location")
    districts = city._index("districts")
    cells = city._index("cells")
    if sensor.district not in districts:
        problems.append(f"unknown district {sensor.district!r}")
    if sensor.cell not in cells:
        problems.append(f"unknown grid cell {sensor.cell!r}")
    elif cells[sensor.cell].district != sensor.district:
        problems.append(f"cell {sensor.cell!r} is in district {cells[sensor.cell].district!r}, not {sensor.district!r}")
    if sensor.type in _TRAFFIC_TYPES and (sensor.segment is None or sensor.segment not in city._index("segments")):
        problems.append("traffic detector without a known road segment")
    if sensor.type in _METER_TYPES and (sensor.nominal is None or not sensor.nominal > 0):
        problems.append("utility meter without a nominal value")
    if sensor.type == "hazard" and (sensor.hazard is None or sensor.hazard not in {h.id for h in city.hazards}):
        problems.append("hazard sensor without a known hazard source")
    return problems


def metadata_complete(city: City) -> np.ndarray:
    """Per registered sensor (in ``city.sensors`` order): True when its registry entry is complete.

    >>> from brain.city import demo_city_path, load_city
    >>> bool(metadata_complete(load_city(demo_city_path())).all())
    True
    """
    return np.asarray([not metadata_problems(s, city) for s in city.sensors], dtype=bool)
