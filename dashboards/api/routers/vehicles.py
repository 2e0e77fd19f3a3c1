"""Vehicle positions for followed escorts (一键护航 re-timed as the vehicle goes), and ending an escort.

``POST /api/v1/vehicles/positions`` takes the AVL feed of escorted vehicles (a dispatch system, an
AVL gateway): one ``vehicle_position`` record or a JSON array of up to ``MAX_POSITIONS``, exactly
the records of the engine's schema (:class:`brain.schemas.VehiclePosition`), checked here (schema,
physically possible lon/lat/speed/heading, a clock within ``MAX_AHEAD_MS`` of the server's) and
appended to the feed the controller hub's :class:`~streams.controllers.follow.EscortFollower`
reads. Positions are telemetry: they are not audited one by one (the escort they drive is, when it
starts and ends). A refusal names the record and field (``records[3].lat``); nothing is appended
unless every record is valid.

``GET /api/v1/plans/escort/{id}`` of a followed escort (:func:`followed_state`) lists every route
signal in order with the last request the hub sent for it (predicted arrival, hold window, green
taken from cross streets, how often it was re-timed, ``released`` once passed) and the controller's
reports, plus the vehicle's last position and progress. ``DELETE /api/v1/plans/escort/{id}`` ends a
followed escort (every signal still held is restored), audited under the token.

Example (the check, without a server):
    >>> validate_positions([{"kind": "vehicle_position", "sensor_id": "AVL-1", "ts_ms": 1_780_000_000_000,
    ...     "vehicle_id": "AMB-1", "vehicle_type": "ambulance", "lon": 120.1, "lat": 30.2, "speed_kmh": 40,
    ...     "heading_deg": 90}], now_ms=1_780_000_000_000)[0]["vehicle_id"]
    'AMB-1'
    >>> try:
    ...     validate_positions([{"kind": "vehicle_position", "sensor_id": "AVL-1", "ts_ms": 1_780_000_000_000,
    ...         "vehicle_id": "AMB-1", "vehicle_type": "ambulance", "lon": 120.1, "lat": 95.0, "speed_kmh": 40,
    ...         "heading_deg": 90}], now_ms=1_780_000_000_000)
    ... except ApiError as e:
    ...     print(e.field)
    records[0].lat
"""
from __future__ import annotations

import json
import math

import msgspec
from fastapi import APIRouter, Depends, Request

from dashboards.api.auth import require
from dashboards.api.errors import ApiError
from dashboards.api.routers.alerts import audit
from dashboards.api.routers.escort import ESCORTS
from dashboards.api.routers.plans import controller_reports
from dashboards.api.tokens import Identity, now_ms

router = APIRouter(tags=["signal plans"])
MAX_POSITIONS = 1000
MAX_AHEAD_MS = 60_000  # a position from the future beyond this is a broken clock
RANGES = {"lon": (-180.0, 180.0), "lat": (-90.0, 90.0), "speed_kmh": (0.0, 200.0), "heading_deg": (0.0, 360.0)}


def validate_positions(records: list, now_ms: int) -> list[dict]:
    """The records as plain dicts, or an :class:`ApiError` naming the first bad record and field."""
    from brain.schemas import VehiclePosition

    if not isinstance(records, list) or not records:
        raise ApiError(422, "records", "send one vehicle_position record or a non-empty JSON array of them")
    if len(records) > MAX_POSITIONS:
        raise ApiError(422, "records", f"{len(records)} records in one request; at most {MAX_POSITIONS}")
    out = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict) or rec.get("kind") != "vehicle_position":
            raise ApiError(422, f"records[{i}].kind", "must be a vehicle_position record ({\"kind\": \"vehicle_position\", ...})")
        try:
            pos = msgspec.convert(rec, VehiclePosition, strict=False)
        except msgspec.ValidationError as exc:
            where = str(exc).rsplit("at `$.", 1)
            field = where[1].rstrip("`") if len(where) == 2 else "record"
            raise ApiError(422, f"records[{i}].{field}", str(exc)) from None
        for f, (lo, hi) in RANGES.items():
            v = getattr(pos, f)
            if not (math.isfinite(v) and lo <= v <= hi):
                raise ApiError(422, f"records[{i}].{f}", f"{v} is outside {lo}..{hi}")
        if pos.ts_ms > now_ms + MAX_AHEAD_MS:
            raise ApiError(422, f"records[{i}].ts_ms", f"{pos.ts_ms} is more than {MAX_AHEAD_MS // 1000} s ahead of "
                                                       f"the server's clock ({now_ms})")
        out.append({"kind": "vehicle_position", **msgspec.to_builtins(pos)})
    return out


