"""``/api/v1/subscriptions``: alert subscriptions; a department sees and edits only its own, an admin all.

A subscription that delivers to a URL (webhook, CAP) may only name a host an admin allowed
(``webhook_allowed_hosts`` in the settings), so a token cannot turn the engine into a client of
any server on the network. Every change is audited under the token's identity.
"""
from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Body, Depends, Request

from brain.alerts.routing import Subscription
from dashboards.api.auth import require
from dashboards.api.errors import ApiError
from dashboards.api.tokens import Identity

router = APIRouter(prefix="/api/v1/subscriptions", tags=["subscriptions"])


def _visible(who: Identity, sub: Subscription) -> bool:
    return who.role == "admin" or (who.role == "department" and sub.department == who.scope)


def check_url(url: str, allowed: list[str]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiError(422, "channel.url", f"a delivery URL must be http(s)://host/..., got {url!r}")
    if parts.hostname.lower() not in allowed:
        raise ApiError(403, "channel.url", f"host {parts.hostname!r} is not in the webhook allow-list "
                                           f"({', '.join(allowed) or 'empty'}); an admin sets webhook_allowed_hosts")


@router.get("", summary="subscriptions this token may see")
async def list_subs(request: Request, who: Identity = Depends(require("subscriptions"))):
    subs = (await request.app.state.ctx.store.subscriptions()).values()
    return {"rows": [s.to_dict() for s in subs if _visible(who, s)]}


@router.get("/{sub_id}", summary="one subscription")
async def get_sub(request: Request, sub_id: str, who: Identity = Depends(require("subscriptions"))):
    sub = (await request.app.state.ctx.store.subscriptions()).get(sub_id)
    if sub is None or not _visible(who, sub):
        raise ApiError(404, "sub_id", f"no subscription {sub_id!r} visible to this token")
    return sub.to_dict()


@router.put("/{sub_id}", summary="create or replace a subscription")
async def put_sub(request: Request, sub_id: str, body: dict = Body(..., examples=[{
        "department": "交警支队", "categories": ["traffic"], "min_severity": "yellow",
        "channel": {"type": "webhook", "url": "http://127.0.0.1:9000/hook"}}]),
        who: Identity = Depends(require("subscriptions"))):
    ctx = request.app.state.ctx
    data = {**body, "id": sub_id}
    if who.role == "department":
        if data.get("department", who.scope) != who.scope:
            raise ApiError(403, "department", f"a {who.scope!r} token may only manage {who.scope!r} subscriptions")
        data["department"] = who.scope
    try:
        sub = Subscription.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise ApiError(422, "body", str(exc)) from None
    existing = (await ctx.store.subscriptions()).get(sub_id)
    if existing is not None and not _visible(who, existing):
        raise ApiError(403, "sub_id", f"subscription {sub_id!r} belongs to another department")
    if sub.channel.type in ("webhook", "cap") or sub.channel.url:
        check_url(sub.channel.url, ctx.limits.allowed_hosts())
    await ctx.store.put_subscription(sub, actor=who.actor)
    return sub.to_dict()


@router.delete("/{sub_id}", summary="remove a subscription")
async def delete_sub(request: Request, sub_id: str, who: Identity = Depends(require("subscriptions"))):
    ctx = request.app.state.ctx
    sub = (await ctx.store.subscriptions()).get(sub_id)
    if sub is None or not _visible(who, sub):
        # the same answer whether it is absent or another department's: ids of others are not disclosed
        raise ApiError(404, "sub_id", f"no subscription {sub_id!r} visible to this token")
    await ctx.store.remove_subscription(sub_id, actor=who.actor)
    return {"removed": sub_id}
