"""JSON lines -> columnar frames, one per record kind, plus the lines that could not be read.

The hot path hands a whole chunk of lines to polars' NDJSON reader with one fixed schema (the
union of every kind's fields), so no per-record Python object is made. Only a chunk that polars
refuses (a malformed line, a wrong type) is re-read line by line with msgspec to find exactly
which lines are bad and why; the good lines of that chunk then take the fast path again.

Leniency is the same on both paths (so the outcome never depends on where chunks are cut):
any JSON value where a string is expected is read as its JSON text (so ``"sensor_id": 12`` is
sensor "12", which the registry gate then quarantines as unknown); an integer where a float is
expected is read as a float; anything else of the wrong type is rejected.

Example:
    >>> buf = (b'{"kind":"traffic","sensor_id":"L1","ts_ms":0,"volume_veh":3,"occupancy_pct":5,"speed_kmh":50}\\n'
    ...        b'{"kind":"traffic","sensor_id":"L1","ts_ms":"x"}\\n'
    ...        b'not json\\n')
    >>> frames, bad = decode_jsonl(buf)
    >>> frames["traffic"].height, bad.height
    (1, 2)
    >>> sorted(bad["reason_code"].to_list())
    ['malformed', 'wrong_type']
"""
from __future__ import annotations

import io
import types
import typing

import msgspec
import polars as pl

from brain.schemas import KINDS, RECORD_TYPES

CHUNK_LINES = 8192

DEAD_SCHEMA = {"reason_code": pl.Utf8, "reason": pl.Utf8, "raw": pl.Utf8}


def _polars_dtype(annotation: object) -> pl.DataType:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in args if a is not type(None))
    if annotation is int:
        return pl.Int64
    if annotation is float:
        return pl.Float64
    return pl.Utf8  # str and Literal[...] of str


def _field_dtypes() -> dict[str, dict[str, pl.DataType]]:
    per_kind: dict[str, dict[str, pl.DataType]] = {}
    for kind, t in RECORD_TYPES.items():
        hints = typing.get_type_hints(t)
        order = ["sensor_id", "ts_ms"] + [f for f in t.__struct_fields__ if f not in ("sensor_id", "ts_ms")]
        per_kind[kind] = {f: _polars_dtype(hints[f]) for f in order}
    return per_kind


#: kind -> {field: polars dtype}, in schema order (sensor_id and ts_ms included).
KIND_DTYPES: dict[str, dict[str, pl.DataType]] = _field_dtypes()

#: The union schema used to read a chunk of mixed kinds in one pass.
UNION_SCHEMA: dict[str, pl.DataType] = {"kind": pl.Utf8}
for _dtypes in KIND_DTYPES.values():
    for _name, _dtype in _dtypes.items():
        if UNION_SCHEMA.setdefault(_name, _dtype) != _dtype:  # pragma: no cover - schema design error
            raise TypeError(f"field {_name} has two types across kinds")

_STR_FIELDS = frozenset(n for n, d in UNION_SCHEMA.items() if d == pl.Utf8)
_INT_FIELDS = frozenset(n for n, d in UNION_SCHEMA.items() if d == pl.Int64)
_FLOAT_FIELDS = frozenset(n for n, d in UNION_SCHEMA.items() if d == pl.Float64)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def empty_dead() -> pl.DataFrame:
    return pl.DataFrame(schema=DEAD_SCHEMA)


def dead_frame(reason_code: str, reasons: list[str], raws: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"reason_code": [reason_code] * len(reasons), "reason": reasons, "raw": raws}, schema=DEAD_SCHEMA
    )


def _check_line(line: bytes) -> tuple[str, str] | None:
    """Why one line is unreadable, as (reason_code, reason), or None if polars will read it."""
    try:
        obj = msgspec.json.decode(line)
    except msgspec.DecodeError as exc:
        return "malformed", f"malformed JSON: {exc}"
    if not isinstance(obj, dict):
        return "malformed", f"expected a JSON object, got {type(obj).__name__}"
    for name, value in obj.items():
        if name not in UNION_SCHEMA or value is None:
            continue
        if name in _STR_FIELDS:
            continue  # polars reads any JSON value into a text field as its text; so do we
        if name in _INT_FIELDS:
            ok = isinstance(value, int) and not isinstance(value, bool) and _INT64_MIN <= value <= _INT64_MAX
            want = "int (64-bit)"
        else:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            want = "number"
        if not ok:
            return "wrong_type", f"field {name}: expected {want}, got {type(value).__name__} {str(value)[:40]!r}"
    return None


