"""Noise: day/night period, GB 3096-2008 zone limits, exceedance and the night sudden-maximum rule.

* Period: local clock time in the city's time zone; **day** is [06:00, 22:00), **night** is
  [22:00, 06:00) (hours from ``gb3096_2008.yaml``). A window is classed by its start time.
* Limit: the LAeq limit of the acoustic zone class (0, 1, 2, 3, 4a, 4b) for that period.
* Exceedance: ``max(0, LAeq - limit)`` dB(A).
* Night sudden maximum: at night LAmax may exceed the night limit by at most 15 dB(A);
  ``max(0, LAmax - (limit_night + 15))`` is reported as the sudden-maximum exceedance.
* Levels combine by energy: ``10*log10(sum(w_i * 10^(L_i/10)) / sum(w_i))``.

Example: a class 2 zone at 23:00 Beijing time (15:00 UTC) is in the night period, limit 50 dB(A):
LAeq 53 exceeds it by 3 dB, and LAmax 68 exceeds the sudden-maximum allowance 50 + 15 = 65 by 3 dB.
    >>> night = is_night([15 * 3_600_000], "Asia/Shanghai"); night.tolist()
    [True]
    >>> lim = limit_db(["2"], night); lim.tolist()
    [50.0]
    >>> exceedance_db([53.0], lim).tolist(), night_max_exceedance_db([68.0], lim, night).tolist()
    ([3.0], [3.0])
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import polars as pl

from brain.vitals.tables import load_table

DEFAULT_STANDARD = "gb3096-2008"


@dataclass(frozen=True)
class NoiseTable:
    """A parsed GB 3096-style limit table (see :func:`noise_table`).

    >>> noise_table().day_start_h, noise_table().night_start_h, noise_table().night_max_allowance_db
    (6, 22, 15.0)
    """

    standard: str
    day_start_h: int
    night_start_h: int
    night_max_allowance_db: float
    classes: tuple[str, ...]
    day_db: np.ndarray
    night_db: np.ndarray


@functools.cache
def noise_table(standard: str = DEFAULT_STANDARD) -> NoiseTable:
    """The parsed noise limit table of ``standard``.

    >>> t = noise_table(); t.classes, t.night_db.tolist()
    (('0', '1', '2', '3', '4a', '4b'), [40.0, 45.0, 50.0, 55.0, 55.0, 60.0])
    """
    raw = load_table(standard)
    day_h, night_h = int(raw["day_start_h"]), int(raw["night_start_h"])
    if not 0 <= day_h < night_h <= 24:
        raise ValueError(f"noise table {standard!r}: need 0 <= day_start_h < night_start_h <= 24")
    limits = raw["limits_db"]
    return NoiseTable(
        standard=standard,
        day_start_h=day_h,
        night_start_h=night_h,
        night_max_allowance_db=float(raw["night_max_allowance_db"]),
        classes=tuple(str(k) for k in limits),
        day_db=np.asarray([limits[k]["day"] for k in limits], dtype=np.float64),
        night_db=np.asarray([limits[k]["night"] for k in limits], dtype=np.float64),
    )


def local_hour(ts_ms, timezone: str) -> np.ndarray:
    """Local clock hour (0-23) of UTC epoch-millisecond times in ``timezone`` (IANA name).

    >>> local_hour([0, 3_600_000 * 16], "Asia/Shanghai").tolist()  # 08:00 and 00:00 next day
    [8, 0]
    """
    ts = pl.Series("ts", np.asarray(ts_ms, dtype=np.int64))
    try:
        # one expression, one polars query
        hour = ts.to_frame().select(pl.col("ts").cast(pl.Datetime("ms", "UTC")).dt.convert_time_zone(timezone).dt.hour().cast(pl.Int64))
    except Exception as exc:  # polars raises ComputeError for unknown zones
        raise ValueError(f"unknown time zone {timezone!r}") from exc
    return hour.to_series().to_numpy()


def is_night(ts_ms, timezone: str, standard: str = DEFAULT_STANDARD) -> np.ndarray:
    """True where the local time is in the night period ([22:00, 06:00) by default).

    Example (Asia/Shanghai is UTC+8, so 22:00 local = 14:00 UTC):
        >>> h = 3_600_000
        >>> is_night([14 * h - 1, 14 * h, 22 * h - 1, 22 * h], "Asia/Shanghai").tolist()
        [False, True, True, False]
    """
    t = noise_table(standard)
    hour = local_hour(ts_ms, timezone)
    return (hour < t.day_start_h) | (hour >= t.night_start_h)


def _class_index(noise_class, table: NoiseTable) -> np.ndarray:
    cls = np.asarray(noise_class, dtype=object)
    idx = np.full(cls.shape, -1, dtype=np.int64)
    for k, name in enumerate(table.classes):
        idx[cls == name] = k
    if np.any(idx < 0):
        bad = sorted({str(x) for x in cls[idx < 0].tolist()})
        raise ValueError(f"unknown acoustic zone class(es) {bad}; known: {', '.join(table.classes)}")
    return idx


def limit_db(noise_class, night, standard: str = DEFAULT_STANDARD) -> np.ndarray:
    """LAeq limit dB(A) of each zone class in the day (``night`` False) or night period.

    >>> limit_db(["0", "4a", "4b"], [False, True, True]).tolist()
    [50.0, 55.0, 60.0]
    """
    table = noise_table(standard)
    idx = _class_index(noise_class, table)
    return np.where(np.asarray(night, dtype=bool), table.night_db[idx], table.day_db[idx])


def exceedance_db(laeq_db, limit) -> np.ndarray:
    """``max(0, LAeq - limit)`` in dB (NaN where LAeq is missing).

    >>> exceedance_db([62.5, 48.0], [60.0, 50.0]).tolist()
    [2.5, 0.0]
    """
    x = np.asarray(laeq_db, dtype=np.float64) - np.asarray(limit, dtype=np.float64)
    return np.where(np.isnan(x), np.nan, np.maximum(x, 0.0))


def night_max_exceedance_db(lamax_db, limit, night, standard: str = DEFAULT_STANDARD) -> np.ndarray:
    """At night, ``max(0, LAmax - (limit + 15))``; 0 in the day (the rule is a night rule).

    >>> night_max_exceedance_db([70.0, 70.0, 60.0], [50.0, 60.0, 50.0], [True, False, True]).tolist()
    [5.0, 0.0, 0.0]
    """
    allowance = noise_table(standard).night_max_allowance_db
    x = np.asarray(lamax_db, dtype=np.float64) - (np.asarray(limit, dtype=np.float64) + allowance)
    out = np.where(np.asarray(night, dtype=bool), np.maximum(x, 0.0), 0.0)
    return np.where(np.isnan(x), np.nan, out)


def energy_mean_db(levels_db, weights=None) -> float:
    """Energy (logarithmic) mean of sound levels, optionally weighted by duration.

    Example: 60 and 70 dB for equal times: 10*log10((10^6 + 10^7)/2) = 67.4 dB.

    >>> round(energy_mean_db([60.0, 70.0]), 1)
    67.4
    """
    x = np.asarray(levels_db, dtype=np.float64)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    ok = np.isfinite(x) & (w > 0)
    if not ok.any():
        return float("nan")
    return float(10.0 * np.log10(np.sum(w[ok] * 10.0 ** (x[ok] / 10.0)) / np.sum(w[ok])))
