"""Streaming detectors over the fused numba kernel (:mod:`brain.kernels.detector`).

Two faces of the same model, with the verbs of :mod:`brain.anomaly.base` (River's style: scoring
never changes state; the fused pass that scores then learns says so in its name):

* :class:`SeasonalDetector` — one series, one point at a time: ``score_learn_one(timestamp, value)``.
* :class:`BatchDetector` — many series at once for the streaming path:
  ``score_learn_many(keys, ts_ms, values)`` over dense integer keys (:mod:`brain.anomaly.batch_detector`,
  re-exported here).
"""
from __future__ import annotations

import datetime as _dt
import math
import time

import numba
import numpy as np

from brain.anomaly.batch_detector import MAX_KEYS, BatchDetector  # noqa: F401 (re-exported: the batch face)
from brain.kernels import detector as _k
from brain.kernels import detector_batch as _kb
from brain.kernels import detector_single as _ks

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def _to_ms(timestamp) -> int:
    """Seconds since the Unix epoch (int/float) or a datetime (naive = UTC) -> integer ms."""
    if type(timestamp) is float and math.isfinite(timestamp):  # the common case, first
        return int(round(timestamp * 1000.0))
    if isinstance(timestamp, _dt.datetime):
        if timestamp.tzinfo is None:
            timestamp = timestamp.replace(tzinfo=_dt.timezone.utc)
        return int(round((timestamp - _EPOCH).total_seconds() * 1000.0))
    if isinstance(timestamp, (int, float, np.integer, np.floating)) and not isinstance(timestamp, bool):
        t = float(timestamp)
        if not math.isfinite(t):
            raise ValueError(f"timestamp must be finite, got {timestamp!r}")
        return int(round(t * 1000.0))
    raise TypeError(f"timestamp must be seconds since the epoch (int/float) or a datetime, got {type(timestamp).__name__}")


def _to_value(value) -> float:
    """A reading as float; None (no reading) is a missing value."""
    if value is None:
        return math.nan
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"value must be a number or None, got {type(value).__name__}")


#: timestamps beyond this many seconds from the epoch are refused (int64 ms stay exact below it)
_MAX_S = 9.0e12


def _entry(dispatcher, args):
    """The compiled overload of ``dispatcher`` for ``args``' types, called without numba's per-call
    argument typing (most of the cost of one point at a time); the dispatcher if numba hides it."""
    dispatcher(*args)
    try:
        return dispatcher.overloads[tuple(numba.typeof(a) for a in args)].entry_point
    except (AttributeError, KeyError):  # another numba: the dispatcher is still correct
        return dispatcher


_STEP_AT = None


def _step_at():
    global _STEP_AT
    if _STEP_AT is None:
        buf = _ks.single_state()
        _STEP_AT = _entry(_ks.detector_step_at, (buf.ctypes.data, 0.0, 1.0))
    return _STEP_AT


