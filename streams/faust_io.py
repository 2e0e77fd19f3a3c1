"""What the distributed engine reads and writes on Kafka, apart from the stages: input record keys
and lines, the published tables of each window, dead letters, and topic set-up (no Faust in here;
:mod:`streams.faust_driver` re-exports all of it).

Published tables (``citybrain.vitals``, key ``<table>:<window_end_ms>``) are **columnar**: one JSON
object per table and window, ``{"table", "window_start_ms", "window_end_ms", "columns": {name:
[values...]}}``, each column's values in row order. Row objects repeated every column name on every
row: the merge stage spent ~10 % of a worker's time in ``json.dumps`` of them
(bench/faust_scale.py --profile); column arrays encode in ~0.6x the CPU and ~0.55x the bytes
(the demo city's published tables). Arrow IPC was measured too and was no faster for tables this
small (a fixed cost per frame).

The values are written by msgspec (half the CPU of ``json.dumps`` again: its float formatting),
which writes NaN and infinities as ``null``. So that "no data" (NaN) stays apart from a missing
value (null), a float column holding either lists their rows under ``"nonfinite": {column:
{"NaN": [rows], "Infinity": [...], "-Infinity": [...]}}``. :func:`decode_vitals_message` gives a
consumer the columns and rows with NaN and infinities back in place (it also reads the older row
format, ``"rows": [...]``, with JSON ``NaN`` literals).

Example:
    >>> import polars as pl
    >>> table = pl.DataFrame({"district": ["a", "b", "c"], "health_index": [91.5, float("nan"), None]})
    >>> ((key, value),) = table_messages("district", 0, 300_000, table)
    >>> key, value
    (b'district:300000', b'{"table":"district","window_start_ms":0,"window_end_ms":300000,"columns":{"district":["a","b","c"],"health_index":[91.5,null,null]},"nonfinite":{"health_index":{"NaN":[1]}}}')
    >>> decode_vitals_message(value)["rows"]
    [{'district': 'a', 'health_index': 91.5}, {'district': 'b', 'health_index': nan}, {'district': 'c', 'health_index': None}]
"""
from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import msgspec

from brain.ingest import MAX_LINE_BYTES

if TYPE_CHECKING:
    from brain.pipeline import StepResult

class _SensorKey(msgspec.Struct):
    sensor_id: str | None = None


_key_decoder = msgspec.json.Decoder(_SensorKey)


def record_key(line: bytes) -> bytes | None:
    """The Kafka key of one JSON-line record: its ``sensor_id`` (None when the line can't say).

    >>> record_key(b'{"kind":"noise","sensor_id":"N1","ts_ms":1}'), record_key(b'{"kind":')
    (b'N1', None)
    """
    try:
        sid = _key_decoder.decode(line).sensor_id
    except Exception:  # noqa: BLE001 - any unreadable line (bad JSON, bad UTF-8, nesting past the stack) has no key
        return None
    return sid.encode() if sid else None


def bounded_lines(fh, max_line_bytes: int = MAX_LINE_BYTES):
    """``(line, length)`` for each non-blank line of a binary file, newline stripped, never reading
    more than ``max_line_bytes`` + 1 bytes of one line into memory: a longer line comes back as its
    first ``max_line_bytes`` bytes with its full ``length``, for the caller to refuse.

    >>> import io
    >>> [(l, n) for l, n in bounded_lines(io.BytesIO(b'{"a":1}\\n\\r\\n' + b"x" * 100 + b"\\n[]"), 64)]
    [(b'{"a":1}', 7), (b'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx', 100), (b'[]', 2)]
    """
    while True:
        line = fh.readline(max_line_bytes + 1)
        if not line:
            return
        if len(line) > max_line_bytes and not line.endswith(b"\n"):
            length = len(line)
            while True:  # skip the rest of the long line, a bounded chunk at a time
                rest = fh.readline(1 << 16)
                if not rest:
                    break
                if rest.endswith(b"\n"):
                    length += len(rest.rstrip(b"\r\n"))
                    break
                length += len(rest)
            yield line[:max_line_bytes], length
            continue
        stripped = line.rstrip(b"\r\n")
        if stripped.strip():
            yield stripped, len(stripped)


def too_large_letter(line: bytes, length: int, max_line_bytes: int = MAX_LINE_BYTES) -> bytes:
    """The dead-letter message (as the worker writes them) for a line too long to send as a record."""
    return _dumps({"reason_code": "too_large", "reason": f"line of {length} bytes is longer than the limit of {max_line_bytes} bytes",
                   "raw": line[:2000].decode("utf-8", "replace")})


def _json_default(value):
    return str(value)


def _dumps(obj) -> bytes:
    # allow_nan: vital signs use NaN for "no data"; Python's json reads it back.
    return json.dumps(obj, default=_json_default, ensure_ascii=False, separators=(",", ":")).encode()


def deadletter_messages(result: StepResult) -> list[bytes]:
    """One JSON value per dead or late record of one step."""
    out = []
    for frame in (result.dead, result.late):
        for code, reason, raw in frame.select("reason_code", "reason", "raw").iter_rows():
            out.append(_dumps({"reason_code": code, "reason": reason, "raw": raw}))
    return out


