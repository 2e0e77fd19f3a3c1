"""Environment: air-quality stations, noise monitors, water-quality sondes and weather stations.

- Air (every 5 min): PM2.5 with a night/morning high and afternoon low, PM10 tracking it,
  NO2 and CO following traffic, O3 peaking mid-afternoon, low SO2; a per-district daily factor
  makes some days dirtier. Pollution episodes add to PM2.5/PM10/NO2/CO through :class:`Effects`.
- Noise (every 60 s): LAeq around the GB 3096-2008 limit of the monitor's cell class, day vs
  night, rising with traffic; LAmax above it.
- Water quality (every 5 min): pH, turbidity, dissolved oxygen with a daytime photosynthesis peak.
- Weather (every 10 min): temperature cycle (min before dawn, max mid-afternoon), humidity,
  wind, and rain spells on some days.

Example:
    >>> from zoneinfo import ZoneInfo
    >>> from streams.sim.toycity import toy_city
    >>> from streams.sim.base import Effects
    >>> from streams.sim.clock import LocalClock
    >>> gen = EnvironmentGen(toy_city(), seed=0)
    >>> clock = LocalClock(ZoneInfo("Asia/Shanghai"))
    >>> def laeq(hour):
    ...     a = 1_780_243_200_000 + int(hour * 3_600_000)
    ...     return float(gen.rows(a, a + 600_000, clock, Effects())["noise"].cols["laeq_db"].mean())
    >>> laeq(3.0) < laeq(17.0)
    True
"""
from __future__ import annotations

import datetime as dt

import numpy as np

from brain.city.model import City
from streams.sim.base import Effects, PeriodicGroup, Rows, clip_to_valid
from streams.sim.clock import LocalClock, SmoothNoise, hash_normal, hash_uniform
from streams.sim.profiles import _plateau, ozone_diurnal, pm_diurnal, traffic_activity

#: GB 3096-2008 LAeq limits dB(A) (day, night) per acoustic zone class.
NOISE_LIMITS_DB = {"0": (50, 40), "1": (55, 45), "2": (60, 50), "3": (65, 55), "4a": (70, 55), "4b": (70, 60)}
_DAY_KEYS = ("temp_mean", "temp_amp", "wind", "rain_start_h", "rain_hours", "rain_rate")


