"""``/api/v1/live``: Server-Sent Events of window results (``window``) and alert changes (``alerts``).

The stream starts with a ``hello`` event naming the caller; a comment line every 15 s keeps
proxies from closing an idle connection. Clients send the token in the Authorization header
(the cockpit reads the stream with ``fetch``, which can, unlike ``EventSource``).
"""
from __future__ import annotations

import asyncio
import os

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from dashboards.api.auth import require
from dashboards.api.live import sse_frame
from dashboards.api.tokens import Identity

router = APIRouter(prefix="/api/v1", tags=["live"])
KEEPALIVE_S = 15.0


@router.get("/live", summary="Server-Sent Events: window, alerts", response_class=StreamingResponse)
async def live(request: Request, who: Identity = Depends(require("read"))):
    hub = request.app.state.ctx.hub
    queue = hub.subscribe()

    async def events():
        try:
            yield sse_frame("hello", {"actor": who.actor, "clients": hub.clients, "pid": os.getpid()})  # serve --workers
            while True:
                try:
                    _event, _data, frame = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except asyncio.TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                yield frame
        finally:
            hub.unsubscribe(queue)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


LIVE_PATH = "/api/v1/live"
_SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no")]


async def stream_asgi(hub, who: Identity, receive, send) -> None:
    """The same stream as the route, spoken in plain ASGI: :class:`~dashboards.api.respcache.FastReads` answers a
    live-push client whose token it has verified with this, without FastAPI's routing and dependency solving
    (200 screens connecting after a restart cost ~0.85 ms of CPU each through the app: bench/api_load.py).
    Ends when the client disconnects."""
    queue = hub.subscribe()
    recv = asyncio.ensure_future(receive())
    get = None
    try:
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        await send({"type": "http.response.body", "more_body": True,
                    "body": sse_frame("hello", {"actor": who.actor, "clients": hub.clients, "pid": os.getpid()})})
        get = asyncio.ensure_future(queue.get())
        while True:
            done, _ = await asyncio.wait({recv, get}, timeout=KEEPALIVE_S, return_when=asyncio.FIRST_COMPLETED)
            if recv in done:
                if recv.result()["type"] == "http.disconnect":
                    return
                recv = asyncio.ensure_future(receive())  # the (empty) request body of the GET: wait on
            if get in done:
                await send({"type": "http.response.body", "body": get.result()[2], "more_body": True})
                get = asyncio.ensure_future(queue.get())
            elif not done:
                await send({"type": "http.response.body", "body": b": keep-alive\n\n", "more_body": True})
    finally:
        hub.unsubscribe(queue)
        for task in (recv, get):
            if task is not None and not task.done():
                task.cancel()
