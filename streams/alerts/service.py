"""``AlertService``: the one entry point the drivers call — rules → pipeline → Redis → delivery workers.

Usage from a driver (one call per closed window)::

    svc = await AlertService.start(city=city)              # embedded Redis unless CITYBRAIN_REDIS_URL
    notes = await svc.on_window(vitals_tables, window_end_ms)
    ...
    await svc.close()

``on_window`` evaluates the rule packs over the window's tables (the dict of polars frames from
:func:`brain.vitals.compute_vitals`, plus optional ``anomaly``, ``incidents`` and
``sensor_last_seen`` frames), runs the alert pipeline, and persists the changed state and the new
notifications in one Redis transaction; delivery workers send them in the background. Operator
commands written to Redis by ``citybrain alerts …`` (acks, silences, subscriptions) and edited
rule files are picked up at the next window (and by a 1 s poller for acks), without losing state.

Example (no Redis needed for the in-memory parts; see tests/alerts for the real-Redis runs):
    >>> AlertService.__name__
    'AlertService'
"""
from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import msgspec
import polars as pl
import yaml

from brain.alerts.escalation import Escalation
from brain.alerts.lifecycle import Lifecycle
from brain.alerts.model import Alert, Notification
from brain.alerts.pipeline import AlertPipeline
from brain.alerts.routing import Subscription
from brain.alerts.rules import RuleEngine, RuleError, default_rules_dir, load_rule_packs
from brain.alerts.silences import MaintenanceWindow
from brain.alerts.state import AlertState, AuditEntry
from streams.alerts.delivery import DeliveryConfig, DeliveryPool
from streams.alerts.journal import REDIS_DOWN, AlertJournal
from streams.alerts.spill import NoteSpill
from streams.alerts.store import DEFAULT_LOG_DAYS, DEFAULT_PREFIX, AlertStore, now_ms
from streams.redis_server import EmbeddedRedis, resolve_redis_url

log = logging.getLogger("citybrain.alerts")


def window_tables(window) -> dict[str, pl.DataFrame]:
    """The tables rules see for one driver window: its vital signs plus the anomaly scores and the
    per-window ``incidents``, ``cases``, ``outages`` and ``sensor_last_seen`` frames when present."""
    tables = dict(getattr(window, "vitals", None) or {})
    anomaly = getattr(window, "anomaly", None)
    if isinstance(anomaly, pl.DataFrame):
        tables["anomaly"] = anomaly
    inputs = getattr(window, "inputs", None) or {}
    for name in ("incidents", "cases", "outages", "sensor_last_seen", "anomaly"):
        if name in inputs and name not in tables:
            tables[name] = inputs[name]
    return tables


def _local_hhmm(ts_ms: int, tz) -> str:
    from datetime import datetime, timezone

    dt = datetime.fromtimestamp(ts_ms / 1000.0, tz=timezone.utc)
    if tz is not None:
        dt = dt.astimezone(tz)
    return dt.strftime("%m-%d %H:%M")


