"""``citybrain run``'s controller hub: ``--controller-port`` / ``--no-controllers`` and starting it.

The hub (:class:`streams.controllers.centre.ControllerCentre`) shares the engine's Redis (the one the
alert service uses), receives the green-wave operator's plans, serves the controllers on
``http_host:controller_port`` and feeds its problems to the alert rules through the
``controller_problems`` table of :class:`~streams.controllers.centre.ControllerProblems` (added to
every pipeline by ``build_engine``; empty while no hub runs).
"""
from __future__ import annotations

import sys
from pathlib import Path

from citybrain.cli import UserError

DEFAULT_PORT = 8089


def add_controller_arguments(p) -> None:
    p.add_argument("--controller-port", type=int, metavar="PORT",
                   help=f"serve the signal controllers (plans, acks, status, priority; docs/controllers.md) on "
                        f"http_host:PORT (default {DEFAULT_PORT})")
    p.add_argument("--controller-ack-within", type=float, default=30.0, metavar="SECONDS",
                   help="seconds a controller has to acknowledge a new plan before it is an alert (default 30)")
    p.add_argument("--no-controllers", action="store_true",
                   help="do not start the controller hub (no plans to controllers, no controller alerts)")


def problems_operator(pipeline):
    from streams.controllers.centre import ControllerProblems

    return next((op for op in pipeline.window_operators if isinstance(op, ControllerProblems)), None)


async def maybe_start_controllers(args, settings, city, pipeline, file=sys.stderr):
    """Start the hub unless ``--no-controllers``; None when it cannot run (said on ``file``)."""
    import redis

    from streams.controllers.centre import ControllerCentre, master_secret
    from streams.greenwave_operator import GreenWaveOperator
    from streams.redis_server import running_redis_url

    if getattr(args, "no_controllers", False) or not city.corridors:
        return None
    port = DEFAULT_PORT if getattr(args, "controller_port", None) is None else args.controller_port
    if not 0 <= port <= 65535:
        raise UserError(f"--controller-port must be 0..65535, got {port}")
    url = settings.redis_url or running_redis_url(Path(settings.out_dir) / "redis")
    if not url:
        print("citybrain: controller hub not started: it keeps its state in the engine's Redis, which is not "
              "running (--no-alerts); --no-controllers silences this", file=file)
        return None
    try:
        master = master_secret(settings.out_dir)
    except (OSError, ValueError) as exc:
        raise UserError(f"controller hub: {exc}") from None
    ack_s = float(getattr(args, "controller_ack_within", 30.0))
    if not ack_s > 0:
        raise UserError(f"--controller-ack-within must be > 0 seconds, got {ack_s:g}")
    centre = ControllerCentre(city, redis.Redis.from_url(url), master, ack_within_ms=int(ack_s * 1000),
                              out_dir=settings.out_dir)
    centre.start()
    try:
        where = await centre.serve(settings.http_host, port)
    except OSError as exc:
        # not fatal: plans are still signed and kept, alerts still raised; controllers cannot fetch until restart
        where = None
        print(f"citybrain: warning: {exc}; the hub runs without its HTTP endpoint (choose another "
              f"--controller-port, or --no-controllers)", file=file)
    for op in pipeline.window_operators:
        if isinstance(op, GreenWaveOperator):
            op.add_sink(centre.sink)
    ops = problems_operator(pipeline)
    if ops is not None:
        ops.hub = centre.hub
    if where:
        print(f"citybrain: signal controllers at {where} ({len(centre.hub.known)} intersections; "
              f"controller keys derive from {'$CITYBRAIN_CONTROLLER_SECRET' if master_from_env() else Path(settings.out_dir) / 'controllers' / 'master.key'})",
              file=file)
    return centre


def master_from_env() -> bool:
    import os

    from streams.controllers.centre import ENV_SECRET

    return bool(os.environ.get(ENV_SECRET))
