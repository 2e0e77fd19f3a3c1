"""``/api/v1/tokens`` (admin), ``/api/v1/whoami`` and ``/api/v1/admin/rules/reload`` (admin): identities
of the API and the cockpit, and rule reloads on demand."""
from __future__ import annotations

import asyncio
import json
import re
import time

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from dashboards.api.auth import PERMISSIONS, identity, require
from dashboards.api.errors import ApiError
from dashboards.api.routers.alerts import audit
from dashboards.api.tokens import ROLES, Identity, now_ms

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


RULE_PROBLEM = re.compile(r"^(?P<file>[^:]+\.ya?ml): (?:rule '(?P<rule>[^']*)': )?(?P<msg>.*)$", re.S)
FIELD_IN = re.compile(r"unknown field `(?P<name>[^`]+)`|at `\$(?P<path>[^`]*)`|field `(?P<req>[^`]+)`")


def rule_error_field(message: str) -> tuple[str, str]:
    """``(field, message)`` of a rule-pack error: the field names the file, the rule and the key.

    >>> rule_error_field("/r/traffic.yaml: rule 'x': Object contains unknown field `tabl` - at `$.rules[0]`")
    ('/r/traffic.yaml: rules[0] (x).tabl', "/r/traffic.yaml: rule 'x': Object contains unknown field `tabl` - at `$.rules[0]`")
    >>> rule_error_field("duplicate rule id 'a' in b.yaml and c.yaml")[0]
    'rules'
    """
    m = RULE_PROBLEM.match(message)
    if m is None:
        return "rules", message
    where, key = "", ""
    for f in FIELD_IN.finditer(m.group("msg")):
        if f.group("path"):
            where = f.group("path").lstrip(".")
        key = key or f.group("name") or f.group("req") or ""
    rule = f" ({m.group('rule')})" if m.group("rule") else ""
    field = m.group("file") + (": " + where if where else (":" if rule or key else "")) + rule + ("." + key if key else "")
    return field, message


@router.post("/admin/rules/reload", status_code=202,
             summary="validate the engine's rule files and make the engine reload them now")
async def reload_rules(request: Request, wait_s: float = Query(5.0, ge=0, le=30), who: Identity = Depends(require("rules"))):
    """Validated here with the engine's own loader (the engine's rules path is read from its Redis meta):
    a broken file is a 422 naming the file, rule and field, and the engine keeps its running rules.
    A valid set is queued for the engine, which reloads at its next command poll (≈1 s) and audits
    the outcome; the answer waits up to ``wait_s`` for that entry."""
    from brain.alerts.rules import RuleError, default_rules_dir, load_rule_packs

    ctx = request.app.state.ctx
    meta = await ctx.store.meta()
    path = meta.get("rules_path") or str(default_rules_dir())
    try:
        packs = await run_in_threadpool(load_rule_packs, path)
    except RuleError as exc:
        field, message = rule_error_field(str(exc))
        await audit(ctx, who, "rules", path, "reload-refused", message[:500])
        raise ApiError(422, field, message) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ApiError(422, "rules", f"{path}: cannot read the rule files: {exc}") from None
    rules = sum(len(p.rules) for p in packs)
    asked_ms = now_ms()
    await audit(ctx, who, "rules", path, "reload-requested", f"{len(packs)} pack(s), {rules} rule(s) validated")
    await ctx.store.r.set(ctx.store.k("rules_reload"), json.dumps({"who": who.actor, "ts_ms": asked_ms}), ex=3600)
    engine = "queued (no engine answered yet: it reloads when it runs)"
    end = time.monotonic() + wait_s
    while time.monotonic() < end:
        done = [e for e in await ctx.store.audit(20) if e.get("action") == "rules" and e.get("actor") == "engine"
                and int(e.get("ts_ms", 0)) >= asked_ms]
        if done:
            engine = f"{done[-1]['new']}: {done[-1].get('detail', '')}"
            break
        await asyncio.sleep(0.2)
    return {"rules_path": path, "packs": len(packs), "rules": rules, "engine": engine, "requested_by": who.actor}
