"""``citybrain publish`` (a recording -> MQTT, as sensors would send it) and ``citybrain bridge`` (MQTT -> Kafka)."""
from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from citybrain.cli import UserError


def register(sub) -> None:
    p = sub.add_parser(
        "publish",
        help="publish a JSONL recording to an MQTT broker, one sensor topic per record (QoS 1)",
        description=(
            "Publish each line of a JSON-lines file with QoS 1 to city/<district>/<kind>/<sensor_id> on the broker of "
            "--mqtt (the district from the city's sensor registry; '_' when unknown). With --per-message N, "
            "consecutive records of one district travel as JSON arrays on city/<district>/gateway/<id>, as a gateway "
            "sends them. Unacknowledged messages are sent again after a reconnection (at-least-once)."
        ),
    )
    p.add_argument("file", metavar="FILE", help="JSON-lines file (one record per line), e.g. a `citybrain simulate` events.jsonl")
    p.add_argument("--mqtt", required=True, metavar="URL", help="broker, e.g. mqtt://127.0.0.1:1883 (a topic path is ignored)")
    p.add_argument("--city", metavar="DIR", help="city folder for the sensor -> district topic levels (default: the demo city)")
    p.add_argument("--per-message", type=int, default=1, metavar="N", help="records per message (default 1; >1 sends arrays like a gateway)")
    p.add_argument("--window", type=int, default=100, metavar="N", help="messages in flight at once (default 100)")
    p.set_defaults(func=publish_command)

    b = sub.add_parser(
        "bridge",
        help="forward MQTT sensor messages to the Kafka input topic of the workers",
        description=(
            "Subscribe to the topic filter of the MQTT URL (QoS 1, persistent session, reconnect with backoff) and send "
            "every record of every payload (one JSON record or an array) to the workers' input topic, in block "
            "messages of up to --block records, each record in the partition its sensor_id key gives. A message is acknowledged to MQTT only once Kafka has all its records, so stopping or killing "
            "the bridge loses nothing. Runs until Ctrl-C."
        ),
    )
    b.add_argument("mqtt", metavar="MQTT_URL", help="e.g. mqtt://127.0.0.1:1883/city/#")
    b.add_argument("--broker", required=True, metavar="URL", help="Kafka broker, e.g. kafka://127.0.0.1:9092")
    b.add_argument("--topic", default=None, metavar="NAME", help="input topic (default citybrain.records)")
    b.add_argument("--partitions", type=int, default=1, metavar="N", help="partitions of the input topic when it is created (default 1)")
    b.add_argument("--session", default="bridge", metavar="NAME",
                   help="name of this bridge's persistent MQTT session (default 'bridge'; two bridges need two names, "
                        "or share the load with a shared subscription $share/<group>/city/#)")
    b.add_argument("--block", type=int, default=200, metavar="N",
                   help="records per Kafka message (default 200, as `citybrain produce`: the workers pay the per-message "
                        "cost once per block; a block goes out when full or when no MQTT message waits; 1 = one keyed "
                        "message per record)")
    b.set_defaults(func=bridge_command)


def _url(text: str, what: str):
    from streams.sources.mqtt import MqttUrl

    if text.startswith("mqtt://") and text.count("/") == 2:
        text += "/city/#"  # a bare broker address: the topic filter does not matter for publishing
    try:
        return MqttUrl.parse(text)
    except ValueError as exc:
        raise UserError(f"{what}: {exc}") from None


def publish_command(args) -> int:
    from brain.city import CityError, demo_city_path, load_city
    from streams.mqtt_publish import messages_of, publish
    from streams.sources.replay import ReplayError, ReplaySource

    url = _url(args.mqtt, "--mqtt")
    if args.per_message < 1 or args.window < 1:
        raise UserError("--per-message and --window must be >= 1")
    path = Path(args.file)
    try:
        replay = ReplaySource(path)
    except ReplayError as exc:
        raise UserError(str(exc)) from None
    if replay.format != "jsonl":
        raise UserError(f"{path}: publish sends JSON lines; this is {replay.format} (write JSONL with `citybrain simulate --format jsonl`)")
    try:
        city = load_city(args.city or demo_city_path())
    except CityError as exc:
        raise UserError(str(exc)) from None
    district_of = {s.id: s.district for s in city.sensors}.get
    lines = (line for chunk in replay.batches() for line in chunk.splitlines() if line.strip())
    try:
        stats = asyncio.run(publish(messages_of(lines, district_of, per_message=args.per_message), url, window=args.window))
    except ConnectionError as exc:
        raise UserError(f"{exc}: is the broker running, and is --mqtt right?") from None
    rate = stats.messages / max(stats.wall_s, 1e-9)
    print(f"published {stats.messages:,} messages to {url.host}:{url.port} in {stats.wall_s:.1f} s ({rate:,.0f} messages/s); "
          f"reconnections {stats.reconnects}, sent again {stats.resent}")
    return 0


def bridge_command(args) -> int:
    from streams.faust_driver import INPUT_TOPIC, bootstrap_of, ensure_topics
    from streams.mqtt_bridge import MqttKafkaBridge

    url = _url(args.mqtt, "bridge")
    if not args.broker.startswith("kafka://"):
        raise UserError(f"--broker must look like kafka://HOST:PORT, got {args.broker!r}")
    if args.partitions < 1:
        raise UserError(f"--partitions must be >= 1, got {args.partitions}")
    if args.block < 1:
        raise UserError(f"--block must be >= 1, got {args.block}")
    topic = args.topic or INPUT_TOPIC
    try:
        asyncio.run(ensure_topics(bootstrap_of(args.broker), {topic: args.partitions}, timeout_s=10.0))
    except ConnectionError as exc:
        raise UserError(f"{exc}: is the Kafka broker running, and is --broker right?") from None
    bridge = MqttKafkaBridge(url, args.broker, topic=topic, session_scope=args.session, block=args.block)
    print(f"citybrain bridge: {url.redacted()} -> {args.broker} topic {topic} (session {bridge.client_id})", file=sys.stderr, flush=True)
    try:
        asyncio.run(bridge.run())
    except ConnectionError as exc:
        raise UserError(str(exc)) from None
    except KeyboardInterrupt:
        pass
    s = bridge.stats
    print(f"forwarded {s.messages:,} messages ({s.lines:,} records); connections {s.connects}")
    return 0
