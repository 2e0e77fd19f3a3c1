"""Duplicate marking kernel: which rows carry a key seen neither earlier in the batch nor before it.

``first_unseen`` is the numba kernel (an open-addressing hash set over 64-bit keys, linear in the
rows, no sort); ``first_unseen_reference`` is the plain-Python version the tests compare it with.
Keys are 64-bit hashes of a record's identity (terminal, event time, and entity/status for
lifecycle events); ``known`` are the keys already applied and still inside the lateness horizon.

``record_keys`` makes those keys from a terminal's registry index and event time (and, for
lifecycle events, a hash of the entity and status): each part goes through the splitmix64 mixer,
each with its own offset, before they are combined, so two distinct records share a key with
probability ~2^-64 however regular the indices and times are (a plain ``index * K ^ ts`` collides
for some index pairs; the same mixer on both parts would give (i, t) and (t, i) one key).
``record_keys_reference`` is its plain-Python twin.

Example:
    >>> import numpy as np
    >>> keys = record_keys(np.array([4, 4, 5]), np.array([1000, 1000, 1000]))
    >>> bool(keys[0] == keys[1]), bool(keys[0] == keys[2])
    (True, False)
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


_OFFSETS = (0x9E3779B97F4A7C15, 0x632BE59BD9B4E019, 0xD1B54A32D192ED03)  # one per key part
_M1, _M2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_MASK = (1 << 64) - 1


@njit(cache=True, inline="always")
def _mix(z, offset):  # pragma: no cover - compiled; splitmix64's finaliser on uint64 (wraps mod 2^64)
    z = z + np.uint64(offset)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_M1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_M2)
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def _record_keys(sensor_idx, ts_ms, extra, has_extra):  # pragma: no cover - compiled
    out = np.empty(len(ts_ms), dtype=np.uint64)
    for i in range(len(ts_ms)):
        key = _mix(np.uint64(sensor_idx[i]), _OFFSETS[0]) ^ _mix(np.uint64(ts_ms[i]), _OFFSETS[1])
        if has_extra:
            key = key ^ _mix(extra[i], _OFFSETS[2])
        key = _mix(key, _OFFSETS[0])
        out[i] = key
    return out


def record_keys(sensor_idx: np.ndarray, ts_ms: np.ndarray, extra: np.ndarray | None = None) -> np.ndarray:
    """64-bit identity keys of records: (terminal index, event time[, extra uint64 part])."""
    ts = np.ascontiguousarray(ts_ms, dtype=np.int64)
    idx = np.ascontiguousarray(sensor_idx, dtype=np.int64)
    if len(idx) != len(ts) or (extra is not None and len(extra) != len(ts)):
        raise ValueError("sensor_idx, ts_ms and extra must have the same length")
    more = np.ascontiguousarray(extra, dtype=np.uint64) if extra is not None else np.zeros(0, np.uint64)
    return _record_keys(idx, ts, more, extra is not None)


def _mix_reference(z: int, offset: int) -> int:
    z = (z + offset) & _MASK
    z = ((z ^ (z >> 30)) * _M1) & _MASK
    z = ((z ^ (z >> 27)) * _M2) & _MASK
    return z ^ (z >> 31)


def record_keys_reference(sensor_idx, ts_ms, extra=None) -> np.ndarray:
    """Plain-Python twin of :func:`record_keys`."""
    out = []
    for i, (s, t) in enumerate(zip(sensor_idx, ts_ms)):
        key = _mix_reference(int(s) & _MASK, _OFFSETS[0]) ^ _mix_reference(int(t) & _MASK, _OFFSETS[1])
        if extra is not None:
            key ^= _mix_reference(int(extra[i]), _OFFSETS[2])
        out.append(_mix_reference(key, _OFFSETS[0]))
    return np.array(out, dtype=np.uint64)


def warm_up() -> None:
    """Compile the kernels on tiny arrays (kept out of the first batch's latency)."""
    first_unseen(np.zeros(1, np.uint64), np.zeros(0, np.uint64))
    record_keys(np.zeros(1, np.int64), np.zeros(1, np.int64))
    record_keys(np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, np.uint64))
