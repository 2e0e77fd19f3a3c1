"""Grid-case counts kept up to date by the rows that change, not recounted over every case per tick.

As of a tick ``t`` each case counts in :func:`brain.vitals.grid.case_metrics`' figures over time
intervals that its timestamps fix (``r`` reported, ``c`` closed, ``d`` deadline, ``H`` an hour, ``L``
the lookback; ``t`` integer ms; every figure needs ``r``):

=================  ===========================================  ======
figure             ``t`` in                                     weight
=================  ===========================================  ======
exists             ``[r, inf)``                                 1
new_last_hour      ``[r, r + H)``                               1
open_backlog       ``[r, c)`` (``c`` unset: ``inf``)            1
overdue            ``[max(r, d + 1), c)`` (``d`` set)           1
closed_recent      ``[max(c, r), c + L)`` (``c`` set)           1
closed_on_time     the same, when ``c <= d``                    1
time to close      the same                                     ``max(c - r, 0)`` ms
=================  ===========================================  ======

so each figure is a running sum of +w at an interval's start and -w at its end. A :class:`CaseTally`
watches a :class:`brain.lifecycle.LifecycleTable`: a case that changes takes its old intervals out
and puts its new ones in (events at or before the last tick asked for change the counters at once,
later ones wait in per-minute buckets), and a tick applies only the events due by it. A tick then
costs O(events due + cells + categories), an update O(rows changed), whatever the number of cases kept
(the whole table is read once: at the first tick, after a restore, or when ticks go backwards).

Counters are per cell id and per category (interned as they first appear, null its own code);
district and city figures are the cells' counters summed at each tick.

Example: one case reported at 0 with a deadline at 2 h, closed at 1 h; ticks at 30 min and 2 h:
    >>> import polars as pl
    >>> from brain.lifecycle import LifecycleTable
    >>> table = LifecycleTable("case_id", {"reported": "reported_ms", "closed": "closed_ms"}, ["category", "cell_id", "deadline_ms"])
    >>> tally = CaseTally(table, lookback_ms=86_400_000)
    >>> h = 3_600_000
    >>> table.update(pl.DataFrame({"case_id": ["c1", "c1"], "status": ["reported", "closed"], "ts_ms": [0, h],
    ...     "category": ["litter", None], "cell_id": ["C1", None], "deadline_ms": [2 * h, None]}))
    >>> snap = tally.snapshots([h // 2, 2 * h])
    >>> snap.cells, snap.cell_counts[:, 0, :6].tolist()  # exists, new, open, overdue, closed recently, on time
    (['C1'], [[1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 1, 1]])
    >>> int(snap.cell_counts[1, 0, 6])  # time to close, ms
    3600000
"""
from __future__ import annotations

import heapq
from typing import NamedTuple

import numpy as np
import polars as pl

from brain.vitals.stack.keys import HOUR_MS, _ints
from brain.vitals.stack.states import _case_figures, _case_table

#: Figures per counter row: the six counts of :data:`brain.kernels.cases.NAMES`, then the summed ms to close.
N_FIGURES = 7
BUCKET_MS = 60_000
_NEVER = np.iinfo(np.int64).max


class CaseSnapshots(NamedTuple):
    """Counters as of each tick: ``cell_counts`` (ticks, cells, 7) in the order of ``cells`` (the cell ids
    in interning order; None: no cell), ``category_counts`` (ticks, categories, 7) likewise.

    >>> import numpy as np
    >>> CaseSnapshots(["C1"], np.zeros((2, 1, 7), dtype=np.int64), [], np.zeros((2, 0, 7), dtype=np.int64)).cell_counts.shape
    (2, 1, 7)
    """

    cells: list
    cell_counts: np.ndarray
    categories: list
    category_counts: np.ndarray


