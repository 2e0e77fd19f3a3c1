"""``citybrain tokens create|list|revoke``: bearer tokens of the cockpit and API v1 (the local admin path).

Run on the machine of the engine: it writes straight to the engine's Redis (``CITYBRAIN_REDIS_URL``
or the embedded server under ``--out``). The token text is printed once; Redis keeps only its hash.
Roles: viewer (read), operator (ack, silence), department (its own subscriptions; --scope names the
department), controller (priority requests; --scope lists corridors), admin (everything).
"""
from __future__ import annotations

import asyncio
import getpass
import json
import socket
import time
from pathlib import Path

from citybrain.cli import UserError


def register(sub) -> None:
    p = sub.add_parser("tokens", help="create, list and revoke API / cockpit tokens (roles, scopes, expiry)",
                       description=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    tsub = p.add_subparsers(dest="tokens_command", metavar="ACTION")
    for name, helptext in (("create", "make a token and print it (once)"), ("list", "every token, without secrets"),
                           ("revoke", "revoke a token by id")):
        a = tsub.add_parser(name, help=helptext)
        a.add_argument("--out", metavar="DIR", help="the engine's --out folder (default var/run): where its embedded Redis lives")
        a.add_argument("--config", metavar="FILE", help="settings file (YAML) naming redis_url / out_dir")
        a.add_argument("--json", action="store_true", help="print JSON")
        if name == "create":
            a.add_argument("--name", required=True, help="who or what uses the token (shown in the audit log)")
            a.add_argument("--role", required=True, choices=["viewer", "operator", "department", "controller", "admin"])
            a.add_argument("--scope", default="", help="department name (department role) or corridor ids, comma-separated (controller)")
            a.add_argument("--expires", default="90d", help="lifetime, e.g. 12h, 30d (default 90d); 0 = never")
        if name == "revoke":
            a.add_argument("token_id", help="the token's id (see `citybrain tokens list`)")
        a.set_defaults(func={"create": cmd_create, "list": cmd_list, "revoke": cmd_revoke}[name])
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def engine_redis_url(out: str | None, config: str | None) -> str:
    """The running engine's Redis: the settings' ``redis_url``, else the embedded server under ``out``."""
    from citybrain.settings import load_settings
    from streams.redis_server import running_redis_url

    settings = load_settings(config)
    if settings.redis_url:
        return settings.redis_url
    url = running_redis_url(Path(out or settings.out_dir) / "redis")
    if url is None:
        raise UserError("no running engine's Redis found: start `citybrain run` (same --out), or set "
                        "CITYBRAIN_REDIS_URL to the Redis it uses")
    return url


def local_actor() -> str:
    """Who uses the local admin path: the login on this machine (not a name typed on the command line)."""
    return f"local-admin {getpass.getuser()}@{socket.gethostname()}"


def _run(args, fn):
    import redis.asyncio as aioredis

    from dashboards.api.tokens import TokenStore

    async def go():
        r = aioredis.Redis.from_url(engine_redis_url(args.out, args.config))
        try:
            return await fn(TokenStore(r), r)
        finally:
            await r.aclose()

    try:
        return asyncio.run(go()) or 0
    except OSError as exc:
        raise UserError(f"cannot reach Redis: {exc}") from None


async def _audit(r, action: str, target: str, new: str, detail: str) -> None:
    from brain.alerts.state import AuditEntry
    from streams.alerts.store import AlertStore

    await AlertStore(r).log_audit(AuditEntry(ts_ms=int(time.time() * 1000), actor=local_actor(), action=action,
                                             target=target, new=new, detail=detail))


def cmd_create(args) -> int:
    from citybrain.engine import parse_duration_s

    ttl_s = 0.0 if args.expires.strip() in ("0", "never") else parse_duration_s(args.expires)

    async def go(tokens, r):
        try:
            text, tok = await tokens.create(args.name, args.role, created_by=local_actor(), scope=args.scope,
                                            ttl_s=ttl_s or None)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        await _audit(r, "token", tok.id, "created", f"{tok.name} role={tok.role} scope={tok.scope}")
        if args.json:
            print(json.dumps({"token": text, **tok.public()}, ensure_ascii=False))
        else:
            until = time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(tok.expires_ms / 1000)) if tok.expires_ms else "never"
            print(f"token {tok.id} for {tok.name} ({tok.role}{', ' + tok.scope if tok.scope else ''}), expires {until}:")
            print(text)
        return 0

    return _run(args, go)


def cmd_list(args) -> int:
    async def go(tokens, _r):
        rows = [t.public() for t in await tokens.list()]
        if args.json:
            print(json.dumps(rows, ensure_ascii=False, indent=1))
            return 0
        now = time.time() * 1000
        for t in rows:
            state = "revoked" if t["revoked_ms"] else ("expired" if t["expires_ms"] and t["expires_ms"] <= now else "valid")
            until = time.strftime("%Y-%m-%d %H:%M", time.localtime(t["expires_ms"] / 1000)) if t["expires_ms"] else "never"
            print(f"{t['id']}  {t['role']:<10} {t['name']:<20} scope={t['scope'] or '-':<12} until {until}  {state}")
        print(f"{len(rows)} token(s)")
        return 0

    return _run(args, go)


def cmd_revoke(args) -> int:
    async def go(tokens, r):
        tok = await tokens.revoke(args.token_id)
        if tok is None:
            raise UserError(f"no token {args.token_id!r} (see `citybrain tokens list`)")
        await _audit(r, "token", tok.id, "revoked", tok.name)
        print(f"token {tok.id} ({tok.name}) revoked")
        return 0

    return _run(args, go)
