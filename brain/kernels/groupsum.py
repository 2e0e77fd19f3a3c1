"""Grouped float sums in row order, compensated (Kahan) as polars' grouped ``sum`` takes them.

``group_sums`` and ``multi_group_sums`` are the numba kernels; ``group_sums_reference`` and
``multi_group_sums_reference`` are the plain-Python versions the tests compare them with. Per group (``group`` in ``range(n_groups)``; rows of a negative group, and rows
where ``ok`` is false, are skipped) it gives the Kahan-compensated sum of ``values`` taken in row
order (0.0 for none) and the number of rows summed. The vital-sign batch (:mod:`brain.vitals.batch`) uses it for
its per-area figures instead of one polars group-by per table: polars' hash group-by sums each
group's floats this way, so the figures keep the one-window formulation's bits (a sum that
overflows to inf or meets a NaN is the plain sum, as in polars). ``multi_group_sums`` sums several
value columns at once, each row into up to several groups (a district and the whole city), in one
pass over the rows (``values`` and ``ok`` are terms x rows; ``groups`` rows x memberships; the
sums and counts groups x terms).

Example:
    >>> import numpy as np
    >>> s, n = group_sums(np.array([0.1, 0.2, 0.3, 5.0]), np.array([True, True, True, False]),
    ...                   np.array([0, 0, 0, 1]), 2)
    >>> s.tolist(), n.tolist()
    ([0.6, 0.0], [3, 0])
    >>> s, n = multi_group_sums(np.array([[1.0, 3.0], [2.0, 4.0]]), np.array([[True, True], [True, False]]),
    ...                         np.array([[0, 2], [1, 2]]), 3)
    >>> s.tolist(), n.tolist()
    ([[1.0, 2.0], [3.0, 0.0], [4.0, 2.0]], [[1, 1], [1, 0], [2, 1]])
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
        elif count[g] == 0:
            total[g] = 0.0  # polars' sum of no value
    return total, count


@njit(cache=True)
def multi_group_sums(values, ok, groups, n_groups):  # pragma: no cover - compiled
    n_terms, n_rows = values.shape
    total = np.full((n_groups, n_terms), -0.0)
    comp = np.zeros((n_groups, n_terms))
    plain = np.full((n_groups, n_terms), -0.0)
    count = np.zeros((n_groups, n_terms), dtype=np.int64)
    for i in range(n_rows):
        for m in range(groups.shape[1]):
            g = groups[i, m]
            if g < 0:
                continue
            for j in range(n_terms):
                if not ok[j, i]:
                    continue
                x = values[j, i]
                y = x - comp[g, j]
                t = total[g, j] + y
                comp[g, j] = (t - total[g, j]) - y
                total[g, j] = t
                plain[g, j] += x
                count[g, j] += 1
    for g in range(n_groups):
        for j in range(n_terms):
            if not math.isfinite(plain[g, j]):
                total[g, j] = plain[g, j]
            elif count[g, j] == 0:
                total[g, j] = 0.0
    return total, count


def multi_group_sums_reference(values, ok, groups, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain-Python twin of :func:`multi_group_sums`: :func:`group_sums_reference` per column and
    membership, the rows of each group kept in row order."""
    n_terms, n_rows = values.shape
    total, count = np.zeros((n_groups, n_terms)), np.zeros((n_groups, n_terms), dtype=np.int64)
    rows = [[i for i in range(n_rows) for m in range(groups.shape[1]) if groups[i, m] == g] for g in range(n_groups)]
    for j in range(n_terms):
        member = np.asarray([i for g in range(n_groups) for i in rows[g]], dtype=np.int64)
        group = np.asarray([g for g in range(n_groups) for _ in rows[g]], dtype=np.int64)
        total[:, j], count[:, j] = group_sums_reference(values[j, member], ok[j, member], group, n_groups)
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
        total[g] = (s if xs else 0.0) if math.isfinite(plain) else plain
        count[g] = len(xs)
    return total, count


def warm_up() -> None:
    """Compile the kernel on tiny arrays."""
    group_sums(np.zeros(1), np.ones(1, dtype=bool), np.zeros(1, dtype=np.int64), 1)
    multi_group_sums(np.zeros((1, 1)), np.ones((1, 1), dtype=bool), np.zeros((1, 1), dtype=np.int64), 1)  # (terms x rows)
