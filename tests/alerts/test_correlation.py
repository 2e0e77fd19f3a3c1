import pytest

from brain.alerts.correlation import CorrelateRule, Correlator
from brain.alerts.model import Alert

M = 60_000


def mk(fp, rule, sev=3, fired=0, kind="threshold", status="firing", lon=None, lat=None, digest_ms=0, **labels):
    return Alert(fingerprint=fp, rule_id=rule, kind=kind, severity=sev, status=status, fired_ms=fired,
                 labels={"rule": rule, **{k: str(v) for k, v in labels.items()}}, lon=lon, lat=lat, digest_ms=digest_ms)


INCIDENT_RULES = [
    CorrelateRule(["rule=incident"], ["category=traffic"], ["segment_id"]),
    CorrelateRule(["rule=incident"], ["category=traffic"], within_m=1000),
    CorrelateRule(["rule=incident"], ["rule=district_serious"], ["district"]),
]


def run(rules, alerts, now):
    return Correlator(rules).apply({a.fingerprint: a for a in alerts}, now)


def test_an_accident_is_one_incident_with_its_jams_and_roll_up_a_jam_far_away_is_another():
    inc = mk("inc", "incident", 2, fired=5 * M, segment_id="S1", district="D1", category="emergency",
             lon=120.0, lat=30.0)
    on_seg = mk("j1", "jam", fired=10 * M, segment_id="S1", district="D1", category="traffic", lon=120.001, lat=30.0)
    upstream = mk("j2", "jam", fired=10 * M, segment_id="S2", district="D1", category="traffic",
                  lon=120.006, lat=30.0)  # ~580 m away
    far = mk("j3", "jam", fired=10 * M, segment_id="S9", district="D1", category="traffic", lon=120.05, lat=30.0)
    roll = mk("d", "district_serious", 2, fired=10 * M, district="D1", category="emergency")
    keys = run(INCIDENT_RULES, [inc, on_seg, upstream, far, roll], 10 * M)
    assert keys["j1"] == keys["j2"] == keys["d"] == keys["inc"] == "inc"
    assert keys["j3"] == "j3"


def test_a_district_roll_up_never_merges_two_accidents():
    a = mk("a", "incident", 2, fired=0, district="D1", category="emergency")
    b = mk("b", "incident", 2, fired=20 * M, district="D1", category="emergency")
    roll = mk("d", "district_serious", 2, fired=0, district="D1", category="emergency")
    keys = run(INCIDENT_RULES, [a, b, roll], 20 * M)
    assert keys["a"] != keys["b"]
    assert keys["d"] == keys["a"]  # the roll-up follows one anchor: the most severe, then the oldest


def test_a_roll_up_prefers_the_most_severe_incident():
    minor = mk("minor", "incident", 3, fired=0, district="D1", category="emergency")
    serious = mk("serious", "incident", 1, fired=30 * M, district="D1", category="emergency")
    roll = mk("d", "district_serious", 2, fired=30 * M, district="D1", category="emergency")
    assert run(INCIDENT_RULES, [minor, serious, roll], 30 * M)["d"] == "serious"


def test_multipoint_sources_pull_in_their_sensor_alerts_even_in_another_district():
    burst = mk("burst", "water_main_burst", 2, fired=10 * M, kind="multipoint", district="D1", cell="C6",
               sources="cases:GC-1,flow:WF-02,pressure:WP-10")
    flow = mk("flow", "water_flow_spike", 3, fired=20 * M, sensor_id="WF-02", district="D2")
    other = mk("other", "water_flow_spike", 3, fired=20 * M, sensor_id="WF-09", district="D2")
    keys = run([], [burst, flow, other], 20 * M)
    assert keys["flow"] == keys["burst"] and keys["other"] == "other"


def test_a_multipoint_alert_joins_the_incident_its_sources_already_paged():
    station = mk("s1", "aqi_moderate", 3, fired=0, sensor_id="AQ-1", district="D1")
    corr = Correlator([])
    alerts = {"s1": station}
    assert corr.apply(alerts, 0) == {"s1": "s1"}
    regional = mk("reg", "aqi_regional", 2, fired=60 * M, kind="multipoint", district="D1",
                  sources="air_station:AQ-1,air_station:AQ-2")
    station2 = mk("s2", "aqi_moderate", 3, fired=60 * M, sensor_id="AQ-2", district="D1")
    alerts.update(reg=regional, s2=station2)
    assert corr.apply(alerts, 60 * M) == {"s1": "s1", "reg": "s1", "s2": "s1"}


def test_keys_are_sticky_while_paged_and_a_lone_re_fire_keeps_its_old_key():
    jam = mk("j", "jam", fired=0, segment_id="S1", category="traffic")  # pages on its own first
    corr = Correlator(INCIDENT_RULES)
    alerts = {"j": jam}
    corr.apply(alerts, 0)
    inc = mk("inc", "incident", 2, fired=10 * M, segment_id="S1", category="emergency")
    alerts["inc"] = inc
    keys = corr.apply(alerts, 10 * M)
    assert keys == {"j": "j", "inc": "inc"}  # the jam stays in the group it paged; keys never flow back
    # a fault that resolves and re-fires keeps its key (so it reopens its group); nothing explains it
    fault = mk("f", "sensor_fault", 4, fired=0, sensor_id="D-1")
    corr.apply({"f": fault}, 0)
    fault.status, fault.resolved_ms = "resolved", 30 * M
    assert corr.apply({"f": fault}, 30 * M) == {}
    fault.status, fault.fired_ms = "firing", 40 * M
    assert corr.apply({"f": fault}, 40 * M) == {"f": "f"} and fault.incident_ms == 0


