"""Registry freshness counts per (tick, sensor group) from last-seen rows, in one pass.

``freshness_counts`` is the numba kernel; ``freshness_counts_reference`` is the plain-Python version
the tests compare it with. Each last-seen row says sensor ``sensor[i]`` was last seen at ``seen_ms[i]``
as of tick position ``tick[i]`` (rows with a negative tick or sensor are ignored; several rows of
one (tick, sensor) take the latest, a NaN time being no time). Each sensor at each tick then gets
the code of :func:`brain.vitals.sensors.freshness` (fresh when ``tick - seen <= fresh_ms``, stale
when ``<= silent_ms``, silent beyond, never seen without a time) and the counts are taken per
(tick, group of the sensor): ``counts[tick, group, code]`` with codes fresh, stale, silent, never.

Example: two sensors in one group, hourly (fresh up to 2 h, silent after 10 h), at ticks 3 h and 13 h;
sensor 0 seen at 2 h (as of both ticks), sensor 1 never:
    >>> import numpy as np
    >>> h = 3_600_000.0
    >>> c = freshness_counts(np.array([0, 1]), np.array([0, 0]), np.array([2 * h, 2 * h]), 2,
    ...     np.array([3 * h, 13 * h]), np.array([2 * h, 2 * h]), np.array([10 * h, 10 * h]), np.array([0, 0]), 1)
    >>> c[:, 0].tolist()  # per tick: fresh, stale, silent, never
    [[1, 0, 0, 1], [0, 0, 1, 1]]
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def freshness_counts(tick, sensor, seen_ms, n_ticks, ticks_ms, fresh_ms, silent_ms, group_of, n_groups):  # pragma: no cover - compiled
    n_sensors = group_of.shape[0]
    last = np.full((n_ticks, n_sensors), np.nan)
    for i in range(tick.shape[0]):
        t, s, v = tick[i], sensor[i], seen_ms[i]
        if t < 0 or s < 0:
            continue
        cur = last[t, s]
        if cur != cur or v > cur:  # np.fmax: a NaN loses to any time
            last[t, s] = v
    counts = np.zeros((n_ticks, n_groups, 4), dtype=np.int64)
    for t in range(n_ticks):
        now = ticks_ms[t]
        for s in range(n_sensors):
            seen = last[t, s]
            if seen != seen:
                code = 3
            else:
                age = now - seen
                code = 0 if age <= fresh_ms[s] else (1 if age <= silent_ms[s] else 2)
            counts[t, group_of[s], code] += 1
    return counts


def freshness_counts_reference(tick, sensor, seen_ms, n_ticks: int, ticks_ms, fresh_ms, silent_ms, group_of, n_groups: int) -> np.ndarray:
    """Plain-Python twin of :func:`freshness_counts`."""
    last: dict[tuple[int, int], float] = {}
    for t, s, v in zip(tick.tolist(), sensor.tolist(), seen_ms.tolist()):
        if t < 0 or s < 0:
            continue
        have = last.get((t, s), float("nan"))
        last[(t, s)] = v if np.isnan(have) else (have if np.isnan(v) else max(have, v))
    counts = np.zeros((n_ticks, n_groups, 4), dtype=np.int64)
    for t in range(n_ticks):
        for s in range(len(group_of)):
            seen = last.get((t, s), float("nan"))
            if np.isnan(seen):
                code = 3
            else:
                age = float(ticks_ms[t]) - seen
                code = 0 if age <= fresh_ms[s] else 1 if age <= silent_ms[s] else 2
            counts[t, group_of[s], code] += 1
    return counts


def warm_up() -> None:
    """Compile the kernel on tiny arrays."""
    one = np.zeros(1, dtype=np.int64)
    freshness_counts(one, one, np.zeros(1), 1, np.zeros(1), np.ones(1), np.ones(1), one, 1)
