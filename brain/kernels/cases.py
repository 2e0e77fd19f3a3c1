"""Grid-case counts per (tick, group) as of each tick, in one pass (no ticks x cases masks).

``case_counts`` is the numba kernel; ``case_counts_reference`` is the numpy formulation it replaces
(ticks x cases boolean masks, counted with ``bincount``), which the tests compare it with. As of
each tick ``t``, following :func:`brain.vitals.grid.case_metrics`: a case exists once reported
(``reported <= t``); it is new if reported within the last hour, open while not closed by ``t``,
overdue if open past its deadline, recently closed if closed in ``(t - lookback, t]``, and closed on
time if that close was by its deadline. ``counts[tick, group]`` holds those six counts in that order
and ``duration_ms[tick, group]`` the sum of ``max(closed - reported, 0)`` over the recently closed
cases (summed in case order, as ``bincount`` sums). Cases of a negative group count nowhere.

Example: one case reported at 0 with a deadline at 2 h, closed at 1 h; ticks at 30 min and 2 h:
    >>> import numpy as np
    >>> h = 3_600_000
    >>> yes, one = np.array([True]), np.array([0])
    >>> counts, duration = case_counts(np.array([0]), yes, np.array([h]), yes, np.array([2 * h]), yes,
    ...                                np.array([h // 2, 2 * h]), 24 * h, h, one, 1)
    >>> counts[:, 0].tolist()  # exists, new, open, overdue, closed recently, closed on time
    [[1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 1, 1]]
    >>> duration[:, 0].tolist()
    [0.0, 3600000.0]
"""
from __future__ import annotations

import numpy as np
from numba import njit

NAMES: tuple[str, ...] = ("exists", "new_last_hour", "open_backlog", "overdue", "closed_recent", "closed_on_time")


@njit(cache=True)
def case_counts(reported, reported_ok, closed, closed_ok, deadline, deadline_ok, ticks, lookback_ms, hour_ms, group, n_groups):  # pragma: no cover - compiled
    n_ticks, n = ticks.shape[0], reported.shape[0]
    counts = np.zeros((n_ticks, n_groups, 6), dtype=np.int64)
    duration = np.zeros((n_ticks, n_groups))
    for t in range(n_ticks):
        now = ticks[t]
        for i in range(n):
            g = group[i]
            if g < 0 or not reported_ok[i] or reported[i] > now:
                continue
            counts[t, g, 0] += 1
            if reported[i] > now - hour_ms:
                counts[t, g, 1] += 1
            if not closed_ok[i] or closed[i] > now:
                counts[t, g, 2] += 1
                if deadline_ok[i] and deadline[i] < now:
                    counts[t, g, 3] += 1
            if closed_ok[i] and closed[i] > now - lookback_ms and closed[i] <= now:
                counts[t, g, 4] += 1
                duration[t, g] += float(max(closed[i] - reported[i], 0))
                if deadline_ok[i] and closed[i] <= deadline[i]:
                    counts[t, g, 5] += 1
    return counts, duration


def case_counts_reference(reported, reported_ok, closed, closed_ok, deadline, deadline_ok, ticks, lookback_ms: int, hour_ms: int,
                          group, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """The numpy formulation: (ticks x cases) masks counted per (tick, group) with ``bincount``."""
    t = ticks[:, None]
    exists = reported_ok & (reported <= t)
    is_open = exists & (~closed_ok | (closed > t))
    recent = closed_ok & (closed > t - lookback_ms) & (closed <= t) & exists
    masks = [exists, exists & (reported > t - hour_ms), is_open, is_open & deadline_ok & (deadline < t), recent,
             recent & deadline_ok & (closed <= deadline)]
    k, n = exists.shape
    flat = np.arange(k, dtype=np.int64)[:, None] * n_groups + group[None, :]
    inside = np.broadcast_to(group >= 0, (k, n))
    counts = np.stack([np.bincount(flat[m & inside], minlength=k * n_groups).reshape(k, n_groups) for m in masks], axis=2)
    duration_ms = np.broadcast_to(np.maximum(closed - reported, 0).astype(np.float64), exists.shape)
    m = recent & inside
    duration = np.bincount(flat[m], weights=duration_ms[m], minlength=k * n_groups).reshape(k, n_groups)
    return counts.astype(np.int64), duration


def warm_up() -> None:
    """Compile the kernel on tiny arrays."""
    one, yes = np.zeros(1, dtype=np.int64), np.ones(1, dtype=bool)
    case_counts(one, yes, one, yes, one, yes, one, 1, 1, one, 1)
