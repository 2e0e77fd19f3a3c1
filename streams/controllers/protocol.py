"""The controller protocol's messages and their MACs (NTCIP 1202-style timing, HMAC-SHA256 signed).

A :class:`PlanMessage` is one controller's share of a corridor plan: pattern number, cycle,
offset, the split table, the phase sequence and the valid-from time, plus a per-controller
sequence number (a replayed older message is refused) and the time by which the controller
must acknowledge it. The centre signs it with that controller's own key, so a controller can
check the plan's origin and that nothing changed on the way; the controller signs its
:class:`AckMessage` and its status reports with the same key, so the centre knows who speaks.
Keys are per controller: :func:`controller_key` derives one from the centre's master secret and
the intersection id (HMAC as a key-derivation function), so the centre stores one secret and
each controller is commissioned with its own; one leaked controller key opens no other.

Signing covers the message's canonical JSON (msgspec's field order, ``mac`` empty). Requests
that carry no body (a plan fetch) are authenticated by :func:`request_mac` over the method,
the intersection and a timestamp that must be within :data:`MAX_SKEW_MS` of the centre's clock.

Example:
    >>> key = controller_key(b"centre-master-secret", "J1")
    >>> msg = PlanMessage(intersection_id="J1", plan_id="C-1", corridor="C", pattern=1, cycle_s=60.0,
    ...                   offset_s=12.0, coord_phase=1, sequence=[1, 2],
    ...                   splits=[Split(phase=1, name="EW", split_s=35.0, green_s=30.0, yellow_s=3.0, all_red_s=2.0),
    ...                           Split(phase=2, name="NS", split_s=25.0, green_s=20.0, yellow_s=3.0, all_red_s=2.0)],
    ...                   valid_from_ms=0, issued_ms=0, ack_by_ms=30_000, seq=1)
    >>> signed = sign(msg, key)
    >>> verify(signed, key), verify(signed, controller_key(b"centre-master-secret", "J2"))
    (True, False)
    >>> tampered = msgspec.structs.replace(signed, offset_s=40.0)
    >>> verify(tampered, key)
    False
"""
from __future__ import annotations

import hashlib
import hmac
from typing import Literal, Union

import msgspec

from brain.greenwave.limits import DEFAULT_LIMITS as LIM
from brain.greenwave.plan import Plan, to_ntcip

#: How far a request's timestamp may be from the centre's clock (ms).
MAX_SKEW_MS = 60_000
TIME_TOL_S = 0.01


class Split(msgspec.Struct, forbid_unknown_fields=True):
    """One phase of the split table (s): NTCIP splitTime = green + yellow + all-red."""

    phase: int
    name: str
    split_s: float
    green_s: float
    yellow_s: float
    all_red_s: float
    mode: str = "none"


class PlanMessage(msgspec.Struct, forbid_unknown_fields=True):
    """One controller's timing plan (see the module docstring)."""

    intersection_id: str
    plan_id: str
    corridor: str
    pattern: int
    cycle_s: float
    offset_s: float
    coord_phase: int
    sequence: list[int]
    splits: list[Split]
    valid_from_ms: int | None
    issued_ms: int
    ack_by_ms: int
    seq: int
    mac: str = ""


class AckMessage(msgspec.Struct, forbid_unknown_fields=True):
    """A controller's answer to a plan: accepted, or rejected with a reason."""

    intersection_id: str
    plan_id: str
    seq: int
    status: Literal["accepted", "rejected"]
    ack_ms: int
    reason: str = ""
    mac: str = ""


class StatusMessage(msgspec.Struct, forbid_unknown_fields=True):
    """What the controller runs now (NTCIP 1202 status): becomes a ``signal_status`` record."""

    intersection_id: str
    plan_id: str
    pattern: int
    phase: int
    phase_time_s: float
    ts_ms: int
    mode: str = "coordinated"
    cycle_time_s: float = 0.0
    detector_faults: int = 0
    mac: str = ""


Signed = Union[PlanMessage, AckMessage, StatusMessage]


def controller_key(master: bytes, intersection_id: str) -> bytes:
    """The controller's own key, derived from the centre's master secret."""
    if len(master) < 16:
        raise ValueError("the master secret must be at least 16 bytes")
    return hmac.new(master, b"citybrain-controller:" + intersection_id.encode(), hashlib.sha256).digest()


