"""Encoded answers of the hot read routes, kept while what they were made from is unchanged.

A wall screen, a laptop and Grafana ask the same few questions hundreds of times between two
windows: the newest window of a table, the first page of alerts. Building the rows and encoding
them again each time was most of such a request's own cost (bench/api_load.py, py-spy). Each
answer is kept as bytes under its question (route + query) together with a *version*: the object
it was made from (the engine's newest window, the history's file set, the shared alert list).
A lookup compares versions by identity, so a new window or a changed alert list is served from
the first request after it, never stale.

Example:
    >>> cache = ResponseCache(max_entries=2)
    >>> v1, v2 = object(), object()
    >>> cache.get("a", v1) is None
    True
    >>> cache.put("a", v1, {"rows": [1]})
    b'{"rows":[1]}'
    >>> cache.get("a", v1), cache.get("a", v2)        # another version: a miss, never the old bytes
    (b'{"rows":[1]}', None)
    >>> json_response(cache.get("a", v1)).headers["content-type"]
    'application/json'
"""
from __future__ import annotations

import threading

import msgspec
from starlette.responses import Response

_enc = msgspec.json.Encoder()
#: roles that may read (dashboards.api.auth.PERMISSIONS["read"]; imported there, not here, to keep this module leaf)
READ_ROLES = frozenset({"viewer", "operator", "department", "controller", "admin"})


class ResponseCache:
    """``key -> (version, bytes)``; bounded (cleared when full: the hot keys come back at once)."""

    def __init__(self, max_entries: int = 1024):
        self.max_entries = max_entries
        self._d: dict[str, tuple[object, bytes]] = {}
        self._current: dict[str, object] = {}  # key -> callable naming the version in force
        self._lock = threading.Lock()  # history answers are built in the thread pool
        self.hits = 0
        self.misses = 0

    def get(self, key: str, version: object) -> bytes | None:
        hit = self._d.get(key)
        if hit is not None and hit[0] is version:
            self.hits += 1
            return hit[1]
        self.misses += 1
        return None

    def put(self, key: str, version: object, content, current=None) -> bytes:
        """Keep ``content`` encoded under ``key`` for ``version``; ``current()`` (optional, cheap, no I/O)
        names the version in force now, so :class:`FastReads` may answer the key before the app runs."""
        body = _enc.encode(content)
        with self._lock:
            if len(self._d) >= self.max_entries:
                self._d.clear()
                self._current.clear()
            self._d[key] = (version, body)
            if current is not None:
                self._current[key] = current
        return body

    def current_body(self, key: str) -> bytes | None:
        """The bytes of ``key`` if they are still those of the version in force, else None."""
        check = self._current.get(key)
        hit = self._d.get(key)
        if check is None or hit is None:
            return None
        try:
            if check() is not hit[0]:
                return None
        except Exception:  # a validator that cannot tell: let the app answer
            return None
        self.hits += 1
        return hit[1]


class FastReads:
    """ASGI front for the hot reads: a GET whose answer is cached for the version in force, from a
    token this process verified within ``token_cache_s``, whose role may read, is answered with the
    kept bytes without routing, dependency resolution or validation (the same bytes the route would
    send). Anything else (a miss, another method, an unverified token) goes to the app unchanged.
    A verified reader's live push (``/api/v1/live``) is streamed the same way
    (:func:`dashboards.api.routers.live.stream_asgi`).
    """

    def __init__(self, app, ctx):
        self.app, self.ctx = app, ctx
        self.served = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "GET":
            ctx = self.ctx
            if scope["path"] == "/api/v1/live":  # live push for a verified reader: the stream without the app
                who = ctx.tokens.cached(_bearer(scope))
                if who is not None and who.role in READ_ROLES:
                    from dashboards.api.routers.live import stream_asgi

                    self.served += 1
                    return await stream_asgi(ctx.hub, who, receive, send)
            key = scope["path"] + "?" + scope["query_string"].decode("latin-1")
            body = ctx.responses.current_body(key)
            if body is not None:
                who = ctx.tokens.cached(_bearer(scope))
                if who is not None and who.role in READ_ROLES:
                    self.served += 1
                    await send({"type": "http.response.start", "status": 200,
                                "headers": [(b"content-type", b"application/json"),
                                            (b"content-length", str(len(body)).encode())]})
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)


def _bearer(scope) -> str:
    for k, v in scope["headers"]:
        if k == b"authorization":
            scheme, _, text = v.decode("latin-1").partition(" ")
            return text.strip() if scheme.lower() == "bearer" else ""
    return ""


def cache_key(request) -> str:
    """The key :class:`FastReads` looks up for a request: path and raw query."""
    return request.url.path + "?" + request.url.query


def json_response(body: bytes, status_code: int = 200) -> Response:
    """Already encoded JSON as a response (no encoder walks it again)."""
    return Response(content=body, status_code=status_code, media_type="application/json")
