"""``/api/v1/sensors`` and ``/api/v1/grid``: the sensor registry, freshness and dead-letter reasons;
grid cases (backlog, overdue, on-time closure by cell and category).

Dead-letter reasons per sensor are read from ``<out>/deadletter/deadletter-*.jsonl`` (each line
has ``reason_code`` and the ``raw`` record); records too broken to name a sensor count under ``"?"``.
"""
from __future__ import annotations

import json
from collections import Counter

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from dashboards.api.auth import require
from dashboards.api.encoding import JSON
from dashboards.api.errors import ApiError

router = APIRouter(prefix="/api/v1", tags=["sensors", "grid"])
MAX_DEADLETTER_FILES = 50


def dead_letter_reasons(folder, max_files: int = MAX_DEADLETTER_FILES) -> dict:
    by_reason: Counter = Counter()
    by_sensor: dict[str, Counter] = {}
    files = sorted(folder.glob("deadletter-*.jsonl"))[-max_files:] if folder.is_dir() else []
    for f in files:
        for line in f.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            reason = rec.get("reason_code", "?")
            sensor = "?"
            raw = rec.get("raw")
            try:
                sensor = str((json.loads(raw) if isinstance(raw, str) else raw or {}).get("sensor_id", "?"))
            except (ValueError, AttributeError):
                pass
            by_reason[reason] += 1
            by_sensor.setdefault(sensor, Counter())[reason] += 1
    return {"files": len(files), "by_reason": dict(by_reason.most_common()),
            "by_sensor": [{"sensor_id": s, "total": sum(c.values()), "reasons": dict(c)}
                          for s, c in sorted(by_sensor.items(), key=lambda kv: -sum(kv[1].values()))]}


@router.get("/sensors", summary="the sensor registry (一终端一标识), paginated, with completeness")
async def registry(request: Request, district: str | None = None, type: str | None = None,
                   limit: int = Query(200, ge=1, le=5000), offset: int = Query(0, ge=0), _=Depends(require("read"))):
    city = request.app.state.ctx.city
    fields = ("id", "type", "district", "cell", "segment", "owner", "unit", "lon", "lat", "valid_min", "valid_max")
    rows = [{f: getattr(s, f) for f in fields} for s in city.sensors
            if (district is None or s.district == district) and (type is None or s.type == type)]
    complete = sum(1 for r in rows if r["owner"] and r["unit"] and r["cell"])
    return JSON({"total": len(rows), "metadata_complete": complete, "offset": offset, "limit": limit,
                 "rows": rows[offset:offset + limit]})


@router.get("/sensors/freshness", summary="fresh / stale / silent sensors per district and family (newest window)")
async def freshness(request: Request, district: str | None = None, _=Depends(require("read"))):
    ctx = request.app.state.ctx
    return await run_in_threadpool(_latest_or_empty, ctx, "sensor_health", {"district": district})


@router.get("/sensors/deadletters", summary="dead-letter reasons, overall and by sensor")
async def deadletters(request: Request, limit: int = Query(100, ge=1, le=5000), _=Depends(require("read"))):
    ctx = request.app.state.ctx
    out = await run_in_threadpool(dead_letter_reasons, ctx.out_dir / "deadletter")
    out["by_sensor"] = out["by_sensor"][:limit]
    return out


@router.get("/grid/summary", summary="grid cases: backlog, overdue, on-time closure by cell and by category")
async def grid_summary(request: Request, district: str | None = None, _=Depends(require("read"))):
    ctx = request.app.state.ctx
    cells = await run_in_threadpool(_latest_or_empty, ctx, "grid_cell", {"district": district})
    cats = await run_in_threadpool(_latest_or_empty, ctx, "grid_category", {})
    rows = cells["rows"]
    return {"window_end_ms": cells["window_end_ms"],
            "totals": {k: sum((r.get(k) or 0) for r in rows) for k in ("open_backlog", "overdue", "new_last_hour",
                                                                    "closed_recent", "closed_on_time")},
            "by_cell": rows, "by_category": cats["rows"],
            "by_unit": None, "by_unit_note": "the history has no per-unit table yet"}


def _latest_or_empty(ctx, table: str, filters: dict) -> dict:
    # a young run has no such table yet (no case reported): an empty answer, not a 404
    if table not in ctx.history.tables():
        return {"table": table, "window_end_ms": None, "rows": []}
    return ctx.history.latest(table, filters)
