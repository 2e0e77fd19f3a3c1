"""Corridor delay: TRANSYT-style cyclic flow profiles, and offsets that minimise it.

One cycle is cut into ``nb`` bins (about 1 s each). Per direction, in travel order, each stop
line sees an arrival profile (vehicles per bin and lane, on the common clock): a fluid queue
fills with it and discharges at the saturation flow during the effective green, which is what
makes a platoon that meets a standing queue lose the head of its green (queue discharge at green
start). What leaves a stop line is thinned by the share turning off there, joined by side-street
traffic turning in during the side phase, and carried to the next stop line by Robertson's
platoon dispersion: ``y[t] = F x[t - lag] + (1 - F) y[t - 1]`` with ``lag = β T`` and
``F = 1 / (1 + α β T)`` (``T`` the link's travel time in bins; ``β = 1 / (1 + α)`` keeps the mean
travel time ``T``). Profiles are cyclic: each queue runs a warm-up cycle before the measured
one, and each dispersion is solved for its cyclic steady state in closed form.

Per stop line we keep the delay (veh·bins per cycle and lane: the queue summed over bins), the
stops (arrivals meeting red, or a standing queue in green) and the arrivals. :func:`descend_offsets` starts from given green starts
(the MAXBAND optimum) and moves one intersection's offset at a time to the grid value with the
lowest modelled total delay, subject to the worse direction's stops per vehicle staying under a
bound; changing intersection ``i`` only re-runs the outbound stop lines from ``i`` on and the
inbound ones from ``i`` back, from cached arrival profiles.

Layout: ``prm`` is a float array of shape ``(P_N, n)``, rows named by the ``P_*`` constants, one
column per intersection in corridor order (outbound travel order); inbound rows are stored in
the same corridor order. Green starts ``u`` are int bins of the outbound coordinated green.
``*_ref`` functions are the plain-Python twins the tests hold equal.

Example:
    >>> import numpy as np
    >>> prm = example_params(4, nb=60)
    >>> u = np.zeros(4, dtype=np.int64)
    >>> tot = corridor_delay(60, u, prm)
    >>> bool(tot[T_DELAY_OUT] > 0), bool(np.allclose(tot, corridor_delay_ref(60, u, prm)))
    (True, True)
    >>> best = descend_offsets(60, u, prm, 3, 1, 1e9, 0.0)
    >>> bool(corridor_delay(60, best, prm)[T_DELAY_OUT] <= tot[T_DELAY_OUT] + tot[T_DELAY_IN])
    True
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

# --- rows of prm (per intersection, corridor order) ---
P_G_OUT = 0        # effective outbound green (bins)
P_G_IN = 1         # effective inbound green (bins)
P_SHIFT_IN = 2     # inbound effective green start after the outbound one (bins)
P_SAT_OUT = 3      # outbound saturation flow (veh per bin and lane)
P_SAT_IN = 4       # inbound saturation flow
P_LINK_OUT = 5     # travel time (bins) from this stop line to the next one outbound (last: unused)
P_LINK_IN = 6      # travel time (bins) from this stop line to the previous one inbound (first: unused)
P_KEEP_OUT = 7     # share of the outbound vehicles served here that go on along the arterial
P_KEEP_IN = 8      # same, inbound
P_JOIN_OUT = 9     # side-street vehicles joining outbound here (veh per bin and lane, while P_JOIN_LEN)
P_JOIN_IN = 10     # same, inbound
P_JOIN_SHIFT = 11  # start of the side green after the outbound one (bins)
P_JOIN_LEN = 12    # side green length (bins)
P_ENTRY_OUT = 13   # arrivals at this stop line from outside (veh per bin and lane): the corridor's entry
P_ENTRY_IN = 14    # same, inbound
P_ALPHA = 15       # Robertson's dispersion factor α (dimensionless; TRANSYT uses 0.35 on urban links)
P_JOIN_HEAD = 16   # bins at the start of the side green while the side queue discharges (0: joins uniform)
P_JOIN_PEAK = 17   # join rate during P_JOIN_HEAD over the side green's mean join rate (>= 1)
P_N = 18

# --- entries of the totals vector ---
T_DELAY_OUT = 0    # veh·bins per cycle and lane
T_DELAY_IN = 1
T_STOPS_OUT = 2    # stops per cycle and lane
T_STOPS_IN = 3
T_VEH_OUT = 4      # vehicles entering the direction per cycle and lane (entries + joins)
T_VEH_IN = 5
T_N = 6

#: Arrivals in green stop only behind more than this queue (veh per lane): a short queue is
#: already moving when they reach it (what SUMO's waiting count and a probe's stop see).
STANDING_QUEUE = 1.0
WARM_CYCLES = 1  # an undersaturated queue empties within a cycle: from then on it is the steady state


@njit(cache=True)
def _stop_line(nb, arr, start, glen, sat, dep):
    """Fluid queue over one cycle at steady state; fills ``dep``; returns (delay, stops)."""
    q = 0.0
    delay = 0.0
    stops = 0.0
    for c in range(WARM_CYCLES + 1):
        last = c == WARM_CYCLES
        ph = (nb - start) % nb  # position of bin 0 inside the cycle that starts at the green
        for t in range(nb):
            a = arr[t]
            green = ph < glen
            ph += 1
            if ph == nb:
                ph = 0
            if last and (not green or q > STANDING_QUEUE):
                stops += a
            q += a
            d = 0.0
            if green:
                d = min(q, sat)
            q -= d
            if last:
                dep[t] = d
                delay += q
    return delay, stops


@njit(cache=True)
def _disperse(nb, x, link, alpha, y):
    """Robertson's platoon dispersion of cyclic profile ``x`` over a link of ``link`` bins.

    Exact cyclic steady state: one pass from rest, then the rest state's error, which decays
    by ``(1 - F)`` per bin, is removed in closed form.
    """
    beta = 1.0 / (1.0 + alpha)
    lag = int(round(beta * link)) % nb
    f = 1.0 / (1.0 + alpha * beta * link)
    r = 1.0 - f
    prev = 0.0
    j = (nb - lag) % nb
    for t in range(nb):
        prev = f * x[j] + r * prev
        y[t] = prev
        j += 1
        if j == nb:
            j = 0
    rn = r ** nb
    tail = y[nb - 1] / (1.0 - rn) if rn < 1.0 else y[nb - 1]
    pw = r
    for t in range(nb):
        y[t] += pw * tail
        pw *= r


@njit(cache=True)
def _join_shape(jl, head_len, peak):
    """(head bins, head factor, tail factor) of the joins over a side green of ``jl`` bins: the
    side queue that built up during red discharges first at saturation (``peak`` times the mean
    join rate), then arrivals pass at their own rate; the factors keep the joins per cycle."""
    hl = int(head_len)
    if hl <= 0 or hl >= jl or peak <= 1.0 or peak * hl >= jl:
        return 0, 1.0, 1.0
    return hl, peak, (jl - peak * hl) / (jl - hl)


@njit(cache=True)
def _direction(nb, u, prm, inbound, first, prof, delay, stops, buf, nxt):
    """Run one direction from travel position ``first`` (its arrival profile taken from ``prof``);
    writes ``prof``, ``delay``, ``stops`` (indexed by travel position) from there on."""
    n = u.shape[0]
    g_row, sat_row, link_row, keep_row, join_row, entry_row = P_G_OUT, P_SAT_OUT, P_LINK_OUT, P_KEEP_OUT, P_JOIN_OUT, P_ENTRY_OUT
    if inbound:
        g_row, sat_row, link_row, keep_row, join_row, entry_row = P_G_IN, P_SAT_IN, P_LINK_IN, P_KEEP_IN, P_JOIN_IN, P_ENTRY_IN
    for k in range(first, n):
        i = n - 1 - k if inbound else k
        start = u[i]
        if inbound:
            start += int(prm[P_SHIFT_IN, i])
        d, s = _stop_line(nb, prof[k], start % nb, int(prm[g_row, i]), prm[sat_row, i], buf)
        delay[k] = d
        stops[k] = s
        if k + 1 < n:
            js = (u[i] + int(prm[P_JOIN_SHIFT, i])) % nb
            jl = int(prm[P_JOIN_LEN, i])
            keep = prm[keep_row, i]
            join = prm[join_row, i]
            hl, head, tail = _join_shape(jl, prm[P_JOIN_HEAD, i], prm[P_JOIN_PEAK, i])
            ph = (nb - js) % nb
            for t in range(nb):
                buf[t] *= keep
                if ph < jl:
                    buf[t] += join * (head if ph < hl else tail)
                ph += 1
                if ph == nb:
                    ph = 0
            _disperse(nb, buf, prm[link_row, i], prm[P_ALPHA, i], nxt)
            j = n - 2 - k if inbound else k + 1
            for t in range(nb):
                prof[k + 1, t] = nxt[t] + prm[entry_row, j]


@njit(cache=True)
def _entry_profiles(nb, prm, prof_out, prof_in):
    n = prm.shape[1]
    for t in range(nb):
        prof_out[0, t] = prm[P_ENTRY_OUT, 0]
        prof_in[0, t] = prm[P_ENTRY_IN, n - 1]


@njit(cache=True)
def _vehicles(nb, prm, inbound):
    n = prm.shape[1]
    v = 0.0
    for i in range(n):
        v += nb * prm[P_ENTRY_IN if inbound else P_ENTRY_OUT, i]
        last = i == 0 if inbound else i == n - 1
        if not last:
            v += prm[P_JOIN_LEN, i] * prm[P_JOIN_IN if inbound else P_JOIN_OUT, i]
    return v


@njit(cache=True)
def corridor_delay(nb, u, prm):
    """Totals (``T_*`` entries) of the model for outbound green starts ``u`` (int bins)."""
    n = u.shape[0]
    po = np.zeros((n, nb))
    pi = np.zeros((n, nb))
    do = np.zeros(n)
    so = np.zeros(n)
    di = np.zeros(n)
    si = np.zeros(n)
    buf = np.zeros(nb)
    nxt = np.zeros(nb)
    _entry_profiles(nb, prm, po, pi)
    _direction(nb, u, prm, False, 0, po, do, so, buf, nxt)
    _direction(nb, u, prm, True, 0, pi, di, si, buf, nxt)
    tot = np.zeros(T_N)
    tot[T_DELAY_OUT] = do.sum()
    tot[T_DELAY_IN] = di.sum()
    tot[T_STOPS_OUT] = so.sum()
    tot[T_STOPS_IN] = si.sum()
    tot[T_VEH_OUT] = _vehicles(nb, prm, False)
    tot[T_VEH_IN] = _vehicles(nb, prm, True)
    return tot


@njit(cache=True)
def _objective(d_out, d_in, s_out, s_in, v_out, v_in, stop_bound, stop_loss):
    # queueing delay plus what each stop costs on top (deceleration, acceleration: bins per stop);
    # a plan whose worse direction stops more per vehicle than the bound pays a prohibitive price
    worse = max(s_out / max(v_out, 1e-12), s_in / max(v_in, 1e-12))
    excess = max(0.0, worse - stop_bound)
    return d_out + d_in + stop_loss * (s_out + s_in) + excess * 1e6 * (v_out + v_in)


@njit(cache=True)
def _keep_rows(po, do, so, pi, di, si, o_po, o_do, o_so, o_pi, o_di, o_si, i, k_in):
    """Copy the rows a trial at intersection ``i`` overwrites (outbound from ``i``, inbound from
    travel position ``k_in``) of every scenario from the first six arrays to the last six."""
    o_po[:, i:, :] = po[:, i:, :]
    o_do[:, i:] = do[:, i:]
    o_so[:, i:] = so[:, i:]
    o_pi[:, k_in:, :] = pi[:, k_in:, :]
    o_di[:, k_in:] = di[:, k_in:]
    o_si[:, k_in:] = si[:, k_in:]


@njit(cache=True)
def descend_offsets(nb, u0, prm, sweeps, step, stop_bound, stop_loss):
    """Coordinate descent on the green starts (bins; the first intersection stays put).

    Each sweep tries, at every intersection, every start on a grid of ``step`` bins (then the
    neighbours ±1 of the best) and keeps the lowest objective: modelled total delay, each stop
    adding ``stop_loss`` bins, while the worse direction's stops per vehicle stay <= ``stop_bound``. Stops early when a sweep
    changes nothing.
    """
    prms = np.empty((1, prm.shape[0], prm.shape[1]))
    prms[0] = prm
    return descend_offsets_multi(nb, u0, prms, sweeps, step, stop_bound, stop_loss)


@njit(cache=True)
def descend_offsets_multi(nb, u0, prms, sweeps, step, stop_bound, stop_loss):
    """:func:`descend_offsets` judged over several scenarios at once: ``prms`` has shape
    ``(S, P_N, n)`` (e.g. the same corridor with link travel times a few per cent shorter and
    longer) and the objective is taken on the scenarios' mean delay and stops, so an optimum that
    only holds for exact travel times (a platoon grazing a green's edge) loses to one that holds
    for all of them. Same vehicles in every scenario (only times may differ)."""
    S = prms.shape[0]
    n = u0.shape[0]
    u = u0.copy()
    po = np.zeros((S, n, nb))
    pi = np.zeros((S, n, nb))
    do = np.zeros((S, n))
    so = np.zeros((S, n))
    di = np.zeros((S, n))
    si = np.zeros((S, n))
    buf = np.zeros(nb)
    nxt = np.zeros(nb)
    for s in range(S):
        _entry_profiles(nb, prms[s], po[s], pi[s])
        _direction(nb, u, prms[s], False, 0, po[s], do[s], so[s], buf, nxt)
        _direction(nb, u, prms[s], True, 0, pi[s], di[s], si[s], buf, nxt)
    v_out = _vehicles(nb, prms[0], False)
    v_in = _vehicles(nb, prms[0], True)
    best = _objective(do.sum() / S, di.sum() / S, so.sum() / S, si.sum() / S, v_out, v_in, stop_bound, stop_loss)
    # the accepted state's rows a trial overwrites, copied aside: copying them back after the
    # trials costs a few memcpy instead of re-running 2 x (n + 1) stop lines (same numbers)
    a_po = np.empty_like(po)
    a_pi = np.empty_like(pi)
    a_do = np.empty_like(do)
    a_so = np.empty_like(so)
    a_di = np.empty_like(di)
    a_si = np.empty_like(si)
    for _ in range(sweeps):
        changed = False
        for i in range(1, n):
            k_in = n - 1 - i
            keep = u[i]
            best_v = keep
            _keep_rows(po, do, so, pi, di, si, a_po, a_do, a_so, a_pi, a_di, a_si, i, k_in)
            for phase in range(2):
                if phase == 0:
                    lo, hi, st = 0, nb, max(step, 1)
                else:
                    lo, hi, st = best_v - 1, best_v + 2, 1
                for cand in range(lo, hi, st):
                    v = cand % nb
                    # the accepted start itself would only give the accepted objective again
                    if v == keep or v == best_v:
                        continue
                    u[i] = v
                    # the accepted state is kept in po/pi..., trials overwrite from i on only
                    for s in range(S):
                        _direction(nb, u, prms[s], False, i, po[s], do[s], so[s], buf, nxt)
                        _direction(nb, u, prms[s], True, k_in, pi[s], di[s], si[s], buf, nxt)
                    obj = _objective(do.sum() / S, di.sum() / S, so.sum() / S, si.sum() / S, v_out, v_in,
                                     stop_bound, stop_loss)
                    if obj < best - 1e-9:
                        best = obj
                        best_v = v
                        _keep_rows(po, do, so, pi, di, si, a_po, a_do, a_so, a_pi, a_di, a_si, i, k_in)
                u[i] = best_v
                # bring the arrays back to the accepted state from each start on
                _keep_rows(a_po, a_do, a_so, a_pi, a_di, a_si, po, do, so, pi, di, si, i, k_in)
            if best_v != keep:
                changed = True
        if not changed:
            break
    return u


# ----------------------------------------------------------------------------- plain twins
def _stop_line_ref(nb, arr, start, glen, sat, dep):
    q = delay = stops = 0.0
    for c in range(WARM_CYCLES + 1):
        last = c == WARM_CYCLES
        for t in range(nb):
            a = arr[t]
            green = (t - start) % nb < glen
            if last and (not green or q > STANDING_QUEUE):
                stops += a
            q += a
            d = min(q, sat) if green else 0.0
            q -= d
            if last:
                dep[t] = d
                delay += q
    return delay, stops


def _disperse_ref(nb, x, link, alpha):
    beta = 1.0 / (1.0 + alpha)
    lag = int(round(beta * link))
    f = 1.0 / (1.0 + alpha * beta * link)
    r = 1.0 - f
    y = []
    prev = 0.0
    for t in range(nb):
        prev = f * x[(t - lag) % nb] + r * prev
        y.append(prev)
    # the cyclic steady state starts from y[-1], not from rest: add that start's decaying trace
    tail = y[-1] / (1.0 - r ** nb) if r ** nb < 1.0 else y[-1]
    return [v + r ** (t + 1) * tail for t, v in enumerate(y)]


def _direction_ref(nb, u, prm, inbound):
    n = len(u)
    rows = (P_G_IN, P_SAT_IN, P_LINK_IN, P_KEEP_IN, P_JOIN_IN, P_ENTRY_IN) if inbound else \
        (P_G_OUT, P_SAT_OUT, P_LINK_OUT, P_KEEP_OUT, P_JOIN_OUT, P_ENTRY_OUT)
    g_row, sat_row, link_row, keep_row, join_row, entry_row = rows
    arr = [float(prm[entry_row, n - 1 if inbound else 0])] * nb
    delay = stops = 0.0
    for k in range(n):
        i = n - 1 - k if inbound else k
        start = int(u[i]) + (int(prm[P_SHIFT_IN, i]) if inbound else 0)
        dep = [0.0] * nb
        d, s = _stop_line_ref(nb, arr, start % nb, int(prm[g_row, i]), float(prm[sat_row, i]), dep)
        delay += d
        stops += s
        if k + 1 < n:
            js = (int(u[i]) + int(prm[P_JOIN_SHIFT, i])) % nb
            jl = int(prm[P_JOIN_LEN, i])
            hl, peak = int(prm[P_JOIN_HEAD, i]), float(prm[P_JOIN_PEAK, i])
            shaped = 0 < hl < jl and 1.0 < peak and peak * hl < jl
            out = []
            for t in range(nb):
                ph = (t - js) % nb
                factor = (peak if ph < hl else (jl - peak * hl) / (jl - hl)) if shaped else 1.0
                out.append(dep[t] * prm[keep_row, i] + (prm[join_row, i] * factor if ph < jl else 0.0))
            y = _disperse_ref(nb, out, float(prm[link_row, i]), float(prm[P_ALPHA, i]))
            j = n - 2 - k if inbound else k + 1
            arr = [v + prm[entry_row, j] for v in y]
    return delay, stops


def _vehicles_ref(nb, prm, inbound):
    n = prm.shape[1]
    v = 0.0
    for i in range(n):
        v += nb * prm[P_ENTRY_IN if inbound else P_ENTRY_OUT, i]
        if i != (0 if inbound else n - 1):
            v += prm[P_JOIN_LEN, i] * prm[P_JOIN_IN if inbound else P_JOIN_OUT, i]
    return v


def corridor_delay_ref(nb, u, prm):
    """Plain-Python twin of :func:`corridor_delay`."""
    do, so = _direction_ref(nb, u, prm, False)
    di, si = _direction_ref(nb, u, prm, True)
    return np.array([do, di, so, si, _vehicles_ref(nb, prm, False), _vehicles_ref(nb, prm, True)])


def _objective_ref(tot, stop_bound, stop_loss):
    worse = max(tot[T_STOPS_OUT] / max(tot[T_VEH_OUT], 1e-12), tot[T_STOPS_IN] / max(tot[T_VEH_IN], 1e-12))
    return (tot[T_DELAY_OUT] + tot[T_DELAY_IN] + stop_loss * (tot[T_STOPS_OUT] + tot[T_STOPS_IN])
            + max(0.0, worse - stop_bound) * 1e6 * (tot[T_VEH_OUT] + tot[T_VEH_IN]))


def descend_offsets_ref(nb, u0, prm, sweeps, step, stop_bound, stop_loss):
    """Plain-Python twin of :func:`descend_offsets` (whole-corridor evaluation per trial)."""
    return descend_offsets_multi_ref(nb, u0, [prm], sweeps, step, stop_bound, stop_loss)


def descend_offsets_multi_ref(nb, u0, prms, sweeps, step, stop_bound, stop_loss):
    """Plain-Python twin of :func:`descend_offsets_multi` (whole-corridor evaluation per trial)."""
    u = np.array(u0, dtype=np.int64).copy()
    n = len(u)

    def mean_tot(u):
        return sum(corridor_delay_ref(nb, u, p) for p in prms) / len(prms)

    best = _objective_ref(mean_tot(u), stop_bound, stop_loss)
    for _ in range(sweeps):
        changed = False
        for i in range(1, n):
            keep = int(u[i])
            best_v = keep
            for phase in range(2):
                cands = range(0, nb, max(step, 1)) if phase == 0 else range(best_v - 1, best_v + 2)
                for cand in cands:
                    v = cand % nb
                    if v == keep:
                        continue
                    u[i] = v
                    obj = _objective_ref(mean_tot(u), stop_bound, stop_loss)
                    if obj < best - 1e-9:
                        best, best_v = obj, v
                u[i] = best_v
            changed |= best_v != keep
        if not changed:
            break
    return u


def example_params(n: int, nb: int = 60, link_bins: float = 30.0) -> np.ndarray:
    """A uniform two-phase corridor for examples and warm-up: half-cycle greens, 900/500 veh/h/lane-ish."""
    prm = np.zeros((P_N, n))
    prm[P_G_OUT] = prm[P_G_IN] = nb // 2
    prm[P_SAT_OUT] = prm[P_SAT_IN] = 0.5
    prm[P_LINK_OUT] = prm[P_LINK_IN] = link_bins
    prm[P_KEEP_OUT] = prm[P_KEEP_IN] = 1.0
    prm[P_JOIN_SHIFT] = nb // 2 + 4
    prm[P_JOIN_LEN] = nb // 2 - 8
    prm[P_ALPHA] = 0.35
    prm[P_ENTRY_OUT, 0] = 0.125
    prm[P_ENTRY_IN, n - 1] = 0.07
    return prm


def warm_up() -> None:
    """Compile the kernels (first call) so plan latency excludes it."""
    prm = example_params(3, nb=20, link_bins=5.0)
    descend_offsets(20, np.zeros(3, dtype=np.int64), prm, 1, 2, 1e9, 4.0)
    descend_offsets_multi(20, np.zeros(3, dtype=np.int64), np.stack([prm, prm]), 1, 2, 1e9, 4.0)
    corridor_delay(20, np.zeros(3, dtype=np.int64), prm)
    from brain.kernels.platoon_shift import warm_up as shift_warm_up  # it imports this module

    shift_warm_up()
