"""Lifecycle: pending → firing → acknowledged → resolved, with ``for`` durations and flap suppression.

- A triggered candidate for an unknown (or resolved) fingerprint opens a *pending* alert; it turns
  *firing* once the condition has held for the rule's ``for`` duration. A pending alert whose
  condition stops (or only meets the hysteresis clear level) is dropped without notification.
- A firing or acknowledged alert stays active while candidates keep coming (hysteresis: a
  candidate meeting only the clear level counts) and resolves when none came for
  ``keep_firing_for`` (0: the first window without one).
- Flap suppression: an alert that re-fires within ``flap_window`` of resolving ``max_flaps``
  times is marked *flapping*; while flapping it resolves only after a whole quiet ``flap_window``,
  so an oscillating sensor makes one alert, not a stream of fire/resolve pairs.
- Resolved alerts are kept for ``retention`` (flap history, late acks) and then purged.

Example:
    >>> from brain.alerts.model import Candidate
    >>> lc = Lifecycle()
    >>> alerts = {}
    >>> c = Candidate(rule_id="r", kind="threshold", severity=3, labels={"s": "1"}, value=2.5,
    ...               ts_ms=0, for_ms=60_000, fingerprint="f1")
    >>> [t.new for t in lc.step(alerts, [c], 0)], [t.new for t in lc.step(alerts, [c], 60_000)]
    (['pending'], ['firing'])
    >>> [t.new for t in lc.step(alerts, [], 120_000)]
    ['resolved']
"""
from __future__ import annotations

from brain.alerts.model import Alert, Candidate, Transition, parse_duration_ms

PURGED = "purged"
DROPPED = "dropped"


class Lifecycle:
    """Applies one window's deduplicated candidates to the alert states (a dict fingerprint → Alert)."""

    def __init__(self, flap_window: object = "30m", max_flaps: int = 3, retention: object = "2h"):
        self.flap_window_ms = parse_duration_ms(flap_window)
        self.retention_ms = parse_duration_ms(retention)
        if not isinstance(max_flaps, int) or max_flaps < 1:
            raise ValueError(f"max_flaps must be a positive integer, got {max_flaps!r}")
        self.max_flaps = max_flaps

    def step(self, alerts: dict[str, Alert], candidates: list[Candidate], now_ms: int) -> list[Transition]:
        out: list[Transition] = []
        seen: set[str] = set()
        for c in candidates:
            seen.add(c.fingerprint)
            a = alerts.get(c.fingerprint)
            if a is None or a.status == "resolved":
                if not c.trigger:
                    continue
                if a is None:
                    a = Alert(fingerprint=c.fingerprint, rule_id=c.rule_id, kind=c.kind, severity=c.severity,
                              labels=dict(c.labels))
                    alerts[c.fingerprint] = a
                elif a.resolved_ms and now_ms - a.resolved_ms <= self.flap_window_ms:
                    a.flap_times_ms = [t for t in a.flap_times_ms if now_ms - t <= self.flap_window_ms] + [now_ms]
                old = a.status if a.resolved_ms else "inactive"
                a.status = "pending"
                a.started_ms = now_ms
                a.fired_ms = 0
                a.acked_by, a.acked_ms = "", 0
                a.notified = False
                _refresh(a, c, now_ms)
                out.append(Transition(fingerprint=a.fingerprint, old=old, new="pending", ts_ms=now_ms))
                if c.for_ms <= 0:
                    out.append(self._fire(a, now_ms))
                continue
            _refresh(a, c, now_ms)
            if a.status == "pending":
                if not c.trigger:
                    out.append(self._drop(alerts, a, now_ms))
                elif now_ms - a.started_ms >= a.for_ms:
                    out.append(self._fire(a, now_ms))
        for fp in list(alerts):
            if fp in seen:
                continue
            a = alerts[fp]
            if a.status == "pending":
                out.append(self._drop(alerts, a, now_ms))
            elif a.active:
                hold_ms = max(a.keep_firing_for_ms, self.flap_window_ms if a.flapping else 0)
                if now_ms - a.last_seen_ms >= hold_ms:
                    old = a.status
                    a.status = "resolved"
                    a.resolved_ms = now_ms
                    a.flapping = False
                    out.append(Transition(fingerprint=fp, old=old, new="resolved", ts_ms=now_ms))
            elif a.status == "resolved" and now_ms - a.resolved_ms >= self.retention_ms:
                del alerts[fp]
                out.append(Transition(fingerprint=fp, old="resolved", new=PURGED, ts_ms=now_ms))
        return out

    def acknowledge(self, alerts: dict[str, Alert], fp: str, who: str, now_ms: int, comment: str = "") -> Transition:
        """Mark a firing alert acknowledged by ``who``; raises KeyError/ValueError when it cannot be."""
        if not who:
            raise ValueError("an acknowledgement needs the name of who made it")
        a = alerts.get(fp)
        if a is None:
            raise KeyError(f"no alert with fingerprint {fp!r}")
        if a.status != "firing":
            raise ValueError(f"alert {fp} is {a.status}; only firing alerts can be acknowledged")
        a.status = "acknowledged"
        a.acked_by, a.acked_ms = who, now_ms
        return Transition(fingerprint=fp, old="firing", new="acknowledged", ts_ms=now_ms, actor=who, detail=comment)

    def unacknowledge(self, alerts: dict[str, Alert], fp: str, who: str, now_ms: int, comment: str = "") -> Transition:
        """Hand an acknowledged alert back (firing again, nobody on it); raises KeyError/ValueError when it cannot be.

        Its escalation clock restarts now: the tier it reached stays, the next climb waits a full delay."""
        if not who:
            raise ValueError("taking back an acknowledgement needs the name of who does it")
        a = alerts.get(fp)
        if a is None:
            raise KeyError(f"no alert with fingerprint {fp!r}")
        if a.status != "acknowledged":
            raise ValueError(f"alert {fp} is {a.status}; only acknowledged alerts can be unacknowledged")
        a.status = "firing"
        a.acked_by, a.acked_ms = "", 0
        a.tier_since_ms = now_ms
        return Transition(fingerprint=fp, old="acknowledged", new="firing", ts_ms=now_ms, actor=who, detail=comment)

    def _fire(self, a: Alert, now_ms: int) -> Transition:
        a.status = "firing"
        a.fired_ms = now_ms
        if len(a.flap_times_ms) >= self.max_flaps:
            a.flapping = True
        return Transition(fingerprint=a.fingerprint, old="pending", new="firing", ts_ms=now_ms,
                          detail="flapping" if a.flapping else "")

    def _drop(self, alerts: dict[str, Alert], a: Alert, now_ms: int) -> Transition:
        if a.resolved_ms:  # a revived alert falls back to its resolved record (keeps flap history)
            a.status = "resolved"
        else:
            del alerts[a.fingerprint]
        return Transition(fingerprint=a.fingerprint, old="pending", new=DROPPED, ts_ms=now_ms)


def _refresh(a: Alert, c: Candidate, now_ms: int) -> None:
    a.severity = c.severity
    a.summary = c.summary
    a.evidence = dict(c.evidence)
    a.value = c.value
    a.last_seen_ms = now_ms
    a.for_ms = c.for_ms
    a.keep_firing_for_ms = c.keep_firing_for_ms
    a.labels = dict(c.labels)
    a.digest_ms = c.digest_ms
    if c.lon is not None:
        a.lon, a.lat = c.lon, c.lat
