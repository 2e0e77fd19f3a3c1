"""The ``faust`` driver: the whole topology on any number of Faust workers over P input partitions.

Topology (stages in :mod:`streams.faust_stages`, their checkpoints in :mod:`streams.faust_state`)::

  citybrain produce ─┐ blocks of records            ┌──────────────────────────┐
  MQTT bridge ───────┼─► citybrain.records ───────► │ per-partition stage (xP)  │──► citybrain.deadletter
  (one per message)  ┘   P partitions,              │ validate, event time,     │    (reason per record)
                         partition = murmur2(sensor) │ dedup, per-sensor windows │
                                                     └────────────┬─────────────┘
                                  closed windows of its sensors,  │ Partial (sparse arrays) in pieces
                                  lifecycle rows, its watermark   ▼ of <= 512 KB, key "<partition>:<tick end>"
                                                 <app>.partials (1 partition)
                                                     ┌────────────┴─────────────┐
                                                     │ merge stage (x1)          │──► citybrain.vitals
                                                     │ tick closes when every    │    key "<table>:<window_end_ms>"
                                                     │ partition has closed it;  │    district, city, anomaly,
                                                     │ lifecycle as of its end;  │    sensor_faults, signal_plans,
                                                     │ segments, vital signs,    │    grid_unit
                                                     │ anomaly, faults, plans,   │
                                                     │ cockpit tables; alert     │──► Redis: alert state, outboxes
                                                     │ rules + alert pipeline    │    ──► delivery ──► subscribers
                                                     └──────────────────────────┘

- Input: a message is one JSON record, or a block (header ``cb-block``) of records, one per line,
  all of one partition (``citybrain produce`` and the MQTT bridge send blocks of up to 200,
  :mod:`streams.kafka_blocks`). A record's partition is Kafka's default for its ``sensor_id`` key either way, so one
  sensor's records are on one partition, in order.
- Per partition (where the sensor's partition lives): a :class:`streams.faust_stages.PartitionPipeline`
  per input partition, whichever worker holds it — the local driver's validation, event time
  (its own watermark over its sensors), duplicates and per-sensor windows. Batches come from
  ``stream.take_events(n, within=t)``: all records of a batch's messages of one partition are
  joined and decoded columnar in one ``ingest_jsonl``; with blocks, Faust's per-message cost is
  paid once per 200 records. The read path (dead letters keyed by input position, checkpoint
  cadence, idle partitions) is :mod:`streams.faust_read`.
- Merge (what spans sensors): one agent on the one partition of ``<app>.partials``. A tick closes
  once every input partition has closed it (the merged watermark is the partitions' minimum);
  then the pipeline's own tick code builds segment, district and city tables, vital signs, and
  runs the window operators (:func:`merge_operators`): anomaly scores, sensor faults, green-wave
  replanning. Its input is per-sensor window sums, O(sensors) per tick, not O(records); it is not
  the bottleneck (bench/faust_scale.py). The anomaly and fault operators run here, not per
  partition, because their series span sensors (a segment's speed averages detectors that live on
  different partitions; a detector is judged against its segment's probe speed). Lifecycle rows
  (cases, incidents, outages) travel with the partial that follows them and wait in the merge
  until the tick holding their time closes (:class:`brain.ticks.StateAsOf`), so each tick sees
  the city as of its own end, as in the local driver, whatever the batching.
- Alerts: the worker holding the merge feeds every closed tick to an
  :class:`streams.alerts.service.AlertService` (the rule packs, the alert pipeline, delivery), its
  state in Redis (``CITYBRAIN_REDIS_URL``: the same for every worker, so the merge's alert memory
  follows it). One Redis transaction per window carries the window's end, so a window the merge
  replays after a crash is skipped there: each notification goes out once, under its idempotency key.
- Roles (``citybrain worker --role``): by default every worker runs both stages (``all``) and the
  merge lands on one of them. ``--role merge`` runs only the merge agent, ``--role partitions``
  only the per-partition agent; all in one consumer group, where Faust's assignor gives each
  topic's partitions only to the workers subscribed to it. One merge worker and N partition
  workers keep the merge's tick work (green waves, vital signs, JSON of the tables, alerts) out of
  the event loops that read the records (``--merge-thread`` instead moves it to a thread of the
  worker that holds both)::

      citybrain.records (P partitions)         <app>.partials (1)           citybrain.vitals
      ┌──────────────────────┐
      │ worker --role         │  p0, p2, ...  ┐
      │ partitions (#1)       │───────────────┤  ┌──────────────────────┐   columnar tables,
      └──────────────────────┘               ├─►│ worker --role merge   │──► one message per
      ┌──────────────────────┐               │  │ tick work, alerts     │   table and window
      │ worker --role         │  p1, p3, ...  │  └──────────────────────┘
      │ partitions (#2..N)    │───────────────┘
      └──────────────────────┘

- The split merge (``citybrain worker --merge-shards S``, :mod:`streams.faust_shards`): the
  corridors are dealt over S corridor shards (``<app>.shards``, S partitions, role stage
  ``shards``); each partition stage also sends every shard its partial restricted to the shard's
  sensors, each shard closes ticks on the same merged watermark and plans its corridors' green
  waves (``signal_plans:<end>:s<k>``), and the city merge runs the rest without them.
- Published tables are columnar JSON (:mod:`streams.faust_io`: one object of column arrays per
  table and window; :func:`decode_vitals_message` gives the rows back).
- Partials are cut into pieces of at most 512 KB (:func:`streams.faust_stages.partial_pieces`)
  and reassembled by the merge: a day read at once, or a tick of a big city, fits Kafka's default
  1 MB message limit.
- Why blocks and not "Faust for membership, records read in bulk by our own consumer": with
  blocks Faust's per-message work is ~1 % of a worker's time (py-spy, bench/faust_scale.py); what
  costs is per batch (checkpoints), so a consumer of our own would save little and need its own
  assignment, offset commits and rebalance protocol. Single records (``--block 1``) work, at Faust's
  per-message speed.

Checkpointing (why not Faust tables): Faust tables need one current event per update and raise
``Operation outside of stream iteration`` after ``take()``; the pipeline's state is columnar anyway.
After a batch a stage (1) flushes its output messages, (2) atomically replaces its partition's
checkpoint (``<out>/faust-<app>-p<N>.ckpt``, or ``-merge.ckpt``; written in a thread) holding its
snapshot *and* the last input offset applied — a partition's stage at most every
``checkpoint_every_s``, its batches in between held unacknowledged —, (3) lets Faust acknowledge
the batches the checkpoint holds so their offsets get committed. A worker killed before the commit
is handed those events again; the stage skips every offset at or below its checkpoint's, so state
is applied exactly once. Outputs are at-least-once (a kill before (2) re-sends them): the merge
drops ticks a partition sends again, lifecycle updates are idempotent, published windows repeat
the same rows under the same key, dead letters the same record under the same key. tansu (the test
broker) has no transactions, so this does not rely on them. Checkpoints belong to partitions: a
partition moved by a rebalance is resumed by its new owner from the shared ``--out``.

Limits: checkpoints live in a directory every worker can reach
(not yet in a changelog topic); with no ``CITYBRAIN_REDIS_URL`` the alert state is an embedded
Redis under ``--out/redis`` that lives and dies with the worker holding the merge (one worker only).

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
import collections
import logging
import math
import os
import time
from pathlib import Path

from brain.city.model import City
from brain.ingest import MAX_LINE_BYTES  # noqa: F401 (citybrain produce uses it from here)
from brain.pipeline import PipelineConfig
from streams.faust_io import (  # noqa: F401 (the worker command, the MQTT bridge, tools and tests use them from here)
    _dumps, bootstrap_of, bounded_lines, deadletter_messages, decode_vitals_message, ensure_topics, record_key, too_large_letter,
    vitals_messages)
from streams.faust_read import ingest_isolating  # noqa: F401 (tools and tests use it from here)
from streams.faust_stages import merge_operators, warm_up  # noqa: F401 (the worker command uses them from here)

log = logging.getLogger("citybrain.faust")

INPUT_TOPIC = "citybrain.records"
VITALS_TOPIC = "citybrain.vitals"
DEADLETTER_TOPIC = "citybrain.deadletter"
BLOCK_HEADER = "cb-block"
#: Tables the merge stage publishes per window (vital signs, then the window operators' tables).
PUBLISHED_TABLES = ("district", "city", "anomaly", "sensor_faults", "signal_plans", "grid_unit")


#: What a worker runs (``citybrain worker --role``): both stages, only the partitions', only the merge.
ROLES = ("all", "partitions", "merge")
#: The stages a role may name, joined by ``+`` (``partitions+shards``); ``all`` is every one of them.
STAGES = ("partitions", "merge", "shards")


def role_stages(role: str) -> set[str]:
    """The stages of a ``--role``: ``all``, or stages joined by ``+`` (``shards``: the corridor
    shards of the split merge, :mod:`streams.faust_shards`).

    >>> sorted(role_stages("all")), sorted(role_stages("partitions+shards"))
    (['merge', 'partitions', 'shards'], ['partitions', 'shards'])
    """
    if role == "all":
        return set(STAGES)
    stages = set(role.split("+")) if isinstance(role, str) else set()
    if not stages or not stages <= set(STAGES):
        raise ValueError(f"role must be all or some of {', '.join(STAGES)} joined by '+', got {role!r}")
    return stages


def _merge_pieces(pipeline, values: list[bytes], tables: tuple[str, ...]) -> list:
    """The pieces of one batch into the merge, their ticks closed together
    (:meth:`MergePipeline.add_pieces`); the windows closed, each with its published messages."""
    return [(w, vitals_messages([w], tables)) for w in pipeline.add_pieces(values)]


async def _in_thread(fn, *args):
    # Not cancellable half-way: a cancelled wait would leave the thread changing the merge while
    # the agent shuts down, so a cancellation waits for the thread, then goes on.
    task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise


def _quantiles(values) -> dict:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)  # noqa: E731
    return {"n": len(ordered), "p50": pick(0.5), "p99": pick(0.99), "max": round(ordered[-1], 1)}


def _hold_offsets(events) -> None:
    for event in events:
        event.message.acked = True  # Faust's consumer then never adds these offsets to its commit


def checkpoint_path(out_dir: str | os.PathLike, app_id: str = "citybrain", partition: int | str = 0) -> Path:
    """The checkpoint of input partition ``partition`` (or ``"merge"``) of app ``app_id``."""
    from streams.faust_state import stage_path

    return stage_path(out_dir, app_id, partition)


def _is_block(headers) -> bool:
    return any(name == BLOCK_HEADER for name, _ in (headers.items() if isinstance(headers, dict) else headers or ()))


def partials_topic_name(app_id: str) -> str:
    """The merge stage's input: internal to one app (one consumer group), one partition."""
    return f"{app_id}.partials"


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
    alerts=None,
    piece_bytes: int | None = None,
    idle_timeout_s: float | None = 30.0,
    checkpoint_every_s: float = 0.0,
    role: str = "all",
    merge_thread: bool = False,
    merge_shards: int = 0,
):
    """A Faust app with the two stages of the distributed engine (see the module docstring).

    ``partitions`` must be the input topic's partition count (the merge waits for every one of
    them). Topics are not declared by Faust (create them first, e.g. with :func:`ensure_topics`), so
    the same app runs against brokers whose admin API differs. ``operators``: a callable
    ``(city, config, out_dir) -> [window operators]`` for the merge stage (default :func:`merge_operators`).
    ``alerts``: an async callable returning a started :class:`streams.alerts.service.AlertService`
    (rules, alert pipeline, Redis state, delivery) that the merge stage feeds every closed window,
    as ``citybrain run`` does; None runs without alerts. ``piece_bytes``: the largest message a
    partial is cut into (default :data:`streams.faust_stages.PIECE_BYTES`).
    ``idle_timeout_s``: an input partition with nothing to read and no message for this long is
    left out of the merged watermark until it sends again (:mod:`streams.faust_read`); None: never.
    ``checkpoint_every_s``: a partition's stage is checkpointed at most this often (0: after every
    batch); the batches in between are held — not acknowledged, so their offsets are not committed —
    until the checkpoint that holds them.
    ``role``: which stages this worker runs — ``"all"`` (both), ``"partitions"`` (only the
    per-partition stage: it never holds the merge) or ``"merge"`` (only the merge stage); one
    consumer group either way, Faust assigns each topic's partitions among the workers subscribed to
    it; stages may be joined by ``+`` (:func:`role_stages`), ``shards`` being the corridor shards.
    ``merge_thread``: the merge's tick work (and the encoding of its published tables) runs in
    a thread, so the event loop keeps serving the partitions' batches while a tick closes.
    ``merge_shards``: the split merge (:mod:`streams.faust_shards`): 0 (default) plans the green
    waves in the merge; S > 0 deals the corridors over S shards (``<app>.shards``, S partitions, to
    create first) planned by the workers whose role has ``shards``; every worker must give the same S.
    ``app.citybrain`` holds the settings and, while running, the stages' states.
    """
    import faust

    from streams.faust_stages import PIECE_BYTES, MergePipeline
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
    if idle_timeout_s is not None and not (isinstance(idle_timeout_s, (int, float)) and math.isfinite(idle_timeout_s) and idle_timeout_s > 0):
        raise ValueError(f"idle_timeout_s must be > 0 seconds or None, got {idle_timeout_s!r}")
    if not (isinstance(checkpoint_every_s, (int, float)) and math.isfinite(checkpoint_every_s) and checkpoint_every_s >= 0):
        raise ValueError(f"checkpoint_every_s must be >= 0 seconds, got {checkpoint_every_s!r}")
    if not isinstance(worker_id, int) or worker_id < 0:
        raise ValueError(f"worker_id must be a non-negative int, got {worker_id!r}")
    stages = role_stages(role)
    if not isinstance(merge_shards, int) or merge_shards < 0:
        raise ValueError(f"merge_shards must be an int >= 0, got {merge_shards!r}")
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
    dead_out = app.topic(deadletter_topic, key_serializer="raw", value_serializer="raw", partitions=1)
    settings = app.citybrain = type("CityBrainSettings", (), {})()
    settings.topic_names = [input_topic, vitals_topic, deadletter_topic, partials_name]
    shard_plan = shards_out = None
    if merge_shards:  # the split merge: green waves per corridor shard, the rest in the city merge
        from streams.faust_shards import ShardPlan, shards_topic_name

        shard_plan = ShardPlan(city, merge_shards)
        shards_out = app.topic(shards_topic_name(app_id), key_type=bytes, value_type=bytes, key_serializer="raw",
                               value_serializer="raw", partitions=merge_shards)
        settings.topic_names.append(shards_topic_name(app_id))
    settings.shard_plan = shard_plan
    settings.out_dir = Path(out_dir)
    settings.states = {}
    settings.merge = None
    settings.alerts = None  # the merge stage's alert service, while this worker holds the merge
    settings.role = role
    # wall ms from the Kafka timestamp of the oldest partial piece of a merge batch (its partition
    # stage sent it) to the windows the batch closed being published: the merge's window-close
    # latency, the last 2,000 in the status file
    settings.close_latency_ms = collections.deque(maxlen=2000)
    piece_bytes = int(os.environ.get("CITYBRAIN_FAUST_PIECE_BYTES", "0") or 0) or piece_bytes or PIECE_BYTES

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

    from streams.faust_read import Message, PartitionReader

    async def send(topic: str, key: bytes, value: bytes) -> None:
        if topic == deadletter_topic:
            await dead_out.send(key=key, value=value)
        else:
            await partials_out.send(key=key, value=value, partition=0)

    async def flush() -> None:
        await app.producer.flush()

    async def send_shard(shard: int, key: bytes, value: bytes) -> None:
        await shards_out.send(key=key, value=value, partition=shard)

    reader = PartitionReader(city, config, out_dir, app_id, send=send, flush=flush, input_topic=input_topic,
                             partials_topic=partials_name, deadletter_topic=deadletter_topic, worker_id=worker_id,
                             piece_bytes=piece_bytes, idle_timeout_s=idle_timeout_s, crash_after=crash_after,
                             checkpoint_every_s=checkpoint_every_s, hold=lambda m: m.incref(), release=lambda m: m.ack(app.consumer),
                             shards=shard_plan, send_shard=send_shard)
    settings.reader = reader
    settings.states = reader.states

    async def per_partition(stream):
        async for events in stream.take_events(batch_size, within=batch_within_s):
            by_partition: dict[int, list] = {}
            for event in events:
                msg = event.message
                by_partition.setdefault(msg.partition, []).append(Message(msg.offset, msg.value, _is_block(msg.headers), msg))
            try:
                for partition, messages in sorted(by_partition.items()):
                    await reader.batch(partition, messages)
            except asyncio.CancelledError:
                # Shutdown in mid-batch. take_events() acks the batch in a ``finally`` even so; marking
                # its messages acked first keeps their offsets uncommitted, so they come back on restart.
                _hold_offsets(events)
                raise
            except Exception:
                fail_stop(events)

    if "partitions" in stages:  # this worker's consumer subscribes to the input topic only if it runs the partitions' stage
        per_partition = app.agent(records, name="citybrain-partition")(per_partition)
    if "partitions" in stages and (idle_timeout_s is not None or checkpoint_every_s > 0):
        @app.timer(interval=max(0.2, min(1.0, (idle_timeout_s or 4.0) / 4, (checkpoint_every_s or 2.0) / 2)))
        async def partition_timer():
            # Held batches whose checkpoint is due (a quiet or revoked partition's too), then the idle
            # check over the input partitions this worker holds, with the high-water mark its consumer
            # last fetched (None before a first fetch).
            try:
                held = [tp for tp in app.consumer.assignment() if tp.topic == input_topic]
                highwaters = {tp.partition: app.consumer.highwater(tp) for tp in held}
            except Exception:  # noqa: BLE001 - consumer not started yet, or a rebalance under way: no idle check now
                highwaters = {}
            try:
                await reader.checkpoint_due()
                await reader.check_idle(highwaters)
            except asyncio.CancelledError:
                raise
            except Exception:
                fail_stop([])

    async def merge_stage() -> StageState:
        state = settings.merge
        if state is not None and not state.stale():
            return state
        # First batch here, or the merge was on another worker meanwhile: its alert memory is in
        # Redis and its checkpoint on disk, both newer than this worker's.
        parts = {}
        if alerts is not None:
            if settings.alerts is not None:
                await settings.alerts.close()
            settings.alerts = parts["alerts"] = await alerts()
            settings.alerts_reconciled = time.monotonic()
        ops = (operators or merge_operators)(city, config, out_dir)
        if shard_plan is not None:  # the corridor shards plan the green waves
            from streams.greenwave_operator import GreenWaveOperator

            ops = [op for op in ops if not isinstance(op, GreenWaveOperator)]
        state = StageState(MergePipeline(city, config, partitions=partitions, window_operators=ops),
                           checkpoint_path(out_dir, app_id, "merge"), parts)
        if state.load():
            log.info("merge resumed", extra={"fields": {"offset": state.offset}})
        settings.merge = state
        return state

    async def merge(stream):
        try:
            async for events in stream.take_events(max(64, batch_size), within=min(batch_within_s, 0.25)):
                try:
                    state = await merge_stage()
                    fresh = [event.message for event in events if event.message.offset > state.offset]
                    top = max((msg.offset for msg in fresh), default=-1)
                    # The batch's pieces in, then its ticks closed in one stacked pass (not a pass per
                    # partial: the vital signs' and operators' fixed cost per pass is most of a small
                    # pass's CPU); the same windows, tables and order as piece by piece.
                    values = [msg.value for msg in fresh]
                    if not values:
                        closed = []
                    elif merge_thread:
                        closed = await _in_thread(_merge_pieces, state.pipeline, values, tables)
                    else:
                        closed = _merge_pieces(state.pipeline, values, tables)
                    sent_s = [msg.timestamp for msg in fresh if msg.timestamp]
                    if closed and sent_s:  # from the oldest piece of the batch (the windows waited for the whole batch)
                        settings.close_latency_ms.append(time.time() * 1000.0 - min(sent_s) * 1000.0)
                    for window_result, messages in closed:
                        for key, value in messages:
                            await vitals_out.send(key=key, value=value)
                        if settings.alerts is not None:
                            # Rules, alert pipeline and one Redis transaction per window, with the
                            # window's end as its sequence: a window the merge replays after a crash
                            # is skipped there, so a page goes out once (idempotency key).
                            await settings.alerts.on_window_result(window_result)
                    if top < 0:
                        continue
                    await app.producer.flush()
                    state.offset = top
                    await state.save_async({"merged_upto": state.pipeline.merged_upto(), "closed_upto": state.pipeline.closed_upto,
                                "close_latency_ms": _quantiles(settings.close_latency_ms),
                                "windows": state.pipeline.counters["windows_closed"], "worker_id": worker_id})
                    if settings.alerts is not None and time.monotonic() - settings.alerts_reconciled > 10.0:
                        settings.alerts_reconciled = time.monotonic()
                        await settings.alerts.on_checkpoint()  # Redis reconciled with memory, as the local driver does
                except asyncio.CancelledError:
                    _hold_offsets(events)
                    settings.merge = None  # it may have merged past its checkpoint: the next start reloads that
                    raise
                except Exception:
                    fail_stop(events)
        finally:
            if settings.alerts is not None:  # what is not delivered yet stays in Redis, for the next merge
                service, settings.alerts = settings.alerts, None
                try:
                    await asyncio.shield(service.close())
                except Exception:  # noqa: BLE001 - shutting down: the alert state is in Redis and the checkpoint
                    log.warning("alert service did not close cleanly", exc_info=True)

    if "merge" in stages:  # the one partition of the partials topic goes to a worker subscribed to it
        merge = app.agent(partials_out, name="citybrain-merge")(merge)
    shards = None
    if shard_plan is not None and "shards" in stages:
        from streams.faust_shards import add_shard_agent

        shards = add_shard_agent(app, shards_out, vitals_out, city=city, config=config, out_dir=out_dir, app_id=app_id,
                                 partitions=partitions, plan=shard_plan, worker_id=worker_id, batch_size=batch_size,
                                 batch_within_s=batch_within_s, fail_stop=fail_stop, hold_offsets=_hold_offsets)
    settings.agents = (per_partition, merge, shards)
    return app
