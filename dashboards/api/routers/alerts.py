"""``/api/v1/alerts``, ``/incidents``, ``/silences``, ``/audit``: read alert state, acknowledge, silence.

The engine owns alert state: an acknowledgement is queued in Redis and applied by the engine
within a second, under the identity of the token that asked (never a name the caller types).
Silences are limited: at most ``silence_max_h`` long, and at least one matcher must be a concrete
label (``name=value`` with a non-empty value), so no one can mute the whole city with ``rule=~.*``.
The audit log is append-only through the API: there is no route that edits or deletes it.
"""
from __future__ import annotations

import asyncio
import time

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from brain.alerts.cap import alert_to_cap
from brain.alerts.model import Alert, severity_colour
from brain.alerts.sdm import alert_to_sdm
from brain.alerts.silences import Silence
from brain.alerts.state import AuditEntry
from dashboards.api.auth import require
from dashboards.api.encoding import JSON
from dashboards.api.errors import ApiError
from dashboards.api.respcache import cache_key, json_response
from dashboards.api.policy import PolicyError, check_silence
from dashboards.api.tokens import Identity, now_ms

router = APIRouter(prefix="/api/v1", tags=["alerts"])

STATUS_ORDER = {"firing": 0, "acknowledged": 1, "pending": 2, "resolved": 3}


def alert_row(a: Alert) -> dict:
    d = msgspec.to_builtins(a)
    d["colour"] = severity_colour(a.severity)
    d["incident"] = a.incident or a.fingerprint
    return d


ALERTS_TTL_S = 0.5  # the list is shared by every caller for this long (the live push announces changes anyway)


# after the TTL the old list is still served this long while one read replaces it in the background (the
# read and the pages rebuilt from it stalled every request behind them: bench/api_load.py's p99); a change
# announced by the engine's feed drops the list at once (live hub) and is never served stale
ALERTS_GRACE_S = 1.0


async def _alerts(ctx) -> list[Alert]:
    cached = ctx.alerts_cache  # dropped by the live hub as soon as the engine's alert feed changes
    now = time.monotonic()
    if cached is not None and now < cached[0]:
        return cached[1]
    task = _refresh_alerts(ctx)
    if cached is not None and now < cached[0] + ALERTS_GRACE_S:
        return cached[1]
    return await asyncio.shield(task)


def _refresh_alerts(ctx) -> asyncio.Future:
    # one read of the alert hash however many requests arrive while it is under way (at 250 alert
    # pages/s each expiry of the shared list started dozens of identical HGETALLs)
    task = getattr(ctx, "_alerts_read", None)
    if task is None or task.done():
        task = ctx._alerts_read = asyncio.ensure_future(_read_alerts(ctx))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
    return task


async def _read_alerts(ctx) -> list[Alert]:
    out = sorted(await ctx.store.alerts(),
                 key=lambda a: (STATUS_ORDER.get(a.status, 9), a.severity, -a.last_seen_ms, a.fingerprint))
    old = ctx.alerts_cache
    if old is not None and old[1] == out:
        out = old[1]  # nothing changed: the same object, so the pages kept for it stay valid (no rebuild)
    ctx.alerts_cache = (time.monotonic() + ALERTS_TTL_S, out)
    return out


async def _one(ctx, fingerprint: str) -> Alert:
    # read fresh (not the shared list): ack/unack check the alert's current status
    hits = [a for a in await ctx.store.alerts() if a.fingerprint.startswith(fingerprint)]
    if len(hits) != 1:
        raise ApiError(404, "fingerprint", f"no alert with fingerprint {fingerprint!r}" if not hits else
                       f"fingerprint prefix {fingerprint!r} matches {len(hits)} alerts")
    return hits[0]


async def audit(ctx, who: Identity, action: str, target: str, new: str, detail: str = "", old: str = "") -> None:
    await ctx.store.log_audit(AuditEntry(ts_ms=now_ms(), actor=who.actor, action=action, target=target, old=old,
                                         new=new, detail=detail))