def load_subscriptions_file(path: str | os.PathLike) -> list[Subscription]:
    """Subscriptions from a YAML file: a list, or a mapping with ``subscriptions:`` (and optional ``maintenance:``)."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"{p}: {exc}") from None
    items = data.get("subscriptions") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ValueError(f"{p}: expected a list of subscriptions (or 'subscriptions:' with a list)")
    subs = [Subscription.from_dict(d) for d in items]
    ids = [s.id for s in subs]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"{p}: duplicate subscription id(s) {dup}")
    return subs


def load_maintenance_file(path: str | os.PathLike) -> list[MaintenanceWindow]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    items = data.get("maintenance", []) if isinstance(data, dict) else []
    try:
        return [msgspec.convert(w, MaintenanceWindow) for w in items]
    except msgspec.ValidationError as exc:
        raise ValueError(f"{path}: maintenance: {exc}") from None


class AlertService:
    """Rule evaluation, the alert pipeline, Redis state and delivery for one running engine."""

    def __init__(self, store: AlertStore, rules_path: str | os.PathLike | None = None, city=None,
                 subscriptions: list[Subscription] | None = None, maintenance: list[MaintenanceWindow] | None = None,
                 lifecycle: Lifecycle | None = None, escalation: Escalation | None = None,
                 delivery: DeliveryConfig | None = None, deliver: bool = True, server: EmbeddedRedis | None = None,
                 window_s: float = 0, max_buffered_tx: int = 1000, spill_dir: str | os.PathLike | None = None):
        self.store = store
        self.rules_path = Path(rules_path) if rules_path else default_rules_dir()
        self.city = city
        self.engine = RuleEngine(load_rule_packs(self.rules_path), city=city)
        self.pipeline = AlertPipeline(inhibit_rules=self.engine.inhibit_rules, state=AlertState(),
                                      correlate_rules=self.engine.correlate_rules, tick=window_s,
                                      lifecycle=lifecycle, escalation=escalation, maintenance=maintenance or [])
        self._initial_subs = list(subscriptions or [])
        if delivery is None and city is not None:
            delivery = DeliveryConfig(cap_admin_code=city.admin_code)
        self.pool = DeliveryPool(store, delivery) if deliver else None
        self.server = server
        self._lock = asyncio.Lock()
        self._rules_mtime = self._mtime()
        self._subs_version = -1
        self._poller: asyncio.Task | None = None
        self.last_window_ms: int | None = None
        self.rule_errors: dict[str, str] = {}
        self.reload_error: str = ""
        self._trimmed_ms = 0
        # alert-state writes survive a Redis outage: buffered (bounded), applied in order on reconnect
        # the notifications of buffered transactions wait on disk, not in memory (``spill_dir``: the state folder)
        spill = NoteSpill(Path(spill_dir) / f"alert-spill-{store.p.replace(':', '_')}.bin") if spill_dir else None
        self.journal = AlertJournal(store, store.write_tx, self._full_state, max_buffered=max_buffered_tx, spill=spill)
        self.inputs_stale_windows = 0  # windows evaluated with the last known silences (Redis down)
        self._reload_after_flush = False

    # --- lifecycle ----------------------------------------------------------------------------------
    @classmethod
    async def start(cls, redis_url: str | None = None, rules_path: str | os.PathLike | None = None, city=None,
                    subscriptions: list[Subscription] | str | os.PathLike | None = None,
                    state_dir: str | os.PathLike | None = None, prefix: str = DEFAULT_PREFIX, fresh: bool = False,
                    retention_days: float = DEFAULT_LOG_DAYS, **kw) -> "AlertService":
        """Connect (or start the embedded Redis), load state, seed subscriptions, start delivery workers.

        ``fresh=True`` (``citybrain run --fresh``) first forgets the alert state of a previous run, whose
        stream time would otherwise make the new run's windows look already processed.
        ``retention_days`` (default 7) bounds the notification log and the stored CAP documents."""
        server = None
        if redis_url is None:
            redis_url, server = resolve_redis_url(state_dir)
        maintenance = kw.pop("maintenance", None)
        if isinstance(subscriptions, (str, os.PathLike)):
            if maintenance is None:
                maintenance = load_maintenance_file(subscriptions)
            subscriptions = load_subscriptions_file(subscriptions)
        kw.setdefault("spill_dir", state_dir)
        svc = cls(AlertStore.from_url(redis_url, prefix, log_days=retention_days), rules_path=rules_path, city=city,
                  subscriptions=subscriptions, maintenance=maintenance, server=server, **kw)
        if fresh:
            await svc.store.reset_state(actor="engine")
            if svc.journal.spill is not None:
                svc.journal.spill.clear()
        await svc._open()
        return svc

    @classmethod
    async def from_settings(cls, city, settings, fresh: bool = False, **kw) -> "AlertService":
        """What ``citybrain run`` uses: ``settings.redis_url`` (or the embedded Redis under
        ``settings.out_dir``/redis) and ``settings.rules_dir`` (or the shipped packs); the retention of the
        notification log and CAP documents from ``settings.alert_retention_days`` when the settings have it."""
        state_dir = Path(settings.out_dir) / "redis"
        kw.setdefault("retention_days", getattr(settings, "alert_retention_days", None) or DEFAULT_LOG_DAYS)
        kw.setdefault("window_s", getattr(settings, "window_s", 0) or 0)  # windows drive the pipeline
        if "delivery" not in kw and hasattr(settings, "delivery_retry_h"):
            kw["delivery"] = DeliveryConfig.from_settings(
                settings, **({"cap_admin_code": city.admin_code} if city is not None else {}))
        return await cls.start(redis_url=settings.redis_url or None, rules_path=settings.rules_dir, city=city,
                               state_dir=state_dir, fresh=fresh, **kw)

    async def _load(self) -> list:
        """Memory from Redis: alert state, rule memory, the last window applied, the transaction sequence."""
        await self.store.load_state(self.pipeline.state)
        # rate / absence / multi-point history: a restart must not make rules blind for their look-back
        restored = self.engine.restore_memory(await self.store.rule_memory())
        meta = await self.store.meta()
        if meta.get("last_window_ms"):
            self.last_window_ms = int(meta["last_window_ms"])
        await self.journal.open()
        return restored

    async def _open(self) -> None:
        restored = await self._load()
        for s in self._initial_subs:
            known = self.pipeline.state.subscriptions.get(s.id)
            if known is None or known.to_dict() != s.to_dict():
                await self.store.put_subscription(s, actor="config")
        await self._sync_subscriptions(force=True)
        await self.store.set_meta(rules_path=str(self.rules_path), rules=len(self.engine.rules), started_ms=now_ms())
        active = sum(1 for a in self.pipeline.state.alerts.values() if a.active)
        log.info("alert service started", extra={"fields": {"alerts_active": active, "rules": len(self.engine.rules),
                                                            "rule_memory_restored": len(restored),
                                                            "subscriptions": len(self.pipeline.state.subscriptions)}})
        self._poller = asyncio.create_task(self._poll(), name="alerts:commands")

    async def drain(self, timeout_s: float = 30.0, progress=None, poll_s: float = 0.2) -> dict[str, int]:
        """Wait (at most ``timeout_s``) until the delivery workers have emptied every outbox; returns
        what is still queued per subscription (empty: all delivered or parked). ``progress(queued)`` is
        called whenever the queued total changes. Without delivery workers nothing can drain: returns
        the queue as it is."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout_s, 0.0)
        last = None
        while True:
            try:
                queued = {sid: n for sid, n in (await self.store.outbox_lengths()).items() if n}
            except REDIS_DOWN:  # Redis down at the end of a run: what the workers last saw, retried until the deadline
                if loop.time() >= deadline:
                    return {sid: max(w.queued, 1) for sid, w in (self.pool.workers if self.pool else {}).items()}
                await asyncio.sleep(poll_s)
                continue
            total = sum(queued.values())
            if progress is not None and total != last:
                progress(total)
            last = total
            if not queued or self.pool is None or loop.time() >= deadline:
                return queued
            await asyncio.sleep(poll_s)

    async def delivery_backlog(self) -> dict[str, dict[str, int]]:
        """Per subscription: ``queued``, ``in_flight``, ``parked_retry`` and the bound ``max`` (for the API);
        without delivery workers, the outbox lengths only."""
        if self.pool is not None:
            return await self.pool.backlog()
        return {sid: {"queued": n, "in_flight": 0} for sid, n in (await self.store.outbox_lengths()).items()}

    def outbox_key(self, sub_id: str) -> str:
        """The Redis stream holding a subscription's undelivered notifications."""
        return self.store.outbox(sub_id)

    # --- checkpoints (the driver calls these; see streams.local.LocalDriver.attach) ------------------
    def snapshot(self) -> bytes:
        """The alert transactions Redis does not hold yet (a Redis outage), for the driver's checkpoint."""
        return self.journal.snapshot()

    def restore(self, blob: bytes) -> None:
        """Take back a checkpoint's unapplied transactions: applied (in order, those Redis has skipped) before
        the next window, then the memory is read back from Redis."""
        self.journal.restore(blob)
        self._reload_after_flush = bool(self.journal.buffer)

    async def on_checkpoint(self) -> None:
        """Reconcile Redis with memory: the whole alert state rewritten (no entry the engine dropped stays)."""
        async with self._lock:
            await self.journal.reconcile()

    async def close(self, flush_timeout_s: float = 10.0) -> None:
        """Stop the poller and the delivery workers (what is not delivered stays in Redis), apply buffered alert
        transactions (trying ``flush_timeout_s`` if Redis is down), close Redis."""
        if not await self.journal.close(flush_timeout_s):
            log.error("alert transactions not applied: Redis unreachable at exit; the checkpoint holds them",
                      extra={"fields": {"buffered": len(self.journal.buffer)}})
        if self._poller is not None:
            self._poller.cancel()
            try:
                await self._poller
            except (asyncio.CancelledError, Exception):
                pass
            self._poller = None
        if self.pool is not None:
            await self.pool.close()
        await self.store.close()
        if self.server is not None:
            self.server.stop()
            self.server = None

    # --- the window hook ------------------------------------------------------------------------------
    async def on_window(self, tables: dict[str, pl.DataFrame], now_ms_: int) -> list[Notification]:
        """Evaluate, run the pipeline and persist one closed window; returns the new notifications."""
        async with self._lock:
            if self.last_window_ms is not None and now_ms_ <= self.last_window_ms:
                # a window replayed after a restart was already applied and persisted
                log.debug("window already processed", extra={"fields": {"window_ms": now_ms_}})
                return []
            silences, acks = await self._window_inputs()
            if self.last_window_ms is not None and now_ms_ <= self.last_window_ms:
                return []  # a checkpoint's buffered transactions already covered it
            self._apply(silences, acks, now_ms_)
            cands = self.engine.evaluate(tables, now_ms_)
            self.rule_errors = dict(self.engine.errors)
            notes = self.pipeline.process(cands, now_ms_)
            # one transaction; while Redis is down it waits in the journal (vital signs go on regardless)
            await self.journal.submit(self.store.build_tx(
                self.pipeline.state, notes, window_ms=now_ms_, feed=self.feed(), rule_memory=self.engine.memory_state(),
                acks_applied=list(acks)))
            self.last_window_ms = now_ms_
            await self._maybe_trim()
            return notes

    async def _window_inputs(self) -> tuple[dict, dict]:
        """Silences and acks for this window; with Redis down, the last known silences and no new acks
        (operator commands wait in Redis). Catches up first on what the journal buffered."""
        try:
            if self.journal.buffer or not self.journal.redis_up:
                if not await self.journal.flush():
                    raise ConnectionError("alert-state Redis still unreachable")
            if self._reload_after_flush:
                await self._load()
                self._reload_after_flush = False
            await self._maybe_reload_rules()
            version, silences, acks = await self.store.window_inputs()
            if version != self._subs_version:
                await self._sync_subscriptions()
            return silences, acks
        except REDIS_DOWN:
            self.inputs_stale_windows += 1
            return self.pipeline.state.silences, {}

    async def on_window_result(self, window) -> list[Notification]:
        """Driver window handler: ``window.vitals`` plus, when present, the ``anomaly`` scores and the
        per-window ``incidents`` / ``cases`` / ``outages`` / ``sensor_last_seen`` input frames."""
        return await self.on_window(window_tables(window), int(window.window_end_ms))

    handle_window = on_window_result

    def firing_for_view(self, limit: int | None = None) -> list[dict]:
        """Rows for the live view: severity colour, summary, where (place names), since (local time), state,
        incident; every active alert unless ``limit`` (the view folds incidents and says how many more)."""
        from brain.alerts.model import severity_colour

        tz = None
        if self.city is not None:
            try:
                from zoneinfo import ZoneInfo

                tz = ZoneInfo(self.city.timezone)
            except Exception:
                tz = None
        names: dict[str, str] = {}
        if self.city is not None:  # street and road names instead of codes
            names.update({d.id: d.name for d in self.city.districts})
            names.update({s.id: s.name for s in self.city.streets})
            names.update({s.id: s.name for s in self.city.segments})
        rows = []
        for a in self.feed():
            if a.status == "pending":
                continue
            where = " / ".join(names.get(a.labels[k], a.labels[k])
                               for k in ("district", "street", "cell", "segment_id", "sensor_id") if a.labels.get(k))
            state = a.status if a.status != "acknowledged" else f"ack by {a.acked_by}"
            if a.tier != "street":
                state += f" ↑{a.tier}"
            if a.inhibited_by:
                state += " (inhibited)"
            if a.silenced_by:
                state += " (silenced)"
            rows.append({"severity": severity_colour(a.severity), "summary": a.summary, "rule": a.rule_id,
                         "where": where, "since": _local_hhmm(a.fired_ms, tz), "state": state,
                         "fingerprint": a.fingerprint, "incident": a.incident or a.fingerprint,
                         "inhibited": bool(a.inhibited_by)})
            if limit is not None and len(rows) >= limit:
                break
        return rows

    def feed(self) -> list[Alert]:
        """Active (and pending) alerts, most severe and most escalated first: what a live view shows."""
        tier_rank = {"street": 0, "district": 1, "city": 2}
        items = [a for a in self.pipeline.state.alerts.values() if a.status != "resolved"]
        return sorted(items, key=lambda a: (a.severity, -tier_rank.get(a.tier, 0), -a.last_seen_ms))

    # --- operator actions (in-process; the CLI goes through Redis) -----------------------------------
    async def acknowledge(self, fingerprint: str, who: str, comment: str = "", at_ms: int | None = None) -> None:
        async with self._lock:
            self.pipeline.acknowledge(fingerprint, who, at_ms if at_ms is not None else self._now(), comment)
            await self.journal.submit(self.store.build_tx(self.pipeline.state, []))

    async def reload_rules(self) -> None:
        """Validate and swap in the rule files; on error keep the running rules and raise RuleError."""
        async with self._lock:
            await self._maybe_reload_rules(force=True, raise_errors=True)

    # --- internals ----------------------------------------------------------------------------------
    async def _maybe_trim(self) -> None:
        """Retention of the notification log and the CAP documents, at most once a minute (wall clock)."""
        t = now_ms()
        if t - self._trimmed_ms < 60_000:
            return
        self._trimmed_ms = t
        try:
            await self.store.trim(t)
        except Exception as exc:  # retention must never stop the alert path
            log.warning("alert log trim failed", extra={"fields": {"error": str(exc)}})

    def _full_state(self, resync: bool):
        return self.store.full_tx(self.pipeline.state, window_ms=self.last_window_ms, feed=self.feed(),
                                  rule_memory=self.engine.memory_state(), with_subscriptions=resync)

    def _now(self) -> int:
        return self.last_window_ms if self.last_window_ms is not None else now_ms()

    def _mtime(self) -> tuple:
        p = self.rules_path
        files = sorted(list(p.glob("*.yaml")) + list(p.glob("*.yml"))) if p.is_dir() else [p]
        return tuple((str(f), f.stat().st_mtime_ns) for f in files if f.exists())

    async def _maybe_reload_rules(self, force: bool = False, raise_errors: bool = False) -> None:
        m = self._mtime()
        if not force and m == self._rules_mtime:
            return
        self._rules_mtime = m
        try:
            packs = load_rule_packs(self.rules_path)
        except RuleError as exc:
            self.reload_error = str(exc)
            log.error("rule reload failed; keeping the running rules", extra={"fields": {"error": str(exc)}})
            await self.store.log_audit(AuditEntry(ts_ms=now_ms(), actor="engine", action="rules", target=str(self.rules_path),
                                                  new="reload-failed", detail=str(exc)[:500]))
            if raise_errors:
                raise
            return
        self.engine.reload(packs)
        self.pipeline.set_inhibit_rules(self.engine.inhibit_rules)
        self.pipeline.set_correlate_rules(self.engine.correlate_rules)
        self.reload_error = ""
        await self.store.log_audit(AuditEntry(ts_ms=now_ms(), actor="engine", action="rules", target=str(self.rules_path),
                                              new="reloaded", detail=f"{len(self.engine.rules)} rules"))
        log.info("rules reloaded", extra={"fields": {"rules": len(self.engine.rules)}})

    async def _sync_subscriptions(self, force: bool = False) -> None:
        v = await self.store.subscriptions_version()
        if not force and v == self._subs_version:
            return
        self._subs_version = v
        self.pipeline.state.subscriptions = await self.store.subscriptions()
        if self.pool is not None:
            await self.pool.sync(self.pipeline.state.subscriptions)

    async def _apply_commands(self, at_ms: int) -> list[str]:
        """Apply queued silences and acks; returns the acks applied (to dequeue when persisted)."""
        _, silences, acks = await self.store.window_inputs()
        self._apply(silences, acks, at_ms)
        return list(acks)

    def _apply(self, silences: dict, acks: dict[str, dict], at_ms: int) -> None:
        st = self.pipeline.state
        st.silences = silences
        for fp, a in acks.items():
            verb = self.pipeline.unacknowledge if a.get("unack") else self.pipeline.acknowledge
            try:
                verb(fp, a.get("who", "?"), at_ms, a.get("comment", ""))
            except (KeyError, ValueError) as exc:
                st.log(AuditEntry(ts_ms=at_ms, actor=a.get("who", "?"), action="unack" if a.get("unack") else "ack",
                                  target=fp, new="rejected", detail=str(exc)))

    async def _poll(self) -> None:
        """Apply acknowledgements promptly even between windows (e.g. a paused or slow stream)."""
        while True:
            await asyncio.sleep(1.0)
            try:
                # a rule reload asked through the API (validated there): now, not at the next file change
                async with self.store.r.pipeline(transaction=True) as p:
                    reload_asked, _ = await p.get(self.store.k("rules_reload")).delete(self.store.k("rules_reload")).execute()
                if reload_asked:
                    async with self._lock:
                        await self._maybe_reload_rules(force=True)
                if await self.store.r.hlen(self.store.k("acks")):
                    async with self._lock:
                        applied = await self._apply_commands(self._now())
                        await self.journal.submit(self.store.build_tx(self.pipeline.state, [], feed=self.feed(),
                                                                      acks_applied=applied))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep polling through Redis hiccups (an outage is logged once, by the journal)
                if self.journal.redis_up:
                    log.warning("command poll failed", extra={"fields": {"error": str(exc)}})