def _read(lines: list[bytes]) -> pl.DataFrame:
    return pl.read_ndjson(io.BytesIO(b"\n".join(lines)), schema=UNION_SCHEMA)


def _read_chunk(lines: list[bytes]) -> tuple[pl.DataFrame, pl.DataFrame]:
    try:
        return _read(lines), empty_dead()
    except Exception:  # polars refuses the whole chunk: find the bad lines one by one
        pass
    good: list[bytes] = []
    codes: list[str] = []
    reasons: list[str] = []
    raws: list[str] = []
    for line in lines:
        problem = _check_line(line)
        if problem is None:
            good.append(line)
        else:
            codes.append(problem[0])
            reasons.append(problem[1])
            raws.append(line.decode("utf-8", "replace")[:2000])
    frames = [] if not good else [_read_good(good, codes, reasons, raws)]
    dead = pl.DataFrame({"reason_code": codes, "reason": reasons, "raw": raws}, schema=DEAD_SCHEMA)
    return (frames[0] if frames else pl.DataFrame(schema=UNION_SCHEMA)), dead


def _read_good(good: list[bytes], codes: list[str], reasons: list[str], raws: list[str]) -> pl.DataFrame:
    try:
        return _read(good)
    except Exception:
        # A line our checker passed but polars still refuses: read singly so only it is lost, with polars' reason.
        parts = []
        for line in good:
            try:
                parts.append(_read([line]))
            except Exception as exc:
                codes.append("malformed")
                reasons.append(f"unreadable record: {str(exc)[:200]}")
                raws.append(line.decode("utf-8", "replace")[:2000])
        return pl.concat(parts, rechunk=True) if parts else pl.DataFrame(schema=UNION_SCHEMA)


def split_lines(buf: bytes) -> list[bytes]:
    """Non-blank lines of a buffer (a trailing partial line is the caller's business)."""
    return [line for line in buf.split(b"\n") if line.strip()]


def decode_jsonl(buf: bytes, chunk_lines: int = CHUNK_LINES) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """Decode JSON lines into ``{kind: frame}`` (columns = that kind's schema fields) and dead letters.

    Dead letters have ``reason_code`` (malformed, wrong_type, unknown_kind), a readable ``reason`` and
    the ``raw`` line. Blank lines are skipped, not counted.
    """
    lines = split_lines(buf)
    wide_parts: list[pl.DataFrame] = []
    dead_parts: list[pl.DataFrame] = []
    for start in range(0, len(lines), chunk_lines):
        wide, dead = _read_chunk(lines[start : start + chunk_lines])
        wide_parts.append(wide)
        if dead.height:
            dead_parts.append(dead)
    # rechunk: polars 1.x can panic on some string ops over many small view chunks
    wide = pl.concat(wide_parts, rechunk=True) if wide_parts else pl.DataFrame(schema=UNION_SCHEMA)
    frames, unknown = split_kinds(wide)
    if unknown.height:
        dead_parts.append(unknown)
    dead = pl.concat(dead_parts) if dead_parts else empty_dead()
    return frames, dead


def split_kinds(wide: pl.DataFrame) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """Split a union-schema frame into per-kind frames; rows of an unknown or missing kind become dead letters."""
    frames: dict[str, pl.DataFrame] = {}
    if wide.height == 0:
        return frames, empty_dead()
    known = wide["kind"].is_in(list(KINDS)).fill_null(False)
    for kind, part in wide.filter(known).partition_by("kind", as_dict=True, maintain_order=True).items():
        kind_name = kind[0] if isinstance(kind, tuple) else kind
        frames[kind_name] = part.select(list(KIND_DTYPES[kind_name]))
    unknown = wide.filter(~known)
    if unknown.height == 0:
        return frames, empty_dead()
    dead = unknown.select(
        pl.lit("unknown_kind").alias("reason_code"),
        pl.when(pl.col("kind").is_null())
        .then(pl.lit("missing field kind"))
        .otherwise(pl.format("unknown kind '{}' (known: {})", pl.col("kind"), pl.lit(", ".join(KINDS))))
        .alias("reason"),
        pl.struct(pl.all()).struct.json_encode().alias("raw"),
    )
    return frames, dead


def empty_frame(kind: str) -> pl.DataFrame:
    return pl.DataFrame(schema=KIND_DTYPES[kind])
