"""Vital-sign history and dead letters as files, written exactly once per checkpoint.

Rows are buffered and written when the driver checkpoints, in one file per table named by the
window range it covers. After a crash the driver resumes from its last checkpoint and recomputes
what came after; files written after that checkpoint (a crash between writing them and saving
it) are removed first (:meth:`ParquetHistory.load`), so each window's rows are in the history once,
however the restarted run cuts its batches: nothing is written twice and nothing is lost.

Example:
    >>> import polars as pl, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> h = ParquetHistory(d)
    >>> h.add(300_000, {"district": pl.DataFrame({"district": ["D1"], "tpi": [3.2]})})
    >>> h.flush()
    >>> pl.read_parquet(d / "district" / "*.parquet")["tpi"].to_list()
    [3.2]
"""
from __future__ import annotations

import os
from pathlib import Path

import polars as pl


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


class ParquetHistory:
    """Appends each tick's vital-sign tables to ``DIR/<table>/<first>-<last>.parquet``."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self._rows: dict[str, list[pl.DataFrame]] = {}
        self._first: int | None = None
        self._last: int | None = None
        self.through_ms: int | None = None  # last window end written

    def add(self, window_end_ms: int, tables: dict[str, pl.DataFrame]) -> None:
        for name, frame in tables.items():
            if frame.height:
                self._rows.setdefault(name, []).append(frame.with_columns(pl.lit(window_end_ms, pl.Int64).alias("window_end_ms")) if "window_end_ms" not in frame.columns else frame)
        self._first = window_end_ms if self._first is None else self._first
        self._last = window_end_ms

    def add_stacked(self, first_end_ms: int, last_end_ms: int, tables: dict[str, pl.DataFrame]) -> None:
        """Tables of several ticks at once (each row carries its ``window_end_ms``)."""
        for name, frame in tables.items():
            if frame.height:
                self._rows.setdefault(name, []).append(frame)
        self._first = first_end_ms if self._first is None else self._first
        self._last = last_end_ms

    def flush(self) -> None:
        if self._first is None:
            return
        stem = f"{self._first}-{self._last}"
        for name, parts in self._rows.items():
            frame = pl.concat(parts, how="diagonal_relaxed")
            _atomic_write(self.directory / name / f"{stem}.parquet", frame.write_parquet)
        self.through_ms = self._last
        self._rows.clear()
        self._first = self._last = None

    def pending(self) -> int:
        return sum(len(p) for p in self._rows.values())

    def state(self) -> dict:
        """What the checkpoint commits: the last window end written (None before any)."""
        return {"through_ms": self.through_ms}

    def load(self, state: dict | None) -> list[Path]:
        """Resume at a checkpoint's :meth:`state` (None: no checkpoint): files holding windows after
        it were written but never committed, and are removed (their windows are recomputed).
        Returns the files removed."""
        self.through_ms = None if state is None else state.get("through_ms")
        removed = []
        if not self.directory.is_dir():
            return removed
        for table in self.directory.iterdir():
            for f in table.glob("*.parquet") if table.is_dir() else ():
                first = f.stem.split("-")[0]
                if first.lstrip("-").isdigit() and (self.through_ms is None or int(first) > self.through_ms):
                    f.unlink()
                    removed.append(f)
        return removed


class DeadLetterFile:
    """Dead letters (and late records) as JSON lines: ``reason_code``, ``reason``, ``raw`` per line.

    Written to ``DIR/<name>-<seq>.jsonl`` at each checkpoint; ``seq`` is part of the checkpoint.

    Example:
        >>> import polars as pl, tempfile
        >>> d = tempfile.mkdtemp()
        >>> dlq = DeadLetterFile(d)
        >>> dlq.add(pl.DataFrame({"reason_code": ["malformed"], "reason": ["malformed JSON"], "raw": ["{oops"]}))
        >>> dlq.flush()
        >>> read_dead_letters(d)["reason_code"].to_list()
        ['malformed']
    """

    def __init__(self, directory: str | os.PathLike, name: str = "deadletter"):
        self.directory = Path(directory)
        self.name = name
        self.seq = 0
        self._parts: list[pl.DataFrame] = []
        self.total = 0

    def add(self, frame: pl.DataFrame) -> None:
        if frame.height:
            self._parts.append(frame)
            self.total += frame.height

    def flush(self) -> None:
        if not self._parts:
            return
        frame = pl.concat(self._parts)
        _atomic_write(self.directory / f"{self.name}-{self.seq:06d}.jsonl", frame.write_ndjson)
        self._parts.clear()
        self.seq += 1

    def state(self) -> dict:
        return {"seq": self.seq, "total": self.total - sum(p.height for p in self._parts)}

    def load(self, state: dict | None) -> None:
        """Resume at a checkpoint's :meth:`state` (None: no checkpoint); files numbered from its
        ``seq`` on were never committed and are removed (their records are read again)."""
        self.seq, self.total = (0, 0) if state is None else (state["seq"], state["total"])
        for f in self.directory.glob(f"{self.name}-*.jsonl"):
            number = f.stem[len(self.name) + 1:]
            if number.isdigit() and int(number) >= self.seq:
                f.unlink()


def read_dead_letters(directory: str | os.PathLike, name: str = "deadletter") -> pl.DataFrame:
    files = sorted(Path(directory).glob(f"{name}-*.jsonl"))
    if not files:
        return pl.DataFrame(schema={"reason_code": pl.Utf8, "reason": pl.Utf8, "raw": pl.Utf8})
    return pl.concat([pl.read_ndjson(f) for f in files])
