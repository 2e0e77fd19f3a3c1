"""``/api/v1/tokens`` (admin) and ``/api/v1/whoami``: identities of the API and the cockpit."""
from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from dashboards.api.auth import PERMISSIONS, identity, require
from dashboards.api.errors import ApiError
from dashboards.api.routers.alerts import audit
from dashboards.api.tokens import ROLES, Identity

router = APIRouter(prefix="/api/v1", tags=["identities"])


@router.get("/whoami", summary="the caller's identity and what it may do")
async def whoami(who: Identity = Depends(identity)):
    return {"name": who.name, "role": who.role, "scope": who.scope, "token_id": who.token_id, "actor": who.actor,
            "may": sorted(a for a, roles in PERMISSIONS.items() if who.role in roles)}


@router.get("/tokens", summary="every token (without secrets)")
async def list_tokens(request: Request, _=Depends(require("tokens"))):
    return {"rows": [t.public() for t in await request.app.state.ctx.tokens.list()]}


class TokenBody(BaseModel):
    name: str = Field(..., min_length=1, max_length=80)
    role: str = Field(..., description=" | ".join(ROLES))
    scope: str = Field("", max_length=200, description="department name, or comma-separated corridor ids")
    ttl_h: float = Field(24 * 90, gt=0, le=24 * 366, description="hours until it expires")


@router.post("/tokens", status_code=201, summary="create a token (its text is shown once)")
async def create_token(request: Request, body: TokenBody, who: Identity = Depends(require("tokens"))):
    ctx = request.app.state.ctx
    try:
        text, tok = await ctx.tokens.create(body.name, body.role, created_by=who.actor, scope=body.scope,
                                            ttl_s=body.ttl_h * 3600)
    except ValueError as exc:
        field, _, msg = str(exc).partition(": ")
        raise ApiError(422, field, msg or str(exc)) from None
    await audit(ctx, who, "token", tok.id, "created", f"{tok.name} role={tok.role} scope={tok.scope}")
    return {"token": text, **tok.public()}


@router.delete("/tokens/{token_id}", summary="revoke a token")
async def revoke_token(request: Request, token_id: str, who: Identity = Depends(require("tokens"))):
    ctx = request.app.state.ctx
    tok = await ctx.tokens.revoke(token_id)
    if tok is None:
        raise ApiError(404, "token_id", f"no token {token_id!r}")
    await audit(ctx, who, "token", tok.id, "revoked", tok.name)
    return tok.public()
