"""The pipeline's state, in memory: alerts, groups, subscriptions, silences, notification log, audit.

:class:`AlertState` is the one interface every stage reads and writes. It is pure memory; the
Redis-backed store in :mod:`streams.alerts.store` loads it at start and persists the parts a
window changed (``dirty``/``removed``) in one transaction, so a restart resumes exactly here.

Example:
    >>> st = AlertState()
    >>> st.record_sent("sub:abc:1"), st.record_sent("sub:abc:1")
    (True, False)
"""
from __future__ import annotations

from collections import deque

import msgspec

from brain.alerts.grouping import GroupState, SubscriptionState
from brain.alerts.model import Alert, Transition
from brain.alerts.routing import Subscription
from brain.alerts.silences import MaintenanceWindow, Silence


class AuditEntry(msgspec.Struct, kw_only=True):
    """One state change and who made it (the engine, an operator, a delivery worker)."""

    ts_ms: int
    actor: str
    action: str
    target: str
    old: str = ""
    new: str = ""
    detail: str = ""


class AlertState:
    """All mutable alert-pipeline state; ``audit`` keeps the last ``audit_max`` entries in memory."""

    def __init__(self, audit_max: int = 10_000):
        self.alerts: dict[str, Alert] = {}
        self.groups: dict[str, GroupState] = {}
        self.subs_state: dict[str, SubscriptionState] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.silences: dict[str, Silence] = {}
        self.windows: list[MaintenanceWindow] = []
        self.sent_keys: dict[str, int] = {}  # the notification log: key -> enqueue time (ms)
        self.log_ms = 7 * 86_400_000  # keys older than this (stream time) are forgotten
        self.audit: deque[AuditEntry] = deque(maxlen=audit_max)
        self.dirty: set[str] = set()  # alert fingerprints changed since the last persist
        self.removed: set[str] = set()  # alert fingerprints purged since the last persist
        self.new_audit: list[AuditEntry] = []  # audit entries not yet persisted

    def record_sent(self, key: str, ts_ms: int = 0) -> bool:
        """Add a notification key to the log; False when it was already there (a duplicate)."""
        if key in self.sent_keys:
            return False
        self.sent_keys[key] = ts_ms
        if len(self.sent_keys) % 10_000 == 0:  # keys guard against replays of recent windows only
            horizon = ts_ms - self.log_ms
            self.sent_keys = {k: t for k, t in self.sent_keys.items() if t >= horizon}
        return True

    def log(self, entry: AuditEntry) -> None:
        self.audit.append(entry)
        self.new_audit.append(entry)

    def log_transition(self, t: Transition, action: str = "alert") -> None:
        self.log(AuditEntry(ts_ms=t.ts_ms, actor=t.actor, action=action, target=t.fingerprint, old=t.old,
                            new=t.new, detail=t.detail))

    def take_changes(self) -> tuple[set[str], set[str], list[AuditEntry]]:
        """Hand over (and reset) what changed since the last call: dirty, removed, new audit entries."""
        out = (self.dirty, self.removed, self.new_audit)
        self.dirty, self.removed, self.new_audit = set(), set(), []
        return out
