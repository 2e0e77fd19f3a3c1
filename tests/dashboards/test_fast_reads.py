"""The hot-read front (dashboards/api/respcache.py FastReads) over real HTTP: the same bytes as the app,
the same refusals (no token, forged, revoked), and never an answer older than what it was made from."""
import asyncio
import time

import httpx
import pytest

LATEST = "/api/v1/vitals/district/latest"
ALERTS = "/api/v1/alerts?limit=5"


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def test_fast_answers_are_the_apps_bytes_under_the_same_auth(server, client, tokens):
    ctx = server.cockpit.ctx
    h = {"Authorization": f"Bearer {tokens['viewer']}"}
    first = client.get(LATEST, headers=h)
    hits = ctx.responses.hits
    again = client.get(LATEST, headers=h)
    assert ctx.responses.hits == hits + 1  # answered from the kept bytes
    assert again.status_code == 200 and again.content == first.content
    assert again.headers["content-type"] == "application/json" and int(again.headers["content-length"]) == len(first.content)
    # the cache never answers for a caller the app would refuse
    assert client.get(LATEST).status_code == 401
    assert client.get(LATEST, headers={"Authorization": "Bearer cbt_00000000_forged"}).status_code == 401
    assert client.get(LATEST, headers={"Authorization": "Basic " + tokens["viewer"]}).status_code == 401
    # another query is another answer
    one = client.get(LATEST + "?district=nanhu", headers=h).json()
    assert {r["district"] for r in one["rows"]} == {"nanhu"}


def test_a_revoked_token_is_refused_once_its_cache_time_is_over(server, client, tokens, cockpit_redis):
    import redis.asyncio as aioredis

    from dashboards.api.tokens import TokenStore

    async def make():
        r = aioredis.Redis.from_url(cockpit_redis)
        text, tok = await TokenStore(r).create("fast-revoke", "viewer", created_by="tests")
        await r.aclose()
        return text, tok.id

    text, tid = asyncio.run(make())
    h = {"Authorization": f"Bearer {text}"}
    assert client.get(LATEST, headers=h).status_code == 200
    assert client.get(LATEST, headers=h).status_code == 200

    async def revoke():  # from another process's view: the CLI writes Redis, this server learns within token_cache_s
        r = aioredis.Redis.from_url(cockpit_redis)
        await TokenStore(r).revoke(tid)
        await r.aclose()

    asyncio.run(revoke())
    time.sleep(server.cockpit.ctx.limits.token_cache_s + 0.3)
    assert client.get(LATEST, headers=h).status_code == 401


def test_alert_pages_change_as_soon_as_the_shared_list_does(server, client, tokens):
    ctx = server.cockpit.ctx
    h = {"Authorization": f"Bearer {tokens['viewer']}"}
    a = client.get(ALERTS, headers=h)
    b = client.get(ALERTS, headers=h)
    assert a.content == b.content and a.json()["total"] > 0
    hits = ctx.responses.hits
    ctx.alerts_cache = None  # what the live hub does when the engine's alert feed changes
    c = client.get(ALERTS, headers=h)
    assert ctx.responses.hits == hits  # rebuilt by the route from Redis, not served from the old bytes
    assert c.json() == a.json()  # nothing changed in Redis: the same answer


def test_a_burst_of_new_connections_reads_each_token_and_the_alerts_once(cockpit_redis, demo_run):
    """200 clients connecting at once (a wall of screens after a restart) used to send 200 identical token
    reads and exhaust the connection pool; concurrent verifications of one token now share one read,
    and concurrent misses of the alert list one HGETALL (counted by the real Redis's command stats)."""
    import redis as sync_redis

    from dashboards.api.routers.alerts import _alerts
    from tests.dashboards.conftest import context

    city, out = demo_run
    stats = sync_redis.Redis.from_url(cockpit_redis)

    def calls(cmd):
        return int(stats.info("commandstats").get(f"cmdstat_{cmd}", {}).get("calls", 0))

    async def go():
        ctx = context(city, out, cockpit_redis)
        text, _ = await ctx.tokens.create("burst", "viewer", created_by="tests")
        h0 = calls("hget")
        who = await asyncio.gather(*(ctx.tokens.verify(text) for _ in range(200)))
        h1 = calls("hget")
        a0 = calls("hgetall")
        lists = await asyncio.gather(*(_alerts(ctx) for _ in range(100)))
        a1 = calls("hgetall")
        await ctx.close()
        return who, h1 - h0, lists, a1 - a0

    who, token_reads, lists, alert_reads = asyncio.run(go())
    assert all(w is not None and w.name == "burst" for w in who) and token_reads == 1
    assert all(x is lists[0] for x in lists) and alert_reads == 1


def test_history_answers_are_served_by_the_front_from_the_second_request(server, client, tokens):
    """From the history (no engine in the process) the first answer is read in the thread pool; the next ones
    for the same files must come from the front (this was missed: only answers built on the cached path
    registered their version check)."""
    ctx = server.cockpit.ctx
    h = {"Authorization": f"Bearer {tokens['viewer']}"}
    url = "/api/v1/vitals/city/latest"
    first = client.get(url, headers=h)
    key = url + "?"
    assert first.status_code == 200 and ctx.responses.current_body(key) == first.content
    assert client.get(url, headers=h).content == first.content


