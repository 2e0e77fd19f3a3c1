"""Signal priority: emergency vehicles (一键护航) and buses, within bounds, back to the plan after.

A priority request asks one intersection to show green to one approach during a window
``[arrival - pre_s, arrival + post_s]``. Against the coordinated plan, :func:`green_window`
finds the cheapest way to do it:

* ``none`` — the plan already shows green then;
* ``extend`` — hold the served green past its planned end (green extension);
* ``early`` — cut the phases before it short so the served green starts early (early green);
* ``partial`` — neither fits the bounds: the best that does (the vehicle waits the rest).

Time taken from the other phases comes only from green above their minimum
(``max(min_green_s, ped_clearance_s)``) and never exceeds ``max_cross_delay_s``; the cycle length
is kept, so the intersection is back on its coordinated offset at the next cycle — restoring
the plan needs no transition. ``phase_greens`` in the request gives the adjusted green
intervals (shared clock) of the affected cycle, what a controller (or SPaT) applies.

:class:`EmergencyPriority` follows one emergency vehicle along its route from position/speed
updates, requesting each intersection ahead (within ``horizon_s``) as its arrival time firms
up, and sending ``restore`` once it has crossed; every request is kept in :attr:`log`.
:class:`BusPriority` answers single bus requests with tighter bounds.

Example:
    >>> from brain.greenwave.model import CorridorSpec, IntersectionSpec, PhaseSpec
    >>> from brain.greenwave.optimizer import optimize_corridor
    >>> ph = [PhaseSpec(name="EW", min_green_s=15, coordinated=True, green_s=40),
    ...       PhaseSpec(name="NS", min_green_s=10, green_s=40)]
    >>> spec = CorridorSpec(id="C", cycle_s=90, intersections=[
    ...     IntersectionSpec(id="A", position_m=0, phases=ph), IntersectionSpec(id="B", position_m=600, phases=ph)])
    >>> plan = optimize_corridor(spec)
    >>> ev = EmergencyPriority(spec, plan, route=["A", "B"], vehicle_id="AMB-1", incident_id="INC-7")
    >>> t0 = plan.intersections[0].offset_s            # A's arterial green runs t0 .. t0 + 40
    >>> r = ev.update(t_s=t0 + 30.0, position_m=-200.0, speed_kmh=54.0)[0]
    >>> r.intersection, r.action, round(r.eta_s - t0, 1), round(r.cross_delay_s, 1)  # green held 7.3 s longer
    ('A', 'extend', 43.3, 7.3)
    >>> [x.action for x in ev.update(t_s=t0 + 46.0, position_m=30.0, speed_kmh=54.0)][:1]
    ['restore']
"""
from __future__ import annotations

import math
from typing import Sequence

import msgspec

from brain.greenwave.limits import DEFAULT_LIMITS, SafetyLimits
from brain.greenwave.model import CorridorSpec
from brain.greenwave.plan import Plan


class PriorityRequest(msgspec.Struct, forbid_unknown_fields=True):
    """One request to one intersection (times on the plan's shared clock, s)."""

    request_id: str
    kind: str  # "emergency" | "bus"
    vehicle_id: str
    intersection: str
    phase: int  # NTCIP phase number served
    action: str  # none | extend | early | partial | restore | denied
    issued_s: float
    eta_s: float
    hold_from_s: float
    hold_to_s: float
    cross_delay_s: float = 0.0
    incident_id: str | None = None
    phase_greens: list[list[float]] = []  # [phase number, green start, green end] of the adjusted cycle


def _served_phase(spec: CorridorSpec, i: int, direction: str) -> int:
    return spec.intersections[i].phase_index(direction)


