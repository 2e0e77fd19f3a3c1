"""Redis-backed alert store: alert states, groups, subscriptions, silences, notification log, outboxes, audit.

Keys (under ``prefix``, default ``citybrain:alerts``):

============================ ==========================================================================
``{p}:alerts``               hash fingerprint → alert state (JSON)
``{p}:groups``               hash group id → what each subscription's group last notified
``{p}:subs_state``           hash subscription id → throttle window and digest buffer
``{p}:subscriptions``        hash subscription id → subscription (JSON); ``{p}:subscriptions:version``
``{p}:silences``             hash silence id → silence (JSON)
``{p}:acks``                 hash fingerprint → pending operator acknowledgement (applied by the engine)
``{p}:sent``                 sorted set: notification idempotency keys enqueued (score: ms), kept ``log_days``
``{p}:notifications``        stream: every notification enqueued (key, subscription, status, summary), kept ``log_days``
``{p}:outbox:{sub}``         stream per subscription, consumer group ``delivery``: what is still to deliver
``{p}:delivered``            sorted set: notification keys delivered (score: delivery ms), kept ``log_days``
``{p}:parked``               stream: notifications that exhausted their retries (replayable)
``{p}:audit``                stream: every state change and who made it
``{p}:feed``                 string: JSON snapshot of active alerts for live views
``{p}:meta``                 hash: last_window_ms, rules_version …
``{p}:rule_memory``          hash rule id → the rule engine's memory (rate, absence, multi-point history)
``{p}:cap:doc``              hash notification key:fingerprint → CAP 1.2 document sent (retries resend it);
                             ``{p}:cap:doc:ts`` sorted set of when each was made, kept ``log_days``
``{p}:cap:first``            hash fingerprint → reference of its first CAP message (for Update/Cancel);
                             ``{p}:cap:first:ts`` sorted set, kept ``log_days``
============================ ==========================================================================

Retention: ``log_days`` (default 7 days, :data:`DEFAULT_LOG_DAYS`) bounds the notification log
(``sent``, ``notifications``, ``delivered``) and the stored CAP documents; :meth:`AlertStore.trim`
drops what is older (the service calls it at most once a minute). Parked notifications and the
audit log are not trimmed by age: they wait for an operator.

One window's changes (alert states, groups, new notifications into the outboxes and the log,
audit entries) are written in a single MULTI/EXEC transaction, so after a crash Redis holds
either the window before or the window after, never half of one.
"""
from __future__ import annotations

import json
import time

import msgspec
import redis.asyncio as aioredis

from brain.alerts.grouping import GroupState, SubscriptionState
from brain.alerts.model import Alert, Notification
from brain.alerts.routing import Subscription
from brain.alerts.silences import Silence
from brain.alerts.state import AlertState, AuditEntry
from streams.alerts.journal import AlertTx, NoteOut

DEFAULT_PREFIX = "citybrain:alerts"
DEFAULT_LOG_DAYS = 7.0
DAY_MS = 86_400_000
AUDIT_MAXLEN = 200_000
NOTIFICATIONS_MAXLEN = 100_000

_enc = msgspec.json.Encoder()
_dec_alert = msgspec.json.Decoder(Alert)
_dec_group = msgspec.json.Decoder(GroupState)
_dec_subst = msgspec.json.Decoder(SubscriptionState)
_dec_sil = msgspec.json.Decoder(Silence)
_dec_note = msgspec.json.Decoder(Notification)


def now_ms() -> int:
    return int(time.time() * 1000)


