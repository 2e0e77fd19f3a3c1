"""Where the lines of a byte buffer start and end: newlines found 8 bytes at a time.

:func:`line_bounds` is the compiled pass the JSON-lines scanner (:mod:`brain.kernels.jsonscan`) and
ingest start from; :func:`line_bounds_reference` is its numpy twin.

Example:
    >>> import numpy as np
    >>> buf = np.frombuffer(b'{"a":1}\\n\\n{"b":22}', np.uint8)
    >>> [x.tolist() for x in line_bounds(buf)]
    [[0, 8, 9], [7, 8, 17]]
    >>> [x.tolist() for x in line_bounds_reference(buf)]
    [[0, 8, 9], [7, 8, 17]]
"""
from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros

_u = np.uint64  # an unsigned index skips numba's negative-index wraparound


def line_bounds(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the lines of a uint8 buffer, newline excluded; a last line without newline counts.

    The newlines come from a compiled pass, 8 bytes at a time, with no temporary as large as the
    buffer (``buf == 10`` would allocate one per batch, and fresh memory costs page faults:
    measured ~35 ms a day in a new process); :func:`line_bounds_reference` is the numpy form.
    """
    if buf.flags.writeable:  # one compiled signature (read-only, as from bytes), warmed up at start
        buf = buf.view()
        buf.flags.writeable = False
    return _starts_ends(_newlines(buf), len(buf), bool(len(buf)) and buf[-1] != 10)


def line_bounds_reference(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`line_bounds` in numpy."""
    return _starts_ends(np.flatnonzero(buf == 10).astype(np.int64, copy=False), len(buf), bool(len(buf)) and buf[-1] != 10)


def _starts_ends(newlines: np.ndarray, n_bytes: int, open_last_line: bool) -> tuple[np.ndarray, np.ndarray]:
    ends = np.append(newlines, n_bytes) if open_last_line else newlines
    starts = np.empty_like(ends)
    if len(ends):
        starts[0] = 0
        np.add(ends[:-1], 1, out=starts[1:])
    return starts, ends


_LOW7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_NEWLINES = np.uint64(0x0A0A0A0A0A0A0A0A)


@njit(cache=True)
def _newlines(buf):  # pragma: no cover - compiled
    """Offsets of the newline bytes of ``buf``, ascending."""
    n = len(buf)
    found = np.empty(n // 64 + 1024, np.int64)  # ~1 line per 64 bytes; doubled when short
    k = 0
    p = 0
    while p <= n - 8:  # whole words (a fixed 8 loads: compiled into one)
        w = np.uint64(0)
        for r in range(8):
            w |= np.uint64(buf[_u(p + r)]) << np.uint64(8 * r)
        x = w ^ _NEWLINES
        t = ~(((x & _LOW7) + _LOW7) | x | _LOW7)  # the high bit of each newline byte, exactly (no carry crosses a byte)
        while t:
            if k == len(found):
                found = _grown(found, k)
            found[k] = p + (np.int64(trailing_zeros(t)) >> 3)
            k += 1
            t &= t - np.uint64(1)
        p += 8
    while p < n:  # the tail, byte by byte
        if buf[_u(p)] == 10:
            if k == len(found):
                found = _grown(found, k)
            found[k] = p
            k += 1
        p += 1
    return found[:k].copy()


@njit(cache=True)
def _grown(found, k):  # pragma: no cover - compiled
    bigger = np.empty(2 * len(found), np.int64)
    bigger[:k] = found[:k]
    return bigger
