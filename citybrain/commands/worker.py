"""``citybrain worker`` (the Faust driver over Kafka) and ``citybrain produce`` (JSONL file -> input topic)."""
from __future__ import annotations

import asyncio
import logging
import sys
import time
from pathlib import Path

from citybrain.cli import UserError

log = logging.getLogger("citybrain.worker")


def _broker_arg(p) -> None:
    p.add_argument("--broker", required=True, metavar="URL", help="Kafka broker, e.g. kafka://127.0.0.1:9092")
    p.add_argument("--topic", default=None, metavar="NAME", help="input topic (default citybrain.records)")
    p.add_argument("--partitions", type=int, default=1, metavar="N",
                   help="partitions of the input topic when it is created (default 1); an existing topic keeps its count. "
                        "Up to this many workers share the per-partition work")


def register(sub) -> None:
    w = sub.add_parser(
        "worker",
        help="run the city pipeline as a Faust worker over Kafka (the distributed driver)",
        description=(
            "Run the distributed engine on this worker; start as many as you like with the same --app-id and --out "
            "(a directory every worker can reach). Per input partition (records keyed by sensor_id): validation, event "
            "time, duplicates and per-sensor windows, checkpointed per partition under --out so the state follows the "
            "partition when Faust moves it. A merge stage (one partition of <app-id>.partials, on whichever worker Faust "
            "gives it) closes a window once every partition's watermark has passed it and computes segment, district "
            "and city vital signs, anomaly scores, sensor faults and green-wave plans, published to citybrain.vitals "
            "(key <table>:<window_end_ms>). Rejected and late records go to citybrain.deadletter. Topics are created "
            "if missing. See streams/faust_driver.py for the topology."
        ),
    )
    _broker_arg(w)
    w.add_argument("--city", metavar="DIR", help="city folder (city.yaml + GeoJSON); default: the shipped demo city")
    w.add_argument("--out", default="var/faust", metavar="DIR", help="checkpoints of every partition and of the merge stage (default var/faust): "
                        "the same directory for every worker of the app, so state follows its partition")
    w.add_argument("--window", type=int, default=300, metavar="SECONDS", help="vital-sign window in seconds, dividing 3600 (default 300)")
    w.add_argument("--lateness", type=int, default=120, metavar="SECONDS", help="allowed lateness in seconds (default 120)")
    w.add_argument("--batch", type=int, default=1000, metavar="N",
                   help="Kafka messages per micro-batch at most (default 1000; a block message from `citybrain produce` "
                        "carries up to 200 records, so a catching-up batch holds up to 200k records; live, --within bounds the wait)")
    w.add_argument("--within", type=float, default=1.0, metavar="SECONDS", help="wait at most this long to fill a batch (default 1.0)")
    w.add_argument("--idle-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="an input partition with nothing to read and no message for this long closes the windows its records "
                        "cover and is left out of the merged watermark until it gets records again (default 30; 0: never — "
                        "then one partition without traffic holds every window back)")
    w.add_argument("--checkpoint-s", type=float, default=2.0, metavar="SECONDS",
                   help="checkpoint each partition's stage at most this often (default 2; 0: after every batch). Offsets are "
                        "committed only once a checkpoint holds their records, so a crash loses nothing either way; a "
                        "checkpoint per batch costs a snapshot of the stage per batch (~30 ms at 50k sensors)")
    w.add_argument("--app-id", default="citybrain", help="Faust app id = consumer group (default citybrain)")
    w.add_argument("--vitals-topic", default=None, metavar="NAME", help="output topic of the merge stage (default citybrain.vitals)")
    w.add_argument("--deadletter-topic", default=None, metavar="NAME", help="dead-letter topic (default citybrain.deadletter)")
    w.add_argument("--id", type=int, default=0, metavar="N", dest="worker_id",
                   help="this worker's number, for its logs and status files (checkpoints belong to partitions, not workers)")
    w.add_argument("--fresh", action="store_true", help="delete this app's checkpoints (every partition's and the merge's) before starting, "
                        "and forget the alert state of a previous run")
    w.add_argument("--no-alerts", action="store_true",
                   help="do not evaluate alert rules in the merge stage (by default the worker holding the merge runs the rules, "
                        "the alert pipeline and delivery, with its state in CITYBRAIN_REDIS_URL — give every worker the same "
                        "Redis — or else an embedded Redis under --out/redis)")
    w.add_argument("--role", default="all", metavar="ROLE",
                   help="which stages this worker runs: all (default: the per-partition stage of whichever input partitions "
                        "Faust gives it, and the merge stage if it gets that), partitions (never the merge), merge (only the "
                        "merge). Start one --role merge and any number of --role partitions workers so the merge's tick work "
                        "(vital signs, anomaly, green waves, alerts) never holds back the partitions' reading. With "
                        "--merge-shards, shards runs corridor shards; stages join with + (partitions+shards)")
    w.add_argument("--merge-shards", type=int, default=0, metavar="S",
                   help="split merge: deal the city's corridors over S shards, each planned (green waves) by whichever worker "
                        "whose role has shards holds it (default 0: the merge plans them). Every worker of the app must give "
                        "the same S")
    w.add_argument("--merge-thread", action="store_true",
                   help="run the merge's tick work in a thread, so this worker's partitions keep reading while a tick closes "
                        "(polars and the numba kernels release the GIL; the Python parts do not)")
    w.set_defaults(func=worker_command)

    p = sub.add_parser(
        "produce",
        help="send a JSONL file's records to the worker's input topic",
        description=("Send a JSONL file's records to the input topic (created if missing), each to the partition of its "
                     "sensor_id (Kafka's default partitioner), in blocks of --block records per message."),
    )
    p.add_argument("file", metavar="FILE", help="JSON-lines file (one record per line)")
    _broker_arg(p)
    p.add_argument("--block", type=int, default=200, metavar="N",
                   help="records per Kafka message (default 200: one block per partition, the workers pay Kafka's and "
                        "Faust's per-message cost once per block)")
    p.add_argument("--single", action="store_true", help="one record per message (as the MQTT bridge sends)")
    p.set_defaults(func=produce_command)


