from brain.alerts.grouping import Grouper
from brain.alerts.routing import Subscription
from tests.alerts.helpers import alert

S = 1000
M = 60_000


def mk(**kw):
    base = {"id": "ops", "department": "ops", "channel": {"type": "log"}, "group_by": ["cell"],
            "group_wait": "30s", "group_interval": "5m", "repeat_interval": "1h"}
    return Subscription.from_dict({**base, **kw})


class Run:
    def __init__(self, *subs):
        self.subs, self.g, self.groups, self.ss = list(subs), Grouper(), {}, {}

    def __call__(self, alerts, now):
        return self.g.step({a.fingerprint: a for a in alerts}, self.subs, self.groups, self.ss, now)


def test_alerts_of_one_incident_leave_as_one_notification_after_group_wait():
    run = Run(mk())
    inc = alert("inc", cell="C1", category="emergency")
    assert run([inc], 0) == []
    jam = alert("jam", cell="C1", category="traffic")
    other = alert("far", cell="C7")
    assert run([inc, jam, other], 20 * S) == []
    out = run([inc, jam, other], 30 * S)
    assert len(out) == 1 and {a.fingerprint for a in out[0].alerts} == {"inc", "jam"}
    out = run([inc, jam, other], 50 * S)  # group C7 was born at 20 s
    assert [{a.fingerprint for a in n.alerts} for n in out] == [{"far"}]


def test_changes_wait_for_group_interval_and_resolves_are_reported():
    run = Run(mk(group_wait="0s"))
    a, b = alert("a", cell="C1"), alert("b", cell="C1")
    assert len(run([a], 0)) == 1
    assert run([a, b], M) == []  # within group_interval
    (n,) = run([a, b], 5 * M)
    assert n.status == "firing" and n.reason == "update" and {x.fingerprint for x in n.alerts} == {"a", "b"}
    a.status, b.status = "resolved", "resolved"
    (n,) = run([a, b], 10 * M)
    assert n.status == "resolved" and sorted(x.status for x in n.alerts) == ["resolved", "resolved"]
    assert run([a, b], 20 * M) == [] and len(run.groups) == 1  # kept for reopen_within (1 h)
    assert run([a, b], 70 * M) == [] and run.groups == {}


def test_repeat_interval_and_unique_keys():
    run = Run(mk(group_wait="0s"))
    a = alert("a", cell="C1")
    keys = [n.key for t in range(0, 181, 10) for n in run([a], t * M)]
    assert len(keys) == 4 and len(set(keys)) == 4  # first + repeats at 60, 120, 180 min


def test_silenced_alert_not_notified_but_notified_one_still_gets_its_resolve():
    run = Run(mk(group_wait="0s", group_interval="0s"))
    a = alert("a", cell="C1")
    a.silenced_by = "s"
    assert run([a], 0) == []
    a.silenced_by = ""
    assert len(run([a], M)) == 1
    a.silenced_by = "s"  # muted after notifying: no resolve yet, it is still active
    assert run([a], 2 * M) == []
    a.status = "resolved"
    (n,) = run([a], 3 * M)
    assert n.status == "resolved"


def test_throttle_folds_excess_into_a_digest():
    run = Run(mk(group_wait="0s", throttle="2/1h", repeat_interval="4h"))
    alerts = [alert(f"a{i}", cell=f"C{i}") for i in range(5)]
    out = run(alerts, 0)
    assert len(out) == 2 and all(n.reason == "alert" for n in out)
    assert run(alerts, 30 * M) == []
    (d,) = run(alerts, 60 * M)
    assert d.reason == "digest" and len(d.alerts) == 3


def test_digest_only_subscriber_gets_periodic_summaries():
    run = Run(mk(group_wait="0s", digest="1h", digest_only=True))
    alerts = [alert(f"a{i}", cell=f"C{i}") for i in range(3)]
    assert run(alerts, 0) == []
    (d,) = run(alerts, 60 * M)
    assert d.reason == "digest" and len(d.alerts) == 3 and d.key.endswith("digest:1")


