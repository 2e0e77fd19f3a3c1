"""``citybrain alerts …``: list, acknowledge, silence, subscriptions, parked notifications, audit log.

With ``--api URL --token TOKEN`` (or ``CITYBRAIN_API_URL`` / ``CITYBRAIN_TOKEN``) the commands are
clients of the cockpit's API v1: who acknowledges or silences is the token's identity, and its
role decides what is allowed. Without them, on the machine of the engine, they work against its
Redis (``CITYBRAIN_REDIS_URL``, or the embedded server under ``--out``): the local admin path,
recorded as your login (``local-admin user@host``). Either way no one types who they are
(``--by`` is refused) and a silence must name a concrete label and end within
``silence_max_h`` (24 h by default). The engine applies acknowledgements within a second and
silences and subscriptions at its next window.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

from citybrain.cli import UserError


def _common(p) -> None:
    p.add_argument("--out", metavar="DIR", help="the engine's --out folder (default var/run): where its embedded Redis lives")
    p.add_argument("--config", metavar="FILE", help="settings file (YAML) naming redis_url / out_dir")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--api", metavar="URL", default=os.environ.get("CITYBRAIN_API_URL"),
                   help="the cockpit's URL (e.g. http://127.0.0.1:8080): act through API v1 with --token")
    p.add_argument("--token", default=os.environ.get("CITYBRAIN_TOKEN"), help="bearer token for --api (CITYBRAIN_TOKEN)")
    p.add_argument("--by", default=None, help=argparse.SUPPRESS)  # refused: identity comes from the token or login


def register(sub) -> None:
    p = sub.add_parser("alerts", help="list, acknowledge and silence alerts; manage subscriptions",
                       description=__doc__.split("\n\n", 1)[1] if __doc__ else None)
    asub = p.add_subparsers(dest="alerts_command", metavar="ACTION")

    ls = asub.add_parser("list", help="alerts in the running engine (default: firing, acknowledged and pending)")
    _common(ls)
    ls.add_argument("--all", action="store_true", help="include resolved alerts still kept for flap detection")
    ls.set_defaults(func=cmd_list)

    ack = asub.add_parser("ack", help="acknowledge a firing alert (stops its escalation)")
    _common(ack)
    ack.add_argument("fingerprint", help="the alert's fingerprint (see `citybrain alerts list`); a unique prefix is enough")
    ack.add_argument("--comment", default="", help="why / what is being done")
    ack.set_defaults(func=cmd_ack)

    show = asub.add_parser("show", help="one alert as JSON, CAP 1.2 XML or a Smart Data Models Alert")
    _common(show)
    show.add_argument("fingerprint", help="the alert's fingerprint (a unique prefix is enough)")
    show.add_argument("--format", choices=["json", "cap", "sdm"], default="json", help="output format (default json)")
    show.add_argument("--sender", default="citybrain@city.gov.cn", help="CAP sender")
    show.add_argument("--admin-code", default="000000", help="6-digit GB/T 2260 area code for the CAP identifier")
    show.set_defaults(func=cmd_show)

    sil = asub.add_parser("silence", help="mute alerts matching labels for a time (list, add, expire)")
    _common(sil)
    sil.add_argument("action", nargs="?", default="list", choices=["list", "add", "expire"])
    sil.add_argument("--match", action="append", default=[], metavar="LABEL=VALUE",
                     help="label matcher (=, !=, =~ regex, !~); repeat for several (all must match)")
    sil.add_argument("--for", dest="duration", default="1h",
                     help="how long, e.g. 30m, 2h (default 1h), from the engine's current stream time")
    sil.add_argument("--comment", default="", help="why")
    sil.add_argument("--id", default="", help="silence id (for expire)")
    sil.set_defaults(func=cmd_silence)

    subs = asub.add_parser("subscriptions", help="list, add (from a YAML file) or remove subscriptions")
    _common(subs)
    subs.add_argument("action", nargs="?", default="list", choices=["list", "add", "remove"])
    subs.add_argument("target", nargs="?", help="YAML file of subscriptions (add) or a subscription id (remove)")
    subs.set_defaults(func=cmd_subscriptions)

    parked = asub.add_parser("parked", help="notifications that exhausted their retries; --replay sends them again")
    _common(parked)
    parked.add_argument("--replay", nargs="*", metavar="ID", help="replay these entries (or keys); no ids: all")
    parked.set_defaults(func=cmd_parked)

    audit = asub.add_parser("audit", help="the last state changes and who made them")
    _common(audit)
    audit.add_argument("--limit", type=int, default=30, help="how many entries (default 30)")
    audit.set_defaults(func=cmd_audit)

    notes = asub.add_parser("notifications", help="the last notifications enqueued")
    _common(notes)
    notes.add_argument("--limit", type=int, default=30, help="how many (default 30)")
    notes.set_defaults(func=cmd_notifications)

    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


# --- plumbing ---------------------------------------------------------------------------------------

def _url(args) -> str:
    from streams.redis_server import running_redis_url

    out_dir, redis_url = args.out, None
    try:
        from citybrain.settings import load_settings

        settings = load_settings(args.config)
        redis_url = settings.redis_url
        out_dir = out_dir or settings.out_dir
    except UserError:
        raise
    except Exception:
        pass
    if redis_url:
        return redis_url
    url = running_redis_url(Path(out_dir or "var/run") / "redis")
    if url is None:
        raise UserError("no running engine's Redis found: start `citybrain run` (same --out), "
                        "or set CITYBRAIN_REDIS_URL to the Redis it uses")
    return url


def _actor(args) -> str:
    """Who makes a change on the local admin path: the login, never a name typed on the command line."""
    from citybrain.commands.tokens import local_actor

    if args.by is not None:
        raise UserError(f"--by {args.by!r} is not accepted: who acts is the API token's identity (--api/--token) or, "
                        "on the engine's machine, your login (local admin path)")
    return local_actor()


def _api(args, method: str, path: str, body: dict | None = None):
    """One call to API v1 with the token; its JSON error (field and message) becomes the CLI's error."""
    import httpx

    if not args.token:
        raise UserError("--api needs --token (or CITYBRAIN_TOKEN): make one with `citybrain tokens create`")
    if args.by is not None:
        _actor(args)
    try:
        r = httpx.request(method, args.api.rstrip("/") + path, json=body, timeout=30,
                          headers={"Authorization": f"Bearer {args.token}"})
    except httpx.HTTPError as exc:
        raise UserError(f"cannot reach the API at {args.api}: {exc}") from None
    try:
        data = r.json()
    except ValueError:
        data = {}
    if r.status_code >= 400:
        err = data.get("error", {}) if isinstance(data, dict) else {}
        raise UserError(f"API refused ({r.status_code}) {err.get('field', '')}: {err.get('message', r.text[:200])}")
    return data


