from brain.alerts.model import Notification
from brain.alerts.sdm import alert_to_sdm, alertmanager_payload, citybrain_payload
from tests.alerts.helpers import alert

V4_KEYS = {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels", "commonLabels",
           "commonAnnotations", "externalURL", "alerts"}
ALERT_KEYS = {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"}


def test_sdm_alert_fields():
    a = alert(sev=1, status="resolved", category="environment", subcategory="airPollution", sensor_id="A1")
    a.fired_ms, a.resolved_ms = 1000, 61_000
    d = alert_to_sdm(a)
    assert d["type"] == "Alert" and d["id"].startswith("urn:ngsi-ld:Alert:")
    assert (d["category"], d["subCategory"], d["severity"], d["alertSource"]) == ("environment", "airPollution", "critical", "A1")
    assert d["dateIssued"] == "1970-01-01T00:00:01.000Z" and d["validTo"] == "1970-01-01T00:01:01.000Z"
    assert "location" not in d


def test_alertmanager_v4_payload_shape_and_common_labels():
    a, b = alert("a", sev=2, district="D1", cell="C1"), alert("b", sev=2, district="D1", cell="C2")
    b.status, b.resolved_ms = "resolved", 5000
    n = Notification(key="k", subscription_id="ops", group_key="g", status="firing", reason="alert", ts_ms=0,
                     alerts=[a, b], group_labels={"district": "D1"})
    p = alertmanager_payload(n, receiver="ops")
    assert set(p) == V4_KEYS and p["version"] == "4"
    assert all(set(x) == ALERT_KEYS for x in p["alerts"])
    assert p["commonLabels"] == {"alertname": "r", "severity": "orange", "district": "D1"}
    assert [x["status"] for x in p["alerts"]] == ["firing", "resolved"]
    assert p["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"
    c = citybrain_payload(n)
    assert c["idempotency_key"] == "k" and [x["fingerprint"] for x in c["alerts"]] == ["a", "b"]


def test_citybrain_payload_says_whether_it_pages_and_which_incident_each_alert_belongs_to():
    a, b = alert("a", sev=2, district="D1"), alert("b", sev=1, district="D1")
    a.incident = b.incident = "a"
    page = citybrain_payload(Notification(key="k1", subscription_id="ops", group_key="g", status="firing",
                                          reason="alert", ts_ms=0, alerts=[a]))
    upd = citybrain_payload(Notification(key="k2", subscription_id="ops", group_key="g", status="firing",
                                         reason="update", raised=True, ts_ms=60_000, alerts=[a, b]))
    assert (page["actionable"], page["raised"], upd["actionable"], upd["raised"]) == (True, False, False, True)
    assert [x["incident"] for x in upd["alerts"]] == ["a", "a"]

