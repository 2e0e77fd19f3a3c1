"""``/api/v1/vitals``: the latest window and the history of each vital-sign table, and the city model.

Latest rows come from the engine in this process when there is one (the window that just closed),
else from the newest window in the Parquet history. History is paginated (``limit``/``offset``,
``next_offset`` in the answer) and filtered by district, cell, segment, sensor and time range.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from dashboards.api.auth import require
from dashboards.api.encoding import JSON
from dashboards.api.history import rows
from dashboards.api.respcache import cache_key, json_response

router = APIRouter(prefix="/api/v1", tags=["vitals"])


def _filters(district, cell, segment, sensor) -> dict:
    return {"district": district, "cell": cell, "segment": segment, "sensor": sensor}


@router.get("/vitals", summary="vital-sign tables with history")
async def tables(request: Request, _=Depends(require("read"))):
    ctx = request.app.state.ctx
    return {"tables": await run_in_threadpool(ctx.history.tables)}


@router.get("/vitals/{table}/latest", summary="rows of the newest closed window of one table")
async def latest(request: Request, table: str, district: str | None = None, cell: str | None = None,
                 segment: str | None = None, sensor: str | None = None, _=Depends(require("read"))):
    ctx = request.app.state.ctx
    key = cache_key(request)
    window = ctx.hub.latest_window
    live = ctx.hub.live_table(table)
    if live is not None:
        # the same window as the last answer: its bytes (rows are built and encoded once per window)
        body = ctx.responses.get(key, window)
        if body is None:
            frame = ctx.history.filtered(live, _filters(district, cell, segment, sensor))
            body = ctx.responses.put(key, window, {"table": table, "window_end_ms": int(window.window_end_ms),
                                                   "source": "engine", "rows": rows(frame)},
                                     current=lambda: ctx.hub.latest_window)
        return json_response(body)
    filters = _filters(district, cell, segment, sensor)
    # a cached answer (same files as last time) is served inline; reading new files goes to the thread pool
    out = ctx.history.cached_latest(table, filters)
    if out is not None:
        body = ctx.responses.get(key, out)  # the same answer object while the table's files are unchanged
        if body is None:
            body = ctx.responses.put(key, out, {**out, "source": "history"}, current=lambda: _history_version(ctx, table, filters))
        return json_response(body)
    out = await run_in_threadpool(ctx.history.latest, table, filters)
    return json_response(ctx.responses.put(key, out, {**out, "source": "history"},
                                           current=lambda: _history_version(ctx, table, filters)))


def _history_version(ctx, table: str, filters: dict):
    # an engine in this process answers from memory instead: the history answer is then not in force
    return None if ctx.hub.latest_window is not None else ctx.history.cached_latest(table, filters)


@router.get("/vitals/{table}/history", summary="past windows of one table (Parquet history), paginated")
async def history(request: Request, table: str, district: str | None = None, cell: str | None = None,
                  segment: str | None = None, sensor: str | None = None,
                  from_ms: int | None = Query(None, ge=0, description="first window end (Unix ms, inclusive)"),
                  to_ms: int | None = Query(None, ge=0, description="last window end (Unix ms, inclusive)"),
                  columns: str | None = Query(None, description="comma-separated columns to return"),
                  limit: int = Query(100, ge=1, le=5000), offset: int = Query(0, ge=0),
                  _=Depends(require("read"))):
    ctx = request.app.state.ctx
    cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    return JSON(await run_in_threadpool(ctx.history.query, table, _filters(district, cell, segment, sensor), from_ms,
                                        to_ms, limit, offset, cols))


@router.get("/city", summary="the city model: districts, streets, corridors, timezone")
async def city(request: Request, _=Depends(require("read"))):
    c = request.app.state.ctx.city
    return {"name": c.name, "timezone": c.timezone, "center": c.center, "admin_code": c.admin_code,
            "districts": [{"id": d.id, "name": d.name, "center": d.center} for d in c.districts],
            "streets": [{"id": s.id, "name": s.name, "district": s.district} for s in c.streets],
            "corridors": [{"id": k.id, "name": getattr(k, "name", k.id)} for k in c.corridors]}


@router.get("/city/segments", summary="road segments with their polylines (for the map)")
async def segments(request: Request, _=Depends(require("read"))):
    c = request.app.state.ctx.city
    return JSON({"rows": [{"id": s.id, "name": s.name, "district": s.district, "road_class": s.road_class,
                           "line": s.line} for s in c.segments]})


@router.get("/city/cells.geojson", summary="grid-cell polygons (the grid page's map)")
async def cells_geojson(request: Request, _=Depends(require("read"))):
    c = request.app.state.ctx.city
    district = {g.id: g.district for g in c.cells}
    feats = [{"type": "Feature", "properties": {"id": cid, "name": cid, "district": district.get(cid, "")},
              "geometry": {"type": "Polygon", "coordinates": rings}} for cid, rings in c.cell_polygons.items()]
    return JSON({"type": "FeatureCollection", "features": feats})


@router.get("/city/districts.geojson", summary="district polygons (the cockpit's map, no tile server)")
async def districts_geojson(request: Request, _=Depends(require("read"))):
    c = request.app.state.ctx.city
    names = {d.id: d.name for d in c.districts}
    feats = [{"type": "Feature", "properties": {"id": did, "name": names.get(did, did)},
              "geometry": {"type": "Polygon", "coordinates": rings}} for did, rings in c.district_polygons.items()]
    return JSON({"type": "FeatureCollection", "features": feats})
