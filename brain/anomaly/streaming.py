"""Streaming detectors over the fused numba kernel (:mod:`brain.kernels.detector`).

Two faces of the same model, with the verbs of :mod:`brain.anomaly.base` (River's style: scoring
never changes state; the fused pass that scores then learns says so in its name):

* :class:`SeasonalDetector` — one series, one point at a time: ``score_learn_one(timestamp, value)``.
* :class:`BatchDetector` — many series at once for the streaming path:
  ``score_learn_many(keys, ts_ms, values)`` over dense integer keys.
"""
from __future__ import annotations

import datetime as _dt
import io
import math
import time

import numba
import numpy as np

from brain.anomaly.snapshot import SnapshotFormatError, pack_arrays, unpack_arrays
from brain.kernels import detector as _k
from brain.kernels import detector_batch as _kb
from brain.kernels import detector_single as _ks

_MAGIC = b"CBAD1\n"  # the npz format of full arrays (read only)
_FORMAT = "BatchDetector/2"  # rows of keys seen, sparse peer-drift rows, in brain.checkpoint's format
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


#: state columns of snapshots written before brain.kernels.surprise (restored with fresh new columns)
_OLD_N_COLS = 21
#: seasonal columns of snapshots written before the hour-of-day noise profile (the hour bins alone)
_OLD_SEA_COLS = _k.NOISE0
#: the most keys a BatchDetector allocates (~3.8 kB each): a guard against sparse ids
MAX_KEYS = 5_000_000


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


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
        # the common case with no call it can do without (one point costs ~0.5 us in all)
        if (peer is None and type(value) is float and (type(timestamp) is float or type(timestamp) is int)
                and not self._peered and -_MAX_S < timestamp < _MAX_S):
            return self._step(self._addr, timestamp, value)
        return self._point(self._buf, timestamp, value, peer)

    def _point(self, buf, timestamp, value, peer) -> float:
        value = _to_value(value)
        ts_ms = _to_ms(timestamp)
        if abs(ts_ms) >= _MAX_S * 1000:
            raise ValueError(f"timestamp must be within {_MAX_S:.0e} s of the epoch, got {timestamp!r}")
        if peer is None and not self._peered:
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


