import pytest

from brain.alerts.inhibition import InhibitRule, Inhibitor
from tests.alerts.helpers import alert

RULE = InhibitRule(source=["category=emergency"], target=["category=traffic"], equal=["segment_id"])


def test_incident_inhibits_congestion_on_same_segment_only():
    inc = alert("inc", category="emergency", segment_id="S1")
    jam1 = alert("j1", category="traffic", segment_id="S1")
    jam2 = alert("j2", category="traffic", segment_id="S2")
    alerts = {a.fingerprint: a for a in (inc, jam1, jam2)}
    assert Inhibitor([RULE]).apply(alerts) == {"j1": "inc"}
    assert jam1.inhibited_by == "inc" and jam2.inhibited_by == "" and inc.inhibited_by == ""


def test_inactive_source_or_missing_equal_label_does_not_inhibit():
    for src in (alert("inc", status="pending", category="emergency", segment_id="S1"),
                alert("inc", status="resolved", category="emergency", segment_id="S1"),
                alert("inc", category="emergency")):
        jam = alert("j", category="traffic", segment_id="S1")
        assert Inhibitor([RULE]).apply({"inc": src, "j": jam}) == {}
    # both lack the equal label: still no inhibition (empty values never match)
    assert Inhibitor([RULE]).apply({"i": alert("i", category="emergency"), "j": alert("j", category="traffic")}) == {}


def test_inhibition_lifts_when_source_resolves():
    inc = alert("inc", category="emergency", segment_id="S1")
    jam = alert("j", category="traffic", segment_id="S1")
    inh = Inhibitor([RULE])
    inh.apply({"inc": inc, "j": jam})
    inc.status = "resolved"
    assert inh.apply({"inc": inc, "j": jam}) == {} and jam.inhibited_by == ""


def test_higher_severity_inhibits_lower_of_same_rule_family():
    rule = InhibitRule(source=["severity_group=aqi", "level=~[12]"], target=["severity_group=aqi", "level=~[34]"],
                       equal=["sensor_id"])
    hi = alert("hi", severity_group="aqi", level="2", sensor_id="A1")
    lo = alert("lo", severity_group="aqi", level="3", sensor_id="A1")
    assert Inhibitor([rule]).apply({"hi": hi, "lo": lo}) == {"lo": "hi"}


def test_bad_rules():
    with pytest.raises(ValueError, match="source"):
        InhibitRule(source=[], target=["a=b"])
    with pytest.raises(ValueError, match="matcher"):
        InhibitRule(source=["no operator"], target=["a=b"])
    with pytest.raises(ValueError, match="equal"):
        InhibitRule(source=["a=b"], target=["a=c"], equal="segment_id")