_encoder = msgspec.json.Encoder(enc_hook=_json_default)
_NONFINITE = (("NaN", math.nan), ("Infinity", math.inf), ("-Infinity", -math.inf))


def _nonfinite(values: list) -> dict[str, list[int]]:
    """Rows of a float column's values holding NaN, inf or -inf (msgspec writes them all as null)."""
    # One sum first (NaN and infinities carry through it; a few us for a column of 1,000 rows): most
    # columns have none, and per-value or per-column polars work cost more than the encoding saves.
    try:
        total = sum(values)
    except TypeError:  # nulls in the column
        total = sum(v for v in values if v is not None)
    if math.isfinite(total):
        return {}
    out: dict[str, list[int]] = {}
    for row, v in enumerate(values):
        if v is not None and not math.isfinite(v):  # (a sum that overflowed finds none here)
            out.setdefault("NaN" if v != v else ("Infinity" if v > 0 else "-Infinity"), []).append(row)
    return out


def table_messages(name: str, window_start_ms: int, window_end_ms: int, frame) -> list[tuple[bytes, bytes]]:
    """The one ``(key, value)`` message of a published table of one window (columnar, see module)."""
    columns, nonfinite = {}, {}
    for col in frame.columns:
        series = frame.get_column(col)
        columns[col] = values = series.to_list()
        if series.dtype.is_float() and (special := _nonfinite(values)):
            nonfinite[col] = special
    value = {"table": name, "window_start_ms": window_start_ms, "window_end_ms": window_end_ms, "columns": columns}
    if nonfinite:
        value["nonfinite"] = nonfinite
    return [(f"{name}:{window_end_ms}".encode(), _encoder.encode(value))]


def vitals_messages(windows, tables: tuple[str, ...]) -> list[tuple[bytes, bytes]]:
    """(key, value) messages for closed windows (:class:`brain.pipeline.WindowResult`): one per
    window and published table it has, columnar (see module)."""
    out = []
    for w in windows:
        for name in tables:
            if name in w.vitals:
                out += table_messages(name, w.window_start_ms, w.window_end_ms, w.vitals[name])
    return out


def decode_vitals_message(value: bytes) -> dict:
    """A published table message as ``{"table", "window_start_ms", "window_end_ms", "rows"}`` (rows
    as dicts, in order; with ``"columns"`` too for the columnar format, NaN and infinities back in
    place), from the columnar format or the older row format; ``ValueError`` if it is neither."""
    try:
        msg = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a published table message ({exc})") from None
    if not isinstance(msg, dict) or "table" not in msg or ("columns" not in msg and "rows" not in msg):
        raise ValueError("not a published table message (no table and columns)")
    if "columns" in msg:
        cols = msg["columns"]
        names = list(cols)
        lengths = {len(v) for v in cols.values()}
        if len(lengths) > 1:
            raise ValueError(f"published table {msg['table']!r} has columns of different lengths {sorted(lengths)}")
        try:
            for col, special in msg.pop("nonfinite", {}).items():
                for kind, value in _NONFINITE:
                    for row in special.get(kind, ()):
                        cols[col][row] = value
        except (KeyError, IndexError, TypeError, AttributeError):
            raise ValueError(f"published table {msg['table']!r} has a bad nonfinite entry") from None
        msg["rows"] = [dict(zip(names, values)) for values in zip(*cols.values())]
    return msg


async def ensure_topics(bootstrap: str, spec: dict[str, int], timeout_s: float = 10.0) -> dict[str, int]:
    """Create the topics in ``spec`` ({name: partitions}) that do not exist yet; returns each one's
    partition count as the broker has it (an existing topic keeps its own).

    Raises ``ConnectionError`` with a plain message when the broker cannot be reached.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        await admin.start()
    except (KafkaConnectionError, KafkaError, OSError) as exc:
        try:
            await admin.close()
        except Exception:  # pragma: no cover - best effort after a failed start
            pass
        raise ConnectionError(f"cannot reach the Kafka broker at {bootstrap} ({exc.__class__.__name__})") from None
    try:
        existing = set(await admin.list_topics())
        todo = [NewTopic(name, num_partitions=n, replication_factor=1) for name, n in spec.items() if name not in existing]
        if todo:
            try:
                await admin.create_topics(todo)
            except TopicAlreadyExistsError:
                pass
        counts = {}
        for meta in await admin.describe_topics(list(spec)):
            counts[meta["topic"]] = len(meta["partitions"]) or spec[meta["topic"]]
        return counts
    finally:
        await admin.close()


def bootstrap_of(broker_url: str) -> str:
    """``kafka://host:port`` (Faust style) -> ``host:port`` (aiokafka style).

    >>> bootstrap_of("kafka://127.0.0.1:19092")
    '127.0.0.1:19092'
    """
    for prefix in ("kafka://", "tcp://"):
        if broker_url.startswith(prefix):
            return broker_url[len(prefix):]
    return broker_url
