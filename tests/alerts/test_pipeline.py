from brain.alerts.inhibition import InhibitRule
from brain.alerts.model import Candidate
from brain.alerts.pipeline import AlertPipeline
from brain.alerts.routing import Subscription
from brain.alerts.silences import Silence

M = 60_000


def c(rule, sev=3, **labels):
    return Candidate(rule_id=rule, kind="threshold", severity=sev, labels=labels, value=1.0, ts_ms=0)


def test_incident_with_congestion_gives_one_notification_per_subscriber_and_one_resolve():
    subs = [Subscription.from_dict({"id": s, "department": s, "channel": {"type": "log"}, "group_by": ["cell"],
                                    "group_wait": "30s", "group_interval": "1m"}) for s in ("police", "cmd")]
    p = AlertPipeline(subs, [InhibitRule(["category=emergency"], ["category=traffic"], ["segment_id"])])
    inc = c("incident", 2, category="emergency", segment_id="S1", cell="C1")
    jam = c("tti", 3, category="traffic", segment_id="S1", cell="C1")
    sent = []
    for minute in range(10):
        cands = [inc, jam] if minute < 6 else []
        sent += p.process(cands,
                          minute * M)
    firing = [n for n in sent if n.status == "firing"]
    assert sorted(n.subscription_id for n in firing) == ["cmd", "police"]
    assert all([a.rule_id for a in n.alerts] == ["incident"] for n in firing)  # jam inhibited
    assert sorted(n.subscription_id for n in sent if n.status == "resolved") == ["cmd", "police"]
    actions = [e.action for e in p.state.audit]
    assert actions.count("notify") == 4 and "alert" in actions


def test_silence_and_ack_are_audited_with_who():
    sub = Subscription.from_dict({"id": "ops", "department": "ops", "channel": {"type": "log"}, "group_wait": "0s"})
    p = AlertPipeline([sub])
    p.add_silence(Silence.create(["district=D1"], 0, 10 * M, "wang", "road works"))
    assert p.process([c("a", district="D1")], 0) == []
    (n,) = p.process([c("b", district="D2")], M)
    fp = n.alerts[0].fingerprint
    p.acknowledge(fp, "li.na", 2 * M)
    entries = [(e.actor, e.action) for e in p.state.audit]
    assert ("wang", "silence") in entries and ("li.na", "ack") in entries
    assert p.state.alerts[fp].status == "acknowledged"


def test_replaying_windows_from_saved_state_regenerates_the_same_keys_and_the_log_drops_them():
    import copy

    sub = Subscription.from_dict({"id": "ops", "department": "ops", "channel": {"type": "log"}, "group_wait": "0s",
                                  "group_interval": "0s"})
    p = AlertPipeline([sub])
    windows = [[c("a", cell="C1")], [c("a", cell="C1"), c("b", cell="C2")], [c("b", cell="C2")], []]
    p.process(windows[0], 0)
    saved = copy.deepcopy(p.state)  # what Redis holds after window 0
    first = [n.key for i, w in enumerate(windows[1:], 1) for n in p.process(copy.deepcopy(w), i * M)]
    # a crash before windows 1.. were persisted: a new engine resumes from the saved state
    q = AlertPipeline([sub], state=copy.deepcopy(saved))
    again = [n.key for i, w in enumerate(windows[1:], 1) for n in q.process(copy.deepcopy(w), i * M)]
    assert again == first and len(set(first)) == len(first) == 3  # b fires, a resolves, b resolves
    # the same windows once more on a state whose log already holds those keys: nothing goes out twice
    r = AlertPipeline([sub], state=copy.deepcopy(saved))
    r.state.sent_keys.update({k: 0 for k in first})
    assert [n.key for i, w in enumerate(windows[1:], 1) for n in r.process(copy.deepcopy(w), i * M)] == []


def test_unacknowledged_alert_escalates_to_the_district_tier_subscriber():
    from brain.alerts.escalation import Escalation

    street = Subscription.from_dict({"id": "street", "department": "street office", "channel": {"type": "log"},
                                     "group_wait": "0s", "tier": "street"})
    district = Subscription.from_dict({"id": "district", "department": "district centre", "channel": {"type": "log"},
                                       "group_wait": "0s", "tier": "district"})
    p = AlertPipeline([street, district], escalation=Escalation(after={"yellow": "10m"}))
    sent = []
    for minute in range(0, 20, 5):
        sent += [(minute, n.subscription_id, n.reason) for n in p.process([c("jam", 3, district="D1", cell="C1")], minute * M)]
    assert sent == [(0, "street", "alert"), (10, "district", "escalation")]
    (a,) = p.state.alerts.values()
    assert a.tier == "district"
    p.acknowledge(a.fingerprint, "district.duty", 16 * M)
    assert p.process([c("jam", 3, district="D1", cell="C1")], 60 * M) == []  # acknowledged: no climb to city
    assert a.tier == "district"


