"""Serve the cockpit app with uvicorn inside an already running asyncio loop.

``citybrain run`` calls :func:`start_cockpit` in the engine's own loop: the API then reads the
engine's newest window from memory and the live hub is fed by the driver, with no thread and no
copy. The host process keeps its own SIGINT/SIGTERM handling (uvicorn's is turned off), and
:meth:`Cockpit.stop` ends the server cleanly. ``citybrain serve`` uses the same class alone.

Example (a free port on 127.0.0.1, the demo city, a private Redis):
    >>> import asyncio, tempfile, httpx
    >>> from brain.city import demo_city_path, load_city
    >>> async def demo():
    ...     cp = await start_cockpit(load_city(demo_city_path()), tempfile.mkdtemp(), None, port=0)
    ...     async with httpx.AsyncClient(timeout=30) as c:
    ...         r = await c.get(cp.url + "api/v1/whoami", headers={"Authorization": f"Bearer {cp.admin_token}"})
    ...     await cp.stop()
    ...     return r.json()["role"]
    >>> asyncio.run(demo())
    'admin'
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
from pathlib import Path

import uvicorn

from dashboards.api.app import create_app
from dashboards.api.context import ApiContext, ApiLimits
from dashboards.api.respcache import FastReads
from streams.redis_server import resolve_redis_url

FIRST_ADMIN_TTL_S = 7 * 86_400


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):
        # the host process (citybrain run / serve) owns SIGINT and SIGTERM and stops us itself
        yield


class Cockpit:
    """A running cockpit server: ``url``, the first ``admin_token`` (if one was made), ``stop()``."""

    def __init__(self, ctx: ApiContext, server: _Server, task: asyncio.Task, url: str, admin_token: str,
                 own_redis=None):
        self.ctx, self.server, self.task, self.url, self.admin_token = ctx, server, task, url, admin_token
        self._own_redis = own_redis
        self.on_stop: list = []  # coroutine functions run at stop (e.g. run's extra HTTP processes and relay)

    async def stop(self) -> None:
        for fn in self.on_stop:
            await fn()
        self.server.should_exit = True
        try:
            await asyncio.wait_for(self.task, 10)
        except asyncio.TimeoutError:  # a loaded machine: the engine's own stop must not end in a traceback
            logging.getLogger("citybrain.api").warning("the cockpit did not stop within 10 s: cancelled")
        except asyncio.CancelledError:
            pass
        await self.ctx.close()
        if self._own_redis is not None:
            self._own_redis.stop()


async def start_cockpit(city, out_dir: str | os.PathLike, redis_url: str | None, *, host: str = "127.0.0.1",
                        port: int = 8080, limits: ApiLimits | None = None, pipeline=None, driver=None,
                        admin_token: bool = True, reuse_port: bool = False) -> Cockpit:
    """Start the app in the running loop; ``redis_url`` None = the embedded Redis under ``out_dir``/redis.

    With a ``driver``, its closed windows feed the live hub. ``admin_token`` makes a first admin token
    (valid a week) for the operator who started the process. ``reuse_port`` (SO_REUSEPORT) lets other
    processes of ``citybrain serve --workers`` listen on the same port, the kernel spreading connections
    among them. Raises ``OSError`` when the port is taken.
    """
    own = None
    if not redis_url:
        redis_url, own = resolve_redis_url(Path(out_dir) / "redis")
    ctx = ApiContext.from_url(redis_url, city, out_dir, limits=limits or ApiLimits(), pipeline=pipeline, driver=driver)
    if driver is not None:
        driver.window_handlers.append(ctx.hub.on_window)
    # bind here so a taken port fails now, with the port in the message, not inside uvicorn's task
    # IPPROTO_TCP named explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP; without it
    # each response waited ~40 ms for the client's delayed ACK (Nagle) - measured by bench/api_load.py
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        await ctx.close()
        if own is not None:
            own.stop()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(512)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    # the hot-read front outside the whole app (before FastAPI's own middleware stack, not only the router)
    server = _Server(uvicorn.Config(FastReads(create_app(ctx), ctx), log_level="warning", access_log=False,
                                    lifespan="on", timeout_graceful_shutdown=2))
    task = asyncio.create_task(server.serve(sockets=[sock]), name="cockpit:http")
    while not server.started:
        if task.done():
            task.result()
            raise OSError(f"the cockpit server on {host}:{port} stopped at start")
        await asyncio.sleep(0.02)
    # what exists now (the city, the app, imported modules: ~150k objects) lives as long as the process:
    # move it out of the collector's sight, so a full collection under load scans only what requests made
    # (bench/api_load.py: full collections of the whole heap stalled every request for 30-1000 ms)
    gc.collect()
    gc.freeze()
    token = ""
    if admin_token:
        token, _ = await ctx.tokens.create("first-admin", "admin", created_by="citybrain (process start)",
                                           ttl_s=FIRST_ADMIN_TTL_S)
    shown = f"[{host}]" if ":" in host else host
    return Cockpit(ctx, server, task, f"http://{shown}:{port}/", token, own)
