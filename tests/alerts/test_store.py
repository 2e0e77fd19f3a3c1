"""Alert state in a real Redis: what survives a restart of the service."""
import asyncio

from brain.alerts.routing import Subscription
from brain.alerts.silences import Silence
from streams.alerts.delivery import DeliveryConfig
from streams.alerts.service import AlertService
from streams.alerts.store import AlertStore
from tests.alerts.svc_helpers import M, seg_table, webhook_sub, wait_until, write_rules


def test_state_survives_restart_and_resolve_still_goes_out(redis_url, receiver, tmp_path):
    rules = write_rules(tmp_path)
    sub = Subscription.from_dict(webhook_sub("police", receiver.url))

    async def first():
        svc = await AlertService.start(redis_url, rules_path=rules, subscriptions=[sub],
                                       delivery=DeliveryConfig(backoff_base_s=0.05, block_ms=50))
        notes = await svc.on_window(seg_table({"S1": 2.5, "S2": 3.0}), 0)
        assert sorted(n.alerts[0].labels["segment_id"] for n in notes) == ["S1", "S2"]
        assert await wait_until(lambda: len(receiver.received) == 2)
        await svc.close()

    async def second():
        svc = await AlertService.start(redis_url, rules_path=rules, subscriptions=[sub],
                                       delivery=DeliveryConfig(backoff_base_s=0.05, block_ms=50))
        firing = sorted(a.labels["segment_id"] for a in svc.pipeline.state.alerts.values() if a.status == "firing")
        assert firing == ["S1", "S2"]
        # S1 still congested: nothing new; S2 cleared: its resolve goes out
        notes = await svc.on_window(seg_table({"S1": 2.5}), M)
        assert [(n.status, n.alerts[0].labels["segment_id"]) for n in notes] == [("resolved", "S2")]
        # a replayed old window changes nothing
        assert await svc.on_window(seg_table({"S1": 2.5, "S2": 3.0}), 0) == []
        assert await wait_until(lambda: len(receiver.received) == 3)
        await svc.close()

    asyncio.run(first())
    asyncio.run(second())
    statuses = [(r["body"]["status"], r["body"]["alerts"][0]["labels"]["segment_id"]) for r in receiver.received]
    assert sorted(statuses) == [("firing", "S1"), ("firing", "S2"), ("resolved", "S2")]
    assert len(set(receiver.keys())) == 3


def test_operator_ack_and_silence_through_redis_are_applied_and_audited(redis_url, receiver, tmp_path):
    rules = write_rules(tmp_path)

    async def run():
        svc = await AlertService.start(redis_url, rules_path=rules,
                                       subscriptions=[Subscription.from_dict(webhook_sub("police", receiver.url))])
        await svc.on_window(seg_table({"S1": 2.5}), 0)
        cli = AlertStore.from_url(redis_url)
        (a,) = await cli.alerts()
        await cli.request_ack(a.fingerprint, "duty.officer", "on it")
        await cli.request_ack("0000000000000000", "duty.officer")
        await cli.put_silence(Silence.create(["segment_id=S2"], 0, 10 * M, "wang"), actor="wang")
        await svc.on_window(seg_table({"S1": 2.5, "S2": 2.6}), M)
        by_seg = {x.labels["segment_id"]: x for x in await cli.alerts()}
        assert by_seg["S1"].status == "acknowledged" and by_seg["S1"].acked_by == "duty.officer"
        assert by_seg["S2"].status == "firing" and by_seg["S2"].silenced_by
        audit = await cli.audit(100)
        assert any(e["action"] == "ack" and e["actor"] == "duty.officer" and e["new"] == "acknowledged" for e in audit)
        assert any(e["action"] == "ack" and e["new"] == "rejected" for e in audit)
        assert any(e["action"] == "silence" and e["actor"] == "wang" for e in audit)
        await wait_until(lambda: len(receiver.received) >= 1)
        await asyncio.sleep(0.3)
        await cli.close()
        await svc.close()

    asyncio.run(run())
    # S2 was silenced: only S1 was ever notified
    assert [r["body"]["alerts"][0]["labels"]["segment_id"] for r in receiver.received] == ["S1"]