def _shipped_links():
    from brain.alerts.rules import RuleEngine

    eng = RuleEngine.from_path()
    return eng.inhibit_rules, eng.correlate_rules


def _cand(rule, sev, lon=None, lat=None, kind="threshold", digest_ms=0, **labels):
    return Candidate(rule_id=rule, kind=kind, severity=sev, labels={"rule": rule, **labels}, value=1.0, ts_ms=0,
                     lon=lon, lat=lat, digest_ms=digest_ms)


def test_one_accident_pages_each_subscriber_once_with_the_shipped_correlation_links():
    """An accident in the morning rush: the incident report, the jams on its segment and upstream (expected
    at that hour: daily digest), a sudden slowdown upstream, the district roll-up, then red gridlock."""
    from brain.alerts.escalation import Escalation

    day = 86_400_000
    base = {"channel": {"type": "log"}, "group_wait": "1m", "group_interval": "10m"}
    subs = [Subscription.from_dict({**base, **s}) for s in (
        {"id": "police", "department": "traffic police", "categories": ["traffic", "emergency"], "min_severity": "yellow"},
        {"id": "emergency", "department": "emergency management", "categories": ["emergency"], "min_severity": "orange"},
        {"id": "command", "department": "city command", "min_severity": "orange", "tier": "district"})]
    inhibit, correlate = _shipped_links()
    p = AlertPipeline(subs, inhibit, correlate_rules=correlate, escalation=Escalation())
    where = {"district": "D1", "street": "ST1"}
    rush_elsewhere = _cand("segment_severe_congestion", 3, 120.2, 30.0, digest_ms=day, category="traffic",
                           segment_id="S7", cell="C7", **where)
    incident = _cand("incident_active", 2, 120.0, 30.0, category="emergency", subcategory="incident",
                     incident_id="INC-1", segment_id="S1", cell="C1", **where)
    jam_s1 = _cand("segment_severe_congestion", 3, 120.001, 30.0, digest_ms=day, category="traffic", segment_id="S1",
                   cell="C1", **where)
    slow_s2 = _cand("segment_sudden_slowdown", 3, 120.006, 30.0, category="traffic", segment_id="S2", cell="C2", **where)
    jam_s2 = _cand("segment_severe_congestion", 3, 120.006, 30.0, digest_ms=day, category="traffic", segment_id="S2",
                   cell="C2", **where)
    roll = _cand("district_serious_incident", 2, category="emergency", district="D1")
    gridlock = _cand("district_gridlock_with_incident", 1, category="traffic", district="D1")
    sent = []
    for minute in range(0, 65, 5):
        cands = [rush_elsewhere]
        if 5 <= minute < 45:
            cands += [incident, jam_s1, slow_s2, jam_s2, roll] + ([gridlock] if minute >= 15 else [])
        sent += [(minute, n) for n in p.process(cands, minute * M)]
    firing = [(m, n) for m, n in sent if n.status == "firing"]
    actionable = sorted((n.subscription_id, m) for m, n in firing if n.reason in ("alert", "escalation"))
    assert actionable == [("command", 20), ("emergency", 10), ("police", 10)]
    police = [n for m, n in firing if n.subscription_id == "police"]
    assert {a.rule_id for n in police for a in n.alerts} == {
        "incident_active", "segment_severe_congestion", "segment_sudden_slowdown", "district_serious_incident",
        "district_gridlock_with_incident"}
    assert all(a.labels.get("segment_id") != "S7" for n in police for a in n.alerts)  # the rush elsewhere: digest
    assert [n.raised for n in police if n.reason == "update"] == [True]  # red gridlock: an update, not a page
    assert {n.subscription_id for m, n in sent if n.status == "resolved"} == {"police", "emergency", "command"}


def test_a_stuck_detector_that_resolves_and_re_fires_is_one_page_then_updates():
    sub = Subscription.from_dict({"id": "maint", "department": "sensor maintenance", "channel": {"type": "log"},
                                  "group_wait": "0s", "group_interval": "5m", "reopen_within": "1h"})
    p = AlertPipeline([sub])
    fault = c("sensor_fault_suspected", 4, category="sensor_health", sensor_id="VD-1")
    pattern = [1] * 6 + [0] * 3 + [1] * 6 + [0] * 2 + [1] * 3  # fires, resolves, re-fires 15 min later, again
    reasons = [(i, n.status, n.reason) for i, on in enumerate(pattern)
               for n in p.process([fault] if on else [], i * 5 * M)]
    assert [r for r in reasons if r[1] == "firing"] == [(0, "firing", "alert"), (9, "firing", "update"),
                                                       (17, "firing", "update")]
    assert [r for r in reasons if r[1] == "resolved"] == [(6, "resolved", "update"), (15, "resolved", "update")]