@router.post("/api/v1/vehicles/positions", status_code=202,
             summary="AVL positions of escorted vehicles (one vehicle_position record or an array)")
async def positions(request: Request, _who: Identity = Depends(require("priority"))):
    from streams.controllers.follow import POSITIONS, POSITIONS_MAXLEN

    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise ApiError(422, "body", f"not JSON: {exc}") from None
    recs = validate_positions(body if isinstance(body, list) else [body], now_ms())
    p = request.app.state.ctx.store.r.pipeline(transaction=False)
    for rec in recs:
        p.xadd(POSITIONS, {"line": json.dumps(rec, separators=(",", ":"))}, maxlen=POSITIONS_MAXLEN, approximate=True)
    await p.execute()
    return {"accepted": len(recs)}


@router.delete("/api/v1/plans/escort/{escort_id}", summary="end a followed escort: every signal still held is restored")
async def cancel(request: Request, escort_id: str, who: Identity = Depends(require("priority"))):
    from streams.controllers.follow import CANCEL, FOLLOW

    ctx = request.app.state.ctx
    r = ctx.store.r
    raw = await r.hget(ESCORTS, escort_id)
    if raw is None:
        raise ApiError(404, "escort_id", f"no escort {escort_id!r}")
    record = json.loads(raw)
    scope = who.scope_items()
    if who.role == "controller" and scope:
        outside = [leg["corridor"] for leg in record["legs"] if leg["corridor"] not in scope]
        if outside:
            raise ApiError(403, "escort_id", f"this token controls {', '.join(scope)}; the escort crosses {outside[0]!r}")
    if not record.get("follow") or not await r.hexists(FOLLOW, escort_id):
        raise ApiError(409, "escort_id", f"escort {escort_id!r} is not being followed (not started with follow, "
                                         f"or already ended)")
    await r.rpush(CANCEL, escort_id)
    await audit(ctx, who, "priority", escort_id, "escort-cancelled", f"{record['vehicle_id']}: every held signal restored")
    return {"escort_id": escort_id, "status": "cancelling"}


async def followed_state(r, record: dict) -> dict:
    """``GET /escort/{id}`` of a followed escort: each route signal's last request and the controller's reports."""
    from streams.controllers.follow import state_key

    raw = await r.hgetall(state_key(record["escort_id"]))
    st = {(k.decode() if isinstance(k, bytes) else k): json.loads(v) for k, v in raw.items()}
    vehicle = st.pop("_vehicle", None) or {"status": "waiting"}
    planned = {q["intersection"]: q for q in record["requests"]}
    reports = await controller_reports(r, 4000) if st else {}
    rows = []
    for iid in record["route"]:
        q, s = planned.get(iid), st.get(iid)
        row = {"intersection": iid, "corridor": q and q["corridor"], "direction": q and q["direction"],
               "eta_ms": s and s["eta_ms"], "hub": s, "request": s and s["request_id"], "controller": []}
        if q is None:
            row["state"] = "unplanned"
        elif s is None:
            row["state"] = "waiting"  # not yet within the escort's horizon (or no position yet)
        else:
            row["controller"] = sorted((c for rid in s.get("ids", [s["request_id"]]) for c in reports.get(rid, [])),
                                       key=lambda x: x.get("ts_ms") or 0)
            row["state"] = s["state"]
        rows.append(row)
    return {**{k: v for k, v in record.items() if k != "eta_s"}, "vehicle": vehicle, "signals": rows}