def green_window(plan: Plan, spec: CorridorSpec, i: int, direction: str, arrive_s: float,
                 pre_s: float, post_s: float, max_cross_delay_s: float,
                 now_s: float = -math.inf, limits: SafetyLimits = DEFAULT_LIMITS,
                 recover: bool = False) -> tuple[str, float, float, float, list]:
    """How intersection ``i`` can show green to ``direction`` ("out"/"in") around ``arrive_s``.

    ``recover`` (emergency preemption): the served phase's own green above its floor may pay
    too — an extension may push the *next* served green's start later (it still ends where the
    plan has it), an early green may end the *current* served green sooner — so coordination is
    back at the end of the next served green rather than at the end of this cycle. Without it
    only the other phases' slack pays, which is nothing when they run at their minimum.

    ``now_s`` is when the request is made: a green that has already ended cannot be extended,
    and a phase cannot be cut to end in the past. No green is cut below the spec's minimum nor
    the absolute ``limits`` (green, pedestrian walk + clearance), and an early green never makes
    the cycle shorter than ``limits.cycle_min_s``. Returns
    ``(action, hold_from_s, hold_to_s, cross_delay_s, phase_greens)``.
    """
    it = plan.intersections[i]
    sit = spec.intersections[i]
    k = _served_phase(spec, i, direction)
    nph = len(it.phases)
    C = plan.cycle_s
    g = it.phases[k].green_s
    lo, hi = arrive_s - pre_s, arrive_s + post_s
    start0 = it.offset_s + it.phase_start_s(k)
    j = math.floor((lo - start0) / C)
    s_prev = start0 + j * C  # latest served-green start at or before lo
    e_prev = s_prev + g
    s_next = s_prev + C
    if hi <= e_prev + 1e-9 or (lo >= s_next - 1e-9 and hi <= s_next + g + 1e-9):
        return "none", lo, hi, 0.0, []
    # the other phases of this cycle, in ring order after the served one: planned green intervals
    ring = [(k + m) % nph for m in range(1, nph)]
    t = e_prev + it.phases[k].yellow_s + it.phases[k].all_red_s
    planned = []
    for kk in ring:
        p = it.phases[kk]
        planned.append((kk, t, t + p.green_s))
        t += p.split_s

    def slack_of(kk: int, end: float) -> float:
        p, sp = it.phases[kk], sit.phases[kk]
        floor = max(sp.min_green_s, sp.ped_clearance_s, limits.green_min_s,
                    limits.ped_walk_min_s if sp.ped_clearance_s > 0 else 0.0)
        return max(p.green_s - floor, 0.0) if end > now_s else 0.0

    # extension delays every later phase and takes the time back from them (with ``recover``,
    # what they cannot give is taken from the start of the next served green)
    ext = hi - e_prev
    shares_ext = [slack_of(kk, e) for kk, _, e in planned] if e_prev >= now_s else [0.0] * len(planned)
    own_ext = slack_of(k, s_next + g) if recover and e_prev >= now_s else 0.0
    cap_ext = min(sum(shares_ext) + own_ext, max_cross_delay_s) if e_prev >= now_s else -1.0
    # an early green cuts the phases before it, in ring order, none to end before now (with
    # ``recover``, the current served green first: it may end sooner, not before now)
    adv = s_next - lo
    own_early = min(slack_of(k, e_prev), max(0.0, e_prev - now_s)) if recover else 0.0

    def early_cuts(target: float) -> list[float]:
        c0 = min(own_early, max(target, 0.0))
        cuts, shift = [], c0
        for kk, _, e in planned:
            c = min(slack_of(kk, e), max(0.0, e - shift - now_s), max(target - shift, 0.0))
            cuts.append(c)
            shift += c
        return [c0] + cuts

    cap_early = min(sum(early_cuts(math.inf)), max_cross_delay_s, max(C - limits.cycle_min_s, 0.0))
    options = []
    if lo < e_prev and 0 <= ext <= cap_ext + 1e-9:
        options.append(("extend", ext))
    if lo >= e_prev and ext <= cap_ext + 1e-9:
        options.append(("extend", ext))
    if 0 <= adv <= cap_early + 1e-9:
        options.append(("early", adv))
    if options:
        action, cost = min(options, key=lambda o: o[1])
        final = action
    else:
        final = "partial"
        # a partial extension helps only if the vehicle itself arrives within it; otherwise an
        # early start shortens its wait by all the time it can take
        if cap_ext > 0 and e_prev + cap_ext >= arrive_s:
            action, cost = "extend", cap_ext
        else:
            action, cost = "early", max(cap_early, 0.0)
    if action == "extend":
        tot = sum(shares_ext)
        cuts = [min(cost, tot) * sh / tot if tot > 0 else 0.0 for sh in shares_ext]
        c0 = 0.0
    else:
        c0, *cuts = early_cuts(cost)
    greens = [[float(it.phases[k].number), s_prev, e_prev + (cost if action == "extend" else -c0)]]
    t = greens[0][2] + it.phases[k].yellow_s + it.phases[k].all_red_s
    for (kk, _, _), cut in zip(planned, cuts):
        p = it.phases[kk]
        dur = p.green_s - cut
        greens.append([float(p.number), t, t + dur])
        t += dur + p.yellow_s + p.all_red_s
    if action == "extend":
        hold = (max(lo, s_prev), greens[0][2])
        if t > s_next + 1e-9:  # the next served green starts late and ends as planned: back on the plan
            greens.append([float(it.phases[k].number), t, s_next + g])
    else:
        greens.append([float(it.phases[k].number), t, s_next + g])  # next served green: early start, planned end
        hold = (t, max(hi, t))
    return final, hold[0], hold[1], float(cost), greens


