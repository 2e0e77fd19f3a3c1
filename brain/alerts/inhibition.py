"""Inhibition: an active alert matching ``source`` mutes alerts matching ``target`` that share the ``equal`` labels.

The standard case: an incident on a segment explains the congestion on that segment, so the
incident alert inhibits congestion alerts with the same ``segment_id``. An alert never inhibits
itself, and labels named in ``equal`` must be present (non-empty) on both sides.

Example:
    >>> from brain.alerts.model import Alert
    >>> rule = InhibitRule(source=["category=emergency"], target=["category=traffic"], equal=["segment_id"])
    >>> inc = Alert(fingerprint="i", rule_id="incident", kind="threshold", severity=2, status="firing",
    ...             labels={"category": "emergency", "segment_id": "S1"})
    >>> jam = Alert(fingerprint="j", rule_id="tti", kind="threshold", severity=3, status="firing",
    ...             labels={"category": "traffic", "segment_id": "S1"})
    >>> Inhibitor([rule]).apply({"i": inc, "j": jam})
    {'j': 'i'}
"""
from __future__ import annotations

from brain.alerts.model import Alert, Matcher, match_all, parse_matchers


class InhibitRule:
    """Source matchers, target matchers, and the labels that must be equal on both."""

    _noun = "an inhibit rule"  # in error messages (a correlate rule has the same parts, plus a radius)

    def __init__(self, source: object, target: object, equal: list[str] | tuple[str, ...] = ()):
        self.source: tuple[Matcher, ...] = parse_matchers(source)
        self.target: tuple[Matcher, ...] = parse_matchers(target)
        if not self.source or not self.target:
            raise ValueError(f"{self._noun} needs at least one source and one target matcher")
        if isinstance(equal, str) or not all(isinstance(e, str) for e in equal):
            raise ValueError(f"{self._noun}: 'equal' must be a list of label names, got {equal!r}")
        self.equal = tuple(equal)

    def __repr__(self) -> str:
        return f"InhibitRule(source={[str(m) for m in self.source]}, target={[str(m) for m in self.target]}, equal={list(self.equal)})"


class Inhibitor:
    """Marks ``Alert.inhibited_by`` on the alerts muted by the active alerts; returns ``{target: source}``."""

    def __init__(self, rules: list[InhibitRule] | tuple[InhibitRule, ...] = ()):
        self.rules = list(rules)

    def apply(self, alerts: dict[str, Alert]) -> dict[str, str]:
        active = [a for a in alerts.values() if a.active]
        result: dict[str, str] = {}
        for rule in self.rules:
            # index active sources by the equal-label tuple so each target is one dict lookup
            index: dict[tuple, str] = {}
            for a in active:
                if match_all(rule.source, a.labels):
                    key = tuple(a.labels.get(n, "") for n in rule.equal)
                    if all(key):
                        index.setdefault(key, a.fingerprint)
            if not index:
                continue
            for a in alerts.values():
                if a.fingerprint in result or a.status == "resolved" or not match_all(rule.target, a.labels):
                    continue
                src = index.get(tuple(a.labels.get(n, "") for n in rule.equal))
                if src is not None and src != a.fingerprint:
                    result[a.fingerprint] = src
        for a in alerts.values():
            a.inhibited_by = result.get(a.fingerprint, "")
        return result
