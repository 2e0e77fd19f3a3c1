"""Exact ``for:`` across restarts, differential: the same windows fed to one uninterrupted alert service and
to engines that stop mid-way (with Redis up, and during a Redis outage whose buffered transactions only the
checkpoint holds) give the same notifications at the same event times — a pending alert whose ``for:`` began
before the restart fires exactly ``for:`` after it began, and a pending alert dropped before the restart
leaves nothing in Redis that would let it fire early later."""
from __future__ import annotations

import asyncio
import random

import msgspec
import polars as pl
import redis

from brain.alerts.routing import Subscription
from streams.alerts.service import AlertService
from tests.alerts.svc_helpers import M, RULES, write_rules

FOR_RULES = RULES.replace("    severity: yellow\n", "    severity: yellow\n    for: 10m\n")
SEGS = ["S1", "S2", "S3", "S4"]
WINDOWS = 40


def congested(i: int, jitter: int) -> dict[str, float]:
    spans = {"S1": (3, 30), "S2": (2, 6), "S3": (8 + jitter, 12 + jitter), "S4": (21, 38)}
    spans_again = {"S2": (20, 35)}  # S2 again: must wait its full for: (a stale pending S2 would fire at once)
    return {s: 2.5 for s in SEGS if spans[s][0] <= i < spans[s][1] or (s in spans_again and spans_again[s][0] <= i < spans_again[s][1])}


def table(i: int, jitter: int) -> dict[str, pl.DataFrame]:
    c = congested(i, jitter)
    return {"segment_traffic": pl.DataFrame({"segment_id": SEGS, "district": ["D1"] * 4,
                                             "tti": [c.get(s, 1.0) for s in SEGS]})}


async def service(url, rules, prefix) -> AlertService:
    sub = Subscription.from_dict({"id": "ops", "department": "ops", "group_by": ["segment_id"], "group_wait": "0s",
                                  "group_interval": "0s", "channel": {"type": "log"}})
    return await AlertService.start(url, rules_path=rules, subscriptions=[sub], prefix=prefix, deliver=False)


def fired(url, prefix) -> list[tuple]:
    """(status, segment, event time) of every notification enqueued, from the notification log."""
    r = redis.Redis.from_url(url)
    rows = r.xrange(f"{prefix}:notifications")
    out = []
    for _, f in rows:  # summary "TTI 2.50 on S1": the segment is its last word
        out.append((f[b"status"].decode(), f[b"summary"].decode().split()[-1], int(f[b"ts_ms"])))
    return sorted(out, key=lambda t: (t[2], t[1], t[0]))


def pending_in_redis(url, prefix) -> dict[str, int]:
    r = redis.Redis.from_url(url)
    alerts = {k.decode(): msgspec.json.decode(v) for k, v in r.hgetall(f"{prefix}:alerts").items()}
    return {a["labels"]["segment_id"]: a["started_ms"] for a in alerts.values() if a["status"] == "pending"}


def test_for_survives_restarts_exactly(redis_process, tmp_path):
    rules = write_rules(tmp_path, FOR_RULES)
    jitter = random.randrange(0, 4)
    stop_at = random.randrange(9, 16)  # S1 (pending since 3, fires at 13) and S3 pending around the stop
    resume_at = stop_at - random.randrange(0, 4)  # the driver's checkpoint is older: some windows come again

    async def go():
        r = redis_process("always")
        # uninterrupted
        ref = await service(r.url, rules, "ref")
        for i in range(WINDOWS):
            await ref.on_window(table(i, jitter), i * M)
            if i == 7:  # S2 was dropped at 6: not pending in Redis either
                assert "S2" not in pending_in_redis(r.url, "ref")
        await ref.close()

        # stopped at `stop_at` (abandoned: no close, as a crash), resumed from an older checkpoint
        a = await service(r.url, rules, "cut")
        for i in range(stop_at):
            await a.on_window(table(i, jitter), i * M)
        await a.store.close()  # the process is gone: nothing more reaches Redis
        b = await service(r.url, rules, "cut")
        for i in range(resume_at, WINDOWS):
            await b.on_window(table(i, jitter), i * M)
        await b.close()

        # stopped during a Redis outage: the checkpoint alone holds the windows Redis never saw
        c = await service(r.url, rules, "out")
        c.journal.backoff_base_s = c.journal.backoff_max_s = 3600  # no reconnect before the "crash"
        down_at = stop_at - 4
        for i in range(stop_at):
            if i == down_at:
                r.kill()
            await c.on_window(table(i, jitter), i * M)
        assert c.journal.buffer, "the outage must leave transactions buffered"
        checkpoint = c.snapshot()  # the driver's checkpoint after window stop_at - 1
        r.start()
        d = await service(r.url, rules, "out")
        d.restore(checkpoint)
        for i in range(stop_at, WINDOWS):  # the driver resumes after its checkpoint
            await d.on_window(table(i, jitter), i * M)
        await d.close()
        return r

    r = asyncio.run(go())
    ref, cut, out = fired(r.url, "ref"), fired(r.url, "cut"), fired(r.url, "out")
    s1 = [t for t in ref if t[1] == "S1" and t[0] == "firing"]
    assert s1 == [("firing", "S1", 13 * M)]  # pending at 3, for: 10m
    s2 = [t for t in ref if t[1] == "S2" and t[0] == "firing"]
    assert s2 == [("firing", "S2", 30 * M)]  # pending again at 20: a full for:, not at once
    assert cut == ref, f"stop {stop_at}, resume {resume_at}, jitter {jitter}"
    assert out == ref, f"stop {stop_at} during an outage, jitter {jitter}"
