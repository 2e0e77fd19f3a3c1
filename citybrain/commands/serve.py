"""``citybrain serve``: the cockpit and API v1 beside an engine that runs elsewhere (Faust workers, another process).

It reads alert state from the engine's Redis and vital-sign history from its ``--out`` folder
(shared storage), and pushes new windows and alert changes to the browsers. ``citybrain run``
starts the same service in its own process by default.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys

from citybrain.cli import UserError


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve the web cockpit and API v1 against an engine's Redis and --out folder",
                       description=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    p.add_argument("--city", metavar="DIR", help="city folder (default: the shipped demo city)")
    p.add_argument("--out", metavar="DIR", help="the engine's --out folder: history/, signal_plans/, deadletter/ (default var/run)")
    p.add_argument("--config", metavar="FILE", help="settings file (YAML); CITYBRAIN_* environment variables override it")
    p.add_argument("--redis", metavar="URL", help="the engine's Redis (default CITYBRAIN_REDIS_URL, else the embedded one under --out)")
    p.add_argument("--host", help="address to bind (default 127.0.0.1)")
    p.add_argument("--http-port", type=int, help="port (default 8080)")
    p.add_argument("--no-admin-token", action="store_true", help="do not make a first admin token at start")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="processes serving the same port (SO_REUSEPORT; the kernel spreads connections among "
                        "them; each has its own live push fed by the engine's Redis and history). Default 1")
    p.add_argument("--worker-of", type=int, metavar="PID", help=argparse.SUPPRESS)  # a worker started by --workers
    # a worker of `citybrain run --http-workers`: the newest window comes from the run process over Redis
    p.add_argument("--relay-windows", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=serve_command)


def limits_from(settings):
    from dashboards.api.context import ApiLimits

    return ApiLimits(silence_max_h=settings.silence_max_h, webhook_allowed_hosts=settings.webhook_allowed_hosts)


def print_banner(cockpit, file=sys.stderr) -> None:
    print(f"citybrain: cockpit and API v1 at {cockpit.url} (docs {cockpit.url}docs)", file=file)
    if cockpit.admin_token:
        print(f"citybrain: first admin token (valid 7 days, shown once): {cockpit.admin_token}", file=file)


def serve_command(args) -> int:
    from pathlib import Path

    from brain.city import CityError, demo_city_path, load_city
    from streams.redis_server import running_redis_url
    from citybrain.settings import load_settings
    from dashboards.api.server import start_cockpit

    settings = load_settings(args.config, city=args.city, out_dir=args.out, redis_url=args.redis,
                             http_host=args.host, http_port=args.http_port)
    try:
        city = load_city(settings.city or demo_city_path())
    except CityError as exc:
        raise UserError(str(exc)) from None
    # the engine's Redis if it runs; else the embedded one under --out is started (a stopped run's state)
    url = settings.redis_url or running_redis_url(Path(settings.out_dir) / "redis")
    if not Path(settings.out_dir).is_dir():
        raise UserError(f"--out {settings.out_dir} does not exist: point it at the engine's output folder")
    if not 1 <= args.workers <= 64:
        raise UserError(f"--workers must be 1..64, got {args.workers}")
    worker = args.worker_of is not None
    if worker:
        _die_with(args.worker_of)

    async def go() -> int:
        try:
            cockpit = await start_cockpit(city, settings.out_dir, url, host=settings.http_host, port=settings.http_port,
                                          limits=limits_from(settings), admin_token=not (args.no_admin_token or worker),
                                          reuse_port=worker or args.workers > 1)
        except OSError as exc:
            raise UserError(str(exc)) from None
        children = [] if worker else start_workers(args, settings, url, cockpit, args.workers - 1)
        relay = None
        if args.relay_windows:
            from dashboards.api.relay import follow_windows

            relay = asyncio.create_task(follow_windows(cockpit.ctx.store.r, cockpit.ctx.hub), name="cockpit:relayed")
        if not worker:
            print_banner(cockpit)
        if children:
            print(f"citybrain: {args.workers} processes serve this port (pids {os.getpid()}, "
                  f"{', '.join(str(c.pid) for c in children)})", file=sys.stderr)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([waiter, cockpit.task], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if relay is not None:
            relay.cancel()
        for c in children:
            c.terminate()
        await cockpit.stop()
        for c in children:
            try:
                c.wait(15)
            except subprocess.TimeoutExpired:
                c.kill()
        return 0

    return run_fast_loop(go())


def start_workers(args, settings, redis_url: str, cockpit, n: int, extra: tuple[str, ...] = ()) -> list[subprocess.Popen]:
    """``n`` more ``citybrain serve`` processes on the cockpit's port (SO_REUSEPORT), against the same Redis
    (the one this process resolved, never a second embedded server) and ``--out``; each stops with this one."""
    port = cockpit.url.rstrip("/").rsplit(":", 1)[1]
    cmd = [sys.executable, "-m", "citybrain", "serve", "--out", str(settings.out_dir), "--redis", redis_url,
           "--host", settings.http_host, "--http-port", port, "--worker-of", str(os.getpid()), *extra]
    if args.city:
        cmd += ["--city", args.city]
    if args.config:
        cmd += ["--config", args.config]
    return [subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL) for _ in range(n)]


def _die_with(parent_pid: int) -> None:
    """A worker ends with the process that started it, however that one ends (Linux parent-death signal)."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's terminate() at its stop still ends us
        return
    if os.getppid() != parent_pid:  # the parent died before prctl
        raise UserError("the serve process that started this worker is gone")


