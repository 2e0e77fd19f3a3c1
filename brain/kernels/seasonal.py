"""Seasonal baselines learned online: hour-of-day (24 bins) and hour-of-week (168 bins) per key.

Each key has ``N_BINS`` = 192 bins stored as interleaved ``[value, count]`` pairs in one row of a
float64 array (a bin's value and count share a cache line). The profile is read linearly between
bin centres (so a one-hour rush-hour peak is not flattened into hourly steps); each bin learns a
running mean of the targets near it, weighted by the interpolation weight. Bins are used once the two bracketing bins
hold enough points: hour-of-week when warm, else hour-of-day, else none.
The detector keeps ``N_TOD`` more columns after the bins, the usual |residual| per hour of day
(:func:`noise_value`, :func:`noise_learn`): its noise is at least that profile's.
Bins are keyed on UTC hours: the phase does not matter for learning, only consistency does, so
no timezone is needed. Learning is a running mean at first, then an EWMA whose memory is
``TOD_MEMORY_DAYS`` days (hour-of-day) or ``WEEK_MEMORY_WEEKS`` weeks (hour-of-week) whatever
the sampling interval (the weight grows with the elapsed time inside the bin, capped at one hour).

Example:
    >>> import numpy as np
    >>> hours = np.arange(24 * 14, dtype=np.int64)
    >>> ts = hours * 3_600_000 + 1_800_000                # on the half hour: bin centres
    >>> vals = 10.0 + 5.0 * (hours % 24 == 8)          # a bump every day at 08:30 UTC
    >>> sea = seasonal_state(1)
    >>> base = seasonal_batch(np.zeros_like(hours), ts, vals, 2.0, sea, np.zeros(1, dtype=np.int64))
    >>> round(float(base[-16]), 3), round(float(base[-17]), 3)   # 08:30 and 07:30 on the last day
    (15.0, 10.0)
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

N_TOD = 24
N_WEEK = 168
N_BINS = N_TOD + N_WEEK
HOUR_MS = 3_600_000
TOD_MEMORY_DAYS = 7.0
WEEK_MEMORY_WEEKS = 4.0
# 1970-01-01 was a Thursday: shift so hour-of-week 0 is Monday 00:00 UTC
_WEEK_SHIFT_H = 72


def seasonal_state(n_keys: int) -> np.ndarray:
    """Fresh seasonal state: ``(n_keys, 2 * N_BINS)`` interleaved value/count."""
    return np.zeros((n_keys, 2 * N_BINS))


@njit(cache=True)
def season_bins(ts_ms):
    """The two hour bins whose centres bracket ``ts_ms``, for linear interpolation.

    Returns value-column indexes ``(tod0, tod1, week0, week1)`` (counts are at +1) and the weight
    of the second bin; the first has ``1 - w1``.
    """
    hf = ts_ms / HOUR_MS - 0.5
    h0 = int(math.floor(hf))
    w1 = hf - h0
    tod0 = 2 * (h0 % N_TOD)
    tod1 = 2 * ((h0 + 1) % N_TOD)
    week0 = 2 * (N_TOD + (h0 + _WEEK_SHIFT_H) % N_WEEK)
    week1 = 2 * (N_TOD + (h0 + 1 + _WEEK_SHIFT_H) % N_WEEK)
    return tod0, tod1, week0, week1, w1


def season_bins_ref(ts_ms: int) -> tuple[int, int, int, int, float]:
    hf = ts_ms / HOUR_MS - 0.5
    h0 = math.floor(hf)
    return 2 * (h0 % 24), 2 * ((h0 + 1) % 24), 2 * (24 + (h0 + 72) % 168), 2 * (24 + (h0 + 73) % 168), hf - h0


@njit(cache=True)
def seasonal_value(sea, k, ts_ms, min_week, min_tod):
    """Learned offset at ``ts_ms`` (interpolated between hour bins), or 0 while the bins are cold.

    Hour-of-week bins are used once both bracketing bins hold ``min_week`` points, else
    hour-of-day bins once both hold ``min_tod``.
    """
    tod0, tod1, week0, week1, w1 = season_bins(ts_ms)
    if sea[k, week0 + 1] >= min_week and sea[k, week1 + 1] >= min_week:
        return (1.0 - w1) * sea[k, week0] + w1 * sea[k, week1]
    if sea[k, tod0 + 1] >= min_tod and sea[k, tod1 + 1] >= min_tod:
        return (1.0 - w1) * sea[k, tod0] + w1 * sea[k, tod1]
    return 0.0


def seasonal_value_ref(row, ts_ms: int, min_week: float, min_tod: float) -> float:
    tod0, tod1, week0, week1, w1 = season_bins_ref(ts_ms)
    for b0, b1, min_count in ((week0, week1, min_week), (tod0, tod1, min_tod)):
        if row[b0 + 1] >= min_count and row[b1 + 1] >= min_count:
            return (1.0 - w1) * row[b0] + w1 * row[b1]
    return 0.0


@njit(cache=True)
def _bin_alpha(count, w, dt_s, memory_periods):
    # running mean at first (weight w of accumulated weight), then an EWMA over the elapsed time
    # in the bin, capped at the bin width, against the memory in bin-hours
    d = dt_s if dt_s < 3600.0 else 3600.0
    x = w * d / (memory_periods * 3600.0)
    a = x / (1.0 + x)  # ~ 1 - exp(-x) without the exp: this runs four times per point
    m = w / (count + w) if count + w > 0.0 else 0.0
    return a if a > m else m


def _bin_alpha_ref(count: float, w: float, dt_s: float, memory_periods: float) -> float:
    x = w * min(dt_s, 3600.0) / (memory_periods * 3600.0)
    m = w / (count + w) if count + w > 0 else 0.0
    return max(x / (1.0 + x), m)


@njit(cache=True)
def _learn_pair(sea, k, b0, b1, w1, target, dt_s, memory):
    # each bin moves towards the target by its own weight (a kernel-weighted running mean): every
    # bin stays a convex combination of targets. A joint gradient step on the interpolation error
    # is unstable here: a fresh bin with a tiny weight would take the whole error each time.
    w0 = 1.0 - w1
    a0 = _bin_alpha(sea[k, b0 + 1], w0, dt_s, memory)
    a1 = _bin_alpha(sea[k, b1 + 1], w1, dt_s, memory)
    sea[k, b0] += a0 * (target - sea[k, b0])
    sea[k, b0 + 1] += w0
    sea[k, b1] += a1 * (target - sea[k, b1])
    sea[k, b1 + 1] += w1


@njit(cache=True)
def seasonal_learn(sea, k, ts_ms, target, dt_s):
    """Move the interpolated profile at ``ts_ms`` towards ``target`` (both day and week profiles)."""
    tod0, tod1, week0, week1, w1 = season_bins(ts_ms)
    _learn_pair(sea, k, tod0, tod1, w1, target, dt_s, TOD_MEMORY_DAYS)
    _learn_pair(sea, k, week0, week1, w1, target, dt_s, WEEK_MEMORY_WEEKS)


def seasonal_learn_ref(row, ts_ms: int, target: float, dt_s: float) -> None:
    tod0, tod1, week0, week1, w1 = season_bins_ref(ts_ms)
    for b0, b1, mem in ((tod0, tod1, TOD_MEMORY_DAYS), (week0, week1, WEEK_MEMORY_WEEKS)):
        a0 = _bin_alpha_ref(row[b0 + 1], 1.0 - w1, dt_s, mem)
        a1 = _bin_alpha_ref(row[b1 + 1], w1, dt_s, mem)
        row[b0] += a0 * (target - row[b0])
        row[b0 + 1] += 1.0 - w1
        row[b1] += a1 * (target - row[b1])
        row[b1 + 1] += w1


@njit(cache=True)
def seasonal_learn_day(sea, k, ts_ms, target, dt_s):
    """:func:`seasonal_learn` for the hour-of-day profile only (the hour-of-week block then holds a
    profile over the key's own period, :mod:`brain.kernels.period`)."""
    tod0, tod1, _, _, w1 = season_bins(ts_ms)
    _learn_pair(sea, k, tod0, tod1, w1, target, dt_s, TOD_MEMORY_DAYS)


def seasonal_learn_day_ref(row, ts_ms: int, target: float, dt_s: float) -> None:
    tod0, tod1, _, _, w1 = season_bins_ref(ts_ms)
    a0 = _bin_alpha_ref(row[tod0 + 1], 1.0 - w1, dt_s, TOD_MEMORY_DAYS)
    a1 = _bin_alpha_ref(row[tod1 + 1], w1, dt_s, TOD_MEMORY_DAYS)
    row[tod0] += a0 * (target - row[tod0])
    row[tod0 + 1] += 1.0 - w1
    row[tod1] += a1 * (target - row[tod1])
    row[tod1 + 1] += w1


# --- the noise's own daily profile ------------------------------------------------------------------
# N_TOD more columns after the bins (offset ``o`` = 2 * N_BINS in the detector's row): the usual
# |residual| per hour of day. A daily pattern with sharp edges (a schedule that steps at 07:13 and
# 18:41) leaves large residuals around its edges at the same hours every day, which the hour
# profile cannot follow; the detector's noise is at least this profile's there, so those edges are
# normal, while the quiet hours keep their small noise (a spike there still stands out). The bins
# share the hour-of-day bins' visit weights (learned just before them). They learn only once those
# bins are warm (before, residuals carry the daily swing the profile has not learned yet: that misfit
# would be kept for days, then forgotten, and a calibration learned meanwhile would then flag too
# often), from 0 (the detector's noise is at least the global one anyway), with a memory of
# NOISE_MEMORY_DAYS so that they settle within a few days. Measured: learning from the first point
# with the profile's 7-day memory scored higher on bench/anomaly_real.py's synthetic corpus but
# raised false alarms on the simulated city's clean streams in bench/anomaly_quality.py (0.163 ->
# 0.238 per stream-day at 0.999); this does not (0.150).
NOISE_MEMORY_DAYS = 2.0


@njit(cache=True)
def noise_value(sea, k, ts_ms, o, min_tod):
    """The hour-of-day profile of |residual| at ``ts_ms`` (linear between hour centres), or 0 while
    the hour-of-day bins hold fewer than ``min_tod`` points."""
    tod0, tod1, _, _, w1 = season_bins(ts_ms)
    if sea[k, tod0 + 1] < min_tod or sea[k, tod1 + 1] < min_tod:
        return 0.0
    return (1.0 - w1) * sea[k, o + tod0 // 2] + w1 * sea[k, o + tod1 // 2]


def noise_value_ref(row, ts_ms: int, o: int, min_tod: float) -> float:
    tod0, tod1, _, _, w1 = season_bins_ref(ts_ms)
    if row[tod0 + 1] < min_tod or row[tod1 + 1] < min_tod:
        return 0.0
    return (1.0 - w1) * row[o + tod0 // 2] + w1 * row[o + tod1 // 2]


@njit(cache=True)
def noise_learn(sea, k, ts_ms, o, abs_res, dt_s, min_tod):
    """Move the two bracketing hours' |residual| towards ``abs_res`` once both hour-of-day bins hold
    ``min_tod`` points (call before :func:`seasonal_learn`: the weights are the bins' before this point)."""
    tod0, tod1, _, _, w1 = season_bins(ts_ms)
    if sea[k, tod0 + 1] < min_tod or sea[k, tod1 + 1] < min_tod:
        return
    a0 = _bin_alpha(sea[k, tod0 + 1], 1.0 - w1, dt_s, NOISE_MEMORY_DAYS)
    a1 = _bin_alpha(sea[k, tod1 + 1], w1, dt_s, NOISE_MEMORY_DAYS)
    sea[k, o + tod0 // 2] += a0 * (abs_res - sea[k, o + tod0 // 2])
    sea[k, o + tod1 // 2] += a1 * (abs_res - sea[k, o + tod1 // 2])


def noise_learn_ref(row, ts_ms: int, o: int, abs_res: float, dt_s: float, min_tod: float) -> None:
    tod0, tod1, _, _, w1 = season_bins_ref(ts_ms)
    if row[tod0 + 1] < min_tod or row[tod1 + 1] < min_tod:
        return
    a0 = _bin_alpha_ref(row[tod0 + 1], 1.0 - w1, dt_s, NOISE_MEMORY_DAYS)
    a1 = _bin_alpha_ref(row[tod1 + 1], w1, dt_s, NOISE_MEMORY_DAYS)
    row[o + tod0 // 2] += a0 * (abs_res - row[o + tod0 // 2])
    row[o + tod1 // 2] += a1 * (abs_res - row[o + tod1 // 2])


@njit(cache=True)
def seasonal_batch(keys, ts_ms, values, min_count, sea, last_ts):
    """Per point: the seasonal baseline before learning it (NaN while cold), then learn the point."""
    n = keys.shape[0]
    out = np.empty(n)
    for i in range(n):
        k = keys[i]
        x = values[i]
        tod0, tod1, week0, week1, w1 = season_bins(ts_ms[i])
        warm = (sea[k, week0 + 1] >= min_count and sea[k, week1 + 1] >= min_count) or (
            sea[k, tod0 + 1] >= min_count and sea[k, tod1 + 1] >= min_count
        )
        out[i] = seasonal_value(sea, k, ts_ms[i], min_count, min_count) if warm else np.nan
        if not math.isfinite(x):
            continue
        dt_s = (ts_ms[i] - last_ts[k]) / 1000.0
        if dt_s < 0.0:
            dt_s = 0.0
        else:
            last_ts[k] = ts_ms[i]
        seasonal_learn(sea, k, ts_ms[i], x, dt_s)
    return out


def seasonal_batch_ref(keys, ts_ms, values, min_count):
    """Plain-Python reference of :func:`seasonal_batch` from fresh state."""
    rows: dict[int, list] = {}
    last: dict[int, int] = {}
    out = []
    for k, t, x in zip(keys.tolist(), ts_ms.tolist(), values.tolist()):
        row = rows.setdefault(k, [0.0] * (2 * N_BINS))
        tod0, tod1, week0, week1, _ = season_bins_ref(t)
        warm = (row[week0 + 1] >= min_count and row[week1 + 1] >= min_count) or (
            row[tod0 + 1] >= min_count and row[tod1 + 1] >= min_count
        )
        out.append(seasonal_value_ref(row, t, min_count, min_count) if warm else math.nan)
        if not math.isfinite(x):
            continue
        dt = (t - last.get(k, 0)) / 1000.0
        if dt < 0:
            dt = 0.0
        else:
            last[k] = t
        seasonal_learn_ref(row, t, x, dt)
    return np.array(out)
