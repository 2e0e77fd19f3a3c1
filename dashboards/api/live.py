"""Live push: window results and alert changes to every connected client, as Server-Sent Events.

Two feeds go into one :class:`LiveHub`:

* **windows** — in a ``citybrain run`` process the driver hands each closed window to
  :meth:`LiveHub.on_window` (a reference is kept, nothing computed, the push task woken at once); beside a remote engine
  (``citybrain serve``) the hub watches the Parquet history for a newer window instead.
  At most one ``window`` event per ``push_every_s`` carries the newest window's district and
  city rows, so a fast replay does not flood browsers with ticks no one can read.
* **alerts** — the engine writes a JSON snapshot of the active alerts to Redis (``feed``)
  whenever its alert state changes; the hub polls it and pushes an ``alerts`` event when it
  differs from the last one.

A slow client's queue is bounded: when it is full the oldest event is dropped (the next one
carries the full current state anyway).

Example:
    >>> import asyncio
    >>> async def demo():
    ...     hub = LiveHub()
    ...     q = hub.subscribe()
    ...     hub.publish("alerts", {"n": 1})
    ...     return await q.get()
    >>> event, data, frame = asyncio.run(demo())   # the frame is encoded once for every client
    >>> event, data, frame.startswith(b"event: alerts")
    ('alerts', {'n': 1}, True)
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

import msgspec

from dashboards.api.history import rows

log = logging.getLogger("citybrain.api.live")

LIVE_TABLES = ("district", "city")


def _table(window, name: str):
    try:
        return window.vitals[name]
    except (KeyError, TypeError, AttributeError):
        return None


def window_payload(window) -> dict:
    out = {"window_end_ms": int(window.window_end_ms)}
    for name in LIVE_TABLES:
        t = _table(window, name)
        out[name] = rows(t) if t is not None else []
    return out


class LiveHub:
    """Fan-out of live events to subscriber queues; see the module docstring."""

    def __init__(self, queue_size: int = 64, push_every_s: float = 0.2):
        self.queue_size = queue_size
        self.push_every_s = push_every_s
        self._queues: set[asyncio.Queue] = set()
        self.latest_window = None  # the newest closed window of an in-process engine
        self._window_dirty = False
        self._alerts_blob: bytes | None = None
        self._window_wall_ms = 0
        self.events_published = 0
        self.last_window_push_wall = 0.0
        self._wake: asyncio.Event | None = None  # set by on_window: push now, not at the next poll

    @property
    def clients(self) -> int:
        return len(self._queues)

    def subscribe(self) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(self.queue_size)
        self._queues.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue) -> None:
        self._queues.discard(q)

    def publish(self, event: str, data) -> None:
        self.events_published += 1
        item = (event, data, sse_frame(event, data))  # one encoding shared by every client's stream
        for q in list(self._queues):
            if q.full():
                try:
                    q.get_nowait()
                except asyncio.QueueEmpty:  # pragma: no cover - raced with the reader
                    pass
            q.put_nowait(item)

    def on_window(self, window, closed_wall_ms: int | None = None) -> None:
        """Window handler for the local driver: remember the newest window (cheap, synchronous).
        ``closed_wall_ms``: when the engine closed it, if not now (a window relayed from another process)."""
        self.latest_window = window
        # for clients measuring window close -> screen
        self._window_wall_ms = int(time.time() * 1000) if closed_wall_ms is None else int(closed_wall_ms)
        self._window_dirty = True
        if self._wake is not None:
            self._wake.set()

    def live_table(self, name: str):
        """The newest in-process window's table ``name`` (None when there is no engine in this process)."""
        if self.latest_window is None:
            return None
        return _table(self.latest_window, name)

    async def run(self, ctx) -> None:
        """Background task: push windows and alert changes until cancelled."""
        last_history_ms = None
        next_history_check = 0.0
        self._wake = asyncio.Event()
        next_window_ok = 0.0
        while True:
            try:
                if self._window_dirty and self.latest_window is not None and time.monotonic() >= next_window_ok:
                    self._window_dirty = False
                    next_window_ok = time.monotonic() + self.push_every_s
                    if self._queues:
                        self.publish("window", {**window_payload(self.latest_window),
                                                "closed_wall_ms": self._window_wall_ms})
                        self.last_window_push_wall = time.time()
                elif self.latest_window is None and time.monotonic() >= next_history_check:
                    next_history_check = time.monotonic() + 2.0
                    last = await asyncio.to_thread(ctx.history.last_window_ms, "city")
                    if last is not None and last != last_history_ms:
                        if last_history_ms is not None and self._queues:
                            payload = {"window_end_ms": last}
                            for name in LIVE_TABLES:
                                payload[name] = (await asyncio.to_thread(ctx.history.latest, name))["rows"]
                            self.publish("window", payload)
                        last_history_ms = last
                blob = await ctx.store.r.get(ctx.store.k("feed"))
                if blob != self._alerts_blob:
                    self._alerts_blob = blob
                    ctx.alerts_cache = None  # before telling clients, so their re-read sees the change
                    alerts = json.loads(blob) if blob else []
                    self.publish("alerts", {"count": len(alerts), "ts_ms": int(time.time() * 1000)})
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep pushing through a Redis restart or a half-written file
                log.warning("live push failed", extra={"fields": {"error": str(exc)}})
            # a closed window wakes the loop at once (at most one window event per push_every_s); alert
            # changes and the history are polled every push_every_s
            self._wake.clear()
            wait_s = self.push_every_s
            if self._window_dirty:
                wait_s = max(0.0, min(wait_s, next_window_ok - time.monotonic()))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait_s)


def sse_frame(event: str, data) -> bytes:
    return f"event: {event}\ndata: {msgspec.json.encode(data).decode()}\n\n".encode()
