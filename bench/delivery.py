"""Delivery under receiver faults: this code against the delivery module before issue 16, same run.

The "before" peer is the previous ``streams/alerts/delivery.py`` read from git (``--before REV``,
default the commit before durable delivery) and driven through the same AlertService, Redis and
receivers. Time is scaled by ``--scale`` (1/30: a 2-minute outage lasts 4 s, a 6 s receiver 0.2 s);
every interval of both policies (backoff, timeouts, retry period, probe) is scaled alike.

    .venv/bin/python bench/delivery.py            # ~1-2 min
"""
from __future__ import annotations

import argparse
import asyncio
import importlib.util
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from brain.alerts.routing import Subscription  # noqa: E402
from streams.alerts import delivery as new_delivery  # noqa: E402
from streams.alerts.service import AlertService  # noqa: E402
from streams.redis_server import EmbeddedRedis  # noqa: E402
from tests.alerts.conftest import Receiver  # noqa: E402
from tests.alerts.svc_helpers import M, write_rules  # noqa: E402

SEGMENTS = [f"S{i}" for i in range(1, 25)]


def old_module(rev: str):
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:streams/alerts/delivery.py"], check=True,
                         capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "delivery_before.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("delivery_before", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def table(flip: int, n: int) -> dict[str, pl.DataFrame]:
    ids = SEGMENTS[:n]
    return {"segment_traffic": pl.DataFrame({"segment_id": ids, "district": ["D1"] * n,
                                             "tti": [2.5 if flip % 2 == 0 else 1.0] * n})}


def policy(which: str, mod, k: float):
    if which == "before":  # its defaults (8 tries, 0.5..60 s), scaled
        return mod.DeliveryConfig(max_attempts=8, backoff_base_s=0.5 * k, backoff_max_s=60 * k, block_ms=50)
    return mod.DeliveryConfig(backoff_base_s=0.5 * k, backoff_max_s=300 * k, block_ms=50, retry_for_s=6 * 3600 * k,
                              probe_every_s=60 * k, timeout_max_s=120 * k)


async def scenario(name: str, which: str, mod, k: float, redis_url: str, tmp: Path, timeout_s: float) -> dict:
    import redis as redis_sync

    redis_sync.Redis.from_url(redis_url).flushdb()
    rec = Receiver()
    sub = Subscription.from_dict({"id": "ops", "department": "traffic police", "group_by": ["segment_id"],
                                  "group_wait": "0s", "group_interval": "0s",
                                  "channel": {"type": "webhook", "url": rec.url, "timeout_s": timeout_s * k}})
    svc = await AlertService.start(redis_url, rules_path=write_rules(tmp), subscriptions=[sub], deliver=False)
    svc.pool = mod.DeliveryPool(svc.store, policy(which, mod, k))
    await svc.pool.sync(svc.pipeline.state.subscriptions)
    sent_at: dict[str, float] = {}
    t0 = time.monotonic()
    enq: list[str] = []
    try:
        if name == "outage 2 min":
            rec.down()
            for f in range(2):
                for n in await svc.on_window(table(f, 12), (f + 1) * M):
                    enq.append(n.key)
                    sent_at[n.key] = time.monotonic()
            await asyncio.sleep(120 * k)
            await asyncio.to_thread(rec.up)
            horizon = 600 * k
        elif name == "slow 6 s/request":
            rec.mode, rec.slow_s = "slow", 6 * k
            for f in range(2):
                for n in await svc.on_window(table(f, 12), (f + 1) * M):
                    enq.append(n.key)
                    sent_at[n.key] = time.monotonic()
            horizon = 600 * k
        else:  # "5 s/request, steady flow": a notification burst every simulated 30 s for 6 min
            rec.mode, rec.slow_s = "slow", 5 * k
            for f in range(12):
                for n in await svc.on_window(table(f, 16), (f + 1) * M):
                    enq.append(n.key)
                    sent_at[n.key] = time.monotonic()
                await asyncio.sleep(30 * k)
            horizon = 0.0
        end_input = time.monotonic()
        queued_at_end = sum((await svc.store.outbox_lengths()).values())
        deadline = time.monotonic() + horizon
        while time.monotonic() < deadline and not set(rec.keys()) >= set(enq):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        parked = await svc.store.parked()
        first = {}
        for r in rec.received:
            first.setdefault(r["key"], r["t"])
        lat = [(first[key] - sent_at[key]) / k for key in enq if key in first]
        counts = Counter(rec.keys())
        return {"scenario": name, "policy": which, "notifications": len(enq),
                "delivered": sum(1 for key in enq if key in counts),
                "parked": len(parked), "duplicates": sum(counts.values()) - len(counts),
                "queued_at_end_of_input": queued_at_end,
                "max_latency_s": round(max(lat), 1) if lat else None,
                "wall_s": round(end_input - t0, 1)}
    finally:
        await svc.close()
        rec.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1 / 30)
    ap.add_argument("--before", default="769fdf2~1", help="git revision of the 'before' delivery module")
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args(argv)
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    random.seed(seed)  # the jitter of both policies
    before = old_module(a.before)
    tmp = Path(tempfile.mkdtemp())
    server = EmbeddedRedis(tmp / "redis")
    url = server.start()
    rows = []
    try:
        for name, timeout_before, timeout_after in [("outage 2 min", 5, 30), ("slow 6 s/request", 5, 30),
                                                    ("slow 6 s/request", 5, 5), ("5 s/request, steady flow", 5, 30)]:
            for which, mod, to in (("before", before, timeout_before), ("after", new_delivery, timeout_after)):
                if which == "before" and rows and rows[-1]["scenario"] == name and name.startswith("slow") \
                        and timeout_after == 5:
                    continue  # the before peer of this row is the one above (same timeout)
                r = asyncio.run(scenario(name, which, mod, a.scale, url, tmp, to))
                r["timeout_s"] = to
                rows.append(r)
                print(r, flush=True)
    finally:
        server.stop()
    print(f"\nseed {seed}, time scale {a.scale:.4f} (figures below in unscaled seconds)")
    cols = ["scenario", "policy", "timeout_s", "notifications", "delivered", "parked", "duplicates",
            "queued_at_end_of_input", "max_latency_s"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
