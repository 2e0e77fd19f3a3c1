import xml.etree.ElementTree as ET

import pytest

from brain.alerts.cap import CAP_NS, alert_to_cap, cap_identifier, check_cap
from tests.alerts.helpers import alert

NS = {"c": CAP_NS}
KW = dict(sender="ops@city.gov.cn", admin_code="330106", sent_ms=1_763_700_000_000, seq=7)


def parse(xml):
    return ET.fromstring(xml.encode())


@pytest.mark.parametrize("level, cap_sev", [(1, "Extreme"), (2, "Severe"), (3, "Moderate"), (4, "Minor")])
def test_four_warning_levels_map_to_cap_severity(level, cap_sev):
    x = alert_to_cap(alert(sev=level, category="traffic"), **KW)
    assert check_cap(x) == []
    assert parse(x).find("c:info/c:severity", NS).text == cap_sev
    assert parse(x).find("c:info/c:category", NS).text == "Transport"


def test_identifier_is_area_org_local_time_seq():
    # 1_763_700_000_000 ms = 2025-11-21T04:40:00Z = 12:40:00 in UTC+8
    assert cap_identifier("330106", "CB01", 1_763_700_000_000, 7) == "330106CB01202511211240000007"
    with pytest.raises(ValueError, match="6-digit"):
        cap_identifier("3301", "CB01", 0, 1)
    with pytest.raises(ValueError, match="org_code"):
        cap_identifier("330106", "C B", 0, 1)


def test_polygon_is_closed_and_lat_lon_ordered_and_resolve_is_cancel():
    a = alert(status="resolved", category="environment")
    a.resolved_ms = 1
    open_ring = [[120.0, 30.0], [120.1, 30.0], [120.1, 30.1]]
    with pytest.raises(ValueError, match="reference"):
        alert_to_cap(a, polygon=open_ring, **KW)
    x = alert_to_cap(a, polygon=open_ring, references="ops@city.gov.cn,330106X,2025-11-21T12:00:00+08:00", **KW)
    assert check_cap(x) == []
    root = parse(x)
    assert root.find("c:msgType", NS).text == "Cancel"
    assert root.find("c:info/c:urgency", NS).text == "Past"
    pts = root.find("c:info/c:area/c:polygon", NS).text.split()
    assert pts[0] == pts[-1] == "30.000000,120.000000" and len(pts) == 4


def test_checker_catches_problems():
    good = alert_to_cap(alert(), **KW)
    assert check_cap(good.replace("<status>Actual</status>", "<status>Real</status>"))[0].startswith("alert: <status>")
    assert "missing required <scope>" in check_cap(good.replace("<scope>Public</scope>", ""))[0]
    bad_poly = good.replace("</areaDesc>", "</areaDesc><polygon>30,120 30,121 31,121 31,120</polygon>")
    assert check_cap(bad_poly) == ["info[0].area[0]: <polygon> is not closed (first and last points differ)"]
    assert check_cap(good.replace("<urgency>Immediate</urgency>", "<urgency>Now</urgency>"))
    assert check_cap(good.replace("+08:00</sent>", "Z</sent>"))
    assert check_cap("<alert>")[0].startswith("not well-formed")
    upd = good.replace("<msgType>Alert</msgType>", "<msgType>Update</msgType>")
    assert check_cap(upd) == ["alert: Update/Cancel needs <references>"]


def test_special_characters_are_escaped_and_labels_become_parameters():
    a = alert(category="emergency", incident_type="fire", segment_id="S<1>&")
    a.summary = 'Fire at "A&B" <depot>'
    x = alert_to_cap(a, **KW)
    assert check_cap(x) == []
    root = parse(x)
    assert root.find("c:info/c:category", NS).text == "Fire"
    params = {p.find("c:valueName", NS).text: p.find("c:value", NS).text for p in root.findall("c:info/c:parameter", NS)}
    assert params["segment_id"] == "S<1>&"
    assert root.find("c:info/c:description", NS).text == 'Fire at "A&B" <depot>'


def test_bad_enumerations_rejected_at_encode():
    with pytest.raises(ValueError, match="status"):
        alert_to_cap(alert(), status="Real", **KW)
    with pytest.raises(ValueError, match="scope"):
        alert_to_cap(alert(), scope="Everyone", **KW)
