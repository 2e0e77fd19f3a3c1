import pytest

from brain.alerts.fingerprint import dedup
from brain.alerts.lifecycle import Lifecycle
from tests.alerts.helpers import cand

M = 60_000


def run(lc, alerts, cands, now):
    return [(t.old, t.new) for t in lc.step(alerts, dedup(cands), now)]


def test_for_duration_pending_then_firing():
    lc, alerts = Lifecycle(), {}
    c = lambda: cand(for_ms=10 * M, seg="S1")
    assert run(lc, alerts, [c()], 0) == [("inactive", "pending")]
    assert run(lc, alerts, [c()], 9 * M) == []
    assert run(lc, alerts, [c()], 10 * M) == [("pending", "firing")]
    (a,) = alerts.values()
    assert a.status == "firing" and a.started_ms == 0 and a.fired_ms == 10 * M


def test_pending_dropped_when_condition_stops_or_only_clear_level_holds():
    lc, alerts = Lifecycle(), {}
    run(lc, alerts, [cand(for_ms=5 * M)], 0)
    assert run(lc, alerts, [], M) == [("pending", "dropped")]
    assert alerts == {}
    run(lc, alerts, [cand(for_ms=5 * M)], 2 * M)
    assert run(lc, alerts, [cand(for_ms=5 * M, trigger=False)], 3 * M) == [("pending", "dropped")]


def test_hysteresis_clear_level_keeps_firing_alert_but_never_starts_one():
    lc, alerts = Lifecycle(), {}
    assert run(lc, alerts, [cand(trigger=False)], 0) == []
    run(lc, alerts, [cand()], M)
    assert run(lc, alerts, [cand(trigger=False)], 2 * M) == []
    assert next(iter(alerts.values())).status == "firing"
    assert run(lc, alerts, [], 3 * M) == [("firing", "resolved")]


def test_keep_firing_for_delays_resolve():
    lc, alerts = Lifecycle(), {}
    run(lc, alerts, [cand(keep_ms=5 * M)], 0)
    assert run(lc, alerts, [], 4 * M) == []
    assert run(lc, alerts, [], 5 * M) == [("firing", "resolved")]


def test_ack_then_resolve_and_bad_acks():
    lc, alerts = Lifecycle(), {}
    run(lc, alerts, [cand(for_ms=M)], 0)
    fp = next(iter(alerts))
    with pytest.raises(ValueError, match="only firing"):
        lc.acknowledge(alerts, fp, "ops", 0)
    run(lc, alerts, [cand(for_ms=M)], M)
    with pytest.raises(ValueError, match="who"):
        lc.acknowledge(alerts, fp, "", M)
    with pytest.raises(KeyError):
        lc.acknowledge(alerts, "nope", "ops", M)
    t = lc.acknowledge(alerts, fp, "zhang.wei", M)
    assert (t.old, t.new, t.actor) == ("firing", "acknowledged", "zhang.wei")
    assert run(lc, alerts, [cand(for_ms=M)], 2 * M) == []
    assert run(lc, alerts, [], 3 * M) == [("acknowledged", "resolved")]


def test_flapping_alert_is_held_instead_of_resolving_each_time():
    lc, alerts = Lifecycle(flap_window="30m", max_flaps=2), {}
    fires = resolves = 0
    for i in range(12):  # on for 2 min, off for 2 min, repeatedly
        now = i * 2 * M
        for t in lc.step(alerts, dedup([cand()] if i % 2 == 0 else []), now):
            fires += t.new == "firing"
            resolves += t.new == "resolved"
    # without suppression there would be 6 fires and 6 resolves
    assert fires == 3 and resolves == 2
    a = next(iter(alerts.values()))
    assert a.flapping and a.status == "firing"
    # quiet for a whole flap window: it finally resolves
    assert run(lc, alerts, [], 22 * M + 30 * M) == [("firing", "resolved")]


def test_resolved_alert_is_purged_after_retention():
    lc, alerts = Lifecycle(retention="1h"), {}
    run(lc, alerts, [cand()], 0)
    run(lc, alerts, [], M)
    assert run(lc, alerts, [], 30 * M) == []
    assert run(lc, alerts, [], 61 * M) == [("resolved", "purged")]
    assert alerts == {}


def test_bad_parameters():
    with pytest.raises(ValueError, match="duration"):
        Lifecycle(flap_window="soon")
    with pytest.raises(ValueError, match="max_flaps"):
        Lifecycle(max_flaps=0)


def test_a_fault_with_a_long_for_re_fires_outside_the_flap_window_and_keeps_its_incident_and_digest_flag():
    """Why flap suppression does not catch a stuck detector: one re-fire is one flap, and an alert is held
    as flapping only after ``max_flaps`` (3) within the flap window. The alert keeps its incident key across
    the resolve instead, which lets grouping reopen the old group (reopen_within) as an update."""
    lc, alerts = Lifecycle(flap_window="30m", max_flaps=3), {}
    c = lambda: cand(for_ms=30 * M, sensor_id="D1")  # noqa: E731
    run(lc, alerts, [c()], 0)
    run(lc, alerts, [c()], 30 * M)
    (a,) = alerts.values()
    a.incident, a.incident_ms = "inc-1", 30 * M
    assert run(lc, alerts, [], 60 * M) == [("firing", "resolved")]
    for t in range(65, 100, 5):
        run(lc, alerts, [c()], t * M)
    assert a.status == "firing" and not a.flapping and a.flap_times_ms == [65 * M]
    assert a.incident == "inc-1"
    expected = cand(sensor_id="D2")
    expected.digest_ms = 86_400_000
    run(lc, alerts, [expected], 100 * M)
    assert [x.digest_ms for x in alerts.values() if x.labels["sensor_id"] == "D2"] == [86_400_000]
