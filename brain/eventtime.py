"""Event time: per-source clocks, the city's watermark, late data, records far ahead, duplicates.

Every source (a sensor, by registry index) has its own clock: the newest event time applied from
it. The city's clock is robust to a minority of wild clocks: it is the (f+1)-th newest of the
active sources' clocks, f being ``wild_share`` of them (at least one as soon as there are two), so
no single clock, fast or slow, can move it (like Flink's ``StatusWatermarkValve``, which takes the
minimum over active inputs; an order statistic near the top instead of the minimum keeps one slow
or sparse source from holding the whole city back). A source whose clock is more than ``idle_ms`` behind
the city's is idle and no longer counted. The city's clock never goes back.

The watermark is the city's clock minus the allowed lateness. A batch is judged against the
watermark as it stood before the batch (so a batch's own records never make each other late);
then the clocks advance. A record older than the watermark is *late*. A record is refused as too
far ahead when it is more than ``max_ahead_ms`` beyond *its own source's* recent clock (for an
active source; a new or idle one is held to the city's clock, or the batch's 99th percentile for
replays): a reading that jumps an hour ahead of its sensor's cadence is quarantined even when a
few fast clocks elsewhere would have covered it. So a wild clock sends its own records to late or
to quarantine, never others'.
Duplicates — the same terminal, the same time and, for lifecycle events, the same entity and
status — are applied once.

Example (sensor 2's clock is an hour fast; the city's clock follows sensors 0 and 1):
    >>> import numpy as np
    >>> clock = EventClock(allowed_lateness_ms=1000, max_ahead_ms=7_200_000, n_sources=3)
    >>> late, ahead = clock.judge(np.array([10_000, 12_000, 3_612_000]))
    >>> clock.observe(np.array([10_000, 12_000, 3_612_000]), np.array([0, 1, 2]))
    >>> clock.max_ts_ms, clock.watermark_ms
    (12000, 11000)
    >>> late, ahead = clock.judge(np.array([10_500, 11_500, 9_000_000]))
    >>> late.tolist(), ahead.tolist()
    ([True, False, False], [False, False, True])

Per source: sensor 2's own clock is at 3,612,000; a reading more than two hours past it is refused,
while sensor 0 goes on a minute past its own:
    >>> clock.judge(np.array([3_612_000 + 7_300_000, 10_000 + 60_000]), source=np.array([2, 0]))[1].tolist()
    [True, False]
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


UNKNOWN_MS = -(2**62)  # a source with no record yet


def ahead_of_own_clock(ts: np.ndarray, source: np.ndarray, clock: np.ndarray, max_ahead_ms: int) -> np.ndarray:
    """Mask of the records (in arrival order) more than ``max_ahead_ms`` past their source's clock as it
    stands when each arrives: ``clock`` (per record: its source's clock before them), moved on by the
    source's earlier records that were not ahead themselves. Honest sources (each record within
    ``max_ahead_ms`` of the one before) are settled with numpy; a source with a jump is walked.

    >>> ahead_of_own_clock(np.array([100, 5_000, 5_100, 200]), np.array([0, 0, 0, 1]), np.array([0, 0, 0, 150]), 1_000).tolist()
    [False, True, True, False]
    """
    n = len(ts)
    ahead = np.zeros(n, dtype=bool)
    if n == 0:
        return ahead
    order = np.argsort(source, kind="stable")  # by source, then arrival
    s_src, s_ts, s_clock = source[order], ts[order], clock[order]
    first = np.r_[True, s_src[1:] != s_src[:-1]]
    group = np.cumsum(first) - 1
    # Newest earlier record of the same source: a running max per group (groups lifted apart).
    lift = group.astype(np.int64) * (1 << 46)
    running = np.maximum.accumulate(s_ts + lift) - lift
    before = np.where(first, UNKNOWN_MS, np.r_[UNKNOWN_MS, running[:-1]])
    jump = s_ts > np.maximum(before, s_clock) + max_ahead_ms
    if not jump.any():
        return ahead
    for g in np.unique(group[jump]):  # only sources with a jump: walk them in order
        at = np.flatnonzero(group == g)
        now = int(s_clock[at[0]])
        for k in at:
            if s_ts[k] > now + max_ahead_ms:
                ahead[order[k]] = True
            else:
                now = max(now, int(s_ts[k]))
    return ahead


class EventClock:
    """Watermark bookkeeping for one stream: per-source clocks and the city's (see the module
    docstring). Times are Unix epoch milliseconds; sources are integers ``0 .. n_sources - 1``.

    ``max_ts_ms`` is the city's clock (None before any record); ``source_ms`` each source's.
    """

    def __init__(self, allowed_lateness_ms: int, max_ahead_ms: int = 3_600_000, n_sources: int = 0,
                 wild_share: float = 0.05, idle_ms: int = 3_600_000):
        if allowed_lateness_ms < 0:
            raise ValueError("allowed_lateness_ms must be >= 0")
        if max_ahead_ms <= 0:
            raise ValueError("max_ahead_ms must be > 0")
        if not 0.0 <= wild_share < 0.5:
            raise ValueError(f"wild_share must be in [0, 0.5) (a minority), got {wild_share}")
        if idle_ms <= 0:
            raise ValueError("idle_ms must be > 0")
        self.allowed_lateness_ms = int(allowed_lateness_ms)
        self.max_ahead_ms = int(max_ahead_ms)
        self.wild_share = float(wild_share)
        self.idle_ms = int(idle_ms)
        self.max_ts_ms: int | None = None
        self.source_ms = np.full(int(n_sources), UNKNOWN_MS, dtype=np.int64)

    @property
    def watermark_ms(self) -> int | None:
        return None if self.max_ts_ms is None else self.max_ts_ms - self.allowed_lateness_ms

    @staticmethod
    def bounds(ts_ms: np.ndarray) -> tuple[int, int] | None:
        """A batch's 1st and 99th percentile event times (None for no rows): what :meth:`judge` holds
        each record against. Take them over the whole batch, every kind together, so that a kind
        with a single record in the batch is judged too."""
        return _p1_p99(ts_ms) if len(ts_ms) else None

    @staticmethod
    def batch_floor(ts_ms: np.ndarray, source: np.ndarray) -> int:
        """The batch's lower median event time when several sources share the batch (``UNKNOWN_MS``
        otherwise): no active source's clock counts below it (see :meth:`judge`). Take it over the
        whole batch, every kind together: a sparse feed (an incident closed 75 minutes after its last
        update) is then held to where the stream is, not refused as a clock jump because it was the
        only record of its kind in the batch."""
        if len(ts_ms) == 0 or source.min() == source.max():
            return UNKNOWN_MS
        return int(np.partition(ts_ms, (len(ts_ms) - 1) // 2)[(len(ts_ms) - 1) // 2])

    def judge(self, ts_ms: np.ndarray, rows: np.ndarray | None = None,
              bounds: tuple[int, int] | None = None, source: np.ndarray | None = None,
              floor_ms: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(late, too far ahead) masks over ``ts_ms``, judging only ``rows`` (a mask; default all).

        "Too far ahead" is judged against each record's own source clock (``source``: the records'
        source indices) when that source is active, else against the city's clock or the batch's
        own 99th percentile, so a replay batch spanning hours is fine while a lone wild clock is not.
        ``bounds``: the batch's :meth:`bounds` (default: those of the rows judged); ``floor_ms``: the
        batch's :meth:`batch_floor` (default: that of the rows judged).
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
            is_ahead = self._ahead(ts, None if source is None else (source if rows is None else source[rows]), low, high, floor_ms)
        if rows is None:
            return is_late, is_ahead
        late[rows], ahead[rows] = is_late, is_ahead
        return late, ahead

    def _ahead(self, ts: np.ndarray, source: np.ndarray | None, low: int, high: int, floor_ms: int | None = None) -> np.ndarray:
        """Too far ahead: a record of an active source (it has spoken, at most ``idle_ms`` behind the
        city's clock) more than ``max_ahead_ms`` past its own source's clock as it stands at that record
        (its clock before the batch, moved on by its earlier records of the batch that were not
        ahead, never below the batch's median when several sources share it: a whole stream jumping is no wild clock);
        a record of a new or returning source, more than that past the city's clock (or the batch's
        99th percentile)."""
        city = max(self.max_ts_ms, high)
        if source is None or len(self.source_ms) == 0:
            return ts > city + self.max_ahead_ms
        known = (source >= 0) & (source < len(self.source_ms))  # an unregistered source has no clock
        own = np.where(known, self.source_ms[np.clip(source, 0, len(self.source_ms) - 1)], UNKNOWN_MS)
        active = (own > UNKNOWN_MS) & (own >= self.max_ts_ms - self.idle_ms)
        ahead = ~active & (ts > city + self.max_ahead_ms)
        if active.any():
            rows = np.flatnonzero(active)
            # A whole stream that jumped is no wild clock: with several sources in the batch, nobody's
            # clock counts below the batch's (lower) median.
            floor = self.batch_floor(ts, source) if floor_ms is None else floor_ms
            ahead[rows] = ahead_of_own_clock(ts[rows], source[rows], np.maximum(own[rows], floor), self.max_ahead_ms)
        return ahead

    def observe(self, ts_ms: np.ndarray, source: np.ndarray) -> None:
        """Applied records (their times and sources) move their sources' clocks, then the city's."""
        if len(ts_ms) == 0:
            return
        if len(self.source_ms) == 0:  # no sources declared: one clock for the stream
            self.advance_to(int(ts_ms.max()))
            return
        np.maximum.at(self.source_ms, source, ts_ms)
        robust = self.robust_clock()
        if robust is not None:
            self.advance_to(robust)

    def robust_clock(self) -> int | None:
        """The (f+1)-th newest clock of the active sources, f = ``wild_share`` of them (>= 1 from two
        sources on): what one wild clock (or a minority) cannot move. None before any source."""
        known = self.source_ms[self.source_ms > UNKNOWN_MS]
        if self.max_ts_ms is not None:
            known = known[known >= self.max_ts_ms - self.idle_ms]  # idle sources stop counting
        n = len(known)
        if n == 0:
            return None
        # A lone source is the city's clock until a second one speaks (a one-sensor stream must
        # tick too): the one window where a wild clock could still lead the city.
        f = min(max(int(self.wild_share * n), 1), n - 1)
        return int(np.partition(known, n - 1 - f)[n - 1 - f])

    def newest_ms(self) -> int | None:
        """The newest clock of any source or of the city (where the end of a stream is)."""
        known = self.source_ms[self.source_ms > UNKNOWN_MS]
        newest = int(known.max()) if len(known) else None
        if self.max_ts_ms is not None:
            newest = self.max_ts_ms if newest is None else max(newest, self.max_ts_ms)
        return newest

    def advance_to(self, ts_ms: int) -> None:
        """Move the city's clock forward (e.g. a source's clock ticking with no records); never back."""
        if self.max_ts_ms is None or ts_ms > self.max_ts_ms:
            self.max_ts_ms = int(ts_ms)

    def state(self) -> dict:
        return {"max_ts_ms": self.max_ts_ms, "source_ms": self.source_ms.copy()}

    def load(self, state: dict) -> None:
        self.max_ts_ms = state["max_ts_ms"]
        source_ms = np.asarray(state["source_ms"], dtype=np.int64)
        if source_ms.shape != self.source_ms.shape:
            raise ValueError(f"event clock state has {len(source_ms)} sources, this stream has {len(self.source_ms)}")
        self.source_ms = source_ms.copy()


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
