"""Traffic: per-segment demand and speed-flow physics, detector readings and probe travel times.

Per segment, demand is a share of capacity (:func:`streams.sim.profiles.traffic_demand` times a
seeded per-segment peak factor, a per-day factor and slow noise). Speed follows the BPR
volume-delay curve ``v = v_free / (1 + alpha * (q / c) ** beta)`` against the segment's
``free_flow_kmh``; throughput is capped at capacity; density ``k = q / v`` gives occupancy
through an effective vehicle-plus-detector length of 6.5 m (``occupancy_pct = 0.65 * k`` with
``k`` in veh/km/lane). Detectors (loop, video, radar) report every 60 s; probes every 5 min.

Example:
    >>> from zoneinfo import ZoneInfo
    >>> from streams.sim.toycity import toy_city
    >>> from streams.sim.base import Effects
    >>> from streams.sim.clock import LocalClock
    >>> gen = TrafficGen(toy_city(), seed=0)
    >>> clock = LocalClock(ZoneInfo("Asia/Shanghai"))
    >>> def arterial_speed(hour):
    ...     a = 1_780_243_200_000 + int(hour * 3_600_000)  # Monday 2026-06-01 00:00 +08:00
    ...     r = gen.rows(a, a + 600_000, clock, Effects())["traffic"]
    ...     return float(r.cols["speed_kmh"][r.idx < 4].mean())
    >>> arterial_speed(8.0) < arterial_speed(3.0)
    True
"""
from __future__ import annotations

import numpy as np

from brain.city.model import City
from brain.schemas import KIND_SENSOR_TYPES
from streams.sim.base import Effects, PeriodicGroup, Rows, clip_to_valid
from streams.sim.clock import LocalClock, SmoothNoise, hash_normal, hash_poisson
from streams.sim.profiles import traffic_demand

#: Capacity per lane (veh/h) by road class: signalised arterials lose green time to cross streets.
CAPACITY_VPHPL = {"expressway": 1900.0, "arterial": 900.0, "secondary": 650.0}
#: BPR parameters by class (signal delay makes urban streets more sensitive than the classic 0.15).
BPR_ALPHA = {"expressway": 0.8, "arterial": 1.0, "secondary": 1.0}
BPR_BETA = 4.0
OCC_PCT_PER_VEH_KM = 0.65  # 6.5 m effective length (vehicle + detector zone) -> % occupancy per veh/km/lane
MIN_SPEED_KMH = 3.0


