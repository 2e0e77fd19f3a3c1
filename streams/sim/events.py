"""Lifecycle events: grid cases (网格/12345), emergency incidents and utility outages.

Arrivals are Poisson per step (rates follow :mod:`streams.sim.profiles`); at arrival a case's
whole lifecycle is drawn at once and its records wait in an :class:`EventQueue` until their time:

- grid case: reported -> dispatched -> handling -> closed; the deadline depends on the
  category, and the closing time is drawn relative to it so ~15% of cases breach it;
- incident: reported -> dispatched -> on_scene -> closed, severity 1 (I) .. 4 (IV), units sent;
- outage: start -> end.

Example:
    >>> import numpy as np
    >>> from zoneinfo import ZoneInfo
    >>> from streams.sim.toycity import toy_city
    >>> from streams.sim.clock import local_time
    >>> gen = GridCaseGen(toy_city(), seed=0)
    >>> a = 1_780_243_200_000 + 10 * 3_600_000
    >>> df = gen.arrivals(a, a + 8 * 3_600_000, local_time(a, ZoneInfo("Asia/Shanghai")), 3)
    >>> sorted(set(df["status"]))
    ['closed', 'dispatched', 'handling', 'reported']
"""
from __future__ import annotations

import numpy as np
import polars as pl

from brain.city.model import City
from brain.schemas import KIND_SENSOR_TYPES
from streams.sim.clock import LocalTime, scalar_poisson, step_rng
from streams.sim.frames import KIND_SCHEMAS
from streams.sim.profiles import case_rate, incident_rate

MIN_MS = 60_000
HOUR_MS = 3_600_000

#: Grid-case categories: (name, share, deadline in hours, responsible unit).
CASE_CATEGORIES: tuple[tuple[str, float, float, str], ...] = (
    ("garbage", 0.20, 4.0, "sanitation"),
    ("illegal_parking", 0.14, 2.0, "traffic_police"),
    ("illegal_vendor", 0.12, 2.0, "city_management"),
    ("road_damage", 0.10, 24.0, "roads"),
    ("noise_complaint", 0.10, 4.0, "environment"),
    ("street_light", 0.08, 24.0, "lighting"),
    ("construction_nuisance", 0.08, 8.0, "city_management"),
    ("greening", 0.07, 48.0, "greening"),
    ("manhole_cover", 0.05, 4.0, "roads"),
    ("water_leak", 0.06, 6.0, "water_company"),
)
CASE_DEADLINE_H = {c[0]: c[2] for c in CASE_CATEGORIES}
CASE_UNIT = {c[0]: c[3] for c in CASE_CATEGORIES} | {"traffic_congestion": "traffic_police"}
CASE_DEADLINE_H["traffic_congestion"] = 2.0

#: Incident types: (type, share, dispatch system sensor type).
INCIDENT_TYPES: tuple[tuple[str, float, str], ...] = (
    ("traffic_accident", 0.33, "cad_police"),
    ("medical", 0.30, "cad_medical"),
    ("public_security", 0.17, "cad_police"),
    ("fire", 0.08, "cad_fire"),
    ("rescue", 0.05, "cad_fire"),
    ("gas_leak", 0.03, "cad_fire"),
    ("flooding", 0.02, "cad_emergency_mgmt"),
    ("hazmat", 0.02, "cad_emergency_mgmt"),
)
SEVERITY_P = np.array([0.02, 0.10, 0.28, 0.60])  # I, II, III, IV


