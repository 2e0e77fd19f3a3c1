"""Offsets judged by modelled delay: the corridor's TRANSYT-style model and its offset search.

:func:`delay_params` turns a corridor, a cycle and splits into the arrays of
:mod:`brain.kernels.platoon` (1-s bins; effective green = green + yellow - 3 s, starting 2 s after
the green: start-up loss, and 1 s of yellow used); :func:`delay_offsets` starts from MAXBAND
optima (demand-weighted two-way, equal two-way, and each one-way wave), runs the coordinate
descent from each, and keeps the lowest modelled all-vehicle delay whose worse direction's stops
per vehicle are no more than the demand-weighted MAXBAND plan's: so a one-way wave wins exactly
when the model says it carries more than the two-way band, and never by stopping the other
direction more than the bandwidth plan would. :func:`modelled` reports a plan's figures.

Example:
    >>> from brain.greenwave.model import CorridorSpec, IntersectionSpec, PhaseSpec
    >>> def inter(i, x):
    ...     return IntersectionSpec(id=i, position_m=x, phases=[
    ...         PhaseSpec(name="EW", min_green_s=15, coordinated=True, flow_vph=450),
    ...         PhaseSpec(name="NS", min_green_s=15, flow_vph=200)])
    >>> spec = CorridorSpec(id="C1", intersections=[inter(f"J{k}", 380.0 * k) for k in range(5)],
    ...                     volume_out_vph=900, volume_in_vph=400, lanes_per_direction=2)
    >>> greens = [np.array([30.0, 20.0])] * 5
    >>> res = delay_offsets(spec, 60.0, greens)
    >>> res.delay_s_per_veh <= res.maxband_delay_s_per_veh
    True
    >>> res.stops_worse <= res.maxband_stops_worse * (1 + STOP_SLACK) + 1e-9
    True
"""
from __future__ import annotations

import math

import msgspec
import numpy as np

from brain.greenwave.band import band_problem, phase_shift_s
from brain.greenwave.model import DEFAULT_COORDINATED_FLOW_RATIO, CorridorSpec
from brain.greenwave.subsystems import MIN_SUBSYSTEM, split_subsystems
from brain.kernels import platoon as K
from brain.kernels.bandwidth import max_bandwidth

#: Robertson's dispersion factor: TRANSYT's urban default is 0.35; SUMO's cars (speed factor
#: spread 8 %) disperse less, so the planner defaults a little lower.
DISPERSION_ALPHA = 0.1
#: Time a stop costs beyond the queueing the fluid model counts (s): deceleration and
#: acceleration from ~50 km/h (SUMO's timeLoss and a driver both feel it).
STOP_LOSS_S = 6.0
START_LOST_S = 2.0
#: Platoons run a little behind free-flow travel times: the part released from a queue is still
#: accelerating (~v / 2a = 2.6 s from 50 km/h at 2.6 m/s²), so each link takes this much longer
#: in the model. Calibrated in SUMO on one 8-signal corridor (1.5 and 3 s bracket it).
START_UP_LAG_S = 2.0
#: Least modelled gain over the MAXBAND plan worth leaving it for: the model misjudges close plans
#: by several per cent, and MAXBAND's centred greens are robust to travel-time error. Was 10 %;
#: lowered with STOP_SLACK after SUMO runs on calibration corridors (never the held-out ones) where
#: the model rightly preferred a one-way wave by 9-14 % and the old pair excluded it (notes of issue 15).
MIN_MODEL_GAIN = 0.05
#: How much more than the bandwidth plan the worse direction may stop (per vehicle) for less delay.
#: Wide enough for a one-way wave on the heavier direction (the lighter one then stops at about
#: every other signal), far below uncoordinated signals (a stop at nearly every one).
STOP_SLACK = 0.5
YELLOW_USED_S = 1.0
#: True: side-street traffic turning in leaves the side queue at saturation at the side green's
#: start (a platoon of its own), then at its arrival rate; False (default) spreads it evenly over
#: the side green. Off by default: with ROBUST_TRAVEL_SCALES it gave no gain in SUMO on a held-out
#: corridor seed (+3 % all-vehicle delay on 20 and 30 signals, within the noise; issue 15 notes).
JOIN_QUEUE = False
#: Link travel-time scales every candidate is judged under (mean of the model's figures).
#: Default: exact travel times. ROBUST_TRAVEL_SCALES judges each plan also with links 6 % faster
#: and slower (an optimum that needs exact times is what traffic spoils) at ~2x the planning CPU;
#: it did not pay in SUMO (same notes), so it is an option, not the default.
TRAVEL_SCALES = (1.0,)
ROBUST_TRAVEL_SCALES = (0.94, 1.0, 1.06)
#: A non-coordinated phase serves a crossing street's two approaches and its ``flow_vph`` is the
#: critical (heavier) approach's, so it serves about twice that many vehicles. The cycle choice
#: used to weigh side streets by one approach and count no loss for their stops (the arterial's
#: stops did count): on the SUMO bench side streets are ~2/3 of all vehicles, and the old figure
#: picked 70 s where SUMO's least delay was at 60 s (issue 15 notes of this session).
SIDE_APPROACHES = 2


