"""Time helpers for the simulator: local clock, reporting schedules, stateless smooth noise, ramps.

Everything here is a pure function of absolute time so a value never depends on where a run
started or how it was cut into batches.

Example:
    >>> import numpy as np
    >>> idx, ts = report_rows(np.array([0, 30_000]), 60_000, 0, 120_000)
    >>> idx.tolist(), ts.tolist()
    ([0, 1, 0, 1], [0, 30000, 60000, 90000])
    >>> float(ramp(50.0, 0.0, 100.0, rise=0.2, fall=0.2))
    1.0
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from statistics import NormalDist
from zoneinfo import ZoneInfo

import numpy as np

MS_PER_DAY = 86_400_000
MS_PER_HOUR = 3_600_000


@dataclass(frozen=True)
class LocalTime:
    """Local wall-clock facts of one instant: hour of day (float), weekday (0 = Monday), local day number.

    Example:
        >>> lt = local_time(1_780_243_200_000, ZoneInfo("Asia/Shanghai"))
        >>> lt.hour, lt.weekday, lt.weekend
        (0.0, 0, False)
    """

    hour: float
    weekday: int
    day: int  # days since 1970-01-01 in local time: keys per-day randomness
    offset_ms: int  # UTC offset at that instant

    @property
    def weekend(self) -> bool:
        return self.weekday >= 5


def local_time(ts_ms: int, tz: ZoneInfo) -> LocalTime:
    offset = tz.utcoffset(dt.datetime.fromtimestamp(ts_ms / 1000, tz))
    offset_ms = int(offset.total_seconds() * 1000) if offset is not None else 0
    local_ms = ts_ms + offset_ms
    day = local_ms // MS_PER_DAY
    hour = (local_ms - day * MS_PER_DAY) / MS_PER_HOUR
    weekday = int((day + 3) % 7)  # 1970-01-01 was a Thursday
    return LocalTime(hour=hour, weekday=weekday, day=int(day), offset_ms=offset_ms)


def local_midnight_ms(day: int, tz: ZoneInfo) -> int:
    """UTC epoch ms of local midnight starting local day number ``day``."""
    date = dt.date(1970, 1, 1) + dt.timedelta(days=day)
    return int(dt.datetime(date.year, date.month, date.day, tzinfo=tz).timestamp() * 1000)


def default_start_ms(tz: ZoneInfo) -> int:
    """A fixed Monday 00:00 local (2026-06-01) so default runs are reproducible."""
    return int(dt.datetime(2026, 6, 1, tzinfo=tz).timestamp() * 1000)


def report_rows(phase_ms: np.ndarray, interval_ms: int, a_ms: int, b_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Sensors reporting every ``interval_ms`` at times ``n * interval_ms + phase_ms``: which report in [a, b) and when.

    Returns ``(sensor_index, ts_ms)`` sorted by ``ts_ms`` then sensor index.
    """
    phase = np.asarray(phase_ms, dtype=np.int64)
    first = a_ms + np.mod(phase - a_ms, interval_ms)
    counts = np.where(first < b_ms, (b_ms - first + interval_ms - 1) // interval_ms, 0)
    if counts.max(initial=0) <= 1:
        idx = np.flatnonzero(counts)
        ts = first[idx]
    else:
        idx = np.repeat(np.arange(len(phase)), counts)
        k = np.arange(len(idx)) - np.repeat(np.cumsum(counts) - counts, counts)
        ts = first[idx] + k * interval_ms
    order = np.lexsort((idx, ts))
    return idx[order], ts[order]


class SmoothNoise:
    """Stateless slowly varying noise per item: a sum of sinusoids with seeded random phases, std ~1.

    ``periods_s`` set how fast it wanders; values depend only on (seed, item, time).

    Example:
        >>> sn = SmoothNoise(3, np.random.default_rng(0))
        >>> x = sn.at(np.arange(0, 86_400_000, 60_000), np.zeros(1440, dtype=int))
        >>> 0.5 < float(x.std()) < 1.5, float(abs(np.diff(x)).max()) < 0.3  # per minute: slow
        (True, True)
    """

    def __init__(self, n: int, rng: np.random.Generator, periods_s: tuple[float, ...] = (2_700.0, 9_000.0, 25_000.0)):
        self.omega = 2 * np.pi / (np.asarray(periods_s) * 1000.0)  # rad per ms
        self.phase = rng.uniform(0, 2 * np.pi, size=(n, len(periods_s)))
        self.scale = np.sqrt(2.0 / len(periods_s))

    def at(self, ts_ms: int | np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        phase = self.phase if idx is None else self.phase[idx]
        t = np.asarray(ts_ms, dtype=np.float64)
        if t.ndim:
            t = t[:, None]
        return self.scale * np.sin(t * self.omega + phase).sum(axis=1)


def ramp(t_ms: float | np.ndarray, start_ms: float, end_ms: float, rise: float, fall: float) -> np.ndarray:
    """Trapezoid 0 -> 1 -> 0 over [start, end): rises over the first ``rise`` share, falls over the last ``fall``."""
    t = np.asarray(t_ms, dtype=np.float64)
    span = max(end_ms - start_ms, 1.0)
    x = (t - start_ms) / span
    up = np.clip(x / max(rise, 1e-9), 0, 1)
    down = np.clip((1 - x) / max(fall, 1e-9), 0, 1)
    return np.where((x >= 0) & (x < 1), np.minimum(up, down), 0.0)


def step_rng(seed: int, family: int, a_ms: int) -> np.random.Generator:
    """White-noise generator for one family in the step starting at ``a_ms`` (independent of batching)."""
    return np.random.default_rng([seed, family, a_ms // 1000])


# --- counter-based randomness ---------------------------------------------------------------------
# Every random draw is a hash of (seed, stream, item, ts_ms): values depend only on what and when,
# never on the step size or batching, and a whole batch is drawn in one vectorised pass.
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(30))
    x = x * _M2
    x = x ^ (x >> np.uint64(27))
    x = x * _M3
    return x ^ (x >> np.uint64(31))


def _hash(seed: int, stream: int, item: np.ndarray, ts_ms: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        key = _mix(np.uint64((seed * 1_000_003 + stream * 7_919) & 0xFFFFFFFFFFFFFFFF) * _M1 + np.uint64(stream))
        x = np.asarray(item).astype(np.uint64) * _M1 + np.asarray(ts_ms).astype(np.uint64) * _M2 + key
        return _mix(x)


def hash_uniform(seed: int, stream: int, item: np.ndarray, ts_ms: np.ndarray) -> np.ndarray:
    """Uniform (0, 1) draws keyed by (seed, stream, item, ts_ms), elementwise."""
    x = _hash(seed, stream, item, ts_ms)
    return ((x >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)


def hash_normal(seed: int, stream: int, item: np.ndarray, ts_ms: np.ndarray) -> np.ndarray:
    """Standard normal draws keyed like :func:`hash_uniform` (Box-Muller on the two 32-bit halves of one hash)."""
    x = _hash(seed, stream + 1_000, item, ts_ms)
    u1 = ((x >> np.uint64(32)).astype(np.float64) + 0.5) * (1.0 / 4294967296.0)
    u2 = (x & np.uint64(0xFFFFFFFF)).astype(np.float64) * (1.0 / 4294967296.0)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def hash_poisson(seed: int, stream: int, item: np.ndarray, ts_ms: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Poisson counts with means ``lam``: exact inverse transform below 20, normal approximation above."""
    lam = np.asarray(lam, dtype=np.float64)
    u = hash_uniform(seed, stream, item, ts_ms)
    out = np.zeros(lam.shape, dtype=np.float64)
    small = lam < 20.0
    if small.any():
        ls, us = lam[small], u[small]
        p = np.exp(-ls)
        cdf = p.copy()
        k = np.zeros_like(ls)
        for j in range(1, 60):
            more = us > cdf
            if not more.any():
                break
            p = p * ls / j
            k += more
            cdf += p
        out[small] = k
    big = ~small
    if big.any():
        z = hash_normal(seed, stream + 7, np.asarray(item)[big] if np.ndim(item) else item, np.asarray(ts_ms)[big])
        out[big] = np.maximum(np.round(lam[big] + np.sqrt(lam[big]) * z), 0.0)
    return out


_MASK = (1 << 64) - 1


def scalar_poisson(seed: int, stream: int, key: int, lam: float) -> int:
    """One Poisson count keyed by (seed, stream, key), in plain Python (cheap for the small per-step rates)."""
    x = (key * 0x9E3779B97F4A7C15 + (seed * 1_000_003 + stream) * 0xBF58476D1CE4E5B9 + stream) & _MASK
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & _MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & _MASK
    x ^= x >> 31
    u = ((x >> 11) + 0.5) / 9007199254740992.0
    if lam > 500.0:
        # exp(-lam) underflows past ~745 and the walk below would take thousands of steps: the normal
        # approximation (exact to well under 1 % here) from the same uniform.
        return max(0, round(lam + math.sqrt(lam) * NormalDist().inv_cdf(u)))
    k, p = 0, math.exp(-lam)
    cdf = p
    while u > cdf and k < 10_000:
        k += 1
        p *= lam / k
        cdf += p
    return k


class LocalClock:
    """Vectorised local time of many instants in one zone (offsets looked up once per UTC hour).

    Example:
        >>> hour, weekday, day = LocalClock(ZoneInfo("Asia/Shanghai")).split(np.array([1_780_243_200_000 + 9 * 3_600_000]))
        >>> float(hour[0]), int(weekday[0])
        (9.0, 0)
    """

    def __init__(self, tz: ZoneInfo):
        self.tz = tz
        self._offsets: dict[int, int] = {}

    def offset_ms(self, ts_ms: np.ndarray) -> np.ndarray:
        hours = np.asarray(ts_ms, dtype=np.int64) // MS_PER_HOUR
        if hours.size == 0:
            return np.zeros(0, dtype=np.int64)
        lo, hi = int(hours.min()), int(hours.max())
        if hi - lo > 48:  # sparse instants over a long span: look up only the hours present
            uniq, inverse = np.unique(hours, return_inverse=True)
            return np.array([self._offset(int(h)) for h in uniq], dtype=np.int64)[inverse]
        table = np.array([self._offset(h) for h in range(lo, hi + 1)], dtype=np.int64)
        if (table == table[0]).all():
            return np.full(hours.shape, table[0], dtype=np.int64)
        return table[hours - lo]

    def _offset(self, hour: int) -> int:
        if hour not in self._offsets:
            if len(self._offsets) > 10_000:
                self._offsets.clear()
            self._offsets[hour] = local_time(hour * MS_PER_HOUR, self.tz).offset_ms
        return self._offsets[hour]

    def split(self, ts_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hour of day as float, weekday 0 = Monday, local day number) per instant."""
        local = np.asarray(ts_ms, dtype=np.int64) + self.offset_ms(ts_ms)
        day = local // MS_PER_DAY
        hour = (local - day * MS_PER_DAY) / MS_PER_HOUR
        return hour, (day + 3) % 7, day