@router.get("/alerts", summary="alerts, filtered and paginated (total and how many more are always given)")
async def list_alerts(request: Request, status: str | None = Query(None, description="firing, acknowledged, pending, resolved, active or all"),
                      severity: str | None = Query(None, description="red, orange, yellow or blue"),
                      district: str | None = None, rule: str | None = None, incident: str | None = None,
                      limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0),
                      _=Depends(require("read"))):
    ctx = request.app.state.ctx
    if status is not None and status not in (*STATUS_ORDER, "active", "all"):
        raise ApiError(422, "status", f"status must be one of {', '.join([*STATUS_ORDER, 'active', 'all'])} "
                                      f"(default: all but resolved), got {status!r}")
    if severity is not None and severity not in ("red", "orange", "yellow", "blue"):
        raise ApiError(422, "severity", f"severity must be red, orange, yellow or blue, got {severity!r}")
    alerts = await _alerts(ctx)
    key = cache_key(request)
    body = ctx.responses.get(key, alerts)  # the shared list is replaced when the engine's alerts change
    if body is not None:
        return json_response(body)
    out = []
    for a in alerts:
        if status == "active" and not a.active or status not in (None, "active", "all") and a.status != status:
            continue
        if status is None and a.status == "resolved":
            continue
        if severity and severity_colour(a.severity) != severity:
            continue
        if district and a.labels.get("district") != district or rule and a.rule_id != rule:
            continue
        if incident and (a.incident or a.fingerprint) != incident:
            continue
        out.append(a)
    page = out[offset:offset + limit]
    return json_response(ctx.responses.put(key, alerts, {
        "total": len(out), "offset": offset, "limit": limit, "more": max(0, len(out) - offset - len(page)),
        "rows": [alert_row(a) for a in page]}, current=lambda: _shared_alerts(ctx)))


def _shared_alerts(ctx):
    """The shared alert list while it is valid (the version of cached alert pages), else None; within the
    grace after its TTL it is still given while a background read replaces it (see ``ALERTS_GRACE_S``)."""
    cached = ctx.alerts_cache
    if cached is None:
        return None
    now = time.monotonic()
    if now < cached[0]:
        return cached[1]
    if now < cached[0] + ALERTS_GRACE_S:
        _refresh_alerts(ctx)
        return cached[1]
    return None


@router.get("/incidents", summary="active alerts grouped per incident (inhibited duplicates folded)")
async def incidents(request: Request, _=Depends(require("read"))):
    groups: dict[str, list[Alert]] = {}
    for a in await _alerts(request.app.state.ctx):
        if a.active:
            groups.setdefault(a.incident or a.fingerprint, []).append(a)
    rows = []
    for key, members in groups.items():
        lead = min(members, key=lambda a: (a.severity, bool(a.inhibited_by)))
        rows.append({"incident": key, "severity": lead.severity, "colour": severity_colour(lead.severity),
                     "lead": alert_row(lead), "alerts": len(members),
                     "inhibited": sum(1 for a in members if a.inhibited_by)})
    rows.sort(key=lambda r: (r["severity"], -r["lead"]["last_seen_ms"]))
    return JSON({"total": len(rows), "rows": rows})


@router.get("/alerts/{fingerprint}", summary="one alert with its evidence, as CAP 1.2 and as a Smart Data Models Alert")
async def alert_detail(request: Request, fingerprint: str, _=Depends(require("read"))):
    ctx = request.app.state.ctx
    a = await _one(ctx, fingerprint)
    try:
        cap = alert_to_cap(a, sender="citybrain@city.gov.cn", admin_code=ctx.city.admin_code, sent_ms=now_ms(), seq=1,
                           msg_type="Alert")
    except ValueError as exc:  # an alert CAP cannot express: say why instead of failing the page
        cap = f"<!-- not renderable as CAP 1.2: {exc} -->"
    return JSON({"alert": alert_row(a), "cap_xml": cap, "sdm": alert_to_sdm(a)})


class AckBody(BaseModel):
    comment: str = Field("", max_length=500, description="why / what is being done")


