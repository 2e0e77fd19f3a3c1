"""``/api/v1/sensors`` and ``/api/v1/grid``: the sensor registry, freshness and dead-letter reasons;
grid cases (backlog, overdue, on-time closure by cell, category and responsible unit).

Per-sensor freshness (the sensors page's map) and cases by unit come from the tables of
:class:`streams.cockpit_tables.CockpitTables` (``sensor_freshness``, ``grid_unit``): the in-process
engine's newest window when there is one, else the newest window of the Parquet history.

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
from dashboards.api.history import rows

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


@router.get("/sensors/freshness/map", summary="every sensor with its position and the age of its last reading")
async def freshness_map(request: Request, district: str | None = None, type: str | None = None,
                        _=Depends(require("read"))):
    ctx = request.app.state.ctx
    out = await run_in_threadpool(_latest_or_empty, ctx, "sensor_freshness", {"district": district})
    dead = await run_in_threadpool(dead_letter_reasons, ctx.out_dir / "deadletter")
    dead_by = {d["sensor_id"]: d["total"] for d in dead["by_sensor"]}
    complete = {s.id: bool(s.owner and s.unit and s.cell) for s in ctx.city.sensors}
    found = [{**r, "dead_letters": dead_by.get(r["sensor_id"], 0), "metadata_complete": complete.get(r["sensor_id"], False)}
             for r in out["rows"] if type is None or r.get("type") == type]
    counts = Counter(r["freshness"] for r in found)
    return JSON({"window_end_ms": out["window_end_ms"], "source": out.get("source", "history"),
                 "counts": {k: counts.get(k, 0) for k in ("fresh", "stale", "silent", "never")}, "rows": found})


UNIT_SUMS = ("open_backlog", "overdue", "new_last_hour", "closed_recent", "closed_on_time")


def by_unit(rows: list[dict]) -> list[dict]:
    """Per responsible unit: the sums over its categories and the on-time rate of those sums, worst
    backlog first.

    >>> by_unit([{"unit": "a", "category": "x", "open_backlog": 2, "overdue": 1, "closed_recent": 2, "closed_on_time": 1},
    ...          {"unit": "a", "category": "y", "open_backlog": 1, "overdue": 0, "closed_recent": 0, "closed_on_time": 0}])
    [{'unit': 'a', 'open_backlog': 3, 'overdue': 1, 'new_last_hour': 0, 'closed_recent': 2, 'closed_on_time': 1, 'on_time_closure_rate': 0.5, 'categories': 2}]
    """
    units: dict[str, dict] = {}
    for r in rows:
        u = units.setdefault(r.get("unit") or "", {"unit": r.get("unit") or "", **{k: 0 for k in UNIT_SUMS}, "categories": 0})
        for k in UNIT_SUMS:
            u[k] += int(r.get(k) or 0)
        u["categories"] += 1
    out = []
    for u in units.values():
        rate = u["closed_on_time"] / u["closed_recent"] if u["closed_recent"] else None
        cats = u.pop("categories")
        out.append({**u, "on_time_closure_rate": rate, "categories": cats})
    return sorted(out, key=lambda u: (-u["open_backlog"], -u["overdue"], u["unit"]))


@router.get("/grid/summary", summary="grid cases: backlog, overdue, on-time closure by cell, category and responsible unit")
async def grid_summary(request: Request, district: str | None = None, unit: str | None = None,
                       _=Depends(require("read"))):
    ctx = request.app.state.ctx
    cells = await run_in_threadpool(_latest_or_empty, ctx, "grid_cell", {"district": district})
    cats = await run_in_threadpool(_latest_or_empty, ctx, "grid_category", {})
    units = await run_in_threadpool(_latest_or_empty, ctx, "grid_unit", {})
    unit_rows = [r for r in units["rows"] if unit is None or r.get("unit") == unit]
    return JSON({"window_end_ms": cells["window_end_ms"],
                 "totals": {k: sum((r.get(k) or 0) for r in cells["rows"]) for k in UNIT_SUMS},
                 "by_cell": cells["rows"], "by_category": cats["rows"],
                 "by_unit": by_unit(unit_rows), "by_unit_category": unit_rows})


def _latest_or_empty(ctx, table: str, filters: dict) -> dict:
    live = ctx.hub.live_table(table)  # an engine in this process: its newest window, no file read
    if live is not None:
        return {"table": table, "window_end_ms": int(ctx.hub.latest_window.window_end_ms), "source": "engine",
                "rows": rows(ctx.history.filtered(live, filters))}
    # a young run has no such table yet (no case reported): an empty answer, not a 404
    if table not in ctx.history.tables():
        return {"table": table, "window_end_ms": None, "rows": []}
    return ctx.history.latest(table, filters)