class AlertStore:
    """Async access to the alert keys of one Redis; shared by the engine, the delivery workers and the CLI."""

    def __init__(self, redis: aioredis.Redis, prefix: str = DEFAULT_PREFIX, log_days: float = DEFAULT_LOG_DAYS):
        if isinstance(log_days, bool) or not isinstance(log_days, (int, float)) or log_days <= 0:
            raise ValueError(f"log_days (retention of the notification log and CAP documents) must be a positive "
                             f"number of days, got {log_days!r}")
        self.r = redis
        self.p = prefix
        self.log_days = float(log_days)

    @classmethod
    def from_url(cls, url: str, prefix: str = DEFAULT_PREFIX, log_days: float = DEFAULT_LOG_DAYS) -> "AlertStore":
        return cls(aioredis.Redis.from_url(url), prefix, log_days)

    def k(self, *parts: str) -> str:
        return ":".join((self.p, *parts))

    async def close(self) -> None:
        await self.r.aclose()

    # --- engine state -------------------------------------------------------------------------------
    async def load_state(self, state: AlertState) -> AlertState:
        """Fill an in-memory state from Redis (alerts, groups, subscriptions, silences, notification log)."""
        p = self.r.pipeline(transaction=False)
        p.hgetall(self.k("alerts"))
        p.hgetall(self.k("groups"))
        p.hgetall(self.k("subs_state"))
        p.zrange(self.k("sent"), 0, -1, withscores=True)
        alerts, groups, subs_state, sent = await p.execute()
        state.alerts = {fp.decode(): _dec_alert.decode(v) for fp, v in alerts.items()}
        state.groups = {g.decode(): _dec_group.decode(v) for g, v in groups.items()}
        state.subs_state = {s.decode(): _dec_subst.decode(v) for s, v in subs_state.items()}
        state.sent_keys = {k.decode(): int(ts) for k, ts in sent}
        state.subscriptions = await self.subscriptions()
        state.silences = await self.silences()
        return state

    async def window_inputs(self) -> tuple[int, dict[str, Silence], dict[str, dict]]:
        """One round trip for what the engine reads each window: subscriptions version, silences, and the
        pending acknowledgements. Acks stay queued until :meth:`persist` writes the state that applies
        them (``acks_applied``), so an engine killed in between applies them again after its restart."""
        p = self.r.pipeline(transaction=True)
        p.get(self.k("subscriptions", "version"))
        p.hgetall(self.k("silences"))
        p.hgetall(self.k("acks"))
        version, sil, acks = await p.execute()
        return (int(version or 0), {k.decode(): _dec_sil.decode(v) for k, v in sil.items()},
                {fp.decode(): json.loads(v) for fp, v in acks.items()})

    async def rule_memory(self) -> dict[str, bytes]:
        """The rule engine's memory saved by :meth:`persist` (rule id → bytes)."""
        return {k.decode(): v for k, v in (await self.r.hgetall(self.k("rule_memory"))).items()}

    async def persist(self, state: AlertState, notes: list[Notification], window_ms: int | None = None,
                      feed: list[Alert] | None = None, rule_memory: dict[str, bytes] | None = None,
                      acks_applied: list[str] | None = None) -> None:
        """Write one window's changes and enqueue its notifications (and the live feed, and the rule engine's
        memory), atomically: after a crash Redis holds the rule memory that goes with the alert state.
        (The engine goes through :class:`streams.alerts.journal.AlertJournal`, which survives outages.)"""
        tx = self.build_tx(state, notes, window_ms=window_ms, feed=feed, rule_memory=rule_memory,
                           acks_applied=acks_applied)
        p = self.r.pipeline(transaction=True)
        self.write_tx(p, tx)
        await p.execute()

    def build_tx(self, state: AlertState, notes: list[Notification], window_ms: int | None = None,
                 feed: list[Alert] | None = None, rule_memory: dict[str, bytes] | None = None,
                 acks_applied: list[str] | None = None) -> AlertTx:
        """What one window changed, encoded now (so it can wait in a buffer while Redis is down)."""
        dirty, removed, audit = state.take_changes()
        return AlertTx(
            acks_applied=list(acks_applied or []), rule_memory=dict(rule_memory) if rule_memory is not None else None,
            alerts_set={fp: _enc.encode(state.alerts[fp]) for fp in dirty if fp in state.alerts},
            alerts_del=sorted(removed), groups={g: _enc.encode(v) for g, v in state.groups.items()},
            subs_state={sid: _enc.encode(v) for sid, v in state.subs_state.items()},
            notes=[_note_out(n) for n in notes], audit=[_audit_fields(e) for e in audit], window_ms=window_ms,
            sent_cutoff_ms=(window_ms - self.log_days * 86_400_000) if window_ms is not None else None,
            feed=_enc.encode(feed) if feed is not None else None)

    def full_tx(self, state: AlertState, window_ms: int | None = None, feed: list[Alert] | None = None,
                rule_memory: dict[str, bytes] | None = None, with_subscriptions: bool = False) -> AlertTx:
        """The whole in-memory state as one transaction that replaces Redis' copy of the alerts (no entry the
        engine no longer holds survives it); ``with_subscriptions`` also rewrites the subscriptions (a
        Redis that lost them)."""
        _, _, audit = state.take_changes()  # every alert is written below
        tx = AlertTx(full=True, audit=[_audit_fields(e) for e in audit], rule_memory=dict(rule_memory) if rule_memory is not None else None,
                     alerts_set={fp: _enc.encode(a) for fp, a in state.alerts.items()},
                     groups={g: _enc.encode(v) for g, v in state.groups.items()},
                     subs_state={sid: _enc.encode(v) for sid, v in state.subs_state.items()}, window_ms=window_ms,
                     feed=_enc.encode(feed) if feed is not None else None)
        if with_subscriptions:
            tx.subscriptions = {sid: json.dumps(sub.to_dict(), ensure_ascii=False).encode()
                                for sid, sub in state.subscriptions.items()}
        return tx

    def write_tx(self, p, tx: AlertTx) -> None:
        """Add the commands of ``tx`` to the (MULTI) pipeline ``p``."""
        if tx.acks_applied:
            p.hdel(self.k("acks"), *tx.acks_applied)
        if tx.rule_memory is not None:
            p.delete(self.k("rule_memory"))
            if tx.rule_memory:
                p.hset(self.k("rule_memory"), mapping=tx.rule_memory)
        if tx.full:
            p.delete(self.k("alerts"))
        if tx.alerts_set:
            p.hset(self.k("alerts"), mapping=tx.alerts_set)
        if tx.alerts_del and not tx.full:
            p.hdel(self.k("alerts"), *tx.alerts_del)
        if tx.groups is not None:
            p.delete(self.k("groups"))
            if tx.groups:
                p.hset(self.k("groups"), mapping=tx.groups)
        if tx.subs_state is not None:
            p.delete(self.k("subs_state"))
            if tx.subs_state:
                p.hset(self.k("subs_state"), mapping=tx.subs_state)
        if tx.subscriptions:
            p.hset(self.k("subscriptions"), mapping=tx.subscriptions)
        for n in tx.notes:
            p.zadd(self.k("sent"), {n.key: n.ts_ms})
            p.xadd(self.k("outbox", n.sub), {"key": n.key, "note": n.payload})
            p.xadd(self.k("notifications"), n.log_fields, maxlen=NOTIFICATIONS_MAXLEN, approximate=True)
        for fields in tx.audit:
            p.xadd(self.k("audit"), fields, maxlen=AUDIT_MAXLEN, approximate=True)
        if tx.window_ms is not None:
            p.hset(self.k("meta"), mapping={"last_window_ms": tx.window_ms, "updated_ms": now_ms()})
        if tx.sent_cutoff_ms is not None:
            # keys only guard against replays of recent windows: keep them for log_days of stream time
            p.zremrangebyscore(self.k("sent"), "-inf", tx.sent_cutoff_ms)
        if tx.feed is not None:
            p.set(self.k("feed"), tx.feed)

    async def reset_state(self, actor: str) -> None:
        """Forget alert states, groups, rule memory, the notification log and pending outboxes (a fresh run);
        subscriptions, silences, parked notifications and the audit log stay."""
        subs = await self.r.hkeys(self.k("subscriptions"))
        p = self.r.pipeline(transaction=True)
        p.delete(self.k("alerts"), self.k("groups"), self.k("subs_state"), self.k("sent"), self.k("acks"),
                 self.k("feed"), self.k("rule_memory"), *[self.outbox(s.decode()) for s in subs])
        p.hdel(self.k("meta"), "last_window_ms")
        p.xadd(self.k("audit"), _audit_fields(AuditEntry(ts_ms=now_ms(), actor=actor, action="reset", target=self.p,
                                                         new="fresh")))
        await p.execute()

    async def trim(self, now_ms_: int | None = None) -> dict[str, int]:
        """Drop notification-log entries and stored CAP documents older than ``log_days`` (wall clock, as they
        were written); returns how many of each went."""
        cutoff = (now_ms() if now_ms_ is None else now_ms_) - int(self.log_days * DAY_MS)
        out = {}
        for name in ("doc", "first"):
            idx = self.k("cap", name, "ts")
            old = await self.r.zrangebyscore(idx, "-inf", cutoff)
            if old:
                p = self.r.pipeline(transaction=True)
                p.hdel(self.k("cap", name), *old)
                p.zrem(idx, *old)
                await p.execute()
            out[f"cap_{name}"] = len(old)
        p = self.r.pipeline(transaction=False)
        # stream ids are the wall-clock ms of their XADD
        p.xtrim(self.k("notifications"), minid=f"{max(cutoff, 0)}-0", approximate=False)
        p.zremrangebyscore(self.k("delivered"), "-inf", cutoff)
        out["notifications"], out["delivered"] = await p.execute()
        return out

    async def write_feed(self, alerts: list[Alert]) -> None:
        await self.r.set(self.k("feed"), _enc.encode(alerts))

    async def meta(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in (await self.r.hgetall(self.k("meta"))).items()}

    async def set_meta(self, **fields) -> None:
        await self.r.hset(self.k("meta"), mapping={k: str(v) for k, v in fields.items()})

    # --- reading (CLI, dashboards) -----------------------------------------------------------------
    async def alerts(self) -> list[Alert]:
        return [_dec_alert.decode(v) for v in (await self.r.hgetall(self.k("alerts"))).values()]

    async def audit(self, count: int = 50) -> list[dict]:
        rows = await self.r.xrevrange(self.k("audit"), count=count)
        return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in reversed(rows)]

    async def notifications(self, count: int = 50) -> list[dict]:
        rows = await self.r.xrevrange(self.k("notifications"), count=count)
        return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in reversed(rows)]

    async def log_audit(self, entry: AuditEntry) -> None:
        await self.r.xadd(self.k("audit"), _audit_fields(entry), maxlen=AUDIT_MAXLEN, approximate=True)

    # --- operator commands --------------------------------------------------------------------------
    async def request_ack(self, fingerprint: str, who: str, comment: str = "") -> None:
        """Queue an acknowledgement for the engine (which owns alert state) to apply."""
        await self.r.hset(self.k("acks"), fingerprint, json.dumps({"who": who, "comment": comment, "ts_ms": now_ms()}))

    async def request_unack(self, fingerprint: str, who: str, comment: str = "") -> None:
        """Queue taking an acknowledgement back (the alert fires again, unowned); same queue as acks, so the
        latest request for an alert wins."""
        await self.r.hset(self.k("acks"), fingerprint, json.dumps({"who": who, "comment": comment, "ts_ms": now_ms(),
                                                                   "unack": True}))

    async def take_acks(self) -> dict[str, dict]:
        p = self.r.pipeline(transaction=True)
        p.hgetall(self.k("acks"))
        p.delete(self.k("acks"))
        raw, _ = await p.execute()
        return {fp.decode(): json.loads(v) for fp, v in raw.items()}

    async def silences(self) -> dict[str, Silence]:
        return {k.decode(): _dec_sil.decode(v) for k, v in (await self.r.hgetall(self.k("silences"))).items()}

    async def put_silence(self, s: Silence, actor: str, action: str = "create") -> None:
        p = self.r.pipeline(transaction=True)
        p.hset(self.k("silences"), s.id, _enc.encode(s))
        p.xadd(self.k("audit"), _audit_fields(AuditEntry(ts_ms=now_ms(), actor=actor, action="silence", target=s.id,
                                                         new=action, detail=f"{s.matchers} {s.starts_ms}..{s.ends_ms} {s.comment}")))
        await p.execute()

    async def subscriptions(self) -> dict[str, Subscription]:
        raw = await self.r.hgetall(self.k("subscriptions"))
        return {k.decode(): Subscription.from_dict(json.loads(v)) for k, v in raw.items()}

    async def subscriptions_version(self) -> int:
        return int(await self.r.get(self.k("subscriptions", "version")) or 0)

    async def put_subscription(self, sub: Subscription, actor: str) -> None:
        p = self.r.pipeline(transaction=True)
        p.hset(self.k("subscriptions"), sub.id, json.dumps(sub.to_dict(), ensure_ascii=False))
        p.incr(self.k("subscriptions", "version"))
        p.xadd(self.k("audit"), _audit_fields(AuditEntry(ts_ms=now_ms(), actor=actor, action="subscription",
                                                         target=sub.id, new="set")))
        await p.execute()

    async def remove_subscription(self, sub_id: str, actor: str) -> bool:
        p = self.r.pipeline(transaction=True)
        p.hdel(self.k("subscriptions"), sub_id)
        p.incr(self.k("subscriptions", "version"))
        p.xadd(self.k("audit"), _audit_fields(AuditEntry(ts_ms=now_ms(), actor=actor, action="subscription",
                                                         target=sub_id, new="removed")))
        n, _, _ = await p.execute()
        return bool(n)

    # --- delivery -----------------------------------------------------------------------------------
    def outbox(self, sub_id: str) -> str:
        return self.k("outbox", sub_id)

    async def ensure_group(self, sub_id: str) -> None:
        try:
            await self.r.xgroup_create(self.outbox(sub_id), "delivery", id="0", mkstream=True)
        except aioredis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read_outbox(self, sub_id: str, consumer: str, pending: bool, block_ms: int, count: int = 10):
        """Entries for a delivery worker: its own unacknowledged ones first (after a restart), then new ones."""
        return await self.read_outbox_from(sub_id, consumer, "0" if pending else ">", block_ms, count)

    async def read_outbox_from(self, sub_id: str, consumer: str, cursor: str, block_ms: int, count: int):
        """Like :meth:`read_outbox` with an explicit cursor: ``">"`` new entries, else this consumer's own
        unconfirmed entries after ``cursor`` (so a worker with several in flight pages through them once)."""
        res = await self.r.xreadgroup("delivery", consumer, {self.outbox(sub_id): cursor},
                                      count=count, block=block_ms if cursor == ">" else None)
        out = []
        for _, entries in res or []:
            for entry_id, fields in entries:
                if fields:
                    out.append((entry_id, fields[b"key"].decode(), _dec_note.decode(fields[b"note"])))
        return out

    async def mark_delivered(self, sub_id: str, entry_id, key: str, attempts: int, actor: str) -> None:
        p = self.r.pipeline(transaction=True)
        p.zadd(self.k("delivered"), {key: now_ms()})
        p.zremrangebyscore(self.k("delivered"), "-inf", now_ms() - self.log_days * 86_400_000)
        p.xack(self.outbox(sub_id), "delivery", entry_id)
        p.xdel(self.outbox(sub_id), entry_id)
        p.xadd(self.k("audit"), _audit_fields(AuditEntry(ts_ms=now_ms(), actor=actor, action="deliver", target=key,
                                                         new="delivered", detail=f"attempts={attempts}")),
               maxlen=AUDIT_MAXLEN, approximate=True)
        await p.execute()

    async def park(self, sub_id: str, entry_id, key: str, note: Notification, attempts: int, error: str,
                   actor: str, retry: bool = False) -> None:
        """Move an outbox entry to the parked stream. ``retry=True``: a transient failure (the retry period ran
        out, or the backlog bound overflowed) that the delivery worker re-queues by itself once the receiver
        answers again; ``False``: refused for good (HTTP 4xx), only an operator replays it."""
        p = self.r.pipeline(transaction=True)
        p.xadd(self.k("parked"), {"key": key, "sub": sub_id, "note": _enc.encode(note), "attempts": attempts,
                                  "error": error[:500], "parked_ms": now_ms(), "retry": int(retry)})
        p.xack(self.outbox(sub_id), "delivery", entry_id)
        p.xdel(self.outbox(sub_id), entry_id)
        p.xadd(self.k("audit"), _audit_fields(AuditEntry(ts_ms=now_ms(), actor=actor, action="deliver", target=key,
                                                         new="parked", detail=f"attempts={attempts}: {error[:200]}")),
               maxlen=AUDIT_MAXLEN, approximate=True)
        await p.execute()

    async def parked(self) -> list[dict]:
        rows = await self.r.xrange(self.k("parked"))
        out = []
        for entry_id, f in rows:
            out.append({"id": entry_id.decode(), "key": f[b"key"].decode(), "sub": f[b"sub"].decode(),
                        "attempts": int(f[b"attempts"]), "error": f[b"error"].decode(), "parked_ms": int(f[b"parked_ms"]),
                        "retry": f.get(b"retry") == b"1"})
        return out

    async def parked_for_retry(self, sub_id: str) -> int:
        """How many of ``sub_id``'s parked notifications wait to be re-queued automatically."""
        return sum(1 for _, f in await self.r.xrange(self.k("parked"))
                   if f[b"sub"].decode() == sub_id and f.get(b"retry") == b"1")

    async def parked_groups(self, sub_id: str) -> set[str]:
        """The notification groups of ``sub_id`` with a transiently parked notification."""
        return {_dec_note.decode(f[b"note"]).group_key for _, f in await self.r.xrange(self.k("parked"))
                if f[b"sub"].decode() == sub_id and f.get(b"retry") == b"1"}

    async def requeue_parked(self, sub_id: str, limit: int, actor: str) -> tuple[int, set[str]]:
        """Move ``sub_id``'s transiently parked notifications back to its outbox, oldest first, whole groups
        at a time (so a group's notifications stay in order): the groups of the oldest ``limit`` entries.
        What a delivery worker does when its receiver answers again. Returns (how many, which groups)."""
        rows = [(eid, f, _dec_note.decode(f[b"note"]).group_key) for eid, f in await self.r.xrange(self.k("parked"))
                if f[b"sub"].decode() == sub_id and f.get(b"retry") == b"1"]
        groups: set[str] = set()
        for _, _, g in rows[:limit]:
            groups.add(g)
        n = 0
        for entry_id, f, g in rows:
            if g not in groups:
                continue
            p = self.r.pipeline(transaction=True)
            p.xadd(self.outbox(sub_id), {"key": f[b"key"], "note": f[b"note"]})
            p.xdel(self.k("parked"), entry_id)
            p.xadd(self.k("audit"), _audit_fields(AuditEntry(ts_ms=now_ms(), actor=actor, action="deliver",
                                                             target=f[b"key"].decode(), old="parked", new="requeued")),
                   maxlen=AUDIT_MAXLEN, approximate=True)
            await p.execute()
            n += 1
        return n, groups

    async def was_delivered(self, key: str) -> bool:
        """True when a notification with this idempotency key was confirmed delivered (within the log retention)."""
        return await self.r.zscore(self.k("delivered"), key) is not None

    async def replay_parked(self, ids: list[str] | None, actor: str) -> int:
        """Move parked notifications (all, or the given entry ids) back to their outboxes."""
        rows = await self.r.xrange(self.k("parked"))
        n = 0
        for entry_id, f in rows:
            eid = entry_id.decode()
            if ids is not None and eid not in ids and f[b"key"].decode() not in ids:
                continue
            sub = f[b"sub"].decode()
            p = self.r.pipeline(transaction=True)
            p.xadd(self.outbox(sub), {"key": f[b"key"], "note": f[b"note"]})
            p.xdel(self.k("parked"), entry_id)
            p.xadd(self.k("audit"), _audit_fields(AuditEntry(ts_ms=now_ms(), actor=actor, action="deliver",
                                                             target=f[b"key"].decode(), old="parked", new="replayed")))
            await p.execute()
            await self.ensure_group(sub)
            n += 1
        return n

    async def delivered_keys(self) -> set[str]:
        return {k.decode() for k in await self.r.zrange(self.k("delivered"), 0, -1)}

    async def delivery_backlog(self, now_ms_: int | None = None) -> dict[str, dict[str, int]]:
        """Per subscription, from Redis alone (any process can ask): ``queued`` (in the outbox, in flight
        included), ``in_flight`` (read by a delivery worker, not yet confirmed), ``parked_retry`` (parked, re-queued
        by the worker once the receiver answers), ``parked_refused`` (refused by the receiver: an operator's),
        ``oldest_queued_s`` (age of the oldest outbox entry, wall clock; 0 when empty)."""
        t = now_ms() if now_ms_ is None else now_ms_
        subs = [s.decode() for s in await self.r.hkeys(self.k("subscriptions"))]
        parked: dict[str, list[int]] = {sid: [0, 0] for sid in subs}
        for _, f in await self.r.xrange(self.k("parked")):
            counts = parked.setdefault(f[b"sub"].decode(), [0, 0])
            counts[0 if f.get(b"retry") == b"1" else 1] += 1
        out = {}
        for sid in sorted(parked):
            key = self.outbox(sid)
            p = self.r.pipeline(transaction=False)
            p.xlen(key)
            p.xrange(key, count=1)
            queued, first = await p.execute()
            try:
                in_flight = int((await self.r.xpending(key, "delivery"))["pending"]) if queued else 0
            except aioredis.ResponseError:  # no consumer group yet: nothing read
                in_flight = 0
            oldest = int(first[0][0].decode().split("-")[0]) if first else t
            out[sid] = {"queued": int(queued), "in_flight": in_flight, "parked_retry": parked[sid][0],
                        "parked_refused": parked[sid][1], "oldest_queued_s": max(0, t - oldest) // 1000}
        return out

    async def outbox_lengths(self) -> dict[str, int]:
        subs = await self.r.hkeys(self.k("subscriptions"))
        out = {}
        for s in subs:
            out[s.decode()] = int(await self.r.xlen(self.outbox(s.decode())))
        return out


def _note_out(n: Notification) -> NoteOut:
    return NoteOut(n.subscription_id, n.key, n.ts_ms, _enc.encode(n),
                   {"key": n.key, "sub": n.subscription_id, "status": n.status, "reason": n.reason, "ts_ms": n.ts_ms,
                    "alerts": len(n.alerts), "summary": "; ".join(a.summary for a in n.alerts[:3])})


def _audit_fields(e: AuditEntry) -> dict:
    return {"ts_ms": e.ts_ms, "actor": e.actor, "action": e.action, "target": e.target, "old": e.old, "new": e.new,
            "detail": e.detail}
