"""Many points of many keys in one numba pass: the batch loops over :mod:`brain.kernels.detector`.

Keys are dense integer ids indexing rows of the state arrays of
:func:`brain.kernels.detector.detector_state` (the caller grows them; no bounds check here).
Points are scored then learned in array order, so several points of one key in a batch are fine.
:func:`detector_batch_ref` is the plain-Python reference the tests compare against.

Example:
    >>> import numpy as np
    >>> from brain.kernels.detector import detector_state, REASON_SPIKE
    >>> S, SEA = detector_state(2)
    >>> keys = np.array([0, 1] * 150, dtype=np.int64)
    >>> t = np.repeat(np.arange(150, dtype=np.int64) * 60_000, 2)
    >>> x = np.where(keys == 0, 10.0, 500.0) + np.sin(np.arange(300) / 5.0)
    >>> x[-1] = 900.0                                          # key 1 spikes at its last point
    >>> score, expected, z, reason, ongoing = detector_batch(keys, t, x, S, SEA)
    >>> int(np.argmax(score)), int(reason[-1]) == REASON_SPIKE, round(float(expected[-1]))
    (299, True, 500)
    >>> ref = detector_batch_ref(keys, t, x)
    >>> bool(np.allclose(ref[0], score))
    True
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from brain.kernels.detector import (
    C_HILL,
    C_Q,
    C_QD,
    C_QF,
    C_QLO,
    C_QDLO,
    C_QFLO,
    C_QS,
    C_QSLO,
    C_QUANT,
    N_COLS,
    SEA_COLS,
    detector_step,
    detector_step_peer,
)
from brain.kernels.detector_ref import detector_step_ref
from brain.kernels.faults import (
    PD_N,
    peer_drift_learn_ref,
    peer_drift_pvalue_ref,
    peer_drift_state,
    peer_drift_z_ref,
)
from brain.kernels.surprise import HILL0, QLO_S, Q_S, surprise_ref


@njit(cache=True)
def detector_batch(keys, ts_ms, values, S, SEA):
    """Score and learn each point in order. Returns ``(score, expected, z, reason)`` arrays.

    ``keys`` must index rows of ``S``/``SEA`` (the caller grows them; no bounds check here).
    """
    n = keys.shape[0]
    score = np.empty(n)
    expected = np.empty(n)
    z = np.empty(n)
    reason = np.empty(n, dtype=np.int8)
    ongoing = np.empty(n)
    for i in range(n):
        s, e, zz, r, o = detector_step(S, SEA, keys[i], ts_ms[i], values[i])
        score[i] = s
        ongoing[i] = o
        expected[i] = e
        z[i] = zz
        reason[i] = r
    return score, expected, z, reason, ongoing


@njit(cache=True)
def detector_scores(keys, ts_ms, values, S, SEA, out):
    """Like :func:`detector_batch` but writes only the scores into ``out`` (the fast path)."""
    for i in range(keys.shape[0]):
        out[i] = detector_step(S, SEA, keys[i], ts_ms[i], values[i])[0]
    return out


@njit(cache=True)
def detector_batch_peer(keys, ts_ms, values, peers, S, SEA, PD):
    """:func:`detector_batch` with a peer reference per point (:func:`detector_step_peer`; NaN = none)."""
    n = keys.shape[0]
    score = np.empty(n)
    expected = np.empty(n)
    z = np.empty(n)
    reason = np.empty(n, dtype=np.int8)
    ongoing = np.empty(n)
    for i in range(n):
        s, e, zz, r, o = detector_step_peer(S, SEA, PD, keys[i], ts_ms[i], values[i], peers[i])
        score[i] = s
        ongoing[i] = o
        expected[i] = e
        z[i] = zz
        reason[i] = r
    return score, expected, z, reason, ongoing


@njit(cache=True)
def detector_scores_peer(keys, ts_ms, values, peers, S, SEA, PD, out):
    """Like :func:`detector_batch_peer` but writes only the scores into ``out``."""
    for i in range(keys.shape[0]):
        out[i] = detector_step_peer(S, SEA, PD, keys[i], ts_ms[i], values[i], peers[i])[0]
    return out


def detector_batch_ref(keys, ts_ms, values, state=None, peers=None):
    """Plain-Python reference of :func:`detector_batch` (``peers`` given: of :func:`detector_batch_peer`;
    state: dict key -> (row, seasonal row, peer-drift row))."""
    st = {} if state is None else state
    out_s, out_e, out_z, out_r, out_o = [], [], [], [], []
    peer_list = [None] * len(keys) if peers is None else peers.tolist()
    for k, t, x, peer in zip(keys.tolist(), ts_ms.tolist(), values.tolist(), peer_list):
        if k not in st:
            row = [0.0] * N_COLS
            row[C_Q] = row[C_QS] = row[C_QF] = row[C_QD] = Q_S
            row[C_QLO] = row[C_QSLO] = row[C_QFLO] = row[C_QDLO] = QLO_S
            row[C_QUANT] = math.inf
            row[C_HILL] = HILL0
            st[k] = (row, [0.0] * SEA_COLS, peer_drift_state(1)[0].tolist())
        row, sea, pd_row = st[k]
        s_peer = -1.0
        if peer is not None and math.isfinite(x):
            if math.isfinite(peer) and x > 0 and peer > 0:
                peer_drift_learn_ref(pd_row, t, math.log(x / peer))
            if pd_row[PD_N] != 0.0:
                s_peer = surprise_ref(peer_drift_pvalue_ref(*peer_drift_z_ref(pd_row)))
        s, e, z, r, o = detector_step_ref(row, sea, t, x, s_peer)
        out_o.append(o)
        out_s.append(s)
        out_e.append(e)
        out_z.append(z)
        out_r.append(r)
    return np.array(out_s), np.array(out_e), np.array(out_z), np.array(out_r, dtype=np.int8), np.array(out_o)
