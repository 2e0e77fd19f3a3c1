"""``/api/v1/plans``: timing plans per corridor (latest, history, time–space diagram) and priority requests.

Plans are read from the engine's plan feed (``<out>/signal_plans``, NTCIP 1202-style documents).
Priority requests (一键护航) are queued on a Redis stream (``citybrain:priority:requests``) for
the signal gateway, audited under the token; a controller token may only ask for the corridors
in its scope (empty scope: all).
"""
from __future__ import annotations

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
