"""Streaming detectors over the fused numba kernel (:mod:`brain.kernels.detector`).

Two faces of the same model, in River's style:

* :class:`SeasonalDetector` — one series, one point at a time: ``score_one(timestamp, value)``.
* :class:`BatchDetector` — many series at once for the streaming path:
  ``score_many(keys, ts_ms, values)`` over dense integer keys, learning as it scores.
"""
from __future__ import annotations

import datetime as _dt
import io
import math
import time

import numba
import numpy as np

from brain.kernels import detector as _k

_MAGIC = b"CBAD1\n"
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


def _step_entry():
    """The compiled :func:`brain.kernels.detector.detector_step` for its one signature.

    Calling a numba dispatcher types its arguments on every call (~0.6 us for two arrays); the
    compiled overload's entry point skips that, which is most of the cost of one point at a time.
    Falls back to the dispatcher if numba does not expose it.
    """
    global _STEP
    if _STEP is None:
        S, SEA = _k.detector_state(1)
        args = (S, SEA, 0, 0, 1.0)
        _k.detector_step(*args)
        try:
            _STEP = _k.detector_step.overloads[tuple(numba.typeof(a) for a in args)].entry_point
        except (AttributeError, KeyError):  # another numba: the dispatcher is still correct
            _STEP = _k.detector_step
    return _STEP


_STEP = None

#: state columns of snapshots written before brain.kernels.surprise (restored with fresh new columns)
_OLD_N_COLS = 21
#: the most keys a BatchDetector allocates (~3.5 kB each): a guard against sparse ids
MAX_KEYS = 5_000_000


class SeasonalDetector:
    """Univariate streaming anomaly detector that learns as it scores; no per-series parameters.

    Model: robust level + hour-of-week/hour-of-day seasonal profile + robust noise scale, with four
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

    Example:
        >>> det = SeasonalDetector()
        >>> scores = [det.score_one(60.0 * i, 20.0 + (i % 5)) for i in range(200)]
        >>> max(scores) < 0.999
        True
        >>> det.score_one(60.0 * 200, 90.0) > 0.999        # a spike
        True
        >>> det.last_reason
        'spike'
        >>> calm = [det.score_one(60.0 * (201 + i), 20.0 + (i % 5)) for i in range(100)]
        >>> shifted = [det.score_one(60.0 * (301 + i), 32.0 + (i % 5)) for i in range(30)]
        >>> sum(s >= 0.999 for s in shifted)                 # a level shift is paged once
        1
    """

    __slots__ = ("_S", "_SEA", "_PD", "_last", "_peered", "_step")  # faster attributes, ~300 B per detector

    def __init__(self) -> None:
        self._S, self._SEA = _k.detector_state(1)
        self._PD = _k.peer_drift_state(1)
        self._last = (0.0, math.nan, 0.0, _k.REASON_NONE, 0.0)
        self._peered = False  # once a peer was given, every point takes the peer path
        self._step = _step_entry()

    def score_one(self, timestamp, value, peer=None) -> float:
        """Score ``value`` at ``timestamp`` against what was learned so far, then learn it.

        ``peer``: optionally, what a reference sees of the same quantity at the same time (e.g. the
        speed its segment's probes report): once a series has had peers, its drift statistic is a
        slow ramp in ``log(value / peer)`` (a failing sensor) rather than its departure from its own
        past (which a real change of the city also produces). None or NaN: no peer this time.
        """
        if type(value) is not float:
            value = _to_value(value)
        # the common case first, with no call it can do without: one point costs ~1 us in all
        if type(timestamp) is float and -_MAX_S < timestamp < _MAX_S:
            ts_ms = round(timestamp * 1000.0)
        else:
            ts_ms = _to_ms(timestamp)
        if peer is None and not self._peered:
            self._last = last = self._step(self._S, self._SEA, 0, ts_ms, value)
        else:
            # (the peer path without any peer learned yet is the plain path: same scores)
            self._peered = True
            self._last = last = _k.detector_step_peer(self._S, self._SEA, self._PD, 0, ts_ms, value, _to_value(peer))
        return last[0]

    @property
    def last_expected(self) -> float:
        """The baseline the last value was compared to (NaN for a missing value)."""
        return self._last[1]

    @property
    def last_z(self) -> float:
        """The last value's calibrated standardised residual."""
        return self._last[2]

    @property
    def last_ongoing(self) -> float:
        """The last point's confidence that it is part of an anomaly, news or not (the score before
        onset suppression: what a rule that must *hold* for a while, e.g. ``for: 15m``, reads)."""
        return self._last[4]

    @property
    def last_reason(self) -> str:
        """Which statistic dominated the last score: none, spike, level_shift, flatline, drift, missing."""
        return _k.REASONS[self._last[3]]

    def learn_one(self, timestamp, value) -> "SeasonalDetector":
        """Learn a point without using its score (e.g. to warm up on history)."""
        self.score_one(timestamp, value)
        return self

    @property
    def n_seen(self) -> int:
        """Finite points learned so far."""
        return int(self._S[0, _k.C_N])