class SeasonalDetector:
    """Univariate streaming anomaly detector; no per-series parameters.

    Model: robust level + hour-of-week/hour-of-day seasonal profile + robust noise scale (at least
    the key's usual noise at this hour of the day), with four
    statistics (spike/dip, CUSUM level shift, flatline, drift) and missing values (NaN), each
    calibrated on the key's own past (heavy tails, bursts), combined into a score in ``[0, 1)``:
    the confidence that an anomaly *starts or is still news* at this point. An episode (a level
    shift, an outage, a drift) scores high at its onset and then decays unless its evidence grows
    materially; :attr:`last_ongoing` keeps the evidence itself while the episode lasts. Scores are
    a strictly increasing map of the evidence (no saturation at 1.0) and calibrated per point:
    about one clean point in a thousand scores ``>= 0.999``, fewer while the detector is young.
    **Set the threshold at 0.999** (one false page per ~1,000 clean points per series; 0.9999 for
    ten times fewer). The first ``WARMUP_N`` = 10 points score 0. ``timestamp`` is seconds since the
    Unix epoch or a ``datetime``; sampling may be irregular; out-of-order points are learned
    without moving the clock back. :func:`brain.anomaly.default_detector` returns a fresh one.

    The verbs are those of :mod:`brain.anomaly.base`: :meth:`score_one` never changes state,
    :meth:`learn_one` learns, :meth:`score_learn_one` does both in one pass (the streaming path,
    > 1 M points per CPU-second); ``*_many`` do the same over arrays of one series.

    Example:
        >>> det = SeasonalDetector()
        >>> scores = [det.score_learn_one(60.0 * i, 20.0 + (i % 5)) for i in range(200)]
        >>> max(scores) < 0.999
        True
        >>> det.score_one(60.0 * 200, 90.0) > 0.999            # would be a spike; nothing learned
        True
        >>> det.n_seen
        200
        >>> det.score_learn_one(60.0 * 200, 90.0) > 0.999      # a spike, now learned
        True
        >>> det.last_reason
        'spike'
        >>> calm = [det.score_learn_one(60.0 * (201 + i), 20.0 + (i % 5)) for i in range(100)]
        >>> shifted = [det.score_learn_one(60.0 * (301 + i), 32.0 + (i % 5)) for i in range(30)]
        >>> sum(s >= 0.999 for s in shifted)                 # a level shift is paged once
        1
    """

    learns_online = True
    # faster attribute access; the state is one float64 buffer (~3.9 kB) and views of it
    __slots__ = ("_buf", "_addr", "_S", "_SEA", "_PD", "_out", "_peered", "_step")

    def __init__(self) -> None:
        self._set_buffer(_ks.single_state())
        self._peered = False  # once a peer was given, every point takes the peer path
        self._step = _step_at()

    def _set_buffer(self, buf: np.ndarray) -> None:
        self._buf = buf
        self._addr = buf.ctypes.data  # the kernel reads the state through this address: buf stays referenced
        self._S, self._SEA, self._PD, self._out = _ks.single_views(buf)

    def score_learn_one(self, timestamp, value, peer=None) -> float:
        """Score ``value`` at ``timestamp`` against what was learned so far, then learn it.

        ``peer``: optionally, what a reference sees of the same quantity at the same time (e.g. the
        speed its segment's probes report): once a series has had peers, its drift statistic is a
        slow ramp in ``log(value / peer)`` (a failing sensor) rather than its departure from its own
        past (which a real change of the city also produces). None or NaN: no peer this time.
        """
        # the common case with no test it can do without (one point costs ~0.45 us in all): the
        # kernel refuses a timestamp out of range (REFUSED, nothing learned: the slow path then
        # raises) and keeps a peered key's peer statistic itself
        if peer is None and type(value) is float:
            try:  # a timestamp that is not a number (a datetime) raises here, with nothing learned
                score = self._step(self._addr, timestamp, value)
            except TypeError:
                score = _ks.REFUSED
            if score >= 0.0:
                return score
        return self._point(self._buf, timestamp, value, peer)

    def _point(self, buf, timestamp, value, peer) -> float:
        value = _to_value(value)
        ts_ms = _to_ms(timestamp)
        if abs(ts_ms) >= _MAX_S * 1000:
            raise ValueError(f"timestamp must be within {_MAX_S:.0e} s of the epoch, got {timestamp!r}")
        if peer is None:  # (the one-key entry keeps a peered key's peer statistic)
            return self._step(buf.ctypes.data, ts_ms / 1000.0, value)
        # (the peer path without any peer learned yet is the plain path: same scores)
        if buf is self._buf:
            self._peered = True
        S, SEA, PD, out = _ks.single_views(buf)
        score, out[_ks.OUT_EXPECTED], out[_ks.OUT_Z], out[_ks.OUT_REASON], out[_ks.OUT_ONGOING] = _k.detector_step_peer(
            S, SEA, PD, 0, ts_ms, value, _to_value(peer))
        return score

    def learn_one(self, timestamp, value, peer=None) -> "SeasonalDetector":
        """Learn a point (e.g. to warm up on history); returns the detector."""
        self.score_learn_one(timestamp, value, peer)
        return self

    def score_one(self, timestamp, value, peer=None) -> float:
        """The score ``value`` at ``timestamp`` would get; nothing is learned (:meth:`explain_one`: why)."""
        return self._point(self._buf.copy(), timestamp, value, peer)

    def explain_one(self, timestamp, value, peer=None) -> dict:
        """What :meth:`score_one` would answer, with ``expected``, ``z``, ``reason`` and ``ongoing``."""
        buf = self._buf.copy()
        score = self._point(buf, timestamp, value, peer)
        out = _ks.single_views(buf)[3]
        return {"score": score, "expected": float(out[_ks.OUT_EXPECTED]), "z": float(out[_ks.OUT_Z]),
                "reason": _k.REASONS[int(out[_ks.OUT_REASON])], "ongoing": float(out[_ks.OUT_ONGOING])}

    def _arrays(self, ts_s, values):
        ts = np.asarray(ts_s, dtype=np.float64)
        values = np.ascontiguousarray(values, dtype=np.float64)
        if ts.ndim != 1 or ts.shape != values.shape:
            raise ValueError(f"ts_s and values must be 1-D arrays of one length, got shapes {ts.shape} and {values.shape}")
        if ts.size and not (np.isfinite(ts).all() and np.abs(ts).max() < _MAX_S):
            raise ValueError(f"timestamps must be finite seconds within {_MAX_S:.0e} s of the epoch")
        return np.rint(ts * 1000.0).astype(np.int64), values

    def _many(self, buf, ts_s, values) -> np.ndarray:
        ts_ms, values = self._arrays(ts_s, values)
        if self._peered:
            return np.array([self._point(buf, t / 1000.0, v, math.nan) for t, v in zip(ts_ms.tolist(), values.tolist())])
        S, SEA, _, _ = _ks.single_views(buf)
        return _kb.detector_scores(np.zeros(ts_ms.size, dtype=np.int64), ts_ms, values, S, SEA, np.empty(ts_ms.size))

    def score_learn_many(self, ts_s, values) -> np.ndarray:
        """:meth:`score_learn_one` over arrays of seconds since the epoch and values, in one pass."""
        return self._many(self._buf, ts_s, values)

    def learn_many(self, ts_s, values) -> "SeasonalDetector":
        """Learn arrays of points; returns the detector."""
        self._many(self._buf, ts_s, values)
        return self

    def score_many(self, ts_s, values) -> np.ndarray:
        """What :meth:`score_learn_many` would answer (each point against the state now and the
        points before it in the arrays), without learning anything."""
        return self._many(self._buf.copy(), ts_s, values)

    @property
    def last_expected(self) -> float:
        """The baseline the last learned value was compared to (NaN for a missing value)."""
        return float(self._out[_ks.OUT_EXPECTED])

    @property
    def last_z(self) -> float:
        """The last learned value's calibrated standardised residual."""
        return float(self._out[_ks.OUT_Z])

    @property
    def last_ongoing(self) -> float:
        """The last learned point's confidence that it is part of an anomaly, news or not (the score
        before onset suppression: what a rule that must *hold* for a while, e.g. ``for: 15m``, reads)."""
        return float(self._out[_ks.OUT_ONGOING])

    @property
    def last_reason(self) -> str:
        """Which statistic dominated the last learned point: none, spike, level_shift, flatline, drift, missing."""
        return _k.REASONS[int(self._out[_ks.OUT_REASON])]

    @property
    def n_seen(self) -> int:
        """Finite points learned so far."""
        return int(self._S[0, _k.C_N])