class DelayResult(msgspec.Struct):
    """Offsets chosen by modelled delay and the model's figures (per vehicle, both directions).

    ``green_start_s`` are outbound coordinated green starts (s, first intersection at 0);
    ``start`` says where the offsets come from: the descent from which MAXBAND start ("two-way",
    "equal", "one-way out", "one-way in"), or the MAXBAND plan kept when the model's gain is small.
    The model's figures are means over the link travel-time scales the offsets were judged under.
    Example: see the module docstring.
    """

    green_start_s: np.ndarray
    start: str
    delay_s_per_veh: float
    stops_out: float
    stops_in: float
    maxband_delay_s_per_veh: float
    maxband_stops_worse: float
    #: first signal (corridor index) of each later subsystem when the plan came from cut subsystems
    cuts: list[int] = []

    @property
    def stops_worse(self) -> float:
        return max(self.stops_out, self.stops_in)


def _bins(x_s: float, bin_s: float) -> int:
    return int(round(x_s / bin_s))


def delay_params(spec: CorridorSpec, cycle_s: float, greens_s: list[np.ndarray],
                 alpha: float = DISPERSION_ALPHA, join_queue: bool | None = None) -> tuple[int, float, np.ndarray]:
    """``(nb, bin_s, prm)`` for :mod:`brain.kernels.platoon` (flows per lane); ``join_queue``
    (default :data:`JOIN_QUEUE`) shapes the joins as the side queue's discharge."""
    join_queue = JOIN_QUEUE if join_queue is None else join_queue
    n = spec.n
    nb = max(int(round(cycle_s)), 8)
    bin_s = cycle_s / nb
    lanes = spec.lanes_per_direction
    prm = np.zeros((K.P_N, n))
    t_out = np.diff(spec.travel_out_s())
    t_in = -np.diff(spec.travel_in_s())  # travel_in_s falls along the corridor
    v_out, v_in = arterial_volumes_vph(spec)
    joins_out = spec.join_out_vph or [0.0] * n
    joins_in = spec.join_in_vph or [0.0] * n
    for i, it in enumerate(spec.intersections):
        ko, ki = it.phase_index("out"), it.phase_index("in")
        g = greens_s[i]
        po, pi = it.phases[ko], it.phases[ki]
        prm[K.P_G_OUT, i] = max(_bins(g[ko] + YELLOW_USED_S - START_LOST_S, bin_s), 1)
        prm[K.P_G_IN, i] = max(_bins(g[ki] + YELLOW_USED_S - START_LOST_S, bin_s), 1)
        prm[K.P_SHIFT_IN, i] = _bins(phase_shift_s(it, g, ko, ki), bin_s)
        prm[K.P_SAT_OUT, i] = po.saturation_vph / 3600.0 * bin_s
        prm[K.P_SAT_IN, i] = pi.saturation_vph / 3600.0 * bin_s
        if i + 1 < n:
            prm[K.P_LINK_OUT, i] = (t_out[i] + START_UP_LAG_S) / bin_s
        if i > 0:
            prm[K.P_LINK_IN, i] = (t_in[i - 1] + START_UP_LAG_S) / bin_s
        prm[K.P_KEEP_OUT, i] = 1.0 - (spec.exit_share_out[i] if spec.exit_share_out else 0.0)
        prm[K.P_KEEP_IN, i] = 1.0 - (spec.exit_share_in[i] if spec.exit_share_in else 0.0)
        # side traffic turning in is released during the non-coordinated phases
        side = [k for k in range(len(it.phases)) if not (it.phases[k].serves_out or it.phases[k].serves_in)]
        if side:
            first = side[0]
            # every effective green starts START_LOST_S late, so shifts between them are unchanged
            prm[K.P_JOIN_SHIFT, i] = _bins(phase_shift_s(it, g, ko, first), bin_s)
            span = sum(g[k] for k in side) + YELLOW_USED_S - START_LOST_S
            prm[K.P_JOIN_LEN, i] = max(_bins(span, bin_s), 1)
            if join_queue:
                prm[K.P_JOIN_HEAD, i], prm[K.P_JOIN_PEAK, i] = _side_queue(it.phases[first], span, cycle_s, bin_s)
        jl = max(prm[K.P_JOIN_LEN, i], 1.0)
        per_cycle = cycle_s / 3600.0 / lanes
        prm[K.P_JOIN_OUT, i] = joins_out[i] * per_cycle / jl
        prm[K.P_JOIN_IN, i] = joins_in[i] * per_cycle / jl
    prm[K.P_ENTRY_OUT, 0] = v_out / lanes / 3600.0 * bin_s
    prm[K.P_ENTRY_IN, n - 1] = v_in / lanes / 3600.0 * bin_s
    prm[K.P_ALPHA] = alpha
    return nb, bin_s, prm