class CaseTally:
    """Per-cell and per-category grid-case figures of a lifecycle table, maintained incrementally
    (see the module docstring; an example is there).

    ``lookback_ms`` is :attr:`brain.vitals.config.VitalsConfig.case_lookback_s` in ms; the table must
    have ``reported_ms``, ``closed_ms``, ``deadline_ms``, ``cell_id`` and ``category`` columns.

    >>> import polars as pl
    >>> from brain.lifecycle import LifecycleTable
    >>> table = LifecycleTable("case_id", {"reported": "reported_ms", "closed": "closed_ms"}, ["category", "cell_id", "deadline_ms"])
    >>> tally = CaseTally(table, lookback_ms=3_600_000)
    >>> table.update(pl.DataFrame({"case_id": ["a", "b"], "status": ["reported", "reported"], "ts_ms": [0, 0],
    ...     "category": ["litter", "noise"], "cell_id": ["C1", "C1"], "deadline_ms": [60_000, None]}))
    >>> tally.snapshots([120_000]).cell_counts[0, 0, :4].tolist()  # exists, new, open, overdue
    [2, 2, 2, 1]
    >>> table.update(pl.DataFrame({"case_id": ["a"], "status": ["closed"], "ts_ms": [150_000],
    ...     "category": [None], "cell_id": [None], "deadline_ms": [None]}))
    >>> tally.snapshots([180_000]).cell_counts[0, 0, :6].tolist()  # b still open and past no deadline
    [2, 2, 1, 0, 1, 0]
    """

    def __init__(self, table, lookback_ms: int, hour_ms: int = HOUR_MS) -> None:
        self.table = table
        self.lookback_ms, self.hour_ms = int(lookback_ms), int(hour_ms)
        self.cells: dict = {}  # cell id (None too) -> code
        self.categories: dict = {}
        self._stale = True  # the table was replaced: read it whole at the next tick
        # The counters are the table's latest state. A tick whose state was older (an earlier run of a
        # stacked pass, see brain.ticks.StateAsOf.runs) gets the same figures unless a field they read
        # changed after it: the newest such change is remembered (changes unseen since a reset: blind).
        self.refield_ms = np.iinfo(np.int64).min
        self._blind = True
        table.watch(self)

    #: The fields the figures read besides the stage times (a change of one is remembered).
    FIELDS = ("cell_id", "category", "deadline_ms")

    # --- the table's notifications -----------------------------------------------------------------
    def reset(self) -> None:
        """The whole table changed (restored, or rebuilt): start again from it at the next tick."""
        self._stale = True
        self._blind = True

    def changed(self, old: pl.DataFrame | None, new: pl.DataFrame | None) -> None:
        """Cases ``old`` (their previous rows) left the table and ``new`` came in (updated or added)."""
        if old is not None and old.height and new is not None and new.height:
            self._note_refields(old, new.head(old.height))
        if self._stale:
            return
        parts = [(rows, sign) for rows, sign in ((old, -1), (new, 1)) if rows is not None and rows.height]
        if len(parts) == 2 and old.dtypes == new.dtypes:  # one pass over both (an update's fixed cost, halved)
            self._add(*self._events(old.vstack(new), np.repeat(np.array([-1, 1], dtype=np.int64), [old.height, new.height])))
        else:
            for rows, sign in parts:
                self._add(*self._events(rows, sign))

    def _note_refields(self, old: pl.DataFrame, new: pl.DataFrame) -> None:
        """``new`` = the same cases as ``old``, row for row (the table's update keeps its touched rows first)."""
        id_col = self.table.id_col
        if not old.get_column(id_col).equals(new.get_column(id_col)):
            self._blind = True  # not row for row after all: assume the worst until the next whole read
            return
        diff = np.zeros(old.height, dtype=bool)
        for f in self.FIELDS:
            if f in old.columns and f in new.columns and not old.get_column(f).equals(new.get_column(f)):  # (usually equal: cheap)
                diff |= old.get_column(f).ne_missing(new.get_column(f)).to_numpy()
        if diff.any():
            at = new.get_column("updated_ms").to_numpy()[diff] if "updated_ms" in new.columns else None
            self.refield_ms = max(self.refield_ms, int(at.max()) if at is not None else np.iinfo(np.int64).max)

    def exact_until(self, tick_ms: int) -> bool:
        """Whether the counters also hold for the ticks up to ``tick_ms`` when the table's state as of
        ``tick_ms`` is older than its current one: no case changed a field they read after ``tick_ms``
        (stages reached later only open intervals after ``tick_ms``). Else the caller recounts.

        >>> import polars as pl
        >>> from brain.lifecycle import LifecycleTable
        >>> table = LifecycleTable("case_id", {"reported": "reported_ms", "closed": "closed_ms"}, ["category", "cell_id", "deadline_ms"])
        >>> tally = CaseTally(table, lookback_ms=3_600_000)
        >>> table.update(pl.DataFrame({"case_id": ["a"], "status": ["reported"], "ts_ms": [0], "category": ["litter"],
        ...     "cell_id": ["C1"], "deadline_ms": [3_600_000]}))
        >>> _ = tally.snapshots([60_000])
        >>> table.update(pl.DataFrame({"case_id": ["a"], "status": ["reported"], "ts_ms": [90_000], "category": ["litter"],
        ...     "cell_id": ["C2"], "deadline_ms": [3_600_000]}))  # moved to another cell at 90 s
        >>> tally.exact_until(60_000), tally.exact_until(120_000)
        (False, True)
        """
        return not self._blind and self.refield_ms <= int(tick_ms)

    # --- counters -------------------------------------------------------------------------------------
    def _start(self, first_tick: int) -> None:
        frame = self.table.frame
        self.cells, self.categories = {}, {}
        self._cell_counts = np.zeros((0, N_FIGURES), dtype=np.int64)
        self._cat_counts = np.zeros((0, N_FIGURES), dtype=np.int64)
        self._buckets: dict[int, list[np.ndarray]] = {}
        self._keys: list[int] = []  # heap of bucket keys
        self.applied_ms = first_tick
        self._stale = False
        self._blind = False  # read whole now: the changes from here on are all seen
        if frame is not None and frame.height:
            self._add(*self._events(frame, 1))

    def _codes(self, values: pl.Series, table: dict) -> np.ndarray:
        # Interned in order of appearance.
        if values.len() <= 4096:  # the rows of an update: a dict lookup each
            return np.fromiter((table.setdefault(v, len(table)) for v in values.to_list()), dtype=np.int64, count=values.len())
        distinct = values.unique(maintain_order=True)  # a whole table: one join
        for v in distinct.to_list():
            table.setdefault(v, len(table))
        lookup = pl.DataFrame({"v": list(table), "code": np.arange(len(table), dtype=np.int64)}, schema={"v": values.dtype, "code": pl.Int64})
        return values.to_frame("v").join(lookup, on="v", how="left", nulls_equal=True, maintain_order="left")["code"].to_numpy()

    def _cell_codes(self, rows: pl.DataFrame) -> np.ndarray:
        """The rows' codes in the first counter group (``self.cells``): their cell ids (a subclass may key it otherwise)."""
        return self._codes(rows.get_column("cell_id"), self.cells)

    def _events(self, rows: pl.DataFrame, sign) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The rows' interval ends as events: times, cell slot, category slot (code * 7 + figure), delta
        (``sign``: +1 a row comes in, -1 it leaves; one for all rows, or one per row)."""
        cell = self._cell_codes(rows)
        cat = self._codes(rows.get_column("category"), self.categories)
        (r, r_ok), (c, c_ok), (d, d_ok) = (_ints(rows.get_column(n)) for n in ("reported_ms", "closed_ms", "deadline_ms"))
        n = len(r)
        end_c = np.where(c_ok, c, _NEVER)
        recent_from, recent_to = np.maximum(c, r), c + self.lookback_ms
        # One row per figure (the module docstring's table): interval starts, ends, weights, where it applies.
        starts = np.stack([r, r, r, np.maximum(r, d + 1), recent_from, recent_from, recent_from])
        ends = np.stack([np.full(n, _NEVER), r + self.hour_ms, end_c, end_c, recent_to, recent_to, recent_to])
        weights = np.ones((N_FIGURES, n), dtype=np.int64)
        weights[6] = np.maximum(c - r, 0)
        closed = r_ok & c_ok
        ok = np.stack([r_ok, r_ok, r_ok, r_ok & d_ok, closed, closed & d_ok & (c <= d), closed]) & (starts < ends)
        ending = ok & (ends != _NEVER)
        figure = np.arange(N_FIGURES, dtype=np.int64)[:, None]
        cell_slot, cat_slot = cell[None, :] * N_FIGURES + figure, cat[None, :] * N_FIGURES + figure
        weights = weights * np.asarray(sign, dtype=np.int64)  # (a scalar, or per row: broadcast over the figures)
        return (np.concatenate([starts[ok], ends[ending]]), np.concatenate([cell_slot[ok], cell_slot[ending]]),
                np.concatenate([cat_slot[ok], cat_slot[ending]]), np.concatenate([weights[ok], -weights[ending]]))

    def _grow(self) -> None:
        for name, n in (("_cell_counts", len(self.cells)), ("_cat_counts", len(self.categories))):
            have = getattr(self, name)
            if len(have) < n:
                setattr(self, name, np.vstack([have, np.zeros((max(n, 2 * len(have)) - len(have), N_FIGURES), dtype=np.int64)]))

    def _apply(self, cells: np.ndarray, cats: np.ndarray, deltas: np.ndarray) -> None:
        self._grow()
        np.add.at(self._cell_counts.reshape(-1), cells, deltas)
        np.add.at(self._cat_counts.reshape(-1), cats, deltas)

    def _add(self, times: np.ndarray, cells: np.ndarray, cats: np.ndarray, deltas: np.ndarray) -> None:
        """Events at or before the last tick change the counters now; later ones wait in their bucket."""
        now = times <= self.applied_ms
        self._apply(cells[now], cats[now], deltas[now])
        later = ~now
        if not later.any():
            return
        t, packed = times[later], np.stack([times[later], cells[later], cats[later], deltas[later]])
        keys = t // BUCKET_MS
        order = np.argsort(keys, kind="stable")
        keys, packed = keys[order], packed[:, order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        for s, e in zip(starts, np.r_[starts[1:], len(keys)]):
            k = int(keys[s])
            if k not in self._buckets:
                self._buckets[k] = []
                heapq.heappush(self._keys, k)
            self._buckets[k].append(packed[:, s:e])

    def _advance(self, tick: int) -> None:
        """Apply the events due by ``tick`` (ticks ascending)."""
        last = tick // BUCKET_MS
        while self._keys and self._keys[0] <= last:
            k = self._keys[0]
            ev = np.concatenate(self._buckets[k], axis=1)
            due = ev[0] <= tick
            self._apply(ev[1][due], ev[2][due], ev[3][due])
            if due.all():
                heapq.heappop(self._keys)
                del self._buckets[k]
            else:  # (only the bucket of the tick itself can hold later events)
                self._buckets[k] = [ev[:, ~due]]
                break
        self.applied_ms = tick

    def snapshots(self, ticks) -> CaseSnapshots:
        """The counters as of each tick of ``ticks`` (ascending). Ticks before the last tick asked for
        read the whole table again (a replay restarting, a test)."""
        ticks = [int(t) for t in ticks]
        if self._stale or ticks[0] < self.applied_ms:
            self._start(ticks[0])
        cell_rows, cat_rows = [], []
        for t in ticks:
            self._advance(t)
            cell_rows.append(self._cell_counts[:len(self.cells)].copy())
            cat_rows.append(self._cat_counts[:len(self.categories)].copy())
        return CaseSnapshots(list(self.cells), np.stack(cell_rows), list(self.categories), np.stack(cat_rows))

    def pending_events(self) -> int:
        """Events waiting for a later tick (a gauge: it follows the cases with a future change)."""
        return sum(b.shape[1] for parts in self._buckets.values() for b in parts) if not self._stale else 0


class _TalliedCases:
    """:class:`brain.vitals.stack.states._CaseState`'s answers (area figures, the per-cell and
    per-category tables) from a tally's snapshots: O(cells + categories) per tick."""

    def __init__(self, snap: CaseSnapshots, ix) -> None:
        self.snap = snap
        # Each interned cell's district position (-1: no cell, or not a cell of the city).
        self.area = np.asarray([ix.cell_area[ix.cell_position.get(c, -1)] if c is not None else -1 for c in snap.cells], dtype=np.int64)

    def area_metrics(self, n_districts: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        c = self.snap.cell_counts
        onehot = (self.area[:, None] == np.arange(n_districts)[None, :]).astype(np.int64)
        by_d = np.einsum("kgf,gd->kdf", c, onehot)
        whole = c.sum(axis=1, keepdims=True)
        return _figures(by_d), _figures(whole)

    def table(self, column: str, ticks: np.ndarray, nulls: bool) -> pl.DataFrame:
        values, counts = (self.snap.cells, self.snap.cell_counts) if column == "cell_id" else (self.snap.categories, self.snap.category_counts)
        # The values' sorted order, nulls first (as _codes sorts them: code point order).
        order = sorted((i for i, v in enumerate(values) if nulls or v is not None), key=lambda i: (values[i] is not None, values[i] or ""))
        distinct = pl.Series(column, [values[i] for i in order], dtype=pl.String)
        return _case_table(column, distinct, _figures(counts[:, order] if order else counts[:, :0]), ticks)


def _figures(counts: np.ndarray) -> dict[str, np.ndarray]:
    return _case_figures(counts[:, :, :6], counts[:, :, 6].astype(np.float64))
