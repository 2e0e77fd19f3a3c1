"""The plain-Python reference of one point of the fused detector (:mod:`brain.kernels.detector`),
on a state row and a seasonal row as lists: what the tests compare the numba kernel against, branch
for branch (split out of ``detector.py`` to keep that module readable).

Example:
    >>> from brain.kernels.detector import detector_state
    >>> S, SEA = detector_state(1)
    >>> row, sea = S[0].tolist(), SEA[0].tolist()
    >>> out = [detector_step_ref(row, sea, 60_000 * i, 10.0 + i % 3) for i in range(50)]
    >>> detector_step_ref(row, sea, 60_000 * 50, 90.0)[0] > 0.999
    True
"""
from __future__ import annotations

import math

from brain.kernels.counts import count_step_ref
from brain.kernels.ewma import (
    decay_alpha_ref,
    memory_s_ref,
)
from brain.kernels.faults import (
    drift_z_ref,
    rate_update_ref,
    run_pvalue_ref,
    run_surprise_ref,
)
from brain.kernels.period import (
    period_choose_ref,
    period_learn_ref,
    period_min_weight_ref,
    period_value_ref,
)
from brain.kernels.period_find import (
    period_push_ref,
)
from brain.kernels.robust import (
    clip_ref,
    exp_step_ref,
)
from brain.kernels.seasonal import (
    noise_learn_ref,
    noise_value_ref,
    seasonal_learn_day_ref,
    seasonal_learn_ref,
    seasonal_value_ref,
)
from brain.kernels.surprise import (
    calibrate_far_ref,
    calibrate_ref,
    gauss_surprise_ref,
    hill_step_ref,
    onset_step_ref,
    score_of_ref,
    surprise_ref,
    young_factor_ref,
    z_calibration_ref,
)
from brain.kernels.detector import (
    CLIP_SIGMAS,
    CUSUM_H,
    CUSUM_H_RAW,
    CUSUM_K,
    C_ALARM,
    C_CN,
    C_CP,
    C_DEV,
    C_DSCALE,
    C_DT,
    C_EPI,
    C_CT0,
    C_HILL,
    C_LAST_TS,
    C_LEVEL,
    C_MARGIN,
    C_N,
    C_NANRATE,
    C_NANRUN,
    C_PREV,
    C_Q,
    C_QD,
    C_QDLO,
    C_QF,
    C_QFLO,
    C_QLO,
    C_QS,
    C_QSLO,
    C_QUANT,
    C_REP,
    C_RFAST,
    C_RUN,
    C_SCALE,
    DRIFT_MIN_N,
    DT_ALPHA,
    EPI_HUGE,
    ERR_CLIP,
    LEVEL_MAX_POINTS,
    LEVEL_MIN_POINTS,
    LONG_MAX_POINTS,
    LONG_MIN_POINTS,
    MAD_TO_SIGMA,
    MIN_BIN_COUNT,
    NOISE0,
    PER0,
    P_NB,
    P_USE,
    QLO_TAU,
    QUANT_REGROW,
    Q_ETA,
    Q_ETA_MIN,
    Q_TAU,
    REASON_DRIFT,
    REASON_FLATLINE,
    REASON_MISSING,
    REASON_NONE,
    REASON_SHIFT,
    REASON_SPIKE,
    RFAST_ALPHA,
    RFAST_CLIP,
    SPIKE_END_MIN_N,
    S_ALARM,
    TAU_LEVEL_S,
    TAU_LONG_S,
    TOD_WARM_VISITS,
    WARMUP_N,
    WEEK_WARM_VISITS,
)


