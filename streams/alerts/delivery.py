"""Delivery workers: one asyncio task per subscription, at-least-once, hours of retries, then park.

Each subscription has its own Redis Stream outbox and its own worker, so a slow or dead receiver
only delays its own queue: never another receiver, never the pipeline (which only appends to
outboxes). A worker first re-sends what it had read but not confirmed before a restart, then
waits for new entries. Every message carries its idempotency key (``Idempotency-Key`` header and
in the body) so a receiver can drop the repeats that at-least-once delivery implies.

Durability (issue 16): a failing notification is retried with capped exponential backoff and jitter
for ``retry_for_s`` (6 h by default) before it is parked, and a transiently parked one is re-queued by
the worker itself when its receiver answers again (the next success, or a probe every
``probe_every_s``). Up to ``max_in_flight`` requests per subscriber run at once (notifications of one
group stay in order). A request that timed out may still have been processed: the next attempt waits
twice as long (up to ``timeout_max_s``), so a slow receiver costs one repeat, not eight, and a key
already confirmed is never sent again. The outbox holds at most ``max_backlog`` entries; the oldest
overflow is parked (and re-queued later), and ``DeliveryPool.backlog()`` says where each one stands.

Channels: ``webhook`` (JSON, CityBrain's payload or Alertmanager v4), ``cap`` (one CAP 1.2 XML
document per alert, POSTed as ``application/cap+xml``), ``redis_stream`` (XADD to a stream on the
same Redis), ``log`` (structured log line only).
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import OrderedDict

import aiohttp

from brain.alerts.cap import alert_to_cap, cap_reference, cap_time
from brain.alerts.model import Notification
from brain.alerts.routing import Subscription
from brain.alerts.sdm import alertmanager_payload, citybrain_payload
from streams.alerts.journal import REDIS_DOWN
from streams.alerts.store import AlertStore, _dec_note, now_ms

log = logging.getLogger("citybrain.alerts.delivery")


class PermanentError(Exception):
    """The receiver refused the message for good (e.g. HTTP 400): park at once, retrying cannot help."""


class DeliveryConfig:
    """Retry, timeout, concurrency and backlog policy of the delivery workers.

    Backoff ``base_s * 2**n`` capped at ``max_s``, ±20 % jitter; retries go on for ``retry_for_s``
    (6 h) — or ``max_attempts`` tries when given — before the notification is parked.

    >>> cfg = DeliveryConfig(backoff_base_s=0.5, backoff_max_s=60)
    >>> [0.4 <= cfg.backoff_s(0) <= 0.6, 3.2 <= cfg.backoff_s(3) <= 4.8, 48 <= cfg.backoff_s(20) <= 72]
    [True, True, True]
    >>> cfg.retry_for_s / 3600, cfg.max_in_flight, cfg.max_backlog
    (6.0, 4, 10000)
    >>> DeliveryConfig(max_attempts=0)
    Traceback (most recent call last):
    ...
    ValueError: max_attempts must be at least 1, got 0
    """

    def __init__(self, max_attempts: int | None = None, backoff_base_s: float = 0.5, backoff_max_s: float = 300.0,
                 block_ms: int = 500, cap_sender: str = "citybrain@city.gov.cn", cap_admin_code: str = "000000",
                 cap_org_code: str = "CITYBRAIN", utc_offset_h: float = 8.0, external_url: str = "",
                 retry_for_s: float = 6 * 3600.0, max_in_flight: int = 4, max_backlog: int = 10_000,
                 timeout_max_s: float = 120.0, probe_every_s: float = 60.0):
        if max_attempts is not None and max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if backoff_base_s <= 0 or backoff_max_s < backoff_base_s:
            raise ValueError("need 0 < backoff_base_s <= backoff_max_s")
        if not retry_for_s > 0:
            raise ValueError(f"retry_for_s must be > 0 seconds, got {retry_for_s}")
        if not 1 <= max_in_flight <= 64:
            raise ValueError(f"max_in_flight must be 1..64, got {max_in_flight}")
        if max_backlog < 1:
            raise ValueError(f"max_backlog must be at least 1, got {max_backlog}")
        if not timeout_max_s > 0 or not probe_every_s > 0:
            raise ValueError("timeout_max_s and probe_every_s must be > 0 seconds")
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.block_ms = block_ms
        self.cap_sender = cap_sender
        self.cap_admin_code = cap_admin_code
        self.cap_org_code = cap_org_code
        self.utc_offset_h = utc_offset_h
        self.external_url = external_url
        self.retry_for_s = retry_for_s
        self.max_in_flight = max_in_flight
        self.max_backlog = max_backlog
        self.timeout_max_s = timeout_max_s
        self.probe_every_s = probe_every_s

    @classmethod
    def from_settings(cls, settings, **kw) -> "DeliveryConfig":
        """The ``delivery_*`` fields of :class:`citybrain.settings.Settings` (already validated there)."""
        return cls(retry_for_s=settings.delivery_retry_h * 3600.0, backoff_max_s=settings.delivery_backoff_max_s,
                   max_in_flight=settings.delivery_max_in_flight, max_backlog=settings.delivery_max_backlog,
                   timeout_max_s=settings.delivery_timeout_max_s, **kw)

    def backoff_s(self, attempt: int) -> float:
        d = min(self.backoff_max_s, self.backoff_base_s * (2 ** min(attempt, 60)))
        return d * random.uniform(0.8, 1.2)


class Deliverer:
    """Sends one notification over one subscription's channel; raises on failure."""

    def __init__(self, store: AlertStore, cfg: DeliveryConfig, session: aiohttp.ClientSession):
        self.store = store
        self.cfg = cfg
        self.session = session

    async def send(self, sub: Subscription, n: Notification, timeout_s: float | None = None) -> None:
        ch = sub.channel
        if ch.type == "log":
            log.info("notification", extra={"fields": {"key": n.key, "sub": sub.id, "status": n.status,
                                                       "alerts": [a.summary for a in n.alerts]}})
        elif ch.type == "webhook":
            body = (alertmanager_payload(n, receiver=sub.id, external_url=self.cfg.external_url)
                    if ch.format == "alertmanager" else citybrain_payload(n))
            await self._post(ch, json.dumps(body, ensure_ascii=False).encode(), "application/json", n.key, timeout_s)
        elif ch.type == "cap":
            for a in n.alerts:
                xml = await self._cap_document(a, n)
                await self._post(ch, xml.encode(), "application/cap+xml", f"{n.key}:{a.fingerprint}", timeout_s)
        elif ch.type == "redis_stream":
            await self.store.r.xadd(ch.stream, {"idempotency_key": n.key,
                                                "payload": json.dumps(citybrain_payload(n), ensure_ascii=False)},
                                    maxlen=100_000, approximate=True)
        else:  # pragma: no cover - validated by Subscription
            raise PermanentError(f"unknown channel type {ch.type}")

    async def _post(self, ch, body: bytes, ctype: str, key: str, timeout_s: float | None = None) -> None:
        headers = {**ch.headers, "Content-Type": ctype, "Idempotency-Key": key}  # the key cannot be overridden
        timeout = aiohttp.ClientTimeout(total=timeout_s or ch.timeout_s)
        async with self.session.post(ch.url, data=body, headers=headers, timeout=timeout) as resp:
            if 200 <= resp.status < 300:
                return
            text = (await resp.text())[:200]
            if resp.status in (400, 401, 403, 404, 410, 413, 422):
                raise PermanentError(f"HTTP {resp.status}: {text}")
            raise RuntimeError(f"HTTP {resp.status}: {text}")

    async def _cap_document(self, a, n: Notification) -> str:
        """CAP identifiers are fixed per (notification, alert) on first try so retries resend the same document."""
        r, k = self.store.r, self.store.k
        field = f"{n.key}:{a.fingerprint}"
        ident_key = k("cap", "doc")
        cached = await r.hget(ident_key, field)
        if cached:
            return cached.decode()
        seq = int(await r.incr(k("cap", "seq"))) % 10_000
        first = await r.hget(k("cap", "first"), a.fingerprint)
        # a new activation of the alert (fired after the remembered first message) starts a new thread
        refs = ""
        if first:
            info = json.loads(first)
            if info.get("fired_ms") == a.fired_ms:
                refs = info["ref"]
        msg_type = "Cancel" if a.status == "resolved" else ("Update" if refs else "Alert")
        if msg_type == "Cancel" and not refs:
            msg_type = "Alert"  # never announced over CAP (e.g. subscription added later): send as an all-clear alert
        xml = alert_to_cap(a, sender=self.cfg.cap_sender, admin_code=self.cfg.cap_admin_code, org_code=self.cfg.cap_org_code,
                           sent_ms=n.ts_ms, seq=seq, msg_type=msg_type, references=refs if msg_type != "Alert" else "",
                           utc_offset_h=self.cfg.utc_offset_h)
        p = r.pipeline(transaction=True)
        made_ms = now_ms()
        p.hset(ident_key, field, xml)
        p.zadd(k("cap", "doc", "ts"), {field: made_ms})  # for AlertStore.trim (retention)
        if msg_type == "Alert" and a.status != "resolved":
            from brain.alerts.cap import cap_identifier

            ident = cap_identifier(self.cfg.cap_admin_code, self.cfg.cap_org_code, n.ts_ms, seq, self.cfg.utc_offset_h)
            p.hset(k("cap", "first"), a.fingerprint, json.dumps(
                {"fired_ms": a.fired_ms, "ref": cap_reference(self.cfg.cap_sender, ident, cap_time(n.ts_ms, self.cfg.utc_offset_h))}))
            p.zadd(k("cap", "first", "ts"), {a.fingerprint: made_ms})
        await p.execute()
        return xml


