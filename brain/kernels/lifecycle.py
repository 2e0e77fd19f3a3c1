"""Lifecycle merge kernel: table rows (the table's, then the updates') merged per entity in one pass.

``merge_rows`` is the numba kernel; ``merge_rows_reference`` is the plain-Python version the tests
compare it with. Rows come with their entity's group number (groups numbered in order of first
appearance) and, as float64 arrays with NaN for null (epoch ms are exact in a double):

- ``stage_ms`` ``(S, n)``: each stage's time; per group the first (smallest) time, NaN if none;
- ``set_ms`` ``(F, n)`` and ``valid`` ``(F, n)``: when each field was set, and whether the row's
  value is not null; per group the row whose value is newest — among valid rows the largest set
  time, a null set time below every time, ties to the later row (a stable sort's last) — or -1,
  and the largest set time;
- ``updated_ms`` ``(n,)``: per group the newest row (same rule, every row counts) and the largest time.

Returns ``(first_row (G,), first_ms (S, G), chosen (F, G), set_max (F, G), newest (G,), updated_max (G,))``.

Example:
    >>> import numpy as np
    >>> nan = np.nan
    >>> out = merge_rows(np.array([0, 1, 0]), 2, np.array([[5.0, nan, 3.0]]), np.array([[5.0, 4.0, nan]]),
    ...                  np.array([[True, True, False]]), np.array([5.0, 4.0, 3.0]))
    >>> [a.tolist() for a in out]
    [[0, 1], [[3.0, nan]], [[0, 1]], [[5.0, 4.0]], [0, 1], [5.0, 4.0]]
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def merge_rows(group, n_groups, stage_ms, set_ms, valid, updated_ms):  # pragma: no cover - compiled
    n_stages, n = stage_ms.shape
    n_fields = set_ms.shape[0]
    first_row = np.full(n_groups, -1, np.int64)
    first_ms = np.full((n_stages, n_groups), np.nan)
    chosen = np.full((n_fields, n_groups), -1, np.int64)
    chosen_key = np.zeros((n_fields, n_groups))
    set_max = np.full((n_fields, n_groups), np.nan)
    newest = np.full(n_groups, -1, np.int64)
    newest_key = np.zeros(n_groups)
    updated_max = np.full(n_groups, np.nan)
    for r in range(n):
        g = group[r]
        if first_row[g] < 0:
            first_row[g] = r
        for s in range(n_stages):
            v = stage_ms[s, r]
            if v == v and not first_ms[s, g] <= v:  # NaN is null: skipped; a NaN minimum is replaced
                first_ms[s, g] = v
        for f in range(n_fields):
            k = set_ms[f, r]
            if k == k:
                if not set_max[f, g] >= k:
                    set_max[f, g] = k
            else:
                k = -np.inf
            if valid[f, r] and (chosen[f, g] < 0 or k >= chosen_key[f, g]):  # >=: ties go to the later row
                chosen[f, g] = r
                chosen_key[f, g] = k
        u = updated_ms[r]
        if u == u:
            if not updated_max[g] >= u:
                updated_max[g] = u
        else:
            u = -np.inf
        if newest[g] < 0 or u >= newest_key[g]:
            newest[g] = r
            newest_key[g] = u
    return first_row, first_ms, chosen, set_max, newest, updated_max


def merge_rows_reference(group, n_groups, stage_ms, set_ms, valid, updated_ms):
    """Plain-Python twin of :func:`merge_rows`: each group's rows listed, then picked."""
    members = [[r for r in range(len(group)) if group[r] == g] for g in range(n_groups)]
    nan = float("nan")

    def key(x: float) -> float:
        return -float("inf") if x != x else x

    def newest_of(rows: list[int], keys) -> int:
        best = -1
        for r in rows:  # in row order: a later row of an equal key wins
            if best < 0 or key(keys[r]) >= key(keys[best]):
                best = r
        return best

    def maximum(values: list[float]) -> float:
        present = [v for v in values if v == v]
        return max(present) if present else nan

    first_row = np.array([rows[0] if rows else -1 for rows in members], dtype=np.int64)
    first_ms = np.array([[min((stage_ms[s, r] for r in rows if stage_ms[s, r] == stage_ms[s, r]), default=nan) for rows in members]
                         for s in range(stage_ms.shape[0])], dtype=np.float64).reshape(stage_ms.shape[0], n_groups)
    chosen = np.array([[newest_of([r for r in rows if valid[f, r]], set_ms[f]) for rows in members]
                       for f in range(set_ms.shape[0])], dtype=np.int64).reshape(set_ms.shape[0], n_groups)
    set_max = np.array([[maximum([set_ms[f, r] for r in rows]) for rows in members]
                        for f in range(set_ms.shape[0])], dtype=np.float64).reshape(set_ms.shape[0], n_groups)
    newest = np.array([newest_of(rows, updated_ms) for rows in members], dtype=np.int64)
    updated_max = np.array([maximum([updated_ms[r] for r in rows]) for rows in members], dtype=np.float64)
    return first_row, first_ms, chosen, set_max, newest, updated_max


def warm_up() -> None:
    """Compile (or load from the cache) the kernel on tiny arrays, outside any measured batch."""
    merge_rows(np.zeros(1, np.int64), 1, np.zeros((1, 1)), np.zeros((1, 1)), np.ones((1, 1), dtype=bool), np.zeros(1))