def test_a_token_in_use_stays_in_the_front_and_a_revocation_still_ends_it(cockpit_redis, demo_run):
    """A token in use is renewed in the background at half its cache time, so the front keeps answering it
    (falling out of the cache sent a burst of requests through the whole app each second); revoked
    elsewhere, it is refused within the cache time all the same."""
    from dashboards.api.tokens import TokenStore
    from tests.dashboards.conftest import context

    city, out = demo_run

    async def go():
        ctx = context(city, out, cockpit_redis)
        cache_s = ctx.tokens.cache_s
        text, tok = await ctx.tokens.create("renewed", "viewer", created_by="tests")
        assert await ctx.tokens.verify(text) is not None
        end = time.monotonic() + 3 * cache_s
        while time.monotonic() < end:  # a wall screen asking every 50 ms
            assert ctx.tokens.cached(text) is not None
            await asyncio.sleep(0.05)
        other = TokenStore(ctx.store.r)  # another process (the CLI) revokes it in Redis
        await other.revoke(tok.id)
        revoked_at = time.monotonic()
        while ctx.tokens.cached(text) is not None:
            assert time.monotonic() - revoked_at < cache_s + 0.5, "a revoked token outlived its cache time"
            await asyncio.sleep(0.05)
        assert await ctx.tokens.verify(text) is None
        await ctx.close()

    asyncio.run(go())


def test_an_unchanged_alert_list_keeps_its_pages_past_the_ttl_and_a_change_replaces_it(cockpit_redis, demo_run):
    """After the TTL the list is re-read in the background while the old one is served (bounded by the grace);
    an unchanged read keeps the very same object, so the encoded pages stay valid; a changed one replaces it."""
    import json

    import redis as sync_redis

    from dashboards.api.routers.alerts import ALERTS_GRACE_S, ALERTS_TTL_S, _alerts, _shared_alerts
    from tests.dashboards.conftest import context

    city, out = demo_run
    r = sync_redis.Redis.from_url(cockpit_redis)
    fp, raw = next(iter(r.hgetall("citybrain:alerts:alerts").items()))

    async def go():
        ctx = context(city, out, cockpit_redis)
        first = await _alerts(ctx)
        await asyncio.sleep(ALERTS_TTL_S + 0.05)
        assert _shared_alerts(ctx) is first  # within the grace: still served, a read started meanwhile
        await ctx._alerts_read
        assert ctx.alerts_cache[1] is first and time.monotonic() < ctx.alerts_cache[0]  # same content: same object
        changed = {**json.loads(raw), "last_seen_ms": json.loads(raw)["last_seen_ms"] + 1}
        r.hset("citybrain:alerts:alerts", fp, json.dumps(changed))
        await asyncio.sleep(ALERTS_TTL_S + 0.05)
        assert await _alerts(ctx) is first  # the grace again; the read brings the change
        await ctx._alerts_read
        now = ctx.alerts_cache[1]
        assert now is not first and [a.last_seen_ms for a in now if a.fingerprint == fp.decode()] == [changed["last_seen_ms"]]
        ctx.alerts_cache = (time.monotonic() - ALERTS_GRACE_S - 1, now)  # past the grace: a caller waits for Redis
        assert _shared_alerts(ctx) is None
        await ctx.close()

    try:
        asyncio.run(go())
    finally:
        r.hset("citybrain:alerts:alerts", fp, raw)
        r.close()


def test_live_push_from_the_front_streams_events_and_lets_go_on_disconnect(server, client, tokens):
    """A verified reader's /api/v1/live is streamed by the front (no app): hello naming the token, the hub's events
    as they are published, the subscription dropped when the client goes; an unknown token still gets the app's 401."""
    import json

    ctx = server.cockpit.ctx
    h = {"Authorization": f"Bearer {tokens['viewer']}"}
    assert client.get(LATEST, headers=h).status_code == 200  # the token is now verified in this process
    before = ctx.hub.clients
    with client.stream("GET", "/api/v1/live", headers=h) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
        lines = resp.iter_lines()
        hello = json.loads(next(x for x in lines if x.startswith("data: "))[6:])
        assert hello["actor"].startswith("test-viewer (viewer ") and ctx.hub.clients == before + 1

        server._loop.call_soon_threadsafe(ctx.hub.publish, "alerts", {"count": 4242})  # in the server's loop
        assert next(x for x in lines if x.startswith("data: ")) == 'data: {"count":4242}'
    end = time.monotonic() + 10
    while ctx.hub.clients != before and time.monotonic() < end:
        time.sleep(0.05)
    assert ctx.hub.clients == before
    assert client.get("/api/v1/live", headers={"Authorization": "Bearer cbt_00000000_forged"}).status_code == 401
