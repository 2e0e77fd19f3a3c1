"""Many series at once: :class:`BatchDetector`, the streaming path's face of the fused detector kernel
(:mod:`brain.kernels.detector`), one numba pass per micro-batch over dense integer keys, with compact
snapshots that also read the older formats. One series at a time is
:class:`brain.anomaly.streaming.SeasonalDetector` (the same model).
"""
from __future__ import annotations

import io

import numpy as np

from brain.anomaly.snapshot import SnapshotFormatError, pack_arrays, unpack_arrays
from brain.kernels import detector as _k
from brain.kernels import detector_batch as _kb

_MAGIC = b"CBAD1\n"  # the npz format of full arrays (read only)
_FORMAT = "BatchDetector/2"  # rows of keys seen, sparse peer-drift rows, in brain.checkpoint's format
#: state columns of snapshots written before brain.kernels.surprise (restored with fresh new columns)
_OLD_N_COLS = 21
_OLD_N_COLS_ALL = (_OLD_N_COLS, 27, 28)
#: seasonal columns of snapshots written before the hour-of-day noise profile (the hour bins alone)
#: and before the own-period block (brain.kernels.period)
_OLD_SEA_COLS = (_k.NOISE0, _k.PER0)
#: the most keys a BatchDetector allocates (~4.4 kB each): a guard against sparse ids
MAX_KEYS = 5_000_000


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


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
        if S.ndim == 2 and S.shape[1] in _OLD_N_COLS_ALL:
            # a snapshot from before onset scores and tail calibration (21 columns) or before the far
            # tail's Hill estimate (27) or the count model (28): its learned state carries over, the new
            # columns start fresh (no open episode, i.i.d. 95th percentiles, an exponential far tail,
            # no counts seen)
            fresh, _ = _k.detector_state(S.shape[0])
            fresh[:, :S.shape[1]] = S
            S = fresh
        if SEA.ndim == 2 and SEA.shape[1] in _OLD_SEA_COLS:
            # a snapshot from before the noise profile or the own-period block: what it has carries
            # over; the newer columns start at 0 (no noise profile: the global noise alone; no
            # period yet: the buffer starts at the next point)
            SEA = np.concatenate([SEA, np.zeros((SEA.shape[0], _k.SEA_COLS - SEA.shape[1]))], axis=1)
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
