"""Small builders shared by the alert tests (plain data, no mocks)."""
from __future__ import annotations

from brain.alerts.model import Alert, Candidate


def cand(rule="r", sev=3, trigger=True, for_ms=0, keep_ms=0, value=1.0, **labels) -> Candidate:
    labels = {k: str(v) for k, v in labels.items()} or {"k": "1"}
    return Candidate(rule_id=rule, kind="threshold", severity=sev, labels=labels, value=value, ts_ms=0,
                     trigger=trigger, for_ms=for_ms, keep_firing_for_ms=keep_ms)


def alert(fp="f", sev=3, status="firing", fired_ms=0, **labels) -> Alert:
    return Alert(fingerprint=fp, rule_id="r", kind="threshold", severity=sev, status=status,
                 labels={k: str(v) for k, v in labels.items()}, fired_ms=fired_ms)