def _side_queue(phase, green_s: float, cycle_s: float, bin_s: float) -> tuple[float, float]:
    """(bins, rate factor) of the side queue's discharge at the start of its green: vehicles
    arriving at ``f`` during the red queue, leave at saturation ``s`` until the queue is gone
    (``f r / (s - f)``), then at ``f``; the factor is ``s`` over the green's mean departure rate
    ``f C / g``. No queue figure (uniform joins) when the flow is unknown or the green cannot clear it."""
    f = (phase.flow_vph or 0.0) / 3600.0
    sat = phase.saturation_vph / 3600.0
    green_s = max(green_s, 1e-9)
    if f <= 0.0 or sat <= f:
        return 0.0, 1.0
    clear_s = f * (cycle_s - green_s) / (sat - f)
    if clear_s >= green_s:
        return 0.0, 1.0
    return float(_bins(clear_s, bin_s)), sat * green_s / (f * cycle_s)


def arterial_volumes_vph(spec: CorridorSpec) -> tuple[float, float]:
    """Entry volumes (veh/h, all lanes): the corridor's own, else the coordinated phase's critical
    lane flow at the entry intersection times the lanes, else the default flow ratio."""
    out = []
    for direction, given, entry in (("out", spec.volume_out_vph, spec.intersections[0]),
                                    ("in", spec.volume_in_vph, spec.intersections[-1])):
        if given is not None:
            out.append(float(given))
            continue
        ph = entry.phases[entry.phase_index(direction)]
        lane = ph.flow_vph if ph.flow_vph is not None else DEFAULT_COORDINATED_FLOW_RATIO * ph.saturation_vph
        out.append(float(lane) * spec.lanes_per_direction)
    return out[0], out[1]


def _figures(tot: np.ndarray, bin_s: float) -> tuple[float, float, float]:
    # delay per vehicle counts each stop's STOP_LOSS_S: what the descent minimises
    veh = tot[K.T_VEH_OUT] + tot[K.T_VEH_IN]
    d = ((tot[K.T_DELAY_OUT] + tot[K.T_DELAY_IN]) * bin_s + STOP_LOSS_S * (tot[K.T_STOPS_OUT] + tot[K.T_STOPS_IN])) / max(veh, 1e-12)
    return d, tot[K.T_STOPS_OUT] / max(tot[K.T_VEH_OUT], 1e-12), tot[K.T_STOPS_IN] / max(tot[K.T_VEH_IN], 1e-12)