class DeliveryWorker:
    """Drains one subscription's outbox until stopped: up to ``max_in_flight`` notifications at once,
    each retried for ``retry_for_s``; re-queues its transiently parked ones once the receiver answers."""

    def __init__(self, sub: Subscription, deliverer: Deliverer, cfg: DeliveryConfig, consumer: str = "engine"):
        self.sub = sub
        self.deliverer = deliverer
        self.store = deliverer.store
        self.cfg = cfg
        self.consumer = consumer
        self.stopping = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.delivered = 0
        self.parked = 0
        self.attempts = 0
        self.timeouts = 0  # requests that timed out: the receiver may have processed them (possible repeats)
        self.skipped = 0  # entries whose key was already confirmed: not sent again
        self.requeued = 0  # parked notifications put back in the outbox when the receiver was healthy again
        self.overflowed = 0  # entries parked because the outbox was over max_backlog
        self.held = 0  # entries parked behind an earlier parked notification of their group
        self.queued = 0  # outbox length when last looked at
        self._timeout_s: float | None = None  # grows after a timeout; None = the channel's own
        self._in_flight: dict[bytes, asyncio.Task] = {}
        self._group_locks: dict[str, asyncio.Lock] = {}
        self._slot_free = asyncio.Event()
        self._parked_groups: set[str] = set()  # groups with a parked notification: later ones wait behind it
        self._healthy = False  # the receiver's last answer was a success
        # keys this worker had confirmed by the receiver: never re-sent, even if Redis lost the record of it
        self._confirmed: OrderedDict[str, None] = OrderedDict()
        self.redis_waits = 0  # store calls retried because Redis was unreachable
        self._last_probe = 0.0

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"delivery:{self.sub.id}")

    async def stop(self) -> None:
        self.stopping.set()
        tasks = [t for t in (self.task, *self._in_flight.values()) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:  # what was in flight stays pending in the group: re-sent after a restart
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass

    async def _run(self) -> None:
        await self.store.ensure_group(self.sub.id)
        self._parked_groups = await self.store.parked_groups(self.sub.id)
        self._last_probe = asyncio.get_running_loop().time()  # the first probe one period after start
        cursor = "0"  # first the entries this consumer read but never confirmed (a restart), then new ones
        loop = asyncio.get_running_loop()
        while not self.stopping.is_set():
            free = self.cfg.max_in_flight - len(self._in_flight)
            if free <= 0:
                self._slot_free.clear()
                await self._slot_free.wait()
                continue
            try:
                await self._housekeeping(loop.time())  # before the read: never park what is about to be sent
                batch = await self.store.read_outbox_from(self.sub.id, self.consumer, cursor, self.cfg.block_ms, free)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis hiccup: wait and retry, never die
                log.warning("outbox read failed", extra={"fields": {"sub": self.sub.id, "error": str(exc)}})
                # A read whose reply was lost (Redis killed mid-command) may have moved entries into this
                # consumer's pending list without our seeing them: read our own pending ones first again
                # (those in flight are skipped below), else they would wait there for ever.
                cursor = "0"
                if "NOGROUP" in str(exc):  # a Redis that restarted empty: the engine rewrites it, we re-create ours
                    try:
                        await self.store.ensure_group(self.sub.id)
                        cursor = "0"
                    except Exception:
                        pass
                await self._sleep(1.0)
                continue
            if cursor != ">" and not batch:
                cursor = ">"
                continue
            for entry_id, key, note in batch:
                if cursor != ">":
                    cursor = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                if entry_id in self._in_flight:
                    continue
                t = asyncio.create_task(self._deliver(entry_id, key, note), name=f"delivery:{self.sub.id}:{key}")
                self._in_flight[entry_id] = t
                t.add_done_callback(lambda _t, e=entry_id: self._done(e))

    def _done(self, entry_id) -> None:
        self._in_flight.pop(entry_id, None)
        self._slot_free.set()

    async def _housekeeping(self, now: float) -> None:
        """Bound the backlog (park the oldest overflow); once the outbox is empty and nothing is in flight,
        re-queue the parked notifications: all of them after a success, else one group per
        ``probe_every_s`` as a probe. Re-queued only then, so no later notification of a group can sit
        ahead of them in the outbox."""
        self.queued = int(await self.store.r.xlen(self.store.outbox(self.sub.id)))
        over = self.queued - self.cfg.max_backlog
        if over > 0:
            rows = await self.store.r.xrange(self.store.outbox(self.sub.id), count=over + len(self._in_flight))
            for entry_id, f in rows:
                if over <= 0:
                    break
                if entry_id in self._in_flight:
                    continue
                note = _dec_note.decode(f[b"note"])
                await self.store.park(self.sub.id, entry_id, f[b"key"].decode(), note, 0,
                                      f"backlog over {self.cfg.max_backlog}", f"delivery:{self.sub.id}", retry=True)
                self._parked_groups.add(note.group_key)
                self.overflowed += 1
                over -= 1
        if not self._parked_groups or self._in_flight or self.queued:
            return
        if self._healthy:
            limit = self.cfg.max_backlog
        elif now - self._last_probe >= self.cfg.probe_every_s:
            limit, self._last_probe = 1, now
        else:
            return
        n, groups = await self.store.requeue_parked(self.sub.id, limit, f"delivery:{self.sub.id}")
        self.requeued += n
        self._parked_groups -= groups
        if n == 0:  # parked by hand or replayed by an operator meanwhile: look again
            self._parked_groups = await self.store.parked_groups(self.sub.id)

    async def _deliver(self, entry_id, key: str, note: Notification) -> None:
        lock = self._group_locks.setdefault(note.group_key, asyncio.Lock())
        async with lock:  # FIFO: notifications of one group reach the receiver in order
            await self._deliver_one(entry_id, key, note)
        if not lock.locked() and not lock._waiters:
            self._group_locks.pop(note.group_key, None)

    async def _deliver_one(self, entry_id, key: str, note: Notification) -> None:
        actor = f"delivery:{self.sub.id}"
        loop = asyncio.get_running_loop()
        started = loop.time()
        error, attempt = "", 0
        if key in self._confirmed or await self._redis(self.store.was_delivered, key):  # e.g. before a crash
            await self._redis(self.store.mark_delivered, self.sub.id, entry_id, key, 0, actor)
            self.skipped += 1
            return
        if note.group_key in self._parked_groups:  # an operator may have replayed it meanwhile: look again
            self._parked_groups = await self._redis(self.store.parked_groups, self.sub.id)
        if note.group_key in self._parked_groups:  # keep the group's order: wait behind its parked one
            await self._redis(self.store.park, self.sub.id, entry_id, key, note, 0,
                              "behind a parked notification of its group", actor, retry=True)
            self.held += 1
            return
        while True:
            attempt += 1
            self.attempts += 1
            try:
                await self.deliverer.send(self.sub, note, self._timeout_s)
            except asyncio.CancelledError:
                raise
            except PermanentError as exc:
                await self._redis(self.store.park, self.sub.id, entry_id, key, note, attempt, str(exc), actor,
                                  retry=False)
                self.parked += 1
                log.warning("notification refused, parked", extra={"fields": {"sub": self.sub.id, "key": key, "error": str(exc)}})
                return
            except asyncio.TimeoutError as exc:
                # the receiver may be processing it: wait longer next time rather than re-send at the same pace
                self.timeouts += 1
                current = self._timeout_s or self.sub.channel.timeout_s
                self._timeout_s = min(self.cfg.timeout_max_s, max(current * 2, current + 1e-3))
                error = f"timeout after {current:g} s ({type(exc).__name__})"
            except Exception as exc:  # refused connections, 5xx
                error = f"{type(exc).__name__}: {exc}"
            else:
                # sent: record it (retrying through a Redis outage), never send it again
                self._confirmed[key] = None
                if len(self._confirmed) > 100_000:
                    self._confirmed.popitem(last=False)
                record = asyncio.ensure_future(self._redis(self.store.mark_delivered, self.sub.id, entry_id, key,
                                                           attempt, actor))
                try:
                    await asyncio.shield(record)
                except asyncio.CancelledError:  # a stop: finish recording it first (else re-sent after a restart)
                    try:
                        await record
                    except (asyncio.CancelledError, Exception):
                        pass
                    raise
                self.delivered += 1
                self._healthy = True
                return
            self._healthy = False
            delay = self.cfg.backoff_s(attempt - 1)
            out_of_tries = self.cfg.max_attempts is not None and attempt >= self.cfg.max_attempts
            if out_of_tries or loop.time() + delay - started > self.cfg.retry_for_s:
                break
            await self._sleep(delay)
            if self.stopping.is_set():
                return  # left pending in the group: re-sent after a restart
        await self._redis(self.store.park, self.sub.id, entry_id, key, note, attempt, error, actor, retry=True)
        self.parked += 1
        self._parked_groups.add(note.group_key)
        log.warning("notification parked after retrying", extra={"fields": {"sub": self.sub.id, "key": key, "error": error,
                                                                           "attempts": attempt}})

    async def _redis(self, call, *args, **kw):
        """``await call(*args)``, retried with backoff while Redis is unreachable (a send the receiver
        confirmed must be recorded, not repeated); a stop leaves the entry pending for the next start."""
        delay = 0.05
        while True:
            try:
                return await call(*args, **kw)
            except REDIS_DOWN as exc:
                self.redis_waits += 1
                if self.redis_waits == 1 or self.redis_waits % 100 == 0:
                    log.warning("delivery waits for Redis", extra={"fields": {"sub": self.sub.id, "error": str(exc)}})
            if self.stopping.is_set():
                raise asyncio.CancelledError
            await self._sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass


class DeliveryPool:
    """Keeps one worker per subscription in step with the current subscription list.

    >>> DeliveryPool(store=None).stats()
    {}
    """

    def __init__(self, store: AlertStore, cfg: DeliveryConfig | None = None, consumer: str = "engine"):
        self.store = store
        self.cfg = cfg or DeliveryConfig()
        self.consumer = consumer
        self.workers: dict[str, DeliveryWorker] = {}
        self.session: aiohttp.ClientSession | None = None

    async def sync(self, subs: dict[str, Subscription]) -> None:
        if self.session is None:
            # one connection per in-flight request per receiver; the total stays bounded too
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, limit_per_host=self.cfg.max_in_flight * 2))
        deliverer = Deliverer(self.store, self.cfg, self.session)
        for sid in list(self.workers):
            w = self.workers[sid]
            if sid not in subs or msgspec_changed(w.sub, subs[sid]):
                await w.stop()
                del self.workers[sid]
        for sid, sub in subs.items():
            if sid not in self.workers:
                w = DeliveryWorker(sub, deliverer, self.cfg, self.consumer)
                w.start()
                self.workers[sid] = w

    async def close(self) -> None:
        for w in self.workers.values():
            await w.stop()
        self.workers = {}
        if self.session is not None:
            await self.session.close()
            self.session = None

    def stats(self) -> dict[str, dict[str, int]]:
        """Counters per subscription since start (``timeouts`` = possible repeats the receiver drops by key)."""
        return {sid: {"delivered": w.delivered, "parked": w.parked, "attempts": w.attempts, "timeouts": w.timeouts,
                      "skipped": w.skipped, "requeued": w.requeued, "overflowed": w.overflowed, "held": w.held, "in_flight": w.in_flight,
                      "redis_waits": w.redis_waits}
                for sid, w in self.workers.items()}

    async def backlog(self) -> dict[str, dict[str, int]]:
        """Where each subscription's notifications stand now: ``queued`` (in the outbox, in flight included),
        ``in_flight``, ``parked_retry`` (parked, re-queued automatically), ``max`` (the backlog bound)."""
        out = {}
        for sid, w in self.workers.items():
            out[sid] = {"queued": int(await self.store.r.xlen(self.store.outbox(sid))), "in_flight": w.in_flight,
                        "parked_retry": await self.store.parked_for_retry(sid), "max": self.cfg.max_backlog}
        return out

    async def metrics_text(self) -> str:
        """Prometheus text lines for the backlog and the counters, one series per subscription."""
        lines = []
        backlog = await self.backlog()
        for name, help_, source in (("queued", "notifications in the outbox", backlog),
                                    ("in_flight", "requests in flight", backlog),
                                    ("parked_retry", "parked notifications waiting for the receiver", backlog)):
            lines += [f"# HELP citybrain_delivery_{name} {help_}", f"# TYPE citybrain_delivery_{name} gauge"]
            lines += [f'citybrain_delivery_{name}{{subscription="{sid}"}} {v[name]}' for sid, v in source.items()]
        stats = self.stats()
        for name in ("delivered", "parked", "attempts", "timeouts", "requeued", "overflowed"):
            lines += [f"# TYPE citybrain_delivery_{name}_total counter"]
            lines += [f'citybrain_delivery_{name}_total{{subscription="{sid}"}} {v[name]}' for sid, v in stats.items()]
        return "\n".join(lines) + "\n"


def msgspec_changed(a: Subscription, b: Subscription) -> bool:
    return a.to_dict() != b.to_dict()


__all__ = ["DeliveryConfig", "DeliveryPool", "DeliveryWorker", "Deliverer", "PermanentError", "now_ms"]
