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
                   help="partitions of the input topic when it is created (default 1: keeps the input order, see the module docs)")


def register(sub) -> None:
    w = sub.add_parser(
        "worker",
        help="run the city pipeline as a Faust worker over Kafka (the distributed driver)",
        description=(
            "Consume raw JSON-line records from the input topic (key = sensor_id) in micro-batches, run the same "
            "pipeline as `citybrain run`, publish the district and city vital signs of each closed window to "
            "citybrain.vitals and rejected/late records to citybrain.deadletter (JSON). The pipeline snapshot and "
            "the applied input offsets are checkpointed under --out after each batch, so a restarted worker resumes "
            "without applying anything twice. Topics are created if missing. One worker computes the whole city; "
            "several workers would need a merge stage (see streams/faust_driver.py)."
        ),
    )
    _broker_arg(w)
    w.add_argument("--city", metavar="DIR", help="city folder (city.yaml + GeoJSON); default: the shipped demo city")
    w.add_argument("--out", default="var/faust", metavar="DIR", help="where the worker checkpoint goes (default var/faust)")
    w.add_argument("--window", type=int, default=300, metavar="SECONDS", help="vital-sign window in seconds, dividing 3600 (default 300)")
    w.add_argument("--lateness", type=int, default=120, metavar="SECONDS", help="allowed lateness in seconds (default 120)")
    w.add_argument("--batch", type=int, default=10_000, metavar="N",
                   help="records per micro-batch at most (default 10000: catching up on a backlog, each batch's fixed "
                        "cost is shared by more records; live, --within bounds the wait)")
    w.add_argument("--within", type=float, default=1.0, metavar="SECONDS", help="wait at most this long to fill a batch (default 1.0)")
    w.add_argument("--app-id", default="citybrain", help="Faust app id = consumer group (default citybrain)")
    w.add_argument("--fresh", action="store_true", help="delete this worker's checkpoint before starting")
    w.set_defaults(func=worker_command)

    p = sub.add_parser(
        "produce",
        help="send a JSONL file's records to the worker's input topic",
        description="Send each line of a JSONL file as one Kafka message (key = its sensor_id) to the input topic, creating it if missing.",
    )
    p.add_argument("file", metavar="FILE", help="JSON-lines file (one record per line)")
    _broker_arg(p)
    p.set_defaults(func=produce_command)


def _check_broker(broker: str, topics: dict[str, int]) -> None:
    from streams.faust_driver import bootstrap_of, ensure_topics

    if not broker.startswith("kafka://"):
        raise UserError(f"--broker must look like kafka://HOST:PORT, got {broker!r}")
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # the UserError below says it once, without aiokafka's own error line
    try:
        asyncio.run(ensure_topics(bootstrap_of(broker), topics, timeout_s=10.0))
    except ConnectionError as exc:
        raise UserError(f"{exc}: is the broker running, and is --broker right?") from None
    finally:
        quiet.setLevel(level)


def worker_command(args) -> int:
    import faust

    from brain.pipeline import PipelineConfig
    from citybrain.commands.run import _load_city
    from streams.checkpoint_file import CheckpointFile
    from streams.faust_driver import DEADLETTER_TOPIC, INPUT_TOPIC, VITALS_TOPIC, checkpoint_path, make_app

    if args.partitions < 1:
        raise UserError(f"--partitions must be >= 1, got {args.partitions}")
    if args.batch < 1 or not args.within > 0:
        raise UserError("--batch must be >= 1 and --within > 0")
    try:
        config = PipelineConfig(window_s=args.window, allowed_lateness_s=args.lateness)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    city = _load_city(args.city)
    topic = args.topic or INPUT_TOPIC
    _check_broker(args.broker, {topic: args.partitions, VITALS_TOPIC: 1, DEADLETTER_TOPIC: 1})
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create --out {out}: {exc}") from None
    ckpt = checkpoint_path(out, args.app_id)
    if args.fresh:
        CheckpointFile(ckpt).remove()  # the latest and the previous one
    if CheckpointFile(ckpt).exists():  # check it here: inside the agent a bad checkpoint would only be a traceback in the log
        from streams.faust_driver import read_checkpoint

        try:
            read_checkpoint(ckpt, city, config)
        except ValueError as exc:
            raise UserError(f"{exc} (or pass --fresh)") from None
    app = make_app(city, args.broker, out_dir=out, input_topic=topic, partitions=args.partitions, app_id=args.app_id,
                   config=config, batch_size=args.batch, batch_within_s=args.within)
    print(f"citybrain worker: {args.broker} topic {topic} -> {VITALS_TOPIC}, {DEADLETTER_TOPIC}; checkpoint {ckpt}",
          file=sys.stderr, flush=True)
    worker = faust.Worker(app, loglevel=logging.getLevelName(logging.getLogger().level) or "WARNING", quiet=True)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


async def _produce(path: Path, bootstrap: str, topic: str) -> int:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaConnectionError, KafkaError

    from streams.faust_driver import DEADLETTER_TOPIC, MAX_LINE_BYTES, bounded_lines, record_key, too_large_letter

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=256 * 1024, request_timeout_ms=15000)
    try:
        await producer.start()
    except (KafkaConnectionError, KafkaError, OSError) as exc:
        await producer.stop()
        raise UserError(f"cannot reach the Kafka broker at {bootstrap} ({exc.__class__.__name__})") from None
    sent = refused = 0
    try:
        pending = []
        with path.open("rb") as fh:
            for line, length in bounded_lines(fh):
                if length > MAX_LINE_BYTES:  # too large to be a record: straight to the dead letters, not lost
                    pending.append(await producer.send(DEADLETTER_TOPIC, value=too_large_letter(line, length)))
                    refused += 1
                    continue
                pending.append(await producer.send(topic, value=line, key=record_key(line)))
                sent += 1
                if len(pending) >= 5000:
                    await asyncio.gather(*pending)
                    pending.clear()
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
    sent, refused = asyncio.run(_produce(path, bootstrap_of(args.broker), topic))
    wall = time.monotonic() - started
    print(f"sent {sent:,} records to {topic} in {wall:.1f} s ({sent / max(wall, 1e-9):,.0f} records/s)")
    if refused:
        print(f"{refused:,} lines too long to be records went to {DEADLETTER_TOPIC} (reason_code too_large)")
    return 0
