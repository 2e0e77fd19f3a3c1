"""Escalation: a firing alert nobody acknowledged climbs the tiers street → district → city.

When an alert starts firing it is placed at its start tier (by severity: red starts at the
district by default, the others at the street). If it is still unacknowledged ``after`` its
severity's delay at that tier, it moves up one tier and an escalation transition is emitted, which
the router sends to the subscribers of the new tier. Silenced and inhibited alerts do not
escalate (someone decided they need no action), nor do expected ones (a rule with a ``digest``
period: recurring rush-hour congestion); acknowledging stops escalation.

Example:
    >>> from brain.alerts.model import Alert
    >>> esc = Escalation(after={"yellow": "10m"})
    >>> a = Alert(fingerprint="f", rule_id="r", kind="threshold", severity=3, status="firing", labels={}, fired_ms=0)
    >>> esc.step({"f": a}, 0), a.tier
    ([], 'street')
    >>> [t.new for t in esc.step({"f": a}, 600_000)], a.tier
    (['district'], 'district')
"""
from __future__ import annotations

from brain.alerts.model import TIERS, Alert, Transition, parse_duration_ms, parse_severity

DEFAULT_AFTER = {"red": "5m", "orange": "10m", "yellow": "30m", "blue": None}
DEFAULT_START = {"red": "district", "orange": "street", "yellow": "street", "blue": "street"}


class Escalation:
    """Per-severity escalation delays (``None``: never escalate) and start tiers."""

    def __init__(self, after: dict | None = None, start_tier: dict | None = None):
        merged_after = dict(DEFAULT_AFTER, **(after or {}))
        merged_start = dict(DEFAULT_START, **(start_tier or {}))
        self.after_ms: dict[int, int | None] = {}
        for sev, d in merged_after.items():
            self.after_ms[parse_severity(sev)] = None if d is None else parse_duration_ms(d)
            if self.after_ms[parse_severity(sev)] == 0:
                raise ValueError(f"escalation delay for {sev} must be positive (or null for never)")
        self.start_tier: dict[int, str] = {}
        for sev, tier in merged_start.items():
            if tier not in TIERS:
                raise ValueError(f"start tier for {sev} must be one of {', '.join(TIERS)}, got {tier!r}")
            self.start_tier[parse_severity(sev)] = tier

    def step(self, alerts: dict[str, Alert], now_ms: int) -> list[Transition]:
        out: list[Transition] = []
        for a in alerts.values():
            if not a.active:
                continue
            if a.tier_since_ms < a.fired_ms:
                a.tier = self.start_tier.get(a.severity, "street")
                a.tier_since_ms = a.fired_ms
            if a.status != "firing" or a.silenced_by or a.inhibited_by or a.digest_ms:
                continue  # muted or expected (digest) alerts need no action, so they do not climb
            delay = self.after_ms.get(a.severity)
            idx = TIERS.index(a.tier) if a.tier in TIERS else 0
            if delay is None or idx + 1 >= len(TIERS) or now_ms - a.tier_since_ms < delay:
                continue
            old, a.tier, a.tier_since_ms = a.tier, TIERS[idx + 1], now_ms
            out.append(Transition(fingerprint=a.fingerprint, old=old, new=a.tier, ts_ms=now_ms,
                                  detail=f"not acknowledged within {delay // 60000} min"))
        return out