def default_detector() -> SeasonalDetector:
    """A fresh univariate detector for any metric series; ``score_learn_one(timestamp, value)`` scores
    then learns each point (threshold 0.999, see :class:`SeasonalDetector`).

    Example:
        >>> det = default_detector()
        >>> round(det.score_learn_one(0.0, 1.0), 3)
        0.0
    """
    return SeasonalDetector()


def warm_up() -> float:
    """Compile (or load from the numba cache) every anomaly kernel on tiny arrays; returns seconds taken.

    Call at start-up so no compile time lands in the first window.
    """
    from brain.kernels import changepoint, ewma, faults, robust, seasonal

    t0 = time.perf_counter()
    keys = np.zeros(3, dtype=np.int64)
    ts = np.array([0, 60_000, 120_000], dtype=np.int64)
    x = np.array([1.0, 2.0, np.nan])
    S, SEA = _k.detector_state(1)
    PD = _k.peer_drift_state(1)
    _kb.detector_batch(keys, ts, x, S, SEA)
    _kb.detector_scores(keys, ts, x, S, SEA, np.empty(3))
    _k.detector_step(S, SEA, 0, 180_000, 1.5)
    _step_at()
    _kb.detector_batch_peer(keys, ts, x, x, S, SEA, PD)
    _kb.detector_scores_peer(keys, ts, x, x, S, SEA, PD, np.empty(3))
    _k.detector_step_peer(S, SEA, PD, 0, 240_000, 1.5, 1.4)
    ewma.ewma_batch(keys, ts, x, 60.0, *ewma.ewma_state(1))
    robust.robust_batch(keys, x, 0.05, 3.0, np.zeros(1), np.zeros(1), np.zeros(1))
    seasonal.seasonal_batch(keys, ts, x, 2.0, seasonal.seasonal_state(1), np.zeros(1, dtype=np.int64))
    changepoint.cusum_batch(keys, x, 0.5, 8.0, np.zeros(1), np.zeros(1))
    faults.flatline_batch(keys, x, *faults.flatline_state(1))
    faults.peer_drift_batch(keys, ts, x, faults.peer_drift_state(1))
    return time.perf_counter() - t0
