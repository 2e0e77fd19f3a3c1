"""A run ends when its notifications are delivered: the alert service drains its outboxes, bounded in
time, and says what is still queued (real Redis, real HTTP receivers on 127.0.0.1)."""
import asyncio

from brain.alerts.routing import Subscription
from streams.alerts.delivery import DeliveryConfig
from streams.alerts.service import AlertService
from tests.alerts.svc_helpers import M, seg_table, webhook_sub, write_rules

FAST = DeliveryConfig(max_attempts=50, backoff_base_s=0.05, backoff_max_s=0.2, block_ms=50)


async def _start(redis_url, tmp_path, subs):
    return await AlertService.start(redis_url, rules_path=write_rules(tmp_path), delivery=FAST,
                                    subscriptions=[Subscription.from_dict(s) for s in subs])


def test_drain_waits_for_a_slow_receiver_then_everything_is_delivered(redis_url, receiver, tmp_path):
    receiver.mode = "slow"
    receiver.slow_s = 0.3  # within the channel's 1 s timeout: slow, not failing

    async def run():
        svc = await _start(redis_url, tmp_path, [webhook_sub("police", receiver.url)])
        keys = []
        for i, cong in enumerate([{"S1": 2.5, "S2": 2.5, "S3": 2.5}, {"S4": 2.5}, {}]):
            keys += [n.key for n in await svc.on_window(seg_table(cong), i * M)]
        seen = []
        left = await svc.drain(20.0, seen.append, poll_s=0.05)
        delivered = set(receiver.keys())
        await svc.close()
        return keys, left, seen, delivered

    keys, left, seen, delivered = asyncio.run(run())
    assert left == {}
    assert set(keys) <= delivered  # the run would exit with every page sent
    assert seen[0] > 0 and seen[-1] == 0  # progress was reported, down to nothing queued


def test_drain_is_bounded_and_names_what_is_still_queued(redis_url, receiver, tmp_path):
    receiver.down()

    async def run():
        svc = await _start(redis_url, tmp_path, [webhook_sub("police", receiver.url)])
        keys = [n.key for n in await svc.on_window(seg_table({"S1": 2.5, "S2": 2.5}), 0)]
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        left = await svc.drain(0.5, poll_s=0.05)
        waited = loop.time() - t0
        where = svc.outbox_key("police")
        await svc.close()
        return keys, left, waited, where

    keys, left, waited, where = asyncio.run(run())
    assert left == {"police": len(keys)} and len(keys) == 2
    assert waited < 3.0
    assert where.endswith(":outbox:police")
