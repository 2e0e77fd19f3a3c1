"""Exponentially weighted mean and variance per key, with time-based decay.

Irregular sampling is handled by decaying with elapsed time (``tau_s``) instead of a fixed
per-point weight; warm-up is handled by never giving a new point less weight than ``1/(n+1)``,
so the first points give a plain running mean rather than a mean biased towards the first value.

Example:
    >>> import numpy as np
    >>> keys = np.array([0, 0, 0], dtype=np.int64)
    >>> ts = np.array([0, 60_000, 120_000], dtype=np.int64)
    >>> vals = np.array([1.0, 2.0, 3.0])
    >>> state = ewma_state(1)
    >>> mean, std = ewma_batch(keys, ts, vals, 3600.0, *state)
    >>> round(float(mean[-1]), 6)
    2.0
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def decay_alpha(dt_s, tau_s, n):
    """Weight of a new point after ``dt_s`` seconds, ``n`` points already seen."""
    a = 1.0 - math.exp(-dt_s / tau_s) if tau_s > 0.0 else 1.0
    w = 1.0 / (n + 1.0)
    return a if a > w else w


def decay_alpha_ref(dt_s: float, tau_s: float, n: float) -> float:
    """Plain-Python reference of :func:`decay_alpha`."""
    a = 1.0 - math.exp(-dt_s / tau_s) if tau_s > 0.0 else 1.0
    return max(a, 1.0 / (n + 1.0))


@njit(cache=True)
def memory_s(tau_s, min_points, max_points, dt_s):
    """A memory of ``tau_s`` seconds, kept between ``min_points`` and ``max_points`` sampling
    intervals of ``dt_s`` seconds (an hour of a city's series is an hour whatever its sampling, but
    a 1 Hz sensor must not need 3,600 points to follow a departure)."""
    lo = min_points * dt_s
    hi = max_points * dt_s
    t = tau_s if tau_s > lo else lo
    return t if t < hi or hi <= 0.0 else hi


def memory_s_ref(tau_s: float, min_points: float, max_points: float, dt_s: float) -> float:
    t = max(tau_s, min_points * dt_s)
    hi = max_points * dt_s
    return t if t < hi or hi <= 0 else hi


def ewma_state(n_keys: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fresh state arrays ``(mean, var, count, last_ts_ms)`` for ``n_keys`` keys."""
    return (np.zeros(n_keys), np.zeros(n_keys), np.zeros(n_keys), np.zeros(n_keys, dtype=np.int64))


@njit(cache=True)
def ewma_batch(keys, ts_ms, values, tau_s, mean, var, count, last_ts):
    """Update per-key EW mean/variance in place; return the mean and std after each point.

    Non-finite values are skipped (output NaN). Out-of-order points use ``dt = 0``.
    """
    n = keys.shape[0]
    out_mean = np.empty(n)
    out_std = np.empty(n)
    for i in range(n):
        k = keys[i]
        x = values[i]
        if not math.isfinite(x):
            out_mean[i] = np.nan
            out_std[i] = np.nan
            continue
        c = count[k]
        if c == 0.0:
            mean[k] = x
            var[k] = 0.0
            last_ts[k] = ts_ms[i]
        else:
            dt_s = (ts_ms[i] - last_ts[k]) / 1000.0
            if dt_s < 0.0:
                dt_s = 0.0
            else:
                last_ts[k] = ts_ms[i]
            a = decay_alpha(dt_s, tau_s, c)
            d = x - mean[k]
            mean[k] += a * d
            # West (1979) incremental weighted variance
            var[k] = (1.0 - a) * (var[k] + a * d * d)
        count[k] = c + 1.0
        out_mean[i] = mean[k]
        out_std[i] = math.sqrt(var[k])
    return out_mean, out_std


def ewma_batch_ref(keys, ts_ms, values, tau_s):
    """Plain-Python reference of :func:`ewma_batch` from fresh state (dict per key)."""
    st: dict[int, list] = {}
    means, stds = [], []
    for k, t, x in zip(keys.tolist(), ts_ms.tolist(), values.tolist()):
        if not math.isfinite(x):
            means.append(math.nan)
            stds.append(math.nan)
            continue
        if k not in st:
            st[k] = [x, 0.0, 1.0, t]
        else:
            m, v, c, last = st[k]
            dt = (t - last) / 1000.0
            if dt < 0:
                dt = 0.0
            else:
                last = t
            a = decay_alpha_ref(dt, tau_s, c)
            d = x - m
            m = m + a * d
            v = (1.0 - a) * (v + a * d * d)
            st[k] = [m, v, c + 1.0, last]
        means.append(st[k][0])
        stds.append(math.sqrt(st[k][1]))
    return np.array(means), np.array(stds)
