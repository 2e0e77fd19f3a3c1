import msgspec
import pytest

from brain.alerts.model import Alert
from brain.alerts.routing import Router, Subscription, point_in_polygon
from tests.alerts.helpers import alert

LOG = {"type": "log"}


def sub(**kw):
    return Subscription.from_dict({"id": "s1", "department": "Traffic police", "channel": LOG, **kw})


def test_what_filters_category_kind_rule_and_min_severity():
    r = Router()
    s = sub(categories=["traffic"], min_severity="orange")
    assert r.matches(s, alert(sev=1, category="traffic"))
    assert r.matches(s, alert(sev=2, category="traffic"))
    assert not r.matches(s, alert(sev=3, category="traffic"))
    assert not r.matches(s, alert(sev=1, category="environment"))
    a = alert(sev=3)
    assert not r.matches(sub(kinds=["anomaly"]), a) and r.matches(sub(kinds=["threshold"]), a)
    assert not r.matches(sub(rules=["other"]), a) and r.matches(sub(rules=["r"]), a)


def test_label_matchers_scope_a_department_to_what_concerns_it():
    r = Router()
    police = sub(categories=["traffic", "emergency"], matchers=["type=~|traffic_accident"])
    assert r.matches(police, alert(category="emergency", type="traffic_accident"))
    assert not r.matches(police, alert(category="emergency", type="medical"))
    assert not r.matches(police, alert(category="emergency", type="fire"))
    # an alert without the label matches as "" (Alertmanager): the traffic alerts still reach them
    assert r.matches(police, alert(category="traffic", segment_id="S1"))
    # all matchers must hold; != and !~ exclude
    s = sub(matchers=["subcategory!=incident", "rule!~aqi_.*"])
    assert r.matches(s, alert(subcategory="trafficJam"))
    assert not r.matches(s, alert(subcategory="incident"))
    assert not r.matches(s, Alert(**{**msgspec.structs.asdict(alert()), "labels": {"rule": "aqi_light"}}))
    # stored and read back unchanged
    assert Subscription.from_dict(police.to_dict()).matchers == ["type=~|traffic_accident"]


def test_where_any_of_district_street_cell_polygon():
    r = Router()
    s = sub(districts=["D1"], cells=["C9"])
    assert r.matches(s, alert(district="D1", cell="C1"))
    assert r.matches(s, alert(district="D2", cell="C9"))
    assert not r.matches(s, alert(district="D2", cell="C1"))
    assert not r.matches(s, alert())  # no location labels at all
    square = [[120.0, 30.0], [120.1, 30.0], [120.1, 30.1], [120.0, 30.1]]
    p = sub(polygon=square)
    inside, outside = alert(), alert()
    inside.lon, inside.lat = 120.05, 30.05
    outside.lon, outside.lat = 120.2, 30.05
    assert r.matches(p, inside) and not r.matches(p, outside) and not r.matches(p, alert())


def test_tier_subscription_receives_alert_only_from_its_tier_up():
    r = Router()
    district_sub, city_sub = sub(tier="district"), sub(tier="city")
    a = alert()
    a.tier = "street"
    assert not r.matches(district_sub, a)
    a.tier = "district"
    assert r.matches(district_sub, a) and not r.matches(city_sub, a)
    a.tier = "city"
    assert r.matches(district_sub, a) and r.matches(city_sub, a)


def test_point_in_polygon_against_a_triangle():
    tri = [[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]]
    # inside iff x>0, y>0, x+y<4
    for x in (0.5, 1.5, 3.5):
        for y in (0.5, 1.5, 3.0):
            assert point_in_polygon(x, y, tri) == (x + y < 4)


@pytest.mark.parametrize("bad, msg", [
    ({"id": "has space"}, "subscription id"),
    ({"min_severity": "purple"}, "severity"),
    ({"tier": "province"}, "tier"),
    ({"throttle": "lots"}, "throttle"),
    ({"polygon": [[1, 2], [3, 4]]}, "polygon"),
    ({"channel": {"type": "webhook"}}, "url"),
    ({"channel": {"type": "redis_stream"}}, "stream"),
    ({"channel": {"type": "pager"}}, "channel"),
    ({"colour": "red"}, "colour"),
    ({"group_wait": "soon"}, "duration"),
    ({"reopen_within": "a while"}, "duration"),
    ({"utc_offset_h": 30}, "utc_offset_h"),
    ({"matchers": ["type"]}, "matcher must look like name=value"),
    ({"matchers": ["type=~(unclosed"]}, "bad regular expression"),
])
def test_bad_subscriptions_give_clear_errors(bad, msg):
    with pytest.raises(ValueError, match=msg):
        sub(**bad)
