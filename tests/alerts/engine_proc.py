"""A minimal engine process for the restart test: feeds windows start..end-1 to an AlertService.

Usage: python engine_proc.py REDIS_URL WEBHOOK_URL RULES_DIR START END HOLD
Segment S1 is congested in windows [0, 8), S2 in [2, 12), S3 in [4, 6). With HOLD=1 the process
prints HOLD after the last window and keeps delivering until killed; otherwise it waits until
its outbox is empty and exits.
"""
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from brain.alerts.routing import Subscription  # noqa: E402
from streams.alerts.delivery import DeliveryConfig  # noqa: E402
from streams.alerts.service import AlertService  # noqa: E402
from tests.alerts.svc_helpers import M, seg_table, webhook_sub  # noqa: E402

SPANS = {"S1": (0, 8), "S2": (2, 12), "S3": (4, 6)}


def congestion(i: int) -> dict[str, float]:
    return {s: 2.5 for s, (a, b) in SPANS.items() if a <= i < b}


async def main(url, hook, rules, start, end, hold):
    sub = Subscription.from_dict(webhook_sub("police", hook, channel={"type": "webhook", "url": hook, "timeout_s": 3.0}))
    svc = await AlertService.start(url, rules_path=rules, subscriptions=[sub],
                                   delivery=DeliveryConfig(backoff_base_s=0.05, backoff_max_s=0.5, block_ms=50))
    for i in range(start, end):
        await svc.on_window(seg_table(congestion(i)), i * M)
        print(f"WINDOW {i}", flush=True)
    if hold:
        print("HOLD", flush=True)
        await asyncio.sleep(3600)
    while True:
        pending = await svc.store.r.xpending(svc.store.outbox("police"), "delivery")
        if (await svc.store.outbox_lengths()).get("police", 0) == 0 and pending["pending"] == 0:
            break
        await asyncio.sleep(0.05)
    await svc.close()
    print("DONE", flush=True)


if __name__ == "__main__":
    a = sys.argv[1:]
    asyncio.run(main(a[0], a[1], a[2], int(a[3]), int(a[4]), a[5] == "1"))
