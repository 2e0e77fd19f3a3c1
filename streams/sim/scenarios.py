"""Scenario injection with ground truth: accidents, pollution episodes, water-main bursts, sensor faults.

A :class:`Scenario` says *what* and *when* (and optionally *where*); the :class:`ScenarioEngine`
resolves it against the city (picking a target from the seed when none is given), pushes the
records it causes (incidents, grid cases, outages) into the event queues, bends the generators
each step through :class:`~streams.sim.base.Effects`, and rewrites faulty sensors' readings.
Every resolved scenario becomes one :class:`GroundTruth` row. The records a scenario causes carry
its id, so they can be traced back: incident ``INC-<scenario_id>``, grid cases
``GC-<scenario_id>-<n>``, outage ``OUT-<scenario_id>``.

=====================  ==========================================================================
type                   what the data shows
=====================  ==========================================================================
``accident``           speed drop / occupancy rise on a segment and the segments feeding it,
                       an Incident ``traffic_accident`` on the segment, a few grid cases nearby
``pollution_episode``  PM2.5/PM10 (and NO2, CO) at a district's air stations climbing over hours
                       into heavy pollution (AQI > 200), then clearing
``water_main_burst``   a water pressure sensor dropping to ~45 % of nominal, the nearest water
                       flow meter spiking, ``water_leak`` grid cases and a water outage in its cell
``sensor_stuck``       one sensor repeating the same values
``sensor_dropout``     one sensor sending nothing
``sensor_spikes``      one sensor's primary value jumping several-fold at random readings
``sensor_drift``       one sensor's primary value drifting steadily away (up to ±50 %)
=====================  ==========================================================================

Example:
    >>> s = Scenario(type="accident", start_ms=0, duration_s=2400, target="A3")
    >>> s.end_ms
    2400000
    >>> Scenario(type="meteor", start_ms=0, duration_s=60)
    Traceback (most recent call last):
    ...
    ValueError: unknown scenario type 'meteor'; expected one of accident, pollution_episode, water_main_burst, sensor_stuck, sensor_dropout, sensor_spikes, sensor_drift
"""
from __future__ import annotations

import datetime as dt
import math
import zlib
from zoneinfo import ZoneInfo

import msgspec
import numpy as np
import polars as pl

from brain.city.model import City, RoadSegment
from brain.schemas import KIND_SENSOR_TYPES, PHYSICAL_RANGE, PRIMARY_FIELD
from streams.sim.base import Effects, Rows
from streams.sim.clock import MS_PER_HOUR, hash_uniform, local_midnight_ms, ramp
from streams.sim.events import (
    EventQueue,
    GridCaseGen,
    IncidentGen,
    incident_frame,
    outage_frame,
)
from streams.sim.lifelines import utility_field

EVENT_TYPES = ("accident", "pollution_episode", "water_main_burst")
FAULT_TYPES = ("sensor_stuck", "sensor_dropout", "sensor_spikes", "sensor_drift")
SCENARIO_TYPES = EVENT_TYPES + FAULT_TYPES
#: Sensor types whose readings can be made faulty (the ones with a continuous primary value).
FAULTABLE_TYPES = frozenset(KIND_SENSOR_TYPES["traffic"] | KIND_SENSOR_TYPES["air"] | KIND_SENSOR_TYPES["noise"]
                            | KIND_SENSOR_TYPES["utility"] | KIND_SENSOR_TYPES["weather"]
                            | KIND_SENSOR_TYPES["water_quality"] | KIND_SENSOR_TYPES["hazard"])
MIN_MS = 60_000


class Scenario(msgspec.Struct, frozen=True, kw_only=True):
    """One injected situation. ``target``: a segment id (accident), a district id (pollution episode),
    a sensor id (water-main burst: a water *pressure* sensor; faults: any faultable sensor); None lets
    the seed choose. ``scenario_id`` defaults to ``<type>-<n>``.

    Example:
        >>> Scenario(type="sensor_drift", start_ms=0, duration_s=3600, target="AQ-east-1").end_ms
        3600000
    """

    type: str
    start_ms: int
    duration_s: float
    target: str | None = None
    scenario_id: str | None = None

    def __post_init__(self) -> None:
        if self.type not in SCENARIO_TYPES:
            raise ValueError(f"unknown scenario type {self.type!r}; expected one of {', '.join(SCENARIO_TYPES)}")
        if not (self.duration_s > 0):
            raise ValueError(f"duration_s must be > 0, got {self.duration_s!r}")

    @property
    def end_ms(self) -> int:
        return int(self.start_ms + self.duration_s * 1000)


