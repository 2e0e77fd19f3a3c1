"""FIWARE Smart Data Models ``Alert`` (key-values JSON) and the Alertmanager v4 webhook payload.

Example:
    >>> from brain.alerts.model import Alert
    >>> a = Alert(fingerprint="f1", rule_id="segment_congested", kind="threshold", severity=3, status="firing",
    ...           labels={"category": "traffic", "subcategory": "trafficJam", "segment_id": "S1"},
    ...           summary="TTI 2.4", fired_ms=0, lon=120.1, lat=30.2)
    >>> d = alert_to_sdm(a)
    >>> d["type"], d["category"], d["subCategory"], d["severity"], d["location"]["coordinates"]
    ('Alert', 'traffic', 'trafficJam', 'medium', [120.1, 30.2])
"""
from __future__ import annotations

import time

from brain.alerts.model import Alert, Notification, severity_colour

#: CityBrain category label → Smart Data Models Alert category.
SDM_CATEGORY = {
    "traffic": "traffic",
    "environment": "environment",
    "emergency": "security",
    "grid": "security",
    "utilities": "security",
    "sensor_health": "security",
}
#: warning level → SDM severity (informational, low, medium, high, critical)
SDM_SEVERITY = {1: "critical", 2: "high", 3: "medium", 4: "low"}


def iso_utc(ts_ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts_ms / 1000.0)) + f".{int(ts_ms) % 1000:03d}Z"


def alert_to_sdm(a: Alert, alert_source: str = "") -> dict:
    """A Smart Data Models ``Alert`` entity in key-values form."""
    out = {
        "id": f"urn:ngsi-ld:Alert:citybrain:{a.fingerprint}",
        "type": "Alert",
        "alertSource": alert_source or a.labels.get("segment_id") or a.labels.get("sensor_id") or a.labels.get("cell") or a.labels.get("district", ""),
        "category": SDM_CATEGORY.get(a.labels.get("category", ""), "security"),
        "subCategory": a.labels.get("subcategory", a.rule_id),
        "severity": SDM_SEVERITY[a.severity],
        "name": a.rule_id,
        "description": a.summary,
        "dateIssued": iso_utc(a.fired_ms or a.started_ms),
        "validFrom": iso_utc(a.started_ms),
        "data": {"warningLevel": severity_colour(a.severity), "status": a.status, "tier": a.tier, **a.evidence},
    }
    if a.status == "resolved":
        out["validTo"] = iso_utc(a.resolved_ms)
    if a.lon is not None and a.lat is not None:
        out["location"] = {"type": "Point", "coordinates": [a.lon, a.lat]}
    return out


def alertmanager_payload(n: Notification, receiver: str, external_url: str = "") -> dict:
    """The Alertmanager webhook payload version 4 for one notification."""
    alerts = []
    for a in n.alerts:
        labels = {"alertname": a.rule_id, "severity": severity_colour(a.severity), **a.labels}
        alerts.append({
            "status": "resolved" if a.status == "resolved" else "firing",
            "labels": labels,
            "annotations": {"summary": a.summary, **{k: str(v) for k, v in a.evidence.items()}},
            "startsAt": iso_utc(a.fired_ms or a.started_ms),
            "endsAt": iso_utc(a.resolved_ms) if a.status == "resolved" else "0001-01-01T00:00:00Z",
            "generatorURL": f"{external_url}/alerts/{a.fingerprint}" if external_url else "",
            "fingerprint": a.fingerprint,
        })
    common = dict(alerts[0]["labels"]) if alerts else {}
    for al in alerts[1:]:
        common = {k: v for k, v in common.items() if al["labels"].get(k) == v}
    common_ann = dict(alerts[0]["annotations"]) if alerts else {}
    for al in alerts[1:]:
        common_ann = {k: v for k, v in common_ann.items() if al["annotations"].get(k) == v}
    return {
        "version": "4",
        "groupKey": f"{n.subscription_id}:{n.group_key}",
        "truncatedAlerts": 0,
        "status": n.status,
        "receiver": receiver,
        "groupLabels": dict(n.group_labels),
        "commonLabels": common,
        "commonAnnotations": common_ann,
        "externalURL": external_url,
        "alerts": alerts,
    }


def citybrain_payload(n: Notification) -> dict:
    """CityBrain's own webhook JSON: the notification with its idempotency key and SDM-style alerts."""
    return {
        "idempotency_key": n.key,
        "subscription": n.subscription_id,
        "status": n.status,
        "reason": n.reason,
        # a page (a new incident for this subscriber) or a follow-up in a group it already has open
        "actionable": n.reason in ("alert", "escalation"),
        "raised": n.raised,
        "tier": n.tier,
        "sent": iso_utc(n.ts_ms),
        "group": dict(n.group_labels),
        "alerts": [
            {"fingerprint": a.fingerprint, "incident": a.incident or a.fingerprint, "rule": a.rule_id, "status": a.status,
             "severity": severity_colour(a.severity),
             "level": a.severity, "labels": a.labels, "summary": a.summary, "evidence": a.evidence, "tier": a.tier,
             "acknowledged_by": a.acked_by, "starts_at": iso_utc(a.fired_ms or a.started_ms),
             "ends_at": iso_utc(a.resolved_ms) if a.status == "resolved" else None, "lon": a.lon, "lat": a.lat}
            for a in n.alerts
        ],
    }