def test_escalated_alert_reaches_district_subscriber_as_escalation():
    street, district = mk(id="street", group_wait="0s"), mk(id="district", group_wait="0s", tier="district")
    run = Run(street, district)
    a = alert("a", cell="C1", fired_ms=0)
    a.tier, a.tier_since_ms = "street", 0
    assert [n.subscription_id for n in run([a], 0)] == ["street"]
    a.tier, a.tier_since_ms = "district", 10 * M
    out = run([a], 10 * M)
    assert [(n.subscription_id, n.reason) for n in out] == [("district", "escalation")]


def test_new_category_or_worse_level_in_an_open_group_is_actionable_more_of_the_same_is_an_update():
    run = Run(mk(group_wait="0s", group_interval="0s", group_by=["district"]))
    jam1 = alert("j1", district="D1", category="traffic")
    assert [n.reason for n in run([jam1], 0)] == ["alert"]
    jam2 = alert("j2", district="D1", category="traffic")
    assert [n.reason for n in run([jam1, jam2], M)] == ["update"]
    inc = alert("i1", district="D1", category="emergency")
    assert [n.reason for n in run([jam1, jam2, inc], 2 * M)] == ["alert"]  # new category
    worse = alert("j3", district="D1", category="traffic", sev=2)
    assert [n.reason for n in run([jam1, jam2, inc, worse], 3 * M)] == ["alert"]  # more severe than before
    same = alert("j4", district="D1", category="traffic", sev=2)
    assert [n.reason for n in run([jam1, jam2, inc, worse, same], 4 * M)] == ["update"]


def test_a_group_that_empties_and_forms_again_gets_new_keys():
    run = Run(mk(group_wait="0s", group_interval="0s", reopen_within="0s"))
    keys = []
    for start in (0, 30 * M):
        a = alert(f"a{start}", cell="C1")
        keys += [n.key for n in run([a], start)]
        a.status = "resolved"
        keys += [n.key for n in run([a], start + M)]
        assert run.groups == {}  # dropped once its resolve went out
    assert len(keys) == 4 and len(set(keys)) == 4


def inc_alert(fp, incident, sev=3, category="traffic", status="firing", digest_ms=0, **labels):
    a = alert(fp, sev=sev, status=status, category=category, **labels)
    a.incident, a.digest_ms = incident, digest_ms
    return a


def test_one_incident_one_page_a_new_category_or_worse_level_of_it_is_a_raised_update():
    run = Run(mk(group_wait="0s", group_interval="0s", group_by=["incident"]))
    jam = inc_alert("jam", "acc", category="traffic", segment_id="S1")
    (n,) = run([jam], 0)
    assert n.reason == "alert"
    report = inc_alert("inc", "acc", sev=2, category="emergency", segment_id="S1")
    (n,) = run([jam, report], M)
    assert (n.reason, n.raised, n.key == f"ops:{n.group_key}:0:2") == ("update", True, True)
    gridlock = inc_alert("grid", "acc", sev=1, category="traffic", district="D1")
    (n,) = run([jam, report, gridlock], 2 * M)
    assert (n.reason, n.raised, len(n.alerts)) == ("update", True, 3)
    # the same alert getting worse (its severity rises) is an update too, without any new alert
    report.severity = 1
    assert run([jam, report, gridlock], 3 * M) == []  # not above the group's worst level (red) so far
    other = inc_alert("other", "elsewhere", category="traffic", segment_id="S9")
    (n,) = run([jam, report, gridlock, other], 4 * M)
    assert n.reason == "alert" and [a.fingerprint for a in n.alerts] == ["other"]  # another incident: its own page


def test_grouping_by_place_a_new_incident_bringing_a_new_category_pages_in_the_same_group():
    run = Run(mk(group_wait="0s", group_interval="0s", group_by=["district"]))
    jam = inc_alert("jam", "rush", category="traffic", district="D1")
    assert [n.reason for n in run([jam], 0)] == ["alert"]
    jam2 = inc_alert("jam2", "rush", category="traffic", district="D1", sev=2)
    assert [(n.reason, n.raised) for n in run([jam, jam2], M)] == [("update", True)]  # same incident, worse
    acc = inc_alert("acc", "accident", category="emergency", district="D1", sev=2)
    assert [n.reason for n in run([jam, jam2, acc], 2 * M)] == ["alert"]