def _check_broker(broker: str, topics: dict[str, int]) -> dict[str, int]:
    from streams.faust_driver import bootstrap_of, ensure_topics

    if not broker.startswith("kafka://"):
        raise UserError(f"--broker must look like kafka://HOST:PORT, got {broker!r}")
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # the UserError below says it once, without aiokafka's own error line
    try:
        return asyncio.run(ensure_topics(bootstrap_of(broker), topics, timeout_s=10.0))
    except ConnectionError as exc:
        raise UserError(f"{exc}: is the broker running, and is --broker right?") from None
    finally:
        quiet.setLevel(level)


def worker_command(args) -> int:
    import faust

    from brain.pipeline import PipelineConfig
    from citybrain.engine import _load_city
    from streams.checkpoint_file import CheckpointFile
    from streams.faust_driver import DEADLETTER_TOPIC, INPUT_TOPIC, VITALS_TOPIC, checkpoint_path, make_app, partials_topic_name

    if args.partitions < 1:
        raise UserError(f"--partitions must be >= 1, got {args.partitions}")
    if args.batch < 1 or not args.within > 0:
        raise UserError("--batch must be >= 1 and --within > 0")
    if not args.checkpoint_s >= 0 or args.checkpoint_s == float("inf"):
        raise UserError(f"--checkpoint-s must be >= 0 seconds (0: after every batch), got {args.checkpoint_s}")
    if not args.idle_timeout >= 0 or args.idle_timeout == float("inf"):
        raise UserError(f"--idle-timeout must be >= 0 seconds (0: never), got {args.idle_timeout}")
    if args.worker_id < 0:
        raise UserError(f"--id must be >= 0, got {args.worker_id}")
    from streams.faust_driver import role_stages

    try:
        stages = role_stages(args.role)
    except ValueError as exc:
        raise UserError(f"--role: {exc}") from None
    if args.merge_shards < 0:
        raise UserError(f"--merge-shards must be >= 0, got {args.merge_shards}")
    from streams.faust_shards import shard_stage, shards_topic_name
    try:
        config = PipelineConfig(window_s=args.window, allowed_lateness_s=args.lateness)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    city = _load_city(args.city)
    topic = args.topic or INPUT_TOPIC
    vitals_topic, dead_topic = args.vitals_topic or VITALS_TOPIC, args.deadletter_topic or DEADLETTER_TOPIC
    spec = {topic: args.partitions, vitals_topic: 1, dead_topic: 1, partials_topic_name(args.app_id): 1}
    if args.merge_shards:
        spec[shards_topic_name(args.app_id)] = args.merge_shards
    counts = _check_broker(args.broker, spec)
    if args.merge_shards and counts.get(shards_topic_name(args.app_id), args.merge_shards) != args.merge_shards:
        raise UserError(f"topic {shards_topic_name(args.app_id)} has {counts[shards_topic_name(args.app_id)]} partitions, "
                        f"--merge-shards says {args.merge_shards}: give the same number, or another --app-id")
    partitions = counts.get(topic, args.partitions)  # an existing topic keeps its own count
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create --out {out}: {exc}") from None
    paths = [checkpoint_path(out, args.app_id, p) for p in range(partitions)] + [checkpoint_path(out, args.app_id, "merge")]
    paths += [checkpoint_path(out, args.app_id, shard_stage(k)) for k in range(args.merge_shards)]
    if args.fresh:
        for ckpt in paths:
            CheckpointFile(ckpt).remove()  # the latest and the previous one
    for ckpt in paths:  # check them here: inside an agent a bad checkpoint would only be a traceback in the log
        if CheckpointFile(ckpt).exists():
            try:
                CheckpointFile(ckpt).load()
            except Exception as exc:  # noqa: BLE001 - whatever is wrong with the file, one line names it
                raise UserError(f"checkpoint {ckpt} is unreadable ({exc}); delete it or pass --fresh") from None
    ckpt = out / f"faust-{args.app_id}-*.ckpt"
    from streams.faust_driver import merge_operators, warm_up

    # before the group join; the merge stage's first start takes these (a partitions-only worker builds none)
    # The merge stage's anomaly state checkpoints as a delta against whole states in a directory of its
    # own beside its checkpoint (shared --out: whichever worker runs the merge finds them).
    bases = Path(str(checkpoint_path(out, args.app_id, "merge")).removesuffix(".ckpt") + "-anomaly-bases")
    # Timed: a worker's start-up is mostly this (numba kernels loaded, or compiled when their source
    # changed), not the group join (one generation, ~4 s: bench/faust_scale.py --log-level INFO).
    warm_s = time.monotonic()
    prebuilt = [warm_up(city, config, out, merge=bool(stages & {"merge", "shards"}), anomaly_bases=bases)]
    warm_s = time.monotonic() - warm_s

    def operators(city_, config_, out_):
        return prebuilt.pop() if prebuilt else merge_operators(city_, config_, out_, bases)

    app = make_app(city, args.broker, out_dir=out, input_topic=topic, vitals_topic=vitals_topic, deadletter_topic=dead_topic,
                   partitions=partitions, app_id=args.app_id,
                   worker_id=args.worker_id, config=config, batch_size=args.batch, batch_within_s=args.within, operators=operators,
                   idle_timeout_s=args.idle_timeout or None, checkpoint_every_s=args.checkpoint_s,
                   role=args.role, merge_thread=args.merge_thread, merge_shards=args.merge_shards,
                   alerts=None if args.no_alerts or "merge" not in stages else _alert_factory(city, args, out))
    print(f"citybrain worker {args.worker_id} (role {args.role}): {args.broker} topic {topic} ({partitions} partitions) -> {VITALS_TOPIC}, "
          f"{DEADLETTER_TOPIC}; checkpoints {ckpt}; warm-up {warm_s:.1f} s",
          file=sys.stderr, flush=True)
    worker = faust.Worker(app, loglevel=logging.getLevelName(logging.getLogger().level) or "WARNING", quiet=True)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _alert_factory(city, args, out: Path):
    """The merge stage's alert service, started when this worker first holds the merge (settings
    from the environment and --out/--window, as ``citybrain run`` reads them)."""
    from citybrain.settings import load_settings

    settings = load_settings(out_dir=str(out), window_s=args.window, allowed_lateness_s=args.lateness)
    fresh = [bool(args.fresh)]

    async def start():
        from streams.alert_wiring import maybe_alert_service

        first, fresh[0] = fresh[0], False  # --fresh forgets the previous run's alert state once, not at each rebalance
        return await maybe_alert_service(city, settings, fresh=first)

    return start