def test_an_ack_read_by_an_engine_that_dies_before_persisting_is_applied_after_restart(redis_url, receiver, tmp_path):
    rules = write_rules(tmp_path)
    sub = Subscription.from_dict(webhook_sub("police", receiver.url))

    async def first():
        svc = await AlertService.start(redis_url, rules_path=rules, subscriptions=[sub])
        await svc.on_window(seg_table({"S1": 2.5}), 0)
        cli = AlertStore.from_url(redis_url)
        (a,) = await cli.alerts()
        await cli.request_ack(a.fingerprint, "duty.officer", "on it")
        # the engine reads its window inputs and dies before the window's state is written
        _, _, acks = await svc.store.window_inputs()
        assert list(acks) == [a.fingerprint]
        await cli.close()
        await svc.close()

    async def second():
        svc = await AlertService.start(redis_url, rules_path=rules, subscriptions=[sub])
        await svc.on_window(seg_table({"S1": 2.5}), M)
        cli = AlertStore.from_url(redis_url)
        (a,) = await cli.alerts()
        assert a.status == "acknowledged" and a.acked_by == "duty.officer"
        # once the acknowledged state is persisted, the request leaves the queue
        assert await cli.r.hlen(cli.k("acks")) == 0
        await cli.close()
        await svc.close()

    asyncio.run(first())
    asyncio.run(second())


def test_subscription_added_while_running_gets_current_alerts(redis_url, receiver_factory, tmp_path):
    rules = write_rules(tmp_path)
    r1, r2 = receiver_factory(), receiver_factory()

    async def run():
        svc = await AlertService.start(redis_url, rules_path=rules,
                                       subscriptions=[Subscription.from_dict(webhook_sub("a", r1.url))])
        await svc.on_window(seg_table({"S1": 2.5}), 0)
        cli = AlertStore.from_url(redis_url)
        await cli.put_subscription(Subscription.from_dict(webhook_sub("b", r2.url)), actor="admin")
        await svc.on_window(seg_table({"S1": 2.5}), M)
        assert await wait_until(lambda: len(r1.received) == 1 and len(r2.received) == 1)
        assert await cli.remove_subscription("b", actor="admin")
        await svc.on_window(seg_table({"S1": 2.5, "S3": 2.2}), 2 * M)
        await wait_until(lambda: len(r1.received) == 2)
        await asyncio.sleep(0.2)
        await cli.close()
        await svc.close()

    asyncio.run(run())
    assert len(r2.received) == 1 and len(r1.received) == 2


def test_fresh_start_forgets_alert_state_but_keeps_subscriptions_and_silences(redis_url, tmp_path):
    rules = write_rules(tmp_path)
    sub = Subscription.from_dict({"id": "ops", "department": "ops", "channel": {"type": "log"}, "group_wait": "0s"})

    async def run():
        svc = await AlertService.start(redis_url, rules_path=rules, subscriptions=[sub], deliver=False)
        await svc.on_window(seg_table({"S1": 2.5}), 10 * M)
        await svc.store.put_silence(Silence.create(["segment_id=S9"], 0, 100 * M, "wang"), actor="wang")
        await svc.close()
        again = await AlertService.start(redis_url, rules_path=rules, deliver=False)
        assert await again.on_window(seg_table({"S1": 2.5}), 5 * M) == []  # older stream time: already processed
        await again.close()
        fresh = await AlertService.start(redis_url, rules_path=rules, deliver=False, fresh=True)
        assert fresh.pipeline.state.alerts == {} and list(fresh.pipeline.state.subscriptions) == ["ops"]
        notes = await fresh.on_window(seg_table({"S1": 2.5}), 5 * M)
        assert [n.status for n in notes] == ["firing"]
        assert list((await fresh.store.silences())) and any(e["action"] == "reset" for e in await fresh.store.audit(50))
        await fresh.close()

    asyncio.run(run())