class GroundTruth(msgspec.Struct, frozen=True, kw_only=True):
    """What a scenario did, where and when: one row of ``ground_truth.json``.

    Example:
        >>> t = GroundTruth(scenario_id="acc-1", type="accident", start_ms=0, end_ms=60_000, district="D1",
        ...                 cell="C1", segment_id="S1", sensor_ids=["L1"], description="test")
        >>> ground_truth_frame([t])["sensor_ids"].to_list()
        [['L1']]
    """

    scenario_id: str
    type: str
    start_ms: int
    end_ms: int
    district: str | None
    cell: str | None
    segment_id: str | None
    sensor_ids: list[str]
    description: str


GROUND_TRUTH_SCHEMA = pl.Schema({
    "scenario_id": pl.String(), "type": pl.String(), "start_ms": pl.Int64(), "end_ms": pl.Int64(),
    "district": pl.String(), "cell": pl.String(), "segment_id": pl.String(),
    "sensor_ids": pl.List(pl.String()), "description": pl.String(),
})


def ground_truth_frame(rows: list[GroundTruth]) -> pl.DataFrame:
    return pl.DataFrame([msgspec.structs.asdict(r) for r in rows], schema=GROUND_TRUTH_SCHEMA)


class _Active:
    """A resolved scenario: its truth row plus the indices its effects touch."""

    def __init__(self, truth: GroundTruth, seq: int):
        self.truth = truth
        self.type = truth.type
        self.start_ms, self.end_ms = truth.start_ms, truth.end_ms
        self.seq = seq
        self.seg: np.ndarray = np.zeros(0, np.int64)
        self.upstream: np.ndarray = np.zeros(0, np.int64)
        self.air: np.ndarray = np.zeros(0, np.int64)
        self.air_peak: dict[str, float] = {}
        self.util_down: np.ndarray = np.zeros(0, np.int64)
        self.util_up: np.ndarray = np.zeros(0, np.int64)
        self.fault_kind = ""
        self.fault_idx = -1
        self.fault_field = ""
        self.drift_sign = 1.0
        self.stuck: dict[str, float] | None = None


def _metres(a: list[float], b: list[float]) -> float:
    kx = 111_320.0 * math.cos(math.radians((a[1] + b[1]) / 2))
    return math.hypot((a[0] - b[0]) * kx, (a[1] - b[1]) * 110_540.0)


