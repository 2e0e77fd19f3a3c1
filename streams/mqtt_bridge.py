"""MQTT → Kafka bridge for the distributed engine (``citybrain bridge mqtt://... --broker kafka://...``).

Subscribes like :class:`streams.sources.mqtt.MqttSource` (QoS 1, persistent session, reconnect with
backoff) and sends every JSON line of every payload (:func:`streams.sources.mqtt.payload_lines`) to
the workers' input topic in block messages of up to ``block`` records of one partition
(:mod:`streams.kafka_blocks`, each record in the partition its ``sensor_id`` key gives), as
``citybrain produce`` does; ``block=1`` sends one keyed message per record. A block is sent when it
fills or when the MQTT queue runs dry, so a live stream waits for no block to fill. Lines are not
validated here: the workers validate and dead-letter them.

Acknowledgement follows Kafka, not reception: the MQTT client is put in manual-ack mode and a
message is acknowledged to the MQTT broker only after the Kafka producer confirmed all of its lines.
So a bridge killed at any point loses nothing: what was not acknowledged is redelivered by the MQTT
broker to the same session when the bridge comes back (at-least-once; the workers' duplicate check
catches the repeats). The MQTT broker's ``max_inflight_messages`` bounds how many messages wait for
Kafka at once; raise it (or send arrays from gateways) for throughput.

Example (the wiring without brokers; see tests/mqtt/test_bridge.py for a real run):
    >>> bridge = MqttKafkaBridge("mqtt://127.0.0.1:18830/city/#", "kafka://127.0.0.1:19092", session_scope="bridge-1")
    >>> bridge.topic, bridge.source_url.topic_filter, bridge.client_id.startswith("citybrain-"), bridge.block
    ('citybrain.records', 'city/#', True, 200)
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from streams.sources.mqtt import MqttUrl, payload_lines

log = logging.getLogger("citybrain.mqtt")


@dataclass
class BridgeStats:
    """Messages taken from MQTT (and acknowledged there), lines sent to Kafka, reconnections."""

    messages: int = 0
    lines: int = 0
    empty_payloads: int = 0
    connects: int = 0


class MqttKafkaBridge:
    """Moves records from an MQTT topic filter to a Kafka topic (see the module docstring).

    ``run()`` runs until cancelled or until ``stop_after_messages`` messages were forwarded (tests).
    """

    def __init__(self, mqtt_url: "str | MqttUrl", kafka_url: str, *, topic: str | None = None, session_scope: str = "bridge",
                 block: int = 200, flush_every: int = 500, reconnect_min_s: float = 0.1, reconnect_max_s: float = 10.0):
        from streams.faust_driver import INPUT_TOPIC, bootstrap_of

        self.source_url = mqtt_url if isinstance(mqtt_url, MqttUrl) else MqttUrl.parse(mqtt_url)
        self.bootstrap = bootstrap_of(kafka_url)
        self.topic = topic or INPUT_TOPIC
        self.client_id = self.source_url.session_id(session_scope)
        if block < 1:
            raise ValueError(f"block must be >= 1, got {block}")
        self.block = int(block)
        self.flush_every = int(flush_every)
        self.reconnect_min_s, self.reconnect_max_s = float(reconnect_min_s), float(reconnect_max_s)
        self.stats = BridgeStats()

    async def run(self, stop_after_messages: int | None = None) -> BridgeStats:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=2, request_timeout_ms=15000, acks="all",
                                    max_request_size=8 << 20)
        try:
            await producer.start()
        except Exception as exc:  # noqa: BLE001 - aiokafka raises several types for an unreachable broker
            await producer.stop()
            raise ConnectionError(f"cannot reach the Kafka broker at {self.bootstrap} ({exc.__class__.__name__})") from None
        try:
            await self._forward(producer, stop_after_messages)
        finally:
            await producer.stop()
        return self.stats

    async def _forward(self, producer, stop_after: int | None) -> None:
        import aiomqtt

        from streams.faust_driver import BLOCK_HEADER, record_key
        from streams.kafka_blocks import PartitionBlocks

        blocks = PartitionBlocks(len(await producer.partitions_for(self.topic)), self.block) if self.block > 1 else None

        async def send(lines: list[bytes]) -> list:
            if blocks is None:
                return [await producer.send(self.topic, value=line, key=record_key(line)) for line in lines]
            full = [b for line in lines for b in blocks.add(line)]
            return [await producer.send(self.topic, value=b"\n".join(block), partition=partition,
                                        headers=[(BLOCK_HEADER, b"1")]) for partition, block in full]

        async def send_rest() -> list:
            return [] if blocks is None else [
                await producer.send(self.topic, value=b"\n".join(block), partition=partition, headers=[(BLOCK_HEADER, b"1")])
                for partition, block in blocks.drain()]

        delay = self.reconnect_min_s
        while True:
            try:
                async with aiomqtt.Client(self.source_url.host, self.source_url.port, username=self.source_url.username,
                                          password=self.source_url.password, identifier=self.client_id, clean_session=False,
                                          timeout=10, protocol=aiomqtt.ProtocolVersion.V311) as client:
                    # aiomqtt 2.5 has no switch of its own for paho's manual acknowledgement; paho's
                    # public manual_ack_set/ack are what "acknowledge after Kafka" needs.
                    paho = client._client  # noqa: SLF001
                    paho.manual_ack_set(True)
                    await client.subscribe(self.source_url.topic_filter, qos=1)
                    self.stats.connects += 1
                    delay = self.reconnect_min_s
                    waiting: list = []  # (message, kafka futures) not yet acknowledged to MQTT
                    if blocks is not None:
                        blocks.drain()  # lines of messages not acknowledged before the drop: MQTT redelivers them
                    async for message in client.messages:
                        lines = payload_lines(message.payload if isinstance(message.payload, (bytes, bytearray)) else b"")
                        if not lines:
                            self.stats.empty_payloads += 1
                        futures = await send(lines)
                        self.stats.lines += len(lines)
                        waiting.append((message, futures))
                        # Flush when no more is queued (live) or enough waits (a backlog): one Kafka
                        # round trip serves many MQTT acknowledgements. A message is acknowledged only
                        # once every block holding one of its lines is confirmed: the part-filled
                        # blocks go out first.
                        if len(client.messages) == 0 or len(waiting) >= self.flush_every:
                            rest = await send_rest()
                            await asyncio.gather(*(f for _, fs in waiting for f in fs), *rest)
                            for m, _ in waiting:
                                if m.qos > 0:
                                    paho.ack(m.mid, m.qos)
                            self.stats.messages += len(waiting)
                            waiting.clear()
                            if stop_after is not None and self.stats.messages >= stop_after:
                                return
            except aiomqtt.MqttError as exc:
                log.warning("MQTT bridge: connection lost; retrying", extra={"fields": {"error": str(exc), "retry_in_s": delay}})
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max_s)