class EventQueue:
    """Future records of one lifecycle kind, released when the simulation clock passes them.

    Example:
        >>> import numpy as np
        >>> q = EventQueue("outage")
        >>> q.push(outage_frame(["O1"], ["OUT-power"], ["power"], ["C1"], [100], [1_000], [5_000]))
        >>> q.pop(0, 2_000)["status"].to_list(), q.pop(2_000, 9_000)["status"].to_list()
        (['start'], ['end'])
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._pending: list[pl.DataFrame] = []
        self._min_ts = np.iinfo(np.int64).max

    def push(self, df: pl.DataFrame | None) -> None:
        if df is None or not df.height:
            return
        self._pending.append(df)
        self._min_ts = min(self._min_ts, int(df["ts_ms"].min()))

    def drop(self, id_prefix: str) -> None:
        """Forget queued records whose id (third column) starts with ``id_prefix``."""
        self._pending = [df.filter(~pl.col(df.columns[2]).str.starts_with(id_prefix)) for df in self._pending]

    def pop(self, a_ms: int, b_ms: int) -> pl.DataFrame | None:
        """Records with ``a_ms <= ts_ms < b_ms`` in time order (None if none); earlier ones are dropped."""
        if self._min_ts >= b_ms or not self._pending:
            return None
        all_ = pl.concat(self._pending) if len(self._pending) > 1 else self._pending[0]
        ts = all_["ts_ms"].to_numpy()
        later = ts >= b_ms
        rest = all_.filter(pl.Series(later))
        self._pending = [rest] if rest.height else []
        self._min_ts = int(ts[later].min()) if rest.height else np.iinfo(np.int64).max
        due = all_.filter(pl.Series(~later & (ts >= a_ms)))
        if not due.height:
            return None
        return due.sort(["ts_ms", "sensor_id", due.columns[2]], maintain_order=True)


def case_frame(case_ids, sensor_ids, categories, cells, units, deadlines_ms, times_ms: np.ndarray) -> pl.DataFrame:
    """Grid-case records for ``n`` cases; ``times_ms`` is (4, n): reported, dispatched, handling, closed."""
    n = len(case_ids)
    statuses = ["reported", "dispatched", "handling", "closed"]
    return pl.DataFrame({
        "sensor_id": list(sensor_ids) * 4,
        "ts_ms": np.asarray(times_ms, dtype=np.int64).reshape(-1),
        "case_id": list(case_ids) * 4,
        "status": [s for s in statuses for _ in range(n)],
        "category": list(categories) * 4,
        "cell_id": list(cells) * 4,
        "unit": list(units) * 4,
        "deadline_ms": np.tile(np.asarray(deadlines_ms, dtype=np.int64), 4),
    }, schema=KIND_SCHEMAS["grid_case"])


def incident_frame(ids, sensor_ids, types, severity, lon, lat, units, segment_ids, times_ms: np.ndarray) -> pl.DataFrame:
    """Incident records; ``times_ms`` is (4, n): reported, dispatched, on_scene, closed."""
    n = len(ids)
    statuses = ["reported", "dispatched", "on_scene", "closed"]
    units = np.asarray(units, dtype=np.int64)
    return pl.DataFrame({
        "sensor_id": list(sensor_ids) * 4,
        "ts_ms": np.asarray(times_ms, dtype=np.int64).reshape(-1),
        "incident_id": list(ids) * 4,
        "status": [s for s in statuses for _ in range(n)],
        "type": list(types) * 4,
        "severity": np.tile(np.asarray(severity, dtype=np.int64), 4),
        "lon": np.tile(np.round(np.asarray(lon, dtype=np.float64), 6), 4),
        "lat": np.tile(np.round(np.asarray(lat, dtype=np.float64), 6), 4),
        "units": np.concatenate([np.zeros(n, np.int64), units, units, units]),
        "segment_id": list(segment_ids) * 4,
    }, schema=KIND_SCHEMAS["incident"])


def outage_frame(ids, sensor_ids, utilities, cells, customers, start_ms, end_ms) -> pl.DataFrame:
    n = len(ids)
    return pl.DataFrame({
        "sensor_id": list(sensor_ids) * 2,
        "ts_ms": np.concatenate([np.asarray(start_ms, np.int64), np.asarray(end_ms, np.int64)]),
        "outage_id": list(ids) * 2,
        "utility": list(utilities) * 2,
        "status": ["start"] * n + ["end"] * n,
        "cell_id": list(cells) * 2,
        "customers": np.tile(np.asarray(customers, dtype=np.int64), 2),
    }, schema=KIND_SCHEMAS["outage"])


def _case_sources(city: City) -> dict[str, list[str]]:
    return {t: [s.id for s in city.sensors if s.type == t] for t in sorted(KIND_SENSOR_TYPES["grid_case"])}


class GridCaseGen:
    """Poisson grid-case arrivals with whole lifecycles (see the module docstring for an example)."""

    FAMILY = 4
    RATE_PER_CELL_HOUR = 0.35  # at the daytime peak, in a city of up to REFERENCE_SENSORS sensors
    #: A bigger city's cells are busier (denser, more people per cell, more channels): past this size the
    #: rate per cell grows with the city's sensor count, so a 50k-sensor city of ~4k cells reports
    #: ~340k cases a day (the "few hundred thousand a day" of a real megacity's grid system + 12345).
    REFERENCE_SENSORS = 3_000

    def __init__(self, city: City, seed: int):
        self.cells = [c.id for c in city.cells] or sorted({s.cell for s in city.sensors})
        self.rate_per_cell_hour = self.RATE_PER_CELL_HOUR * max(1.0, len(city.sensors) / self.REFERENCE_SENSORS)
        self.cell_district = {c.id: c.district for c in city.cells}
        self.sources = _case_sources(city)
        self.inspector_by_cell = {s.cell: s.id for s in city.sensors if s.type == "grid_inspector"}
        self.channels = [t for t in ("grid_inspector", "hotline_12345", "citizen_app") if self.sources.get(t)]
        share = {"grid_inspector": 0.4, "hotline_12345": 0.4, "citizen_app": 0.2}
        p = np.array([share[c] for c in self.channels])
        self.channel_p = p / p.sum() if len(p) else p
        self.cat_names = [c[0] for c in CASE_CATEGORIES]
        self.cat_p = np.array([c[1] for c in CASE_CATEGORIES])
        self.cat_p /= self.cat_p.sum()

    def source_for(self, channel: str, cell: str, rng: np.random.Generator) -> str:
        if channel == "grid_inspector" and cell in self.inspector_by_cell:
            return self.inspector_by_cell[cell]
        ids = self.sources[channel]
        return ids[int(rng.integers(len(ids)))]

    def lifecycle(self, t0: np.ndarray, deadline_h: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(4, n) times: dispatch within minutes, handling later, closing ~ lognormal around 55% of the deadline."""
        n = len(t0)
        dl = deadline_h * HOUR_MS
        t1 = t0 + (1.0 + rng.exponential(8.0, n)) * MIN_MS
        t2 = t1 + rng.exponential(0.12, n) * dl + 2 * MIN_MS
        t3 = np.maximum(t0 + dl * np.exp(rng.normal(np.log(0.55), 0.6, n)), t2 + 5 * MIN_MS)
        return np.stack([t0, t1, t2, t3]).astype(np.int64)

    def make(self, t0: np.ndarray, cells: list[str], categories: list[str], channels: list[str],
             ids: list[str], rng: np.random.Generator) -> pl.DataFrame | None:
        if not self.channels or not len(t0):
            return None
        deadline_h = np.array([CASE_DEADLINE_H.get(c, 8.0) for c in categories])
        times = self.lifecycle(np.asarray(t0, dtype=np.int64), deadline_h, rng)
        sensors = [self.source_for(ch if ch in self.channels else self.channels[0], cell, rng) for ch, cell in zip(channels, cells)]
        units = [f"{self.cell_district.get(cell, 'city')}/{CASE_UNIT.get(c, 'city_management')}" for c, cell in zip(categories, cells)]
        deadlines = times[0] + (deadline_h * HOUR_MS).astype(np.int64)
        return case_frame(ids, sensors, categories, cells, units, deadlines, times)

    def arrivals(self, a_ms: int, b_ms: int, lt: LocalTime, seed: int) -> pl.DataFrame | None:
        if not self.channels or not self.cells:
            return None
        lam = self.rate_per_cell_hour * len(self.cells) * float(case_rate(lt.hour)) * (b_ms - a_ms) / HOUR_MS
        n = scalar_poisson(seed, self.FAMILY, a_ms // 1000, lam)
        if n == 0:
            return None
        rng = step_rng(seed, self.FAMILY, a_ms)
        t0 = np.sort(rng.integers(a_ms, b_ms, n))
        cells = [self.cells[i] for i in rng.integers(len(self.cells), size=n)]
        cats = [self.cat_names[i] for i in rng.choice(len(self.cat_names), size=n, p=self.cat_p)]
        chans = [self.channels[i] for i in rng.choice(len(self.channels), size=n, p=self.channel_p)]
        ids = [f"GC-{a_ms // 1000}-{k}" for k in range(n)]
        return self.make(t0, cells, cats, chans, ids, rng)


class IncidentGen:
    """Poisson emergency incidents with lifecycles; traffic accidents sit on a road segment.

    Example:
        >>> import numpy as np
        >>> from zoneinfo import ZoneInfo
        >>> from streams.sim.toycity import toy_city
        >>> from streams.sim.clock import local_time
        >>> a = 1_780_243_200_000 + 12 * 3_600_000
        >>> df = IncidentGen(toy_city(), 0).arrivals(a, a + 6 * 3_600_000, local_time(a, ZoneInfo("Asia/Shanghai")), 0)
        >>> df.filter(df["status"] == "reported").height * 4 == df.height
        True
    """

    FAMILY = 5
    RATE_PER_DISTRICT_HOUR = 0.8

    def __init__(self, city: City, seed: int):
        self.cad = {t: [s.id for s in city.sensors if s.type == t] for t in sorted(KIND_SENSOR_TYPES["incident"])}
        self.any_cad = [sid for ids in self.cad.values() for sid in ids]
        self.n_districts = max(len(city.districts), 1)
        self.cells = [(c.center[0], c.center[1]) for c in city.cells] or [tuple(city.center)]
        self.segments = [(s.id, s.line) for s in city.segments]
        self.types = [t for t in INCIDENT_TYPES if t[0] != "traffic_accident" or self.segments]
        p = np.array([t[1] for t in self.types])
        self.type_p = p / p.sum()

    def sensor_for(self, system: str, rng: np.random.Generator) -> str:
        ids = self.cad.get(system) or self.any_cad
        return ids[int(rng.integers(len(ids)))]

    @staticmethod
    def lifecycle(t0: np.ndarray, severity: np.ndarray, rng: np.random.Generator, close_ms: np.ndarray | None = None) -> np.ndarray:
        n = len(t0)
        t1 = t0 + (0.5 + rng.exponential(1.5, n)) * MIN_MS
        t2 = t1 + (4.0 + rng.exponential(6.0, n)) * MIN_MS
        t3 = t2 + (15.0 + rng.exponential(25.0, n) * (5 - severity)) * MIN_MS if close_ms is None else np.maximum(close_ms, t2 + MIN_MS)
        return np.stack([t0, t1, t2, t3]).astype(np.int64)

    def arrivals(self, a_ms: int, b_ms: int, lt: LocalTime, seed: int) -> pl.DataFrame | None:
        if not self.any_cad:
            return None
        lam = self.RATE_PER_DISTRICT_HOUR * self.n_districts * float(incident_rate(lt.hour)) * (b_ms - a_ms) / HOUR_MS
        n = scalar_poisson(seed, self.FAMILY, a_ms // 1000, lam)
        if n == 0:
            return None
        rng = step_rng(seed, self.FAMILY, a_ms)
        t0 = np.sort(rng.integers(a_ms, b_ms, n))
        kinds = rng.choice(len(self.types), size=n, p=self.type_p)
        severity = rng.choice(4, size=n, p=SEVERITY_P) + 1
        units = np.maximum(1, np.round(rng.uniform(0.6, 1.4, n) * np.array([10, 5, 2.5, 1.5])[severity - 1])).astype(np.int64)
        lon, lat, segs, sensors, types = [], [], [], [], []
        for k in kinds:
            tname, _, system = self.types[k]
            types.append(tname)
            sensors.append(self.sensor_for(system, rng))
            if tname == "traffic_accident":
                sid, line = self.segments[int(rng.integers(len(self.segments)))]
                f = float(rng.uniform(0.1, 0.9))
                (x0, y0), (x1, y1) = line[0], line[-1]
                lon.append(x0 + f * (x1 - x0))
                lat.append(y0 + f * (y1 - y0))
                segs.append(sid)
            else:
                cx, cy = self.cells[int(rng.integers(len(self.cells)))]
                lon.append(cx + float(rng.normal(0, 0.002)))
                lat.append(cy + float(rng.normal(0, 0.002)))
                segs.append(None)
        times = self.lifecycle(t0, severity, rng)
        ids = [f"INC-{a_ms // 1000}-{k}" for k in range(n)]
        return incident_frame(ids, sensors, types, severity, lon, lat, units, segs, times)


class OutageGen:
    """Occasional unplanned outages (mostly power) reported by the utilities' outage feeds.

    Example:
        >>> import numpy as np
        >>> from zoneinfo import ZoneInfo
        >>> from streams.sim.toycity import toy_city
        >>> from streams.sim.clock import local_time
        >>> df = OutageGen(toy_city(), 0).arrivals(0, 10 * 86_400_000, local_time(0, ZoneInfo("UTC")), 0)
        >>> sorted(set(df["status"]))
        ['end', 'start']
    """

    FAMILY = 6
    RATE_PER_DAY = 1.5
    SHARE = {"power": 0.6, "water": 0.25, "gas": 0.1, "heat": 0.05}

    def __init__(self, city: City, seed: int):
        feeds = [s.id for s in city.sensors if s.type in KIND_SENSOR_TYPES["outage"]]
        self.feed = {u: next((f for f in feeds if u in f.lower()), feeds[0] if feeds else None) for u in self.SHARE}
        self.cells = [c.id for c in city.cells]
        self.utilities = list(self.SHARE)
        p = np.array(list(self.SHARE.values()))
        self.p = p / p.sum()

    def arrivals(self, a_ms: int, b_ms: int, lt: LocalTime, seed: int) -> pl.DataFrame | None:
        if self.feed["power"] is None or not self.cells:
            return None
        n = scalar_poisson(seed, self.FAMILY, a_ms // 1000, self.RATE_PER_DAY * (b_ms - a_ms) / (24 * HOUR_MS))
        if n == 0:
            return None
        rng = step_rng(seed, self.FAMILY, a_ms)
        t0 = np.sort(rng.integers(a_ms, b_ms, n))
        utils = [self.utilities[i] for i in rng.choice(len(self.utilities), size=n, p=self.p)]
        cells = [self.cells[i] for i in rng.integers(len(self.cells), size=n)]
        t1 = t0 + ((20 + rng.exponential(60, n)) * MIN_MS).astype(np.int64)
        customers = rng.integers(50, 3000, n)
        ids = [f"OUT-{a_ms // 1000}-{k}" for k in range(n)]
        return outage_frame(ids, [self.feed[u] for u in utils], utils, cells, customers, t0, t1)
