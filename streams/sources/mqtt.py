"""Sensors in over MQTT: a live source for the local driver (``citybrain run --source mqtt://...``).

Topic layout (documented for gateways and sensor vendors)::

    city/<district>/<kind>/<sensor_id>     one record per message, e.g. city/D01/traffic/L-0042
    city/<district>/gateway/<gateway_id>   a JSON array of records (a gateway's block)

The topic is for routing, ACLs and subscription filters (``city/D01/#`` for one district,
``city/+/air/#`` for one kind); the record itself stays self-describing (``kind``, ``sensor_id``,
``ts_ms`` ...), exactly the JSON line a recording holds, so the engine validates it the same way.
Levels are made safe by :func:`topic_for` (``/``, ``+``, ``#`` and spaces become ``_``).

Payload: one JSON record, or a JSON array of records. :func:`payload_lines` turns a payload into
JSON lines without decoding the records (an array is split into its elements' raw bytes), and the
lines go through the pipeline's own validation and dead-letter path. A payload that is not JSON
becomes one line that the pipeline dead-letters as ``malformed`` with its reason; an oversized one
becomes a ``too_large`` dead letter; an empty payload (MQTT's "clear the retained message") is no
record and is counted in :attr:`MqttStats.empty_payloads`. Nothing here raises on a payload.

Delivery: QoS 1 subscriptions on a persistent session (``clean_session=False`` and a client id
stable across restarts, derived from the run's ``--out``), so while the engine is disconnected —
the broker restarting, the network down — the broker keeps its messages (with ``persistence true``
a broker restart keeps them too) and hands them over on reconnection. The connection is retried
with exponential backoff (``reconnect_min_s`` .. ``reconnect_max_s``). QoS 1 is at-least-once: a
message the broker sent but whose acknowledgement was cut by a restart comes again, and the
pipeline's duplicate check (same sensor, kind and ``ts_ms``) dead-letters the repeat as
``duplicate`` — counted, not applied twice.

Limit, said plainly: the MQTT client acknowledges a message when it is received, and the local
driver's state is durable only at its checkpoints (every 10 s), so a crash of the *engine* loses
what arrived since its last checkpoint. For end-to-end at-least-once through engine crashes use
:mod:`streams.mqtt_bridge` (acknowledges only after Kafka has the records) and the Kafka workers.

Example (the URL; connecting needs a broker, see tests/mqtt):
    >>> url = MqttUrl.parse("mqtt://sensors:secret@10.0.0.5/city/#")
    >>> url.host, url.port, url.topic_filter, url.username, url.redacted()
    ('10.0.0.5', 1883, 'city/#', 'sensors', 'mqtt://sensors:***@10.0.0.5:1883/city/#')
    >>> payload_lines(b'[{"kind":"noise","sensor_id":"N1","ts_ms":0,"laeq_db":55.0},\\n {"kind":"noise"}]')
    [b'{"kind":"noise","sensor_id":"N1","ts_ms":0,"laeq_db":55.0}', b'{"kind":"noise"}']
    >>> payload_lines(b"not json\\nat all")  # one line: the pipeline dead-letters it as malformed
    [b'not json at all']
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Iterator

import msgspec

from brain.ingest import MAX_LINE_BYTES
from streams.local import SourceBatch

log = logging.getLogger("citybrain.mqtt")

DEFAULT_PORT = 1883
TOPIC_ROOT = "city"
#: Arrays up to this size are split into records; a larger payload is one too_large dead letter.
MAX_PAYLOAD_BYTES = 16 << 20
CLOCKS = ("records", "wall")

_URL = re.compile(r"^mqtt://(?:(?P<user>[^:@/]*)(?::(?P<password>[^@/]*))?@)?(?P<host>[^:/?]+)(?::(?P<port>\d+))?/(?P<filter>[^?]+)(?:\?(?P<query>.*))?$")
_UNSAFE_LEVEL = re.compile(r"[/+#\s\x00]")
_ARRAY = msgspec.json.Decoder(list[msgspec.Raw])


@dataclass(frozen=True)
class MqttUrl:
    """Where to subscribe: ``mqtt://[user[:password]@]host[:port]/<topic filter>[?client_id=..&clock=records|wall]``.

    The topic filter is everything after the first ``/`` (wildcards ``+`` and ``#`` allowed, so a
    browser-style URL parser, which would read ``#`` as a fragment, is not used). ``clock=wall``
    makes the source's clock the wall clock, so windows close through quiet spells (live sensors);
    the default ``records`` lets the records' event time alone move time (recordings fed over MQTT).

    Example:
        >>> MqttUrl.parse("mqtt://127.0.0.1:18830/city/+/air/#?clock=wall").clock
        'wall'
        >>> MqttUrl.parse("http://x/city")
        Traceback (most recent call last):
        ...
        ValueError: MQTT URL 'http://x/city' must look like mqtt://[user[:password]@]host[:port]/<topic filter>, e.g. mqtt://127.0.0.1:1883/city/#
    """

    host: str
    port: int = DEFAULT_PORT
    topic_filter: str = f"{TOPIC_ROOT}/#"
    username: str | None = None
    password: str | None = None
    client_id: str | None = None
    clock: str = "records"

    @classmethod
    def parse(cls, url: str) -> "MqttUrl":
        m = _URL.match(url or "")
        if not m:
            raise ValueError(f"MQTT URL {url!r} must look like mqtt://[user[:password]@]host[:port]/<topic filter>, "
                             "e.g. mqtt://127.0.0.1:1883/city/#")
        options: dict[str, str] = {}
        for part in filter(None, (m.group("query") or "").split("&")):
            key, _, value = part.partition("=")
            if key not in ("client_id", "clock"):
                raise ValueError(f"MQTT URL option {key!r} is unknown (use client_id=... or clock=records|wall)")
            options[key] = value
        clock = options.get("clock", "records")
        if clock not in CLOCKS:
            raise ValueError(f"MQTT URL option clock={clock!r}: use clock=records or clock=wall")
        port = int(m.group("port") or DEFAULT_PORT)
        if not 0 < port < 65536:
            raise ValueError(f"MQTT URL {url!r}: port {port} is not between 1 and 65535")
        topic_filter = m.group("filter")
        _check_filter(topic_filter)
        return cls(host=m.group("host"), port=port, topic_filter=topic_filter, username=m.group("user") or None,
                   password=m.group("password"), client_id=options.get("client_id") or None, clock=clock)

    def redacted(self) -> str:
        """The URL with the password hidden (for logs and messages)."""
        auth = f"{self.username}{':***' if self.password else ''}@" if self.username else ""
        return f"mqtt://{auth}{self.host}:{self.port}/{self.topic_filter}"

    def session_id(self, scope: str) -> str:
        """The persistent-session client id: the URL's ``client_id``, else one derived from ``scope``
        (the run's output folder) and the filter, so the same run reconnects to the same session."""
        if self.client_id:
            return self.client_id
        digest = hashlib.sha1(f"{scope}|{self.host}:{self.port}|{self.topic_filter}".encode()).hexdigest()[:16]
        return f"citybrain-{digest}"


def _check_filter(topic_filter: str) -> None:
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if ("#" in level and (level != "#" or i != len(levels) - 1)) or ("+" in level and level != "+"):
            raise ValueError(f"MQTT topic filter {topic_filter!r}: '#' may only be the whole last level and '+' a whole level")


def topic_for(district: str | None, kind: str | None, sensor_id: str | None) -> str:
    """The topic a sensor publishes to: ``city/<district>/<kind>/<sensor_id>`` (unknown parts ``_``).

    >>> topic_for("D01", "traffic", "L-0042"), topic_for(None, "air", "A/1#")
    ('city/D01/traffic/L-0042', 'city/_/air/A_1_')
    """
    def level(text: str | None) -> str:
        return _UNSAFE_LEVEL.sub("_", text) if text else "_"

    return f"{TOPIC_ROOT}/{level(district)}/{level(kind)}/{level(sensor_id)}"


def _one_line(data: bytes) -> bytes:
    # In valid JSON a raw CR/LF can only be whitespace between tokens (inside strings they must be
    # escaped), so turning them into spaces keeps a valid record's meaning and keeps an invalid
    # payload one line: one dead letter, never several half-lines.
    if len(data) > MAX_LINE_BYTES:
        data = data[: MAX_LINE_BYTES + 1]  # the decoder refuses it unread as too_large
    return data.replace(b"\r", b" ").replace(b"\n", b" ")


def _payload_bytes(payload) -> bytes:
    return bytes(payload) if isinstance(payload, (bytes, bytearray)) else str(payload).encode()


def payload_lines(payload: bytes) -> list[bytes]:
    """One MQTT payload -> the JSON lines it holds (see the module docstring). Never raises.

    >>> payload_lines(b"  "), payload_lines(b"[]"), payload_lines(b"[1,")
    ([], [], [b'[1,'])
    """
    data = bytes(payload).strip()
    if not data:
        return []
    if data[:1] == b"[" and len(data) <= MAX_PAYLOAD_BYTES:
        try:
            elements = _ARRAY.decode(data)
        except Exception:  # noqa: BLE001 - bad JSON, too deep, bad UTF-8: the whole payload is one dead letter
            return [_one_line(data)]
        return [_one_line(bytes(raw)) for raw in elements]
    return [_one_line(data)]


@dataclass
class MqttStats:
    """What the source has seen (exported with the run's counters).

    Example:
        >>> stats = MqttStats()
        >>> stats.messages += 2; stats.records += 5
        >>> stats.messages, stats.records, stats.connected
        (2, 5, False)
    """

    messages: int = 0
    records: int = 0
    empty_payloads: int = 0
    connects: int = 0
    disconnects: int = 0
    connected: bool = False
    last_error: str | None = None
    topics: dict = field(default_factory=dict)


class MqttSource:
    """Records from an MQTT broker for the local driver (see the module docstring).

    It is an async source: the driver iterates :meth:`abatches`, which yields a
    :class:`~streams.local.SourceBatch` of JSON lines every ``batch_s`` seconds (an empty one when
    nothing came, so a stop is noticed) or as soon as ``batch_records`` lines are waiting.

    Example:
        >>> source = MqttSource("mqtt://127.0.0.1:18830/city/#", session_scope="var/run")
        >>> source.client_id, source.finite, source.state()["topic_filter"]
        ('citybrain-...', False, 'city/#')
    """

    finite = False

    def __init__(self, url: "str | MqttUrl", *, session_scope: str = "", batch_s: float = 0.2, batch_records: int = 20_000,
                 reconnect_min_s: float = 0.1, reconnect_max_s: float = 10.0, keepalive_s: int = 30):
        self.url = url if isinstance(url, MqttUrl) else MqttUrl.parse(url)
        if not batch_s > 0 or batch_records < 1 or not 0 < reconnect_min_s <= reconnect_max_s:
            raise ValueError("batch_s > 0, batch_records >= 1 and 0 < reconnect_min_s <= reconnect_max_s are required")
        self.client_id = self.url.session_id(session_scope)
        self.batch_s = float(batch_s)
        self.batch_records = int(batch_records)
        self.reconnect_min_s = float(reconnect_min_s)
        self.reconnect_max_s = float(reconnect_max_s)
        self.keepalive_s = int(keepalive_s)
        self.stats = MqttStats()
        self._lines: list[bytes] = []
        self._full = asyncio.Event()

    def batches(self) -> Iterator[SourceBatch]:
        raise TypeError("MqttSource is asynchronous: iterate abatches() (the local driver does)")

    def _take(self, payload: bytes) -> None:
        self.stats.messages += 1
        lines = payload_lines(payload)
        if not lines:
            self.stats.empty_payloads += 1
            log.warning("empty MQTT payload ignored (no record)")
            return
        self.stats.records += len(lines)
        self._lines.extend(lines)
        if len(self._lines) >= self.batch_records:
            self._full.set()

    async def _pump(self) -> None:
        """Connect, subscribe (QoS 1, persistent session), receive; reconnect with backoff, forever."""
        import aiomqtt

        delay = self.reconnect_min_s
        while True:
            try:
                async with aiomqtt.Client(
                    self.url.host, self.url.port, username=self.url.username, password=self.url.password,
                    identifier=self.client_id, clean_session=False, keepalive=self.keepalive_s, timeout=10,
                    protocol=aiomqtt.ProtocolVersion.V311,
                ) as client:
                    await client.subscribe(self.url.topic_filter, qos=1)
                    self.stats.connects += 1
                    self.stats.connected = True
                    delay = self.reconnect_min_s
                    log.info("MQTT connected", extra={"fields": {"url": self.url.redacted(), "client_id": self.client_id}})
                    try:
                        async for message in client.messages:
                            self._take(_payload_bytes(message.payload))
                    except asyncio.CancelledError:
                        # The driver stopped: keep what the client already acknowledged (it goes into
                        # the checkpoint with state()), then disconnect; the broker keeps the rest.
                        while len(client.messages):
                            self._take(_payload_bytes((await anext(client.messages)).payload))
                        raise
            except aiomqtt.MqttError as exc:
                self.stats.last_error = str(exc)
            self.stats.connected = False
            self.stats.disconnects += 1
            log.warning("MQTT connection lost; retrying", extra={"fields": {"url": self.url.redacted(), "error": self.stats.last_error, "retry_in_s": delay}})
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max_s)

    async def abatches(self) -> AsyncIterator[SourceBatch]:
        pump = asyncio.create_task(self._pump(), name="mqtt-source")
        try:
            while True:
                try:
                    await asyncio.wait_for(self._full.wait(), timeout=self.batch_s)
                except asyncio.TimeoutError:
                    pass
                self._full.clear()
                if pump.done():
                    pump.result()  # an unexpected error in the client: raise it here, not silently
                lines, self._lines = self._lines, []
                now_ms = int(time.time() * 1000) if self.url.clock == "wall" else None
                yield SourceBatch(stream_time_ms=now_ms, jsonl=b"\n".join(lines) + b"\n" if lines else b"")
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)

    def state(self) -> dict:
        """The subscription and the lines received (acknowledged to the broker) but not yet handed
        to the driver; the broker's persistent session holds everything after them."""
        return {"client_id": self.client_id, "topic_filter": self.url.topic_filter, "pending": b"".join(line + b"\n" for line in self._lines)}

    def load(self, state: dict) -> None:
        """Continue from :meth:`state`: the pending lines come first in the next batch."""
        theirs = state.get("topic_filter") if isinstance(state, dict) else None
        if theirs != self.url.topic_filter:
            raise ValueError(f"checkpoint was taken subscribed to {theirs!r}, this run subscribes to {self.url.topic_filter!r}")
        pending = bytes(state.get("pending") or b"")
        self._lines = pending.splitlines() + self._lines