def _canonical(msg: Signed) -> bytes:
    return msgspec.json.encode(msgspec.structs.replace(msg, mac=""))


def sign(msg: Signed, key: bytes) -> Signed:
    """A copy of ``msg`` carrying its HMAC-SHA256 (hex) under ``key``."""
    return msgspec.structs.replace(msg, mac=hmac.new(key, _canonical(msg), hashlib.sha256).hexdigest())


def verify(msg: Signed, key: bytes) -> bool:
    """Whether ``msg``'s MAC is the one ``key`` gives (constant-time comparison)."""
    want = hmac.new(key, _canonical(msg), hashlib.sha256).hexdigest()
    return bool(msg.mac) and hmac.compare_digest(want, msg.mac)


def request_mac(key: bytes, method: str, intersection_id: str, ts_ms: int) -> str:
    """MAC of a body-less request (``GET plan`` at ``ts_ms``)."""
    return hmac.new(key, f"{method.upper()} {intersection_id} {int(ts_ms)}".encode(), hashlib.sha256).hexdigest()


def plan_messages(plan: Plan, *, issued_ms: int, ack_within_ms: int, pattern: int = 1) -> list[PlanMessage]:
    """Per controller, the unsigned message of ``plan`` (``seq`` 0: the hub numbers them)."""
    doc = to_ntcip(plan, pattern=pattern)
    out = []
    for c in doc["controllers"]:
        splits = [Split(phase=s["phase"], name=s["name"], split_s=s["time"], green_s=s["green_s"],
                        yellow_s=s["yellow_s"], all_red_s=s["all_red_s"], mode=s["mode"])
                  for s in c["split_table"]["splits"]]
        out.append(PlanMessage(intersection_id=c["intersection"], plan_id=plan.plan_id, corridor=plan.corridor,
                               pattern=c["pattern"]["number"], cycle_s=c["pattern"]["cycle_time"],
                               offset_s=c["pattern"]["offset_time"], coord_phase=c["split_table"]["coord_phase"],
                               sequence=list(c["sequence"]), splits=splits, valid_from_ms=plan.valid_from_ms,
                               issued_ms=int(issued_ms), ack_by_ms=int(issued_ms) + int(ack_within_ms), seq=0))
    return out


def check_message(msg: PlanMessage) -> list[str]:
    """What a controller checks before it runs a plan (beyond the MAC): the splits add up to the
    cycle, the offset lies in it, the coordinated phase is in the sequence, clearances are there."""
    out = []
    total = sum(s.split_s for s in msg.splits)
    # times travel rounded to the ms; controllers count in 0.1 s, so 10 ms is exact enough
    if abs(total - msg.cycle_s) > TIME_TOL_S:
        out.append(f"splits sum to {total:.3f} s, not the {msg.cycle_s} s cycle")
    if not (0 <= msg.offset_s < msg.cycle_s):
        out.append(f"offset {msg.offset_s} s outside [0, {msg.cycle_s})")
    if msg.coord_phase not in msg.sequence or sorted(msg.sequence) != sorted(s.phase for s in msg.splits):
        out.append("sequence and split table disagree")
    for s in msg.splits:
        if abs(s.green_s + s.yellow_s + s.all_red_s - s.split_s) > TIME_TOL_S or s.yellow_s < LIM.yellow_min_s or s.all_red_s < LIM.all_red_min_s:
            out.append(f"phase {s.phase}: split {s.split_s} s is not green + yellow >= {LIM.yellow_min_s} "
                       f"+ all-red >= {LIM.all_red_min_s}")
    return out


def phase_at(msg: PlanMessage, t_ms: int) -> tuple[int, float]:
    """The phase (number) in green, yellow or all-red at ``t_ms`` under ``msg``, and the time in it
    (s): local cycle time 0 is the coordinated phase's green start, at ``offset_s`` of the
    shared clock (epoch ms)."""
    local = ((t_ms / 1000.0) - msg.offset_s) % msg.cycle_s
    order = msg.sequence[msg.sequence.index(msg.coord_phase):] + msg.sequence[:msg.sequence.index(msg.coord_phase)]
    by = {s.phase: s for s in msg.splits}
    t = 0.0
    for ph in order:
        if local < t + by[ph].split_s:
            return ph, local - t
        t += by[ph].split_s
    return order[-1], by[order[-1]].split_s