class EnvironmentGen:
    """Air, noise, water-quality and weather readings (see the module docstring)."""

    FAMILY = 2

    def __init__(self, city: City, seed: int):
        rng = np.random.default_rng([seed, self.FAMILY])
        self.seed = seed
        by_type = lambda t: [s for s in city.sensors if s.type == t]  # noqa: E731
        self.air = PeriodicGroup("air", by_type("air"), 300.0, rng)
        self.noise = PeriodicGroup("noise", by_type("noise"), 60.0, rng)
        self.wq = PeriodicGroup("water_quality", by_type("water_quality"), 300.0, rng)
        self.wx = PeriodicGroup("weather", by_type("weather"), 600.0, rng)

        self.districts = sorted({d.id for d in city.districts} | {s.district for s in self.air.sensors + self.wx.sensors})
        d_index = {d: i for i, d in enumerate(self.districts)}
        self.air_district = np.array([d_index[s.district] for s in self.air.sensors], dtype=np.int64)
        self.air_base_pm25 = rng.uniform(28.0, 42.0, len(self.districts))[self.air_district] * rng.uniform(0.88, 1.12, len(self.air.sensors))
        self.air_smooth = [SmoothNoise(len(self.air.sensors), rng) for _ in range(4)]
        self.air_min = np.array([s.valid_min for s in self.air.sensors])
        self.air_max = np.array([s.valid_max for s in self.air.sensors])

        cells = {c.id: c for c in city.cells}
        limits = [NOISE_LIMITS_DB.get(cells[s.cell].noise_class if s.cell in cells else "2", (60, 50)) for s in self.noise.sensors]
        self.noise_day = np.array([d for d, _ in limits], dtype=np.float64)
        self.noise_night = np.array([n for _, n in limits], dtype=np.float64)
        # ~15% of monitors are hot spots (busy junctions, night deliveries) that break the limit at times.
        n_noise = len(self.noise.sensors)
        self.noise_offset = rng.normal(0.0, 1.5, n_noise) + np.where(rng.random(n_noise) < 0.15, 6.0, 0.0)
        self.noise_smooth = SmoothNoise(len(self.noise.sensors), rng, (600.0, 3_000.0, 11_000.0))
        self.noise_min = np.array([s.valid_min for s in self.noise.sensors])
        self.noise_max = np.array([s.valid_max for s in self.noise.sensors])

        self.wq_smooth = [SmoothNoise(len(self.wq.sensors), rng) for _ in range(3)]
        self.wq_base_ph = rng.uniform(7.1, 7.8, len(self.wq.sensors))
        self.wq_min = np.array([s.valid_min for s in self.wq.sensors])
        self.wq_max = np.array([s.valid_max for s in self.wq.sensors])

        self.wx_smooth = [SmoothNoise(len(self.wx.sensors), rng) for _ in range(2)]
        self.wx_min = np.array([s.valid_min for s in self.wx.sensors])
        self.wx_max = np.array([s.valid_max for s in self.wx.sensors])
        self._days: dict[int, dict] = {}
        self.lat = float(city.center[1]) if len(city.center) > 1 else 30.0

    @property
    def groups(self) -> list[PeriodicGroup]:
        return [self.air, self.noise, self.wq, self.wx]

    def _day(self, d: int) -> dict:
        """Per-day weather and pollution background (keyed by local day so any start gives the same day)."""
        if d not in self._days:
            if len(self._days) > 8:
                self._days.clear()
            r = np.random.default_rng([self.seed, self.FAMILY, 7, d])
            rain = r.random() < 0.3
            self._days[d] = {
                "air": np.exp(r.normal(0.0, 0.22, len(self.districts))),
                "temp_mean": float(self._seasonal_temp_c(d) + r.normal(0.0, 2.5)),
                "temp_amp": float(r.uniform(3.0, 6.0)),
                "wind": float(r.uniform(1.0, 4.5)),
                "rain_start_h": float(r.uniform(0.0, 20.0)) if rain else -100.0,
                "rain_hours": float(r.uniform(1.5, 5.0)),
                "rain_rate": float(r.uniform(0.3, 3.0)),  # mm per 10 min at the peak
            }
        return self._days[d]

    def _seasonal_temp_c(self, day: int) -> float:
        """Daily mean temperature of the season: warmest late July (late January south of the equator)."""
        doy = (dt.date(1970, 1, 1) + dt.timedelta(days=day)).timetuple().tm_yday
        swing = 11.0 * np.sign(self.lat or 1.0) * np.sin(2 * np.pi * (doy - 110) / 365.25)
        return float(16.0 + swing - 0.25 * max(abs(self.lat) - 30.0, 0.0))

    def _per_day(self, day: np.ndarray, key: str) -> np.ndarray:
        out = np.empty(len(day))
        for d in np.unique(day):
            out[day == d] = self._day(int(d))[key]
        return out

    def _rain_mm(self, hour: np.ndarray, day: np.ndarray) -> np.ndarray:
        start, hours, rate = (self._per_day(day, k) for k in ("rain_start_h", "rain_hours", "rain_rate"))
        x = (hour - start) / hours
        return np.where((x >= 0) & (x < 1), rate * np.sin(np.pi * np.clip(x, 0, 1)), 0.0)

    def rows(self, a_ms: int, b_ms: int, clock: LocalClock, fx: Effects) -> dict[str, Rows]:
        out: dict[str, Rows] = {}
        seed, fam = self.seed, self.FAMILY * 100

        idx, ts = self.air.due(a_ms, b_ms)
        if len(idx):
            h, wd, day = clock.split(ts)
            activity = traffic_activity(h, wd >= 5)
            dayf = np.empty(len(idx))
            for d in np.unique(day):
                m = day == d
                dayf[m] = self._day(int(d))["air"][self.air_district[idx[m]]]
            sm = [s.at(ts, idx) for s in self.air_smooth]
            add = fx.air(idx, ts)
            zero = np.zeros(len(idx))
            pm25 = self.air_base_pm25[idx] * pm_diurnal(h) * dayf * np.exp(0.15 * sm[0]) + 8.0 * activity + add.get("pm25_ugm3", zero)
            pm25 = pm25 * (1.0 + 0.04 * hash_normal(seed, fam + 1, idx, ts))
            pm10 = pm25 * (1.5 + 0.1 * sm[1]) + 12.0 + add.get("pm10_ugm3", zero)
            no2 = (18.0 + 38.0 * activity * np.sqrt(dayf)) * np.exp(0.12 * sm[2]) + add.get("no2_ugm3", zero)
            o3 = (20.0 + 115.0 * ozone_diurnal(h) / np.sqrt(dayf)) * np.exp(0.1 * sm[3])
            so2 = 6.0 + 2.5 * np.exp(0.3 * sm[1])
            co = 0.4 + 0.45 * activity + 0.004 * pm25 + add.get("co_mgm3", zero)
            white = [1.0 + 0.03 * hash_normal(seed, fam + 2 + j, idx, ts) for j in range(4)]
            out["air"] = Rows(self.air, idx, ts, {
                "pm25_ugm3": np.round(clip_to_valid(np.clip(pm25, 1.0, 2000.0), self.air_min[idx], self.air_max[idx]), 1),
                "pm10_ugm3": np.round(np.clip(pm10 * white[0], 2.0, 3000.0), 1),
                "so2_ugm3": np.round(np.clip(so2 * white[1], 1.0, 5000.0), 1),
                "no2_ugm3": np.round(np.clip(no2 * white[2], 1.0, 5000.0), 1),
                "o3_ugm3": np.round(np.clip(o3 * white[3], 1.0, 2000.0), 1),
                "co_mgm3": np.round(np.clip(co, 0.05, 200.0), 2),
            })

        idx, ts = self.noise.due(a_ms, b_ms)
        if len(idx):
            h, wd, _ = clock.split(ts)
            activity = traffic_activity(h, wd >= 5)
            day_share = _plateau(h, 6.0, 22.0, softness=0.4)
            base = self.noise_night[idx] + (self.noise_day[idx] - self.noise_night[idx]) * day_share
            laeq = (base - 6.0 + 6.0 * activity + self.noise_offset[idx] + 1.2 * self.noise_smooth.at(ts, idx)
                    + hash_normal(seed, fam + 10, idx, ts))
            laeq = clip_to_valid(laeq, self.noise_min[idx], self.noise_max[idx])
            lamax = np.clip(laeq + 6.0 - 4.0 * np.log(hash_uniform(seed, fam + 11, idx, ts)), 0.0, 160.0)
            out["noise"] = Rows(self.noise, idx, ts, {
                "laeq_db": np.round(laeq, 1),
                "lamax_db": np.round(lamax, 1),
                "interval_s": np.full(len(idx), self.noise.interval_ms / 1000.0),
            })

        idx, ts = self.wq.due(a_ms, b_ms)
        if len(idx):
            h, _, day = clock.split(ts)
            sm = [s.at(ts, idx) for s in self.wq_smooth]
            rain = self._rain_mm(h, day) > 0
            ph = clip_to_valid(self.wq_base_ph[idx] + 0.12 * sm[0] + 0.02 * hash_normal(seed, fam + 20, idx, ts), self.wq_min[idx], self.wq_max[idx])
            turb = np.clip((4.0 + 1.5 * sm[1]) * np.where(rain, 3.0, 1.0) * np.exp(0.05 * hash_normal(seed, fam + 21, idx, ts)), 0.1, 4000.0)
            do = np.clip(7.5 + 1.2 * np.sin(2 * np.pi * (h - 9.0) / 24.0) + 0.3 * sm[2] + 0.05 * hash_normal(seed, fam + 22, idx, ts), 0.0, 25.0)
            out["water_quality"] = Rows(self.wq, idx, ts, {
                "ph": np.round(ph, 2), "turbidity_ntu": np.round(turb, 2), "dissolved_oxygen_mgl": np.round(do, 2),
            })

        idx, ts = self.wx.due(a_ms, b_ms)
        if len(idx):
            h, _, day = clock.split(ts)
            sm = [s.at(ts, idx) for s in self.wx_smooth]
            cycle = np.sin(2 * np.pi * (h - 8.5) / 24.0)  # min ~02:30, max ~14:30
            rain_mm = self._rain_mm(h, day)
            raining = rain_mm > 0
            temp = (self._per_day(day, "temp_mean") + self._per_day(day, "temp_amp") * cycle - np.where(raining, 2.0, 0.0)
                    + 0.6 * sm[0] + 0.1 * hash_normal(seed, fam + 30, idx, ts))
            hum = np.clip(68.0 - 14.0 * cycle + np.where(raining, 20.0, 0.0) + 3.0 * sm[1] + 0.5 * hash_normal(seed, fam + 31, idx, ts), 5.0, 100.0)
            wind = np.clip(self._per_day(day, "wind") * np.exp(0.3 * sm[1] + 0.15 * hash_normal(seed, fam + 32, idx, ts)), 0.0, 80.0)
            rain = np.clip(rain_mm * np.exp(0.3 * hash_normal(seed, fam + 33, idx, ts)), 0.0, 500.0)
            out["weather"] = Rows(self.wx, idx, ts, {
                "temp_c": np.round(clip_to_valid(temp, self.wx_min[idx], self.wx_max[idx]), 1),
                "humidity_pct": np.round(hum, 1), "wind_ms": np.round(wind, 1), "rain_mm": np.round(rain, 1),
            })
        return out
