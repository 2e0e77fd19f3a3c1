"""The ``faust`` driver: the whole topology on any number of Faust workers over P input partitions.

Topology (stages in :mod:`streams.faust_stages`, their checkpoints in :mod:`streams.faust_state`)::

  citybrain produce ─┐ blocks of records            ┌──────────────────────────┐
  MQTT bridge ───────┼─► citybrain.records ───────► │ per-partition stage (xP)  │──► citybrain.deadletter
  (one per message)  ┘   P partitions,              │ validate, event time,     │    (reason per record)
                         partition = murmur2(sensor) │ dedup, per-sensor windows │
                                                     └────────────┬─────────────┘
                                  closed windows of its sensors,  │ Partial (sparse arrays,
                                  lifecycle rows, its watermark   ▼ key "<partition>:<tick end>")
                                                 <app>.partials (1 partition)
                                                     ┌────────────┴─────────────┐
                                                     │ merge stage (x1)          │──► citybrain.vitals
                                                     │ tick closes when every    │    key "<table>:<window_end_ms>"
                                                     │ partition has closed it;  │    district, city, anomaly,
                                                     │ segments, vital signs,    │    sensor_faults, signal_plans
                                                     │ anomaly, faults, plans    │
                                                     └──────────────────────────┘

- Input: a message is one JSON record, or a block (header ``cb-block``) of records, one per line,
  all of one partition (``citybrain produce`` sends blocks of 200; the MQTT bridge single
  records). A record's partition is Kafka's default for its ``sensor_id`` key either way, so one
  sensor's records are on one partition, in order.
- Per partition (where the sensor's partition lives): a :class:`streams.faust_stages.PartitionPipeline`
  per input partition, whichever worker holds it — the local driver's validation, event time
  (its own watermark over its sensors), duplicates and per-sensor windows. Batches come from
  ``stream.take_events(n, within=t)``: all records of a batch's messages of one partition are
  joined and decoded columnar in one ``ingest_jsonl``; with blocks, Faust's per-message cost is
  paid once per 200 records.
- Merge (what spans sensors): one agent on the one partition of ``<app>.partials``. A tick closes
  once every input partition has closed it (the merged watermark is the partitions' minimum);
  then the pipeline's own tick code builds segment, district and city tables, vital signs, and
  runs the window operators (:func:`merge_operators`): anomaly scores, sensor faults, green-wave
  replanning. Its input is per-sensor window sums, O(sensors) per tick, not O(records); it is not
  the bottleneck (bench/faust_scale.py). The anomaly and fault operators run here, not per
  partition, because their series span sensors (a segment's speed averages detectors that live on
  different partitions; a detector is judged against its segment's probe speed).
- Why blocks and not "Faust for membership, records read in bulk by our own consumer": a second
  consumer would need its own assignment, its offsets committed outside Faust, and a rebalance
  protocol of its own; blocks keep Faust doing all of that and measured within the aiokafka
  loop's reach (see bench/faust_scale.py and notes). Single-record messages still work (the
  MQTT bridge), at Faust's per-message speed.

Checkpointing (why not Faust tables): Faust tables need one current event per update and raise
``Operation outside of stream iteration`` after ``take()``; the pipeline's state is columnar anyway.
After each batch a stage (1) flushes its output messages, (2) atomically replaces its partition's
checkpoint (``<out>/faust-<app>-p<N>.ckpt``, or ``-merge.ckpt``) holding its snapshot *and* the
last input offset applied, (3) lets Faust acknowledge the batch so the offsets get committed. A
worker killed between (2) and the commit is handed those events again; the stage skips every
offset at or below its checkpoint's, so state is applied exactly once. Outputs are at-least-once
(a kill between (1) and (2) re-sends them): the merge drops ticks a partition sends again, lifecycle
updates are idempotent, and published windows repeat the same rows under the same key. tansu (the
test broker) has no transactions, so this does not rely on them. Because checkpoints belong to
partitions, a partition moved by a rebalance is resumed by its new owner from the shared ``--out``.

Limits: an input partition that never receives a record holds the merged watermark back (no
idleness timeout across partitions yet); checkpoints live in a directory every worker can reach
(not yet in a changelog topic); alert rules and the alert pipeline are not wired into the merge.

Example:
    >>> from brain.city import load_city, demo_city_path
    >>> app = make_app(load_city(demo_city_path()), "kafka://127.0.0.1:9092", out_dir="/tmp/cb-faust")
    >>> app.conf.id, sorted(app.citybrain.topic_names)
    ('citybrain', ['citybrain.deadletter', 'citybrain.partials', 'citybrain.records', 'citybrain.vitals'])
    >>> str(app.conf.datadir)  # Faust's own folder goes with the checkpoints, never into the current directory
    '/tmp/cb-faust/faust-citybrain-data'
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import os
from pathlib import Path

import msgspec

from brain.city.model import City
from brain.ingest import MAX_LINE_BYTES
from brain.pipeline import CityPipeline, PipelineConfig, StepResult, WindowResult
from streams.faust_stages import merge_operators, warm_up  # noqa: F401 (the worker command uses them from here)

log = logging.getLogger("citybrain.faust")

INPUT_TOPIC = "citybrain.records"
VITALS_TOPIC = "citybrain.vitals"
DEADLETTER_TOPIC = "citybrain.deadletter"
BLOCK_HEADER = "cb-block"
#: Tables the merge stage publishes per window (vital signs, then the window operators' tables).
PUBLISHED_TABLES = ("district", "city", "anomaly", "sensor_faults", "signal_plans")


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


def vitals_messages(windows: list[WindowResult], tables: tuple[str, ...]) -> list[tuple[bytes, bytes]]:
    """(key, value) messages for closed windows: one per window and published table it has."""
    out = []
    for w in windows:
        for name in tables:
            if name not in w.vitals:
                continue
            rows = w.vitals[name].to_dicts()
            value = {"table": name, "window_start_ms": w.window_start_ms, "window_end_ms": w.window_end_ms, "rows": rows}
            out.append((f"{name}:{w.window_end_ms}".encode(), _dumps(value)))
    return out


def deadletter_messages(result: StepResult) -> list[bytes]:
    """One JSON value per dead or late record of one step."""
    out = []
    for frame in (result.dead, result.late):
        for code, reason, raw in frame.select("reason_code", "reason", "raw").iter_rows():
            out.append(_dumps({"reason_code": code, "reason": reason, "raw": raw}))
    return out


def ingest_isolating(pipeline: CityPipeline, lines: list[bytes], before: bytes | None = None) -> tuple[list[StepResult], list[bytes]]:
    """Ingest ``lines`` as one batch; should the pipeline raise, only the lines that make it raise
    are refused: the batch is halved from a snapshot taken before each try (``before``: the
    pipeline's snapshot as it stands now, if the caller has one) down to single lines. Returns the
    results of what was applied and one dead-letter message per refused line (``reason_code``
    ``unprocessable``), each counted as a record in and a dead letter. A poison message thus goes to
    the dead-letter topic and the offsets move on, instead of the worker stopping on it forever.

    >>> from brain.city import load_city, demo_city_path
    >>> class Fragile(CityPipeline):  # a fault injected by the example: one line breaks the pipeline
    ...     def ingest_jsonl(self, buf):
    ...         if b"BOOM" in buf:
    ...             self.counters["records_in"] += 99  # damage done before the failure, rolled back
    ...             raise RuntimeError("boom")
    ...         return super().ingest_jsonl(buf)
    >>> pipe = Fragile(load_city(demo_city_path()))
    >>> good = b'{"kind":"noise","sensor_id":"NS-01","ts_ms":1780243200000,"laeq_db":55.0}'
    >>> results, refused = ingest_isolating(pipe, [good, b'{"BOOM":1}', good.replace(b"55.0", b"56.0")])
    >>> len(refused), json.loads(refused[0])["reason_code"], pipe.counters["records_in"], pipe.invariant_holds()
    (1, 'unprocessable', 3, True)
    """
    if before is None:
        before = pipeline.snapshot()
    try:
        return [pipeline.ingest_jsonl(b"\n".join(lines) + b"\n")], []
    except Exception as exc:  # noqa: BLE001 - whatever breaks, only the lines that break it are refused
        pipeline.restore(before)
        if len(lines) == 1:
            c = pipeline.counters
            c["records_in"] += 1
            c["dead_lettered"] += 1
            c["dead.unprocessable"] += 1
            log.error("record refused: the pipeline failed on it", extra={"fields": {"error": repr(exc)[:300]}})
            return [], [_dumps({"reason_code": "unprocessable", "reason": f"the pipeline failed on it ({type(exc).__name__}: {exc})"[:500],
                                "raw": lines[0][:2000].decode("utf-8", "replace")})]
        mid = len(lines) // 2
        first, refused_first = ingest_isolating(pipeline, lines[:mid])
        second, refused_second = ingest_isolating(pipeline, lines[mid:])
        return first + second, refused_first + refused_second


def read_checkpoint(path: str | os.PathLike, city: City, config: PipelineConfig | None = None):
    """A partition stage restored from its checkpoint file, and its input offset (for tools and tests)."""
    from streams.faust_stages import PartitionPipeline
    from streams.faust_state import StageState

    state = StageState(PartitionPipeline(city, config), Path(path))
    if not state.load():
        raise FileNotFoundError(path)
    return state.pipeline, state.offset


def _hold_offsets(events) -> None:
    for event in events:
        event.message.acked = True  # Faust's consumer then never adds these offsets to its commit


def checkpoint_path(out_dir: str | os.PathLike, app_id: str = "citybrain", partition: int | str = 0) -> Path:
    """The checkpoint of input partition ``partition`` (or ``"merge"``) of app ``app_id``."""
    from streams.faust_state import stage_path

    return stage_path(out_dir, app_id, partition)


def partials_topic_name(app_id: str) -> str:
    """The merge stage's input: internal to one app (one consumer group), one partition."""
    return f"{app_id}.partials"


def block_lines(value: bytes, headers) -> list[bytes]:
    """The records of one input message: a block (header ``cb-block``) holds one per line; any other
    message is one record, its newlines read as JSON whitespace.

    >>> block_lines(b'{"a":1}\\n{"a":2}', [("cb-block", b"1")]), block_lines(b'{"a":\\n1}', [])
    ([b'{"a":1}', b'{"a":2}'], [b'{"a": 1}'])
    """
    if not value:
        return []
    for name, _ in (headers.items() if isinstance(headers, dict) else headers or ()):
        if name == BLOCK_HEADER:
            return [line for line in value.split(b"\n") if line.strip()]
    return [value.rstrip(b"\n").replace(b"\n", b" ")]


def make_app(
    city: City,
    broker_url: str,
    *,
    out_dir: str | os.PathLike,
    input_topic: str = INPUT_TOPIC,
    vitals_topic: str = VITALS_TOPIC,
    deadletter_topic: str = DEADLETTER_TOPIC,
    partitions: int = 1,
    app_id: str = "citybrain",
    worker_id: int = 0,
    config: PipelineConfig | None = None,
    tables: tuple[str, ...] = PUBLISHED_TABLES,
    batch_size: int = 1000,
    batch_within_s: float = 1.0,
    web: bool = False,
    operators=None,
):
    """A Faust app with the two stages of the distributed engine (see the module docstring).

    ``partitions`` must be the input topic's partition count (the merge waits for every one of
    them). Topics are not declared by Faust (create them first, e.g. with :func:`ensure_topics`), so
    the same app runs against brokers whose admin API differs. ``operators``: a callable
    ``(city, config, out_dir) -> [window operators]`` for the merge stage (default :func:`merge_operators`).
    ``app.citybrain`` holds the settings and, while running, the stages' states.
    """
    import faust

    from streams.faust_stages import MergePipeline, PartitionPipeline, decode_partial, encode_partial
    from streams.faust_state import StageState

    if not isinstance(city, City):
        raise ValueError(f"city must be a brain.city.model.City, got {type(city).__name__}")
    if not broker_url.startswith("kafka://"):
        raise ValueError(f"broker_url must look like kafka://HOST:PORT, got {broker_url!r}")
    if not isinstance(partitions, int) or partitions < 1:
        raise ValueError(f"partitions must be a positive int, got {partitions!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if not (isinstance(batch_within_s, (int, float)) and math.isfinite(batch_within_s) and batch_within_s > 0):
        raise ValueError(f"batch_within_s must be > 0 seconds, got {batch_within_s!r}")
    if not isinstance(worker_id, int) or worker_id < 0:
        raise ValueError(f"worker_id must be a non-negative int, got {worker_id!r}")
    config = config or PipelineConfig()
    app = faust.App(
        app_id,
        broker=broker_url,
        store="memory://",
        processing_guarantee="at_least_once",  # no transactions on every broker (tansu has none)
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        consumer_auto_offset_reset="earliest",
        topic_partitions=partitions,
        topic_allow_declare=False,
        topic_disable_leader=True,
        web_enabled=web,
        web_bind="127.0.0.1",
        # Faust's own data folder (``<id>-data/v1/tables``, unused with memory tables) goes with the
        # checkpoints, not into whatever the current directory is (it left ``bench123-data`` folders
        # in the repository root).
        datadir=str(Path(out_dir) / f"faust-{app_id}-data"),
        # a merge message carries a whole tick's closed windows (a day read at once: megabytes)
        consumer_max_fetch_size=32 << 20,
        producer_max_request_size=32 << 20,
        stream_buffer_maxsize=max(4096, 2 * batch_size),
    )
    records = app.topic(input_topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                        partitions=partitions)
    partials_name = partials_topic_name(app_id)
    partials_out = app.topic(partials_name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                             partitions=1)
    vitals_out = app.topic(vitals_topic, key_serializer="raw", value_serializer="raw", partitions=1)
    dead_out = app.topic(deadletter_topic, value_serializer="raw", partitions=1)
    settings = app.citybrain = type("CityBrainSettings", (), {})()
    settings.topic_names = [input_topic, vitals_topic, deadletter_topic, partials_name]
    settings.out_dir = Path(out_dir)
    settings.states = {}
    settings.merge = None

    # Fault injection for the kill tests: die like SIGKILL right after the n-th batch of a partition
    # has flushed its outputs and before its checkpoint, the one moment that makes outputs repeat.
    crash_after = int(os.environ.get("CITYBRAIN_FAUST_EXIT_AFTER_BATCH", "0") or 0)

    def fail_stop(events) -> None:
        # Fail-stop (the pipeline's own failures are isolated by ingest_isolating; this is the broker
        # or the disk): an agent restarted in-process would read on past this batch and lose it.
        # Exiting before any ack leaves the offsets uncommitted; the next start resumes from the
        # checkpoints and reads the batch again.
        _hold_offsets(events)
        log.critical("batch failed; stopping the worker so its records are read again", exc_info=True)
        logging.shutdown()
        os._exit(70)

    def stage(partition: int) -> StageState:
        state = settings.states.get(partition)
        if state is None or state.stale():  # first batch here, or the partition was elsewhere meanwhile
            state = StageState(PartitionPipeline(city, config, partition=partition), checkpoint_path(out_dir, app_id, partition))
            if state.load():
                log.info("partition resumed", extra={"fields": {"partition": partition, "offset": state.offset}})
            settings.states[partition] = state
        return state

    @app.agent(records, name="citybrain-partition")
    async def per_partition(stream):
        async for events in stream.take_events(batch_size, within=batch_within_s):
            by_partition: dict[int, list] = {}
            for event in events:
                by_partition.setdefault(event.message.partition, []).append(event.message)
            try:
                for partition, messages in sorted(by_partition.items()):
                    state = stage(partition)
                    lines: list[bytes] = []
                    top = -1
                    for msg in messages:
                        if msg.offset <= state.offset:
                            continue  # applied before a restart; its offset was not committed yet
                        lines.extend(block_lines(msg.value, msg.headers))
                        top = max(top, msg.offset)
                    if top < 0:
                        continue
                    if state.last_blob is None:
                        state.last_blob = state.pipeline.snapshot()  # what the first batch rolls back to, should it fail
                    results, refused = ingest_isolating(state.pipeline, lines, state.last_blob) if lines else ([], [])
                    for result in results:
                        for value in deadletter_messages(result):
                            await dead_out.send(value=value)
                    for value in refused:
                        await dead_out.send(value=value)
                    for part in state.pipeline.take_partials():
                        await partials_out.send(key=part.key, value=encode_partial(part), partition=0)
                    await app.producer.flush()
                    state.offset = top
                    state.batches += 1
                    if state.batches == crash_after:  # fault injection (tests): outputs sent, checkpoint not saved
                        os._exit(137)
                    state.save({"closed_upto": state.pipeline.closed_upto, "worker_id": worker_id})
            except asyncio.CancelledError:
                # Shutdown in mid-batch. take_events() acks the batch in a ``finally`` even so; marking
                # its messages acked first keeps their offsets uncommitted, so they come back on restart.
                _hold_offsets(events)
                raise
            except Exception:
                fail_stop(events)

    @app.agent(partials_out, name="citybrain-merge")
    async def merge(stream):
        async for events in stream.take_events(max(64, batch_size), within=min(batch_within_s, 0.25)):
            try:
                state = settings.merge
                if state is None or state.stale():
                    ops = (operators or merge_operators)(city, config, out_dir)
                    state = StageState(MergePipeline(city, config, partitions=partitions, window_operators=ops),
                                       checkpoint_path(out_dir, app_id, "merge"))
                    if state.load():
                        log.info("merge resumed", extra={"fields": {"offset": state.offset}})
                    settings.merge = state
                top = -1
                for event in events:
                    msg = event.message
                    if msg.offset <= state.offset:
                        continue
                    top = max(top, msg.offset)
                    for window_result in state.pipeline.add(decode_partial(msg.value)):
                        for key, value in vitals_messages([window_result], tables):
                            await vitals_out.send(key=key, value=value)
                if top < 0:
                    continue
                await app.producer.flush()
                state.offset = top
                state.save({"merged_upto": state.pipeline.merged_upto(), "closed_upto": state.pipeline.closed_upto,
                            "windows": state.pipeline.counters["windows_closed"], "worker_id": worker_id})
            except asyncio.CancelledError:
                _hold_offsets(events)
                raise
            except Exception:
                fail_stop(events)

    settings.agents = (per_partition, merge)
    return app


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