class EmergencyPriority:
    """Green ahead of one emergency vehicle along ``route`` (intersection ids in travel order).

    Parameters: ``pre_s``/``post_s`` — green needed before/after the predicted arrival (queue
    clearing, prediction error); ``max_cross_delay_s`` — most green taken from the other phases
    at one intersection; ``horizon_s`` — only intersections reached within this are requested;
    ``reissue_s`` — a new request when the predicted arrival moves by more than this;
    ``clear_m`` — past an intersection by this much, the vehicle has crossed (restore);
    ``recover`` — preemption for emergencies: the served phase's own slack pays too and
    coordination is back by the end of the next served green (see :func:`green_window`).
    """

    def __init__(self, spec: CorridorSpec, plan: Plan, route: Sequence[str], vehicle_id: str,
                 incident_id: str | None = None, pre_s: float = 6.0, post_s: float = 4.0,
                 max_cross_delay_s: float = 30.0, horizon_s: float = 90.0, reissue_s: float = 3.0,
                 clear_m: float = 20.0, kind: str = "emergency", limits: SafetyLimits = DEFAULT_LIMITS,
                 recover: bool = False):
        ids = [it.id for it in spec.intersections]
        unknown = [r for r in route if r not in ids]
        if unknown:
            raise ValueError(f"route intersections not on corridor {spec.id!r}: {unknown}")
        if len(route) == 0:
            raise ValueError("route must name at least one intersection")
        idx = [ids.index(r) for r in route]
        if len(idx) > 1 and not (all(a < b for a, b in zip(idx, idx[1:])) or all(a > b for a, b in zip(idx, idx[1:]))):
            raise ValueError("route must follow the corridor in one direction")
        for name, v in (("pre_s", pre_s), ("post_s", post_s), ("max_cross_delay_s", max_cross_delay_s),
                        ("horizon_s", horizon_s), ("reissue_s", reissue_s), ("clear_m", clear_m)):
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be >= 0, got {v}")
        self.spec, self.plan = spec, plan
        self.route_idx = idx
        self.direction = "in" if len(idx) > 1 and idx[1] < idx[0] else "out"
        self.vehicle_id, self.incident_id = vehicle_id, incident_id
        self.pre_s, self.post_s = pre_s, post_s
        self.max_cross_delay_s, self.horizon_s = max_cross_delay_s, horizon_s
        self.reissue_s, self.clear_m = reissue_s, clear_m
        self.kind, self.limits, self.recover = kind, limits, recover
        self.log: list[PriorityRequest] = []
        self._active: dict[int, PriorityRequest] = {}
        self._done: set[int] = set()
        self._seq = 0

    def _request(self, t_s: float, i: int, action: str, eta: float, hold: tuple[float, float],
                 cost: float, greens: list) -> PriorityRequest:
        self._seq += 1
        it = self.plan.intersections[i]
        k = _served_phase(self.spec, i, self.direction)
        r = PriorityRequest(request_id=f"{self.vehicle_id}-{it.id}-{self._seq}", kind=self.kind, vehicle_id=self.vehicle_id,
                            intersection=it.id, phase=it.phases[k].number, action=action, issued_s=t_s, eta_s=eta,
                            hold_from_s=hold[0], hold_to_s=hold[1], cross_delay_s=cost,
                            incident_id=self.incident_id, phase_greens=greens)
        self.log.append(r)
        return r

    def release(self, t_s: float) -> list[PriorityRequest]:
        """Release every intersection still held and stop following (arrived or cancelled)."""
        out = []
        for i in self.route_idx:
            if i not in self._done:
                self._done.add(i)
                prev = self._active.pop(i, None)
                if prev is not None:
                    out.append(self._request(t_s, i, "restore", prev.eta_s, (t_s, t_s), 0.0, []))
        return out

    def hold_off(self, t_s: float, position_m: float) -> list[PriorityRequest]:
        """Follow without asking (conditional priority, e.g. a bus on time): every hold is
        restored, intersections passed are done; a later :meth:`update` asks again ahead."""
        sign = 1.0 if self.direction == "out" else -1.0
        out = []
        for i in self.route_idx:
            if i in self._done:
                continue
            passed = sign * (self.spec.intersections[i].position_m - position_m) < -self.clear_m
            if passed:
                self._done.add(i)
            prev = self._active.pop(i, None)
            if prev is not None:
                out.append(self._request(t_s, i, "restore", prev.eta_s, (t_s, t_s), 0.0, []))
        return out

    def active(self) -> list[str]:
        """Intersections requested and not yet released."""
        return [self.plan.intersections[i].id for i in self._active]

    def update(self, t_s: float, position_m: float, speed_kmh: float) -> list[PriorityRequest]:
        """New position (m along the corridor) and speed; returns the requests issued now."""
        if not (math.isfinite(t_s) and math.isfinite(position_m) and math.isfinite(speed_kmh)) or speed_kmh < 0:
            raise ValueError("t_s, position_m must be finite and speed_kmh >= 0")
        # a stopped vehicle will move off at about the corridor's progression speed
        v = max(speed_kmh, 0.5 * (self.spec.speed_out_kmh if self.direction == "out" else self.spec.speed_in_kmh)) / 3.6
        sign = 1.0 if self.direction == "out" else -1.0
        out = []
        for i in self.route_idx:
            if i in self._done:
                continue
            x = self.spec.intersections[i].position_m
            ahead = sign * (x - position_m)
            if ahead < -self.clear_m:
                self._done.add(i)
                prev = self._active.pop(i, None)
                out.append(self._request(t_s, i, "restore", prev.eta_s if prev else t_s, (t_s, t_s), 0.0, []))
                continue
            if ahead < 0:
                continue  # in the box: keep the hold
            eta = t_s + ahead / v
            if eta - t_s > self.horizon_s:
                continue
            prev = self._active.get(i)
            if prev is not None and abs(prev.eta_s - eta) <= self.reissue_s:
                continue
            # a granted window that still covers the new arrival stays: the phases it cut may be
            # over by now, and a fresh request could only do worse
            if prev is not None and prev.action != "partial" and prev.hold_from_s <= eta <= prev.hold_to_s:
                continue
            action, h0, h1, cost, greens = green_window(self.plan, self.spec, i, self.direction, eta,
                                                        self.pre_s, self.post_s, self.max_cross_delay_s, now_s=t_s,
                                                        limits=self.limits, recover=self.recover)
            r = self._request(t_s, i, action, eta, (h0, h1), cost, greens)
            self._active[i] = r
            out.append(r)
        return out


