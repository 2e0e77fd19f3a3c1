"""Current state of lifecycle entities (grid cases, incidents, outages) built from their updates.

Each update names an entity, a status and its event time. The table keeps, per entity, the
first time each status was reached (``<status>_ms``), the latest descriptive fields and the latest
status. Updates may arrive out of order: stage times take the minimum, fields follow the newest
update, so applying the same updates in any order or batching gives the same table.

Example:
    >>> import polars as pl
    >>> t = LifecycleTable("case_id", {"reported": "reported_ms", "closed": "closed_ms"}, ["category"])
    >>> t.update(pl.DataFrame({"case_id": ["c1", "c1"], "status": ["closed", "reported"],
    ...                        "ts_ms": [500, 100], "category": ["litter", "litter"]}))
    >>> t.frame.select("case_id", "reported_ms", "closed_ms", "status").rows()
    [('c1', 100, 500, 'closed')]
"""
from __future__ import annotations

import numpy as np
import polars as pl

from brain import series
from brain.kernels.lifecycle import merge_rows


#: New entities wait in a small frame of their own and are folded into the main blocks (a copy of the
#: last block, not of the table) when it grows past this, so appending costs O(rows) amortised.
TAIL_ROWS = 4096
#: The main rows are kept in blocks of about this many rows, each column of a block one buffer. A
#: reader that still holds an earlier frame (the previous tick's state, a live view) shares the
#: buffers; polars copies a shared buffer before writing into it, so an update then copies only the
#: blocks it touches, O(rows changed x BLOCK_ROWS), where whole columns cost O(table) per tick.
BLOCK_ROWS = 16_384
#: Expired entities stay (hidden) until they are this share of the table; then one compaction.
COMPACT_SHARE = 0.05


