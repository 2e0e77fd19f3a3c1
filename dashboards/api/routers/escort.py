"""``POST /api/v1/plans/escort``: 一键护航 along a route across several corridors, from the cockpit.

The route is the fastest path over the city's road graph from ``origin`` to ``destination`` (through
``via``), split into legs along corridors (:func:`brain.greenwave.escort.plan_route`,
:class:`~brain.greenwave.escort.Escort`); signals on no corridor are listed as ``unplanned`` (no
coordinated plan to bend). Each planned signal becomes one priority request on the same Redis stream
as ``POST /plans/{corridor}/priority``, with the leg's direction and the arrival predicted at
``speed_kmh`` from ``start_in_s`` (free flow); the controller hub of ``citybrain run`` turns each
into a signed green window and a restore after the vehicle's window, exactly as for a single request.
With ``"follow": true`` nothing is predicted once: the escort is handed to the hub's
:class:`~streams.controllers.follow.EscortFollower`, which follows the vehicle's reported positions
(``POST /api/v1/vehicles/positions``), re-times each signal ahead as the vehicle goes and releases each
one it has passed; ``DELETE /escort/{escort_id}`` ends it (:mod:`dashboards.api.routers.vehicles`).

``GET /escort/{escort_id}`` shows the route with each signal's state: unplanned, queued, what the hub
did (sent / not needed / denied / refused) and the controller's own signed reports (applied, restored);
``GET /escorts`` the newest escorts.

A controller token may escort only along the corridors in its scope (empty scope: all); the refusal
names the corridor outside it. The whole escort is audited under the token, each request carries the
``escort_id`` (``GET /plans/priority`` shows them).

Example (the requests an escort becomes, without a server):
    >>> from brain.city import demo_city_path, load_city
    >>> plan = escort_requests(load_city(demo_city_path()),
    ...                        EscortBody(origin="JF08", destination="QT03", vehicle_id="AMB-1", speed_kmh=50))
    >>> [(leg["corridor"], leg["signals"][0], leg["signals"][-1]) for leg in plan["legs"]]
    [('jiefang', 'JF08', 'JF10'), ('qiutao', 'QT01', 'QT03')]
    >>> [q["eta_s"] for q in plan["requests"]][:3]     # arrival at 50 km/h along the route, s
    [0.0, 42.0, 81.0]
"""
from __future__ import annotations

import json
import uuid

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from dashboards.api.auth import require
from dashboards.api.errors import ApiError
from dashboards.api.routers.alerts import audit
from dashboards.api.routers.plans import PRIORITY_STATUS, PRIORITY_STREAM, controller_reports
from dashboards.api.tokens import Identity, now_ms

router = APIRouter(prefix="/api/v1/plans", tags=["signal plans"])
MAX_VIA = 8
ESCORTS = "citybrain:priority:escorts"  # escort id -> its route, legs and request ids (JSON)
ESCORTS_BY_TIME = "citybrain:priority:escorts:by_time"
KEEP_ESCORTS = 1000


class EscortBody(BaseModel):
    origin: str = Field(..., min_length=1, max_length=64, description="intersection id where the escort starts")
    destination: str = Field(..., min_length=1, max_length=64, description="intersection id where it ends")
    via: list[str] = Field(default_factory=list, max_length=MAX_VIA, description="intersections to pass, in order")
    vehicle_id: str = Field(..., min_length=1, max_length=64)
    incident_id: str = Field("", max_length=64)
    kind: str = Field("emergency", pattern="^(emergency|bus)$")
    speed_kmh: float = Field(50.0, ge=10, le=120, description="expected travel speed (free flow), km/h")
    start_in_s: float = Field(0.0, ge=0, le=600, description="seconds until the vehicle is at the origin")
    follow: bool = Field(False, description="follow the vehicle's reported positions (POST /api/v1/vehicles/"
                                            "positions) and re-time each signal as it goes, instead of predicting "
                                            "every arrival once at speed_kmh")


_STATIC: dict[int, tuple[dict, dict]] = {}


def _static(city) -> tuple[dict, dict]:
    """Corridor specs and static plans of ``city``, made once per process (about a second per corridor).
    The legs of a route depend only on which corridors have a plan, not on its timing; the hub
    times each request against the plan in force when it consumes it."""
    from brain.greenwave.model import corridor_from_city
    from brain.greenwave.optimizer import optimize_corridor

    if id(city) not in _STATIC:
        specs = {c.id: corridor_from_city(city, c.id) for c in city.corridors}
        _STATIC[id(city)] = specs, {cid: optimize_corridor(s, valid_from_ms=0) for cid, s in specs.items()}
    return _STATIC[id(city)]