def _run(args, coro_fn) -> int:
    from streams.alerts.store import AlertStore

    async def go():
        store = AlertStore.from_url(_url(args))
        try:
            return await coro_fn(store)
        finally:
            await store.close()

    try:
        return asyncio.run(go()) or 0
    except UserError:
        raise
    except BrokenPipeError:  # output piped into head & co
        return 0
    except OSError as exc:
        raise UserError(f"cannot reach Redis: {exc}") from None


def _print(args, rows: list[dict], columns: list[str]) -> None:
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(header_style="bold")
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*[str(r.get(c, "")) for c in columns])
    Console().print(t)


def _hhmm(ms) -> str:
    if not ms:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(ms) / 1000)) + "Z"


# --- commands ---------------------------------------------------------------------------------------

def cmd_list(args) -> int:
    from brain.alerts.model import severity_colour

    def show(alerts, meta) -> int:
        rows = []
        order = {"firing": 0, "acknowledged": 1, "pending": 2, "resolved": 3}
        for a in sorted(alerts, key=lambda a: (order.get(a.status, 9), a.severity, -a.last_seen_ms)):
            if a.status == "resolved" and not args.all:
                continue
            where = "/".join(a.labels[k] for k in ("district", "cell", "segment_id", "sensor_id") if a.labels.get(k))
            rows.append({"fingerprint": a.fingerprint, "level": severity_colour(a.severity), "status": a.status,
                         "tier": a.tier, "rule": a.rule_id, "incident": (a.incident or a.fingerprint)[:8],
                         "where": where, "summary": a.summary,
                         "since": _hhmm(a.fired_ms or a.started_ms), "acked_by": a.acked_by,
                         "muted": a.silenced_by or (f"inhibited by {a.inhibited_by}" if a.inhibited_by else "")})
        _print(args, rows, ["fingerprint", "level", "status", "tier", "rule", "incident", "where", "summary", "since",
                            "acked_by", "muted"])
        if not args.json:
            print(f"{len(rows)} alert(s); engine's last window {_hhmm(meta.get('last_window_ms'))}", file=sys.stderr)
        return 0

    if args.api:
        import msgspec

        from brain.alerts.model import Alert

        page = _api(args, "GET", "/api/v1/alerts?limit=1000" + ("&status=all" if args.all else ""))
        fields = set(Alert.__struct_fields__)
        return show([msgspec.convert({k: v for k, v in r.items() if k in fields}, Alert) for r in page["rows"]], {})

    async def go(store):
        return show(await store.alerts(), await store.meta())

    return _run(args, go)


