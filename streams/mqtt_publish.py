"""Feed a recording to an MQTT broker as sensors would (``citybrain publish FILE --mqtt URL``).

Each JSON line of the file is published with QoS 1 to ``city/<district>/<kind>/<sensor_id>``
(:func:`streams.sources.mqtt.topic_for`; the district comes from the city's sensor registry, ``_``
for an unknown sensor or an unreadable line — which is still sent, for the engine to dead-letter).
With ``per_message`` > 1, consecutive lines of one district are packed into JSON arrays on
``city/<district>/gateway/<gateway_id>``, as a gateway would (an unreadable line is sent alone).

At most ``window`` messages are in flight; a message is counted sent when the broker acknowledged
it (PUBACK). When the connection drops (the broker restarting), the unacknowledged messages of the
window are sent again after reconnecting with backoff: at-least-once, so a repeat is possible and
the engine's duplicate check counts it as ``duplicate`` instead of applying it twice.

Example (grouping only; publishing needs a broker, see tests/mqtt):
    >>> lines = [b'{"kind":"noise","sensor_id":"N1","ts_ms":0,"laeq_db":50}', b'oops']
    >>> [t for t, _ in messages_of(lines, {"N1": "D01"}.get)]
    ['city/D01/noise/N1', 'city/_/_/_']
    >>> [p for _, p in messages_of(lines, lambda s: "D01", per_message=5)]
    [b'[{"kind":"noise","sensor_id":"N1","ts_ms":0,"laeq_db":50}]', b'oops']
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import msgspec

from streams.sources.mqtt import MqttUrl, topic_for

log = logging.getLogger("citybrain.mqtt")


class _Head(msgspec.Struct):
    kind: str | None = None
    sensor_id: str | None = None


_HEAD = msgspec.json.Decoder(_Head)


def _head(line: bytes) -> _Head:
    try:
        return _HEAD.decode(line)
    except Exception:  # noqa: BLE001 - any unreadable line is published as is, to an "unknown" topic
        return _Head()


def messages_of(lines: Iterable[bytes], district_of: Callable[[str], str | None], per_message: int = 1,
                gateway_id: str = "citybrain-publish") -> Iterator[tuple[str, bytes]]:
    """``(topic, payload)`` for each message to publish (see the module docstring)."""
    if per_message < 1:
        raise ValueError("per_message must be >= 1")
    block: list[bytes] = []
    block_district: str | None = None
    for line in lines:
        head = _head(line)
        district = district_of(head.sensor_id) if head.sensor_id else None
        if per_message == 1 or head.sensor_id is None:
            # An unreadable line travels alone: inside an array it would spoil its neighbours too.
            if block:  # in file order
                yield topic_for(block_district, "gateway", gateway_id), b"[" + b",".join(block) + b"]"
                block = []
            yield topic_for(district, head.kind, head.sensor_id), line
            continue
        if block and (district != block_district or len(block) >= per_message):
            yield topic_for(block_district, "gateway", gateway_id), b"[" + b",".join(block) + b"]"
            block = []
        block_district = district
        block.append(line)
    if block:
        yield topic_for(block_district, "gateway", gateway_id), b"[" + b",".join(block) + b"]"


@dataclass
class PublishStats:
    """Messages acknowledged by the broker, sent again after a lost connection, and reconnections."""

    messages: int = 0
    resent: int = 0
    reconnects: int = 0
    wall_s: float = 0.0


async def publish(messages: Iterable[tuple[str, bytes]], url: MqttUrl, *, window: int = 100, timeout_s: float = 3.0,
                  reconnect_min_s: float = 0.1, reconnect_max_s: float = 5.0, give_up_after_s: float = 60.0) -> PublishStats:
    """Publish every message with QoS 1, at least once (see the module docstring).

    A sliding window of ``window`` unacknowledged messages (not a batch that waits for its slowest
    acknowledgement). Raises ``ConnectionError`` when the broker stays unreachable for ``give_up_after_s``.
    """
    import aiomqtt

    stats = PublishStats()
    started = time.monotonic()
    source = iter(messages)
    retry: list[tuple[str, bytes]] = []
    delay = reconnect_min_s
    down_since: float | None = None
    quiet = logging.getLogger("citybrain.mqtt.client")
    quiet.setLevel(logging.ERROR)  # aiomqtt warns about every publish beyond 10 in flight: that is the point here
    while True:
        try:
            async with aiomqtt.Client(url.host, url.port, username=url.username, password=url.password,
                                      identifier=url.client_id, max_inflight_messages=window, timeout=timeout_s,
                                      protocol=aiomqtt.ProtocolVersion.V311, logger=quiet) as client:
                delay, down_since = reconnect_min_s, None
                failed: list[tuple[str, bytes]] = []
                slots = asyncio.Semaphore(window)
                in_flight: set[asyncio.Task] = set()

                async def one(message: tuple[str, bytes]) -> None:
                    try:
                        await client.publish(message[0], message[1], qos=1, timeout=timeout_s)
                        stats.messages += 1
                    except aiomqtt.MqttError:
                        failed.append(message)
                    finally:
                        slots.release()

                pending, retry = retry, []  # sent again first, in their order
                for message in itertools.chain(pending, source):  # (a generator here would close source on break)
                    await slots.acquire()
                    if failed:  # the connection is gone: keep this one for the next connection
                        slots.release()
                        failed.append(message)
                        break
                    task = asyncio.ensure_future(one(message))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                if in_flight:
                    await asyncio.gather(*in_flight)
                if not failed:
                    stats.wall_s = time.monotonic() - started
                    return stats
                stats.resent += len(failed)
                retry = failed
                raise aiomqtt.MqttError(f"{len(failed)} message(s) not acknowledged")
        except aiomqtt.MqttError as exc:
            now = time.monotonic()
            down_since = down_since or now
            if now - down_since > give_up_after_s:
                raise ConnectionError(f"MQTT broker {url.host}:{url.port} unreachable for {give_up_after_s:.0f} s ({exc})") from None
            stats.reconnects += 1
            log.warning("MQTT publish: connection lost; retrying", extra={"fields": {"error": str(exc), "retry_in_s": delay}})
            await asyncio.sleep(delay)
            delay = min(delay * 2, reconnect_max_s)

