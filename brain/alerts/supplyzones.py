"""Metered supply zones of the utility networks, as correlation sees them.

A burst main empties through the pipes that feed it, so the flow meter that sees the burst is the
one *supplying* its area, which can be kilometres away and in another district (a district metered
area: the demo city meters xiyuan's water from a meter in dongqiao, ~5 km from xiyuan's western
pressure sensors). No straight-line radius tells that meter's spike from an unrelated one without
also swallowing half the city, so :class:`SupplyZones` assigns every sensor of a utility network to
the zone of the flow meter (unit ``m3/h``) of the same network nearest to it — a meter's zone is
itself — and correlate rules with ``same_zone: true`` (``rules/utilities.yaml``) link a burst and
the flow alerts of its zone into one incident. Networks without flow meters have no zones.

The sensors an alert is about: its ``sensor_id`` label and, for a multi-point alert, the sensor ids
among its ``sources`` (``feed:id``; case and incident ids have no zone).

Example: a meter M1 in the east, M2 in the west, a pressure sensor P nearer M1:
    >>> from brain.city.model import Sensor
    >>> def s(i, lon, unit):
    ...     return Sensor(id=i, type="utility_water", lon=lon, lat=30.0, district="D", cell="C", owner="o",
    ...                   unit=unit, valid_min=0.0, valid_max=1e4)
    >>> z = SupplyZones([s("M1", 120.10, "m3/h"), s("M2", 120.00, "m3/h"), s("P", 120.07, "kPa")])
    >>> z.zone_of("P"), z.zone_of("M2"), z.zone_of("X")
    ('utility_water:M1', 'utility_water:M2', None)
    >>> sorted(z.zones_of({"sources": "pressure:P,cases:GC-1"})), sorted(z.zones_of({"sensor_id": "M2"}))
    (['utility_water:M1'], ['utility_water:M2'])
"""
from __future__ import annotations

import math

#: the unit of a network's flow meters (the meters that delimit its supply zones)
METER_UNIT = "m3/h"


class SupplyZones:
    """Sensor id → its supply zone (``"<type>:<nearest flow meter id>"``), for ``utility_*`` sensors."""

    def __init__(self, sensors) -> None:
        sensors = [s for s in sensors if s.type.startswith("utility_")]
        meters: dict[str, list] = {}
        for s in sensors:
            if s.unit == METER_UNIT:
                meters.setdefault(s.type, []).append(s)
        self._zone: dict[str, str] = {}
        for s in sensors:
            ms = meters.get(s.type)
            if not ms:
                continue
            kx = math.cos(math.radians(s.lat))  # equirectangular: fine at city scale
            near = min(ms, key=lambda m: (((m.lon - s.lon) * kx) ** 2 + (m.lat - s.lat) ** 2, m.id))
            self._zone[s.id] = f"{s.type}:{near.id}"

    @classmethod
    def of_city(cls, city) -> "SupplyZones":
        return cls(city.sensors)

    def zone_of(self, sensor_id: str) -> str | None:
        return self._zone.get(sensor_id)

    def zones_of(self, labels: dict[str, str]) -> set[str]:
        """Zones of the sensors an alert is about (its ``sensor_id``, a multi-point alert's ``sources``)."""
        ids = [labels.get("sensor_id") or ""] + [x.split(":", 1)[-1] for x in (labels.get("sources") or "").split(",") if x]
        return {z for z in map(self._zone.get, ids) if z}
