"""Grouped float sums in row order, compensated (Kahan) as polars' grouped ``sum`` takes them.

``group_sums`` is the numba kernel; ``group_sums_reference`` is the plain-Python version the tests
compare it with. Per group (``group`` in ``range(n_groups)``; rows of a negative group, and rows
where ``ok`` is false, are skipped) it gives the Kahan-compensated sum of ``values`` taken in row
order and the number of rows summed. The vital-sign batch (:mod:`brain.vitals.batch`) uses it for
its per-area figures instead of one polars group-by per table: polars' hash group-by sums each
group's floats this way, so the figures keep the one-window formulation's bits (a sum that
overflows to inf or meets a NaN is the plain sum, as in polars).

Example:
    >>> import numpy as np
    >>> s, n = group_sums(np.array([0.1, 0.2, 0.3, 5.0]), np.array([True, True, True, False]),
    ...                   np.array([0, 0, 0, 1]), 2)
    >>> s.tolist(), n.tolist()
    ([0.6000000000000001, 0.0], [3, 0])
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def group_sums(values, ok, group, n_groups):  # pragma: no cover - compiled
    total = np.full(n_groups, -0.0)
    comp = np.zeros(n_groups)
    plain = np.full(n_groups, -0.0)
    count = np.zeros(n_groups, dtype=np.int64)
    for i in range(values.shape[0]):
        g = group[i]
        if g < 0 or not ok[i]:
            continue
        x = values[i]
        y = x - comp[g]
        t = total[g] + y
        comp[g] = (t - total[g]) - y
        total[g] = t
        plain[g] += x
        count[g] += 1
    for g in range(n_groups):
        if not math.isfinite(plain[g]):
            total[g] = plain[g]
    return total, count


def group_sums_reference(values, ok, group, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain-Python twin of :func:`group_sums`."""
    rows: list[list[float]] = [[] for _ in range(n_groups)]
    for x, keep, g in zip(values.tolist(), ok.tolist(), group.tolist()):
        if g >= 0 and keep:
            rows[g].append(x)
    total, count = np.zeros(n_groups), np.zeros(n_groups, dtype=np.int64)
    for g, xs in enumerate(rows):
        s, c = -0.0, 0.0
        for x in xs:  # Kahan (1965)
            y = x - c
            t = s + y
            c = (t - s) - y
            s = t
        plain = sum(xs, -0.0)
        total[g] = s if math.isfinite(plain) else plain
        count[g] = len(xs)
    return total, count


def warm_up() -> None:
    """Compile the kernel on tiny arrays."""
    group_sums(np.zeros(1), np.ones(1, dtype=bool), np.zeros(1, dtype=np.int64), 1)
