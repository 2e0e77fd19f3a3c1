"""The fused streaming anomaly detector: one numba pass that scores and learns many keys.

Per key the model is ``value = level + seasonal(t) + deviation + noise``:

* ``level``: slow time-decayed EWMA (``TAU_LONG_S``, kept between 300 and 3,000 sampling
  intervals) of the clipped value minus the seasonal profile; the profile learns the clipped
  value minus the level;
* ``deviation``: fast time-decayed EWMA (``TAU_LEVEL_S``, between 10 and 300 intervals) of the
  Huber-clipped residual, which follows short-lived departures (weather, events) so that they do
  not read as anomalies for long, and whose size against its usual size is the drift statistic;
* ``seasonal``: hour-of-week profile, falling back to hour-of-day while cold, linear between
  hour centres (:mod:`brain.kernels.seasonal`); or, once the key's own period is found (by
  autocorrelation, :mod:`brain.kernels.period`) and is not a day or a week, a profile over that
  period in the hour-of-week block, used while it predicts clearly better than the hour-of-day bins;
* ``noise``: clipped mean absolute residual -> sigma (:mod:`brain.kernels.robust`), inflated
  during warm-up, at least the usual |residual| at this hour of the day (an hour-of-day noise
  profile, :func:`brain.kernels.seasonal.noise_value`: quiet nights and busy afternoons, the edges
  of a daily schedule), floored at half the smallest recent step (quantised series such as counts
  and set-points; the quantum forgets, ``QUANT_REGROW``, so one noisy hour does not remove it).

Four statistics become surprises ``-ln p``: spike/dip (Gaussian tail of the residual z), level
shift (two-sided CUSUM, :mod:`brain.kernels.changepoint`; on alarm the level jumps to the new
regime so a shift is reported once), flatline (run of repeats) and drift (deviation vs its usual
size; for a series scored with a peer reference, :func:`detector_step_peer`, a slow ramp of its
log-ratio to the peer instead: what tells a drifting sensor from the city changing)
(:mod:`brain.kernels.faults`). Real series break the i.i.d. assumptions behind those tails
(heavy tails, bursts, autocorrelated residuals, counts), so each key also tracks the 95th and
99.5th percentiles of each surprise (an alarm run counts once) and calibrates it against them,
with a power-law far tail (:func:`brain.kernels.surprise.calibrate`; the spike's far tail also from
a Hill estimate, :func:`brain.kernels.surprise.calibrate_far`): this is what replaces
per-series tuning. A young key is conservative (:func:`brain.kernels.surprise.young_factor`).
The largest calibrated surprise is the point's evidence; the *score* reports it when an episode
starts or grows materially, and decays inside it (:func:`brain.kernels.surprise.onset_step`),
through a strictly increasing map that never reaches 1.0 (:func:`brain.kernels.surprise.score_of`,
``1 - 4 exp(-s)`` up to 30 nats, Bonferroni over the four): a calibrated ``1 - p``, about one
clean point in a thousand scores ``>= 0.999``. The evidence itself, news or not, is returned as
``ongoing`` (what a rule that must hold for a duration reads). Missing values (NaN) are scored as
a run of missing points (like a flatline).

Keys are dense integer ids indexing rows of two state arrays (:func:`detector_state`); the loops
over many points are in :mod:`brain.kernels.detector_batch`; the one-key entry for one point at a
time (state in one contiguous buffer) is :mod:`brain.kernels.detector_single`.
:func:`brain.kernels.detector_ref.detector_step_ref` is the plain-Python reference the tests compare against.

Example:
    >>> import numpy as np
    >>> S, SEA = detector_state(1)
    >>> x = 50 + np.sin(np.arange(300) / 7.0)
    >>> x[250] = 80.0                                          # one spike
    >>> out = [detector_step(S, SEA, 0, i * 60_000, x[i]) for i in range(260)]
    >>> score = np.array([o[0] for o in out])
    >>> int(np.argmax(score)), bool(score[250] > 0.999), out[250][3] == REASON_SPIKE
    (250, True, True)
    >>> x[260:] += 10.0                                        # a level shift: paged once
    >>> score = np.array([detector_step(S, SEA, 0, i * 60_000, x[i])[0] for i in range(260, 300)])
    >>> int((score >= 0.999).sum()), bool(score.max() < 1.0)
    (1, True)
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from brain.kernels.counts import COUNT_COLS, count_step
from brain.kernels.ewma import decay_alpha, memory_s
from brain.kernels.faults import (  # PD_COLS, peer_drift_state: re-exported for brain.anomaly.streaming
    PD_COLS,
    PD_N,
    drift_z,
    is_repeat,
    peer_drift_learn,
    peer_drift_pvalue,
    peer_drift_state,
    peer_drift_z,
    rate_update,
    run_pvalue,
    run_surprise,
)
from brain.kernels.robust import MAD_TO_SIGMA, clip, exp_step, quantile_step_log
from brain.kernels.surprise import (
    HILL0,
    QLO_S,
    calibrate,
    calibrate_far,
    hill_step,
    gauss_surprise,
    onset_step,
    score_of,
    EPI_HUGE,
    surprise,
    young_factor,
    z_calibration,
)
from brain.kernels.period import (
    P_NB,
    P_USE,
    PER_COLS,
    period_choose,
    period_learn,
    period_min_weight,
    period_value,
)
from brain.kernels.period_find import period_push
from brain.kernels.seasonal import (
    N_BINS,
    N_TOD,
    noise_learn,
    noise_value,
    seasonal_learn,
    seasonal_learn_day,
    seasonal_value,
)

# --- state columns ------------------------------------------------------------------------------
C_N = 0  # finite points seen
C_LAST_TS = 1  # last event time, ms
C_DT = 2  # typical sampling interval, s (EWMA)
C_LEVEL = 3  # slow base level
C_SCALE = 4  # clipped mean absolute residual
C_PREV = 5  # previous finite value
C_RUN = 6  # current run of repeats
C_REP = 7  # learned repeat rate
C_CP = 8  # CUSUM up
C_CN = 9  # CUSUM down
C_RFAST = 10  # fast EWMA of residuals: the size of a shift
C_Q = 11  # 99.5th percentile of the spike surprise (-ln p)
C_DEV = 12  # fast deviation from the seasonal baseline (tracks shifts and drifts)
C_DSCALE = 13  # typical |deviation|
C_NANRUN = 14
C_NANRATE = 15
C_QUANT = 16  # smallest non-zero step seen
C_QS = 17  # 99.5th percentile of the level-shift surprise
C_QF = 18  # ... of the flatline surprise
C_QD = 19  # ... of the drift surprise
C_ALARM = 20  # 1 if the previous point was an alarm (score >= 0.999)
C_EPI = 21  # the current episode's decaying peak surprise (brain.kernels.surprise.onset_step)
C_MARGIN = 22  # what a point inside the episode reports on top of its news (halves every point)
C_QLO = 23  # 95th percentiles of the spike, level-shift, flatline and drift surprises
C_QSLO = 24
C_QFLO = 25
C_QDLO = 26
C_HILL = 27  # Hill estimate of 1 / the spike surprise's far-tail index (brain.kernels.surprise.hill_step)
C_CT0 = 28  # the count model's COUNT_COLS columns (brain.kernels.counts): low-rate integer series
N_COLS = C_CT0 + COUNT_COLS

# --- constants (the same for every series: there are no per-series parameters) ---------------------
WARMUP_N = 10.0
MIN_BIN_COUNT = 3.0
# a profile is used once its bins hold this many visits' worth of points: the hour-of-week profile
# only once a full visit has filled it (a fresh bin learns fast and would echo the departures of its first minutes)
WEEK_WARM_VISITS = 0.9
TOD_WARM_VISITS = 0.5
TAU_LEVEL_S = 3600.0
LEVEL_MIN_POINTS = 10.0
# memories are times (an hour of a city's series is an hour whatever its sampling), but bounded in
# points: a 1 Hz sensor must not need 3,600 points to follow a departure nor 260,000 to learn its level
LEVEL_MAX_POINTS = 300.0
TAU_LONG_S = 3 * 86400.0
LONG_MIN_POINTS = 300.0
LONG_MAX_POINTS = 3000.0
DRIFT_MIN_N = 200.0
CLIP_SIGMAS = 3.0
CUSUM_K = 0.5
CUSUM_H = 10.0  # restart above the 0.999-score surprise (8.29), so a shift is reported first
# ... and whatever the calibration once the raw statistic reaches this: a key whose CUSUM keeps
# climbing (a trend the level lags) would otherwise teach its calibration ever larger values
CUSUM_H_RAW = 40.0
Q_TAU = 0.995
QLO_TAU = 0.95  # ... and the 95th (with the 99.5th: the index of the tail)
Q_S = 5.298317366548036  # -ln(0.005): the 99.5th percentile of a calibrated surprise
Q_ETA = 1.0  # calibration step: Q_ETA / sqrt(points seen) (fast at first, then slow so that an
Q_ETA_MIN = 0.01  # anomaly lasting hours cannot teach its key that it is normal), never below Q_ETA_MIN
# the spike percentiles' steps are twice as large (their multipliers squared)
S_ALARM = 8.294049640102028  # -ln(0.001 / 4): surprise of a score of 0.999
RFAST_ALPHA = 0.3
# a young key's spikes do not end their episode at the next quiet point (its noise estimate is still a guess)
SPIKE_END_MIN_N = 100.0
RFAST_CLIP = 20.0  # sigmas
# the quantum (smallest step) forgets: one noisy hour must not remove a set-point's floor for good.
# 0.1 % a point (it doubles in ~700 points): at 0.2 % a noise-free daily schedule's floor grew ~4x
# over a quiet night, so a spike of 10x its level read as ~3 sigmas (bench/anomaly_real.py `steps`)
QUANT_REGROW = 1.001
DT_ALPHA = 0.05
N_COMPONENTS = 4.0
# the seasonal row: hour-of-day and hour-of-week bins, then the hour-of-day noise profile
# (brain.kernels.seasonal.noise_value)
NOISE0 = 2 * N_BINS
# ... then the own-period block (brain.kernels.period: a header and a 64-slot buffer; an odd
# period's profile takes over the hour-of-week bins)
PER0 = NOISE0 + N_TOD
SEA_COLS = PER0 + PER_COLS
ERR_CLIP = 5.0  # sigmas: how far one point counts when the two profiles' errors are compared

REASON_NONE = 0
REASON_SPIKE = 1
REASON_SHIFT = 2
REASON_FLATLINE = 3
REASON_DRIFT = 4
REASON_MISSING = 5
REASONS = ("none", "spike", "level_shift", "flatline", "drift", "missing")


def detector_state(n_keys: int) -> tuple[np.ndarray, np.ndarray]:
    """Fresh ``(scalars (n_keys, N_COLS), seasonal (n_keys, SEA_COLS))`` state arrays."""
    S = np.zeros((n_keys, N_COLS))
    S[:, C_Q] = Q_S
    S[:, C_QS] = Q_S
    S[:, C_QF] = Q_S
    S[:, C_QD] = Q_S
    S[:, C_QLO] = S[:, C_QSLO] = S[:, C_QFLO] = S[:, C_QDLO] = QLO_S
    S[:, C_QUANT] = np.inf
    S[:, C_HILL] = HILL0
    return S, np.zeros((n_keys, SEA_COLS))



@njit(cache=True)
def detector_step(S, SEA, k, ts_ms, x):
    """Score then learn one point of key ``k``. Returns ``(score, expected, z, reason)``."""
    return _step(S, SEA, k, ts_ms, x, -1.0)


@njit(cache=True)
def peer_surprise(PD, k, x, peer, ts_ms):
    """Learn ``log(x / peer)`` when both are positive and finite; then the surprise of a ramp in it
    (-1 if key ``k`` never had a peer: its drift statistic is then its own)."""
    if math.isfinite(x) and math.isfinite(peer) and x > 0.0 and peer > 0.0:
        peer_drift_learn(PD, k, ts_ms, math.log(x / peer))
    if PD[k, PD_N] == 0.0:
        return -1.0
    zr, zs = peer_drift_z(PD, k)
    return surprise(peer_drift_pvalue(zr, zs))


@njit(cache=True)
def detector_step_peer(S, SEA, PD, k, ts_ms, x, peer):
    """:func:`detector_step` for a series with a peer reference ``peer`` (same quantity, e.g. the
    speed its neighbours see; NaN when there is none this time): its drift statistic is a ramp in
    ``log(x / peer)`` (:func:`brain.kernels.faults.peer_drift_z`), not a departure from its own past."""
    s_peer = peer_surprise(PD, k, x, peer, ts_ms) if math.isfinite(x) else -1.0
    return _step(S, SEA, k, ts_ms, x, s_peer)


@njit(cache=True)
def _step(S, SEA, k, ts_ms, x, s_peer):
    n = S[k, C_N]
    if not math.isfinite(x):
        r = S[k, C_NANRUN] + 1.0
        S[k, C_NANRUN] = r
        p = run_pvalue(S[k, C_NANRATE], n, r)
        S[k, C_NANRATE] = rate_update(S[k, C_NANRATE], n, True)
        if n < WARMUP_N:
            return 0.0, np.nan, 0.0, REASON_NONE, 0.0
        s_miss = surprise(p)
        s_rep, S[k, C_EPI], S[k, C_MARGIN] = onset_step(s_miss, S[k, C_EPI], S[k, C_MARGIN])
        return score_of(s_rep), np.nan, 0.0, REASON_MISSING, score_of(s_miss)
    if n == 0.0:
        S[k, C_LAST_TS] = ts_ms
        S[k, C_LEVEL] = x
        S[k, C_PREV] = x
    else:
        S[k, C_NANRATE] = rate_update(S[k, C_NANRATE], n, False)
    S[k, C_NANRUN] = 0.0
    dt_s = (ts_ms - S[k, C_LAST_TS]) / 1000.0
    if dt_s < 0.0:
        dt_s = 0.0  # out of order: learn it, but as if no time passed
    else:
        S[k, C_LAST_TS] = ts_ms
    if dt_s > 0.0:
        S[k, C_DT] = dt_s if S[k, C_DT] == 0.0 else S[k, C_DT] + DT_ALPHA * (dt_s - S[k, C_DT])

    level = S[k, C_LEVEL]
    dev = S[k, C_DEV]
    per_bin = 3600.0 / S[k, C_DT] if S[k, C_DT] > 0.0 else 1.0  # points per hour bin visit
    min_week = WEEK_WARM_VISITS * per_bin
    min_week = min_week if min_week > MIN_BIN_COUNT else MIN_BIN_COUNT
    min_tod = TOD_WARM_VISITS * per_bin
    min_tod = min_tod if min_tod > MIN_BIN_COUNT else MIN_BIN_COUNT
    # a key with its own (odd) period keeps that profile in the hour-of-week block: its hour-of-day
    # bins are the fallback and the comparator
    own = SEA[k, PER0 + P_NB] > 0.0
    base_h = level + seasonal_value(SEA, k, ts_ms, math.inf if own else min_week, min_tod)
    base = base_h
    per_val = 0.0
    per_warm = False
    if own:
        per_val, per_warm = period_value(SEA, k, PER0, ts_ms / 1000.0, period_min_weight(SEA, k, PER0, S[k, C_DT]))
        if per_warm and SEA[k, PER0 + P_USE] == 1.0:
            base = per_val
    expected = base + dev
    r = x - expected
    sigma = MAD_TO_SIGMA * S[k, C_SCALE]
    # at least the usual noise at this hour of the day: the edges of a daily schedule are normal
    sigma_tod = MAD_TO_SIGMA * noise_value(SEA, k, ts_ms, NOISE0, min_tod)
    if sigma < sigma_tod:
        sigma = sigma_tod
    floor = 1e-9 * (1.0 + abs(level))
    if sigma < floor:
        sigma = floor
    half_step = 0.5 * S[k, C_QUANT]
    if sigma < half_step:
        sigma = half_step
    sig_eff = sigma * math.sqrt(1.0 + WARMUP_N / (n + 1.0))  # wider while the scale is uncertain
    z = r / sig_eff

    # the four statistics as surprises -ln(p), each rescaled by how surprising this key usually is
    s_spike = gauss_surprise(z)
    zcl = clip(z, 4.0)
    cp = S[k, C_CP] + zcl - CUSUM_K
    cn = S[k, C_CN] - zcl - CUSUM_K
    cp = cp if cp > 0.0 else 0.0
    cn = cn if cn > 0.0 else 0.0
    s_shift = cp if cp > cn else cn  # = -ln of the CUSUM tail probability
    rep = n > 0.0 and is_repeat(x, S[k, C_PREV])
    run = S[k, C_RUN] + 1.0 if rep else 0.0
    s_flat = run_surprise(S[k, C_REP], n - 1.0, run) if n > 0.0 else 0.0
    if s_peer >= 0.0:
        s_drift = s_peer
    elif n >= DRIFT_MIN_N:
        s_drift = gauss_surprise(drift_z(dev, 0.0, S[k, C_DSCALE], 0.5 * sigma))
    else:
        s_drift = 0.0
    # statistics standardised by the key's own noise estimate are shrunk while it is young; the
    # flatline and peer-drift tests carry their own warm-up (rate prior, minimum bins)
    yf = young_factor(n)
    best = calibrate_far(s_spike, S[k, C_Q], S[k, C_QLO], S[k, C_HILL], n) * yf
    reason = REASON_SPIKE
    shift_cal = calibrate(s_shift, S[k, C_QS], S[k, C_QSLO])
    if shift_cal * yf > best:
        best = shift_cal * yf
        reason = REASON_SHIFT
    v = calibrate(s_flat, S[k, C_QF], S[k, C_QFLO])
    if v > best:
        best = v
        reason = REASON_FLATLINE
    v = calibrate(s_drift, S[k, C_QD], S[k, C_QDLO]) * (1.0 if s_peer >= 0.0 else yf)
    if v > best:
        best = v
        reason = REASON_DRIFT
    # low-rate counts: their Poisson / negative-binomial surprise (0 unless the key reads as counts)
    v = count_step(S, k, C_CT0, ts_ms, x, n)
    if v > best:
        best = v
        reason = REASON_SHIFT
    zc = z * z_calibration(S[k, C_Q])
    if n < WARMUP_N:
        score = 0.0
        ongoing = 0.0
        reason = REASON_NONE
    else:
        huge = EPI_HUGE if n >= SPIKE_END_MIN_N else math.inf
        s_rep, S[k, C_EPI], S[k, C_MARGIN] = onset_step(best, S[k, C_EPI], S[k, C_MARGIN], huge)
        score = score_of(s_rep)
        ongoing = score if s_rep == best else score_of(best)
        # learn the key's own surprise levels. An alarm counts as one exceedance however long it
        # lasts (only its first point is learned), so an anomaly lasting hours cannot teach its key
        # that it is normal, while isolated alarms still keep the tail estimate honest.
        alarm = best >= S_ALARM
        if not alarm or S[k, C_ALARM] == 0.0:
            eta = Q_ETA / math.sqrt(n + 1.0)
            eta = eta if eta > Q_ETA_MIN else Q_ETA_MIN
            up = exp_step(eta * Q_TAU)
            down = 1.0 if alarm else exp_step(-eta * (1.0 - Q_TAU))
            S[k, C_QS] = quantile_step_log(S[k, C_QS], s_shift, up, down)
            S[k, C_QF] = quantile_step_log(S[k, C_QF], s_flat, up, down)
            S[k, C_QD] = quantile_step_log(S[k, C_QD], s_drift, up, down)
            # a residual's tail is learned faster (steps squared: Q_ETA_SPIKE = 2): glitches every
            # few points must become normal within a few hundred points, while slow statistics
            # (shift, drift) must not learn an anomaly that builds up for hours
            S[k, C_HILL] = hill_step(S[k, C_HILL], s_spike, S[k, C_Q], n)
            S[k, C_Q] = quantile_step_log(S[k, C_Q], s_spike, up * up, down * down)
            up = exp_step(eta * QLO_TAU)
            down = 1.0 if alarm else exp_step(-eta * (1.0 - QLO_TAU))
            S[k, C_QSLO] = quantile_step_log(S[k, C_QSLO], s_shift, up, down)
            S[k, C_QFLO] = quantile_step_log(S[k, C_QFLO], s_flat, up, down)
            S[k, C_QDLO] = quantile_step_log(S[k, C_QDLO], s_drift, up, down)
            S[k, C_QLO] = quantile_step_log(S[k, C_QLO], s_spike, up * up, down * down)
        S[k, C_ALARM] = 1.0 if alarm else 0.0

    # learn: the fast deviation from the clipped residual, the base level and the seasonal profile
    # slowly from the clipped value
    # the deviation starts at 0 and only ever moves with elapsed time; the scale is a running mean at first
    a = 1.0 - math.exp(-dt_s / memory_s(TAU_LEVEL_S, LEVEL_MIN_POINTS, LEVEL_MAX_POINTS, S[k, C_DT]))
    a_scale = a if a > 1.0 / (n + 1.0) else 1.0 / (n + 1.0)
    rc = clip(r, CLIP_SIGMAS * sig_eff) if n >= WARMUP_N else r
    dev += a * rc
    S[k, C_SCALE] += a_scale * (abs(rc) - S[k, C_SCALE])
    # the size of a shift learns residuals clipped around itself (at RFAST_CLIP sigmas, or its own size
    # once larger): a huge spike must not leave a jump of hundreds of sigmas for the next shift to apply
    rfast = S[k, C_RFAST]
    c_rf = RFAST_CLIP * sig_eff
    c_rf = c_rf if c_rf > abs(rfast) else abs(rfast)
    rfast += RFAST_ALPHA * clip(r - rfast, c_rf)
    al = decay_alpha(dt_s, memory_s(TAU_LONG_S, LONG_MIN_POINTS, LONG_MAX_POINTS, S[k, C_DT]), n)
    # the baseline learns the value clipped around the baseline itself, never the deviation:
    # otherwise level, profile and deviation would all absorb the same departure and overshoot
    # (the level and hour profile learn against their own baseline even while the own-period profile
    # is used: they are what the detector falls back to)
    rb = x - base_h
    if n >= WARMUP_N:
        rb = clip(rb, CLIP_SIGMAS * sig_eff)
    level += al * rb
    level_before = level  # (an adopted level shift moves the own-period profile's mean too)
    if shift_cal > CUSUM_H or s_shift > CUSUM_H_RAW:
        # a level shift: move the baseline to the new regime instead of flagging it until it adapts
        level += rfast
        rfast = 0.0
        cp = 0.0
        cn = 0.0
    S[k, C_RFAST] = rfast
    S[k, C_CP] = cp
    S[k, C_CN] = cn
    S[k, C_LEVEL] = level
    S[k, C_DEV] = dev
    S[k, C_DSCALE] += al * (abs(dev) - S[k, C_DSCALE])
    noise_learn(SEA, k, ts_ms, NOISE0, abs(rc), dt_s, min_tod)
    if own:
        seasonal_learn_day(SEA, k, ts_ms, base_h + rb - level, dt_s)
        if per_warm and n >= WARMUP_N:
            lim = ERR_CLIP * sig_eff
            period_choose(SEA, k, PER0, abs(clip(x - base_h, lim)), abs(clip(x - per_val, lim)), S[k, C_DT])
        period_learn(SEA, k, PER0, ts_ms / 1000.0, x, dt_s, CLIP_SIGMAS * sig_eff, level - level_before)
    else:
        seasonal_learn(SEA, k, ts_ms, base_h + rb - level, dt_s)
    period_push(SEA, k, PER0, ts_ms / 1000.0, x, S[k, C_DT])
    if n > 0.0:
        S[k, C_REP] = rate_update(S[k, C_REP], n - 1.0, rep)
        step = abs(x - S[k, C_PREV])
        quant = S[k, C_QUANT] * QUANT_REGROW
        S[k, C_QUANT] = step if step > 0.0 and step < quant else quant
    S[k, C_RUN] = run
    S[k, C_PREV] = x
    S[k, C_N] = n + 1.0
    return score, expected, zc, reason, ongoing
