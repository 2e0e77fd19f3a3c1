"""``/api/v1/plans``: timing plans per corridor (latest, history, time–space diagram) and priority requests.

Plans are read from the engine's plan feed (``<out>/signal_plans``, NTCIP 1202-style documents).
Priority requests (一键护航) are queued on a Redis stream (``citybrain:priority:requests``), audited
under the token; a controller token may only ask for the corridors in its scope (empty scope: all).
The controller hub of ``citybrain run`` (:mod:`streams.controllers.centre`) consumes them: each
becomes a signed green window for its controller; ``GET /priority`` shows each request with what
the hub did and the controller's own reports, ``GET /controllers`` each controller's plan,
acknowledgement and reported status.
"""
from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from dashboards.api.auth import require
from dashboards.api.diagram import time_space_svg
from dashboards.api.errors import ApiError
from dashboards.api.tokens import Identity, now_ms
from dashboards.api.routers.alerts import audit

router = APIRouter(prefix="/api/v1/plans", tags=["signal plans"])
PRIORITY_STREAM = "citybrain:priority:requests"


def _corridor(ctx, corridor_id: str):
    for c in ctx.city.corridors:
        if c.id == corridor_id:
            return c
    raise ApiError(404, "corridor", f"no corridor {corridor_id!r}; known: {', '.join(c.id for c in ctx.city.corridors)}")


@router.get("", summary="the plan in force per corridor")
async def latest(request: Request, _=Depends(require("read"))):
    ctx = request.app.state.ctx
    return {"rows": [{"corridor": c.id, "name": c.name, "plan": ctx.plans.latest(c.id)} for c in ctx.city.corridors]}


HUB = "citybrain:controllers"  # streams.controllers.hub.ControllerHub's prefix in the engine's Redis
PRIORITY_STATUS = "citybrain:priority:status"  # streams.controllers.centre: what became of each request


def _text(x):
    return x.decode() if isinstance(x, bytes) else x


async def controller_reports(r, count: int) -> dict[str, list[dict]]:
    """The controllers' own signed reports (applied, rejected, restored) per hub request id, oldest first,
    from the last ``count`` lines of the hub's priority log."""
    reports: dict[str, list] = {}
    for _, f in await r.xrevrange(f"{HUB}:priority_log", count=count):
        e = json.loads(f[b"line"])
        if e.get("event") == "controller":
            rid = e["request_id"].removesuffix("-restore")
            reports.setdefault(rid, []).append({k: e.get(k) for k in ("status", "ts_ms", "held_from_ms", "held_to_ms", "reason")})
    return reports


@router.get("/priority", summary="priority requests (一键护航): what was asked, what the hub sent, what each controller did")
async def priority_requests(request: Request, limit: int = Query(50, ge=1, le=1000), _=Depends(require("read"))):
    r = request.app.state.ctx.store.r
    asked = await r.xrevrange(PRIORITY_STREAM, count=limit)
    ids = [_text(eid) for eid, _f in asked]
    states = await r.hmget(PRIORITY_STATUS, ids) if ids else []
    reports = await controller_reports(r, 20 * limit)
    rows = []
    for (eid, fields), st in zip(asked, states):
        req = {_text(k): _text(v) for k, v in fields.items()}
        hub = json.loads(st) if st else {"status": "queued"}
        rows.append({"id": _text(eid), **req, "hub": hub,
                     "controller": sorted(reports.get(hub.get("request_id", ""), []), key=lambda x: x["ts_ms"])})
    return {"rows": rows, "consumer": "running" if await r.exists("citybrain:priority:cursor") or any(
        s for s in states) else "no hub has consumed requests yet (citybrain run starts one unless --no-controllers)"}