def run_fast_loop(coro):
    """Run on uvloop when installed (uvicorn[standard]): the event loop's own cost per request is about
    half of asyncio's (bench/api_load.py); plain asyncio otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def add_http_arguments(p) -> None:
    """``--http-port`` / ``--no-http`` for ``citybrain run`` (the cockpit starts with the engine by default)."""
    p.add_argument("--http-port", type=int, metavar="PORT",
                   help="serve the web cockpit and API v1 on http_host:PORT (default 8080 on 127.0.0.1)")
    p.add_argument("--no-http", action="store_true", help="do not start the web cockpit and API")
    p.add_argument("--http-workers", type=int, default=1, metavar="N",
                   help="HTTP processes serving the cockpit's port (SO_REUSEPORT); the extra ones get each window "
                        "from this process over Redis pub/sub and push it to their own browsers. Default 1")


async def maybe_start_cockpit(args, settings, city, pipeline, driver):
    """Start the cockpit in the engine's loop unless ``--no-http``; prints its URL and a first admin token."""
    from pathlib import Path

    from dashboards.api.server import start_cockpit
    from streams.redis_server import running_redis_url

    if getattr(args, "no_http", False):
        return None
    port = settings.http_port if getattr(args, "http_port", None) is None else args.http_port
    if not 0 <= port <= 65535:
        raise UserError(f"--http-port must be 0..65535, got {port}")
    url = settings.redis_url or running_redis_url(Path(settings.out_dir) / "redis")
    n = getattr(args, "http_workers", 1)
    if not 1 <= n <= 64:
        raise UserError(f"--http-workers must be 1..64, got {n}")
    if n > 1 and not url:
        raise UserError("--http-workers needs the engine's Redis to reach the other processes, which is not "
                        "running (--no-alerts); set redis_url or drop --http-workers")
    try:
        cockpit = await start_cockpit(city, settings.out_dir, url, host=settings.http_host, port=port,
                                      limits=limits_from(settings), pipeline=pipeline, driver=driver, reuse_port=n > 1)
    except OSError as exc:
        raise UserError(f"{exc} (choose another --http-port, or --no-http)") from None
    print_banner(cockpit)
    if n > 1:
        start_http_workers(args, settings, url, cockpit, driver, n - 1)
    return cockpit


def start_http_workers(args, settings, url: str, cockpit, driver, n: int) -> None:
    """``citybrain run --http-workers``: ``n`` more ``serve`` processes on the cockpit's port, each fed this
    process's windows over Redis (:mod:`dashboards.api.relay`); they stop with the cockpit (or die with us)."""
    from dashboards.api.relay import WindowRelay

    relay = WindowRelay(cockpit.ctx.store.r)
    if driver is not None:
        driver.window_handlers.append(relay.on_window)
    if cockpit.ctx.hub.latest_window is not None:
        relay.on_window(cockpit.ctx.hub.latest_window)
    relay.start()
    children = start_workers(args, settings, url, cockpit, n, extra=("--relay-windows", "--no-admin-token"))
    print(f"citybrain: {n + 1} processes serve the cockpit (pids {os.getpid()}, "
          f"{', '.join(str(c.pid) for c in children)}); windows reach the others over Redis", file=sys.stderr)

    async def stop() -> None:
        await relay.stop()
        for c in children:
            c.terminate()
        for c in children:
            try:
                await asyncio.to_thread(c.wait, 15)
            except subprocess.TimeoutExpired:
                c.kill()
    cockpit.on_stop.append(stop)
