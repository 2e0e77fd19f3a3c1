"""Utility lifelines (power load, water/gas/heat pressure, water flow) and hazard-source parameters.

Each utility sensor reports one quantity, chosen by its ``unit``: ``kPa`` -> ``pressure_kpa``,
``m3/h`` -> ``flow_m3h``, ``kW`` -> ``load_kw`` (the other two fields are null). Values move
around the sensor's ``nominal`` (or the middle of its valid range) with demand: water pressure
sags and flow rises at the 07:30 and 19:30 peaks, power load peaks in the evening. Hazard sensors
read a level around a share of their hazard source's alarm threshold. All report every 60 s.

Example:
    >>> from zoneinfo import ZoneInfo
    >>> from streams.sim.toycity import toy_city
    >>> from streams.sim.base import Effects
    >>> from streams.sim.clock import LocalClock
    >>> gen = LifelineGen(toy_city(), seed=0)
    >>> a = 1_780_243_200_000
    >>> r = gen.rows(a, a + 60_000, LocalClock(ZoneInfo("Asia/Shanghai")), Effects())["utility"]
    >>> pressure = r.cols["pressure_kpa"][r.idx == gen.util.index["WP-01"]]
    >>> 0.9 < float(pressure[0]) / 320.0 < 1.1
    True
"""
from __future__ import annotations

import numpy as np

from brain.city.model import City, Sensor, utility_field  # noqa: F401  (utility_field: re-exported)
from brain.schemas import KIND_SENSOR_TYPES
from streams.sim.base import Effects, PeriodicGroup, Rows, clip_to_valid
from streams.sim.clock import LocalClock, SmoothNoise, hash_normal
from streams.sim.profiles import power_demand, water_demand

UTILITY_FIELDS = ("pressure_kpa", "flow_m3h", "load_kw")


def nominal(sensor: Sensor) -> float:
    if sensor.nominal is not None and sensor.nominal > 0:
        return float(sensor.nominal)
    return float((sensor.valid_min + sensor.valid_max) / 2)


class LifelineGen:
    """Utility and hazard readings (see the module docstring)."""

    FAMILY = 3

    def __init__(self, city: City, seed: int):
        rng = np.random.default_rng([seed, self.FAMILY])
        self.seed = seed
        utils = [s for s in city.sensors if s.type in KIND_SENSOR_TYPES["utility"]]
        self.util = PeriodicGroup("utility", utils, 60.0, rng)
        self.util_field = np.array([UTILITY_FIELDS.index(utility_field(s)) for s in utils], dtype=np.int64)
        self.util_type = np.array([s.type for s in utils])
        self.util_nominal = np.array([nominal(s) for s in utils])
        self.util_min = np.array([s.valid_min for s in utils])
        self.util_max = np.array([s.valid_max for s in utils])
        self.util_smooth = SmoothNoise(len(utils), rng)

        hz = [s for s in city.sensors if s.type in KIND_SENSOR_TYPES["hazard"]]
        self.hazard = PeriodicGroup("hazard", hz, 60.0, rng)
        sources = {h.id: h for h in city.hazards}
        base = []
        for s in hz:
            src = sources.get(s.hazard or "")
            if src is None:
                base.append(s.valid_min + 0.4 * (s.valid_max - s.valid_min))
            elif src.unit.lower() in ("%lel", "ppm", "mg/m3"):  # gas concentrations sit near zero
                base.append(0.06 * src.alarm_high)
            else:  # levels and pressures run at a working point below the alarm
                base.append(0.68 * src.alarm_high)
        self.hz_base = np.array(base, dtype=np.float64)
        self.hz_min = np.array([s.valid_min for s in hz])
        self.hz_max = np.array([s.valid_max for s in hz])
        self.hz_smooth = SmoothNoise(len(hz), rng, (1_800.0, 7_200.0, 20_000.0))

    @property
    def groups(self) -> list[PeriodicGroup]:
        return [self.util, self.hazard]

    def rows(self, a_ms: int, b_ms: int, clock: LocalClock, fx: Effects) -> dict[str, Rows]:
        out: dict[str, Rows] = {}
        seed, fam = self.seed, self.FAMILY * 100
        idx, ts = self.util.due(a_ms, b_ms)
        if len(idx):
            h, wd, _ = clock.split(ts)
            wdem = water_demand(h)
            pdem = power_demand(h, wd >= 5)
            f = self.util_field[idx]
            typ = self.util_type[idx]
            sm = self.util_smooth.at(ts, idx)
            water = typ == "utility_water"
            pressure = f == 0
            level = np.ones(len(idx))
            level = np.where(water & pressure, 1.05 - 0.09 * wdem + 0.01 * sm, level)
            level = np.where(water & (f == 1), (0.35 + 0.7 * wdem) * np.exp(0.05 * sm), level)
            level = np.where(typ == "utility_gas", 1.01 - 0.03 * wdem + 0.005 * sm, level)
            level = np.where(typ == "utility_heat", 1.0 + 0.01 * sm, level)
            level = np.where(typ == "utility_power", pdem / 0.95 * np.exp(0.04 * sm), level)
            noise = np.where(pressure, 0.004, 0.015) * hash_normal(seed, fam + 1, idx, ts)
            factor, extra = fx.utility(idx, ts)
            value = self.util_nominal[idx] * (level * (1.0 + noise) * factor + extra)
            value = clip_to_valid(value, self.util_min[idx], self.util_max[idx])
            cols = {}
            for j, name in enumerate(UTILITY_FIELDS):
                hi = {"pressure_kpa": 5000.0, "flow_m3h": 100000.0, "load_kw": 1e6}[name]
                cols[name] = np.where(f == j, np.round(np.clip(value, 0.0, hi), 1), np.nan)
            out["utility"] = Rows(self.util, idx, ts, cols)
        idx, ts = self.hazard.due(a_ms, b_ms)
        if len(idx):
            value = self.hz_base[idx] * (1.0 + 0.05 * self.hz_smooth.at(ts, idx) + 0.01 * hash_normal(seed, fam + 2, idx, ts))
            value = clip_to_valid(value, self.hz_min[idx], self.hz_max[idx])
            out["hazard"] = Rows(self.hazard, idx, ts, {"value": np.round(value, 3)})
        return out
