"""Sensor-fault statistics per key: flatline (stuck value), dropout (missing values), spikes, drift.

All return a tail probability (small = abnormal) so they combine with the other detectors:

* **flatline / dropout**: a run of ``L`` repeats (or of ``L`` missing values) has probability
  ``p^L`` if repeats happen independently with the key's own learned rate ``p``
  (Krichevsky-Trofimov estimate, so an unseen event is rare but not impossible). A continuous
  sensor that repeats its value three times is suspicious; a counter that is often 0 is not.
* **spike**: the two-sided Gaussian tail of a standardised residual.
* **drift**: the fast level against a slow level, standardised by how far they usually differ.

Example:
    >>> import numpy as np
    >>> vals = np.r_[np.linspace(0, 1, 50), np.full(6, 1.0)]   # a ramp, then stuck at 1.0
    >>> keys = np.zeros(vals.size, dtype=np.int64)
    >>> p = flatline_batch(keys, vals, *flatline_state(1))
    >>> bool(p[49] == 1.0), bool(p[-1] < 1e-4)
    (True, True)
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

#: cap on the effective sample size of the repeat-rate estimate, so it keeps adapting
RATE_MEMORY = 1000.0
_SQRT2 = math.sqrt(2.0)


@njit(cache=True)
def spike_pvalue(z):
    """Two-sided Gaussian tail probability of a standardised residual."""
    return math.erfc(abs(z) / _SQRT2)


def spike_pvalue_ref(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2.0))


@njit(cache=True)
def run_pvalue(rate, n, run):
    """Probability of ``run`` repeats in a row given an event rate learned over ``n`` points."""
    if run <= 0.0:
        return 1.0
    m = n if n < RATE_MEMORY else RATE_MEMORY
    p = (rate * m + 0.5) / (m + 1.0)
    return p ** run


def run_pvalue_ref(rate: float, n: float, run: float) -> float:
    if run <= 0:
        return 1.0
    m = min(n, RATE_MEMORY)
    return ((rate * m + 0.5) / (m + 1.0)) ** run


@njit(cache=True)
def run_surprise(rate, n, run):
    """``-ln`` of :func:`run_pvalue`, without a power or a log for the usual ``run == 0``."""
    if run <= 0.0:
        return 0.0
    m = n if n < RATE_MEMORY else RATE_MEMORY
    return -run * math.log((rate * m + 0.5) / (m + 1.0))


def run_surprise_ref(rate: float, n: float, run: float) -> float:
    if run <= 0:
        return 0.0
    m = min(n, RATE_MEMORY)
    return -run * math.log((rate * m + 0.5) / (m + 1.0))


@njit(cache=True)
def rate_update(rate, n, event):
    """Learn the per-point event rate (running mean, then EWMA with ``RATE_MEMORY`` points)."""
    m = n if n < RATE_MEMORY else RATE_MEMORY
    return rate + ((1.0 if event else 0.0) - rate) / (m + 1.0)


def rate_update_ref(rate: float, n: float, event: bool) -> float:
    return rate + (float(event) - rate) / (min(n, RATE_MEMORY) + 1.0)


@njit(cache=True)
def is_repeat(x, prev):
    """Equal to the previous value up to float noise."""
    return abs(x - prev) <= 1e-12 * (1.0 + abs(x))


def flatline_state(n_keys: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fresh ``(prev, run, rate, count)`` arrays."""
    return np.zeros(n_keys), np.zeros(n_keys), np.zeros(n_keys), np.zeros(n_keys)


@njit(cache=True)
def flatline_batch(keys, values, prev, run, rate, count):
    """Probability of each point's current run of repeated values; learns the repeat rate."""
    n = keys.shape[0]
    out = np.ones(n)
    for i in range(n):
        k = keys[i]
        x = values[i]
        if not math.isfinite(x):
            out[i] = np.nan
            continue
        c = count[k]
        if c > 0.0:
            rep = is_repeat(x, prev[k])
            run[k] = run[k] + 1.0 if rep else 0.0
            out[i] = run_pvalue(rate[k], c - 1.0, run[k])
            rate[k] = rate_update(rate[k], c - 1.0, rep)
        prev[k] = x
        count[k] = c + 1.0
    return out


def flatline_batch_ref(keys, values):
    """Plain-Python reference of :func:`flatline_batch` from fresh state."""
    st: dict[int, list] = {}
    out = []
    for k, x in zip(keys.tolist(), values.tolist()):
        if not math.isfinite(x):
            out.append(math.nan)
            continue
        if k not in st:
            st[k] = [x, 0.0, 0.0, 1.0]
            out.append(1.0)
            continue
        prev, run, rate, c = st[k]
        rep = abs(x - prev) <= 1e-12 * (1.0 + abs(x))
        run = run + 1.0 if rep else 0.0
        out.append(run_pvalue_ref(rate, c - 1.0, run))
        st[k] = [x, run, rate_update_ref(rate, c - 1.0, rep), c + 1.0]
    return np.array(out)


@njit(cache=True)
def drift_z(level, level_long, drift_scale, noise_sigma):
    """Standardised gap between the fast and the slow level."""
    s = 1.2533141373155001 * drift_scale
    if s < noise_sigma:
        s = noise_sigma
    if s <= 0.0:
        return 0.0
    return (level - level_long) / s


def drift_z_ref(level: float, level_long: float, drift_scale: float, noise_sigma: float) -> float:
    s = max(1.2533141373155001 * drift_scale, noise_sigma)
    return 0.0 if s <= 0 else (level - level_long) / s
