"""The controller protocol over HTTP (aiohttp), as a sub-application any web server can mount.

Routes (JSON bodies are the :mod:`~streams.controllers.protocol` messages):

* ``GET  /controllers/{id}/plan`` with headers ``X-CityBrain-Time`` (epoch ms) and
  ``X-CityBrain-Auth`` (:func:`~streams.controllers.protocol.request_mac`) → the signed plan;
* ``POST /controllers/{id}/ack`` → ``{"status": "accepted" | "rejected"}``;
* ``POST /controllers/{id}/status`` → ``202`` once the report is a ``signal_status`` record;
* ``GET  /controllers/alerts`` → the open alert candidates (for operators and tests);
* ``GET  /controllers/{id}/priority`` (headers as for the plan, MAC method ``GET-PRIORITY``) → the
  controller's current signed priority request (:mod:`streams.controllers.priority`);
* ``POST /controllers/{id}/priority/report`` → ``202`` once the signed report is logged.

Errors answer ``{"error": "..."}`` with 400 (malformed), 401 (bad MAC or clock), 404 (unknown),
409 (acknowledges a plan that is not the current one).

Example:
    >>> app = make_app(hub=None)
    >>> sorted({r.resource.canonical for r in app.router.routes()})[:2]
    ['/controllers/alerts', '/controllers/{intersection_id}/ack']
"""
from __future__ import annotations

import time

import msgspec
from aiohttp import web

from streams.controllers.hub import ControllerError, ControllerHub
from streams.controllers.priority import PriorityDispatch, PriorityReport
from streams.controllers.protocol import AckMessage, StatusMessage

HUB = web.AppKey("hub", ControllerHub)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def make_app(hub: ControllerHub | None, clock=_now_ms) -> web.Application:
    """The sub-application; ``clock()`` gives the centre's time (epoch ms)."""
    app = web.Application()
    app[HUB] = hub

    def signed_fetch(request: web.Request, fetch) -> web.Response:
        # A controller's GET: its intersection, its clock and its MAC, answered by ``fetch``.
        iid = request.match_info["intersection_id"]
        try:
            ts = int(request.headers.get("X-CityBrain-Time", ""))
        except ValueError:
            return _error(400, "X-CityBrain-Time must be epoch milliseconds")
        try:
            msg = fetch(iid, ts, request.headers.get("X-CityBrain-Auth", ""), clock())
        except ControllerError as exc:
            return _error(exc.status, str(exc))
        return web.Response(body=msgspec.json.encode(msg), content_type="application/json")

    async def get_plan(request: web.Request) -> web.Response:
        return signed_fetch(request, request.app[HUB].fetch)

    async def post(request: web.Request, typ):
        iid = request.match_info["intersection_id"]
        try:
            msg = msgspec.json.decode(await request.read(), type=typ)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise ControllerError(400, f"malformed {typ.__name__}: {exc}") from None
        if msg.intersection_id != iid:
            raise ControllerError(400, f"message for {msg.intersection_id!r} posted to {iid!r}")
        return msg

    async def post_ack(request: web.Request) -> web.Response:
        try:
            ack = await post(request, AckMessage)
            return web.json_response({"status": request.app[HUB].acknowledge(ack, clock())})
        except ControllerError as exc:
            return _error(exc.status, str(exc))

    async def post_status(request: web.Request) -> web.Response:
        try:
            st = await post(request, StatusMessage)
            request.app[HUB].report(st)
        except ControllerError as exc:
            return _error(exc.status, str(exc))
        return web.json_response({"accepted": True}, status=202)

    async def get_priority(request: web.Request) -> web.Response:
        return signed_fetch(request, PriorityDispatch(request.app[HUB]).fetch)

    async def post_priority_report(request: web.Request) -> web.Response:
        try:
            rep = await post(request, PriorityReport)
            PriorityDispatch(request.app[HUB]).report(rep)
        except ControllerError as exc:
            return _error(exc.status, str(exc))
        return web.json_response({"accepted": True}, status=202)

    async def get_alerts(request: web.Request) -> web.Response:
        return web.json_response([msgspec.to_builtins(c) for c in request.app[HUB].candidates(clock())])

    app.router.add_get("/controllers/alerts", get_alerts)
    app.router.add_get("/controllers/{intersection_id}/plan", get_plan)
    app.router.add_post("/controllers/{intersection_id}/ack", post_ack)
    app.router.add_post("/controllers/{intersection_id}/status", post_status)
    app.router.add_get("/controllers/{intersection_id}/priority", get_priority)
    app.router.add_post("/controllers/{intersection_id}/priority/report", post_priority_report)
    return app
