"""The detector's one-key entry for one point at a time: the whole state of one key in one
contiguous float64 buffer, read by the kernel through its address (no per-call array unboxing).

The buffer holds the scalars, the seasonal row, the peer-drift state (see
:mod:`brain.kernels.detector`), then the last point's outputs (``OUT_*``).

Example:
    >>> import numpy as np
    >>> buf = single_state()
    >>> scores = [detector_step_at(buf.ctypes.data, 60.0 * i, 50.0 + (i % 3)) for i in range(200)]
    >>> spike = detector_step_at(buf.ctypes.data, 60.0 * 200, 90.0)
    >>> bool(spike >= 0.999), REASONS[int(single_views(buf)[3][OUT_REASON])]
    (True, 'spike')
"""
from __future__ import annotations

import numpy as np
from numba import carray, njit, types
from numba.core.extending import intrinsic

import math

from brain.kernels.detector import N_COLS, REASONS, SEA_COLS, _step, detector_state, peer_surprise  # noqa: F401 (REASONS: doctest)
from brain.kernels.faults import PD_COLS, PD_N, peer_drift_state

#: one key's state in one contiguous float64 buffer (:func:`detector_step_at`): the scalars, the
#: seasonal profile, the peer-drift state, then the last point's outputs
OUT_EXPECTED = 0
OUT_Z = 1
OUT_REASON = 2
OUT_ONGOING = 3
N_OUT = 4
SINGLE_LEN = N_COLS + SEA_COLS + PD_COLS + N_OUT
#: timestamps (s) the one-key entry takes; beyond, it returns ``REFUSED`` and changes nothing
#: (int64 ms stay exact below it; the caller raises the error)
MAX_TS_S = 9.0e12
REFUSED = -1.0


def single_state() -> np.ndarray:
    """A fresh one-key buffer for :func:`detector_step_at`; ``single_views`` gives its parts."""
    buf = np.zeros(SINGLE_LEN)
    S, SEA, PD, _ = single_views(buf)
    S[:], SEA[:] = detector_state(1)
    PD[:] = peer_drift_state(1)
    return buf


def single_views(buf: np.ndarray):
    """``(S (1, N_COLS), SEA (1, SEA_COLS), PD (1, PD_COLS), out (N_OUT,))`` views of a one-key buffer."""
    a, b, c = N_COLS, N_COLS + SEA_COLS, N_COLS + SEA_COLS + PD_COLS
    return buf[:a].reshape(1, N_COLS), buf[a:b].reshape(1, SEA_COLS), buf[b:c].reshape(1, PD_COLS), buf[c:]


@intrinsic
def _f64_ptr(typingctx, addr):
    # an integer address as a float64 pointer: passing one int instead of numpy arrays saves numba's
    # per-call array unboxing (~0.25 us of the ~0.6 us a point costs one at a time)
    sig = types.CPointer(types.float64)(types.int64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(types.CPointer(types.float64)))

    return sig, codegen


@njit(cache=True)
def detector_step_at(addr, ts_s, x):
    """Score then learn one point of the one-key buffer at address ``addr`` (``buf.ctypes.data`` of
    :func:`single_state`; the caller keeps ``buf`` alive). ``ts_s``: seconds since the epoch,
    rounded to ms as Python's ``round`` does. Returns the score; the other outputs are written to the
    buffer's ``out`` part (:func:`single_views`). A timestamp that is not finite or not within
    ``MAX_TS_S`` of the epoch returns ``REFUSED`` and changes nothing. A key that has learned a
    peer reference (:func:`brain.kernels.detector.detector_step_peer`) keeps its peer-drift
    statistic here too, as with a missing peer: the checks live here, not in the caller, because
    each Python-side test costs ~10-20 % of a point one at a time."""
    if not (-MAX_TS_S < ts_s < MAX_TS_S):
        return REFUSED
    S = carray(_f64_ptr(addr), (1, N_COLS))
    SEA = carray(_f64_ptr(addr + 8 * N_COLS), (1, SEA_COLS))
    out = carray(_f64_ptr(addr + 8 * (N_COLS + SEA_COLS + PD_COLS)), (N_OUT,))
    ts_ms = np.int64(np.rint(ts_s * 1000.0))
    s_peer = -1.0
    if math.isfinite(x):
        PD = carray(_f64_ptr(addr + 8 * (N_COLS + SEA_COLS)), (1, PD_COLS))
        if PD[0, PD_N] != 0.0:
            s_peer = peer_surprise(PD, 0, x, math.nan, ts_ms)
    score, expected, z, reason, ongoing = _step(S, SEA, 0, ts_ms, x, s_peer)
    out[OUT_EXPECTED] = expected
    out[OUT_Z] = z
    out[OUT_REASON] = reason
    out[OUT_ONGOING] = ongoing
    return score