def test_a_fault_that_re_fires_within_reopen_within_is_an_update_in_its_old_group_later_a_new_page():
    run = Run(mk(group_wait="0s", group_interval="5m", reopen_within="1h", group_by=["incident"]))
    fault = inc_alert("stuck", "stuck", category="sensor_health", sev=4, sensor_id="D-1")
    (first,) = run([fault], 0)
    fault.status = "resolved"
    (res,) = run([fault], 30 * M)
    assert res.status == "resolved" and len(run.groups) == 1
    fault.status = "firing"  # re-fires 20 minutes after resolving
    (again,) = run([fault], 50 * M)
    assert (again.reason, again.group_key, again.key.split(":")[2]) == ("update", first.group_key, "0")
    fault.status = "resolved"
    run([fault], 60 * M)
    assert run([fault], 125 * M) == [] and run.groups == {}  # quiet for reopen_within: forgotten
    fault.status = "firing"
    (late,) = run([fault], 180 * M)
    assert late.reason == "alert" and late.key.split(":")[2] == str(180 * M)


def test_expected_alerts_go_to_the_daily_digest_at_local_midnight_unless_their_incident_pages():
    day = 86_400_000
    run = Run(mk(group_wait="0s", group_interval="0s", group_by=["incident"], utc_offset_h=8))
    midnight = 16 * 3_600_000  # 00:00 in UTC+8 is 16:00 UTC
    rush = [inc_alert(f"r{i}", f"r{i}", segment_id=f"S{i}", digest_ms=day) for i in range(3)]
    assert run(rush, midnight + 8 * 3_600_000) == []  # 08:00 local: rush hour, nothing pages
    acc = inc_alert("acc", "r0", sev=2, category="emergency", segment_id="S0")  # an accident in the jam on S0
    (n,) = run(rush + [acc], midnight + 9 * 3_600_000)
    assert n.reason == "alert" and {a.fingerprint for a in n.alerts} == {"acc", "r0"}
    for a in rush:
        a.status = "resolved"
    acc.status = "resolved"
    out = run(rush + [acc], midnight + 10 * 3_600_000)
    assert [n.status for n in out] == ["resolved"]
    assert run(rush + [acc], midnight + day - M) == []  # 23:59 local: the day is not over
    (d,) = run(rush + [acc], midnight + day)
    assert d.reason == "digest" and d.key == "ops:digest:1"
    # r0 too: it was expected congestion for an hour before the accident made it part of an incident
    assert sorted((a.fingerprint, a.status) for a in d.alerts) == [("r0", "resolved"), ("r1", "resolved"),
                                                                   ("r2", "resolved")]
    assert run(rush + [acc], midnight + day + 5 * M) == []  # once per period


def test_with_a_tick_a_new_group_leaves_at_the_last_step_before_its_group_wait_deadline():
    """Driven by 5-minute windows, a 1-minute group_wait would otherwise hold every first page a whole window."""
    sub = mk(group_wait="1m", group_interval="10m")
    a = alert("a", cell="C1")
    windowed = Run(sub)
    windowed.g = Grouper(tick="5m")
    assert [n.reason for n in windowed([a], 0)] == ["alert"]
    plain = Run(sub)
    assert plain([a], 0) == [] and [n.reason for n in plain([a], 5 * M)] == ["alert"]
    # a group_wait longer than the tick still waits for the last window before its deadline
    slow = Run(mk(group_wait="12m"))
    slow.g = Grouper(tick="5m")
    assert slow([a], 0) == [] and slow([a], 5 * M) == [] and len(slow([a], 10 * M)) == 1
    # group_interval stays a minimum spacing: an update never leaves early
    b = alert("b", cell="C1")
    assert windowed([a, b], 5 * M) == [] and [n.reason for n in windowed([a, b], 10 * M)] == ["update"]
    # informational (blue) groups wait group_wait out: a one-window blip resolves before anyone is told
    blip = alert("blip", sev=4, cell="C9")
    blue = Run(sub)
    blue.g = Grouper(tick="5m")
    assert blue([blip], 0) == []
    blip.status = "resolved"
    assert blue([blip], 5 * M) == []
