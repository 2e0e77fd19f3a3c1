"""A light open-loop HTTP/1.1 load generator on raw asyncio protocols (keep-alive, no client library).

Why not aiohttp: profiled with py-spy during ``bench/api_load.py`` at 500 req/s, the aiohttp client
spent most of its samples building requests, connection-pool bookkeeping and one timer per request;
on 2 shared cores the generator then competes with the servers it measures. Here a request is one
pre-built ``bytes`` written to an idle keep-alive connection and a response is found by its
``content-length`` (or chunked framing), so the generator's own CPU per request stays small and is
reported (``gen_cpu_s``) next to the figures.

Load is open-loop: request *i* is due at ``t0 + i / rate``; its latency is measured from that due
time, so a server (or a generator) that falls behind is charged for the queue it causes. All
connections (and the held live-push clients) are opened and answered once before ``t0``, so the
figures are of steady load, not of 200 TCP handshakes.

Example (a tiny server on a free port, 50 requests at 200 req/s):
    >>> import asyncio
    >>> async def demo():
    ...     async def handle(reader, writer):
    ...         while await reader.readuntil(b"\\r\\n\\r\\n"):
    ...             writer.write(b"HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\n\\r\\n{}")
    ...     srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    ...     port = srv.sockets[0].getsockname()[1]
    ...     res = await run_load("127.0.0.1", port, ["/a", "/b"], {}, rate=200, seconds=0.25, connections=4)
    ...     srv.close()
    ...     return len(res.latencies_ms["/a"]) + len(res.latencies_ms["/b"]), res.errors
    >>> asyncio.run(demo())
    (50, 0)
"""
from __future__ import annotations

import asyncio
import collections
import resource
import time
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    """Latencies per path (ms, from each request's due time), error count, the generator's own CPU."""

    latencies_ms: dict[str, list[float]]
    errors: int = 0
    gen_cpu_s: float = 0.0
    wall_s: float = 0.0
    statuses: collections.Counter = field(default_factory=collections.Counter)


def _cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class _Conn(asyncio.Protocol):
    """One keep-alive connection: one request in flight at a time; ``done(status)`` when its response is whole.

    A chunked body ends at the first last-chunk marker (CRLF 0 CRLF CRLF): right for JSON bodies, which
    carry no raw CR/LF; not a general HTTP client."""

    def __init__(self, on_done):
        self.buf = bytearray()
        self.on_done = on_done
        self.transport = None
        self.need = -1  # bytes of the whole response once its head is parsed; -1 = head not seen yet
        self.chunked = False
        self.status = 0
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        if not self.lost.done():
            self.lost.set_result(exc)

    def data_received(self, data):
        self.buf += data
        while True:
            if self.need < 0:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self.buf[:end]).lower()
                self.status = int(head[9:12])
                self.chunked = b"transfer-encoding: chunked" in head
                if self.chunked:
                    self.need = end + 4
                else:
                    i = head.find(b"content-length:")
                    length = int(head[i + 15:head.find(b"\r\n", i) if head.find(b"\r\n", i) > 0 else None]) if i >= 0 else 0
                    self.need = end + 4 + length
            if self.chunked:
                term = self.buf.find(b"\r\n0\r\n\r\n", self.need - 2)
                if term < 0:
                    return
                whole = term + 7
            else:
                if len(self.buf) < self.need:
                    return
                whole = self.need
            del self.buf[:whole]
            self.need = -1
            self.on_done(self, self.status)


class _Held(asyncio.Protocol):
    """A live-push client: sends its GET once and discards whatever the server streams."""

    def __init__(self):
        self.first = asyncio.get_running_loop().create_future()

    def data_received(self, data):
        if not self.first.done():
            self.first.set_result(True)

    def connection_lost(self, exc):
        if not self.first.done():
            self.first.set_result(False)


def request_bytes(host: str, port: int, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def hold_clients(host: str, port: int, path: str, headers: dict[str, str], n: int) -> list[asyncio.Transport]:
    """Open ``n`` live-push connections and wait until each has its first bytes; returns their transports."""
    loop = asyncio.get_running_loop()
    req = request_bytes(host, port, path, headers)
    out = []
    for start in range(0, n, 50):  # in bursts of 50: the server's listen backlog, not a SYN flood
        batch = [await loop.create_connection(_Held, host, port) for _ in range(min(50, n - start))]
        for tr, _ in batch:
            tr.write(req)
        await asyncio.wait_for(asyncio.gather(*(p.first for _, p in batch)), 60)
        out += [tr for tr, _ in batch]
    return out


async def run_load(host: str, port: int, paths: list[str], headers: dict[str, str], *, rate: float,
                   seconds: float, connections: int = 64) -> LoadResult:
    """``rate`` requests/s for ``seconds``, paths in turn, over ``connections`` keep-alive connections."""
    loop = asyncio.get_running_loop()
    reqs = [request_bytes(host, port, p, headers) for p in paths]
    res = LoadResult({p: [] for p in paths})
    idle: collections.deque[_Conn] = collections.deque()
    waiting: collections.deque[tuple[int, float]] = collections.deque()  # due requests with no idle connection
    inflight: dict[_Conn, tuple[int, float]] = {}
    n = int(rate * seconds)
    finished = loop.create_future()
    count = 0

    def send(conn: _Conn, k: int, due: float) -> None:
        inflight[conn] = (k, due)
        conn.transport.write(reqs[k])

    def done(conn: _Conn, status: int) -> None:
        nonlocal count
        k, due = inflight.pop(conn)
        res.latencies_ms[paths[k]].append((time.perf_counter() - due) * 1000)
        res.statuses[status] += 1
        if status != 200:
            res.errors += 1
        count += 1
        if waiting:
            send(conn, *waiting.popleft())
        else:
            idle.append(conn)
        if count == n and not finished.done():
            finished.set_result(None)

    conns = []
    for _ in range(connections):
        _, c = await loop.create_connection(lambda: _Conn(done), host, port)
        conns.append(c)
    # warm each connection with one request (not counted): handshakes and first reads happen before t0
    warm = loop.create_future()
    left = len(conns)

    def warmed(conn, status):
        nonlocal left
        left -= 1
        if left == 0:
            warm.set_result(None)

    for c in conns:
        c.on_done = warmed
        c.transport.write(reqs[0])
    await asyncio.wait_for(warm, 60)
    for c in conns:
        c.on_done = done
        idle.append(c)

    c0 = _cpu_s()
    t0 = time.perf_counter() + 0.05
    i = 0
    while i < n:
        now = time.perf_counter()
        while i < n and t0 + i / rate <= now:
            due = t0 + i / rate
            if idle:
                send(idle.popleft(), i % len(reqs), due)
            else:
                waiting.append((i % len(reqs), due))
            i += 1
        if i < n:
            await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
    try:
        await asyncio.wait_for(finished, 30)
    except asyncio.TimeoutError:
        res.errors += n - count
    res.wall_s = time.perf_counter() - t0
    res.gen_cpu_s = _cpu_s() - c0
    for c in conns:
        c.transport.close()
    return res
