"""Finding a series' own period: the multi-resolution buffer and the autocorrelation search.

Part of :mod:`brain.kernels.period` (the state layout, the profile over the period and the overview
are there): per key a buffer of ``BUF_N`` slot means spanning the whole history (pairs merge when it
is full; gaps repeat the last slot), searched for the first strong, repeating autocorrelation peak
of the detrended buffer as it fills (``ACF_MIN``, with a trough before it of ``ACF_PROMINENCE``: a
random walk's slowly falling autocorrelation has no such peak; the first peak wins over its
multiples even when sampled half a slot off; it must repeat at twice its lag; sparse variance is
no cycle), refined by parabolic interpolation on its largest multiple in the buffer and snapped to
a round period (a minute ... a week) within ``SNAP_TOL``. A period found again within ``PERIOD_TOL``
keeps its profile (re-anchored so that the phase now is unchanged). A day or a week builds no
profile (the hour bins learn it); any other period seeds one from the buffer folded at that period,
in the hour-of-week block. Every njit function has a plain-Python twin on a list (``*_ref``) that
the tests compare bit for bit.

Example:
    >>> import numpy as np
    >>> i = np.arange(64)
    >>> y = np.where((i / 6.5) % 1.0 < 0.3, 2.0, 0.0) + np.sin(2 * np.pi * i / 6.5)
    >>> lf, r = find_period_slots(y)        # a cycle of 6.5 slots, not its 13-slot multiple
    >>> round(float(lf), 1), bool(r >= ACF_MIN)
    (6.5, True)
    >>> snap_period(0.995 * 3600.0)         # within 1.5 % of an hour: an hour
    3600.0
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from brain.kernels.period import (
    seed_profile,
    seed_profile_ref,
    linear_trend_ref,
    BUF_N,
    NB_MAX,
    PROF0,
    P_ANCHOR,
    P_BUF,
    P_CNT,
    P_CUR,
    P_ERR_H,
    P_ERR_N,
    P_ERR_P,
    P_LASTV,
    P_NB,
    P_ORIGIN,
    P_PERIOD,
    P_SLOT,
    P_STRENGTH,
    P_SUM,
    P_USE,
)

SLOT_MIN_S = 1.0
LAG_MIN = 3  # a peak needs a trough before it: at least three slots
LAG_MAX = 64  # two cycles in the buffer at least
LAG_TRUST = 12  # a period known already is re-measured only at this many slots per cycle or more
DETECT_EVERY = 16  # slots: the period is looked for every quarter buffer (and before each merge)
DETECT_MIN = 48  # ... once three quarters are filled (a 32-slot autocorrelation finds periods in noise)
MIN_OVERLAP = 16  # the refining multiple keeps this many slot pairs
ACF_MIN = 0.5
# ... and significant: noise's autocorrelation over m slot pairs has a deviation ~ 1 / sqrt(m), and
# every detection tests dozens of lags (white noise must not find a period in a week of points)
ACF_SIG = 4.5
ACF_PROMINENCE = 0.3
FUND_FRAC = 0.85  # the first peak this close to the best one is the fundamental (not a multiple)
# ... less what sampling it half a slot off its peak may cost: a cycle of 6.5 slots peaks at lags 6
# and 7 well below its 13-slot multiple, which happens to fall on a slot. The autocorrelation lost
# per slot of misalignment is at most ``best - r[1]`` (linear for step edges, less for smooth
# cycles), so half a slot costs at most ``MISALIGN_LOSS * (best - r[1])``; such a peak must still
# reach ``ACF_MIN`` (a weak early peak is no reason to give up a strong one: a multiple of the period
# is a period too, a wrong fraction of it is not)
MISALIGN_LOSS = 0.5
# a cycle repeats: the autocorrelation at twice the period (best of the three nearest lags) keeps this
# share of the peak's, or no period is reported until the buffer shows it. Sparse series (a set-point's rare one-quantum wobbles, isolated bursts) show a strong peak at
# the distance between two of their events by chance, and nothing at its multiples
REPEAT_FRAC = 0.6
# ... and the buffer's variance is not carried by a handful of slots: its participation ratio
# (sum d^2)^2 / sum d^4 (~ the number of slots that carry it) is at least M_EFF_MIN. A pulse train is
# a cycle once about this many pulses are in the buffer
M_EFF_MIN = 4.0
REPEAT_OVERLAP = 16  # slot pairs the autocorrelation at twice the period needs (fewer: not measurable)
MIN_BINS = 4  # a period shorter than four sampling intervals cannot be learned
SNAP_TOL = 0.015
PERIOD_TOL = 0.02
NICE_S = np.array([60.0, 120.0, 300.0, 600.0, 900.0, 1200.0, 1800.0, 3600.0, 7200.0, 10800.0, 14400.0, 21600.0,
                   28800.0, 43200.0, 86400.0, 172800.0, 604800.0])
NICE_S_REF = tuple(NICE_S.tolist())
# periods the hour bins learn, no profile of their own: a day and its divisors down to 6 hours (the
# hour-of-day bins), a week and its halves and thirds (the hour-of-week bins). Such periods are
# measured on a coarse buffer (a few slots per cycle once days have been seen): anything within
# DAY_WEEK_TOL of one is it. Without the divisors, a 12-hour pressure cycle took the hour-of-week
# block and the city generator's clean streams flagged more (bench/anomaly_quality.py 0.041 -> 0.061)
DAY_S = 86400.0
WEEK_S = 604800.0
HOUR_BIN_PERIODS_S = np.array([DAY_S, DAY_S / 2, DAY_S / 3, DAY_S / 4, WEEK_S, WEEK_S / 2, WEEK_S / 3])
HOUR_BIN_PERIODS_REF = tuple(HOUR_BIN_PERIODS_S.tolist())
DAY_WEEK_TOL = 0.06


# --- the multi-resolution buffer -----------------------------------------------------------------------
@njit(cache=True)
def period_push(P, k, o, t_s, x, dt_s):
    """Add the value ``x`` at ``t_s`` (seconds) to key ``k``'s buffer (block at column ``o``);
    ``dt_s``: the key's typical sampling interval (nothing starts before one is known). Finishing a
    slot may fill the buffer: pairs merge and the period is re-detected."""
    if P[k, o + P_SLOT] == 0.0:
        if not dt_s > 0.0:
            return
        P[k, o + P_SLOT] = dt_s if dt_s > SLOT_MIN_S else SLOT_MIN_S
        P[k, o + P_ORIGIN] = t_s
        P[k, o + P_LASTV] = x
    idx = math.floor((t_s - P[k, o + P_ORIGIN]) / P[k, o + P_SLOT])
    while idx > P[k, o + P_CUR]:
        cur = int(P[k, o + P_CUR])
        if P[k, o + P_CNT] > 0.0:
            P[k, o + P_LASTV] = P[k, o + P_SUM] / P[k, o + P_CNT]
        P[k, o + P_BUF + cur] = P[k, o + P_LASTV]
        P[k, o + P_SUM] = 0.0
        P[k, o + P_CNT] = 0.0
        cur += 1
        if cur % DETECT_EVERY == 0 and cur >= DETECT_MIN:
            _detect(P, k, o, t_s, dt_s, cur)
        if cur == BUF_N:
            for i in range(BUF_N // 2):
                P[k, o + P_BUF + i] = 0.5 * (P[k, o + P_BUF + 2 * i] + P[k, o + P_BUF + 2 * i + 1])
            cur = BUF_N // 2
            P[k, o + P_SLOT] *= 2.0
            idx = math.floor((t_s - P[k, o + P_ORIGIN]) / P[k, o + P_SLOT])
        P[k, o + P_CUR] = cur
    # a point older than the slot being filled (out of order) joins it
    P[k, o + P_SUM] += x
    P[k, o + P_CNT] += 1.0


def period_push_ref(row, o, t_s, x, dt_s):
    if row[o + P_SLOT] == 0.0:
        if not dt_s > 0.0:
            return
        row[o + P_SLOT] = dt_s if dt_s > SLOT_MIN_S else SLOT_MIN_S
        row[o + P_ORIGIN] = t_s
        row[o + P_LASTV] = x
    idx = math.floor((t_s - row[o + P_ORIGIN]) / row[o + P_SLOT])
    while idx > row[o + P_CUR]:
        cur = int(row[o + P_CUR])
        if row[o + P_CNT] > 0.0:
            row[o + P_LASTV] = row[o + P_SUM] / row[o + P_CNT]
        row[o + P_BUF + cur] = row[o + P_LASTV]
        row[o + P_SUM] = 0.0
        row[o + P_CNT] = 0.0
        cur += 1
        if cur % DETECT_EVERY == 0 and cur >= DETECT_MIN:
            _detect_ref(row, o, t_s, dt_s, cur)
        if cur == BUF_N:
            for i in range(BUF_N // 2):
                row[o + P_BUF + i] = 0.5 * (row[o + P_BUF + 2 * i] + row[o + P_BUF + 2 * i + 1])
            cur = BUF_N // 2
            row[o + P_SLOT] *= 2.0
            idx = math.floor((t_s - row[o + P_ORIGIN]) / row[o + P_SLOT])
        row[o + P_CUR] = float(cur)
    row[o + P_SUM] += x
    row[o + P_CNT] += 1.0


# --- period detection ----------------------------------------------------------------------------------
@njit(cache=True)
def _acf(d, lag):
    n = d.shape[0]
    num = 0.0
    a2 = 0.0
    b2 = 0.0
    for i in range(n - lag):
        num += d[i] * d[i + lag]
        a2 += d[i] * d[i]
        b2 += d[i + lag] * d[i + lag]
    den = math.sqrt(a2 * b2)
    return num / den if den > 0.0 else 0.0


def _acf_ref(d, lag):
    num = a2 = b2 = 0.0
    for i in range(len(d) - lag):
        num += d[i] * d[i + lag]
        a2 += d[i] * d[i]
        b2 += d[i + lag] * d[i + lag]
    den = math.sqrt(a2 * b2)
    return num / den if den > 0.0 else 0.0


@njit(cache=True)
def _parabola(r0, r1, r2):
    # the vertex offset (-0.5 .. 0.5) of the parabola through three equally spaced points
    den = r0 - 2.0 * r1 + r2
    if den >= 0.0:
        return 0.0
    off = 0.5 * (r0 - r2) / den
    return off if -0.5 < off < 0.5 else 0.0


def _parabola_ref(r0, r1, r2):
    den = r0 - 2.0 * r1 + r2
    if den >= 0.0:
        return 0.0
    off = 0.5 * (r0 - r2) / den
    return off if -0.5 < off < 0.5 else 0.0


@njit(cache=True)
def _repeat(d, lf):
    # the autocorrelation at twice the period lf (best of the three nearest lags); 0 if not measurable
    c = int(math.floor(2.0 * lf + 0.5))
    best = 0.0
    for j in range(c - 1, c + 2):
        if j + REPEAT_OVERLAP <= d.shape[0]:
            rj = _acf(d, j)
            best = rj if rj > best else best
    return best


def _repeat_ref(d, lf):
    c = int(math.floor(2.0 * lf + 0.5))
    return max([0.0] + [_acf_ref(d, j) for j in range(c - 1, c + 2) if j + REPEAT_OVERLAP <= len(d)])


@njit(cache=True)
def find_period_slots(y):
    """The period of ``y`` in slots (fractional; 0 when there is none) and its autocorrelation."""
    n = y.shape[0]
    # detrend with the least-squares line: a trend or a level shift is not a cycle
    mi = 0.5 * (n - 1)
    my = 0.0
    for i in range(n):
        my += y[i]
    my /= n
    sxy = 0.0
    sxx = 0.0
    for i in range(n):
        sxy += (i - mi) * (y[i] - my)
        sxx += (i - mi) * (i - mi)
    b = sxy / sxx
    d = np.empty(n)
    s2 = 0.0
    s4 = 0.0
    for i in range(n):
        d[i] = y[i] - my - b * (i - mi)
        s2 += d[i] * d[i]
        s4 += d[i] * d[i] * d[i] * d[i]
    if s2 * s2 < M_EFF_MIN * s4:
        return 0.0, 0.0  # a few events carry the variance: their distances are chance, not a cycle
    lag_max = n // 2 - 1 if n // 2 - 1 < LAG_MAX else LAG_MAX
    r = np.zeros(lag_max + 2)
    for lag in range(1, lag_max + 2):
        r[lag] = _acf(d, lag)
    best = 0.0
    for lag in range(LAG_MIN, lag_max + 1):
        if r[lag] >= r[lag - 1] and r[lag] >= r[lag + 1] and r[lag] > best and r[lag] >= ACF_SIG / math.sqrt(n - lag):
            best = r[lag]
    if best < ACF_MIN:
        return 0.0, best
    loss = MISALIGN_LOSS * (best - r[1]) if best > r[1] else 0.0
    fund = FUND_FRAC * best - loss
    fund = fund if fund > ACF_MIN else ACF_MIN
    fund = fund if fund < FUND_FRAC * best else FUND_FRAC * best
    trough = r[1]
    for lag in range(LAG_MIN, lag_max + 1):
        if r[lag - 1] < trough:
            trough = r[lag - 1]
        if (r[lag] >= r[lag - 1] and r[lag] >= r[lag + 1] and r[lag] >= fund
                and r[lag] >= ACF_SIG / math.sqrt(n - lag)):
            if r[lag] - trough < ACF_PROMINENCE:
                return 0.0, r[lag]
            lf = lag + _parabola(r[lag - 1], r[lag], r[lag + 1])
            if _repeat(d, lf) < REPEAT_FRAC * r[lag]:
                return 0.0, r[lag]  # not seen to repeat (yet): two bursts a lag apart are no cycle
            # refine on the largest multiple that still overlaps enough: its error is shared by k cycles
            # (at most lf / 2 cycles: the search around k * lf must not reach the next multiple)
            kmax = int(math.floor((n - MIN_OVERLAP - 2) / lf))
            klim = int(math.floor(0.5 * lf))
            kmax = kmax if kmax < klim else klim
            if kmax >= 2:
                c = int(math.floor(kmax * lf + 0.5))
                jb = c
                rb = _acf(d, c)
                for j in range(c - 1 - kmax // 2, c + 2 + kmax // 2):
                    if 1 <= j <= n - MIN_OVERLAP - 1 and j != c:
                        rj = _acf(d, j)
                        if rj > rb:
                            rb = rj
                            jb = j
                if rb >= ACF_MIN and jb + 1 <= n - MIN_OVERLAP:
                    lk = jb + _parabola(_acf(d, jb - 1), rb, _acf(d, jb + 1))
                    lf = lk / kmax
            return lf, r[lag]
    return 0.0, best


def find_period_slots_ref(y):
    n = len(y)
    mi, my, b = linear_trend_ref(y, n)
    d = [y[i] - my - b * (i - mi) for i in range(n)]
    s2 = s4 = 0.0
    for v in d:
        s2 += v * v
        s4 += v * v * v * v
    if s2 * s2 < M_EFF_MIN * s4:
        return 0.0, 0.0
    lag_max = min(n // 2 - 1, LAG_MAX)
    r = [0.0] + [_acf_ref(d, lag) for lag in range(1, lag_max + 2)]
    peaks = [lag for lag in range(LAG_MIN, lag_max + 1)
             if r[lag] >= r[lag - 1] and r[lag] >= r[lag + 1] and r[lag] >= ACF_SIG / math.sqrt(n - lag)]
    best = 0.0
    for lag in peaks:
        if r[lag] > best:
            best = r[lag]
    if best < ACF_MIN:
        return 0.0, best
    fund = min(FUND_FRAC * best, max(FUND_FRAC * best - MISALIGN_LOSS * max(best - r[1], 0.0), ACF_MIN))
    for lag in peaks:
        if r[lag] >= fund:
            if r[lag] - min(r[1:lag]) < ACF_PROMINENCE:
                return 0.0, r[lag]
            lf = lag + _parabola_ref(r[lag - 1], r[lag], r[lag + 1])
            if _repeat_ref(d, lf) < REPEAT_FRAC * r[lag]:
                return 0.0, r[lag]
            kmax = min(int(math.floor((n - MIN_OVERLAP - 2) / lf)), int(math.floor(0.5 * lf)))
            if kmax >= 2:
                c = int(math.floor(kmax * lf + 0.5))
                jb, rb = c, _acf_ref(d, c)
                for j in range(c - 1 - kmax // 2, c + 2 + kmax // 2):
                    if 1 <= j <= n - MIN_OVERLAP - 1 and j != c:
                        rj = _acf_ref(d, j)
                        if rj > rb:
                            jb, rb = j, rj
                if rb >= ACF_MIN and jb + 1 <= n - MIN_OVERLAP:
                    lf = (jb + _parabola_ref(_acf_ref(d, jb - 1), rb, _acf_ref(d, jb + 1))) / kmax
            return lf, r[lag]
    return 0.0, best


@njit(cache=True)
def snap_period(p):
    """``p`` seconds, or the round period within ``SNAP_TOL`` of it."""
    for i in range(NICE_S.shape[0]):
        if abs(p - NICE_S[i]) <= SNAP_TOL * NICE_S[i]:
            return NICE_S[i]
    return p


def snap_period_ref(p):
    for nice in NICE_S_REF:
        if abs(p - nice) <= SNAP_TOL * nice:
            return nice
    return p


@njit(cache=True)
def _detect(P, k, o, t_s, dt_s, n):
    old = P[k, o + P_PERIOD]
    slot = P[k, o + P_SLOT]
    if old > 0.0 and old < LAG_TRUST * slot:
        return  # too coarse to measure the period found earlier better: keep it (no aliases)
    lf, strength = find_period_slots(P[k, o + P_BUF:o + P_BUF + n])
    if lf == 0.0:
        return  # nothing found: keep what a finer buffer found
    per = snap_period(lf * slot)
    nb = -1.0
    for i in range(HOUR_BIN_PERIODS_S.shape[0]):
        if abs(per - HOUR_BIN_PERIODS_S[i]) <= DAY_WEEK_TOL * HOUR_BIN_PERIODS_S[i]:
            per = HOUR_BIN_PERIODS_S[i]
            nb = 0.0  # the hour bins learn it
            break
    if nb < 0.0:
        nb = math.floor(per / dt_s) if dt_s > 0.0 else 0.0
        nb = nb if nb < NB_MAX else float(NB_MAX)
        if nb < MIN_BINS:
            return
    P[k, o + P_STRENGTH] = strength
    if old > 0.0 and abs(per - old) <= PERIOD_TOL * old:
        # the same cycle measured better: keep the profile, with the phase now unchanged
        ph = (t_s - P[k, o + P_ANCHOR]) / old
        ph -= math.floor(ph)
        P[k, o + P_ANCHOR] = t_s - ph * per
        P[k, o + P_PERIOD] = per
        return
    had_profile = P[k, o + P_NB] > 0.0
    P[k, o + P_PERIOD] = per
    P[k, o + P_ANCHOR] = t_s
    P[k, o + P_NB] = nb
    P[k, o + P_ERR_H] = 0.0
    P[k, o + P_ERR_P] = 0.0
    P[k, o + P_ERR_N] = 0.0
    P[k, o + P_USE] = 0.0
    if nb > 0.0:
        seed_profile(P, k, o, n, dt_s)
    elif had_profile:
        for j in range(2 * NB_MAX):  # the hour-of-week bins start again
            P[k, PROF0 + j] = 0.0


def _detect_ref(row, o, t_s, dt_s, n):
    old, slot = row[o + P_PERIOD], row[o + P_SLOT]
    if old > 0.0 and old < LAG_TRUST * slot:
        return
    lf, strength = find_period_slots_ref(row[o + P_BUF:o + P_BUF + n])
    if lf == 0.0:
        return
    per = snap_period_ref(lf * slot)
    hour_bins = [h for h in HOUR_BIN_PERIODS_REF if abs(per - h) <= DAY_WEEK_TOL * h]
    if hour_bins:
        per, nb = hour_bins[0], 0.0
    else:
        nb = min(float(math.floor(per / dt_s)), float(NB_MAX)) if dt_s > 0.0 else 0.0
        if nb < MIN_BINS:
            return
    row[o + P_STRENGTH] = strength
    if old > 0.0 and abs(per - old) <= PERIOD_TOL * old:
        ph = (t_s - row[o + P_ANCHOR]) / old
        ph -= math.floor(ph)
        row[o + P_ANCHOR] = t_s - ph * per
        row[o + P_PERIOD] = per
        return
    had_profile = row[o + P_NB] > 0.0
    row[o + P_PERIOD], row[o + P_ANCHOR], row[o + P_NB] = per, t_s, nb
    row[o + P_ERR_H] = row[o + P_ERR_P] = row[o + P_ERR_N] = row[o + P_USE] = 0.0
    if nb > 0.0:
        seed_profile_ref(row, o, n, dt_s)
    elif had_profile:
        for j in range(2 * NB_MAX):
            row[PROF0 + j] = 0.0