@router.get("/controllers", summary="per signal controller: plan sent, acknowledged or not, what it reports running")
async def controllers(request: Request, _=Depends(require("read"))):
    ctx = request.app.state.ctx
    r = ctx.store.r
    p = r.pipeline(transaction=False)
    # the reported state shown is the engine's validated signal_status record (streams.controllers.status_ingest)
    for name in ("plan", "acked", "rejected", "signal_status"):
        p.hgetall(f"{HUB}:{name}")
    p.zrange(f"{HUB}:pending", 0, -1, withscores=True)
    p.hgetall(f"{HUB}:signal_status:refused")
    p.hgetall(f"{HUB}:signal_status:counts")
    plans, acked, rejected, status, pending, refused, counts = await p.execute()
    dec = {k: {_text(i): json.loads(v) for i, v in h.items()} for k, h in
           (("plan", plans), ("acked", acked), ("rejected", rejected), ("status", status))}
    due = {_text(i): int(s) for i, s in pending}
    refused = {_text(i): _text(v) for i, v in refused.items()}
    rows = []
    for c in ctx.city.corridors:
        for iid in c.intersections:
            plan, ack, rej, st = (dec[k].get(iid) for k in ("plan", "acked", "rejected", "status"))
            rows.append({"corridor": c.id, "intersection": iid, "plan_id": plan and plan["plan_id"],
                         "seq": plan and plan["seq"], "ack_by_ms": due.get(iid),
                         "acknowledged": bool(ack and plan and ack["plan_id"] == plan["plan_id"] and iid not in due),
                         "rejected": rej and rej.get("reason", "rejected"),
                         "running_plan_id": st and st.get("plan_id"), "phase": st and st.get("phase"),
                         "phase_time_s": st and st.get("phase_time_s"), "pattern": st and st.get("pattern"),
                         "mode": st and st.get("mode"), "detector_faults": st and st.get("detector_faults"),
                         "status_ts_ms": st and st.get("ts_ms"), "status_refused": refused.get(iid)})
    return {"rows": rows, "hub": bool(plans),
            "signal_status_records": {_text(k): int(v) for k, v in counts.items()}}


@router.get("/{corridor}/history", summary="past plans of one corridor, newest first")
async def history(request: Request, corridor: str, limit: int = Query(20, ge=1, le=1000), _=Depends(require("read"))):
    ctx = request.app.state.ctx
    _corridor(ctx, corridor)
    return {"corridor": corridor, "rows": ctx.plans.history(corridor, limit)}


@router.get("/{corridor}/diagram.svg", summary="time–space diagram of the plan in force (SVG)",
            response_class=Response)
async def diagram(request: Request, corridor: str, _=Depends(require("read"))):
    ctx = request.app.state.ctx
    c = _corridor(ctx, corridor)
    plan = ctx.plans.latest(corridor)
    if plan is None:
        raise ApiError(404, "corridor", f"no plan published yet for {corridor!r}")
    return Response(time_space_svg(c, plan), media_type="image/svg+xml")


class PriorityBody(BaseModel):
    intersection: str = Field(..., description="intersection id on the corridor")
    eta_s: float = Field(..., ge=0, le=3600, description="seconds until the vehicle arrives")
    vehicle_id: str = Field(..., min_length=1, max_length=64)
    incident_id: str = Field("", max_length=64)
    kind: str = Field("emergency", pattern="^(emergency|bus)$")
    direction: str = Field("out", pattern="^(out|in)$", description="travel direction along the corridor")


@router.post("/{corridor}/priority", status_code=202, summary="ask for green for a vehicle (一键护航)")
async def priority(request: Request, corridor: str, body: PriorityBody, who: Identity = Depends(require("priority"))):
    ctx = request.app.state.ctx
    c = _corridor(ctx, corridor)
    scope = who.scope_items()
    if who.role == "controller" and scope and corridor not in scope:
        raise ApiError(403, "corridor", f"this token controls {', '.join(scope)}, not {corridor!r}")
    if body.intersection not in c.intersections:
        raise ApiError(422, "intersection", f"{body.intersection!r} is not on corridor {corridor!r} ({', '.join(c.intersections)})")
    req = {"corridor": corridor, **body.model_dump(), "requested_by": who.actor, "ts_ms": now_ms()}
    entry = await ctx.store.r.xadd(PRIORITY_STREAM, {k: str(v) for k, v in req.items()}, maxlen=100_000, approximate=True)
    await audit(ctx, who, "priority", f"{corridor}/{body.intersection}", "requested",
                f"{body.kind} {body.vehicle_id} eta {body.eta_s:g}s")
    return {**req, "id": entry.decode() if isinstance(entry, bytes) else entry}
