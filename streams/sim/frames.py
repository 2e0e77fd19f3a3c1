"""Columnar record frames: the polars schema of each record kind and their JSONL encoding.

The schema is derived from the msgspec structs in :mod:`brain.schemas`, so a field added there
shows up here without edits: ``sensor_id`` (String), ``ts_ms`` (Int64), then the kind's own
fields in declaration order, ``float`` as Float64, ``int`` as Int64, strings and literals as String.

Example:
    >>> import polars as pl
    >>> list(KIND_SCHEMAS["traffic"])
    ['sensor_id', 'ts_ms', 'volume_veh', 'occupancy_pct', 'speed_kmh', 'interval_s']
    >>> import numpy as np
    >>> df = build_frame("traffic", SensorIds(["L1"]).gather(np.array([0])), np.array([0]),
    ...                  {"volume_veh": np.array([12.0]), "occupancy_pct": np.array([8.5]),
    ...                   "speed_kmh": np.array([52.0]), "interval_s": np.array([60.0])})
    >>> to_jsonl({"traffic": df})
    b'{"kind":"traffic","sensor_id":"L1","ts_ms":0,"volume_veh":12.0,"occupancy_pct":8.5,"speed_kmh":52.0,"interval_s":60.0}\\n'
"""
from __future__ import annotations

from collections.abc import Mapping

import msgspec
import msgspec.inspect as mi
import numpy as np
import polars as pl

from brain.schemas import RECORD_TYPES


def _dtype(t: mi.Type) -> tuple[pl.DataType, bool]:
    """Polars dtype of one msgspec field type, and whether it is nullable."""
    nullable = False
    if isinstance(t, mi.UnionType):
        others = [x for x in t.types if not isinstance(x, mi.NoneType)]
        nullable = len(others) < len(t.types)
        if len(others) != 1:
            raise TypeError(f"unsupported union field type {t!r}")
        t = others[0]
    if isinstance(t, mi.FloatType):
        return pl.Float64(), nullable
    if isinstance(t, mi.IntType):
        return pl.Int64(), nullable
    if isinstance(t, (mi.StrType, mi.LiteralType)):
        return pl.String(), nullable
    raise TypeError(f"unsupported field type {t!r}")


def _schemas() -> tuple[dict[str, pl.Schema], dict[str, frozenset[str]]]:
    schemas: dict[str, pl.Schema] = {}
    nullables: dict[str, frozenset[str]] = {}
    for kind, rtype in RECORD_TYPES.items():
        info = mi.type_info(rtype)
        fields = {f.name: f for f in info.fields}
        order = ["sensor_id", "ts_ms"] + [n for n in rtype.__struct_fields__ if n not in ("sensor_id", "ts_ms")]
        cols: dict[str, pl.DataType] = {}
        nulls = set()
        for name in order:
            dtype, nullable = _dtype(fields[name].type)
            cols[name] = dtype
            if nullable:
                nulls.add(name)
        schemas[kind] = pl.Schema(cols)
        nullables[kind] = frozenset(nulls)
    return schemas, nullables


#: kind -> polars schema (column order: sensor_id, ts_ms, then the kind's fields).
KIND_SCHEMAS: dict[str, pl.Schema]
#: kind -> names of the fields that may be null.
NULLABLE_FIELDS: dict[str, frozenset[str]]
KIND_SCHEMAS, NULLABLE_FIELDS = _schemas()


def empty_frame(kind: str) -> pl.DataFrame:
    """A zero-row frame of one kind."""
    return pl.DataFrame(schema=KIND_SCHEMAS[kind])


class SensorIds:
    """The sensor ids of one group, ready to be gathered into a ``sensor_id`` column quickly.

    Example:
        >>> SensorIds(["a", "b"]).gather(np.array([1, 1, 0])).to_list()
        ['b', 'b', 'a']
    """

    def __init__(self, ids: list[str]):
        self.objects = np.array(ids, dtype=object)
        self.series = pl.Series("sensor_id", ids, dtype=pl.String)

    def __len__(self) -> int:
        return len(self.objects)

    def gather(self, idx: np.ndarray) -> pl.Series:
        # Small gathers are cheaper through numpy objects, large ones through polars (fixed overhead, fast body).
        if len(idx) > 2000:
            return self.series[idx]
        return pl.Series("sensor_id", self.objects[idx], dtype=pl.String)


def build_frame(kind: str, sensor_ids: pl.Series, ts_ms: np.ndarray, columns: Mapping[str, np.ndarray]) -> pl.DataFrame:
    """Assemble one kind's frame from numpy columns (NaN = null in nullable float fields; absent nullable
    fields become all-null). ``sensor_ids`` must be a String Series named ``sensor_id``."""
    schema = KIND_SCHEMAS[kind]
    nullable = NULLABLE_FIELDS[kind]
    n = len(ts_ms)
    series = [sensor_ids, pl.Series("ts_ms", np.asarray(ts_ms, dtype=np.int64))]
    for name, dtype in list(schema.items())[2:]:
        value = columns.get(name)
        if value is None:
            if name not in nullable:
                raise ValueError(f"{kind}: required field {name!r} missing")
            series.append(pl.Series(name, [None] * n, dtype=dtype))
            continue
        arr = np.asarray(value, dtype=np.int64 if dtype == pl.Int64() else np.float64)
        if name in nullable and arr.dtype.kind == "f":
            series.append(pl.Series(name, arr, nan_to_null=True))
        else:
            series.append(pl.Series(name, arr))
    return pl.DataFrame(series)


def to_jsonl(frames: Mapping[str, pl.DataFrame], sort: bool = True) -> bytes:
    """Encode frames (kind -> frame) as JSON lines with the ``kind`` tag, one record per line.

    With ``sort=True`` lines of all kinds are interleaved by ``ts_ms`` (stable: ties keep the
    order of ``frames``, then of rows), so a consumer sees event time advancing.
    Each line decodes with ``msgspec.json.decode(line, type=brain.schemas.Record)``.
    """
    parts: list[pl.DataFrame] = []
    for kind, df in frames.items():
        if kind not in KIND_SCHEMAS:
            raise ValueError(f"unknown record kind {kind!r}")
        if df.height == 0:
            continue
        # Encoding a struct column stays in Rust; the lines equal write_ndjson's.
        parts.append(df.select(pl.col("ts_ms"), pl.struct(pl.lit(kind).alias("kind"), pl.all()).struct.json_encode().alias("line")))
    if not parts:
        return b""
    lines = pl.concat(parts) if len(parts) > 1 else parts[0]
    if sort and len(parts) > 1:
        lines = lines.sort("ts_ms", maintain_order=True)
    return (lines["line"].str.join("\n").item() + "\n").encode()


def decode_jsonl(data: bytes) -> list[msgspec.Struct]:
    """Strictly decode JSON lines into :data:`brain.schemas.Record` structs (for tests and tools)."""
    from brain.schemas import Record

    dec = msgspec.json.Decoder(Record)
    return [dec.decode(line) for line in data.splitlines() if line]
