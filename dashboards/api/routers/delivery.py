"""``/api/v1/delivery/backlog``: where each subscriber's notifications stand — queued, in flight, parked.

Read from Redis (the outboxes, their consumer group and the parked stream), so the cockpit answers the
same whether it runs inside ``citybrain run`` or on its own (``citybrain serve``). A department sees
its own subscriptions only; other roles with ``read`` see all. Counts only, never notification content.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from dashboards.api.auth import require
from dashboards.api.tokens import Identity

router = APIRouter(prefix="/api/v1/delivery", tags=["subscriptions"])


@router.get("/backlog", summary="per subscriber: queued, in flight, parked for retry, refused, age of the oldest queued")
async def backlog(request: Request, who: Identity = Depends(require("read"))):
    store = request.app.state.ctx.store
    rows = await store.delivery_backlog()
    if who.role == "department":
        subs = await store.subscriptions()
        rows = {sid: v for sid, v in rows.items() if sid in subs and subs[sid].department == who.scope}
    totals = {k: sum(v[k] for v in rows.values()) for k in ("queued", "in_flight", "parked_retry", "parked_refused")}
    return {"subscriptions": rows, "total": totals}
