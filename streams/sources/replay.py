"""Replay recorded records (JSONL, CSV or Parquet) in chunks, for the streaming core to ingest.

Accepted inputs:

- a JSONL file (``.jsonl``/``.ndjson``): one record per line with its ``kind`` tag, as
  :func:`streams.sim.to_jsonl` writes. :meth:`ReplaySource.batches` yields raw ``bytes`` chunks of
  whole lines (a line is never split), so the core validates them exactly like live input;
- a CSV or Parquet file named after its record kind (``traffic.csv``, ``air.parquet``...), with the
  columns of :data:`streams.sim.KIND_SCHEMAS`; batches are ``dict[kind, polars.DataFrame]``;
- a folder written by ``citybrain simulate``: its ``events.jsonl``, or its per-kind CSV/Parquet
  files, which are merged by event time (each file must be sorted by ``ts_ms``, as written).

:meth:`ReplaySource.iter_jsonl` and :meth:`ReplaySource.iter_frames` give the other shape for any
input. Problems (missing file, unknown kind, wrong columns, unsorted file, malformed JSON when
frames are asked for) raise :class:`ReplayError`, a ``ValueError`` with the file named.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "rec.jsonl").write_bytes(b'{"kind":"noise","sensor_id":"N1","ts_ms":0,"laeq_db":55.0}\\n' * 3)
    >>> src = ReplaySource(d / "rec.jsonl", chunk_bytes=70)
    >>> [len(chunk.splitlines()) for chunk in src.batches()]
    [1, 1, 1]
    >>> src.format, sum(f["noise"].height for f in src.iter_frames())
    ('jsonl', 3)
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl

from brain.ingest import MAX_LINE_BYTES
from brain.schemas import KINDS
from streams.sim.frames import KIND_SCHEMAS, to_jsonl

JSONL_SUFFIXES = (".jsonl", ".ndjson")


class ReplayError(ValueError):
    """A recording that cannot be replayed; the message names the file and the problem.

    Example:
        >>> try:
        ...     ReplaySource("/nonexistent/rec.jsonl")
        ... except ReplayError as exc:
        ...     print(exc)
        /nonexistent/rec.jsonl: no such file or folder
    """


def _all_fields_schema() -> dict[str, pl.DataType]:
    cols: dict[str, pl.DataType] = {"kind": pl.String()}
    for schema in KIND_SCHEMAS.values():
        for name, dtype in schema.items():
            if name in cols and cols[name] != dtype:
                raise TypeError(f"field {name!r} has two dtypes across kinds")  # guards a future schema change
            cols[name] = dtype
    return cols


_ALL_FIELDS = _all_fields_schema()


class ReplaySource:
    """Lazy, chunked reader of a recording (see the module docstring).

    Example:
        >>> import tempfile, pathlib
        >>> from streams.sim import Simulator
        >>> from streams.sim.toycity import toy_city
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> for kind, df in Simulator(toy_city(), seed=0).run(0.5).items():
        ...     df.write_parquet(d / f"{kind}.parquet")
        >>> src = ReplaySource(d, chunk_rows=100)
        >>> batches = list(src.batches())
        >>> src.format, len(batches) > 1, sum(df.height for b in batches for df in b.values()) > 500
        ('parquet', True, True)

    Parameters
    ----------
    path:
        A JSONL/CSV/Parquet file, or a folder written by ``citybrain simulate``.
    chunk_bytes:
        Target size of JSONL chunks (whole lines; a longer line comes whole).
    chunk_rows:
        Rows read per file per step for CSV/Parquet.
    """

    def __init__(self, path: str | Path, chunk_bytes: int = 4 << 20, chunk_rows: int = 100_000):
        if chunk_bytes < 1 or chunk_rows < 1:
            raise ValueError("chunk_bytes and chunk_rows must be >= 1")
        self.path = Path(path)
        self.chunk_bytes = int(chunk_bytes)
        self.chunk_rows = int(chunk_rows)
        self.format, self.files = self._resolve(self.path)

    # --- what to read ---------------------------------------------------------------------------
    @staticmethod
    def _kind_of(f: Path) -> str:
        if f.stem not in KINDS:
            raise ReplayError(f"{f}: file name must be a record kind ({', '.join(KINDS)}) followed by {f.suffix}")
        return f.stem

    def _resolve(self, path: Path) -> tuple[str, dict[str, Path]]:
        if not path.exists():
            raise ReplayError(f"{path}: no such file or folder")
        if path.is_file():
            if path.suffix in JSONL_SUFFIXES:
                return "jsonl", {"": path}
            if path.suffix in (".csv", ".parquet"):
                return path.suffix[1:], {self._kind_of(path): path}
            raise ReplayError(f"{path}: unknown recording format (expected .jsonl, .ndjson, .csv or .parquet)")
        jsonl = sorted(p for p in path.iterdir() if p.suffix in JSONL_SUFFIXES)
        parquet = sorted(p for p in path.iterdir() if p.suffix == ".parquet")
        csv = sorted(p for p in path.iterdir() if p.suffix == ".csv")
        found = [name for name, files in (("jsonl", jsonl), ("parquet", parquet), ("csv", csv)) if files]
        if not found:
            raise ReplayError(f"{path}: no .jsonl, .parquet or .csv recording in this folder")
        if len(found) > 1:
            raise ReplayError(f"{path}: holds several formats ({', '.join(found)}); point at one file instead")
        if jsonl:
            if len(jsonl) > 1:
                raise ReplayError(f"{path}: several JSONL files ({', '.join(p.name for p in jsonl)}); point at one")
            return "jsonl", {"": jsonl[0]}
        files = parquet or csv
        return found[0], {self._kind_of(f): f for f in files}

    # --- JSONL ------------------------------------------------------------------------------------
    def _jsonl_chunks(self) -> Iterator[bytes]:
        f = self.files[""]
        # A line past the decoder's limit is refused there unread (too_large): only its first
        # limit + 1 bytes are kept, so one endless line cannot fill the memory.
        limit = MAX_LINE_BYTES + 1
        with f.open("rb") as fh:
            carry = b""
            skipping = False  # inside an overlong line, after its kept head
            while True:
                chunk = fh.read(self.chunk_bytes)
                if not chunk:
                    break
                if skipping:
                    nl = chunk.find(b"\n")
                    if nl < 0:
                        continue
                    yield carry + b"\n"
                    carry, chunk, skipping = b"", chunk[nl + 1 :], False
                data = carry + chunk
                cut = data.rfind(b"\n")
                if cut < 0:
                    carry = data
                    if len(carry) > limit:
                        carry, skipping = carry[:limit], True
                    continue
                body, carry = data[: cut + 1], data[cut + 1 :]
                if len(carry) > limit:
                    carry, skipping = carry[:limit], True
                yield body
            if carry.strip():
                yield carry + b"\n"

    def _jsonl_frames(self, data: bytes) -> dict[str, pl.DataFrame]:
        try:
            df = pl.read_ndjson(data, schema=_ALL_FIELDS)
        except Exception as exc:  # polars raises several error types for bad JSON
            raise ReplayError(f"{self.files['']}: malformed JSON lines ({str(exc).splitlines()[0]}); "
                              "replay as raw bytes with batches() to route bad lines to the dead-letter output") from None
        out: dict[str, pl.DataFrame] = {}
        for kind in KINDS:
            part = df.filter(pl.col("kind") == kind)
            if part.height:
                out[kind] = part.select(KIND_SCHEMAS[kind].names())
        unknown = df.filter(~pl.col("kind").is_in(list(KINDS)) | pl.col("kind").is_null())
        if unknown.height:
            raise ReplayError(f"{self.files['']}: {unknown.height} line(s) with a missing or unknown kind")
        return out

    # --- CSV / Parquet ----------------------------------------------------------------------------
    def _scan(self, kind: str, f: Path) -> pl.LazyFrame:
        schema = KIND_SCHEMAS[kind]
        try:
            if self.format == "csv":
                header = f.open("r", encoding="utf-8").readline().strip().split(",")
                if header != schema.names():
                    raise ReplayError(f"{f}: columns {header} differ from the {kind} schema {schema.names()}")
                return pl.scan_csv(f, schema=schema)
            names = pl.read_parquet_schema(f)
        except ReplayError:
            raise
        except Exception as exc:
            raise ReplayError(f"{f}: cannot read ({str(exc).splitlines()[0]})") from None
        if list(names) != schema.names():
            raise ReplayError(f"{f}: columns {list(names)} differ from the {kind} schema {schema.names()}")
        return pl.scan_parquet(f).cast(dict(schema))

    def _file_chunks(self, kind: str, f: Path) -> Iterator[pl.DataFrame]:
        last = None
        try:
            for df in self._scan(kind, f).collect_batches(chunk_size=self.chunk_rows):
                if not df.height:
                    continue
                ts = df["ts_ms"]
                if ts.null_count():
                    raise ReplayError(f"{f}: ts_ms has empty values")
                if not ts.is_sorted() or (last is not None and ts[0] < last):
                    raise ReplayError(f"{f}: rows are not sorted by ts_ms (sort the file, or replay it as one batch)")
                last = ts[-1]
                yield df
        except ReplayError:
            raise
        except Exception as exc:
            raise ReplayError(f"{f}: cannot read ({str(exc).splitlines()[0]})") from None

    def _merged_frames(self) -> Iterator[dict[str, pl.DataFrame]]:
        """Merge per-kind files by event time: each yield holds every row up to the smallest buffered max."""
        iters = {k: self._file_chunks(k, f) for k, f in self.files.items()}
        buf: dict[str, pl.DataFrame] = {}
        live = set(iters)
        while True:
            for k in list(live):
                while k in live and (k not in buf or buf[k].height == 0):
                    nxt = next(iters[k], None)
                    if nxt is None:
                        live.discard(k)
                    else:
                        buf[k] = nxt
            pending = {k: df for k, df in buf.items() if df.height}
            if not pending:
                return
            # Rows up to this time are complete in every file still being read.
            wm = min((int(pending[k]["ts_ms"][-1]) for k in live if k in pending), default=None)
            out: dict[str, pl.DataFrame] = {}
            for k in KINDS:
                if k not in pending:
                    continue
                df = pending[k]
                if wm is None:
                    out[k], buf[k] = df, df.clear()
                else:
                    cut = int(df["ts_ms"].search_sorted(wm, side="right"))
                    if cut:
                        out[k], buf[k] = df.slice(0, cut), df.slice(cut)
            if out:
                yield out

    # --- public -----------------------------------------------------------------------------------
    def batches(self) -> Iterator[bytes | dict[str, pl.DataFrame]]:
        """The recording in its native shape: JSONL ``bytes`` chunks, or ``{kind: frame}`` merged by time."""
        if self.format == "jsonl":
            yield from self._jsonl_chunks()
        else:
            yield from self._merged_frames()

    __iter__ = batches

    def iter_jsonl(self) -> Iterator[bytes]:
        """JSONL ``bytes`` chunks whatever the format (CSV/Parquet rows are encoded with :func:`to_jsonl`)."""
        for item in self.batches():
            yield item if isinstance(item, bytes) else to_jsonl(item)

    def iter_frames(self) -> Iterator[dict[str, pl.DataFrame]]:
        """``{kind: frame}`` batches whatever the format (JSONL is parsed strictly; bad lines raise)."""
        for item in self.batches():
            yield self._jsonl_frames(item) if isinstance(item, bytes) else item
