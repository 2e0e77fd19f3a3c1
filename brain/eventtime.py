"""Event time: watermark, late data, records far ahead of the stream, and duplicates.

The watermark is the largest event time seen minus the allowed lateness. A batch is judged
against the watermark as it stood before the batch (so a batch's own records never make each
other late); then the watermark advances. A record older than the watermark is *late*; a record
more than ``max_ahead_ms`` beyond the largest time seen is refused (one bad clock must not drag
the watermark into the future and make every honest record late). Duplicates — the same terminal,
the same time and, for lifecycle events, the same entity and status — are applied once.

Example:
    >>> import numpy as np
    >>> clock = EventClock(allowed_lateness_ms=1000, max_ahead_ms=60_000)
    >>> late, ahead = clock.judge(np.array([10_000, 12_000])); clock.advance_to(12_000)
    >>> clock.watermark_ms
    11000
    >>> late, ahead = clock.judge(np.array([10_500, 11_500, 500_000]))
    >>> late.tolist(), ahead.tolist()
    ([True, False, False], [False, False, True])
"""
from __future__ import annotations

import numpy as np
import polars as pl

from brain.kernels.dedup import first_unseen, record_keys

#: Extra key columns that make a lifecycle event distinct (besides sensor_id and ts_ms).
ENTITY_KEYS: dict[str, list[str]] = {
    "grid_case": ["case_id", "status"],
    "incident": ["incident_id", "status"],
    "outage": ["outage_id", "status"],
}


def _p1_p99(ts: np.ndarray) -> tuple[int, int]:
    """``np.quantile(ts, 0.01, method="higher")`` and ``(ts, 0.99, method="lower")`` in one partition."""
    last = len(ts) - 1
    lo, hi = int(np.ceil(0.01 * last)), int(np.floor(0.99 * last))
    part = np.partition(ts, [lo, hi])
    return int(part[lo]), int(part[hi])


class EventClock:
    """Watermark bookkeeping for one stream. Times are Unix epoch milliseconds."""

    def __init__(self, allowed_lateness_ms: int, max_ahead_ms: int = 3_600_000):
        if allowed_lateness_ms < 0:
            raise ValueError("allowed_lateness_ms must be >= 0")
        if max_ahead_ms <= 0:
            raise ValueError("max_ahead_ms must be > 0")
        self.allowed_lateness_ms = int(allowed_lateness_ms)
        self.max_ahead_ms = int(max_ahead_ms)
        self.max_ts_ms: int | None = None

    @property
    def watermark_ms(self) -> int | None:
        return None if self.max_ts_ms is None else self.max_ts_ms - self.allowed_lateness_ms

    @staticmethod
    def bounds(ts_ms: np.ndarray) -> tuple[int, int] | None:
        """A batch's 1st and 99th percentile event times (None for no rows): what :meth:`judge` holds
        each record against. Take them over the whole batch, every kind together, so that a kind
        with a single record in the batch is judged too."""
        return _p1_p99(ts_ms) if len(ts_ms) else None

    def judge(self, ts_ms: np.ndarray, rows: np.ndarray | None = None,
              bounds: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(late, too far ahead) masks over ``ts_ms``, judging only ``rows`` (a mask; default all).

        "Too far ahead" is judged against the batch's own 99th percentile as well as the stream's
        newest time, so a replay batch spanning hours is fine while a lone wild clock is not.
        ``bounds``: the batch's :meth:`bounds` (default: those of the rows judged).
        """
        late = np.zeros(len(ts_ms), dtype=bool)
        ahead = np.zeros(len(ts_ms), dtype=bool)
        ts = ts_ms if rows is None else ts_ms[rows]
        if len(ts) == 0:
            return late, ahead
        low, high = bounds if bounds is not None else _p1_p99(ts)
        if self.max_ts_ms is None:
            # No history yet: one wild clock must neither lead the stream nor open windows years back.
            is_ahead = ts > high + self.max_ahead_ms
            is_late = ts < low - self.max_ahead_ms
        else:
            is_late = ts < self.watermark_ms
            is_ahead = ts > max(self.max_ts_ms, high) + self.max_ahead_ms
        if rows is None:
            return is_late, is_ahead
        late[rows], ahead[rows] = is_late, is_ahead
        return late, ahead

    def advance_to(self, ts_ms: int) -> None:
        """Move stream time forward (e.g. a source's clock ticking with no records)."""
        if self.max_ts_ms is None or ts_ms > self.max_ts_ms:
            self.max_ts_ms = int(ts_ms)

    def state(self) -> dict:
        return {"max_ts_ms": self.max_ts_ms}

    def load(self, state: dict) -> None:
        self.max_ts_ms = state["max_ts_ms"]


class Deduper:
    """Remembers record keys until the watermark passes them; later copies are duplicates.

    Example:
        >>> import numpy as np, polars as pl
        >>> d = Deduper()
        >>> f = pl.DataFrame({"sensor_id": ["a", "a", "b"], "ts_ms": [1, 1, 1]})
        >>> sensor, ts = np.array([0, 0, 1]), f["ts_ms"].to_numpy()  # terminals by registry index
        >>> d.first_copies("traffic", d.keys("traffic", f, sensor, ts), ts).tolist()
        [True, False, True]
        >>> d.first_copies("traffic", d.keys("traffic", f[:1], sensor[:1], ts[:1]), ts[:1]).tolist()
        [False]
    """

    def __init__(self) -> None:
        self._hash: dict[str, np.ndarray] = {}
        self._ts: dict[str, np.ndarray] = {}

    @staticmethod
    def keys(kind: str, frame: pl.DataFrame, sensor: np.ndarray, ts_ms: np.ndarray) -> np.ndarray:
        """Identity keys of ``frame``'s rows: terminal (an integer per terminal, e.g. its registry
        index), event time and, for lifecycle kinds, entity and status."""
        entity = ENTITY_KEYS.get(kind)
        extra = frame.select(pl.struct(entity).hash(seed=0)).to_series().to_numpy() if entity else None
        return record_keys(sensor, ts_ms, extra)

    def first_copies(self, kind: str, keys: np.ndarray, ts_ms: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Mask of the rows (among ``rows``; default all) whose key was applied neither before nor
        earlier in this batch; those keys are remembered until the watermark passes them."""
        if rows is not None and rows.all():
            rows = None
        k, ts = (keys, ts_ms) if rows is None else (keys[rows], ts_ms[rows])
        seen = self._hash.get(kind)
        # The remembered keys are few: only those the watermark has not passed yet. One hash-set
        # pass, no sort.
        keep = first_unseen(k, seen if seen is not None else np.zeros(0, np.uint64))
        self._hash[kind] = np.concatenate([seen, k[keep]]) if seen is not None else k[keep]
        self._ts[kind] = np.concatenate([self._ts[kind], ts[keep]]) if kind in self._ts else ts[keep]
        if rows is None:
            return keep
        out = np.zeros(len(keys), dtype=bool)
        out[rows] = keep
        return out

    def forget_before(self, watermark_ms: int) -> None:
        """Drop keys older than the watermark: a copy of those would be late, not a duplicate."""
        for kind in list(self._hash):
            keep = self._ts[kind] >= watermark_ms
            self._hash[kind] = self._hash[kind][keep]
            self._ts[kind] = self._ts[kind][keep]

    def __len__(self) -> int:
        return int(sum(len(h) for h in self._hash.values()))

    def state(self) -> dict:
        return {"hash": dict(self._hash), "ts": dict(self._ts)}

    def load(self, state: dict) -> None:
        self._hash = dict(state["hash"])
        self._ts = dict(state["ts"])