class BatchDetector:
    """The same detector for many keys at once: one numba pass per micro-batch, state grown as needed.

    Keys are dense integer ids ``0..n-1`` (the caller maps sensor/metric names to ids and keeps
    the mapping stable); each key has its own state. ``score_many`` scores every point against its
    key's state, then learns it, in array order (several points of one key in a batch are fine).
    ``snapshot()`` / ``restore()`` save and load the whole state as bytes (checkpointing).
    ``peers`` (optional, aligned with ``values``; NaN where there is none) gives each point a peer
    reference of the same quantity: see :meth:`SeasonalDetector.score_one`.

    Parameters:
        n_keys_hint: initial number of keys to allocate (grows automatically; ~3.5 kB per key).

    Example:
        >>> import numpy as np
        >>> det = BatchDetector(n_keys_hint=2)
        >>> keys = np.array([0, 1] * 50, dtype=np.int64)
        >>> ts = np.repeat(np.arange(50, dtype=np.int64) * 60_000, 2)
        >>> vals = np.where(keys == 0, 10.0, 500.0) + np.tile([0.0, 1.0, -1.0, 0.5, -0.5], 20)
        >>> scores = det.score_many(keys, ts, vals)
        >>> bool(scores.max() < 0.999)
        True
        >>> res = det.explain_many(np.array([1]), np.array([3_000_000]), np.array([900.0]))
        >>> bool(res["score"][0] > 0.999), res["reason"][0], round(float(res["expected"][0]))
        (True, 'spike', 500)
    """

    def __init__(self, n_keys_hint: int = 1024) -> None:
        if isinstance(n_keys_hint, bool) or not isinstance(n_keys_hint, (int, np.integer)) or n_keys_hint < 1:
            raise ValueError(f"n_keys_hint must be a positive integer, got {n_keys_hint!r}")
        self._S, self._SEA = _k.detector_state(int(n_keys_hint))
        self._PD = _k.peer_drift_state(int(n_keys_hint))

    @property
    def n_keys(self) -> int:
        """Number of keys with allocated state."""
        return self._S.shape[0]

    def _prepare(self, keys, ts_ms, values, peers=None):
        keys = np.ascontiguousarray(keys, dtype=np.int64)
        ts_ms = np.ascontiguousarray(ts_ms, dtype=np.int64)
        values = np.ascontiguousarray(values, dtype=np.float64)
        if not (keys.ndim == ts_ms.ndim == values.ndim == 1) or not (keys.size == ts_ms.size == values.size):
            raise ValueError(
                f"keys, ts_ms and values must be 1-D arrays of one length, got shapes {keys.shape}, {ts_ms.shape}, {values.shape}"
            )
        if peers is not None:
            peers = np.ascontiguousarray(peers, dtype=np.float64)
            if peers.shape != values.shape:
                raise ValueError(f"peers must be aligned with values, got shapes {peers.shape} and {values.shape}")
        if keys.size:
            lo, hi = int(keys.min()), int(keys.max())
            if lo < 0:
                raise ValueError(f"keys must be non-negative dense ids, got {lo}")
            if hi >= self._S.shape[0]:
                if hi >= MAX_KEYS:
                    raise ValueError(
                        f"key {hi} is too large: keys must be dense ids 0..n-1 (at most {MAX_KEYS:,}); "
                        "map names to ids first (see KeyedDetector)"
                    )
                self._grow(hi + 1)
        return keys, ts_ms, values, peers

    def _grow(self, n: int) -> None:
        new = max(n, 2 * self._S.shape[0])
        S, SEA = _k.detector_state(new)
        PD = _k.peer_drift_state(new)
        old = self._S.shape[0]
        S[:old] = self._S
        SEA[:old] = self._SEA
        PD[:old] = self._PD
        self._S, self._SEA, self._PD = S, SEA, PD

    def score_many(self, keys, ts_ms, values, peers=None) -> np.ndarray:
        """Scores in ``[0, 1]`` for each point (int64 keys, int64 event time ms, float64 values)."""
        keys, ts_ms, values, peers = self._prepare(keys, ts_ms, values, peers)
        if peers is None:
            return _k.detector_scores(keys, ts_ms, values, self._S, self._SEA, np.empty(keys.size))
        return _k.detector_scores_peer(keys, ts_ms, values, peers, self._S, self._SEA, self._PD, np.empty(keys.size))

    def learn_many(self, keys, ts_ms, values, peers=None) -> "BatchDetector":
        """Learn points without using their scores."""
        self.score_many(keys, ts_ms, values, peers)
        return self

    def explain_many(self, keys, ts_ms, values, peers=None) -> dict[str, np.ndarray]:
        """Like :meth:`score_many`, with what explains each score.

        Returns ``score``, ``expected`` (the baseline the value was compared to), ``z`` (calibrated
        standardised residual), ``reason`` (which statistic dominated: none, spike, level_shift,
        flatline, drift, missing) and ``ongoing`` (the confidence that the point is part of an
        anomaly, news or not: see :attr:`SeasonalDetector.last_ongoing`), each aligned with the input.
        """
        keys, ts_ms, values, peers = self._prepare(keys, ts_ms, values, peers)
        if peers is None:
            score, expected, z, reason, ongoing = _k.detector_batch(keys, ts_ms, values, self._S, self._SEA)
        else:
            score, expected, z, reason, ongoing = _k.detector_batch_peer(keys, ts_ms, values, peers, self._S, self._SEA, self._PD)
        return {"score": score, "expected": expected, "z": z, "reason": np.asarray(_k.REASONS, dtype=object)[reason],
                "ongoing": ongoing}

    def snapshot(self) -> bytes:
        """The whole state as bytes (restore with :meth:`restore` or :meth:`from_snapshot`)."""
        buf = io.BytesIO()
        buf.write(_MAGIC)
        np.savez(buf, S=self._S, SEA=self._SEA, PD=self._PD)
        return buf.getvalue()

    def restore(self, data: bytes) -> "BatchDetector":
        """Replace the state with one from :meth:`snapshot`."""
        if not isinstance(data, (bytes, bytearray, memoryview)) or bytes(data[: len(_MAGIC)]) != _MAGIC:
            raise ValueError("not a BatchDetector snapshot (bad header)")
        try:
            with np.load(io.BytesIO(bytes(data[len(_MAGIC):])), allow_pickle=False) as z:
                S, SEA = z["S"], z["SEA"]
                # snapshots from before peer drift have no PD: those keys start without peers
                PD = z["PD"] if "PD" in z.files else _k.peer_drift_state(S.shape[0] if S.ndim == 2 else 0)
        except Exception as exc:  # corrupt zip, missing arrays
            raise ValueError(f"corrupt BatchDetector snapshot: {exc}") from None
        if S.ndim == 2 and S.shape[1] == _OLD_N_COLS:
            # a snapshot from before onset scores and tail calibration: its learned state carries
            # over, the new columns start fresh (no open episode, i.i.d. 95th percentiles)
            fresh, _ = _k.detector_state(S.shape[0])
            fresh[:, :_OLD_N_COLS] = S
            S = fresh
        if (S.ndim != 2 or S.shape[1] != _k.N_COLS or SEA.shape != (S.shape[0], _k.detector_state(1)[1].shape[1])
                or PD.shape != (S.shape[0], _k.PD_COLS)):
            raise ValueError(f"BatchDetector snapshot has incompatible state shapes {S.shape}, {SEA.shape}, {PD.shape}")
        self._S = np.ascontiguousarray(S, dtype=np.float64)
        self._SEA = np.ascontiguousarray(SEA, dtype=np.float64)
        self._PD = np.ascontiguousarray(PD, dtype=np.float64)
        return self

    @classmethod
    def from_snapshot(cls, data: bytes) -> "BatchDetector":
        """A detector restored from :meth:`snapshot` bytes."""
        return cls(1).restore(data)


