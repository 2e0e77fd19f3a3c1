"""Vital-sign history read from the Parquet store (``<out>/history/<table>/*.parquet``) with polars.

Each table's files are read once and kept until the set of files changes (the engine adds one
file per table at each checkpoint), so repeated reads of the latest window cost a filter, not a
scan. Filters name columns; a filter on a column the table lacks is the caller's error.

Example:
    >>> import polars as pl, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "district").mkdir()
    >>> pl.DataFrame({"district": ["a", "b", "a"], "window_end_ms": [1, 1, 2], "tpi": [1.0, float("nan"), 3.0]}
    ...              ).write_parquet(d / "district" / "1-2.parquet")
    >>> h = HistoryReader(d)
    >>> h.latest("district")["rows"]
    [{'district': 'a', 'window_end_ms': 2, 'tpi': 3.0}]
    >>> h.query("district", {"district": "b"})["rows"]
    [{'district': 'b', 'window_end_ms': 1, 'tpi': None}]
    >>> h.cached_latest("district") is h.latest("district"), h.cached_latest("city")
    (True, None)
"""
from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path

import polars as pl

from dashboards.api.errors import ApiError

#: query parameter → the columns it may filter, first one present wins
FILTER_COLUMNS = {
    "district": ("district",),
    "cell": ("cell_id", "cell"),
    "segment": ("segment_id",),
    "sensor": ("sensor_id",),
    "corridor": ("corridor",),
    "category": ("category",),
}


def rows(frame: pl.DataFrame) -> list[dict]:
    """Rows as dicts with NaN as None (JSON has no NaN)."""
    out = frame.to_dicts()
    for r in out:
        for k, v in r.items():
            if isinstance(v, float) and not math.isfinite(v):
                r[k] = None
    return out


class HistoryReader:
    """Reads ``DIR/<table>/*.parquet``; see the module docstring."""

    def __init__(self, directory: str | os.PathLike, recheck_s: float = 0.0):
        self.directory = Path(directory)
        # how long a listing of a table's files is trusted by cached_latest: the engine adds files at
        # checkpoints (seconds apart); listing and stat-ing them on every request was a hot path
        self.recheck_s = recheck_s
        self._sigs: dict[str, tuple[float, tuple]] = {}
        self._cache: dict[str, tuple[tuple, pl.DataFrame]] = {}
        self._latest: dict[tuple, tuple[tuple, dict]] = {}  # (table, filters) -> (files signature, answer)
        self._lock = threading.Lock()

    def _signature(self, table: str) -> tuple | None:
        """The table's file set (names, mtimes), listed at most every ``recheck_s`` (None: no such table)."""
        now = time.monotonic()
        hit = self._sigs.get(table)
        if hit is not None and now < hit[0]:
            return hit[1]
        folder = self.directory / table
        if "/" in table or table.startswith(".") or not folder.is_dir():
            return None
        sig = tuple((f.name, f.stat().st_mtime_ns) for f in sorted(folder.glob("*.parquet")))
        if self.recheck_s > 0:
            self._sigs[table] = (now + self.recheck_s, sig)
        return sig

    def tables(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.iterdir() if p.is_dir() and any(p.glob("*.parquet")))

    def frame(self, table: str) -> pl.DataFrame:
        folder = self.directory / table
        if "/" in table or table.startswith(".") or not folder.is_dir():
            raise ApiError(404, "table", f"no history table {table!r}; known: {', '.join(self.tables()) or 'none yet'}")
        files = sorted(folder.glob("*.parquet"))
        sig = tuple((f.name, f.stat().st_mtime_ns) for f in files)
        with self._lock:
            hit = self._cache.get(table)
            if hit is not None and hit[0] == sig:
                return hit[1]
        frame = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed") if files else pl.DataFrame()
        with self._lock:
            self._cache[table] = (sig, frame)
        return frame

    def last_window_ms(self, table: str = "city") -> int | None:
        try:
            f = self.frame(table)
        except ApiError:
            return None
        return int(f["window_end_ms"].max()) if "window_end_ms" in f.columns and f.height else None

    @staticmethod
    def filtered(frame: pl.DataFrame, filters: dict[str, str | None], from_ms: int | None = None,
                 to_ms: int | None = None) -> pl.DataFrame:
        for name, value in filters.items():
            if value is None or value == "":
                continue
            cols = [c for c in FILTER_COLUMNS.get(name, (name,)) if c in frame.columns]
            if not cols:
                raise ApiError(400, name, f"this table has no {name} column (columns: {', '.join(frame.columns)})")
            frame = frame.filter(pl.col(cols[0]).cast(pl.Utf8) == value)
        if (from_ms is not None or to_ms is not None) and "window_end_ms" not in frame.columns:
            raise ApiError(400, "from_ms", "this table has no window_end_ms column to filter by time")
        if from_ms is not None:
            frame = frame.filter(pl.col("window_end_ms") >= from_ms)
        if to_ms is not None:
            frame = frame.filter(pl.col("window_end_ms") <= to_ms)
        return frame

    def latest(self, table: str, filters: dict[str, str | None] | None = None) -> dict:
        f = self.frame(table)
        key = (table, tuple(sorted((k, v) for k, v in (filters or {}).items() if v)))
        sig = self._cache[table][0] if table in self._cache else None
        hit = self._latest.get(key)
        if hit is not None and sig is not None and hit[0] == sig:  # same files as last time: same answer
            return hit[1]
        out = self._latest_of(f, table, filters)
        if len(self._latest) > 1000:
            self._latest.clear()
        self._latest[key] = (sig, out)
        return out

    def cached_latest(self, table: str, filters: dict[str, str | None] | None = None) -> dict | None:
        """:meth:`latest` if it is already known for the table's current files, else None. The same
        dict object is returned while the files are unchanged (callers may key caches on it)."""
        sig = self._signature(table)
        if sig is None:
            return None
        key = (table, tuple(sorted((k, v) for k, v in (filters or {}).items() if v)))
        hit = self._latest.get(key)
        return hit[1] if hit is not None and hit[0] == sig else None

    def _latest_of(self, f: pl.DataFrame, table: str, filters: dict[str, str | None] | None) -> dict:
        if f.height and "window_end_ms" in f.columns:
            last = f["window_end_ms"].max()
            f = f.filter(pl.col("window_end_ms") == last)
        else:
            last = None
        f = self.filtered(f, filters or {})
        return {"table": table, "window_end_ms": last, "rows": rows(f)}

    def query(self, table: str, filters: dict[str, str | None] | None = None, from_ms: int | None = None,
              to_ms: int | None = None, limit: int = 100, offset: int = 0, columns: list[str] | None = None) -> dict:
        f = self.filtered(self.frame(table), filters or {}, from_ms, to_ms)
        if columns:
            missing = [c for c in columns if c not in f.columns]
            if missing:
                raise ApiError(400, "columns", f"unknown column(s) {', '.join(missing)}")
            keep = list(dict.fromkeys(["window_end_ms", *columns])) if "window_end_ms" in f.columns else columns
            f = f.select(keep)
        if "window_end_ms" in f.columns:
            f = f.sort("window_end_ms", maintain_order=True)
        total = f.height
        page = f.slice(offset, limit)
        nxt = offset + page.height
        return {"table": table, "total": total, "offset": offset, "limit": limit,
                "next_offset": nxt if nxt < total else None, "rows": rows(page)}
