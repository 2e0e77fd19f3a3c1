"""Redis faults don't stop the city: a real redis-server is SIGKILLed and started again while windows keep
coming; the alert service keeps evaluating, buffers its transactions (bounded), reconnects and applies
them in order. Compared with an uninterrupted peer fed the same windows: the same notifications reach the
receiver, none lost, none twice, and Redis ends up holding exactly the engine's memory."""
from __future__ import annotations

import asyncio
import random

import polars as pl
import pytest
import redis

from brain.alerts.routing import Subscription
from dashboards.metrics import alert_metrics_text
from streams.alerts.delivery import DeliveryConfig
from streams.alerts.service import AlertService
from tests.alerts.svc_helpers import M, RULES, wait_until, webhook_sub

SEGMENTS = [f"S{i:02d}" for i in range(24)]


def spans(seed: int, windows: int) -> dict[str, list[tuple[int, int]]]:
    """Random congestion spells per segment: many firings and resolutions over the run."""
    rng = random.Random(seed)
    out = {}
    for s in SEGMENTS:
        t, spells = rng.randrange(0, 6), []
        while t < windows:
            length = rng.randrange(1, 8)
            spells.append((t, t + length))
            t += length + rng.randrange(1, 10)
        out[s] = spells
    return out


def table(sp, i: int) -> dict[str, pl.DataFrame]:
    tti = [2.5 if any(a <= i < b for a, b in sp[s]) else 1.0 for s in SEGMENTS]
    return {"segment_traffic": pl.DataFrame({"segment_id": SEGMENTS, "district": ["D1"] * len(SEGMENTS), "tti": tti})}


async def start_service(url, rules, receiver, **kw) -> AlertService:
    sub = Subscription.from_dict(webhook_sub("police", receiver.url))
    return await AlertService.start(url, rules_path=rules, subscriptions=[sub],
                                    delivery=DeliveryConfig(backoff_base_s=0.02, backoff_max_s=0.2, block_ms=20), **kw)


async def drained(svc: AlertService, receiver, expected: int, timeout_s: float = 30.0) -> None:
    assert await svc.journal.flush(timeout_s), "buffered alert transactions never reached Redis"
    await wait_until(lambda: len(receiver.received) >= expected, timeout_s)
    await wait_until(lambda: not svc.pool.workers["police"].in_flight, timeout_s)
    await asyncio.sleep(0.3)  # anything extra would show up now


def redis_alerts(url) -> dict[str, bytes]:
    return {k.decode(): v for k, v in redis.Redis.from_url(url).hgetall("citybrain:alerts:alerts").items()}


@pytest.mark.parametrize("fsync", ["always", "everysec", "none"])
def test_redis_killed_and_restarted_under_load_nothing_lost_no_duplicate(fsync, redis_process, receivers, tmp_path):
    from tests.alerts.svc_helpers import write_rules

    seed = random.randrange(1 << 30)
    windows, kill_at, back_at = 90, 30, 55
    sp = spans(seed, windows)
    rules = write_rules(tmp_path)

    async def go():
        # the uninterrupted peer: same windows, its own Redis and receiver
        peer_redis, peer_rx = redis_process("always"), receivers()
        peer = await start_service(peer_redis.url, rules, peer_rx)
        for i in range(windows):
            await peer.on_window(table(sp, i), i * M)
        sent = {n.decode() for n in redis.Redis.from_url(peer_redis.url).zrange("citybrain:alerts:sent", 0, -1)}
        await drained(peer, peer_rx, len(sent))
        await peer.close()

        r, rx = redis_process(fsync), receivers()
        svc = await start_service(r.url, rules, rx, max_buffered_tx=8)
        notes_while_down = 0
        for i in range(windows):
            if i == kill_at:
                r.kill()
            if i == back_at:
                text = alert_metrics_text(svc).decode()
                assert "citybrain_alert_redis_up 0.0" in text
                assert f"citybrain_alert_tx_buffered {svc.journal.stats.buffered_tx}.0" in text
                assert 0 < svc.journal.stats.buffered_tx <= 8  # bounded: merged beyond 8
                r.start()
            notes = await svc.on_window(table(sp, i), i * M)  # never raises: the city keeps going
            if kill_at <= i < back_at:
                notes_while_down += len(notes)
            await asyncio.sleep(0.01)  # delivery runs alongside
        await drained(svc, rx, len(sent))
        await svc.on_checkpoint()  # reconcile: Redis = memory
        stats = svc.journal.stats
        memory = {fp: a for fp, a in svc.pipeline.state.alerts.items()}
        await svc.close()
        return sent, peer_rx.keys(), rx.keys(), stats, notes_while_down, memory, r

    sent, peer_keys, keys, stats, notes_while_down, memory, r = asyncio.run(go())
    assert notes_while_down > 0, "the outage must span notifications"
    assert stats.merged_tx_total > 0 and stats.reconnects_total >= 1 and stats.buffered_tx == 0
    assert sorted(set(keys)) == sorted(set(peer_keys)) == sorted(sent), f"seed {seed}: lost or extra notifications"
    dup = {k for k in keys if keys.count(k) > 1}
    assert not dup, f"seed {seed}: delivered twice: {sorted(dup)[:5]}"
    import msgspec

    held = redis_alerts(r.url)
    assert set(held) == set(memory)
    assert all(msgspec.json.decode(held[fp]) == msgspec.to_builtins(a) for fp, a in memory.items())
    if fsync == "none":
        assert stats.resyncs_total >= 1  # came back empty: rewritten from memory
