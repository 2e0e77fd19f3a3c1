"""Delivery against real HTTP receivers on 127.0.0.1 and a real Redis."""
import asyncio
import time

import redis

from brain.alerts.cap import check_cap
from brain.alerts.routing import Subscription
from streams.alerts.delivery import DeliveryConfig
from streams.alerts.service import AlertService
from streams.alerts.store import AlertStore
from tests.alerts.svc_helpers import M, seg_table, wait_until, webhook_sub, write_rules

FAST = DeliveryConfig(max_attempts=30, backoff_base_s=0.05, backoff_max_s=0.4, block_ms=50)


async def start(redis_url, tmp_path, subs, cfg=FAST):
    return await AlertService.start(redis_url, rules_path=write_rules(tmp_path),
                                    subscriptions=[Subscription.from_dict(s) for s in subs], delivery=cfg)


def test_receiver_down_then_slow_then_back_loses_nothing(redis_url, receiver, tmp_path):
    receiver.slow_s = 1.5  # longer than the channel's 1 s timeout: the sender gives up and retries

    async def run():
        svc = await start(redis_url, tmp_path, [webhook_sub("police", receiver.url)])
        receiver.down()
        enqueued = []
        pattern = [{"S1": 2.5}, {"S1": 2.5, "S2": 2.5}, {"S2": 2.5}, {"S2": 2.5, "S3": 3.0}, {}, {"S4": 2.1}, {}]
        for i, cong in enumerate(pattern):
            enqueued += [n.key for n in await svc.on_window(seg_table(cong), i * M)]
            if i == 2:
                receiver.up()
                receiver.mode = "slow"
            await asyncio.sleep(0.15)
        await asyncio.sleep(1.0)
        receiver.mode = "ok"
        ok = await wait_until(lambda: set(receiver.keys()) >= set(enqueued), timeout_s=20)
        parked = await svc.store.parked()
        await svc.close()
        return enqueued, ok, parked

    enqueued, ok, parked = asyncio.run(run())
    assert ok and parked == []
    keys = receiver.keys()
    assert set(keys) == set(enqueued)  # nothing lost, nothing invented
    assert len(enqueued) == 8  # S1, S2, S3, S4: one firing and one resolve each
    # repeats are only of the same idempotency key; several requests run at once per receiver, but the
    # notifications of one group (key = sub:group:created:seq) arrive in order (first arrival of each key)
    first_seen = list(dict.fromkeys(keys))
    for group in {k.split(":")[1] for k in enqueued}:
        assert [k for k in first_seen if k.split(":")[1] == group] == [k for k in enqueued if k.split(":")[1] == group]
    assert receiver.attempts > len(enqueued)  # it really had to retry


def test_dead_receiver_does_not_block_another(redis_url, receiver_factory, tmp_path):
    dead, live = receiver_factory(), receiver_factory()
    dead.down()

    async def run():
        svc = await start(redis_url, tmp_path, [webhook_sub("dead", dead.url), webhook_sub("live", live.url)])
        t0 = time.monotonic()
        await svc.on_window(seg_table({"S1": 2.5, "S2": 2.5, "S3": 2.5}), 0)
        t_enq = time.monotonic() - t0
        assert await wait_until(lambda: len(live.received) == 3, timeout_s=5)
        t_live = time.monotonic() - t0
        await svc.close()
        return t_enq, t_live

    t_enq, t_live = asyncio.run(run())
    assert t_enq < 1.0 and t_live < 2.0


def test_permanent_refusal_is_parked_then_replayed(redis_url, receiver, tmp_path):
    async def run():
        cfg = DeliveryConfig(max_attempts=3, backoff_base_s=0.02, backoff_max_s=0.05, block_ms=50)
        svc = await start(redis_url, tmp_path, [webhook_sub("police", receiver.url)], cfg)
        receiver.mode = "error"  # 503 every time: retries exhausted -> parked
        (n,) = await svc.on_window(seg_table({"S1": 2.5}), 0)
        assert await wait_until(lambda: receiver.attempts == 3)
        cli = AlertStore.from_url(redis_url)
        assert await wait_until(lambda: True)
        await asyncio.sleep(0.2)
        parked = await cli.parked()
        assert [(p["key"], p["attempts"]) for p in parked] == [(n.key, 3)] and "503" in parked[0]["error"]
        receiver.mode = "ok"
        assert await cli.replay_parked(None, actor="ops") == 1
        assert await wait_until(lambda: receiver.keys() == [n.key])
        await asyncio.sleep(0.2)
        assert await cli.parked() == []
        actions = [(e["action"], e["new"]) for e in await cli.audit(50)]
        assert ("deliver", "parked") in actions and ("deliver", "replayed") in actions and ("deliver", "delivered") in actions
        await cli.close()
        await svc.close()

    asyncio.run(run())


def test_alertmanager_cap_and_redis_stream_channels(redis_url, receiver_factory, tmp_path):
    am, cap = receiver_factory(), receiver_factory()
    subs = [
        webhook_sub("am", am.url, channel={"type": "webhook", "url": am.url, "format": "alertmanager"}),
        webhook_sub("cap", cap.url, channel={"type": "cap", "url": cap.url}),
        webhook_sub("stream", "", channel={"type": "redis_stream", "stream": "ops:alerts"}),
    ]

    async def run():
        svc = await start(redis_url, tmp_path, subs)
        await svc.on_window(seg_table({"S1": 2.5}), 0)
        await svc.on_window(seg_table({}), M)
        assert await wait_until(lambda: len(am.received) == 2 and len(cap.received) == 2)
        await asyncio.sleep(0.3)
        await svc.close()

    asyncio.run(run())
    body = am.received[0]["body"]
    assert body["version"] == "4" and body["alerts"][0]["labels"]["alertname"] == "jam"
    assert [r["body"]["status"] for r in am.received] == ["firing", "resolved"]
    first, cancel = (r["body"] for r in cap.received)
    assert check_cap(first) == [] and check_cap(cancel) == []
    assert "<msgType>Alert</msgType>" in first and "<msgType>Cancel</msgType>" in cancel
    ident = first.split("<identifier>")[1].split("</identifier>")[0]
    assert ident in cancel.split("<references>")[1]  # the Cancel references the original alert
    rows = redis.Redis.from_url(redis_url).xrange("ops:alerts")
    assert len(rows) == 2 and all(b"idempotency_key" in f for _, f in rows)
