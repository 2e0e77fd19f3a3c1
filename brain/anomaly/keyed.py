"""Named keys over :class:`~brain.anomaly.BatchDetector`: score polars frames, get a frame of scores back.

The streaming path has readings as columns (``sensor_id``, ``ts_ms``, one column per metric);
:class:`KeyedDetector` maps each ``(sensor, metric)`` pair to a dense integer key (stable for the
detector's life and saved in its snapshot), scores every row in one numba pass and returns the
anomaly stream: one row per reading with the score and what explains it.

Example:
    >>> import polars as pl
    >>> det = KeyedDetector()
    >>> rows = pl.DataFrame({"sensor_id": ["L1", "L2"] * 60, "ts_ms": [i // 2 * 60_000 for i in range(120)],
    ...                      "speed_kmh": [50.0 + (i % 7) for i in range(120)]})
    >>> out = det.score_learn_many(rows, "speed_kmh")
    >>> out.columns
    ['sensor_id', 'metric', 'ts_ms', 'value', 'expected', 'z', 'score', 'reason', 'ongoing']
    >>> spike = pl.DataFrame({"sensor_id": ["L2"], "ts_ms": [3_600_000], "speed_kmh": [5.0]})
    >>> row = det.score_many(spike, "speed_kmh").row(0, named=True)      # nothing learned
    >>> row["sensor_id"], row["score"] > 0.999, row["reason"]
    ('L2', True, 'spike')
    >>> det.score_many(spike, "speed_kmh")["score"][0] == row["score"]
    True
"""
from __future__ import annotations

import json

import numpy as np
import polars as pl

from brain import series
from brain.anomaly.snapshot import SnapshotFormatError, pack_arrays, unpack_arrays
from brain.anomaly.batch_detector import BatchDetector

_MAGIC = b"CBKD1\n"  # the format before brain.checkpoint (read only)
_FORMAT = "KeyedDetector/2"  # brain.anomaly.snapshot arrays: names in the header


