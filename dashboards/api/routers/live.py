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