class TrafficGen:
    """Detector and probe readings for every segment of a city (see the module docstring)."""

    FAMILY = 1

    def __init__(self, city: City, seed: int):
        rng = np.random.default_rng([seed, self.FAMILY])
        self.seed = seed
        segs = list(city.segments)
        self.seg_ids = [s.id for s in segs]
        seg_index = {s: i for i, s in enumerate(self.seg_ids)}
        detectors = [s for s in city.sensors if s.type in KIND_SENSOR_TYPES["traffic"]]
        probes = [s for s in city.sensors if s.type in KIND_SENSOR_TYPES["probe"]]
        # Sensors pointing at no known segment get a pseudo-segment each (a generic arterial) so they still report.
        orphan = [s for s in detectors + probes if s.segment not in seg_index]
        classes = [s.road_class for s in segs] + ["arterial"] * len(orphan)
        self.vf = np.array([s.free_flow_kmh for s in segs] + [50.0] * len(orphan))
        self.lanes = np.array([s.lanes for s in segs] + [2] * len(orphan), dtype=np.float64)
        self.length_m = np.array([s.length_m for s in segs] + [500.0] * len(orphan))
        self.cap = np.array([CAPACITY_VPHPL.get(c, 900.0) for c in classes])
        self.alpha = np.array([BPR_ALPHA.get(c, 1.0) for c in classes])
        n = len(classes)
        self.n_segments = n
        self.peak = np.where(np.array(classes) == "expressway", rng.uniform(0.8, 1.1, n), rng.uniform(0.75, 1.2, n))
        self.noise = SmoothNoise(n, rng)
        orphan_index = {s.id: len(segs) + k for k, s in enumerate(orphan)}

        def seg_of(s):
            return seg_index[s.segment] if s.segment in seg_index else orphan_index[s.id]

        self.det = PeriodicGroup("traffic", detectors, 60.0, rng)
        self.det_seg = np.array([seg_of(s) for s in detectors], dtype=np.int64)
        self.det_bias = rng.normal(1.0, 0.03, len(detectors))  # per-detector calibration
        self.det_min = np.array([s.valid_min for s in detectors])
        self.det_max = np.array([s.valid_max for s in detectors])
        self.probe = PeriodicGroup("probe", probes, 300.0, rng)
        self.probe_seg = np.array([seg_of(s) for s in probes], dtype=np.int64)
        self.probe_min = np.array([s.valid_min for s in probes])
        self.probe_max = np.array([s.valid_max for s in probes])
        self._day_factor: dict[int, np.ndarray] = {}

    @property
    def groups(self) -> list[PeriodicGroup]:
        return [self.det, self.probe]

    def day_factor(self, seg: np.ndarray, day: np.ndarray) -> np.ndarray:
        """Per-segment demand factor of each row's local day (some days are busier)."""
        out = np.empty(len(seg))
        for d in np.unique(day):
            d = int(d)
            if d not in self._day_factor:
                if len(self._day_factor) > 8:
                    self._day_factor.clear()
                self._day_factor[d] = np.random.default_rng([self.seed, self.FAMILY, 7, d]).normal(1.0, 0.05, self.n_segments)
            m = day == d
            out[m] = self._day_factor[d][seg[m]]
        return out

    def segment_state(self, seg: np.ndarray, ts_ms: np.ndarray, clock: LocalClock, fx: Effects) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(speed_kmh, throughput veh/h/lane, density veh/km/lane) of segment ``seg[i]`` at ``ts_ms[i]``."""
        hour, weekday, day = clock.split(ts_ms)
        x_dem = self.peak[seg] * traffic_demand(hour, weekday >= 5) * self.day_factor(seg, day)
        x_dem = x_dem * np.exp(0.07 * self.noise.at(ts_ms, seg))
        cap_factor, speed_factor = fx.traffic(seg, ts_ms)
        q_dem = x_dem * self.cap[seg]
        cap_eff = self.cap[seg] * cap_factor
        v = self.vf[seg] / (1.0 + self.alpha[seg] * (q_dem / cap_eff) ** BPR_BETA) * speed_factor
        v = np.maximum(v, MIN_SPEED_KMH)
        q = np.minimum(q_dem, cap_eff)
        return v, q, q / v

    def rows(self, a_ms: int, b_ms: int, clock: LocalClock, fx: Effects) -> dict[str, Rows]:
        out: dict[str, Rows] = {}
        seed, fam = self.seed, self.FAMILY * 100
        idx, ts = self.det.due(a_ms, b_ms)
        if len(idx):
            s = self.det_seg[idx]
            v, q, k = self.segment_state(s, ts, clock, fx)
            interval_s = self.det.interval_ms / 1000.0
            volume = hash_poisson(seed, fam + 1, idx, ts, q * self.lanes[s] * interval_s / 3600.0)
            speed = v * self.det_bias[idx] * (1.0 + 0.04 * hash_normal(seed, fam + 2, idx, ts))
            speed = clip_to_valid(np.clip(speed, 0.0, 200.0), self.det_min[idx], self.det_max[idx])
            occ = np.clip(OCC_PCT_PER_VEH_KM * k * (1.0 + 0.06 * hash_normal(seed, fam + 3, idx, ts)), 0.0, 98.0)
            out["traffic"] = Rows(self.det, idx, ts, {
                "volume_veh": np.minimum(volume, 2000.0),
                "occupancy_pct": np.round(occ, 1),
                "speed_kmh": np.round(speed, 1),
                "interval_s": np.full(len(idx), interval_s),
            })
        idx, ts = self.probe.due(a_ms, b_ms)
        if len(idx):
            s = self.probe_seg[idx]
            v, q, _ = self.segment_state(s, ts, clock, fx)
            tt = self.length_m[s] / (v / 3.6) * np.exp(0.08 * hash_normal(seed, fam + 4, idx, ts))
            tt = clip_to_valid(np.clip(tt, 0.0, 7200.0), self.probe_min[idx], self.probe_max[idx])
            samples = 1 + hash_poisson(seed, fam + 5, idx, ts, q * self.lanes[s] * (self.probe.interval_ms / 3_600_000.0) * 0.05)
            out["probe"] = Rows(self.probe, idx, ts, {
                "travel_time_s": np.round(tt, 1),
                "samples": np.minimum(samples, 100000).astype(np.int64),
            })
        return out