MEMORY_RULES = """
pack: memory
rules:
  - {id: drop, kind: rate, table: seg, value: speed_kmh, op: "<=", threshold: -40, mode: pct, per: 5m,
     severity: yellow, labels: {category: traffic}, labels_from: [segment_id]}
  - {id: quiet, kind: absence, table: noise, after: 10m, severity: blue, labels: {category: sensor_health},
     labels_from: [sensor_id]}
  - {id: burst, kind: multipoint, group_by: cell_id, min_sources: 2, window: 30m, severity: orange,
     labels: {category: utilities}, labels_from: [cell_id],
     signals: [{table: pressure, value: deviation_pct, op: "<=", threshold: -25, source: sensor_id}]}
"""


def test_rule_memory_survives_a_restart_and_a_fresh_start_forgets_it(redis_url, tmp_path):
    """Rate, absence and multi-point rules look back over earlier windows: after a restart they must
    still see what came before (the control: a ``fresh`` start, which forgets it, sees nothing)."""
    import polars as pl

    rules = write_rules(tmp_path, MEMORY_RULES)
    w0 = {"seg": pl.DataFrame({"segment_id": ["S1"], "speed_kmh": [50.0]}),
          "noise": pl.DataFrame({"sensor_id": ["N1"]}),
          "pressure": pl.DataFrame({"sensor_id": ["P1"], "cell_id": ["C1"], "deviation_pct": [-40.0]})}
    w1 = {"seg": pl.DataFrame({"segment_id": ["S1"], "speed_kmh": [20.0]}),
          "pressure": pl.DataFrame({"sensor_id": ["P2"], "cell_id": ["C1"], "deviation_pct": [-35.0]})}

    async def window0():
        svc = await AlertService.start(redis_url, rules_path=rules, deliver=False)
        await svc.on_window(w0, 0)
        await svc.close()

    async def later(fresh: bool):
        svc = await AlertService.start(redis_url, rules_path=rules, deliver=False, fresh=fresh)
        await svc.on_window(w1, 5 * M)
        at5 = {a.rule_id for a in svc.pipeline.state.alerts.values() if a.active}
        await svc.on_window({}, 15 * M)
        at15 = {a.rule_id for a in svc.pipeline.state.alerts.values() if a.active}
        await svc.close()
        return at5, at15

    asyncio.run(window0())
    at5, at15 = asyncio.run(later(fresh=False))
    assert at5 == {"drop", "burst"} and "quiet" in at15  # -60 % in 5 min; P1 then P2 in C1; N1 silent 15 min
    asyncio.run(window0())
    assert asyncio.run(later(fresh=True)) == (set(), set())


def test_retention_trims_cap_documents_and_the_notification_log_but_not_parked(redis_url):
    import pytest

    from brain.alerts.model import Alert, Notification
    from streams.alerts.delivery import Deliverer
    from streams.alerts.store import now_ms

    with pytest.raises(ValueError, match="log_days"):
        AlertStore.from_url(redis_url, log_days=0)

    async def run():
        store = AlertStore.from_url(redis_url)  # the documented default: 7 days
        assert store.log_days == 7.0
        a = Alert(fingerprint="f1", rule_id="r", kind="threshold", severity=2, status="firing", labels={"district": "D1"},
                  fired_ms=0, summary="burst")
        n = Notification(key="cap-sub:g:0:1", subscription_id="cap-sub", group_key="g", status="firing",
                         reason="alert", ts_ms=0, alerts=[a])
        from brain.alerts.state import AlertState

        await store.persist(AlertState(), [n], window_ms=0)
        doc = await Deliverer(store, DeliveryConfig(), None)._cap_document(a, n)
        assert "<msgType>Alert</msgType>" in doc
        await store.park("cap-sub", "0-1", n.key, n, 3, "HTTP 503", actor="test")
        r = store.r
        sizes = lambda: asyncio.gather(r.hlen(store.k("cap", "doc")), r.hlen(store.k("cap", "first")),  # noqa: E731
                                       r.xlen(store.k("notifications")), r.xlen(store.k("parked")))
        assert await sizes() == [1, 1, 1, 1]
        t = now_ms()
        assert await store.trim(t + 6 * 86_400_000) == {"cap_doc": 0, "cap_first": 0, "notifications": 0, "delivered": 0}
        assert await sizes() == [1, 1, 1, 1]
        got = await store.trim(t + 8 * 86_400_000)
        assert got["cap_doc"] == 1 and got["cap_first"] == 1 and got["notifications"] == 1
        assert await sizes() == [0, 0, 0, 1]  # parked notifications wait for an operator
        await store.close()

    asyncio.run(run())


