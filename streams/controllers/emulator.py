"""A signal controller that speaks the protocol: what ``citybrain controller emulate`` runs.

:class:`EmulatedController` is the controller's logic without transport: it verifies a plan's
MAC with its own key, refuses replays (a sequence number not above the last one) and plans that
fail :func:`~streams.controllers.protocol.check_message`, acknowledges, switches to the plan at
its valid-from time, and reports what it runs (:func:`~streams.controllers.protocol.phase_at`).
:func:`run_http` drives one or more of them against the HTTP endpoint.

Example:
    >>> from streams.controllers.protocol import PlanMessage, Split, controller_key, sign
    >>> key = controller_key(b"centre-master-secret", "J1")
    >>> plan = sign(PlanMessage(intersection_id="J1", plan_id="C-1", corridor="C", pattern=1, cycle_s=60.0,
    ...     offset_s=10.0, coord_phase=1, sequence=[1, 2], valid_from_ms=0, issued_ms=0, ack_by_ms=30_000, seq=1,
    ...     splits=[Split(phase=1, name="EW", split_s=35.0, green_s=30.0, yellow_s=3.0, all_red_s=2.0),
    ...             Split(phase=2, name="NS", split_s=25.0, green_s=20.0, yellow_s=3.0, all_red_s=2.0)]), key)
    >>> ctl = EmulatedController("J1", key)
    >>> ctl.receive(plan, now_ms=1_000).status
    'accepted'
    >>> ctl.receive(plan, now_ms=2_000) is None          # the same message again: a replay, ignored
    True
    >>> st = ctl.status(now_ms=50_000)                    # 40 s into the cycle: phase 2, 5 s in
    >>> st.plan_id, st.phase, st.phase_time_s
    ('C-1', 2, 5.0)
    >>> forged = msgspec.structs.replace(plan, seq=2, offset_s=0.0)   # changed on the way
    >>> ctl.receive(forged, now_ms=3_000).reason
    'bad MAC: not signed by the centre with this controller key'
"""
from __future__ import annotations

import asyncio
import time

import msgspec

from streams.controllers.protocol import (
    AckMessage,
    PlanMessage,
    StatusMessage,
    check_message,
    phase_at,
    request_mac,
    sign,
    verify,
)


class EmulatedController:
    """One controller's plan handling and status (see the module docstring)."""

    def __init__(self, intersection_id: str, key: bytes, detector_faults: int = 0):
        self.id = intersection_id
        self.key = key
        self.last_seq = 0
        self.pending: PlanMessage | None = None   # accepted, not yet valid
        self.running: PlanMessage | None = None
        self.detector_faults = detector_faults
        self.log: list[tuple[int, str, str]] = []  # (ms, plan id, what happened)

    def receive(self, msg: PlanMessage, now_ms: int) -> AckMessage | None:
        """Check a fetched plan; the signed answer, or None when it is not new (replay, same plan)."""
        if msg.seq <= self.last_seq:
            return None
        if msg.intersection_id != self.id:
            reason = f"plan for {msg.intersection_id}, this is {self.id}"
        elif not verify(msg, self.key):
            reason = "bad MAC: not signed by the centre with this controller key"
        else:
            problems = check_message(msg)
            reason = "; ".join(problems)
        self.last_seq = msg.seq
        if reason:
            self.log.append((now_ms, msg.plan_id, f"rejected: {reason}"))
            return sign(AckMessage(intersection_id=self.id, plan_id=msg.plan_id, seq=msg.seq, status="rejected",
                                   ack_ms=int(now_ms), reason=reason), self.key)
        self.pending = msg
        self.log.append((now_ms, msg.plan_id, "accepted"))
        self._switch(now_ms)
        return sign(AckMessage(intersection_id=self.id, plan_id=msg.plan_id, seq=msg.seq, status="accepted",
                               ack_ms=int(now_ms)), self.key)

    def _switch(self, now_ms: int) -> None:
        if self.pending is not None and (self.pending.valid_from_ms or 0) <= now_ms:
            self.running, self.pending = self.pending, None
            self.log.append((now_ms, self.running.plan_id, "running"))

    def status(self, now_ms: int) -> StatusMessage:
        """The signed report of what runs at ``now_ms`` (free running, pattern 0, before any plan)."""
        self._switch(now_ms)
        if self.running is None:
            st = StatusMessage(intersection_id=self.id, plan_id="", pattern=0, phase=1, phase_time_s=0.0,
                               ts_ms=int(now_ms), mode="free", detector_faults=self.detector_faults)
        else:
            ph, t = phase_at(self.running, now_ms)
            st = StatusMessage(intersection_id=self.id, plan_id=self.running.plan_id, pattern=self.running.pattern,
                               phase=ph, phase_time_s=round(t, 3), ts_ms=int(now_ms), mode="coordinated",
                               cycle_time_s=self.running.cycle_s, detector_faults=self.detector_faults)
        return sign(st, self.key)


async def poll_once(session, base_url: str, ctl: EmulatedController, now_ms: int) -> dict:
    """One round for one controller over HTTP: fetch, maybe acknowledge, report status."""
    out = {"intersection": ctl.id}
    headers = {"X-CityBrain-Time": str(now_ms), "X-CityBrain-Auth": request_mac(ctl.key, "GET", ctl.id, now_ms)}
    async with session.get(f"{base_url}/controllers/{ctl.id}/plan", headers=headers) as resp:
        body = await resp.read()
        if resp.status != 200:
            out["fetch"] = f"{resp.status}: {body.decode(errors='replace')}"
            msg = None
        else:
            msg = msgspec.json.decode(body, type=PlanMessage)
    if msg is not None:
        ack = ctl.receive(msg, now_ms)
        if ack is not None:
            async with session.post(f"{base_url}/controllers/{ctl.id}/ack", data=msgspec.json.encode(ack)) as resp:
                out["ack"] = f"{ack.status} {msg.plan_id} #{msg.seq} -> {resp.status}"
    st = ctl.status(now_ms)
    async with session.post(f"{base_url}/controllers/{ctl.id}/status", data=msgspec.json.encode(st)) as resp:
        out["status"] = f"plan {st.plan_id or '-'} phase {st.phase} +{st.phase_time_s:.1f} s -> {resp.status}"
    return out


async def run_http(base_url: str, controllers: list[EmulatedController], *, interval_s: float = 1.0,
                   rounds: int | None = None, on_round=None, clock=lambda: int(time.time() * 1000)) -> None:
    """Poll the centre every ``interval_s`` for ``rounds`` rounds (None: forever)."""
    import aiohttp

    k = 0
    async with aiohttp.ClientSession() as session:
        while rounds is None or k < rounds:
            now = clock()
            results = [await poll_once(session, base_url.rstrip("/"), c, now) for c in controllers]
            if on_round is not None:
                on_round(results)
            k += 1
            if rounds is None or k < rounds:
                await asyncio.sleep(interval_s)