class LifecycleTable:
    """Entity id -> first time of each stage, newest fields and status.

    An update costs O(rows it touches), not O(entities kept): the table is blocks of columns that
    are written in place (``Series.scatter``) at the touched entities' positions (an id -> position
    index), plus a small tail of new entities; entities past retention are hidden at once and
    removed in bulk. A frame handed out earlier keeps its values: the blocks an update touches are
    copied first when it still shares them (:data:`BLOCK_ROWS`), never the whole table. ``frame`` is the same table, in the same row order, as merging the whole table
    with every update (:func:`merge`) and filtering expired entities at each ``prune`` would give.

    Example:
        >>> t = LifecycleTable("id", {"open": "open_ms", "shut": "shut_ms"}, [], retention_ms=1_000)
        >>> t.update(pl.DataFrame({"id": ["a", "b"], "status": ["open", "shut"], "ts_ms": [100, 200]}))
        >>> t.prune(5_000)  # b ended at 200: past retention, gone; a is still open
        >>> t.update(pl.DataFrame({"id": ["a", "b"], "status": ["shut", "open"], "ts_ms": [5_500, 5_600]}))
        >>> t.frame.select("id", "open_ms", "shut_ms", "status").rows()
        [('a', 100, 5500, 'shut'), ('b', 5600, None, 'open')]
    """

    def __init__(self, id_col: str, stages: dict[str, str], fields: list[str], retention_ms: int = 7 * 86_400_000):
        if not stages:
            raise ValueError("need at least one stage")
        self.id_col = id_col
        self.stages = dict(stages)
        self.fields = list(fields)
        self.retention_ms = int(retention_ms)
        self.final_stage_col = list(self.stages.values())[-1]
        self._blocks: list[list[pl.Series]] | None = None  # the main rows in blocks: per block its columns, one chunk each
        self._ends = np.zeros(0, dtype=np.int64)  # each block's end row (cumulative)
        self._signature: list | None = None  # the columns' (name, dtype)
        self._tail: pl.DataFrame | None = None  # entities added since the last fold, after the main rows
        self._pos: dict | None = None  # id -> row (main rows, then tail rows); built when first needed
        self._dead: np.ndarray | None = None  # rows of expired entities, hidden until a compaction (shorter: False)
        self._watchers: list = []

    def watch(self, watcher) -> None:
        """Tell ``watcher`` of every change: ``watcher.changed(old, new)`` with the previous rows of the
        entities an update or a prune touched (None: none) and their rows now (None: gone), and
        ``watcher.reset()`` when the whole table was replaced (a restore, a schema change). Views kept
        up to date from the rows that change (:class:`brain.vitals.stack.casetally.CaseTally`) use it."""
        self._watchers.append(watcher)

    def _reset_watchers(self) -> None:
        for w in self._watchers:
            w.reset()

    # --- the table as a frame ---------------------------------------------------------------------
    @property
    def frame(self) -> pl.DataFrame | None:
        """The current table (expired entities left out)."""
        raw = self._raw()
        if raw is None or self._dead is None:
            return raw
        return raw.filter(pl.Series(~self._dead_mask(raw.height)))

    @frame.setter
    def frame(self, value: pl.DataFrame | None) -> None:
        self._blocks, self._ends, self._signature = None, np.zeros(0, dtype=np.int64), None
        self._tail, self._pos, self._dead = None, None, None
        if value is not None:
            self._blocks = []
            self._add_blocks(value.get_columns())
            self._signature = list(zip(value.columns, value.dtypes))

    def _add_blocks(self, cols: list[pl.Series]) -> None:
        """Rows ``cols`` after the main rows, as blocks of at most :data:`BLOCK_ROWS` (one copy of them).

        Each block gets buffers of its own (a gather, not a slice): slices would share one buffer,
        so the first write into each would copy it (polars cannot write into a shared buffer)."""
        n, start = cols[0].len(), int(self._ends[-1]) if len(self._ends) else 0
        bounds = list(range(0, n, BLOCK_ROWS)) or [0]
        spans = [np.arange(b, min(b + BLOCK_ROWS, n), dtype=np.int64) for b in bounds]
        self._blocks += [[series.take(c, at) for c in cols] for at in spans]
        self._ends = np.concatenate([self._ends, [start + min(b + BLOCK_ROWS, n) for b in bounds]]).astype(np.int64)

    def _main(self) -> list[pl.Series]:
        """The main columns, each the blocks' buffers in a row (no copy)."""
        if len(self._blocks) == 1:
            return list(self._blocks[0])
        return [pl.concat([b[j] for b in self._blocks], rechunk=False) for j in range(len(self._blocks[0]))]

    def _raw(self) -> pl.DataFrame | None:
        if self._blocks is None:
            return None
        main = series.frame(self._main())
        return main if self._tail is None or not self._tail.height else main.vstack(self._tail)

    def _dead_mask(self, n: int) -> np.ndarray:
        dead = self._dead if self._dead is not None else np.zeros(0, dtype=bool)
        return dead if len(dead) == n else np.concatenate([dead, np.zeros(n - len(dead), dtype=bool)])

    def _fold(self) -> None:
        """The tail into the main blocks (a copy of the last block and the tail); positions do not change."""
        if self._tail is not None and self._tail.height:
            tail = self._tail.get_columns()
            first = int(self._ends[-2]) if len(self._ends) > 1 else 0
            if int(self._ends[-1]) - first < BLOCK_ROWS:  # the last block not full: it takes the tail's rows first
                last = self._blocks.pop()
                self._ends = self._ends[:-1]
                tail = [pl.concat([c, t], rechunk=False) for c, t in zip(last, tail)]
            self._add_blocks(tail)
        self._tail = None

    def _n_main(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    def _height(self) -> int:
        return self._n_main() + (0 if self._tail is None else self._tail.height)

    def _positions(self) -> dict:
        if self._pos is None:
            raw = self._raw()
            ids = raw.get_column(self.id_col).to_list()
            if self._dead is not None:  # an expired row is no entity: its id may live again later in the table
                dead = self._dead_mask(len(ids))
                self._pos = {i: k for k, i in enumerate(ids) if not dead[k]}
            else:
                self._pos = {i: k for k, i in enumerate(ids)}
        return self._pos

    # --- updates ----------------------------------------------------------------------------------
    def _as_rows(self, updates: pl.DataFrame) -> pl.DataFrame:
        """Each update as a row of the table: its stage's time, its fields and when they were set."""
        ts = updates.get_column("ts_ms")
        ts_ms = ts.to_numpy()
        status = updates.get_column("status")
        status_values = status.to_numpy()
        return series.frame(
            [updates.get_column(self.id_col)]
            + [_times(col, ts_ms, status_values == s) for s, col in self.stages.items()]
            + [updates.get_column(f) for f in self.fields]
            + [_times(_time_of(f), ts_ms, series.not_null(updates.get_column(f))) for f in self.fields]
            + [status, ts.alias("updated_ms")]
        )

    def update(self, updates: pl.DataFrame) -> None:
        if updates.height == 0:
            return
        rows = self._as_rows(updates)
        if self._height() == 0:
            self.frame = merge(rows, self.id_col, list(self.stages.values()), self.fields)
            self._reset_watchers()
            return
        if list(zip(rows.columns, rows.dtypes)) != self._signature:
            # e.g. a table restored from an older snapshot: polars reconciles the types, once.
            self.frame = merge_reference(pl.concat([self.frame, rows], how="vertical_relaxed"), self.id_col,
                                         list(self.stages.values()), self.fields)
            self._reset_watchers()
            return
        pos = self._positions()
        n_main = self._n_main()
        tail = self._tail if self._tail is not None else rows.clear()
        at = {k for i in rows.get_column(self.id_col).to_list() if (k := pos.get(i)) is not None}
        touched = np.array(sorted(k for k in at if k < n_main), dtype=np.int64)
        in_tail = np.array(sorted(k - n_main for k in at if k >= n_main), dtype=np.int64)
        # The touched entities' rows (main, then tail) and the updates: merged as the whole table would
        # merge them (each entity's table row first, then its updates in order; new entities in order
        # of arrival, after them).
        before = series.frame(self._take_main(touched)).vstack(series.take_rows(tail, in_tail))
        merged = merge(before.vstack(rows), self.id_col, list(self.stages.values()), self.fields)
        m, m_tail = len(touched), len(in_tail)
        for w in self._watchers:
            w.changed(before, merged)
        if m:  # only the columns whose values change (an update sets a stage or two, a field or two)
            self._write(touched, [(j, c) for j, (b, c) in enumerate(zip(before.get_columns(), merged.get_columns()))
                                  if not b.slice(0, m).equals(c.slice(0, m))])
        if m_tail:  # the tail is small: gathered anew with its touched rows from the merge (a take per column)
            src = np.arange(tail.height, dtype=np.int64)
            src[in_tail] = tail.height + np.arange(m_tail, dtype=np.int64)
            tail = series.take_rows(tail.vstack(merged.slice(m, m_tail)), src)
        added = merged.slice(m + m_tail)
        for k, i in enumerate(added.get_column(self.id_col).to_list(), start=n_main + tail.height):
            pos[i] = k
        tail = tail.vstack(added) if added.height else tail
        self._tail = tail.rechunk() if tail.n_chunks() > 32 else tail
        if tail.height > TAIL_ROWS:  # one copy of the last block per TAIL_ROWS new entities, not of the table
            self._fold()

    def _spans(self, rows: np.ndarray):
        """``(block, lo, hi, positions in the block)`` for the main rows ``rows`` (ascending), block by block."""
        block = np.searchsorted(self._ends, rows, side="right")
        cuts = np.flatnonzero(np.diff(block)) + 1
        for lo, hi in zip(np.r_[0, cuts].tolist(), np.r_[cuts, len(rows)].tolist()):
            b = int(block[lo])
            yield b, lo, hi, rows[lo:hi] - (int(self._ends[b - 1]) if b else 0)

    def _take_main(self, rows: np.ndarray) -> list[pl.Series]:
        """The main columns at ``rows`` (ascending): a take in each block touched, not a concatenation
        of every block (~0.2 ms a column at 2 M rows)."""
        if len(self._blocks) == 1 or not len(rows):
            return [series.take(c, rows) for c in self._blocks[-1 if not len(rows) else 0]]
        parts = [[series.take(c, at) for c in self._blocks[b]] for b, _, _, at in self._spans(rows)]
        if len(parts) == 1:
            return parts[0]
        return [pl.concat([p[j] for p in parts], rechunk=True) for j in range(len(parts[0]))]

    def _write(self, touched: np.ndarray, values: list[tuple[int, pl.Series]]) -> None:
        """Each ``(column, values)``: the values' first ``len(touched)`` rows written at the main rows
        ``touched`` (ascending), block by block: a block a reader still shares is copied first (by
        polars), the others not."""
        for b, lo, hi, rows in self._spans(touched):
            at = series.u32("", rows)
            for j, v in values:
                series.scatter(self._blocks[b][j], at, v.slice(lo, hi - lo))

    def prune(self, now_ms: int) -> None:
        """Forget entities that ended more than ``retention_ms`` ago."""
        raw = self._raw()
        if raw is None or not raw.height:
            return
        # Usually nothing is due: numpy looks first.
        ended = raw.get_column(self.final_stage_col).to_numpy()  # NaN where null
        dead = self._dead_mask(raw.height)
        due = (ended < now_ms - self.retention_ms) & ~dead
        if not due.any():
            return
        rows = np.flatnonzero(due)
        for w in self._watchers:
            w.changed(series.take_rows(raw, rows), None)
        if rows[-1] >= self._n_main():
            self._fold()  # the tail is merged whole by update(): it must hold living entities only
        if self._pos is not None:  # expired entities leave the index: an update for one starts it afresh
            for k, i in zip(rows.tolist(), series.take(raw.get_column(self.id_col), rows).to_list()):
                if self._pos.get(i) == k:
                    del self._pos[i]
        self._dead = dead | due
        if self._dead.sum() > COMPACT_SHARE * raw.height:
            del raw
            self.frame = self.frame  # one compaction: the living rows, the index rebuilt when needed

    def rows_of(self, ids) -> pl.DataFrame | None:
        """The rows of the entities ``ids`` (unknown ones left out) in table order: O(len(ids)), not O(table)
        (the id index is built once). None when the table is empty."""
        raw = self._raw()
        if raw is None:
            return None
        pos = self._positions()
        at = np.fromiter((k for i in ids if (k := pos.get(i)) is not None), dtype=np.int64)
        at.sort()
        return series.take_rows(raw, at)

    def current(self, schema: dict[str, pl.DataType]) -> pl.DataFrame:
        """The table's columns ``schema`` (the fields' set times stay inside)."""
        frame = self.frame
        if frame is None:
            return pl.DataFrame(schema=schema)
        return series.frame([frame.get_column(c) for c in schema])

    def state(self) -> dict:
        return {"frame": self.frame}

    def load(self, state: dict) -> None:
        self.frame = state["frame"]
        self._reset_watchers()


def _time_of(field: str) -> str:
    """The column holding when ``field`` was last set."""
    return f"_{field}_set_ms"


def _times(name: str, ts_ms: np.ndarray, at: np.ndarray) -> pl.Series:
    """``ts_ms`` where ``at``, null elsewhere, as Int64 (epoch ms are exact in float64)."""
    return series.i64_or_null(name, np.where(at, ts_ms, np.nan))


def merge(rows: pl.DataFrame, id_col: str, stage_cols: list[str], fields: list[str]) -> pl.DataFrame:
    """Table rows (the table's, then the updates') merged per entity, in order of first appearance:
    each stage its first time, each field the value of its newest setting (ties: the later row)
    and that time, the status of the newest row (ties: the later row) and its time.

    The same table as :func:`merge_reference` (polars' group-by), through one pass of the
    :mod:`brain.kernels.lifecycle` kernel: a table holds a few hundred entities, and a polars query
    (or a dozen numpy calls per field) costs more to start than these rows cost to merge.

    Example:
        >>> rows = pl.DataFrame({"id": ["a", "b", "a"], "seen_ms": [5, None, 3], "colour": ["red", "blue", None],
        ...                      "_colour_set_ms": [5, 4, None], "status": ["seen", "new", "seen"], "updated_ms": [5, 4, 3]})
        >>> merge(rows, "id", ["seen_ms"], ["colour"]).rows()
        [('a', 3, 'red', 5, 'seen', 5), ('b', None, 'blue', 4, 'new', 4)]
    """
    ids = rows.get_column(id_col).to_list()
    first: dict = {}
    group = np.fromiter((first.setdefault(i, len(first)) for i in ids), dtype=np.int64, count=len(ids))
    n_groups = len(first)
    if n_groups == len(ids):  # every row its own entity: the rows are the table
        return rows

    def ms(name: str) -> np.ndarray:  # float64, NaN for null (epoch ms are exact)
        return rows.get_column(name).to_numpy().astype(np.float64, copy=False)

    n = len(ids)
    first_row, first_ms, chosen, set_max, newest, updated_max = merge_rows(
        group, n_groups, _rows_of([ms(c) for c in stage_cols], n), _rows_of([ms(_time_of(f)) for f in fields], n),
        _rows_of([series.not_null(rows.get_column(f)) for f in fields], n, bool), ms("updated_ms"))
    return series.frame(
        [series.take(rows.get_column(id_col), first_row)]
        + [series.i64_or_null(col, first_ms[s]) for s, col in enumerate(stage_cols)]
        + [_take_or_null(rows.get_column(f), chosen[j]) for j, f in enumerate(fields)]
        + [series.i64_or_null(_time_of(f), set_max[j]) for j, f in enumerate(fields)]
        + [_take_or_null(rows.get_column("status"), newest), series.i64_or_null("updated_ms", updated_max)]
    )


def _rows_of(arrays: list[np.ndarray], n: int, dtype=np.float64) -> np.ndarray:
    """``arrays`` as the rows of one C-contiguous (len, n) array (the kernel's layout)."""
    return np.ascontiguousarray(np.vstack(arrays), dtype=dtype) if arrays else np.zeros((0, n), dtype=dtype)


def _take_or_null(col: pl.Series, rows: np.ndarray) -> pl.Series:
    """``col`` at ``rows``, null where a row is -1."""
    if rows.min(initial=0) >= 0:
        return series.take(col, rows)
    padded = col.clone().append(pl.Series(col.name, [None], dtype=col.dtype))
    return series.take(padded, np.where(rows < 0, col.len(), rows))


def merge_reference(rows: pl.DataFrame, id_col: str, stage_cols: list[str], fields: list[str]) -> pl.DataFrame:
    """:func:`merge` as one polars group-by (the plain formulation the tests compare it with)."""
    newest = pl.col("updated_ms")
    return rows.group_by(id_col, maintain_order=True).agg(
        [pl.col(col).min() for col in stage_cols]
        + [pl.col(f).sort_by(_time_of(f), maintain_order=True, nulls_last=False).drop_nulls().last() for f in fields]
        + [pl.col(_time_of(f)).max() for f in fields]
        + [pl.col("status").sort_by(newest, maintain_order=True).last(), newest.max()]
    )