class BatchDetector:
    """The same detector for many keys at once: one numba pass per micro-batch, state grown as needed.

    Keys are dense integer ids ``0..n-1`` (the caller maps sensor/metric names to ids and keeps
    the mapping stable); each key has its own state. The verbs are those of
    :mod:`brain.anomaly.base`: :meth:`score_learn_many` scores every point against its key's state,
    then learns it, in array order (several points of one key in a batch are fine; the streaming
    path); :meth:`score_many` scores without learning; :meth:`learn_many` learns.
    ``snapshot()`` / ``restore()`` save and load the state of the keys seen as bytes (checkpointing).
    ``peers`` (optional, aligned with ``values``; NaN where there is none) gives each point a peer
    reference of the same quantity: see :meth:`SeasonalDetector.score_learn_one`.

    Parameters:
        n_keys_hint: initial number of keys to allocate (grows automatically; ~3.8 kB per key).

    Example:
        >>> import numpy as np
        >>> det = BatchDetector(n_keys_hint=2)
        >>> keys = np.array([0, 1] * 50, dtype=np.int64)
        >>> ts = np.repeat(np.arange(50, dtype=np.int64) * 60_000, 2)
        >>> vals = np.where(keys == 0, 10.0, 500.0) + np.tile([0.0, 1.0, -1.0, 0.5, -0.5], 20)
        >>> scores = det.score_learn_many(keys, ts, vals)
        >>> bool(scores.max() < 0.999)
        True
        >>> res = det.explain_many(np.array([1]), np.array([3_000_000]), np.array([900.0]))
        >>> bool(res["score"][0] > 0.999), res["reason"][0], round(float(res["expected"][0]))
        (True, 'spike', 500)
        >>> BatchDetector(n_keys_hint=0)
        Traceback (most recent call last):
        ...
        ValueError: n_keys_hint must be a positive integer, got 0
    """

    learns_online = True

    def __init__(self, n_keys_hint: int = 1024) -> None:
        n = _positive_int("n_keys_hint", n_keys_hint)
        self._S, self._SEA = _k.detector_state(n)
        self._PD = _k.peer_drift_state(n)
        self._n_used = 0  # keys 0.._n_used-1 have been seen: what a snapshot holds

    @property
    def n_keys(self) -> int:
        """Number of keys with allocated state."""
        return self._S.shape[0]

    def _prepare(self, keys, ts_ms, values, peers=None, grow: bool = True):
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
            if hi >= self._S.shape[0] and grow:
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

    def _run(self, keys, ts_ms, values, peers, S, SEA, PD, explain: bool):
        if explain:
            if peers is None:
                score, expected, z, reason, ongoing = _kb.detector_batch(keys, ts_ms, values, S, SEA)
            else:
                score, expected, z, reason, ongoing = _kb.detector_batch_peer(keys, ts_ms, values, peers, S, SEA, PD)
            return {"score": score, "expected": expected, "z": z, "reason": np.asarray(_k.REASONS, dtype=object)[reason],
                    "ongoing": ongoing}
        if peers is None:
            return _kb.detector_scores(keys, ts_ms, values, S, SEA, np.empty(keys.size))
        return _kb.detector_scores_peer(keys, ts_ms, values, peers, S, SEA, PD, np.empty(keys.size))

    def score_learn_many(self, keys, ts_ms, values, peers=None) -> np.ndarray:
        """Scores in ``[0, 1)`` for each point (int64 keys, int64 event time ms, float64 values), each
        against what its key learned before it; then the points are learned (one pass)."""
        keys, ts_ms, values, peers = self._prepare(keys, ts_ms, values, peers)
        if keys.size:
            self._n_used = max(self._n_used, int(keys.max()) + 1)
        return self._run(keys, ts_ms, values, peers, self._S, self._SEA, self._PD, False)

    def explain_learn_many(self, keys, ts_ms, values, peers=None) -> dict[str, np.ndarray]:
        """:meth:`score_learn_many` with what explains each score.

        Returns ``score``, ``expected`` (the baseline the value was compared to), ``z`` (calibrated
        standardised residual), ``reason`` (which statistic dominated: none, spike, level_shift,
        flatline, drift, missing) and ``ongoing`` (the confidence that the point is part of an
        anomaly, news or not: see :attr:`SeasonalDetector.last_ongoing`), each aligned with the input.
        """
        keys, ts_ms, values, peers = self._prepare(keys, ts_ms, values, peers)
        if keys.size:
            self._n_used = max(self._n_used, int(keys.max()) + 1)
        return self._run(keys, ts_ms, values, peers, self._S, self._SEA, self._PD, True)

    def learn_many(self, keys, ts_ms, values, peers=None) -> "BatchDetector":
        """Learn points; returns the detector."""
        self.score_learn_many(keys, ts_ms, values, peers)
        return self

    def _pure(self, keys, ts_ms, values, peers, explain: bool):
        # the touched keys' rows are copied, so nothing learned here reaches the detector; points of
        # one key are scored in order against its state now plus the batch's earlier points
        keys, ts_ms, values, peers = self._prepare(keys, ts_ms, values, peers, grow=False)
        uniq, local = np.unique(keys, return_inverse=True)
        local = local.astype(np.int64).ravel()
        S, SEA = _k.detector_state(uniq.size)  # keys never seen (beyond the allocation) start fresh
        PD = _k.peer_drift_state(uniq.size)
        have = uniq < self._S.shape[0]
        S[have], SEA[have], PD[have] = self._S[uniq[have]], self._SEA[uniq[have]], self._PD[uniq[have]]
        return self._run(local, ts_ms, values, peers, S, SEA, PD, explain)

    def score_many(self, keys, ts_ms, values, peers=None) -> np.ndarray:
        """What :meth:`score_learn_many` would answer, without learning anything (each key's points in
        the batch are still scored in order, each against the ones before it)."""
        return self._pure(keys, ts_ms, values, peers, False)

    def explain_many(self, keys, ts_ms, values, peers=None) -> dict[str, np.ndarray]:
        """What :meth:`explain_learn_many` would answer, without learning anything."""
        return self._pure(keys, ts_ms, values, peers, True)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The state of the keys seen so far as named arrays (views, not copies): the rows of keys
        seen (not the allocation ahead of them) and only the peer-drift rows of keys that ever had a peer."""
        n = self._n_used
        pd_rows = np.flatnonzero(self._PD[:n, _k.PD_N] != 0.0).astype(np.int64)
        return {"S": self._S[:n], "SEA": self._SEA[:n], "PD_ROWS": pd_rows, "PD": self._PD[pd_rows]}

    def snapshot(self) -> bytes:
        """The state of the keys seen so far as bytes (restore with :meth:`restore` or :meth:`from_snapshot`).

        Compact and columnar (:meth:`state_arrays` as raw arrays behind a small header, written with one
        copy: a 75k-key state is written at memory speed, exactly, float64 as learned).
        """
        return pack_arrays(_FORMAT, {}, self.state_arrays())

    def restore(self, data: bytes) -> "BatchDetector":
        """Replace the state with one from :meth:`snapshot` (also reads the older npz format)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise ValueError("not a BatchDetector snapshot (bad header)")
        old = bytes(data[: len(_MAGIC)]) == _MAGIC
        try:
            if old:  # the npz format before compact snapshots: the whole allocation
                with np.load(io.BytesIO(bytes(data[len(_MAGIC):])), allow_pickle=False) as z:
                    S = z["S"]
                    n = S.shape[0] if S.ndim == 2 else 0
                    # snapshots from before peer drift have no PD: those keys start without peers
                    PD = z["PD"] if "PD" in z.files else _k.peer_drift_state(n)
                    arrays = {"S": S, "SEA": z["SEA"], "PD_ROWS": np.arange(PD.shape[0]), "PD": PD}
            else:
                _, arrays = unpack_arrays(_FORMAT, data)
        except SnapshotFormatError:
            raise ValueError("not a BatchDetector snapshot (bad header)") from None
        except Exception as exc:  # corrupt zip, missing arrays
            raise ValueError(f"corrupt BatchDetector snapshot: {exc}") from None
        self.restore_arrays(arrays)
        if old:  # it held its whole allocation: the keys seen are those with a point
            S = self._S
            seen = np.flatnonzero((S[:, _k.C_N] != 0.0) | (S[:, _k.C_NANRATE] != 0.0))
            self._n_used = int(seen[-1]) + 1 if seen.size else 0
        return self

    def restore_arrays(self, arrays: dict) -> "BatchDetector":
        """Replace the state with :meth:`state_arrays` (e.g. read back from a checkpoint)."""
        try:
            S, SEA, rows = arrays["S"], arrays["SEA"], np.asarray(arrays["PD_ROWS"], dtype=np.int64)
            n = S.shape[0] if S.ndim == 2 else 0
            PD = _k.peer_drift_state(n)
            PD[rows] = arrays["PD"]
        except Exception as exc:  # missing arrays, bad row indexes or shapes
            raise ValueError(f"corrupt BatchDetector snapshot: {exc}") from None
        if S.ndim == 2 and S.shape[1] == _OLD_N_COLS:
            # a snapshot from before onset scores and tail calibration: its learned state carries
            # over, the new columns start fresh (no open episode, i.i.d. 95th percentiles)
            fresh, _ = _k.detector_state(S.shape[0])
            fresh[:, :_OLD_N_COLS] = S
            S = fresh
        if SEA.ndim == 2 and SEA.shape[1] == _OLD_SEA_COLS:
            # a snapshot from before the noise profile: the hour bins carry over; the noise profile
            # starts at 0 (the global noise alone, as before) and learns with the bins' memory
            SEA = np.concatenate([SEA, np.zeros((SEA.shape[0], _k.SEA_COLS - _OLD_SEA_COLS))], axis=1)
        if S.ndim != 2 or S.shape[1] != _k.N_COLS or SEA.shape != (S.shape[0], _k.SEA_COLS):
            raise ValueError(f"BatchDetector snapshot has incompatible state shapes {S.shape}, {SEA.shape}")
        self._n_used = S.shape[0]
        self._S = np.ascontiguousarray(S, dtype=np.float64)
        self._SEA = np.ascontiguousarray(SEA, dtype=np.float64)
        self._PD = PD
        if self._S.shape[0] == 0:
            self._grow(1)
        return self

    @classmethod
    def from_snapshot(cls, data: bytes) -> "BatchDetector":
        """A detector restored from :meth:`snapshot` bytes."""
        return cls(1).restore(data)


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
