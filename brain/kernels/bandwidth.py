"""Two-way progression bandwidth: the MAXBAND optimum for a fixed cycle, splits and speeds.

Geometry (all times in fractions of the cycle inside the kernels, seconds at the boundary).
At intersection ``i`` the outbound coordinated green lasts ``G_i`` and the inbound one ``Ḡ_i``,
starting ``d_i`` after the outbound one (0 when one phase serves both directions). ``T_i`` is
the outbound travel time from the first intersection, ``T̄_i`` the inbound one from the last.
Put the outbound band's start at the first intersection at time 0 and let ``u_i`` be the start
of the outbound green at ``i``. An outbound band of width ``b`` needs
``T_i + b - G_i <= u_i <= T_i``, so the inbound green start seen in the inbound band's frame,
``c_i = u_i + d_i - T̄_i``, can slide over ``[e_i - (G_i - b), e_i]`` with ``e_i = T_i + d_i - T̄_i``.
An inbound band of width ``b̄`` starting at ``σ`` then fits iff ``σ - b`` lies, modulo one cycle,
in every arc ``[p_i, p_i + L_i - (b + b̄)]`` with ``p_i = e_i - G_i`` and ``L_i = G_i + Ḡ_i``.

So the feasible bands are exactly ``0 <= b <= min G``, ``0 <= b̄ <= min Ḡ``,
``b + b̄ <= S*`` with ``S* = max_j min_i (L_i - ((p_j - p_i) mod 1))`` — an O(n²) scan over the arc
starts (the best window always starts at one) — plus MAXBAND's directional-demand target
``(1 - k)(b̄ - k b) >= 0``, maximising ``b + k b̄`` (k = inbound / outbound volume). That last
step is a two-variable LP solved by vertex enumeration; the offsets follow from the winning
window: each intersection's green can still slide within a range that keeps both bands, and a
coordinate search over those ranges picks, among the max-band offsets, the ones that carry the
most of each direction's entry green through the corridor (:func:`progression_score`). A zero
weight makes the corridor one-way (the other band is dropped, not held at width
0). The result equals the optimum of the MAXBAND mixed-integer program
(:func:`brain.greenwave.milp.maxband_milp`), which the tests check.

:func:`max_bandwidth` is the numba kernel, :func:`max_bandwidth_reference` its plain-Python
reference; :func:`band_of_offsets` / :func:`band_of_offsets_reference` measure the bands that
given green starts actually produce.

Example:
    >>> import numpy as np
    >>> g = np.array([40.0, 40.0, 40.0]); z = np.zeros(3)
    >>> bands, starts = max_bandwidth(90.0, g, g, z, np.array([0.0, 45.0, 90.0]),
    ...                               np.array([90.0, 45.0, 0.0]), 1.0, 1.0)
    >>> [round(float(x), 6) for x in bands[:2]]  # links take half a cycle: full greens
    [40.0, 40.0]
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

_EPS = 1e-9


@njit(cache=True)
def _frac(x):
    # x mod 1 in [0, 1), snapping values a hair below 1 (rounding noise) to 0.
    r = x - math.floor(x)
    if r > 1.0 - _EPS:
        r = 0.0
    return r


@njit(cache=True)
def _solve_bands(s_total, g_out_min, g_in_min, w_out, w_in):
    """Max ``w_out b + w_in b̄`` over the 2-D polygon; returns the middle of the optimal face."""
    # rows: a1 * b + a2 * bb <= c
    a1 = np.array([-1.0, 0.0, 1.0, 0.0, 1.0, (w_out - w_in) * w_in])
    a2 = np.array([0.0, -1.0, 0.0, 1.0, 1.0, -(w_out - w_in) * w_out])
    c = np.array([0.0, 0.0, g_out_min, g_in_min, s_total, 0.0])
    m = 6
    best = -1.0
    lo_b = 0.0
    lo_bb = 0.0
    hi_b = 0.0
    hi_bb = 0.0
    found = False
    for p in range(m):
        for q in range(p + 1, m):
            det = a1[p] * a2[q] - a1[q] * a2[p]
            if abs(det) < 1e-14:
                continue
            b = (c[p] * a2[q] - c[q] * a2[p]) / det
            bb = (a1[p] * c[q] - a1[q] * c[p]) / det
            ok = True
            for r in range(m):
                if a1[r] * b + a2[r] * bb > c[r] + 1e-9:
                    ok = False
                    break
            if not ok:
                continue
            b = max(b, 0.0)
            bb = max(bb, 0.0)
            obj = w_out * b + w_in * bb
            if (not found) or obj > best + 1e-12:
                found = True
                best = obj
                lo_b, lo_bb, hi_b, hi_bb = b, bb, b, bb
            elif obj > best - 1e-12:
                if b < lo_b or (b == lo_b and bb < lo_bb):
                    lo_b, lo_bb = b, bb
                if b > hi_b or (b == hi_b and bb > hi_bb):
                    hi_b, hi_bb = b, bb
    if not found:
        return -1.0, -1.0
    return 0.5 * (lo_b + hi_b), 0.5 * (lo_bb + hi_bb)


@njit(cache=True)
def _carry(a, length, start, green):
    # Longest piece of [a, a + length] inside the periodic green [start + k, start + k + green].
    best_len = 0.0
    best_a = a
    k0 = math.floor(a - start)
    for k in range(k0 - 1, k0 + 2):
        lo = max(a, start + k)
        hi = min(a + length, start + k + green)
        if hi - lo > best_len:
            best_len = hi - lo
            best_a = lo
    return best_a, best_len


@njit(cache=True)
def progression_score(c, go, gi, d, t_out, t_in, w_out, w_in):
    """Demand-weighted length of each direction's entry green carried through, summed over signals.

    A platoon leaves the entry signal over its whole green; at each next signal only the part
    arriving in green carries on without stopping. Used to break ties among max-band offsets.
    """
    n = c.shape[0]
    a = c[0] - d[0] + t_in[0]
    length = go[0]
    tot_out = length
    for i in range(1, n):
        if length <= 0.0:
            break
        a, length = _carry(a + t_out[i] - t_out[i - 1], length, c[i] - d[i] + t_in[i], go[i])
        tot_out += length
    a = c[n - 1] + t_in[n - 1]
    length = gi[n - 1]
    tot_in = length
    for i in range(n - 2, -1, -1):
        if length <= 0.0:
            break
        a, length = _carry(a + t_in[i] - t_in[i + 1], length, c[i] + t_in[i], gi[i])
        tot_in += length
    return w_out * tot_out + w_in * tot_in


@njit(cache=True)
def _refine(lo_c, hi_c, go, gi, d, t_out, t_in, w_out, w_in, sweeps):
    # Every c_i in [lo_c, hi_c] keeps both bands; among them, coordinate ascent on the
    # progression score (start: the middles; a move is kept only if it strictly helps).
    n = lo_c.shape[0]
    c = 0.5 * (lo_c + hi_c)
    best = progression_score(c, go, gi, d, t_out, t_in, w_out, w_in)
    for _sweep in range(sweeps):
        improved = False
        for i in range(n):
            if hi_c[i] - lo_c[i] < 1e-9:
                continue
            keep = c[i]
            for q in range(11):
                c[i] = lo_c[i] + (hi_c[i] - lo_c[i]) * q / 10.0
                sc = progression_score(c, go, gi, d, t_out, t_in, w_out, w_in)
                if sc > best + 1e-12:
                    best = sc
                    keep = c[i]
                    improved = True
            c[i] = keep
        if not improved:
            break
    return c


@njit(cache=True)
def max_bandwidth(cycle_s, green_out_s, green_in_s, in_shift_s, travel_out_s, travel_in_s, weight_out, weight_in,
                  refine_sweeps=0):
    """Optimal two-way bands and the outbound green starts that give them.

    Returns ``(bands, green_start_s)``: ``bands = [b_out_s, b_in_s, out_start_s, in_start_s,
    total_s]`` where ``out_start_s`` is the outbound band's start at the first intersection,
    ``in_start_s`` the inbound band's start at the last one, ``total_s`` = S* (the largest
    b + b̄ the geometry allows; negative if even zero-width bands cannot both exist, in which
    case both bands are 0); ``green_start_s[i]`` is when the outbound coordinated green starts
    at intersection ``i`` (s, same clock, in [0, cycle)).
    """
    n = green_out_s.shape[0]
    C = cycle_s
    e = np.empty(n)
    p = np.empty(n)
    L = np.empty(n)
    g_out_min = 1.0
    g_in_min = 1.0
    for i in range(n):
        go = green_out_s[i] / C
        gi = green_in_s[i] / C
        g_out_min = min(g_out_min, go)
        g_in_min = min(g_in_min, gi)
        e[i] = (travel_out_s[i] + in_shift_s[i] - travel_in_s[i]) / C
        p[i] = _frac(e[i] - go)
        L[i] = go + gi
    best_s = -1e300
    best_j = 0
    for j in range(n):
        s = 1e300
        for i in range(n):
            v = L[i] - _frac(p[j] - p[i])
            if v < s:
                s = v
        if s > best_s + 1e-12:
            best_s = s
            best_j = j
    bands = np.zeros(5)
    bands[4] = best_s * C
    starts = np.empty(n)
    if weight_in <= 0.0 or weight_out <= 0.0:
        # One-way progression: the other direction's band does not exist, so it constrains nothing.
        for i in range(n):
            if weight_in <= 0.0:
                u = travel_out_s[i] / C - 0.5 * (green_out_s[i] / C - g_out_min)
            else:
                u = -0.5 * (green_in_s[i] / C - g_in_min) - in_shift_s[i] / C + travel_in_s[i] / C
            starts[i] = _frac(u) * C
        if weight_in <= 0.0:
            bands[0] = g_out_min * C
        else:
            bands[1] = g_in_min * C
        return bands, starts
    if best_s < 0.0:
        b = 0.0
        bb = 0.0
    else:
        b, bb = _solve_bands(best_s, g_out_min, g_in_min, weight_out, weight_in)
        if b < 0.0:
            b = 0.0
            bb = 0.0
    sigma = p[best_j] + b  # inbound band start (inbound frame)
    lo_c = np.empty(n)
    hi_c = np.empty(n)
    for i in range(n):
        go = green_out_s[i] / C
        gi = green_in_s[i] / C
        slack = max(go - b, 0.0)
        lo0 = e[i] - slack
        delta = _frac(sigma - lo0)
        lo = lo0 + max(0.0, delta - (gi - bb))
        hi = lo0 + min(slack, delta)
        if hi < lo:
            hi = lo
        lo_c[i] = lo
        hi_c[i] = hi
    c = _refine(lo_c, hi_c, green_out_s / C, green_in_s / C, in_shift_s / C, travel_out_s / C, travel_in_s / C,
                weight_out, weight_in, refine_sweeps)
    for i in range(n):
        u = c[i] - in_shift_s[i] / C + travel_in_s[i] / C
        starts[i] = _frac(u) * C
    bands[0] = b * C
    bands[1] = bb * C
    bands[2] = 0.0
    bands[3] = _frac(sigma) * C
    return bands, starts


@njit(cache=True)
def _one_way(a, g):
    n = a.shape[0]
    best = 0.0
    best_start = 0.0
    for j in range(n):
        w = 1e300
        for i in range(n):
            v = g[i] - _frac(a[j] - a[i])
            if v < w:
                w = v
        if w > best + 1e-12:
            best = w
            best_start = a[j]
    return best, best_start


@njit(cache=True)
def band_of_offsets(cycle_s, green_out_s, green_in_s, in_shift_s, travel_out_s, travel_in_s, green_start_s):
    """Widest bands the given outbound green starts produce: ``[b_out_s, b_in_s, out_start_s, in_start_s]``.

    ``out_start_s`` is at the first intersection, ``in_start_s`` at the last (same clock).
    """
    n = green_out_s.shape[0]
    C = cycle_s
    a = np.empty(n)
    c = np.empty(n)
    go = np.empty(n)
    gi = np.empty(n)
    for i in range(n):
        go[i] = green_out_s[i] / C
        gi[i] = green_in_s[i] / C
        a[i] = _frac((green_start_s[i] - travel_out_s[i]) / C)
        c[i] = _frac((green_start_s[i] + in_shift_s[i] - travel_in_s[i]) / C)
    bo, so = _one_way(a, go)
    bi, si = _one_way(c, gi)
    out = np.empty(4)
    out[0] = bo * C
    out[1] = bi * C
    out[2] = so * C
    out[3] = si * C
    return out


# --------------------------------------------------------------------------- plain-Python references
def _frac_py(x: float) -> float:
    r = x - math.floor(x)
    return 0.0 if r > 1.0 - _EPS else r


def _solve_bands_reference(s_total, g_out_min, g_in_min, w_out, w_in):
    rows = [
        (-1.0, 0.0, 0.0),
        (0.0, -1.0, 0.0),
        (1.0, 0.0, g_out_min),
        (0.0, 1.0, g_in_min),
        (1.0, 1.0, s_total),
        ((w_out - w_in) * w_in, -(w_out - w_in) * w_out, 0.0),
    ]
    verts = []
    for p in range(len(rows)):
        for q in range(p + 1, len(rows)):
            (a1, a2, c1), (b1, b2, c2) = rows[p], rows[q]
            det = a1 * b2 - b1 * a2
            if abs(det) < 1e-14:
                continue
            x = (c1 * b2 - c2 * a2) / det
            y = (a1 * c2 - b1 * c1) / det
            if all(r1 * x + r2 * y <= rc + 1e-9 for r1, r2, rc in rows):
                verts.append((max(x, 0.0), max(y, 0.0)))
    if not verts:
        return -1.0, -1.0
    best = max(w_out * x + w_in * y for x, y in verts)
    opt = sorted(v for v in verts if w_out * v[0] + w_in * v[1] > best - 1e-12)
    (x0, y0), (x1, y1) = opt[0], opt[-1]
    return 0.5 * (x0 + x1), 0.5 * (y0 + y1)


def max_bandwidth_reference(cycle_s, green_out_s, green_in_s, in_shift_s, travel_out_s, travel_in_s, weight_out, weight_in,
                            refine_sweeps=0):
    """Plain-Python twin of :func:`max_bandwidth` (same contract), used by the tests."""
    C = float(cycle_s)
    go = [float(g) / C for g in green_out_s]
    gi = [float(g) / C for g in green_in_s]
    n = len(go)
    e = [(float(travel_out_s[i]) + float(in_shift_s[i]) - float(travel_in_s[i])) / C for i in range(n)]
    p = [_frac_py(e[i] - go[i]) for i in range(n)]
    L = [go[i] + gi[i] for i in range(n)]
    best_s, best_j = -1e300, 0
    for j in range(n):
        s = min(L[i] - _frac_py(p[j] - p[i]) for i in range(n))
        if s > best_s + 1e-12:
            best_s, best_j = s, j
    if weight_in <= 0 or weight_out <= 0:
        starts = []
        for i in range(n):
            if weight_in <= 0:
                u = float(travel_out_s[i]) / C - 0.5 * (go[i] - min(go))
            else:
                u = -0.5 * (gi[i] - min(gi)) - float(in_shift_s[i]) / C + float(travel_in_s[i]) / C
            starts.append(_frac_py(u) * C)
        bands = [min(go) * C if weight_in <= 0 else 0.0, 0.0 if weight_in <= 0 else min(gi) * C, 0.0, 0.0, best_s * C]
        return np.array(bands), np.array(starts)
    if best_s < 0:
        b = bb = 0.0
    else:
        b, bb = _solve_bands_reference(best_s, min(go), min(gi), weight_out, weight_in)
        if b < 0:
            b = bb = 0.0
    sigma = p[best_j] + b
    lo_c, hi_c = [], []
    for i in range(n):
        slack = max(go[i] - b, 0.0)
        lo0 = e[i] - slack
        delta = _frac_py(sigma - lo0)
        lo = lo0 + max(0.0, delta - (gi[i] - bb))
        lo_c.append(lo)
        hi_c.append(max(lo0 + min(slack, delta), lo))
    d = [float(x) / C for x in in_shift_s]
    t_o = [float(x) / C for x in travel_out_s]
    t_i = [float(x) / C for x in travel_in_s]
    c = _refine_reference(lo_c, hi_c, go, gi, d, t_o, t_i, weight_out, weight_in, refine_sweeps)
    starts = [_frac_py(c[i] - d[i] + t_i[i]) * C for i in range(n)]
    bands = [b * C, bb * C, 0.0, _frac_py(sigma) * C, best_s * C]
    return np.array(bands), np.array(starts)


def band_of_offsets_reference(cycle_s, green_out_s, green_in_s, in_shift_s, travel_out_s, travel_in_s, green_start_s):
    """Plain-Python twin of :func:`band_of_offsets`."""
    C = float(cycle_s)
    n = len(green_out_s)

    def one_way(a, g):
        best, start = 0.0, 0.0
        for j in range(n):
            w = min(g[i] - _frac_py(a[j] - a[i]) for i in range(n))
            if w > best + 1e-12:
                best, start = w, a[j]
        return best, start

    a = [_frac_py((green_start_s[i] - travel_out_s[i]) / C) for i in range(n)]
    c = [_frac_py((green_start_s[i] + in_shift_s[i] - travel_in_s[i]) / C) for i in range(n)]
    bo, so = one_way(a, [g / C for g in green_out_s])
    bi, si = one_way(c, [g / C for g in green_in_s])
    return np.array([bo * C, bi * C, so * C, si * C])


def _carry_reference(a, length, start, green):
    best_len, best_a = 0.0, a
    k0 = math.floor(a - start)
    for k in (k0 - 1, k0, k0 + 1):
        lo, hi = max(a, start + k), min(a + length, start + k + green)
        if hi - lo > best_len:
            best_len, best_a = hi - lo, lo
    return best_a, best_len


def progression_score_reference(c, go, gi, d, t_out, t_in, w_out, w_in):
    """Plain-Python twin of :func:`progression_score`."""
    n = len(c)
    a, length = c[0] - d[0] + t_in[0], go[0]
    tot_out = length
    for i in range(1, n):
        if length <= 0:
            break
        a, length = _carry_reference(a + t_out[i] - t_out[i - 1], length, c[i] - d[i] + t_in[i], go[i])
        tot_out += length
    a, length = c[n - 1] + t_in[n - 1], gi[n - 1]
    tot_in = length
    for i in range(n - 2, -1, -1):
        if length <= 0:
            break
        a, length = _carry_reference(a + t_in[i] - t_in[i + 1], length, c[i] + t_in[i], gi[i])
        tot_in += length
    return w_out * tot_out + w_in * tot_in


def _refine_reference(lo_c, hi_c, go, gi, d, t_out, t_in, w_out, w_in, sweeps):
    n = len(lo_c)
    c = [0.5 * (lo_c[i] + hi_c[i]) for i in range(n)]
    best = progression_score_reference(c, go, gi, d, t_out, t_in, w_out, w_in)
    for _ in range(sweeps):
        improved = False
        for i in range(n):
            if hi_c[i] - lo_c[i] < 1e-9:
                continue
            keep = c[i]
            for q in range(11):
                c[i] = lo_c[i] + (hi_c[i] - lo_c[i]) * q / 10.0
                sc = progression_score_reference(c, go, gi, d, t_out, t_in, w_out, w_in)
                if sc > best + 1e-12:
                    best, keep, improved = sc, c[i], True
            c[i] = keep
        if not improved:
            break
    return c
