import pytest

from brain.alerts.escalation import Escalation
from tests.alerts.helpers import alert

M = 60_000


def test_unacknowledged_alert_climbs_street_district_city_then_stops():
    esc = Escalation(after={"orange": "10m"})
    a = alert("f", sev=2, fired_ms=0)
    tiers = []
    for minute in range(0, 41, 5):
        for t in esc.step({"f": a}, minute * M):
            tiers.append((minute, t.old, t.new))
    assert tiers == [(10, "street", "district"), (20, "district", "city")]


def test_acknowledged_silenced_or_inhibited_alerts_do_not_escalate():
    esc = Escalation(after={"yellow": "5m"})
    acked = alert("a", sev=3, fired_ms=0, status="acknowledged")
    silenced = alert("s", sev=3, fired_ms=0)
    silenced.silenced_by = "s1"
    inhibited = alert("i", sev=3, fired_ms=0)
    inhibited.inhibited_by = "x"
    plain = alert("p", sev=3, fired_ms=0)
    alerts = {a.fingerprint: a for a in (acked, silenced, inhibited, plain)}
    esc.step(alerts, 0)
    assert [t.fingerprint for t in esc.step(alerts, 60 * M)] == ["p"]
    assert (acked.tier, silenced.tier, inhibited.tier) == ("street",) * 3


def test_red_starts_at_district_blue_never_escalates():
    esc = Escalation()
    red, blue = alert("r", sev=1, fired_ms=0), alert("b", sev=4, fired_ms=0)
    esc.step({"r": red, "b": blue}, 0)
    assert red.tier == "district" and blue.tier == "street"
    out = esc.step({"r": red, "b": blue}, 10 * 24 * 60 * M)
    assert [(t.fingerprint, t.new) for t in out] == [("r", "city")]


def test_refiring_alert_restarts_at_start_tier():
    esc = Escalation(after={"yellow": "5m"})
    a = alert("f", sev=3, fired_ms=0)
    esc.step({"f": a}, 0)
    esc.step({"f": a}, 5 * M)
    assert a.tier == "district"
    a.fired_ms = 60 * M  # resolved and fired again
    esc.step({"f": a}, 60 * M)
    assert a.tier == "street"


def test_bad_policy():
    with pytest.raises(ValueError, match="tier"):
        Escalation(start_tier={"red": "province"})
    with pytest.raises(ValueError, match="severity"):
        Escalation(after={"purple": "5m"})
    with pytest.raises(ValueError, match="positive"):
        Escalation(after={"red": "0s"})


def test_expected_digest_alerts_do_not_escalate():
    esc = Escalation(after={"orange": "10m"})
    rush = alert("rush", sev=2, fired_ms=0)
    rush.digest_ms = 86_400_000
    acc = alert("acc", sev=2, fired_ms=0)
    alerts = {"rush": rush, "acc": acc}
    esc.step(alerts, 0)
    assert [t.fingerprint for t in esc.step(alerts, 30 * M)] == ["acc"] and rush.tier == "street"
