"""Seasonality at a series' own period: found by autocorrelation, learned at its own resolution.

Hour-of-day and hour-of-week bins (:mod:`brain.kernels.seasonal`) fit cycles of a day or a week
at an hour's resolution. A machine's 40-minute duty cycle, a 7-hour rota or a job every 37
samples are invisible to them. Per key the detector keeps ``PER_COLS`` = 80 more floats at the end
of its seasonal row (offset ``o``): a header and a small multi-resolution buffer of ``BUF_N`` = 64
slot means in which :mod:`brain.kernels.period_find` looks for the key's period. Then:

* a period that snaps to **a day or a week** builds nothing: the hour bins (and the hour-of-day
  noise profile) already learn it. A city's series pay only the buffer;
* any **other period** takes over the hour-of-week block (``NB_MAX`` = 168 ``[value, weight]``
  pairs, ``PROF0``) as a profile over that period, ``max(period / 168, sampling interval)`` per
  bin, read linearly between bin centres around its own slow mean, learned like the hour bins
  (running mean, then an EWMA over ``MEMORY_CYCLES`` cycles). The hour-of-day bins keep learning:
  they are the fallback and the comparator. The detector uses the period profile only once it
  predicts the same points clearly better (:func:`period_choose`, ``PICK_RATIO`` with hysteresis),
  so a spurious period costs no false alarms; one still not better after ``REJECT_N`` compared
  points gives the block back to the hour-of-week bins.

Every njit function has a plain-Python twin on a list (``*_ref``) that the tests compare bit for bit.

Example:
    >>> import numpy as np
    >>> from brain.kernels.period_find import period_push
    >>> P = np.zeros((1, PROF0 + 2 * NB_MAX + PER_COLS)); o = PROF0 + 2 * NB_MAX
    >>> ts = np.arange(6000) * 20.0                        # 20 s sampling, 33 hours
    >>> x = np.where((ts % 2400.0) < 900.0, 5.0, 1.0)      # a 40-minute duty cycle (15 min on)
    >>> for t, v in zip(ts, x):
    ...     period_learn(P, 0, o, t, v, 20.0, 1.0, 0.0)
    ...     period_push(P, 0, o, t, v, 20.0)
    >>> round(float(P[0, o + P_PERIOD]) / 60.0), int(P[0, o + P_NB])   # minutes; bins of 20 s
    (40, 120)
    >>> val, warm = period_value(P, 0, o, 6000 * 20.0 + 300.0, 3.0)   # 5 min into an "on" phase
    >>> bool(warm), round(float(val), 1)
    (True, 5.0)
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from brain.kernels.robust import clip, clip_ref
from brain.kernels.seasonal import N_TOD, N_WEEK

BUF_N = 64
# the profile reuses the hour-of-week block of the seasonal row
PROF0 = 2 * N_TOD
NB_MAX = N_WEEK
# offsets inside a key's period block
P_SLOT = 0  # slot width, s (0: not started)
P_ORIGIN = 1  # start of slot 0, s (the key's first point)
P_CUR = 2  # index of the slot being accumulated
P_SUM = 3  # ... its sum and count
P_CNT = 4
P_LASTV = 5  # the last finished slot's mean (fills gaps)
P_PERIOD = 6  # detected period, s (0: none)
P_ANCHOR = 7  # a time at phase 0, s
P_NB = 8  # bins of the profile (0: none, the hour-of-week block holds hour-of-week bins)
P_STRENGTH = 9  # autocorrelation at the period
P_ERR_H = 10  # mean |residual| with the hour profile / with this one, on the same points
P_ERR_P = 11
P_ERR_N = 12
P_USE = 13  # 1 while this profile is the one used
P_MEAN = 14  # the profile's own slow mean (the detector's level may chase a cycle it cannot see)
P_MEAN_N = 15
P_BUF = 16
PER_COLS = P_BUF + BUF_N

MEMORY_CYCLES = 7.0
MIN_BIN_WEIGHT = 3.0
WARM_VISITS = 1.5
SEED_VISITS = 2.0  # the weight of a bin seeded from the buffer (above WARM_VISITS: the sampling interval moves)
ERR_ALPHA = 0.01
ERR_MIN_N = 50.0
PICK_RATIO = 0.85  # used once its error is 15 % below the hour profile's, dropped when not below it
# a profile still not better than the hour-of-day bins after this many compared points, and as many
# cycles' worth, is given up: the hour-of-week bins get their block back (the period stays known, so
# it is not seeded again). Young hour-of-day bins are running means that echo the last hours, so
# they win early against any profile: a fixed 1,000 points dropped a clean 7-hour cycle, and 20
# cycles cost odd periods recall in bench/anomaly_real.py (synthetic 66.9 -> 66.2 on one seed)
REJECT_N = 1000.0
REJECT_CYCLES = 100.0


@njit(cache=True)
def _bins(P, k, o, t_s):
    per = P[k, o + P_PERIOD]
    nb = P[k, o + P_NB]
    ph = (t_s - P[k, o + P_ANCHOR]) / per
    f = (ph - math.floor(ph)) * nb - 0.5
    b0 = math.floor(f)
    w1 = f - b0
    i0 = b0 % nb
    i1 = (b0 + 1.0) % nb
    return PROF0 + 2 * int(i0), PROF0 + 2 * int(i1), w1


def _bins_ref(row, o, t_s):
    per, nb = row[o + P_PERIOD], row[o + P_NB]
    ph = (t_s - row[o + P_ANCHOR]) / per
    f = (ph - math.floor(ph)) * nb - 0.5
    b0 = math.floor(f)
    w1 = f - b0
    return PROF0 + 2 * int(b0 % nb), PROF0 + 2 * int((b0 + 1.0) % nb), w1


@njit(cache=True)
def period_value(P, k, o, t_s, min_weight):
    """``(prediction, warm)``: the profile's mean plus the profile at ``t_s`` (linear between bin
    centres); warm once both bracketing bins hold ``min_weight`` points (:func:`period_min_weight`)."""
    if P[k, o + P_NB] == 0.0:
        return 0.0, False
    c0, c1, w1 = _bins(P, k, o, t_s)
    if P[k, c0 + 1] < min_weight or P[k, c1 + 1] < min_weight:
        return 0.0, False
    return P[k, o + P_MEAN] + ((1.0 - w1) * P[k, c0] + w1 * P[k, c1]), True


def period_value_ref(row, o, t_s, min_weight):
    if row[o + P_NB] == 0.0:
        return 0.0, False
    c0, c1, w1 = _bins_ref(row, o, t_s)
    if row[c0 + 1] < min_weight or row[c1 + 1] < min_weight:
        return 0.0, False
    return row[o + P_MEAN] + ((1.0 - w1) * row[c0] + w1 * row[c1]), True


@njit(cache=True)
def period_min_weight(P, k, o, dt_s):
    """Points a bin must hold before the profile is used: ``WARM_VISITS`` visits, at least ``MIN_BIN_WEIGHT``."""
    nb = P[k, o + P_NB]
    if nb == 0.0 or not dt_s > 0.0:
        return MIN_BIN_WEIGHT
    m = WARM_VISITS * P[k, o + P_PERIOD] / nb / dt_s
    return m if m > MIN_BIN_WEIGHT else MIN_BIN_WEIGHT


def period_min_weight_ref(row, o, dt_s):
    nb = row[o + P_NB]
    if nb == 0.0 or not dt_s > 0.0:
        return MIN_BIN_WEIGHT
    return max(WARM_VISITS * row[o + P_PERIOD] / nb / dt_s, MIN_BIN_WEIGHT)


@njit(cache=True)
def _bin_alpha(weight, w, dt_s, bin_s):
    # running mean at first, then an EWMA over the elapsed time in the bin against MEMORY_CYCLES visits
    d = dt_s if dt_s < bin_s else bin_s
    x = w * d / (MEMORY_CYCLES * bin_s)
    a = x / (1.0 + x)
    m = w / (weight + w) if weight + w > 0.0 else 0.0
    return a if a > m else m


def _bin_alpha_ref(weight, w, dt_s, bin_s):
    x = w * min(dt_s, bin_s) / (MEMORY_CYCLES * bin_s)
    m = w / (weight + w) if weight + w > 0.0 else 0.0
    return max(x / (1.0 + x), m)


@njit(cache=True)
def period_learn(P, k, o, t_s, x, dt_s, clip_c, jump):
    """Learn ``x`` at ``t_s`` (no-op without a profile): the mean (first moved by ``jump``: the
    detector adopted a level shift) and the bracketing bins (each by its interpolation weight) learn
    the residual, clipped at ``clip_c`` once both bins are warm (``MIN_BIN_WEIGHT``)."""
    if P[k, o + P_NB] == 0.0:
        return
    per = P[k, o + P_PERIOD]
    P[k, o + P_MEAN] += jump
    c0, c1, w1 = _bins(P, k, o, t_s)
    w0 = 1.0 - w1
    off = w0 * P[k, c0] + w1 * P[k, c1]
    res = x - P[k, o + P_MEAN] - off
    if P[k, c0 + 1] >= MIN_BIN_WEIGHT and P[k, c1 + 1] >= MIN_BIN_WEIGHT:
        res = clip(res, clip_c)
    bin_s = per / P[k, o + P_NB]
    a0 = _bin_alpha(P[k, c0 + 1], w0, dt_s, bin_s)
    a1 = _bin_alpha(P[k, c1 + 1], w1, dt_s, bin_s)
    target = off + res
    P[k, c0] += a0 * (target - P[k, c0])
    P[k, c0 + 1] += w0
    P[k, c1] += a1 * (target - P[k, c1])
    P[k, c1 + 1] += w1
    # the mean: a running mean at first, then an EWMA over MEMORY_CYCLES cycles of elapsed time
    m = P[k, o + P_MEAN_N]
    d = dt_s if dt_s < per else per
    a = d / (MEMORY_CYCLES * per)
    a = a if a > 1.0 / (m + 1.0) else 1.0 / (m + 1.0)
    P[k, o + P_MEAN] += a * res
    P[k, o + P_MEAN_N] = m + 1.0


def period_learn_ref(row, o, t_s, x, dt_s, clip_c, jump):
    if row[o + P_NB] == 0.0:
        return
    per = row[o + P_PERIOD]
    row[o + P_MEAN] += jump
    c0, c1, w1 = _bins_ref(row, o, t_s)
    off = (1.0 - w1) * row[c0] + w1 * row[c1]
    res = x - row[o + P_MEAN] - off
    if row[c0 + 1] >= MIN_BIN_WEIGHT and row[c1 + 1] >= MIN_BIN_WEIGHT:
        res = clip_ref(res, clip_c)
    bin_s = per / row[o + P_NB]
    a0 = _bin_alpha_ref(row[c0 + 1], 1.0 - w1, dt_s, bin_s)
    a1 = _bin_alpha_ref(row[c1 + 1], w1, dt_s, bin_s)
    row[c0] += a0 * (off + res - row[c0])
    row[c0 + 1] += 1.0 - w1
    row[c1] += a1 * (off + res - row[c1])
    row[c1 + 1] += w1
    m = row[o + P_MEAN_N]
    a = max(min(dt_s, per) / (MEMORY_CYCLES * per), 1.0 / (m + 1.0))
    row[o + P_MEAN] += a * res
    row[o + P_MEAN_N] = m + 1.0


@njit(cache=True)
def period_choose(P, k, o, err_hour, err_period, dt_s):
    """Learn both profiles' absolute errors on this point (both warm) and return whether the period
    profile is the one to use: once ``ERR_MIN_N`` points compared it clearly better (``PICK_RATIO``),
    until it is no longer better (``dt_s``: the typical sampling interval, for ``REJECT_CYCLES``)."""
    n = P[k, o + P_ERR_N]
    a = 1.0 / (n + 1.0)
    a = a if a > ERR_ALPHA else ERR_ALPHA
    P[k, o + P_ERR_H] += a * (err_hour - P[k, o + P_ERR_H])
    P[k, o + P_ERR_P] += a * (err_period - P[k, o + P_ERR_P])
    P[k, o + P_ERR_N] = n + 1.0
    if n + 1.0 < ERR_MIN_N:
        P[k, o + P_USE] = 0.0
    elif P[k, o + P_USE] == 0.0:
        P[k, o + P_USE] = 1.0 if P[k, o + P_ERR_P] < PICK_RATIO * P[k, o + P_ERR_H] else 0.0
    else:
        P[k, o + P_USE] = 1.0 if P[k, o + P_ERR_P] < P[k, o + P_ERR_H] else 0.0
    if (n + 1.0 >= REJECT_N and n + 1.0 >= REJECT_CYCLES * P[k, o + P_PERIOD] / dt_s
            and P[k, o + P_USE] == 0.0 and P[k, o + P_ERR_P] >= P[k, o + P_ERR_H]):
        P[k, o + P_NB] = 0.0
        for j in range(2 * NB_MAX):
            P[k, PROF0 + j] = 0.0
    return P[k, o + P_USE] == 1.0


def period_choose_ref(row, o, err_hour, err_period, dt_s):
    n = row[o + P_ERR_N]
    a = max(1.0 / (n + 1.0), ERR_ALPHA)
    row[o + P_ERR_H] += a * (err_hour - row[o + P_ERR_H])
    row[o + P_ERR_P] += a * (err_period - row[o + P_ERR_P])
    row[o + P_ERR_N] = n + 1.0
    if n + 1.0 < ERR_MIN_N:
        row[o + P_USE] = 0.0
    elif row[o + P_USE] == 0.0:
        row[o + P_USE] = 1.0 if row[o + P_ERR_P] < PICK_RATIO * row[o + P_ERR_H] else 0.0
    else:
        row[o + P_USE] = 1.0 if row[o + P_ERR_P] < row[o + P_ERR_H] else 0.0
    if (n + 1.0 >= REJECT_N and n + 1.0 >= REJECT_CYCLES * row[o + P_PERIOD] / dt_s
            and row[o + P_USE] == 0.0 and row[o + P_ERR_P] >= row[o + P_ERR_H]):
        row[o + P_NB] = 0.0
        for j in range(2 * NB_MAX):
            row[PROF0 + j] = 0.0
    return row[o + P_USE] == 1.0


@njit(cache=True)
def seed_profile(P, k, o, n, dt_s):
    """Start key ``k``'s profile from its first ``n`` buffer slots folded at its period (detrended),
    so it is usable at once; each bin averages the slots whose phase is within half a slot (or bin) of it."""
    slot = P[k, o + P_SLOT]
    per = P[k, o + P_PERIOD]
    nb = P[k, o + P_NB]
    mi = 0.5 * (n - 1)
    my = 0.0
    for i in range(n):
        my += P[k, o + P_BUF + i]
    my /= n
    sxy = 0.0
    sxx = 0.0
    for i in range(n):
        sxy += (i - mi) * (P[k, o + P_BUF + i] - my)
        sxx += (i - mi) * (i - mi)
    b = sxy / sxx
    f = np.empty(n)
    for i in range(n):
        ph = (P[k, o + P_ORIGIN] + (i + 0.5) * slot - P[k, o + P_ANCHOR]) / per
        f[i] = (ph - math.floor(ph)) * nb
    bin_s = per / nb
    half = 0.5 * slot / bin_s
    half = half if half > 0.5 else 0.5
    w = SEED_VISITS * bin_s / dt_s
    w = w if w > MIN_BIN_WEIGHT else MIN_BIN_WEIGHT
    for j in range(2 * NB_MAX):
        P[k, PROF0 + j] = 0.0
    for j in range(int(nb)):
        acc = 0.0
        cnt = 0.0
        for i in range(n):
            dist = abs(f[i] - (j + 0.5))
            if dist > 0.5 * nb:
                dist = nb - dist
            if dist < half:
                acc += P[k, o + P_BUF + i] - my - b * (i - mi)
                cnt += 1.0
        if cnt > 0.0:
            P[k, PROF0 + 2 * j] = acc / cnt
            P[k, PROF0 + 2 * j + 1] = w
    P[k, o + P_MEAN] = my + b * (n - 1 - mi)
    P[k, o + P_MEAN_N] = per / dt_s


def linear_trend_ref(y, n):
    """(centre index, mean, slope) of the least-squares line through ``y[:n]`` against its index, the
    operations in the kernels' order (the twins' detrend: both period twins use it)."""
    mi = 0.5 * (n - 1)
    my = 0.0
    for v in y[:n]:
        my += v
    my /= n
    sxy = sxx = 0.0
    for i in range(n):
        sxy += (i - mi) * (y[i] - my)
        sxx += (i - mi) * (i - mi)
    return mi, my, sxy / sxx


def seed_profile_ref(row, o, n, dt_s):
    slot, per, nb = row[o + P_SLOT], row[o + P_PERIOD], row[o + P_NB]
    y = row[o + P_BUF:o + P_BUF + n]
    mi, my, b = linear_trend_ref(y, n)
    f = []
    for i in range(n):
        ph = (row[o + P_ORIGIN] + (i + 0.5) * slot - row[o + P_ANCHOR]) / per
        f.append((ph - math.floor(ph)) * nb)
    bin_s = per / nb
    half = max(0.5 * slot / bin_s, 0.5)
    w = max(SEED_VISITS * bin_s / dt_s, MIN_BIN_WEIGHT)
    for j in range(2 * NB_MAX):
        row[PROF0 + j] = 0.0
    for j in range(int(nb)):
        acc = cnt = 0.0
        for i in range(n):
            dist = abs(f[i] - (j + 0.5))
            if dist > 0.5 * nb:
                dist = nb - dist
            if dist < half:
                acc += y[i] - my - b * (i - mi)
                cnt += 1.0
        if cnt > 0.0:
            row[PROF0 + 2 * j] = acc / cnt
            row[PROF0 + 2 * j + 1] = w
    row[o + P_MEAN] = my + b * (n - 1 - mi)
    row[o + P_MEAN_N] = per / dt_s
