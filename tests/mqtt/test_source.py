"""The MQTT source against a real broker: a recording published over MQTT (the real `citybrain publish`)
reaches the local driver whole, even when the broker restarts mid-stream, with the same accounting as
replaying the file; payloads that are not JSON become dead letters with a reason."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from brain.pipeline import CityPipeline
from streams.local import LocalDriver
from streams.sim import Simulator
from streams.sources.mqtt import MqttSource

HOURS = 1
SEED = 5


@pytest.fixture(scope="module")
def recording(city, tmp_path_factory) -> Path:
    """One simulated hour of the demo city, 1 % of lines corrupted (bad JSON, wrong types, duplicates, late...)."""
    sim = Simulator(city, seed=SEED, bad_fraction=0.01)
    path = tmp_path_factory.mktemp("rec") / "events.jsonl"
    path.write_bytes(b"".join(sim.jsonl_batches(sim.start_ms + HOURS * 3_600_000, batch_s=60)))
    return path


def _accounting(pipeline: CityPipeline) -> Counter:
    c = pipeline.counters
    out = Counter({k: int(v) for k, v in c.items() if k.startswith("dead.") and v})
    out.update({k: int(c[k]) for k in ("records_in", "applied", "late", "dead_lettered")})
    return out


@pytest.fixture(scope="module")
def reference(city, recording) -> Counter:
    """The file replayed in one-minute batches (the accounting does not depend on batch sizes)."""
    pipe = CityPipeline(city)
    for chunk in Simulator(city, seed=SEED, bad_fraction=0.01).jsonl_batches(
            Simulator(city, seed=SEED).start_ms + HOURS * 3_600_000, batch_s=60):
        pipe.ingest_jsonl(chunk)
    assert pipe.invariant_holds()
    assert sum(1 for line in recording.read_bytes().splitlines() if line.strip()) == pipe.counters["records_in"]
    return _accounting(pipe)


def _publish(recording: Path, url: str, log: Path, *extra: str) -> subprocess.Popen:
    with log.open("wb") as out:  # a file, not a pipe: a chatty child must never block on a full pipe
        return subprocess.Popen([sys.executable, "-m", "citybrain", "publish", str(recording), "--mqtt", url, *extra],
                                stdout=out, stderr=subprocess.STDOUT)


async def _drive_until(driver: LocalDriver, done, timeout_s: float, during=None) -> None:
    task = asyncio.create_task(driver.run())
    deadline = time.monotonic() + timeout_s
    try:
        while not done():
            if task.done():
                task.result()
                pytest.fail("the driver stopped by itself")
            if during is not None:
                during()
            if time.monotonic() > deadline:
                pytest.fail(f"timed out; accounting so far {_accounting(driver.pipeline)}")
            await asyncio.sleep(0.05)
    finally:
        driver.stop()
        await asyncio.wait_for(task, 30)


async def _connected(source: MqttSource, driver: LocalDriver) -> None:
    task = asyncio.create_task(driver.run())
    while not source.stats.connected:
        await asyncio.sleep(0.02)
    driver.stop()
    await task


@pytest.mark.parametrize("per_message", [1, 50])
def test_broker_restart_mid_stream_loses_nothing(city, recording, reference, mosquitto, tmp_path, per_message):
    out = tmp_path / "out"
    url = f"{mosquitto.url}/city/#"
    n = reference["records_in"]

    def engine() -> tuple[MqttSource, LocalDriver]:
        source = MqttSource(url, session_scope=str(out))
        driver = LocalDriver(CityPipeline(city), source, out, source_key="mqtt-test", checkpoint_every_s=3600)
        driver.resume()
        return source, driver

    # The persistent session must exist before the sensors speak: connect once, checkpoint, stop.
    source, driver = engine()
    asyncio.run(_connected(source, driver))

    source, driver = engine()
    publisher = _publish(recording, mosquitto.url, tmp_path / "publish.log", "--per-message", str(per_message))
    restarted = []

    def restart_mid_stream():
        if not restarted and driver.pipeline.counters["records_in"] >= n // 3:
            mosquitto.restart()
            restarted.append(driver.pipeline.counters["records_in"])

    def all_in():
        c = driver.pipeline.counters
        return c["records_in"] - c.get("dead.duplicate", 0) >= n - reference.get("dead.duplicate", 0) and publisher.poll() is not None

    try:
        asyncio.run(_drive_until(driver, all_in, timeout_s=240, during=restart_mid_stream))
    finally:
        if publisher.poll() is None:
            publisher.kill()
    publisher.wait(timeout=10)
    said = (tmp_path / "publish.log").read_text()
    assert publisher.returncode == 0, said[-2000:]
    assert "published" in said
    assert restarted and restarted[0] < n, "the broker was not restarted mid-stream"
    assert mosquitto.starts == 2
    assert source.stats.connects >= 2, "the source did not reconnect"
    got = _accounting(driver.pipeline)
    assert driver.pipeline.invariant_holds()
    # QoS 1 is at-least-once: a repeat (a message whose PUBACK the restart cut) is never applied twice.
    # A repeated accepted record is dead-lettered as a duplicate; a repeated rejected one (out of range,
    # malformed...) is refused again for its own reason, so each refusal count may only grow, and all
    # the growth together is exactly the repeats.
    repeats = got["records_in"] - n
    assert repeats >= 0
    assert got["applied"] == reference["applied"], (got, reference)
    rejected = [k for k in set(got) | set(reference) if k.startswith("dead.") or k == "late"]
    extra = {k: got[k] - reference[k] for k in rejected}
    assert all(v >= 0 for v in extra.values()), (got, reference)
    assert sum(extra.values()) == repeats, (extra, repeats)
    assert repeats <= 2 * 100 * per_message  # at most the in-flight windows of publisher and broker


def test_payloads_that_are_not_records_are_dead_letters(city, mosquitto, tmp_path):
    import aiomqtt

    out = tmp_path / "out"
    url = f"{mosquitto.url}/city/#"
    source = MqttSource(url, session_scope=str(out))
    driver = LocalDriver(CityPipeline(city), source, out, source_key="mqtt-test")
    sensor = next(s for s in city.sensors if s.type == "noise")
    good = b'{"kind":"noise","sensor_id":"%s","ts_ms":1700000000000,"laeq_db":55.0}' % sensor.id.encode()
    payloads = [
        b"\xff\xfe not json at all",              # bytes that are not even UTF-8
        b'{"kind":"noise",\n"sensor_id": oops}',  # broken JSON over two lines: one dead letter
        b"[" + good + b", 42, {\"kind\":\"noise\"}]",  # an array: a record, a number, a record missing fields
        b"",                                      # "clear retained": no record
        b"x" * 300_000,                           # too large
    ]

    async def go():
        task = asyncio.create_task(driver.run())
        while not source.stats.connected:
            await asyncio.sleep(0.02)
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            for p in payloads:
                await client.publish(f"city/D/noise/{sensor.id}", p, qos=1)
        deadline = time.monotonic() + 20
        while driver.pipeline.counters["records_in"] < 6 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        driver.stop()
        await task

    asyncio.run(go())
    c = driver.pipeline.counters
    assert (c["records_in"], c["applied"], c["dead_lettered"]) == (6, 1, 5), dict(c)
    assert source.stats.empty_payloads == 1 and source.stats.messages == 5
    assert c["dead.too_large"] == 1 and c["dead.malformed"] >= 2
    letters = b"".join(p.read_bytes() for p in (out / "deadletter").rglob("*") if p.is_file())
    assert letters, "dead letters were not written"


def test_a_clean_stop_keeps_what_was_received(city, mosquitto, tmp_path):
    """Lines received but not yet processed go into the checkpoint and come first after a restart."""
    out = tmp_path / "out"
    source = MqttSource(f"{mosquitto.url}/city/#", session_scope=str(out))
    source._lines = [b'{"kind":"noise","sensor_id":"X","ts_ms":1,"laeq_db":50}']  # as if just received
    state = source.state()
    again = MqttSource(f"{mosquitto.url}/city/#", session_scope=str(out))
    again.load(state)
    assert again.state() == state
    with pytest.raises(ValueError, match="subscribed to"):
        MqttSource(f"{mosquitto.url}/city/D01/#", session_scope=str(out)).load(state)
