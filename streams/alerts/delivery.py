"""Delivery workers: one asyncio task per subscription, at-least-once, retry with backoff, then park.

Each subscription has its own Redis Stream outbox and its own worker, so a slow or dead receiver
only delays its own queue: never another receiver, never the pipeline (which only appends to
outboxes). A worker first re-sends what it had read but not confirmed before a restart, then
waits for new entries. Every message carries its idempotency key (``Idempotency-Key`` header and
in the body) so a receiver can drop the repeats that at-least-once delivery implies.

Channels: ``webhook`` (JSON, CityBrain's payload or Alertmanager v4), ``cap`` (one CAP 1.2 XML
document per alert, POSTed as ``application/cap+xml``), ``redis_stream`` (XADD to a stream on the
same Redis), ``log`` (structured log line only).
"""
from __future__ import annotations

import asyncio
import json
import logging
import random

import aiohttp

from brain.alerts.cap import alert_to_cap, cap_reference, cap_time
from brain.alerts.model import Notification
from brain.alerts.routing import Subscription
from brain.alerts.sdm import alertmanager_payload, citybrain_payload
from streams.alerts.store import AlertStore, now_ms

log = logging.getLogger("citybrain.alerts.delivery")


class PermanentError(Exception):
    """The receiver refused the message for good (e.g. HTTP 400): park at once, retrying cannot help."""


class DeliveryConfig:
    """Retry policy: ``max_attempts`` tries with exponential backoff ``base_s * 2**n`` capped at ``max_s`` (±20 % jitter).

    >>> cfg = DeliveryConfig(backoff_base_s=0.5, backoff_max_s=60)
    >>> [0.4 <= cfg.backoff_s(0) <= 0.6, 3.2 <= cfg.backoff_s(3) <= 4.8, 48 <= cfg.backoff_s(20) <= 72]
    [True, True, True]
    >>> DeliveryConfig(max_attempts=0)
    Traceback (most recent call last):
    ...
    ValueError: max_attempts must be at least 1, got 0
    """

    def __init__(self, max_attempts: int = 8, backoff_base_s: float = 0.5, backoff_max_s: float = 60.0,
                 block_ms: int = 500, cap_sender: str = "citybrain@city.gov.cn", cap_admin_code: str = "000000",
                 cap_org_code: str = "CITYBRAIN", utc_offset_h: float = 8.0, external_url: str = ""):
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        if backoff_base_s <= 0 or backoff_max_s < backoff_base_s:
            raise ValueError("need 0 < backoff_base_s <= backoff_max_s")
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.block_ms = block_ms
        self.cap_sender = cap_sender
        self.cap_admin_code = cap_admin_code
        self.cap_org_code = cap_org_code
        self.utc_offset_h = utc_offset_h
        self.external_url = external_url

    def backoff_s(self, attempt: int) -> float:
        d = min(self.backoff_max_s, self.backoff_base_s * (2 ** attempt))
        return d * random.uniform(0.8, 1.2)


class Deliverer:
    """Sends one notification over one subscription's channel; raises on failure."""

    def __init__(self, store: AlertStore, cfg: DeliveryConfig, session: aiohttp.ClientSession):
        self.store = store
        self.cfg = cfg
        self.session = session

    async def send(self, sub: Subscription, n: Notification) -> None:
        ch = sub.channel
        if ch.type == "log":
            log.info("notification", extra={"fields": {"key": n.key, "sub": sub.id, "status": n.status,
                                                       "alerts": [a.summary for a in n.alerts]}})
        elif ch.type == "webhook":
            body = (alertmanager_payload(n, receiver=sub.id, external_url=self.cfg.external_url)
                    if ch.format == "alertmanager" else citybrain_payload(n))
            await self._post(ch, json.dumps(body, ensure_ascii=False).encode(), "application/json", n.key)
        elif ch.type == "cap":
            for a in n.alerts:
                xml = await self._cap_document(a, n)
                await self._post(ch, xml.encode(), "application/cap+xml", f"{n.key}:{a.fingerprint}")
        elif ch.type == "redis_stream":
            await self.store.r.xadd(ch.stream, {"idempotency_key": n.key,
                                                "payload": json.dumps(citybrain_payload(n), ensure_ascii=False)},
                                    maxlen=100_000, approximate=True)
        else:  # pragma: no cover - validated by Subscription
            raise PermanentError(f"unknown channel type {ch.type}")

    async def _post(self, ch, body: bytes, ctype: str, key: str) -> None:
        headers = {"Content-Type": ctype, "Idempotency-Key": key, **ch.headers}
        timeout = aiohttp.ClientTimeout(total=ch.timeout_s)
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
    """Drains one subscription's outbox until stopped."""

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

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"delivery:{self.sub.id}")

    async def stop(self) -> None:
        self.stopping.set()
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):
                pass

    async def _run(self) -> None:
        await self.store.ensure_group(self.sub.id)
        pending = True
        while not self.stopping.is_set():
            try:
                batch = await self.store.read_outbox(self.sub.id, self.consumer, pending, self.cfg.block_ms)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis hiccup: wait and retry, never die
                log.warning("outbox read failed", extra={"fields": {"sub": self.sub.id, "error": str(exc)}})
                await self._sleep(1.0)
                continue
            if pending and not batch:
                pending = False
                continue
            for entry_id, key, note in batch:
                await self._deliver(entry_id, key, note)
                if self.stopping.is_set():
                    return

    async def _deliver(self, entry_id, key: str, note: Notification) -> None:
        actor = f"delivery:{self.sub.id}"
        error = ""
        for attempt in range(self.cfg.max_attempts):
            self.attempts += 1
            try:
                await self.deliverer.send(self.sub, note)
                await self.store.mark_delivered(self.sub.id, entry_id, key, attempt + 1, actor)
                self.delivered += 1
                return
            except asyncio.CancelledError:
                raise
            except PermanentError as exc:
                error = str(exc)
                break
            except Exception as exc:  # timeouts, refused connections, 5xx
                error = f"{type(exc).__name__}: {exc}"
                if attempt + 1 < self.cfg.max_attempts:
                    await self._sleep(self.cfg.backoff_s(attempt))
                    if self.stopping.is_set():
                        return  # left pending: re-sent after restart
        await self.store.park(self.sub.id, entry_id, key, note, attempt + 1, error, actor)
        self.parked += 1
        log.warning("notification parked", extra={"fields": {"sub": self.sub.id, "key": key, "error": error}})

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass


class DeliveryPool:
    """Keeps one worker per subscription in step with the current subscription list."""

    def __init__(self, store: AlertStore, cfg: DeliveryConfig | None = None, consumer: str = "engine"):
        self.store = store
        self.cfg = cfg or DeliveryConfig()
        self.consumer = consumer
        self.workers: dict[str, DeliveryWorker] = {}
        self.session: aiohttp.ClientSession | None = None

    async def sync(self, subs: dict[str, Subscription]) -> None:
        if self.session is None:
            self.session = aiohttp.ClientSession()
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
        return {sid: {"delivered": w.delivered, "parked": w.parked, "attempts": w.attempts} for sid, w in self.workers.items()}


def msgspec_changed(a: Subscription, b: Subscription) -> bool:
    return a.to_dict() != b.to_dict()


__all__ = ["DeliveryConfig", "DeliveryPool", "DeliveryWorker", "Deliverer", "PermanentError", "now_ms"]