def modelled(spec: CorridorSpec, cycle_s: float, greens_s: list[np.ndarray], green_start_s,
             travel_scales=(1.0,)) -> dict:
    """The model's figures for given outbound green starts (s): delay per vehicle, stops per
    direction; with several ``travel_scales`` their mean (what :func:`delay_offsets` reports)."""
    nb, bin_s, prm = delay_params(spec, cycle_s, greens_s)
    u = np.array([_bins(x, bin_s) % nb for x in green_start_s], dtype=np.int64)
    d, so, si = _figures(_mean_tot(nb, u, scenarios(prm, bin_s, travel_scales)), bin_s)
    return {"delay_s_per_veh": d, "stops_out": so, "stops_in": si}


def scenarios(prm: np.ndarray, bin_s: float, scales=TRAVEL_SCALES) -> np.ndarray:
    """``(S, P_N, n)``: ``prm`` with the link travel times (less the start-up lag, which is no
    speed) scaled by each of ``scales``."""
    out = np.repeat(prm[None], len(scales), axis=0)
    lag = START_UP_LAG_S / bin_s
    for k, sc in enumerate(scales):
        for row in (K.P_LINK_OUT, K.P_LINK_IN):
            out[k, row] = np.where(prm[row] > 0, (prm[row] - lag) * sc + lag, 0.0)
    return out


def _mean_tot(nb: int, u: np.ndarray, prms: np.ndarray) -> np.ndarray:
    return sum(K.corridor_delay(nb, u, p) for p in prms) / len(prms)


def delay_offsets(spec: CorridorSpec, cycle_s: float, greens_s: list[np.ndarray], *, sweeps: int = 4,
                  step_s: float = 3.0, stop_slack: float = STOP_SLACK, min_gain: float = MIN_MODEL_GAIN,
                  split: bool = True, travel_scales=None, join_queue: bool | None = None,
                  warm_start_s=None) -> DelayResult:
    """Offsets minimising modelled all-vehicle delay, the worse direction's stops per vehicle
    bounded by ``(1 + stop_slack)`` times the demand-weighted MAXBAND plan's.

    Every MAXBAND start gets one coarse sweep (with ``split``, corridors of 8 or more signals also
    get a start cut into subsystems: :func:`brain.greenwave.subsystems.split_subsystems`); the
    best of them gets up to ``sweeps - 1`` more.
    Unless that cuts the modelled delay by at least ``min_gain`` (a share), the demand-weighted
    MAXBAND offsets are returned (``start`` says so). Every figure is the mean over the link
    travel-time ``travel_scales`` (default :data:`TRAVEL_SCALES`; ``(1.0,)`` judges exact times only).

    ``warm_start_s`` (outbound green starts, s, e.g. the plan in force) replaces the equal,
    one-way and subsystem starts by that one: the live re-planner's warm start, about a third of
    the work, and the offsets move only where the model gains by it.
    """
    n = spec.n
    prob = band_problem(spec, cycle_s, greens_s)
    nb, bin_s, prm = delay_params(spec, cycle_s, greens_s, join_queue=join_queue)
    prms = scenarios(prm, bin_s, TRAVEL_SCALES if travel_scales is None else travel_scales)
    step = max(1, _bins(step_s, bin_s))
    wo, wi = prob.weight_out, prob.weight_in
    starts = {"two-way": (wo, wi), "equal": (1.0, 1.0), "one-way out": (1.0, 0.0), "one-way in": (0.0, 1.0)}
    if warm_start_s is not None:
        starts = {"two-way": (wo, wi)}  # the reference every plan is judged against
    seeds = {}
    for name, (a, b) in starts.items():
        _, st = max_bandwidth(prob.cycle_s, prob.green_out_s, prob.green_in_s, prob.in_shift_s,
                              prob.travel_out_s, prob.travel_in_s, a, b, 0)
        # the model's green starts are the effective ones; shifting them all alike changes nothing
        u = np.array([_bins(x - st[0], bin_s) % nb for x in st], dtype=np.int64)
        seeds[name] = u
    ref_tot = _mean_tot(nb, seeds["two-way"], prms)
    ref_d, ref_so, ref_si = _figures(ref_tot, bin_s)
    bound = max(ref_so, ref_si) * (1.0 + stop_slack) + 1e-9
    loss = STOP_LOSS_S / bin_s

    def ranked(name, u):
        d, so, si = _figures(_mean_tot(nb, u, prms), bin_s)
        return (max(so, si) > bound, d), name, u, d, so, si

    if warm_start_s is not None:
        w = np.asarray(warm_start_s, dtype=np.float64)
        seeds["previous plan"] = np.array([_bins(x - w[0], bin_s) % nb for x in w], dtype=np.int64)
    cuts: list[int] = []
    if split and n >= 2 * MIN_SUBSYSTEM and warm_start_s is None:
        # a long corridor may do better as coordinated subsystems: cut where the model says so
        sub = split_subsystems(nb, bin_s, prm, prob.args(), bound, loss, step=2 * step)
        if sub.cuts:
            cuts = sub.cuts
            seeds["subsystems"] = sub.u
    # every start gets one coarse sweep (twice the grid step); the best is refined on the fine grid
    first = [ranked(name, K.descend_offsets_multi(nb, u0, prms, 1, 2 * step, bound, loss)) for name, u0 in seeds.items()]
    _, name, u, d, so, si = min(first, key=lambda r: r[0])
    if sweeps > 1:
        _, name, u, d, so, si = ranked(name, K.descend_offsets_multi(nb, u, prms, sweeps - 1, step, bound, loss))
    if d > ref_d * (1.0 - min_gain):
        # the model's own error against SUMO is several per cent: for less than that, the
        # bandwidth optimum (greens centred in their ranges, robust to travel-time error) stays
        name, u, d, so, si = (f"MAXBAND kept: modelled gain {100 * (1 - d / max(ref_d, 1e-12)):.1f} % "
                              f"< {100 * min_gain:.0f} %"), seeds["two-way"], ref_d, ref_so, ref_si
    else:
        name = "descent from the previous plan" if name == "previous plan" else f"descent from the {name} MAXBAND optimum"
        if name.endswith("subsystems MAXBAND optimum"):
            ids = [spec.intersections[c].id for c in cuts]
            name = f"descent from MAXBAND subsystems cut before {', '.join(ids)}"
    green_start = (u - u[0]) % nb * bin_s
    return DelayResult(green_start_s=green_start, start=name, delay_s_per_veh=float(d), stops_out=float(so),
                       stops_in=float(si), maxband_delay_s_per_veh=float(ref_d),
                       maxband_stops_worse=float(max(ref_so, ref_si)),
                       cuts=cuts if "subsystems" in name else [])


