"""Piecewise-linear index scores (the IAQI of HJ 633 and similar tables) of many values in one pass.

``piecewise_linear`` is the numba kernel; ``piecewise_linear_reference`` is the numpy formulation it
replaces (:func:`brain.vitals.air._score` before), which the tests compare it with bit for bit.
Breakpoints ``bp`` (ascending) map to index values ``iq``; segment k spans ``(bp[k], bp[k+1]]`` with
slope ``slope[k]`` (``diff(iq) / diff(bp)``), so a value on a breakpoint scores the same on both
sides; below the first breakpoint the first segment extends. Above the last breakpoint the score is
``iq[-1]`` (``cap``) or NaN (the table says another row scores it). NaN stays NaN. With ``ceil``
the score is rounded up (less a 1e-9 tolerance, so that 100.0000000001 from float error stays 100).

Example: NO2 1-h breakpoints 0, 100, 200, 700 µg/m³ -> IAQI 0, 50, 100, 150; 250 µg/m³ -> 105:
    >>> import numpy as np
    >>> bp, iq = np.array([0.0, 100.0, 200.0, 700.0]), np.array([0.0, 50.0, 100.0, 150.0])
    >>> piecewise_linear(np.array([250.0, 100.0, np.nan, 900.0]), bp, iq, np.diff(iq) / np.diff(bp), True, True).tolist()
    [105.0, 50.0, nan, 150.0]
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def piecewise_linear(c, bp, iq, slope, cap, ceil):  # pragma: no cover - compiled
    n_bp = bp.shape[0]
    top = bp[n_bp - 1]
    out = np.empty(c.shape[0])
    for i in range(c.shape[0]):
        x = c[i]
        # np.searchsorted(bp, x, "left") - 1, clipped to the segments (NaN: any segment, the result is NaN)
        lo = 0
        while lo + 1 < n_bp - 1 and bp[lo + 1] < x:
            lo += 1
        val = slope[lo] * (x - bp[lo]) + iq[lo]
        if x > top:
            val = iq[n_bp - 1] if cap else np.nan
        if ceil:
            val = np.ceil(val - 1e-9) + 0.0  # + 0.0 turns -0.0 into 0.0
        out[i] = val
    return out


def piecewise_linear_reference(c, bp, iq, slope, cap: bool, ceil: bool) -> np.ndarray:
    """The numpy formulation (the kernel's plain twin)."""
    lo = np.minimum(np.maximum(np.searchsorted(bp, c, side="left") - 1, 0), len(bp) - 2)
    with np.errstate(invalid="ignore"):
        val = slope[lo] * (c - bp[lo]) + iq[lo]
        above = c > bp[-1]
    val = np.where(above, iq[-1] if cap else np.nan, val)
    if ceil:
        val = np.ceil(val - 1e-9) + 0.0  # + 0.0 turns -0.0 into 0.0
    return val


def warm_up() -> None:
    """Compile the kernel on tiny arrays."""
    two = np.array([0.0, 1.0])
    piecewise_linear(np.zeros(1), two, two, np.ones(1), True, True)