INCIDENT_RULES = """
pack: incidents
rules:
  - {id: incident, kind: threshold, table: incidents, value: severity, op: "<=", threshold: 2, severity: orange,
     labels: {category: emergency}, labels_from: [incident_id, segment_id]}
  - {id: jam, kind: threshold, table: seg, value: tpi, op: ">=", threshold: 8, severity: yellow, digest: daily,
     labels: {category: traffic}, labels_from: [segment_id]}
  - {id: slowdown, kind: threshold, table: seg, value: drop_pct, op: ">=", threshold: 40, severity: yellow,
     labels: {category: traffic}, labels_from: [segment_id]}
correlate:
  - {source: [rule=incident], target: [category=traffic], equal: [segment_id]}
"""


def test_incident_groups_and_the_digest_survive_a_restart(redis_url, tmp_path):
    """After a restart, a follow-up of an incident already paged is still an update in its group, and the
    expected congestion collected for the daily digest still goes out at local midnight."""
    import polars as pl

    rules = write_rules(tmp_path, INCIDENT_RULES)
    sub = Subscription.from_dict({"id": "police", "department": "traffic police", "group_wait": "0s",
                                  "group_interval": "0s", "channel": {"type": "log"}})
    t0 = 16 * 3_600_000 + 8 * 3_600_000  # 08:00 in UTC+8
    inc = pl.DataFrame({"incident_id": ["I1"], "segment_id": ["S1"], "severity": [2]})

    def seg(tpi: dict, drop: dict):
        ids = ["S1", "S9"]
        return pl.DataFrame({"segment_id": ids, "tpi": [tpi.get(s, 2.0) for s in ids],
                             "drop_pct": [drop.get(s, 0.0) for s in ids]})

    async def start():
        return await AlertService.start(redis_url, rules_path=rules, subscriptions=[sub], deliver=False)

    async def before():
        svc = await start()
        notes = await svc.on_window({"incidents": inc, "seg": seg({"S9": 9.0}, {})}, t0)
        await svc.close()
        return [(n.reason, sorted(a.rule_id for a in n.alerts)) for n in notes]

    async def after():
        svc = await start()
        notes = await svc.on_window({"incidents": inc, "seg": seg({"S1": 9.0, "S9": 9.0}, {"S1": 60.0})}, t0 + 5 * M)
        first = [(n.reason, sorted(a.rule_id for a in n.alerts)) for n in notes]
        await svc.close()
        svc = await start()
        late = await svc.on_window({"seg": seg({}, {})}, t0 + 16 * 3_600_000)  # 00:00 local, the next day
        await svc.close()
        return first, [(n.reason, sorted(a.labels["segment_id"] for a in n.alerts)) for n in late]

    assert asyncio.run(before()) == [("alert", ["incident"])]  # the jam on S9 is expected: no page
    first, late = asyncio.run(after())
    assert first == [("update", ["incident", "jam", "slowdown"])]  # the jam and slowdown on S1: the incident's
    assert ("digest", ["S9"]) in late