def escort_requests(city, body: EscortBody) -> dict:
    """The route, its legs and one priority request per planned signal (ETA from the route distance)."""
    from brain.greenwave.escort import Escort, plan_route

    known = {x.id for x in city.intersections}
    for field, ids in (("origin", [body.origin]), ("destination", [body.destination]), ("via", body.via)):
        bad = [i for i in ids if i not in known]
        if bad:
            raise ApiError(422, field, f"unknown intersection {bad[0]!r} (the city's intersections: {len(known)}, "
                                       f"e.g. {', '.join(sorted(known)[:4])})")
    if body.origin == body.destination and not body.via:
        raise ApiError(422, "destination", "the destination is the origin: nothing to escort")
    try:
        route = plan_route(city, body.origin, body.destination, body.via)
    except ValueError as exc:
        raise ApiError(422, "destination", str(exc)) from None
    specs, plans = _static(city)
    esc = Escort(route, specs, plans, body.vehicle_id, kind=body.kind)
    at = dict(zip(route.signals, route.signal_s_m.tolist()))
    v = body.speed_kmh / 3.6
    requests = [{"corridor": leg.corridor, "intersection": iid, "direction": leg.direction,
                 "eta_s": round(body.start_in_s + at[iid] / v, 1)} for leg in esc.legs for iid in leg.signals]
    return {"route": route.signals, "length_m": round(route.length_m, 1), "unplanned": esc.unplanned,
            "eta_s": {iid: round(body.start_in_s + s_m / v, 1) for iid, s_m in at.items()},
            "legs": [{"corridor": leg.corridor, "signals": leg.signals, "direction": leg.direction} for leg in esc.legs],
            "requests": requests}


@router.post("/escort", status_code=202, summary="escort a vehicle along a route across corridors (一键护航)")
async def escort(request: Request, body: EscortBody, who: Identity = Depends(require("priority"))):
    ctx = request.app.state.ctx
    plan = await run_in_threadpool(escort_requests, ctx.city, body)
    scope = who.scope_items()
    if who.role == "controller" and scope:
        outside = [leg["corridor"] for leg in plan["legs"] if leg["corridor"] not in scope]
        if outside:
            raise ApiError(403, "route", f"this token controls {', '.join(scope)}; the route crosses {outside[0]!r}")
    if not plan["requests"]:
        raise ApiError(422, "route", f"the route {' → '.join(plan['route'])} passes no coordinated corridor: "
                                     f"no signal plan to bend")
    escort_id = f"ESC-{uuid.uuid4().hex[:8]}"
    ts = now_ms()
    if body.follow:
        return await start_follow(ctx, who, body, plan, escort_id, ts)
    pipe = ctx.store.r.pipeline(transaction=True)
    for req in plan["requests"]:
        entry = {**req, "vehicle_id": body.vehicle_id, "incident_id": body.incident_id, "kind": body.kind,
                 "escort_id": escort_id, "requested_by": who.actor, "ts_ms": ts}
        pipe.xadd(PRIORITY_STREAM, {k: str(v) for k, v in entry.items()}, maxlen=100_000, approximate=True)
    ids = await pipe.execute()
    for req, eid in zip(plan["requests"], ids):
        req["id"] = eid.decode() if isinstance(eid, bytes) else eid
    record = _escort_record(who, body, plan, escort_id, ts)
    await _keep(ctx.store.r, record)
    await audit(ctx, who, "priority", escort_id, "escort-requested",
                f"{body.kind} {body.vehicle_id} {body.origin}→{body.destination} via {','.join(body.via) or '-'}: "
                f"{len(plan['requests'])} signal(s) on {len(plan['legs'])} leg(s)")
    return record


async def start_follow(ctx, who: Identity, body: EscortBody, plan: dict, escort_id: str, ts: int) -> dict:
    """Record a followed escort and hand it to the hub (nothing is requested before the first position)."""
    from streams.controllers.follow import FOLLOW

    record = _escort_record(who, body, plan, escort_id, ts, follow=True)
    spec = {"escort_id": escort_id, "origin": body.origin, "destination": body.destination, "via": body.via,
            "vehicle_id": body.vehicle_id, "kind": body.kind, "incident_id": body.incident_id}
    await _keep(ctx.store.r, record, also=(FOLLOW, spec))
    await audit(ctx, who, "priority", escort_id, "escort-requested",
                f"{body.kind} {body.vehicle_id} {body.origin}→{body.destination} via {','.join(body.via) or '-'}, "
                f"following its positions: {len(plan['requests'])} signal(s) on {len(plan['legs'])} leg(s)")
    return record