def webster_delay_s(cycle_s: float, green_s: float, flow_vph: float, saturation_vph: float) -> float:
    """Webster's delay per vehicle (s): uniform term plus random overflow (x capped at 0.95)."""
    lam = green_s / cycle_s
    x = min(flow_vph / (saturation_vph * max(lam, 1e-9)), 0.95)
    q = max(flow_vph, 1e-9) / 3600.0
    return 0.5 * cycle_s * (1 - lam) ** 2 / (1 - x * lam) + x * x / (2 * q * (1 - x))


def side_stopped_share(cycle_s: float, green_s: float, flow_vph: float, saturation_vph: float) -> float:
    """Share of a phase's randomly arriving vehicles that stop: ``(1 - g/C) / (1 - y)`` with
    ``y = flow / saturation`` (Webster/Akcelik's proportion stopped), capped at 1."""
    lam = min(max(green_s / cycle_s, 0.0), 1.0)
    y = min(flow_vph / saturation_vph, 0.95)
    return min(1.0, (1.0 - lam) / (1.0 - y))


def side_delay_s_per_veh(spec: CorridorSpec, cycle_s: float, greens_s: list[np.ndarray], *,
                         approaches: int = SIDE_APPROACHES, stop_loss_s: float = STOP_LOSS_S) -> tuple[float, float]:
    """Delay of the non-coordinated phases' vehicles, flow-weighted: ``(s per vehicle, veh/h)``;
    the part of all-vehicle delay that offsets cannot change but the cycle does. Per phase:
    Webster's delay plus ``stop_loss_s`` per stop (:func:`side_stopped_share`: the same loss the
    platoon model counts per arterial stop); each phase serves ``approaches`` approaches of its
    ``flow_vph`` (the critical approach's flow), so ``veh/h`` is ``approaches`` times the flows."""
    tot = veh = 0.0
    for it, g in zip(spec.intersections, greens_s):
        for k, p in enumerate(it.phases):
            if p.serves_out or p.serves_in or not p.flow_vph:
                continue
            d = webster_delay_s(cycle_s, g[k], p.flow_vph, p.saturation_vph)
            d += stop_loss_s * side_stopped_share(cycle_s, g[k], p.flow_vph, p.saturation_vph)
            tot += d * p.flow_vph * approaches
            veh += p.flow_vph * approaches
    return (tot / veh if veh else 0.0), veh


