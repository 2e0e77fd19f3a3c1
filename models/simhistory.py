"""A small simulated-history generator for training and for judging anomaly detectors.

It needs nothing but numpy (not the city simulator), so models can be trained and benchmarks run
anywhere. Each series is a daily x weekly seasonal profile plus noise, sampled every ``step_s``
seconds, with optional injected events whose exact extent is returned as ground truth.

Series kinds (units in the name):

=================  ==========================================================================
``speed_kmh``      free flow ~55 km/h, morning/evening peak dips, weekends milder; Gaussian noise
``volume_veh``     vehicles per interval, two peaks, Poisson counts
``occupancy_pct``  follows volume, Gaussian noise, clipped to 0-100
``pm25_ugm3``      slow daily cycle with a night-time high, log-normal noise
``cases``          grid cases per interval, daytime peak, low Poisson counts (often 0)
``pressure_kpa``   water main pressure, dips at the morning/evening demand peaks, small noise
``load_kw``        server-like load, daily cycle, heavy-tailed (Student-t) noise
=================  ==========================================================================

Injected event types (``EVENT_TYPES``): ``spike`` (a few points far off), ``stuck`` (the value
freezes), ``dropout`` (missing values, NaN), ``drift`` (a ramp away from truth over hours),
``level_shift`` (a lasting step), and the scenarios ``accident`` (speed falls, occupancy rises),
``pollution_episode`` (PM2.5 triples over hours) and ``burst`` (a water main loses pressure).

Example:
    >>> s = make_series("speed_kmh", days=2, step_s=300, seed=1, events=[("spike", 1.5)])
    >>> s.values.shape == s.ts_ms.shape == s.label.shape, s.events[0][2]
    (True, 'spike')
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

KINDS = ("speed_kmh", "volume_veh", "occupancy_pct", "pm25_ugm3", "cases", "pressure_kpa", "load_kw")
EVENT_TYPES = ("spike", "stuck", "dropout", "drift", "level_shift", "accident", "pollution_episode", "burst")
#: 2026-01-05 00:00 UTC, a Monday
START_MS = 1_767_571_200_000
DAY_MS = 86_400_000


@dataclass
class Series:
    """One generated series: times (ms), values, per-point event label (0 clean, i+1 = events[i])."""

    kind: str
    ts_ms: np.ndarray
    values: np.ndarray
    label: np.ndarray
    events: list[tuple[int, int, str]] = field(default_factory=list)  # (start index, end index excl., type)


def _bump(h, centre, width):
    d = (h - centre + 12.0) % 24.0 - 12.0
    return np.exp(-0.5 * (d / width) ** 2)


def _clean(kind: str, t_ms: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    h = (t_ms % DAY_MS) / 3_600_000.0
    weekend = ((t_ms - START_MS) // DAY_MS) % 7 >= 5
    peak = np.where(weekend, 0.4, 1.0)
    n = t_ms.size
    if kind == "speed_kmh":
        mean = 55.0 - 22.0 * peak * (_bump(h, 8.0, 1.0) + _bump(h, 18.0, 1.2)) * scale
        return np.clip(mean + rng.normal(0, 2.5, n), 0, None)
    if kind in ("volume_veh", "occupancy_pct"):
        lam = (8.0 + 60.0 * (0.2 + 0.8 * peak) * (_bump(h, 8.0, 1.5) + _bump(h, 18.0, 1.8)) + 25.0 * _bump(h, 13.0, 4.0)) * scale
        if kind == "volume_veh":
            return rng.poisson(lam).astype(float)
        return np.clip(lam * 0.35 + rng.normal(0, 1.0, n), 0, 100)
    if kind == "pm25_ugm3":
        mean = (35.0 + 15.0 * _bump(h, 2.0, 4.0)) * scale
        return mean * rng.lognormal(0.0, 0.08, n)
    if kind == "cases":
        lam = (0.05 + 1.2 * _bump(h, 14.0, 3.5) * np.where(weekend, 0.6, 1.0)) * scale
        return rng.poisson(lam).astype(float)
    if kind == "pressure_kpa":
        mean = 400.0 * scale - 30.0 * (_bump(h, 7.5, 1.0) + _bump(h, 19.5, 1.5))
        return mean + rng.normal(0, 2.0, n)
    if kind == "load_kw":
        mean = (200.0 + 120.0 * _bump(h, 15.0, 4.0)) * scale
        return mean + 8.0 * rng.standard_t(4, n)
    raise ValueError(f"unknown series kind {kind!r}; choose one of {', '.join(KINDS)}")


def _inject(kind: str, v: np.ndarray, a: int, etype: str, step_s: float, rng: np.random.Generator) -> int:
    """Apply one event starting at index ``a``; return its end index (exclusive)."""
    n = v.size
    per_h = max(1, int(round(3600.0 / step_s)))
    level = float(np.nanmedian(v[max(0, a - per_h):a + 1])) if a > 0 else float(v[0])
    spread = float(np.nanstd(v)) or 1.0
    if etype == "spike":
        b = min(n, a + int(rng.integers(1, 3)))
        v[a:b] = level + rng.choice([-1.0, 1.0]) * (6.0 + 4.0 * rng.random()) * spread if kind != "cases" else level + 10 + 5 * rng.random()
        v[a:b] = np.clip(v[a:b], 0, None)
    elif etype == "stuck":
        b = min(n, a + 2 * per_h)
        v[a:b] = v[a]
    elif etype == "dropout":
        b = min(n, a + per_h)
        v[a:b] = np.nan
    elif etype == "drift":
        b = min(n, a + 6 * per_h)
        v[a:b] += np.linspace(0.0, 2.5 * spread, b - a) * rng.choice([-1.0, 1.0])
    elif etype == "level_shift":
        b = min(n, a + 6 * per_h)
        v[a:b] += rng.choice([-1.0, 1.0]) * 1.5 * spread
    elif etype == "accident":  # speed falls (or volume falls / occupancy rises) for 30-90 min
        b = min(n, a + int(per_h * (0.5 + rng.random())))
        factor = {"speed_kmh": 0.35, "volume_veh": 0.4, "occupancy_pct": 2.5}.get(kind, 0.4)
        v[a:b] *= factor
    elif etype == "pollution_episode":  # concentrations triple over a few hours, then clear
        b = min(n, a + 8 * per_h)
        m = b - a
        v[a:b] *= 1.0 + 2.0 * np.sin(np.linspace(0.0, np.pi, m)) ** 0.7
    elif etype == "burst":  # pressure (or flow) changes sharply and stays until repaired
        b = min(n, a + 3 * per_h)
        v[a:b] *= 0.7 if kind == "pressure_kpa" else 1.6
    else:
        raise ValueError(f"unknown event type {etype!r}; choose one of {', '.join(EVENT_TYPES)}")
    return b


def make_series(kind: str, days: float, step_s: float = 60.0, seed: int = 0,
                events: list[tuple[str, float]] | None = None, scale: float = 1.0,
                jitter_s: float = 0.0) -> Series:
    """Generate one series of ``days`` days every ``step_s`` seconds from :data:`START_MS`.

    ``events`` lists ``(type, day)``: the event starts at that (fractional) day. ``scale`` multiplies
    the level (so one profile gives sensors of different sizes); ``jitter_s`` perturbs sample times
    (irregular sampling, kept in order).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown series kind {kind!r}; choose one of {', '.join(KINDS)}")
    if days <= 0 or step_s <= 0:
        raise ValueError("days and step_s must be positive")
    rng = np.random.default_rng(seed)
    n = int(days * 86400 / step_s)
    t = START_MS + (np.arange(n) * step_s * 1000.0).astype(np.int64)
    if jitter_s > 0:
        t = np.sort(t + (rng.uniform(-jitter_s, jitter_s, n) * 1000).astype(np.int64))
    v = _clean(kind, t, rng, scale)
    label = np.zeros(n, dtype=np.int32)
    out_events = []
    for etype, day in events or []:
        a = int(day * 86400 / step_s)
        if not 0 <= a < n:
            raise ValueError(f"event day {day} is outside the series ({days} days)")
        b = _inject(kind, v, a, etype, step_s, rng)
        out_events.append((a, b, etype))
        label[a:b] = len(out_events)
    return Series(kind, t, v, label, out_events)


