"""The alert pipeline: candidates → dedup → lifecycle → inhibition → correlation → silences → escalation → grouping/routing → log.

Each stage is its own module with its own tests; this class only runs them in order over one
:class:`~brain.alerts.state.AlertState` and returns the notifications to deliver. Notification
keys already in the notification log are dropped, so replaying a window after a restart never
sends twice.

Example:
    >>> from brain.alerts.model import Candidate
    >>> from brain.alerts.routing import Subscription
    >>> p = AlertPipeline(subscriptions=[Subscription.from_dict(
    ...     {"id": "ops", "department": "City ops", "group_wait": "0s", "group_interval": "1m", "channel": {"type": "log"}})])
    >>> c = Candidate(rule_id="tti_high", kind="threshold", severity=3, ts_ms=0, value=2.4,
    ...               labels={"category": "traffic", "segment_id": "S1", "district": "D1"})
    >>> [n.status for n in p.process([c], now_ms=0)]
    ['firing']
    >>> p.process([c], now_ms=60_000), [n.status for n in p.process([], now_ms=120_000)]
    ([], ['resolved'])
"""
from __future__ import annotations

from brain.alerts.correlation import CorrelateRule, Correlator
from brain.alerts.escalation import Escalation
from brain.alerts.fingerprint import dedup
from brain.alerts.grouping import Grouper
from brain.alerts.inhibition import InhibitRule, Inhibitor
from brain.alerts.lifecycle import PURGED, Lifecycle
from brain.alerts.model import Candidate, Notification, Transition
from brain.alerts.routing import Router, Subscription
from brain.alerts.silences import MaintenanceWindow, Silence, Silencer
from brain.alerts.state import AlertState, AuditEntry


class AlertPipeline:
    """Runs the alert stages over an :class:`AlertState` (a fresh in-memory one by default)."""

    def __init__(self, subscriptions: list[Subscription] | tuple = (), inhibit_rules: list[InhibitRule] | tuple = (),
                 state: AlertState | None = None, lifecycle: Lifecycle | None = None,
                 escalation: Escalation | None = None, maintenance: list[MaintenanceWindow] | tuple = (),
                 correlate_rules: list[CorrelateRule] | tuple | None = None, tick: object = 0):
        self.state = state if state is not None else AlertState()
        for s in subscriptions:
            self.state.subscriptions[s.id] = s
        if maintenance:
            self.state.windows = list(maintenance)
        self.lifecycle = lifecycle or Lifecycle()
        self.inhibitor = Inhibitor(inhibit_rules)
        # by default every inhibit rule is also a correlation link (what explains an alert is its incident)
        self.correlator = Correlator(correlate_rules if correlate_rules is not None else
                                     [CorrelateRule(r.source, r.target, r.equal) for r in inhibit_rules if r.equal])
        self.silencer = Silencer()
        self.escalation = escalation or Escalation()
        self.grouper = Grouper(Router(), tick=tick)  # tick: how often process() runs (the window length)
        self.last_transitions: list[Transition] = []

    def set_inhibit_rules(self, rules: list[InhibitRule]) -> None:
        self.inhibitor = Inhibitor(rules)

    def set_correlate_rules(self, rules: list[CorrelateRule]) -> None:
        self.correlator = Correlator(rules)

    def process(self, candidates: list[Candidate], now_ms: int) -> list[Notification]:
        st = self.state
        cands = dedup(candidates)
        trans = self.lifecycle.step(st.alerts, cands, now_ms)
        self.inhibitor.apply(st.alerts)
        before = {fp: a.incident for fp, a in st.alerts.items() if a.active}
        # an alert resolved within a subscriber's reopen window can still explain a new one (same incident)
        self.correlator.reopen_ms = max((s._reopen_ms for s in st.subscriptions.values()), default=0)
        for fp, key in self.correlator.apply(st.alerts, now_ms).items():
            if key != before.get(fp):
                st.dirty.add(fp)
        self.silencer.apply(st.alerts, list(st.silences.values()), st.windows, now_ms)
        esc = self.escalation.step(st.alerts, now_ms)
        for c in cands:
            if c.fingerprint in st.alerts:
                st.dirty.add(c.fingerprint)
        for t in trans:
            if t.new == PURGED or t.fingerprint not in st.alerts:  # purged, or a dropped pending alert
                st.removed.add(t.fingerprint)
                st.dirty.discard(t.fingerprint)
            elif t.fingerprint in st.alerts:
                st.dirty.add(t.fingerprint)
            st.log_transition(t)
        for t in esc:
            st.dirty.add(t.fingerprint)
            st.log_transition(t, action="escalate")
        self.last_transitions = trans + esc
        notes = self.grouper.step(st.alerts, list(st.subscriptions.values()), st.groups, st.subs_state, now_ms)
        out = []
        for n in notes:
            if st.record_sent(n.key, now_ms):
                out.append(n)
                st.log(AuditEntry(ts_ms=now_ms, actor="engine", action="notify", target=n.key, new=n.status,
                                  detail=f"{n.reason}: {len(n.alerts)} alert(s)"))
        return out

    # --- operator actions -------------------------------------------------------------------------
    def acknowledge(self, fingerprint: str, who: str, now_ms: int, comment: str = "") -> Transition:
        t = self.lifecycle.acknowledge(self.state.alerts, fingerprint, who, now_ms, comment)
        self.state.dirty.add(fingerprint)
        self.state.log_transition(t, action="ack")
        return t

    def unacknowledge(self, fingerprint: str, who: str, now_ms: int, comment: str = "") -> Transition:
        t = self.lifecycle.unacknowledge(self.state.alerts, fingerprint, who, now_ms, comment)
        self.state.dirty.add(fingerprint)
        self.state.log_transition(t, action="unack")
        return t

    def add_silence(self, silence: Silence) -> None:
        self.state.silences[silence.id] = silence
        self.state.log(AuditEntry(ts_ms=silence.starts_ms, actor=silence.created_by, action="silence", target=silence.id,
                                  new="active", detail=f"{silence.matchers} until {silence.ends_ms}: {silence.comment}"))

    def expire_silence(self, silence_id: str, who: str, now_ms: int) -> None:
        s = self.state.silences.get(silence_id)
        if s is None:
            raise KeyError(f"no silence {silence_id!r}")
        s.ends_ms = min(s.ends_ms, now_ms)
        self.state.log(AuditEntry(ts_ms=now_ms, actor=who, action="silence", target=silence_id, old="active",
                                  new="expired"))

    def set_subscription(self, sub: Subscription, who: str, now_ms: int) -> None:
        old = "updated" if sub.id in self.state.subscriptions else ""
        self.state.subscriptions[sub.id] = sub
        self.state.log(AuditEntry(ts_ms=now_ms, actor=who, action="subscription", target=sub.id, old=old, new="set"))

    def remove_subscription(self, sub_id: str, who: str, now_ms: int) -> None:
        if self.state.subscriptions.pop(sub_id, None) is None:
            raise KeyError(f"no subscription {sub_id!r}")
        self.state.log(AuditEntry(ts_ms=now_ms, actor=who, action="subscription", target=sub_id, old="set",
                                  new="removed"))
