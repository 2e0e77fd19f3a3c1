"""MQTT -> Kafka bridge against a real mosquitto and a real Kafka-protocol broker (tansu): the real
`citybrain bridge` killed with SIGKILL mid-stream and started again loses no record (acknowledgement to
MQTT only after Kafka has the records), every record in the partition its sensor_id key gives (in block
messages by default, keyed single messages with --block 1), and a non-JSON payload reaches the workers'
topic as one line for them to dead-letter."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from streams.sim import Simulator
from tests.faust.conftest import broker  # noqa: F401 - the tansu fixture



def _bridge(mqtt_url: str, kafka: str, log: Path, topic: str, *extra: str) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "citybrain", "bridge", f"{mqtt_url}/city/#", "--broker", kafka,
                                 "--session", f"bridge-{topic}", "--topic", topic, "--partitions", str(PARTITIONS), *extra],
                                stdout=out, stderr=subprocess.STDOUT)


PARTITIONS = 3


async def _consume(bootstrap: str, topic: str, want: int, timeout_s: float) -> list[tuple[int, bytes | None, bytes, bool]]:
    """(partition, message key, record, came in a block) for every record read, block messages split."""
    from aiokafka import AIOKafkaConsumer

    from streams.faust_driver import BLOCK_HEADER

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    got: list[tuple[int, bytes | None, bytes, bool]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < want and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    if any(name == BLOCK_HEADER for name, _ in r.headers or ()):
                        got.extend((r.partition, r.key, line, True) for line in r.value.split(b"\n"))
                    else:
                        got.append((r.partition, r.key, r.value, False))
    finally:
        await consumer.stop()
    return got


async def _count(bootstrap: str, topic: str) -> int:
    return len(await _consume(bootstrap, topic, 10**9, 1.0))


@pytest.mark.parametrize("block", [200, 1], ids=["blocks", "single"])
def test_bridge_killed_mid_stream_loses_nothing(city, mosquitto, broker, tmp_path, block):  # noqa: F811
    from streams.faust_driver import record_key
    from streams.kafka_blocks import key_partition

    topic = f"citybrain.records.{block}"  # a topic per case: each reads only its own records
    sim = Simulator(city, seed=3)
    lines = [line for chunk in sim.jsonl_batches(sim.start_ms + 600_000, batch_s=60) for line in chunk.splitlines() if line]
    lines.append(b"this is not json")
    # Two recordings: the sensors speak on while the bridge is down, so its kill is mid-stream whatever the
    # machine's speed (the first part may be all forwarded before the kill on a fast machine).
    cut = 2 * len(lines) // 3
    first, rest = tmp_path / "first.jsonl", tmp_path / "rest.jsonl"
    first.write_bytes(b"\n".join(lines[:cut]) + b"\n")
    rest.write_bytes(b"\n".join(lines[cut:]) + b"\n")
    bootstrap = broker.removeprefix("kafka://")
    log = tmp_path / "bridge.log"

    def publish(path: Path, log_name: str) -> subprocess.Popen:
        with (tmp_path / log_name).open("wb") as out:
            return subprocess.Popen([sys.executable, "-m", "citybrain", "publish", str(path), "--mqtt", mosquitto.url],
                                    stdout=out, stderr=subprocess.STDOUT)

    bridge = _bridge(mosquitto.url, broker, log, topic, "--block", str(block))
    try:
        deadline = time.monotonic() + 60
        while b"citybrain bridge:" not in log.read_bytes():  # subscribed: the session exists before publishing
            assert bridge.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the bridge did not start"
            time.sleep(0.1)
        time.sleep(1.0)
        publisher = publish(first, "publish-first.log")
        # Kill the bridge part-way: as soon as a third of the records has reached Kafka (records of the
        # first part may still be in flight between MQTT and Kafka).
        while asyncio.run(_count(bootstrap, topic)) < len(lines) // 3:
            assert time.monotonic() < deadline + 240, "the bridge forwards nothing"
        os.kill(bridge.pid, signal.SIGKILL)
        bridge.wait(timeout=10)
        before = asyncio.run(_count(bootstrap, topic))
        assert before <= cut < len(lines)
        assert publisher.wait(timeout=300) == 0, (tmp_path / "publish-first.log").read_text()[-2000:]
        publisher = publish(rest, "publish-rest.log")  # the broker keeps them for the bridge's session
        assert publisher.wait(timeout=300) == 0, (tmp_path / "publish-rest.log").read_text()[-2000:]
        bridge = _bridge(mosquitto.url, broker, log, topic, "--block", str(block))
        got = asyncio.run(_consume(bootstrap, topic, len(lines), timeout_s=240))
    finally:
        if bridge.poll() is None:
            bridge.send_signal(signal.SIGINT)
            try:
                bridge.wait(timeout=10)
            except subprocess.TimeoutExpired:
                bridge.kill()
    values = Counter(v for _, _, v, _ in got)
    assert set(values) == set(lines), f"lost {len(set(lines) - set(values))} records (before the restart {before} had reached Kafka)"
    assert sum(values.values()) - len(lines) == sum(n - 1 for n in values.values())  # extra copies are only repeats
    assert {in_block for *_, in_block in got} == {block > 1}
    for partition, key, value, in_block in got:
        if value.startswith(b"{"):
            # Where Kafka's partitioner puts the sensor's key: the worker owning the sensor reads it.
            assert partition == key_partition(record_key(value), PARTITIONS)
            if not in_block:
                assert key is not None and key.decode() in value.decode()  # keyed by sensor_id
        else:
            assert key is None  # the non-JSON line: no key, one line for the workers to dead-letter
