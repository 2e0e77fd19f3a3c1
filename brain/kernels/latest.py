"""The latest window row per (tick, key), in one pass over stacked window rows.

``latest_rows`` is the numba kernel; ``latest_rows_reference`` is the plain-Python version the tests
compare it with. Row ``i`` belongs to tick position ``ti[i]`` and key ``k[i]`` (either negative: no
tick or unknown id, skipped) and its window ends at ``end_ms[i]`` (NaN: no end, skipped). For each
(tick, key) it finds the row whose window ends latest in ``(tick - max_age_ms, tick]``, the last
such row in input order when several end at the same time, and returns those rows and their keys
``ti * n_keys + k``, in key order. This is how :mod:`brain.vitals.batch` picks each segment's or
sensor's current window for every tick of a batch.

Example: key 0 has windows ending at 100 and 200 for the tick at 200; key 1 only one too old:
    >>> import numpy as np
    >>> latest_rows(np.array([0, 0, 0]), np.array([0, 0, 1]), np.array([100.0, 200.0, 50.0]), np.array([200]), 120, 2)
    (array([1]), array([0]))
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def latest_rows(ti, k, end_ms, ticks, max_age_ms, n_keys):  # pragma: no cover - compiled
    n = ticks.shape[0] * n_keys
    where = np.full(n, -1, dtype=np.int64)
    best = np.empty(n)
    found = 0
    for i in range(ti.shape[0]):
        t, key = ti[i], k[i]
        if t < 0 or key < 0:
            continue
        e = end_ms[i]
        tick = ticks[t]
        if not (e <= tick and e > tick - max_age_ms):  # (NaN: false)
            continue
        g = t * n_keys + key
        if where[g] < 0:
            found += 1
            where[g] = i
            best[g] = e
        elif e >= best[g]:  # of equal ends the last row
            where[g] = i
            best[g] = e
    rows = np.empty(found, dtype=np.int64)
    keys = np.empty(found, dtype=np.int64)
    j = 0
    for g in range(n):
        if where[g] >= 0:
            rows[j] = where[g]
            keys[j] = g
            j += 1
    return rows, keys


def latest_rows_reference(ti, k, end_ms, ticks, max_age_ms: int, n_keys: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain-Python twin of :func:`latest_rows`."""
    chosen: dict[int, tuple[float, int]] = {}
    for i, (t, key, e) in enumerate(zip(ti.tolist(), k.tolist(), end_ms.tolist())):
        if t < 0 or key < 0 or np.isnan(e):
            continue
        tick = int(ticks[t])
        if not tick - max_age_ms < e <= tick:
            continue
        g = t * n_keys + key
        if g not in chosen or e >= chosen[g][0]:
            chosen[g] = (e, i)
    keys = sorted(chosen)
    return np.asarray([chosen[g][1] for g in keys], dtype=np.int64), np.asarray(keys, dtype=np.int64)


def warm_up() -> None:
    """Compile the kernel on tiny arrays."""
    one = np.zeros(1, dtype=np.int64)
    latest_rows(one, one, np.zeros(1), one, 1, 1)