def test_a_re_fired_roll_up_follows_the_new_accident_not_its_old_key():
    corr = Correlator(INCIDENT_RULES)
    old = mk("old", "incident", 2, fired=0, district="D1", category="emergency")
    roll = mk("d", "district_serious", 2, fired=0, district="D1", category="emergency")
    corr.apply({"old": old, "d": roll}, 0)
    assert roll.incident == "old"
    old.status = roll.status = "resolved"
    new = mk("new", "incident", 2, fired=120 * M, district="D1", category="emergency")
    roll.status, roll.fired_ms = "firing", 120 * M
    assert corr.apply({"old": old, "d": roll, "new": new}, 120 * M) == {"d": "new", "new": "new"}


def test_digest_only_keys_are_not_sticky_an_accident_takes_its_expected_jam_along():
    corr = Correlator(INCIDENT_RULES)
    rush = mk("rush", "jam", fired=0, segment_id="S1", category="traffic", digest_ms=86_400_000)
    corr.apply({"rush": rush}, 0)
    inc = mk("inc", "incident", 2, fired=30 * M, segment_id="S1", category="emergency")
    assert corr.apply({"rush": rush, "inc": inc}, 30 * M) == {"rush": "inc", "inc": "inc"}


@pytest.mark.parametrize("kw, msg", [
    ({"source": [], "target": ["a=b"], "equal": ["x"]}, "source and one target"),
    ({"source": ["a=b"], "target": ["c=d"]}, "equal"),
    ({"source": ["a=b"], "target": ["c=d"], "within_m": -5}, "within_m"),
    ({"source": ["a=b"], "target": ["c=d"], "equal": "district"}, "list of label names"),
    ({"source": ["a=~("], "target": ["c=d"], "equal": ["x"]}, "regular expression"),
    ({"source": ["a=b"], "target": ["c=d"], "same_zone": "yes"}, "same_zone must be true or false"),
])
def test_bad_correlate_rules_are_refused_with_clear_errors(kw, msg):
    with pytest.raises(ValueError, match=msg):
        CorrelateRule(**kw)


def test_long_anchor_chains_and_mutual_anchors_resolve_to_one_incident():
    # each burst cluster lies within reach of the next one only: a chain of 3000 (deeper than Python's stack)
    chain = CorrelateRule(["rule=burst"], ["rule=burst"], within_m=150)
    alerts = [mk(f"b{i:04d}", "burst", 2, fired=0, lon=120.0 + i * 0.001, lat=30.0) for i in range(3000)]
    keys = run([chain], alerts, 0)
    assert len(set(keys.values())) == 1
    # two alerts that anchor each other (same rule both sides, same time): one incident, whichever founds it
    pair = [mk("x", "burst", 2, fired=0, district="D1"), mk("y", "burst", 2, fired=0, district="D1")]
    keys = run([CorrelateRule(["rule=burst"], ["rule=burst"], ["district"])], pair, 0)
    assert keys["x"] == keys["y"] and keys["x"] in ("x", "y")


def test_an_alert_resolved_within_the_reopen_window_still_explains_a_new_one_never_the_reverse():
    corr = Correlator(INCIDENT_RULES, reopen_ms=60 * M)
    inc = mk("inc", "incident", 2, fired=0, segment_id="S1", category="emergency")
    corr.apply({"inc": inc}, 0)
    inc.status, inc.resolved_ms = "resolved", 20 * M
    jam = mk("j", "jam", fired=25 * M, segment_id="S1", category="traffic")  # the queue it left behind
    assert corr.apply({"inc": inc, "j": jam}, 25 * M) == {"j": "inc"}
    # a new accident that would explain a resolved jam is a new cause: its own incident
    old_jam = mk("oj", "jam", fired=0, segment_id="S2", category="traffic")
    corr.apply({"oj": old_jam}, 0)
    old_jam.status, old_jam.resolved_ms = "resolved", 20 * M
    new_inc = mk("ni", "incident", 2, fired=25 * M, segment_id="S2", category="emergency")
    assert corr.apply({"oj": old_jam, "ni": new_inc}, 25 * M) == {"ni": "ni"}
    # beyond the window, or with the window off, a new alert founds its own incident
    late = mk("j2", "jam", fired=81 * M, segment_id="S1", category="traffic")
    assert corr.apply({"inc": inc, "j2": late}, 81 * M) == {"j2": "j2"}
    assert Correlator(INCIDENT_RULES).apply({"inc": inc, "j3": mk("j3", "jam", fired=25 * M, segment_id="S1",
                                                                   category="traffic")}, 25 * M) == {"j3": "j3"}


def test_a_multipoint_alert_sharing_a_source_with_a_resolved_one_re_forms_its_incident():
    corr = Correlator([], reopen_ms=60 * M)
    first = mk("m1", "burst", 2, fired=0, kind="multipoint", sources="cases:GC-a,flow:WF-2")
    spike = mk("s", "flow_spike", 3, fired=0, sensor_id="WF-9")
    corr.apply({"m1": first, "s": spike}, 0)
    first.status = spike.status = "resolved"
    first.resolved_ms = spike.resolved_ms = 10 * M
    again = mk("m2", "burst", 2, fired=10 * M, kind="multipoint", sources="flow:WF-2,pressure:WP-2")
    with_spike = mk("m3", "burst", 2, fired=10 * M, kind="multipoint", sources="flow:WF-9,cases:GC-b")
    other = mk("m4", "burst", 2, fired=10 * M, kind="multipoint", sources="flow:WF-5,cases:GC-c")
    keys = corr.apply({a.fingerprint: a for a in (first, spike, again, with_spike, other)}, 10 * M)
    assert keys == {"m2": "m1", "m3": "s", "m4": "m4"}