class BusPriority:
    """Bus priority: green extension up to ``max_extension_s`` or early green up to ``max_early_s``.

    ``request`` returns the :class:`PriorityRequest` (``action="denied"`` when neither fits);
    every answer is kept in :attr:`log`.
    """

    def __init__(self, spec: CorridorSpec, plan: Plan, max_extension_s: float = 10.0, max_early_s: float = 10.0,
                 pre_s: float = 2.0, post_s: float = 2.0):
        for name, v in (("max_extension_s", max_extension_s), ("max_early_s", max_early_s),
                        ("pre_s", pre_s), ("post_s", post_s)):
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be >= 0, got {v}")
        self.spec, self.plan = spec, plan
        self.max_extension_s, self.max_early_s = max_extension_s, max_early_s
        self.pre_s, self.post_s = pre_s, post_s
        self.log: list[PriorityRequest] = []

    def request(self, t_s: float, intersection: str, direction: str, eta_s: float, vehicle_id: str) -> PriorityRequest:
        ids = [it.id for it in self.spec.intersections]
        if intersection not in ids:
            raise ValueError(f"unknown intersection {intersection!r}")
        if direction not in ("out", "in"):
            raise ValueError(f"direction must be 'out' or 'in', got {direction!r}")
        i = ids.index(intersection)
        action, h0, h1, cost, greens = green_window(self.plan, self.spec, i, direction, eta_s, self.pre_s, self.post_s,
                                                    max(self.max_extension_s, self.max_early_s), now_s=t_s)
        bound = self.max_extension_s if action == "extend" else self.max_early_s
        if action == "partial" or cost > bound + 1e-9:
            action, greens, cost = "denied", [], 0.0
        k = _served_phase(self.spec, i, direction)
        r = PriorityRequest(request_id=f"{vehicle_id}-{len(self.log) + 1}", kind="bus", vehicle_id=vehicle_id,
                            intersection=intersection, phase=self.plan.intersections[i].phases[k].number,
                            action=action, issued_s=t_s, eta_s=eta_s, hold_from_s=h0, hold_to_s=h1,
                            cross_delay_s=cost, phase_greens=greens)
        self.log.append(r)
        return r