def _escort_record(who: Identity, body: EscortBody, plan: dict, escort_id: str, ts: int, follow: bool = False) -> dict:
    record = {"escort_id": escort_id, "vehicle_id": body.vehicle_id, "kind": body.kind, "speed_kmh": body.speed_kmh,
              "requested_by": who.actor, "ts_ms": ts}
    if follow:
        record["follow"] = True
    return {**record, **plan}


async def _keep(r, record: dict, also: tuple[str, dict] | None = None) -> None:
    """Store an escort (and ``also``: a hash and the value to put under its id) in one transaction, then trim."""
    escort_id = record["escort_id"]
    p = r.pipeline(transaction=True)
    p.hset(ESCORTS, escort_id, json.dumps(record, ensure_ascii=False))
    p.zadd(ESCORTS_BY_TIME, {escort_id: record["ts_ms"]})
    if also is not None:
        p.hset(also[0], escort_id, json.dumps(also[1], ensure_ascii=False))
    await p.execute()
    await _trim(r)


async def _trim(r) -> None:
    """Keep the newest ``KEEP_ESCORTS`` escorts (the requests themselves stay on the priority stream)."""
    old = await r.zrange(ESCORTS_BY_TIME, 0, -KEEP_ESCORTS - 1)
    if old:
        p = r.pipeline(transaction=True)
        p.hdel(ESCORTS, *old)
        p.zrem(ESCORTS_BY_TIME, *old)
        await p.execute()


def signal_states(record: dict, hub: dict[str, dict], reports: dict[str, list]) -> list[dict]:
    """One row per signal of the route, in route order: its corridor (``None``: unplanned), ETA, what the
    hub did with its request and what its controller reported; ``state`` sums it up: ``unplanned``,
    ``queued`` (the hub has not consumed it), the hub's ``sent``/``not needed``/``denied``/``refused``,
    or the controller's last report (``applied``, ``rejected``, ``restored``…).

    >>> rec = {"route": ["JF02", "X01"], "eta_s": {"JF02": 0.0, "X01": 9.5},
    ...        "requests": [{"corridor": "jiefang", "intersection": "JF02", "direction": "out", "id": "1-0"}]}
    >>> [(s["intersection"], s["state"]) for s in signal_states(rec, {}, {})]
    [('JF02', 'queued'), ('X01', 'unplanned')]
    >>> hub = {"1-0": {"status": "sent", "request_id": "AMB-JF02-1"}}
    >>> signal_states(rec, hub, {"AMB-JF02-1": [{"status": "applied"}]})[0]["state"]
    'applied'
    """
    by_signal = {q["intersection"]: q for q in record["requests"]}
    rows = []
    for iid in record["route"]:
        q = by_signal.get(iid)
        row = {"intersection": iid, "eta_s": record["eta_s"].get(iid), "corridor": q and q["corridor"],
               "direction": q and q["direction"], "request": q and q["id"], "hub": None, "controller": []}
        if q is None:
            row["state"] = "unplanned"
        else:
            row["hub"] = hub.get(q["id"]) or {"status": "queued"}
            row["controller"] = sorted(reports.get(row["hub"].get("request_id", ""), []), key=lambda x: x.get("ts_ms") or 0)
            row["state"] = row["controller"][-1]["status"] if row["controller"] else row["hub"]["status"]
        rows.append(row)
    return rows


@router.get("/escort/{escort_id}", summary="one escort: its route and each signal's state (hub, controller)")
async def escort_state(request: Request, escort_id: str, _=Depends(require("read"))):
    r = request.app.state.ctx.store.r
    raw = await r.hget(ESCORTS, escort_id)
    if raw is None:
        raise ApiError(404, "escort_id", f"no escort {escort_id!r} (the newest {KEEP_ESCORTS} are kept)")
    record = json.loads(raw)
    if record.get("follow"):
        from dashboards.api.routers.vehicles import followed_state

        return await followed_state(r, record)
    ids = [q["id"] for q in record["requests"]]
    hub = {i: json.loads(v) for i, v in zip(ids, await r.hmget(PRIORITY_STATUS, ids)) if v}
    reports = await controller_reports(r, 4000)
    return {**{k: v for k, v in record.items() if k != "eta_s"}, "signals": signal_states(record, hub, reports)}


@router.get("/escorts", summary="the newest escorts, newest first (route and who asked)")
async def escorts(request: Request, limit: int = Query(20, ge=1, le=KEEP_ESCORTS), _=Depends(require("read"))):
    r = request.app.state.ctx.store.r
    ids = await r.zrevrange(ESCORTS_BY_TIME, 0, limit - 1)
    rows = [json.loads(x) for x in (await r.hmget(ESCORTS, ids) if ids else []) if x]
    keys = ("escort_id", "vehicle_id", "kind", "requested_by", "ts_ms", "route", "unplanned", "follow")
    return {"rows": [{k: x.get(k) for k in keys} for x in rows]}