def cmd_ack(args) -> int:
    if args.api:
        if not args.fingerprint:
            raise UserError("give the alert's fingerprint (or a unique prefix)")
        out = _api(args, "POST", f"/api/v1/alerts/{args.fingerprint}/ack", {"comment": args.comment})
        print(f"acknowledgement of {out['fingerprint']} by {out['acked_by']} sent to the engine")
        return 0
    who = _actor(args)

    async def go(store):
        a = await _one(store, args.fingerprint)
        if a.status != "firing":
            raise UserError(f"alert {a.fingerprint} is {a.status}; only firing alerts can be acknowledged")
        await store.request_ack(a.fingerprint, who, args.comment)
        print(f"acknowledgement of {a.fingerprint} ({a.rule_id}) by {who} sent to the engine")
        return 0

    return _run(args, go)


async def _one(store, prefix: str):
    alerts = await store.alerts()
    hits = [a for a in alerts if a.fingerprint.startswith(prefix)]
    if not hits:
        raise UserError(f"no alert with fingerprint {prefix!r} (see `citybrain alerts list`)")
    if len(hits) > 1:
        raise UserError(f"fingerprint prefix {prefix!r} matches {len(hits)} alerts; give more digits")
    return hits[0]


def cmd_show(args) -> int:
    import msgspec

    from brain.alerts.cap import alert_to_cap
    from brain.alerts.sdm import alert_to_sdm
    from streams.alerts.store import now_ms

    async def go(store):
        a = await _one(store, args.fingerprint)
        if args.format == "cap":
            try:
                print(alert_to_cap(a, sender=args.sender, admin_code=args.admin_code, sent_ms=now_ms(), seq=1,
                                   msg_type="Alert"))
            except ValueError as exc:
                raise UserError(str(exc)) from None
        elif args.format == "sdm":
            print(json.dumps(alert_to_sdm(a), ensure_ascii=False, indent=1))
        else:
            print(json.dumps(msgspec.to_builtins(a), ensure_ascii=False, indent=1))
        return 0

    return _run(args, go)


def cmd_silence(args) -> int:
    from brain.alerts.silences import Silence
    from citybrain.settings import load_settings
    from dashboards.api.policy import PolicyError, check_silence
    from streams.alerts.store import now_ms

    if args.api:
        if args.action == "list":
            rows = [{"id": s["id"], "matchers": ", ".join(s["matchers"]), "from": _hhmm(s["starts_ms"]),
                     "until": _hhmm(s["ends_ms"]), "by": s["created_by"], "comment": s["comment"],
                     "active": "yes" if s["active"] else "no"} for s in _api(args, "GET", "/api/v1/silences")["rows"]]
            _print(args, rows, ["id", "matchers", "from", "until", "by", "comment", "active"])
        elif args.action == "add":
            s = _api(args, "POST", "/api/v1/silences", {"matchers": args.match, "duration": args.duration,
                                                         "comment": args.comment})
            print(f"silence {s['id']} created until {_hhmm(s['ends_ms'])} for {', '.join(s['matchers'])} by {s['created_by']}")
        else:
            _api(args, "POST", f"/api/v1/silences/{args.id}/expire")
            print(f"silence {args.id} expired")
        return 0
    max_h = load_settings(args.config).silence_max_h

    async def go(store):
        # the engine judges silences in stream time (equal to wall time live, not in a simulation)
        meta = await store.meta()
        now = int(meta["last_window_ms"]) if meta.get("last_window_ms") else now_ms()
        if args.action == "list":
            rows = [{"id": s.id, "matchers": ", ".join(s.matchers), "from": _hhmm(s.starts_ms), "until": _hhmm(s.ends_ms),
                     "by": s.created_by, "comment": s.comment, "active": "yes" if s.active_at(now) else "no"}
                    for s in (await store.silences()).values()]
            _print(args, rows, ["id", "matchers", "from", "until", "by", "comment", "active"])
            return 0
        who = _actor(args)
        if args.action == "add":
            try:
                dur = check_silence(args.match, args.duration, max_h)
                s = Silence.create(args.match, now, now + dur, who, args.comment)
            except PolicyError as exc:
                raise UserError(f"--{'match' if exc.field == 'matchers' else 'for'}: {exc.message}") from None
            except ValueError as exc:
                raise UserError(str(exc)) from None
            await store.put_silence(s, actor=who, action="create")
            print(f"silence {s.id} created until {_hhmm(s.ends_ms)} for {', '.join(s.matchers)}")
            return 0
        sil = await store.silences()
        if args.id not in sil:
            raise UserError(f"no silence with id {args.id!r} (see `citybrain alerts silence list`)")
        s = sil[args.id]
        s.ends_ms = min(s.ends_ms, now)
        await store.put_silence(s, actor=who, action="expire")
        print(f"silence {s.id} expired")
        return 0

    return _run(args, go)