def detector_step_ref(row, sea, t, x, s_peer=-1.0):
    """Plain-Python reference of one point of :func:`detector_step` (``s_peer``: the peer-drift
    surprise, -1 for none) on a state row and seasonal row as lists."""
    n = row[C_N]
    if not math.isfinite(x):
        row[C_NANRUN] += 1.0
        p = run_pvalue_ref(row[C_NANRATE], n, row[C_NANRUN])
        row[C_NANRATE] = rate_update_ref(row[C_NANRATE], n, True)
        if n < WARMUP_N:
            return 0.0, math.nan, 0.0, REASON_NONE, 0.0
        s_miss = surprise_ref(p)
        s_rep, row[C_EPI], row[C_MARGIN] = onset_step_ref(s_miss, row[C_EPI], row[C_MARGIN])
        return score_of_ref(s_rep), math.nan, 0.0, REASON_MISSING, score_of_ref(s_miss)
    if n == 0:
        row[C_LAST_TS] = float(t)
        row[C_LEVEL] = row[C_PREV] = x
    else:
        row[C_NANRATE] = rate_update_ref(row[C_NANRATE], n, False)
    row[C_NANRUN] = 0.0
    dt = (t - row[C_LAST_TS]) / 1000.0
    if dt < 0:
        dt = 0.0
    else:
        row[C_LAST_TS] = float(t)
    if dt > 0:
        row[C_DT] = dt if row[C_DT] == 0 else row[C_DT] + DT_ALPHA * (dt - row[C_DT])
    level, dev = row[C_LEVEL], row[C_DEV]
    per_bin = 3600.0 / row[C_DT] if row[C_DT] > 0 else 1.0
    min_week = max(WEEK_WARM_VISITS * per_bin, MIN_BIN_COUNT)
    min_tod = max(TOD_WARM_VISITS * per_bin, MIN_BIN_COUNT)
    own = sea[PER0 + P_NB] > 0.0
    base_h = level + seasonal_value_ref(sea, t, math.inf if own else min_week, min_tod)
    base, per_val, per_warm = base_h, 0.0, False
    if own:
        per_val, per_warm = period_value_ref(sea, PER0, t / 1000.0, period_min_weight_ref(sea, PER0, row[C_DT]))
        if per_warm and sea[PER0 + P_USE] == 1.0:
            base = per_val
    expected = base + dev
    r = x - expected
    sigma = max(MAD_TO_SIGMA * row[C_SCALE], MAD_TO_SIGMA * noise_value_ref(sea, t, NOISE0, min_tod),
                1e-9 * (1.0 + abs(level)), 0.5 * row[C_QUANT])
    sig_eff = sigma * math.sqrt(1.0 + WARMUP_N / (n + 1.0))
    z = r / sig_eff
    zcl = clip_ref(z, 4.0)
    cp = max(0.0, row[C_CP] + zcl - CUSUM_K)
    cn = max(0.0, row[C_CN] - zcl - CUSUM_K)
    rep = n > 0 and abs(x - row[C_PREV]) <= 1e-12 * (1.0 + abs(x))
    run = row[C_RUN] + 1.0 if rep else 0.0
    raw = {
        C_Q: gauss_surprise_ref(z),
        C_QS: max(cp, cn),
        C_QF: run_surprise_ref(row[C_REP], n - 1.0, run) if n > 0 else 0.0,
        C_QD: s_peer if s_peer >= 0 else (
            gauss_surprise_ref(drift_z_ref(dev, 0.0, row[C_DSCALE], 0.5 * sigma)) if n >= DRIFT_MIN_N else 0.0),
    }
    qlo = {C_Q: C_QLO, C_QS: C_QSLO, C_QF: C_QFLO, C_QD: C_QDLO}
    cal = {c: calibrate_ref(raw[c], row[c], row[qlo[c]]) for c in raw}
    cal[C_Q] = calibrate_far_ref(raw[C_Q], row[C_Q], row[C_QLO], row[C_HILL], n)
    why = {C_Q: REASON_SPIKE, C_QS: REASON_SHIFT, C_QF: REASON_FLATLINE, C_QD: REASON_DRIFT}
    yf = young_factor_ref(n)
    shrunk = {C_Q: cal[C_Q] * yf, C_QS: cal[C_QS] * yf, C_QF: cal[C_QF], C_QD: cal[C_QD] * (1.0 if s_peer >= 0 else yf)}
    best, reason = shrunk[C_Q], REASON_SPIKE
    for c in (C_QS, C_QF, C_QD):  # first strictly larger wins, as in the kernel
        if shrunk[c] > best:
            best, reason = shrunk[c], why[c]
    s_count = count_step_ref(row, C_CT0, t, x, n)
    if s_count > best:
        best, reason = s_count, REASON_SHIFT
    zc = z * z_calibration_ref(row[C_Q])
    if n < WARMUP_N:
        score, reason, ongoing = 0.0, REASON_NONE, 0.0
    else:
        huge = EPI_HUGE if n >= SPIKE_END_MIN_N else math.inf
        s_rep, row[C_EPI], row[C_MARGIN] = onset_step_ref(best, row[C_EPI], row[C_MARGIN], huge)
        score = score_of_ref(s_rep)
        ongoing = score_of_ref(best)
        alarm = best >= S_ALARM
        if not alarm or row[C_ALARM] == 0.0:
            eta = max(Q_ETA / math.sqrt(n + 1.0), Q_ETA_MIN)
            row[C_HILL] = hill_step_ref(row[C_HILL], raw[C_Q], row[C_Q], n)
            for tau, cols in ((Q_TAU, (C_Q, C_QS, C_QF, C_QD)), (QLO_TAU, (C_QLO, C_QSLO, C_QFLO, C_QDLO))):
                up = exp_step_ref(eta * tau)
                down = 1.0 if alarm else exp_step_ref(-eta * (1.0 - tau))
                for c, v in zip(cols, raw.values()):
                    spike = c in (C_Q, C_QLO)
                    u, d = (up * up, down * down) if spike else (up, down)
                    row[c] = row[c] * u if v > row[c] else row[c] * d
        row[C_ALARM] = 1.0 if alarm else 0.0
    a = 1.0 - math.exp(-dt / memory_s_ref(TAU_LEVEL_S, LEVEL_MIN_POINTS, LEVEL_MAX_POINTS, row[C_DT]))
    rc = clip_ref(r, CLIP_SIGMAS * sig_eff) if n >= WARMUP_N else r
    dev += a * rc
    row[C_SCALE] += max(a, 1.0 / (n + 1.0)) * (abs(rc) - row[C_SCALE])
    rfast = row[C_RFAST] + RFAST_ALPHA * clip_ref(r - row[C_RFAST], max(RFAST_CLIP * sig_eff, abs(row[C_RFAST])))
    al = decay_alpha_ref(dt, memory_s_ref(TAU_LONG_S, LONG_MIN_POINTS, LONG_MAX_POINTS, row[C_DT]), n)
    rb = clip_ref(x - base_h, CLIP_SIGMAS * sig_eff) if n >= WARMUP_N else x - base_h
    level += al * rb
    level_before = level
    if cal[C_QS] > CUSUM_H or raw[C_QS] > CUSUM_H_RAW:
        level += rfast
        rfast = cp = cn = 0.0
    row[C_RFAST], row[C_CP], row[C_CN], row[C_LEVEL], row[C_DEV] = rfast, cp, cn, level, dev
    row[C_DSCALE] += al * (abs(dev) - row[C_DSCALE])
    noise_learn_ref(sea, t, NOISE0, abs(rc), dt, min_tod)
    if own:
        seasonal_learn_day_ref(sea, t, base_h + rb - level, dt)
        if per_warm and n >= WARMUP_N:
            lim = ERR_CLIP * sig_eff
            period_choose_ref(sea, PER0, abs(clip_ref(x - base_h, lim)), abs(clip_ref(x - per_val, lim)), row[C_DT])
        period_learn_ref(sea, PER0, t / 1000.0, x, dt, CLIP_SIGMAS * sig_eff, level - level_before)
    else:
        seasonal_learn_ref(sea, t, base_h + rb - level, dt)
    period_push_ref(sea, PER0, t / 1000.0, x, row[C_DT])
    if n > 0:
        row[C_REP] = rate_update_ref(row[C_REP], n - 1.0, rep)
        step = abs(x - row[C_PREV])
        quant = row[C_QUANT] * QUANT_REGROW
        row[C_QUANT] = step if 0 < step < quant else quant
    row[C_RUN] = run
    row[C_PREV] = x
    row[C_N] = n + 1.0
    return score, expected, zc, reason, ongoing
