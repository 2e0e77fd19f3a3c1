"""Windowed aggregation kernel: per (window slot, key, field) sum, count and max, NaN skipped.

``accumulate`` is the numba kernel; ``accumulate_reference`` is the plain-Python version the
tests compare it with. Means, weighted means and energy means (for dB) are derived from sums by
the caller (weighted: add value*weight and weight as two fields; energy: add 10**(L/10)).

Example:
    >>> import numpy as np
    >>> sums = np.zeros((1, 2, 1)); counts = np.zeros((1, 2, 1)); maxs = np.full((1, 2, 1), -np.inf)
    >>> accumulate(np.array([0, 0, 0]), np.array([1, 1, 0]), np.array([[2.0], [4.0], [np.nan]]), sums, counts, maxs)
    >>> sums[0, :, 0].tolist(), counts[0, :, 0].tolist(), float(maxs[0, 1, 0])
    ([0.0, 6.0], [0.0, 2.0], 4.0)
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def accumulate(slot, key, values, sums, counts, maxs):  # pragma: no cover - compiled
    n, m = values.shape
    for i in range(n):
        s = slot[i]
        k = key[i]
        for j in range(m):
            v = values[i, j]
            if v == v:  # NaN is "no value", not a value
                sums[s, k, j] += v
                counts[s, k, j] += 1.0
                if v > maxs[s, k, j]:
                    maxs[s, k, j] = v


def accumulate_reference(slot, key, values, sums, counts, maxs) -> None:
    """Plain-Python twin of :func:`accumulate`."""
    for i in range(len(slot)):
        for j in range(values.shape[1]):
            v = float(values[i, j])
            if np.isnan(v):
                continue
            sums[slot[i], key[i], j] += v
            counts[slot[i], key[i], j] += 1.0
            maxs[slot[i], key[i], j] = max(maxs[slot[i], key[i], j], v)


def warm_up() -> None:
    """Compile the kernel on tiny arrays (kept out of the first window's latency)."""
    accumulate(
        np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros((1, 1)), np.zeros((1, 1, 1)), np.zeros((1, 1, 1)),
        np.zeros((1, 1, 1)),
    )