@router.post("/alerts/{fingerprint}/ack", status_code=202, summary="acknowledge a firing alert (stops its escalation)")
async def ack(request: Request, fingerprint: str, body: AckBody | None = None, who: Identity = Depends(require("ack"))):
    ctx = request.app.state.ctx
    a = await _one(ctx, fingerprint)
    if a.status != "firing":
        raise ApiError(409, "fingerprint", f"alert {a.fingerprint} is {a.status}; only firing alerts can be acknowledged")
    comment = body.comment if body else ""
    await ctx.store.request_ack(a.fingerprint, who.actor, comment)
    await audit(ctx, who, "ack", a.fingerprint, "requested", comment)
    return {"fingerprint": a.fingerprint, "acked_by": who.actor, "status": "queued for the engine"}


@router.post("/alerts/{fingerprint}/unack", status_code=202, summary="take an acknowledgement back (fires again, unowned)")
async def unack(request: Request, fingerprint: str, body: AckBody | None = None, who: Identity = Depends(require("ack"))):
    ctx = request.app.state.ctx
    a = await _one(ctx, fingerprint)
    if a.status != "acknowledged":
        raise ApiError(409, "fingerprint", f"alert {a.fingerprint} is {a.status}; only acknowledged alerts can be unacknowledged")
    comment = body.comment if body else ""
    await ctx.store.request_unack(a.fingerprint, who.actor, comment)
    await audit(ctx, who, "unack", a.fingerprint, "requested", comment)
    return {"fingerprint": a.fingerprint, "unacked_by": who.actor, "status": "queued for the engine"}


class SilenceBody(BaseModel):
    matchers: list[str] = Field(..., description="label matchers, e.g. district=nanhu, rule=~jam.*")
    duration: str = Field("1h", description="how long, e.g. 30m, 2h")
    comment: str = Field("", max_length=500)


@router.get("/silences", summary="silences, active and expired")
async def silences(request: Request, _=Depends(require("read"))):
    ctx = request.app.state.ctx
    now = await _stream_now(ctx)
    return {"rows": [{**msgspec.to_builtins(s), "active": s.active_at(now)} for s in (await ctx.store.silences()).values()]}


async def _stream_now(ctx) -> int:
    # the engine judges silences in stream time (wall time live, simulated time in a demo)
    meta = await ctx.store.meta()
    return int(meta["last_window_ms"]) if meta.get("last_window_ms") else now_ms()


@router.post("/silences", status_code=201, summary="mute alerts matching labels for a bounded time")
async def add_silence(request: Request, body: SilenceBody, who: Identity = Depends(require("silence"))):
    ctx = request.app.state.ctx
    try:
        dur = check_silence(body.matchers, body.duration, ctx.limits.silence_max_h)
    except PolicyError as exc:
        raise ApiError(422, exc.field, exc.message) from None
    now = await _stream_now(ctx)
    try:
        s = Silence.create(body.matchers, now, now + dur, who.actor, body.comment)
    except ValueError as exc:
        raise ApiError(422, "matchers", str(exc)) from None
    await ctx.store.put_silence(s, actor=who.actor, action="create")
    return msgspec.to_builtins(s)


@router.post("/silences/{silence_id}/expire", summary="end a silence now")
async def expire_silence(request: Request, silence_id: str, who: Identity = Depends(require("silence"))):
    ctx = request.app.state.ctx
    sil = await ctx.store.silences()
    if silence_id not in sil:
        raise ApiError(404, "silence_id", f"no silence with id {silence_id!r}")
    s = sil[silence_id]
    s.ends_ms = min(s.ends_ms, await _stream_now(ctx))
    await ctx.store.put_silence(s, actor=who.actor, action="expire")
    return msgspec.to_builtins(s)


@router.get("/audit", summary="the last state changes and who made them (append-only)")
async def audit_log(request: Request, limit: int = Query(100, ge=1, le=5000), _=Depends(require("audit"))):
    return JSON({"rows": await request.app.state.ctx.store.audit(limit)})