class KeyedDetector:
    """A :class:`BatchDetector` whose keys are ``(key column value, metric name)`` pairs.

    The verbs are those of :mod:`brain.anomaly.base`, over ``(frame, metric)`` batches:
    :meth:`score_learn_many` (the streaming path), :meth:`score_many` (nothing learned),
    :meth:`learn_many`.

    Parameters:
        n_keys_hint: initial state allocation (grows as new keys appear).
    """

    learns_online = True

    def __init__(self, n_keys_hint: int = 1024) -> None:
        self._det = BatchDetector(n_keys_hint)
        self._ids: dict[str, int] = {}

    @property
    def n_keys(self) -> int:
        """Keys seen so far."""
        return len(self._ids)

    @property
    def detector(self) -> BatchDetector:
        """The underlying batch detector (dense ids in order of first appearance)."""
        return self._det

    def key_ids(self, names) -> np.ndarray:
        """Dense ids for string keys, assigning new ids to unseen keys."""
        arr = np.asarray(names, dtype=object)
        uniq, inv = np.unique(arr, return_inverse=True)
        ids = np.empty(uniq.size, dtype=np.int64)
        for i, name in enumerate(uniq.tolist()):
            j = self._ids.get(name)
            if j is None:
                j = self._ids[name] = len(self._ids)
            ids[i] = j
        return ids[inv]

    def score_learn_many(self, frame: pl.DataFrame, metric: str, key: str = "sensor_id", ts: str = "ts_ms",
                         min_score: float = 0.0, peer: str | None = None) -> pl.DataFrame:
        """Score column ``metric`` of ``frame`` per ``key`` in row order (nulls count as missing),
        then learn it (one pass).

        ``peer``: optional column with a peer reference of the same quantity (null where there is
        none): a slow ramp of ``metric`` against it is what the drift statistic then looks for
        (see :meth:`~brain.anomaly.SeasonalDetector.score_one`).

        Returns ``key, metric, ts_ms, value, expected, z, score, reason, ongoing`` for rows scoring at
        least ``min_score`` (all rows by default). ``score`` is the confidence that an anomaly starts
        (or is still news) at the row; ``ongoing`` that the row is part of one, news or not (what a
        rule that must hold for a duration reads).
        """
        return self._score(frame, metric, key, ts, min_score, peer, learn=True)

    def score_many(self, frame: pl.DataFrame, metric: str, key: str = "sensor_id", ts: str = "ts_ms",
                   min_score: float = 0.0, peer: str | None = None) -> pl.DataFrame:
        """What :meth:`score_learn_many` would answer, without learning anything (new keys get no id)."""
        return self._score(frame, metric, key, ts, min_score, peer, learn=False)

    def learn_many(self, frame: pl.DataFrame, metric: str, key: str = "sensor_id", ts: str = "ts_ms",
                   peer: str | None = None) -> "KeyedDetector":
        """Learn column ``metric`` of ``frame``; returns the detector."""
        self._score(frame, metric, key, ts, 0.0, peer, learn=True)
        return self

    def _score(self, frame, metric, key, ts, min_score, peer, learn: bool) -> pl.DataFrame:
        for col in (metric, key, ts, *([peer] if peer is not None else [])):
            if col not in frame.columns:
                raise ValueError(f"column {col!r} not in frame (columns: {', '.join(frame.columns)})")
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {min_score!r}")
        if frame.height == 0:
            return pl.DataFrame(schema={key: pl.String, "metric": pl.String, "ts_ms": pl.Int64, "value": pl.Float64,
                                        "expected": pl.Float64, "z": pl.Float64, "score": pl.Float64, "reason": pl.String,
                                        "ongoing": pl.Float64})
        # the key column's name is part of the key: segment "X" and sensor "X" are different series.
        # Names are made once per distinct key value, not per row (a batch repeats a few hundred keys).
        key_col = frame[key].cast(pl.String)
        row_key: dict = {}
        per_row = np.fromiter((row_key.setdefault(v, len(row_key)) for v in key_col.to_list()), dtype=np.int64, count=frame.height)
        names = [f"{key}={'' if v is None else v}|{metric}" for v in row_key]
        if learn:
            keys = self.key_ids(names)[per_row]
        else:  # unseen keys are scored from a fresh state, past every id in use
            known = self._ids
            fresh = iter(range(self._det.n_keys, 2 ** 62))
            keys = np.array([known[n] if n in known else next(fresh) for n in names], dtype=np.int64)[per_row]
        values = frame[metric].cast(pl.Float64).to_numpy()  # a null reads NaN: missing
        ts_ms = frame[ts].cast(pl.Int64).to_numpy()
        peers = frame[peer].cast(pl.Float64).to_numpy() if peer is not None else None
        res = (self._det.explain_learn_many if learn else self._det.explain_many)(keys, ts_ms, values, peers)
        out = series.frame([
            key_col.alias(key),
            pl.Series("metric", [metric], dtype=pl.String).new_from_index(0, frame.height),
            series.i64("ts_ms", ts_ms),
            series.f64("value", values),
            series.f64("expected", res["expected"]),
            series.f64("z", res["z"]),
            series.f64("score", res["score"]),
            pl.Series("reason", res["reason"].astype(str)),
            series.f64("ongoing", res["ongoing"]),
        ])
        return out.filter(pl.col("score") >= min_score) if min_score > 0 else out

    def state(self) -> tuple[list[str], dict[str, np.ndarray]]:
        """``(key names in id order, the detector's compact state arrays)``: what a checkpoint holds
        (:meth:`snapshot` packs them; an owner adding its own fields packs them itself)."""
        return sorted(self._ids, key=self._ids.get), self._det.state_arrays()

    def restore_state(self, names: list, arrays: dict) -> "KeyedDetector":
        """Replace state and keys with :meth:`state`'s names and arrays."""
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError("corrupt KeyedDetector snapshot (key names)")
        det = BatchDetector(1).restore_arrays(arrays)
        if len(names) > det.n_keys:
            raise ValueError("corrupt KeyedDetector snapshot: more keys than state rows")
        self._det = det
        self._ids = {name: i for i, name in enumerate(names)}
        return self

    def snapshot(self) -> bytes:
        """Key names and the detector's compact state (:meth:`BatchDetector.state_arrays`) as bytes."""
        names, arrays = self.state()
        return pack_arrays(_FORMAT, {"names": names}, arrays)

    def restore(self, data: bytes) -> "KeyedDetector":
        """Replace state and keys with a :meth:`snapshot` (also reads the older format)."""
        data = bytes(data) if not isinstance(data, (bytes, bytearray, memoryview)) else data
        if bytes(data[: len(_MAGIC)]) == _MAGIC:
            p = len(_MAGIC)
            n = int.from_bytes(data[p:p + 8], "little")
            try:
                names = json.loads(bytes(data[p + 8:p + 8 + n]))
            except ValueError:
                raise ValueError("corrupt KeyedDetector snapshot (key names)") from None
            det = BatchDetector(1).restore(bytes(data[p + 8 + n:]))
        else:
            try:
                fields, arrays = unpack_arrays(_FORMAT, data)
            except SnapshotFormatError:
                raise ValueError("not a KeyedDetector snapshot (bad header)") from None
            return self.restore_state(fields.get("names"), arrays)
        if len(names) > det.n_keys:
            raise ValueError("corrupt KeyedDetector snapshot: more keys than state rows")
        self._det = det
        self._ids = {name: i for i, name in enumerate(names)}
        return self