def _overflow_s(spec: CorridorSpec, cycle_s: float, greens_s: list[np.ndarray]) -> float:
    # random overflow delay of the arterial phases (the fluid model has none), summed per vehicle
    tot = 0.0
    for it, g in zip(spec.intersections, greens_s):
        ph = it.phases[it.phase_index("out")]
        if not ph.flow_vph:
            continue
        lam = g[it.phase_index("out")] / cycle_s
        x = min(ph.flow_vph / (ph.saturation_vph * max(lam, 1e-9)), 0.95)
        tot += x * x / (2 * ph.flow_vph / 3600.0 * (1 - x))
    return tot


def cycle_delay_s(spec: CorridorSpec, cycle_s: float, greens_s: list[np.ndarray]) -> float:
    """Modelled all-vehicle delay (s/veh) at one cycle: arterial and joining traffic by the
    platoon model after one descent sweep plus Webster's overflow term, side streets by
    :func:`side_delay_s_per_veh` (both approaches, stops counted). Traffic turning in is counted
    once as a vehicle (it is served by the side phase: its flow is in the side phase's) but carries
    both its side wait and its ride on the arterial."""
    v_out, v_in = arterial_volumes_vph(spec)
    art_veh = v_out + v_in + sum(spec.join_out_vph or []) + sum(spec.join_in_vph or [])
    res = delay_offsets(spec, float(cycle_s), greens_s, sweeps=1, step_s=4.0)
    side_d, side_veh = side_delay_s_per_veh(spec, float(cycle_s), greens_s)
    art_d = res.delay_s_per_veh + _overflow_s(spec, float(cycle_s), greens_s)
    return (art_d * art_veh + side_d * side_veh) / max(v_out + v_in + side_veh, 1e-9)


#: The cycle choice stops after this many candidates in a row (ascending) model more than
#: :data:`CYCLE_STOP_MARGIN` worse than the best so far: the side streets' waits grow with the
#: cycle, so well past the minimum the figure keeps rising, and the long cycles are the dearest to
#: judge (the model's work grows with the cycle). Bumps of a few per cent between neighbouring
#: candidates are the model's noise and do not count, nor do cycles under
#: :data:`CYCLE_STOP_FROM_S` (cheap to judge, and squeezed splits make the figure jump there by
#: 10 % and more before it falls again; tests/greenwave/test_plan_speed.py).
CYCLE_PATIENCE = 2
CYCLE_STOP_MARGIN = 0.05
CYCLE_STOP_FROM_S = 60.0


def choose_cycle_s(spec: CorridorSpec, candidates_s, greens_for, *, patience: int | None = CYCLE_PATIENCE,
                   margin: float = CYCLE_STOP_MARGIN) -> tuple[float, float]:
    """Among candidate cycles (ascending), the one with the least :func:`cycle_delay_s`.
    ``greens_for(cycle_s)`` gives the splits. Returns ``(cycle_s, delay)``. The scan stops after
    ``patience`` candidates in a row modelled more than ``margin`` (a share) above the best so far
    (``patience=None``: judge every candidate)."""
    best = (math.inf, float(candidates_s[0]))
    worse = 0
    for c in candidates_s:
        d = cycle_delay_s(spec, float(c), greens_for(float(c)))
        if d < best[0] - 1e-9:
            best = (d, float(c))
        if c >= CYCLE_STOP_FROM_S:
            worse = worse + 1 if d > best[0] * (1.0 + margin) else 0
        if patience is not None and worse >= patience:
            break
    return best[1], best[0]