async def _produce(path: Path, bootstrap: str, topic: str, block: int = 1) -> tuple[int, int]:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaConnectionError, KafkaError

    from streams.faust_driver import BLOCK_HEADER, DEADLETTER_TOPIC, MAX_LINE_BYTES, bounded_lines, record_key, too_large_letter
    from streams.kafka_blocks import PartitionBlocks

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20, max_request_size=8 << 20,
                                request_timeout_ms=15000)
    try:
        await producer.start()
    except (KafkaConnectionError, KafkaError, OSError) as exc:
        await producer.stop()
        raise UserError(f"cannot reach the Kafka broker at {bootstrap} ({exc.__class__.__name__})") from None
    sent = refused = 0
    try:
        pending = []
        # A block's partition is the one Kafka's default partitioner gives its lines' sensor_id keys, so a
        # sensor's records land where its single-record messages land (streams/kafka_blocks.py).
        blocks = PartitionBlocks(len(await producer.partitions_for(topic)), block) if block > 1 else None

        async def send_blocks(full: list[tuple[int, list[bytes]]]) -> None:
            for partition, lines in full:
                pending.append(await producer.send(topic, value=b"\n".join(lines), partition=partition,
                                                   headers=[(BLOCK_HEADER, b"1")]))

        with path.open("rb") as fh:
            for line, length in bounded_lines(fh):
                if length > MAX_LINE_BYTES:  # too large to be a record: straight to the dead letters, not lost
                    pending.append(await producer.send(DEADLETTER_TOPIC, value=too_large_letter(line, length)))
                    refused += 1
                    continue
                sent += 1
                if blocks is None:
                    pending.append(await producer.send(topic, value=line, key=record_key(line)))
                else:
                    await send_blocks(blocks.add(line))
                if len(pending) >= 5000:
                    await asyncio.gather(*pending)
                    pending.clear()
        if blocks is not None:
            await send_blocks(blocks.drain())
        await asyncio.gather(*pending)
    except KafkaError as exc:
        raise UserError(f"sending to {topic} failed after {sent} records: {exc}") from None
    finally:
        await producer.stop()
    return sent, refused


def produce_command(args) -> int:
    from streams.faust_driver import DEADLETTER_TOPIC, INPUT_TOPIC, bootstrap_of

    path = Path(args.file)
    if not path.is_file():
        raise UserError(f"{path} is not a file")
    topic = args.topic or INPUT_TOPIC
    if args.partitions < 1:
        raise UserError(f"--partitions must be >= 1, got {args.partitions}")
    _check_broker(args.broker, {topic: args.partitions, DEADLETTER_TOPIC: 1})
    started = time.monotonic()
    if args.block < 1:
        raise UserError(f"--block must be >= 1, got {args.block}")
    sent, refused = asyncio.run(_produce(path, bootstrap_of(args.broker), topic, 1 if args.single else args.block))
    wall = time.monotonic() - started
    print(f"sent {sent:,} records to {topic} in {wall:.1f} s ({sent / max(wall, 1e-9):,.0f} records/s)")
    if refused:
        print(f"{refused:,} lines too long to be records went to {DEADLETTER_TOPIC} (reason_code too_large)")
    return 0
