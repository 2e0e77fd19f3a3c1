"""Tracked vehicles for the simulator: ambulance and bus ``vehicle_position`` streams along city routes.

A :class:`VehicleRun` drives one vehicle along a :class:`~brain.greenwave.escort.Route` (fastest
path over the city's road segments) from ``depart_ms`` at about ``speed_kmh``, reporting every
``every_s`` seconds (AVL / GNSS): WGS84 position with a few metres of noise, speed, heading.
Like every simulator feed, positions are pure functions of time and seed, so batches of any size
give the same records. :func:`demo_vehicles` is the demo city's pair: an ambulance from Jiefang
Rd to Qiutao Rd (two corridors) and a bus along Jiefang Rd.

Example:
    >>> from brain.city import demo_city_path
    >>> from brain.city.loader import load_city
    >>> city = load_city(demo_city_path())
    >>> amb, bus = demo_vehicles(city, start_ms=0)
    >>> amb.route.signals[:3], amb.vehicle_type
    (['JF02', 'JF03', 'JF04'], 'ambulance')
    >>> df = vehicle_frame([amb, bus], 600_000, 660_000, seed=1)
    >>> df.columns
    ['sensor_id', 'ts_ms', 'vehicle_id', 'vehicle_type', 'lon', 'lat', 'speed_kmh', 'heading_deg']
    >>> df.filter(df["vehicle_id"] == "AMB-1").height    # one position every 2 s
    30
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np
import polars as pl

from brain.greenwave.escort import Route, plan_route
from streams.sim.clock import hash_normal

#: GNSS noise (m, standard deviation) and speed wobble (share of cruise speed).
GNSS_SIGMA_M = 4.0
SPEED_WOBBLE = 0.1


class VehicleRun:
    """One vehicle's trip: route, departure (epoch ms), cruise speed, reporting interval.

    Example: see the module docstring (``demo_vehicles``).
    """

    def __init__(self, vehicle_id: str, vehicle_type: str, route: Route, depart_ms: int, speed_kmh: float,
                 every_s: float = 2.0, sensor_id: str | None = None):
        if not (speed_kmh > 0 and every_s > 0):
            raise ValueError(f"speed_kmh and every_s must be > 0, got {speed_kmh}, {every_s}")
        self.vehicle_id, self.vehicle_type, self.route = vehicle_id, vehicle_type, route
        self.depart_ms, self.speed_kmh, self.every_ms = int(depart_ms), float(speed_kmh), int(every_s * 1000)
        self.sensor_id = sensor_id or f"AVL-{vehicle_id}"
        self.arrive_ms = self.depart_ms + int(route.length_m / (speed_kmh / 3.6) * 1000)

    def distance_m(self, ts_ms: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Distance along the route (m) and speed (km/h) at ``ts_ms``: the speed wobbles smoothly
        (a sine of a seeded phase, period 2 min) and the distance is its exact integral."""
        v = self.speed_kmh / 3.6
        w = 2 * math.pi / 120.0
        ph = (zlib.crc32(f"{seed}:{self.vehicle_id}".encode()) % 1000) / 1000 * 2 * math.pi
        t = np.maximum((np.asarray(ts_ms) - self.depart_ms) / 1000.0, 0.0)
        s = np.minimum(v * t + v * SPEED_WOBBLE / w * (np.cos(ph) - np.cos(w * t + ph)), self.route.length_m)
        return s, np.where(s < self.route.length_m, v * (1 + SPEED_WOBBLE * np.sin(w * t + ph)) * 3.6, 0.0)

    def positions(self, a_ms: int, b_ms: int, seed: int) -> dict[str, np.ndarray]:
        """Reports in ``[a_ms, b_ms)``: ts_ms, lon, lat, speed_kmh, heading_deg (arrays)."""
        k0 = max(0, -(-(a_ms - self.depart_ms) // self.every_ms))
        k1 = -(-(min(b_ms, self.arrive_ms + self.every_ms) - self.depart_ms) // self.every_ms)
        k = np.arange(k0, max(k0, k1), dtype=np.int64)
        ts = self.depart_ms + k * self.every_ms
        tag = zlib.crc32(self.vehicle_id.encode())  # stable across processes, unlike hash()
        s, speed = self.distance_m(ts, seed)
        lon = np.interp(s, self.route.s_m, self.route.lon)
        lat = np.interp(s, self.route.s_m, self.route.lat)
        ahead_lon = np.interp(np.minimum(s + 5.0, self.route.length_m), self.route.s_m, self.route.lon)
        ahead_lat = np.interp(np.minimum(s + 5.0, self.route.length_m), self.route.s_m, self.route.lat)
        behind_lon = np.interp(np.maximum(s - 5.0, 0.0), self.route.s_m, self.route.lon)
        behind_lat = np.interp(np.maximum(s - 5.0, 0.0), self.route.s_m, self.route.lat)
        heading = np.degrees(np.arctan2((ahead_lon - behind_lon) * np.cos(np.radians(lat)), ahead_lat - behind_lat)) % 360
        # noise keyed by (seed, vehicle, report time): the same record whatever the batch boundaries
        item = np.full(len(k), tag % 2**31, dtype=np.int64)
        m_per_deg = 111_195.0
        lat_n = lat + GNSS_SIGMA_M * hash_normal(seed, 71, item, ts) / m_per_deg
        lon_n = lon + GNSS_SIGMA_M * hash_normal(seed, 72, item, ts) / (m_per_deg * np.cos(np.radians(lat)))
        return {"ts_ms": ts, "lon": np.round(lon_n, 7), "lat": np.round(lat_n, 7), "speed_kmh": np.round(speed, 2),
                "heading_deg": np.round(heading, 1)}


def vehicle_frame(runs: Sequence[VehicleRun], a_ms: int, b_ms: int, seed: int) -> pl.DataFrame | None:
    """The ``vehicle_position`` frame of ``runs`` in ``[a_ms, b_ms)``, sorted by time (None: no report)."""
    parts = []
    for run in runs:
        p = run.positions(a_ms, b_ms, seed)
        n = len(p["ts_ms"])
        if n:
            parts.append(pl.DataFrame({"sensor_id": [run.sensor_id] * n, "ts_ms": p["ts_ms"],
                                       "vehicle_id": [run.vehicle_id] * n, "vehicle_type": [run.vehicle_type] * n,
                                       "lon": p["lon"], "lat": p["lat"], "speed_kmh": p["speed_kmh"],
                                       "heading_deg": p["heading_deg"]}))
    if not parts:
        return None
    return pl.concat(parts).sort("ts_ms", maintain_order=True)


def demo_vehicles(city, start_ms: int) -> list[VehicleRun]:
    """The demo city's ambulance (JF02 -> QT05 over Jiefang and Qiutao Rd, 10 min after ``start_ms``)
    and a bus along Jiefang Rd (JF01 -> JF10, from the start)."""
    amb = VehicleRun("AMB-1", "ambulance", plan_route(city, "JF02", "QT05", via=["X01"]), start_ms + 600_000, 55.0)
    bus = VehicleRun("BUS-1", "bus", plan_route(city, "JF01", "JF10"), start_ms, 25.0, every_s=5.0)
    return [amb, bus]