def _fmt_local(ts_ms: int, tz: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(ts_ms / 1000, tz).strftime("%Y-%m-%d %H:%M")


class ScenarioEngine(Effects):
    """Resolves scenarios against a city and the simulator's generators and applies them to each batch.

    Built by :class:`~streams.sim.Simulator` (it owns the generators and queues); reach it as ``sim.engine``.

    Example:
        >>> from streams.sim import Simulator
        >>> from streams.sim.toycity import toy_city
        >>> sim = Simulator(toy_city(), scenarios=[Scenario(type="accident", start_ms=0, duration_s=600, target="A2")])
        >>> [t.segment_id for t in sim.engine.truths()]
        ['A2']
    """

    def __init__(self, city: City, seed: int, tz: ZoneInfo, traffic, env, life, cases: GridCaseGen,
                 incidents: IncidentGen, queues: dict[str, EventQueue]):
        self.city, self.seed, self.tz = city, seed, tz
        self.traffic_gen, self.env_gen, self.life_gen = traffic, env, life
        self.cases, self.incidents, self.queues = cases, incidents, queues
        self.active: list[_Active] = []
        self.faults: list[_Active] = []
        self._ids: set[str] = set()
        self.sensors = {s.id: s for s in city.sensors}
        self.segments = {s.id: s for s in city.segments}
        self.seg_index = {sid: i for i, sid in enumerate(traffic.seg_ids)}
        self.detectors_by_seg: dict[str, list[str]] = {}
        for s in city.sensors:
            if s.type in KIND_SENSOR_TYPES["traffic"] | KIND_SENSOR_TYPES["probe"] and s.segment:
                self.detectors_by_seg.setdefault(s.segment, []).append(s.id)
        self.groups = {g.kind: g for gen in (traffic, env, life) for g in gen.groups}
        self.scheduled_days: set[int] = set()

    # --- resolution -------------------------------------------------------------------------------
    def _rng(self, *key: int | str) -> np.random.Generator:
        parts = [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in key]
        return np.random.default_rng([self.seed, 8, *parts])

    def add(self, sc: Scenario, avoid: set[str] | None = None) -> GroundTruth | None:
        """Resolve and activate a scenario; returns its ground truth (None if the city has no possible target)."""
        rng = self._rng(sc.type, sc.start_ms)
        sid = sc.scenario_id or f"{sc.type}-{len(self.active) + len(self.faults) + 1}"
        if sid in self._ids:
            raise ValueError(f"duplicate scenario_id {sid!r}")
        resolver = getattr(self, "_resolve_" + ("fault" if sc.type in FAULT_TYPES else sc.type))
        act = resolver(sc, sid, rng, avoid or set())
        if act is None:
            return None
        self._ids.add(sid)
        (self.faults if sc.type in FAULT_TYPES else self.active).append(act)
        return act.truth

    def _pick(self, candidates: list[str], target: str | None, what: str, rng, avoid: set[str]) -> str | None:
        if target is not None:
            if target not in candidates:
                raise ValueError(f"{what}: {target!r} is not a valid target (expected one of {len(candidates)} ids, e.g. {candidates[:3]})")
            return target
        free = [c for c in candidates if c not in avoid] or candidates
        return free[int(rng.integers(len(free)))] if free else None

    def _resolve_accident(self, sc: Scenario, sid: str, rng, avoid) -> _Active | None:
        with_det = [s.id for s in self.city.segments if any(
            self.sensors[d].type in KIND_SENSOR_TYPES["traffic"] for d in self.detectors_by_seg.get(s.id, []))]
        major = [s for s in with_det if self.segments[s].road_class in ("expressway", "arterial")]
        if sc.target is not None:
            if sc.target not in self.segments:
                raise ValueError(f"accident: unknown segment {sc.target!r}")
            seg_id: str | None = sc.target
        else:
            seg_id = self._pick(major or with_det or list(self.segments), None, "accident segment", rng, avoid)
        if seg_id is None:
            return None
        seg = self.segments[seg_id]
        ups = self._upstream(seg)
        sensors = [d for s in [seg_id, *ups] for d in self.detectors_by_seg.get(s, [])]
        truth = GroundTruth(
            scenario_id=sid, type="accident", start_ms=sc.start_ms, end_ms=sc.end_ms, district=seg.district, cell=seg.cell,
            segment_id=seg_id, sensor_ids=sensors,
            description=f"traffic accident on {seg.name} ({seg_id}) at {_fmt_local(sc.start_ms, self.tz)} for "
                        f"{sc.duration_s / 60:.0f} min: lanes blocked, speed drops on it and {len(ups)} upstream segment(s)")
        act = _Active(truth, len(self.active))
        act.seg = np.array([self.seg_index[seg_id]], dtype=np.int64)
        act.upstream = np.array([self.seg_index[u] for u in ups], dtype=np.int64)
        # The accident is reported a couple of minutes in and cleared when traffic recovers.
        (x0, y0), (x1, y1) = seg.line[0], seg.line[-1]
        t0 = sc.start_ms + int(rng.uniform(1, 3) * MIN_MS)
        if self.incidents.any_cad:
            sev = int(rng.choice([2, 3], p=[0.3, 0.7]))
            times = self.incidents.lifecycle(np.array([t0]), np.array([sev]), rng, close_ms=np.array([sc.end_ms - 5 * MIN_MS]))
            self.queues["incident"].push(incident_frame(
                [f"INC-{sid}"], [self.incidents.sensor_for("cad_police", rng)], ["traffic_accident"], [sev],
                [x0 + 0.85 * (x1 - x0)], [y0 + 0.85 * (y1 - y0)], [int(rng.integers(2, 5))], [seg_id], times))
        n = int(rng.integers(2, 5))
        self._push_cases(sid, n, sc.start_ms + 2 * MIN_MS, sc.start_ms + 15 * MIN_MS, seg.cell, "traffic_congestion",
                         ["hotline_12345", "citizen_app", "grid_inspector"], rng)
        return act

    def _upstream(self, seg: RoadSegment) -> list[str]:
        """Segments ending where ``seg`` starts (not its reverse), same road name first."""
        start, end = seg.line[0], seg.line[-1]
        feeding = [s for s in self.city.segments if s.id != seg.id and _metres(s.line[-1], start) < 40.0
                   and _metres(s.line[0], end) > 40.0]
        same = [s.id for s in feeding if s.name == seg.name]
        return same or [s.id for s in feeding]

    def _push_cases(self, sid: str, n: int, t_from: int, t_to: int, cell: str, category: str, channels: list[str], rng) -> None:
        if not self.cases.channels or n <= 0:
            return
        t0 = np.sort(rng.integers(t_from, t_to, n))
        chans = [channels[int(k)] for k in rng.integers(len(channels), size=n)]
        self.queues["grid_case"].push(self.cases.make(t0, [cell] * n, [category] * n, chans,
                                                      [f"GC-{sid}-{k}" for k in range(n)], rng))

    def _resolve_pollution_episode(self, sc: Scenario, sid: str, rng, avoid) -> _Active | None:
        stations = self.env_gen.air.sensors
        districts = sorted({s.district for s in stations})
        if sc.target is not None and sc.target not in districts:
            raise ValueError(f"pollution_episode: district {sc.target!r} has no air station (stations are in {districts})")
        d = self._pick(districts, sc.target, "pollution district", rng, avoid)
        if d is None:
            return None
        idx = [i for i, s in enumerate(stations) if s.district == d]
        peak = float(rng.uniform(170.0, 230.0))
        truth = GroundTruth(
            scenario_id=sid, type="pollution_episode", start_ms=sc.start_ms, end_ms=sc.end_ms, district=d, cell=None,
            segment_id=None, sensor_ids=[stations[i].id for i in idx],
            description=f"pollution episode over district {d} from {_fmt_local(sc.start_ms, self.tz)} for "
                        f"{sc.duration_s / 3600:.1f} h: PM2.5 up by ~{peak:.0f} ug/m3 at the peak (heavy pollution)")
        act = _Active(truth, len(self.active))
        act.air = np.array(idx, dtype=np.int64)
        act.air_peak = {"pm25_ugm3": peak, "pm10_ugm3": 1.4 * peak, "no2_ugm3": 25.0, "co_mgm3": 0.8}
        return act

    def _resolve_water_main_burst(self, sc: Scenario, sid: str, rng, avoid) -> _Active | None:
        util = self.life_gen.util.sensors
        pressure = [s.id for s in util if s.type == "utility_water" and utility_field(s) == "pressure_kpa"]
        target = self._pick(pressure, sc.target, "water_main_burst pressure sensor", rng, avoid)
        if target is None:
            return None
        sensor = self.sensors[target]
        flows = [s for s in util if s.type == "utility_water" and utility_field(s) == "flow_m3h"]
        flow = min(flows, key=lambda f: _metres([f.lon, f.lat], [sensor.lon, sensor.lat])) if flows else None
        ids = [target] + ([flow.id] if flow else [])
        truth = GroundTruth(
            scenario_id=sid, type="water_main_burst", start_ms=sc.start_ms, end_ms=sc.end_ms, district=sensor.district,
            cell=sensor.cell, segment_id=None, sensor_ids=ids,
            description=f"water main burst near {target} in cell {sensor.cell} at {_fmt_local(sc.start_ms, self.tz)} for "
                        f"{sc.duration_s / 60:.0f} min: pressure drops to ~45% of nominal"
                        + (f", flow at {flow.id} spikes" if flow else "") + "; leak reports and a water outage follow")
        act = _Active(truth, len(self.active))
        act.util_down = np.array([self.life_gen.util.index[target]], dtype=np.int64)
        act.util_up = np.array([self.life_gen.util.index[flow.id]] if flow else [], dtype=np.int64)
        self._push_cases(sid, int(rng.integers(3, 6)), sc.start_ms + 3 * MIN_MS, sc.start_ms + 30 * MIN_MS, sensor.cell,
                         "water_leak", ["hotline_12345", "citizen_app", "grid_inspector"], rng)
        feed = self._outage_feed("water")
        if feed is not None:
            t0 = sc.start_ms + int(rng.uniform(10, 25) * MIN_MS)
            t1 = max(sc.end_ms - int(rng.uniform(0, 10) * MIN_MS), t0 + MIN_MS)
            self.queues["outage"].push(outage_frame([f"OUT-{sid}"], [feed], ["water"], [sensor.cell],
                                                    [int(rng.integers(800, 6000))], [t0], [t1]))
        return act

    def _outage_feed(self, utility: str) -> str | None:
        feeds = [s.id for s in self.city.sensors if s.type in KIND_SENSOR_TYPES["outage"]]
        return next((f for f in feeds if utility in f.lower()), feeds[0] if feeds else None)

    def _resolve_fault(self, sc: Scenario, sid: str, rng, avoid) -> _Active | None:
        members = [(kind, i, s) for kind, g in self.groups.items() for i, s in enumerate(g.sensors) if s.type in FAULTABLE_TYPES]
        ids = [s.id for _, _, s in members]
        target = self._pick(ids, sc.target, f"{sc.type} sensor", rng, avoid)
        if target is None:
            return None
        kind, i, sensor = members[ids.index(target)]
        what = sc.type.removeprefix("sensor_")
        truth = GroundTruth(
            scenario_id=sid, type=sc.type, start_ms=sc.start_ms, end_ms=sc.end_ms, district=sensor.district,
            cell=sensor.cell, segment_id=sensor.segment, sensor_ids=[target],
            description=f"sensor {target} ({sensor.type}) {what} from {_fmt_local(sc.start_ms, self.tz)} for "
                        f"{sc.duration_s / 60:.0f} min")
        act = _Active(truth, len(self.faults))
        act.fault_kind, act.fault_idx = kind, i
        act.fault_field = utility_field(sensor) if kind == "utility" else PRIMARY_FIELD[kind] or ""
        act.drift_sign = 1.0 if rng.random() < 0.5 else -1.0
        return act

    # --- the default schedule ---------------------------------------------------------------------
    def schedule_day(self, day: int, not_before_ms: int, types: frozenset[str] | set[str] = frozenset(SCENARIO_TYPES)) -> list[GroundTruth]:
        """Add the seed's default scenarios of local day ``day`` (of the given types, starting at or after
        ``not_before_ms``). The plan is drawn in full either way, so enabling faults does not move accidents."""
        if day in self.scheduled_days:
            return []
        self.scheduled_days.add(day)
        rng = self._rng("day", day)
        midnight = local_midnight_ms(day, self.tz)
        stamp = (dt.date(1970, 1, 1) + dt.timedelta(days=day)).strftime("%Y%m%d")
        plan: list[tuple[str, float, float]] = []  # type, start hour, duration s
        for _ in range(3):
            plan.append(("accident", rng.uniform(7.0, 19.5), rng.uniform(30, 60) * 60))
        plan.append(("pollution_episode", rng.uniform(0.0, 10.0), rng.uniform(8, 14) * 3600))
        plan.append(("water_main_burst", rng.uniform(0.5, 21.0), rng.uniform(60, 180) * 60))
        for ftype in FAULT_TYPES:
            plan.append((ftype, rng.uniform(0.5, 21.0), rng.uniform(60, 240) * 60))
        out: list[GroundTruth] = []
        used: set[str] = set()
        counters: dict[str, int] = {}
        for stype, hour, dur in plan:
            counters[stype] = counters.get(stype, 0) + 1
            start = midnight + int(round(hour * MS_PER_HOUR / 1000)) * 1000
            if start < not_before_ms or stype not in types:
                continue
            sc = Scenario(type=stype, start_ms=start, duration_s=float(round(dur)),
                          scenario_id=f"{stype}-{stamp}-{counters[stype]}")
            truth = self.add(sc, avoid=used)
            if truth is not None:
                out.append(truth)
                used.update(truth.sensor_ids)
                used.update(x for x in (truth.segment_id, truth.district if stype == "pollution_episode" else None) if x)
        return out

    # --- per step ---------------------------------------------------------------------------------
    def _overlapping(self, ts_ms: np.ndarray, kind: str) -> list[_Active]:
        if not len(ts_ms):
            return []
        lo, hi = int(ts_ms.min()), int(ts_ms.max())
        return [a for a in self.active if a.type == kind and a.start_ms <= hi and a.end_ms > lo]

    def traffic(self, seg: np.ndarray, ts_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cap, speed = np.ones(len(seg)), np.ones(len(seg))
        for act in self._overlapping(ts_ms, "accident"):
            r = ramp(ts_ms, act.start_ms, act.end_ms, rise=0.08, fall=0.2)
            on = np.isin(seg, act.seg)
            up = np.isin(seg, act.upstream)
            cap *= np.where(on, 1.0 - 0.65 * r, np.where(up, 1.0 - 0.3 * r, 1.0))
            speed *= np.where(on, 1.0 - 0.6 * r, np.where(up, 1.0 - 0.35 * r, 1.0))
        return cap, speed

    def air(self, station: np.ndarray, ts_ms: np.ndarray) -> dict[str, np.ndarray]:
        add: dict[str, np.ndarray] = {}
        for act in self._overlapping(ts_ms, "pollution_episode"):
            r = ramp(ts_ms, act.start_ms, act.end_ms, rise=0.4, fall=0.25) * np.isin(station, act.air)
            for f, peak in act.air_peak.items():
                add[f] = add.get(f, 0.0) + peak * r
        return add

    def utility(self, sensor: np.ndarray, ts_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fac, extra = np.ones(len(sensor)), np.zeros(len(sensor))
        for act in self._overlapping(ts_ms, "water_main_burst"):
            r = ramp(ts_ms, act.start_ms, act.end_ms, rise=0.03, fall=0.2)
            fac *= np.where(np.isin(sensor, act.util_down), 1.0 - 0.55 * r, 1.0)
            # The leak adds flow on top of demand: +1.6x nominal, so it stands out at night too.
            extra += np.where(np.isin(sensor, act.util_up), 1.6 * r, 0.0)
        return fac, extra

    def apply_faults(self, rows: dict[str, Rows], a_ms: int, b_ms: int) -> None:
        for act in self.faults:
            if act.end_ms <= a_ms or act.start_ms >= b_ms or act.fault_kind not in rows:
                continue
            r = rows[act.fault_kind]
            hit = (r.idx == act.fault_idx) & (r.ts >= act.start_ms) & (r.ts < act.end_ms)
            if not hit.any():
                continue
            if act.type == "sensor_dropout":
                r.keep(~hit)
                continue
            where = np.flatnonzero(hit)
            col = r.cols.get(act.fault_field)
            if act.type == "sensor_stuck":
                floats = [k for k, v in r.cols.items() if v.dtype.kind == "f" and k != "interval_s"]
                if act.stuck is None:
                    act.stuck = {k: float(r.cols[k][where[0]]) for k in floats}
                for k in floats:
                    r.cols[k][where] = act.stuck[k]
            elif col is not None and act.type == "sensor_spikes":
                u = hash_uniform(self.seed, 900 + act.seq, r.idx[where], r.ts[where])
                spike = u < 0.25
                col[where[spike]] = col[where[spike]] * (2.5 + 10.0 * u[spike])  # x2.5 .. x5
            elif col is not None and act.type == "sensor_drift":
                elapsed = (r.ts[where] - act.start_ms) / max(act.end_ms - act.start_ms, 1)
                col[where] = col[where] * (1.0 + act.drift_sign * 0.5 * elapsed)
            if col is not None:
                lo, hi = PHYSICAL_RANGE.get(act.fault_field, (-np.inf, np.inf))
                col[where] = np.round(np.clip(col[where], lo, hi), 3)

    def truths(self) -> list[GroundTruth]:
        return sorted((a.truth for a in self.active + self.faults), key=lambda t: (t.start_ms, t.scenario_id))


