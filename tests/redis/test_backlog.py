"""The delivery backlog per subscriber — queued, in flight, parked — on the cockpit API and on /metrics, with a
real Redis, a real receiver that refuses (HTTP 503) and a cockpit served by uvicorn."""
from __future__ import annotations

import asyncio
import json
import urllib.request

from brain.alerts.routing import Subscription
from dashboards.metrics import delivery_metrics_text
from streams.alerts.delivery import DeliveryConfig
from streams.alerts.service import AlertService
from tests.alerts.svc_helpers import M, seg_table, wait_until, webhook_sub, write_rules
from tests.dashboards.conftest import ServerThread, make_tokens


def get(url: str, token: str) -> dict:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    return json.loads(urllib.request.urlopen(req, timeout=10).read())


def test_backlog_on_api_and_metrics(redis_process, receivers, city, tmp_path):
    redis_url = redis_process().url
    rules = write_rules(tmp_path)
    busy, ok = receivers(), receivers()
    busy.mode = "error"  # 503: retried, stays in flight / queued
    subs = [Subscription.from_dict(webhook_sub("police", busy.url, department="交警支队")),
            Subscription.from_dict(webhook_sub("grid", ok.url, department="供电公司"))]

    async def engine():
        svc = await AlertService.start(redis_url, rules_path=rules, subscriptions=subs,
                                       delivery=DeliveryConfig(backoff_base_s=0.5, backoff_max_s=1.0, block_ms=20,
                                                               max_in_flight=2))
        await svc.on_window(seg_table({"S1": 2.5, "S2": 2.5, "S3": 2.5, "S4": 2.5}), 0)  # 4 groups per subscriber
        assert await wait_until(lambda: len(ok.received) == 4)
        await wait_until(lambda: svc.pool.workers["police"].in_flight == 2)
        mine = await svc.store.delivery_backlog()
        metrics = (await delivery_metrics_text(svc)).decode()
        tokens = await make_tokens(redis_url)
        return svc, mine, metrics, tokens

    loop = asyncio.new_event_loop()
    svc, mine, metrics, tokens = loop.run_until_complete(engine())
    server = ServerThread(city, tmp_path, redis_url)
    try:
        admin = get(f"{server.url}/api/v1/delivery/backlog", tokens["admin"])
        dept = get(f"{server.url}/api/v1/delivery/backlog", tokens["department"])
    finally:
        server.stop()
        loop.run_until_complete(svc.close())
        loop.close()
    assert mine["police"] == {"queued": 4, "in_flight": 2, "parked_retry": 0, "parked_refused": 0,
                              "oldest_queued_s": mine["police"]["oldest_queued_s"]}
    assert mine["grid"]["queued"] == 0 and mine["grid"]["in_flight"] == 0
    assert admin["subscriptions"]["police"]["queued"] == 4 and admin["subscriptions"]["police"]["in_flight"] == 2
    assert admin["total"]["queued"] == 4 and set(admin["subscriptions"]) == {"police", "grid"}
    assert set(dept["subscriptions"]) == {"police"}  # a department sees its own subscribers only
    assert 'citybrain_delivery_queued{subscription="police"} 4' in metrics
    assert 'citybrain_delivery_in_flight{subscription="police"} 2' in metrics
    assert 'citybrain_delivery_delivered_total{subscription="grid"} 4' in metrics
