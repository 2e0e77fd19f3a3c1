"""Duplicate marking kernel: which rows carry a key seen neither earlier in the batch nor before it.

``first_unseen`` is the numba kernel (an open-addressing hash set over 64-bit keys, linear in the
rows, no sort); ``first_unseen_reference`` is the plain-Python version the tests compare it with.
Keys are 64-bit hashes of a record's identity (terminal, event time, and entity/status for
lifecycle events); ``known`` are the keys already applied and still inside the lateness horizon.

Example:
    >>> import numpy as np
    >>> first_unseen(np.array([7, 3, 7, 9, 3], dtype=np.uint64), np.array([9], dtype=np.uint64)).tolist()
    [True, True, False, False, False]
"""
from __future__ import annotations

import numpy as np
from numba import njit

_EMPTY = np.uint64(0)  # slot marker; a real key 0 is tracked apart (``zero_seen``)


@njit(cache=True)
def _first_unseen(keys, known):  # pragma: no cover - compiled
    n, m = len(keys), len(known)
    size = 1
    while size < 2 * (n + m) + 2:
        size *= 2
    mask = np.uint64(size - 1)
    table = np.zeros(size, dtype=np.uint64)
    zero_seen = False
    for key in known:
        if key == 0:
            zero_seen = True
            continue
        slot = (key * np.uint64(0x9E3779B97F4A7C15)) & mask
        while table[slot] != 0 and table[slot] != key:
            slot = (slot + np.uint64(1)) & mask
        table[slot] = key
    out = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        key = keys[i]
        if key == 0:
            if not zero_seen:
                zero_seen = True
                out[i] = True
            continue
        slot = (key * np.uint64(0x9E3779B97F4A7C15)) & mask
        while table[slot] != 0 and table[slot] != key:
            slot = (slot + np.uint64(1)) & mask
        if table[slot] == 0:
            table[slot] = key
            out[i] = True
    return out


def first_unseen(keys: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``True`` for each row whose key is in neither ``known`` nor an earlier row (uint64 arrays)."""
    return _first_unseen(np.ascontiguousarray(keys, dtype=np.uint64), np.ascontiguousarray(known, dtype=np.uint64))


def first_unseen_reference(keys: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Plain-Python twin of :func:`first_unseen`."""
    seen = {int(k) for k in known}
    out = []
    for k in keys:
        out.append(int(k) not in seen)
        seen.add(int(k))
    return np.array(out, dtype=bool)


def warm_up() -> None:
    """Compile the kernel on tiny arrays (kept out of the first batch's latency)."""
    first_unseen(np.zeros(1, np.uint64), np.zeros(0, np.uint64))