def _subscription_rows(subs) -> list[dict]:
    rows = []
    for s in subs:
        what = ",".join(s.categories) or "all"
        where = ",".join(s.districts + s.streets + s.cells) + (" +polygon" if s.polygon else "") or "city"
        rows.append({"id": s.id, "department": s.department, "role": s.role, "contact": s.contact,
                     "what": f"{what} ≥{s.min_severity}", "where": where, "tier": s.tier or "any",
                     "channel": f"{s.channel.type} {s.channel.url or s.channel.stream}".strip()})
    return rows


SUBSCRIPTION_COLUMNS = ["id", "department", "role", "contact", "what", "where", "tier", "channel"]


def _subscriptions_file(path: str):
    from streams.alerts.service import load_subscriptions_file

    if not Path(path).is_file():
        raise UserError(f"{path}: no such file")
    try:
        return load_subscriptions_file(path)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _subscriptions_api(args) -> int:
    """The API path: the token decides what is visible and editable (a department: its own only)."""
    from urllib.parse import quote

    from brain.alerts.routing import Subscription

    if args.action == "list":
        data = _api(args, "GET", "/api/v1/subscriptions")["rows"]
        _print(args, _subscription_rows([Subscription.from_dict(d) for d in data]), SUBSCRIPTION_COLUMNS)
        return 0
    if not args.target:
        raise UserError(f"subscriptions {args.action} needs a {'YAML file' if args.action == 'add' else 'subscription id'}")
    if args.action == "remove":
        _api(args, "DELETE", f"/api/v1/subscriptions/{quote(args.target, safe='')}")
        print(f"subscription {args.target} removed")
        return 0
    subs = _subscriptions_file(args.target)
    stored = []
    for s in subs:  # one PUT each: a refusal names the subscription, the ones before it stay stored
        try:
            _api(args, "PUT", f"/api/v1/subscriptions/{quote(s.id, safe='')}", s.to_dict())
        except UserError as exc:
            done = f" ({len(stored)} stored before it: {', '.join(stored)})" if stored else ""
            raise UserError(f"subscription {s.id!r}: {exc}{done}") from None
        stored.append(s.id)
    print(f"{len(stored)} subscription(s) stored: {', '.join(stored)}")
    return 0


def cmd_subscriptions(args) -> int:
    if args.api:
        return _subscriptions_api(args)
    who = _actor(args) if args.action != "list" else ""

    async def go(store):
        if args.action == "list":
            _print(args, _subscription_rows((await store.subscriptions()).values()), SUBSCRIPTION_COLUMNS)
            return 0
        if not args.target:
            raise UserError(f"subscriptions {args.action} needs a {'YAML file' if args.action == 'add' else 'subscription id'}")
        if args.action == "add":
            subs = _subscriptions_file(args.target)
            for s in subs:
                await store.put_subscription(s, actor=who)
            print(f"{len(subs)} subscription(s) stored: {', '.join(s.id for s in subs)}")
            return 0
        if not await store.remove_subscription(args.target, actor=who):
            raise UserError(f"no subscription {args.target!r}")
        print(f"subscription {args.target} removed")
        return 0

    return _run(args, go)


def cmd_parked(args) -> int:
    async def go(store):
        if args.replay is not None:
            n = await store.replay_parked(args.replay or None, actor=_actor(args))
            print(f"{n} parked notification(s) sent back to their outboxes")
            return 0
        rows = [{**p, "parked": _hhmm(p["parked_ms"])} for p in await store.parked()]
        _print(args, rows, ["id", "key", "sub", "attempts", "error", "parked"])
        return 0

    return _run(args, go)


def cmd_audit(args) -> int:
    def show(entries) -> int:
        rows = [{**e, "time": _hhmm(e.get("ts_ms"))} for e in entries]
        _print(args, rows, ["time", "actor", "action", "target", "old", "new", "detail"])
        return 0

    if args.api:
        return show(_api(args, "GET", f"/api/v1/audit?limit={args.limit}")["rows"])

    async def go(store):
        return show(await store.audit(args.limit))

    return _run(args, go)


def cmd_notifications(args) -> int:
    async def go(store):
        rows = [{**e, "time": _hhmm(e.get("ts_ms"))} for e in await store.notifications(args.limit)]
        _print(args, rows, ["time", "key", "sub", "status", "reason", "alerts", "summary"])
        return 0

    return _run(args, go)