def default_detector() -> SeasonalDetector:
    """A fresh univariate detector for any metric series; ``score_one(timestamp, value)`` learns as it scores.

    Example:
        >>> det = default_detector()
        >>> round(det.score_one(0.0, 1.0), 3)
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
    _k.detector_batch(keys, ts, x, S, SEA)
    _k.detector_scores(keys, ts, x, S, SEA, np.empty(3))
    _k.detector_step(S, SEA, 0, 180_000, 1.5)
    _k.detector_batch_peer(keys, ts, x, x, S, SEA, PD)
    _k.detector_scores_peer(keys, ts, x, x, S, SEA, PD, np.empty(3))
    _k.detector_step_peer(S, SEA, PD, 0, 240_000, 1.5, 1.4)
    ewma.ewma_batch(keys, ts, x, 60.0, *ewma.ewma_state(1))
    robust.robust_batch(keys, x, 0.05, 3.0, np.zeros(1), np.zeros(1), np.zeros(1))
    seasonal.seasonal_batch(keys, ts, x, 2.0, seasonal.seasonal_state(1), np.zeros(1, dtype=np.int64))
    changepoint.cusum_batch(keys, x, 0.5, 8.0, np.zeros(1), np.zeros(1))
    faults.flatline_batch(keys, x, *faults.flatline_state(1))
    faults.peer_drift_batch(keys, ts, x, faults.peer_drift_state(1))
    return time.perf_counter() - t0