def segment_windows(days: float, n_segments: int, seed: int = 0, step_s: float = 60.0,
                    window: int = 5, anomaly_fraction: float = 0.0):
    """Feature windows for the traffic model: per segment and window, mean/std of volume,
    occupancy and speed over ``window`` samples. Returns ``(X float32 (n, 6), is_anomaly bool)``.

    With ``anomaly_fraction > 0`` some segments get accidents (labelled windows), for evaluation.
    """
    rng = np.random.default_rng(seed)
    feats, labels = [], []
    for s in range(n_segments):
        sc = float(rng.uniform(0.6, 1.4))
        ev = [("accident", float(rng.uniform(0.2, days - 0.1)))] if rng.random() < anomaly_fraction else []
        sub = int(rng.integers(0, 2**31))
        cols = []
        for j, kind in enumerate(("volume_veh", "occupancy_pct", "speed_kmh")):
            ser = make_series(kind, days, step_s, seed=sub + j, events=ev, scale=sc)
            cols.append(ser.values)
            lab = ser.label > 0
        m = (cols[0].size // window) * window
        W = np.stack([c[:m].reshape(-1, window) for c in cols], axis=1)  # (n_win, 3, window)
        feats.append(np.concatenate([np.nanmean(W, axis=2), np.nanstd(W, axis=2)], axis=1))
        labels.append(lab[:m].reshape(-1, window).any(axis=1))
    return np.concatenate(feats).astype(np.float32), np.concatenate(labels)


SEGMENT_FEATURES = ("volume_mean", "occupancy_mean", "speed_mean", "volume_std", "occupancy_std", "speed_std")
