"""The incidents and outages that can still count at a tick, kept up to date by the rows that change.

The emergency and utility vital signs of a tick read only some rows of their lifecycle table: an
outage counts while it is live (``started_ms`` ≤ tick < ``ended_ms``), an incident while it is active
or was reported within the lookback. Everything else is history the table keeps for retention (7 days
by default) but no tick will read again, since ticks only move forward. A :class:`LiveRows` watches a
:class:`brain.lifecycle.LifecycleTable` and keeps, per entity, the time after which it no longer counts
(its ``until``): an update costs O(rows changed), a tick batch reads only the rows that can still count
— O(live rows), whatever the table keeps — instead of evaluating every row kept at every tick.

The rows come in table order, so the vital signs computed from them are the same, to the last bit, as
from the whole table (a differential test holds them to it). Ticks that go back (a replay starting
over, a test) read the whole table again.

Example: two outages, one ended long ago:
    >>> import polars as pl
    >>> from brain.lifecycle import LifecycleTable
    >>> table = LifecycleTable("outage_id", {"started": "started_ms", "ended": "ended_ms"}, ["utility"])
    >>> live = LiveRows(table, outage_until, ["outage_id", "started_ms", "ended_ms", "utility"])
    >>> table.update(pl.DataFrame({"outage_id": ["o1", "o2", "o1"], "status": ["started", "started", "ended"],
    ...     "ts_ms": [0, 500, 1_000], "utility": ["water", "power", None]}))
    >>> live.frame(60_000).rows()  # at 60 s only o2 is live
    [('o2', 500, None, 'power')]
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from brain import series
from brain.vitals.stack.keys import _ints

_NEVER = np.iinfo(np.int64).max
_GONE = np.iinfo(np.int64).min


def outage_until(rows: pl.DataFrame) -> np.ndarray:
    """Until when each outage can count: its end (never, while it has none); never live without a start.

    >>> import polars as pl
    >>> outage_until(pl.DataFrame({"started_ms": [0, 0, None], "ended_ms": [5_000, None, 9]})).tolist() == [5_000, _NEVER, _GONE]
    True
    """
    start, start_ok = _ints(rows.get_column("started_ms"))
    end, end_ok = _ints(rows.get_column("ended_ms"))
    return np.where(~start_ok, _GONE, np.where(end_ok, end, _NEVER))


def incident_until(lookback_ms: int) -> Callable[[pl.DataFrame], np.ndarray]:
    """Until when each incident can count: active until closed, recent for ``lookback_ms`` after it was
    reported (:class:`brain.vitals.stack.states._IncidentState`'s rule); never without a report time.

    >>> import polars as pl
    >>> incident_until(1_000)(pl.DataFrame({"reported_ms": [0, 0, None], "closed_ms": [5_000, None, 1]})).tolist()[:2]
    [5000, 9223372036854775807]
    """
    def until(rows: pl.DataFrame) -> np.ndarray:
        rep, rep_ok = _ints(rows.get_column("reported_ms"))
        closed, closed_ok = _ints(rows.get_column("closed_ms"))
        return np.where(~rep_ok, _GONE, np.where(closed_ok, np.maximum(closed, rep + lookback_ms), _NEVER))

    until.lookback_ms = int(lookback_ms)
    return until


class LiveRows:
    """The rows of ``table`` whose ``until(rows)`` is after a tick, in table order (see the module
    docstring; an example is there). ``columns``: the columns :meth:`frame` gives (all: None);
    ``lookback_ms``: the lookback its ``until`` was made for (the vital signs check it is theirs).

    >>> import polars as pl
    >>> from brain.lifecycle import LifecycleTable
    >>> table = LifecycleTable("incident_id", {"reported": "reported_ms", "closed": "closed_ms"}, ["type"])
    >>> live = LiveRows(table, incident_until(3_600_000), ["incident_id", "reported_ms", "closed_ms"])
    >>> table.update(pl.DataFrame({"incident_id": ["a", "b"], "status": ["reported", "closed"], "ts_ms": [0, 10],
    ...     "type": ["fire", "crash"]}))
    >>> [r[0] for r in live.frame(2 * 3_600_000).rows()]  # b (no report time) never counts; a is still open
    ['a']
    >>> live.size
    1
    """

    def __init__(self, table, until: Callable[[pl.DataFrame], np.ndarray], columns: list[str] | None = None) -> None:
        self.table = table
        self.until = until
        self.lookback_ms = getattr(until, "lookback_ms", None)
        self.columns = list(columns) if columns is not None else None
        self._live: dict = {}  # entity id -> until (ms)
        self._floor: int | None = None  # the first tick last read: entities over by then are gone for good
        self._stale = True
        table.watch(self)

    @property
    def size(self) -> int:
        """Entities kept as live (a gauge; it follows the live state, not the table)."""
        return len(self._live)

    # --- the table's notifications -----------------------------------------------------------------
    def reset(self) -> None:
        """The whole table changed (restored, or rebuilt): read it whole at the next tick."""
        self._stale = True

    def changed(self, old: pl.DataFrame | None, new: pl.DataFrame | None) -> None:
        """Entities ``old`` (their previous rows) left the table and ``new`` came in (updated or added)."""
        if self._stale:
            return
        id_col = self.table.id_col
        if old is not None and old.height:
            for i in old.get_column(id_col).to_list():
                self._live.pop(i, None)
        if new is not None and new.height:
            floor = self._floor if self._floor is not None else _GONE
            for i, u in zip(new.get_column(id_col).to_list(), self.until(new).tolist()):
                if u > floor:
                    self._live[i] = u

    # --- reading ------------------------------------------------------------------------------------
    def frame(self, first_tick_ms: int, state: pl.DataFrame | None = None) -> pl.DataFrame:
        """The rows that can count at ``first_tick_ms`` or later (ticks ascending from it), in table order.

        ``state``: the table as of an earlier time than now (the state as of an earlier tick of the
        same pass, which :class:`brain.ticks.StateAsOf` keeps): its rows of the live entities, in its
        order. Its stages are a subset of the table's (those reached by then), so an entity that counts
        in it at a tick from ``first_tick_ms`` on counts in the table too: none is left out. O(its rows)
        (one hash lookup each), for the rare pass whose ticks see several states.
        """
        first = int(first_tick_ms)
        if self._stale or self._floor is None or first < self._floor:
            self._start(first)
        elif first > self._floor:
            self._live = {i: u for i, u in self._live.items() if u > first}
        self._floor = first
        if state is not None:
            ids = pl.Series(list(self._live), dtype=state.schema[self.table.id_col])
            return state.filter(pl.col(self.table.id_col).is_in(ids))
        rows = self.table.rows_of(self._live)
        if rows is None:
            return pl.DataFrame()
        return series.frame([rows.get_column(c) for c in self.columns]) if self.columns is not None else rows

    def _start(self, first: int) -> None:
        frame = self.table.frame
        self._live = {}
        if frame is not None and frame.height:
            u = self.until(frame)
            keep = np.flatnonzero(u > first)
            ids = series.take(frame.get_column(self.table.id_col), keep).to_list()
            self._live = dict(zip(ids, u[keep].tolist()))
        self._stale = False
