"""Sensor-fault statistics per key: flatline (stuck value), dropout (missing values), spikes, drift.

All return a tail probability (small = abnormal) so they combine with the other detectors:

* **flatline / dropout**: a run of ``L`` repeats (or of ``L`` missing values) has probability
  ``p^L`` if repeats happen independently with the key's own learned rate ``p``
  (Krichevsky-Trofimov estimate, so an unseen event is rare but not impossible). A continuous
  sensor that repeats its value three times is suspicious; a counter that is often 0 is not.
* **spike**: the two-sided Gaussian tail of a standardised residual.
* **drift**: the fast level against a slow level, standardised by how far they usually differ;
  or, for a series with a peer reference, a ramp in its log-ratio to the peer (below).

**Drift against peers** (:func:`peer_drift_learn`, :func:`peer_drift_z`, :func:`peer_drift_pvalue`).
A drifting sensor is a slow monotone bias that grows for hours relative to what its neighbours
see, while real changes of the city (rush hour, an accident) move the sensor and its peers
together. On the sensor's own series the two look alike, and a level-shift test (CUSUM) explains
the first hours of a drift as a shift long before drift evidence builds up. So the evidence is the
log-ratio of the sensor to a peer reference (for a traffic detector: its segment's probe speed,
:class:`brain.anomaly.DetectorPeers`), in which the city's own changes cancel, and the question is
whether that residual *ramps*. A least-squares slope alone also says yes to a step (a
recalibration, a swapped peer) inside its window, and a CUSUM on the residual fires on both, so
the ramp must explain the window better than a step: over the last 4 h (16 bins of 15 min, so the
window does not depend on the sampling interval) the best *hinge* (flat, then a line from bin j on,
lasting at least 1.5 h) and the best *step* (a jump at bin j) are both one-change-point models
with the same number of parameters, and their sums of squares compare directly. Drift is called
when the hinge beats the step by 4 (in units of the noise variance: 2 log-likelihood units; a
step only 1-1.5 h old is otherwise too close to a short ramp), and its p-value is the Gaussian
tail of the hinge's z, Bonferroni over the hinge positions. The noise is the mean absolute
increment (a ramp's increments are tiny and a step is a single one, so neither inflates it),
raised to the scatter left around the fitted model when that is larger (correlated noise), and
spikes are clipped around a fast centre before binning. Measured on simulated days (probe noise
~8 % per 5 min): a +-50 % drift over 4 h is called 1.5-2 h after it starts; a 40 % step and
the clean days of 194 detectors are not.

Example:
    >>> import numpy as np
    >>> vals = np.r_[np.linspace(0, 1, 50), np.full(6, 1.0)]   # a ramp, then stuck at 1.0
    >>> keys = np.zeros(vals.size, dtype=np.int64)
    >>> p = flatline_batch(keys, vals, *flatline_state(1))
    >>> bool(p[49] == 1.0), bool(p[-1] < 1e-4)
    (True, True)

    A sensor drifting against its peer for two hours is a ramp; the same change as a jump is not:

    >>> rng = np.random.default_rng(0)
    >>> ts = np.arange(96, dtype=np.int64) * 300_000               # 8 h of 5-minute windows
    >>> noise = rng.normal(0.0, 0.05, 96)
    >>> ramp = noise + np.where(ts > 6 * 3_600_000, -0.2 * (ts - 6 * 3_600_000) / 3_600_000, 0.0)
    >>> step = noise + np.where(ts > 7 * 3_600_000, -0.2, 0.0)
    >>> keys = np.zeros(96, dtype=np.int64)
    >>> zr, zs = peer_drift_batch(keys, ts, ramp, peer_drift_state(1))
    >>> bool(peer_drift_pvalue(zr[-1], zs[-1]) < 1e-6)
    True
    >>> zr, zs = peer_drift_batch(keys, ts, step, peer_drift_state(1))
    >>> peer_drift_pvalue(zr[-1], zs[-1])
    1.0
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

#: cap on the effective sample size of the repeat-rate estimate, so it keeps adapting
RATE_MEMORY = 1000.0
_SQRT2 = math.sqrt(2.0)


@njit(cache=True)
def spike_pvalue(z):
    """Two-sided Gaussian tail probability of a standardised residual."""
    return math.erfc(abs(z) / _SQRT2)


def spike_pvalue_ref(z: float) -> float:
    return math.erfc(abs(z) / math.sqrt(2.0))


@njit(cache=True)
def run_pvalue(rate, n, run):
    """Probability of ``run`` repeats in a row given an event rate learned over ``n`` points."""
    if run <= 0.0:
        return 1.0
    m = n if n < RATE_MEMORY else RATE_MEMORY
    p = (rate * m + 0.5) / (m + 1.0)
    return p ** run


def run_pvalue_ref(rate: float, n: float, run: float) -> float:
    if run <= 0:
        return 1.0
    m = min(n, RATE_MEMORY)
    return ((rate * m + 0.5) / (m + 1.0)) ** run


@njit(cache=True)
def run_surprise(rate, n, run):
    """``-ln`` of :func:`run_pvalue`, without a power or a log for the usual ``run == 0``."""
    if run <= 0.0:
        return 0.0
    m = n if n < RATE_MEMORY else RATE_MEMORY
    return -run * math.log((rate * m + 0.5) / (m + 1.0))


def run_surprise_ref(rate: float, n: float, run: float) -> float:
    if run <= 0:
        return 0.0
    m = min(n, RATE_MEMORY)
    return -run * math.log((rate * m + 0.5) / (m + 1.0))


@njit(cache=True)
def rate_update(rate, n, event):
    """Learn the per-point event rate (running mean, then EWMA with ``RATE_MEMORY`` points)."""
    m = n if n < RATE_MEMORY else RATE_MEMORY
    return rate + ((1.0 if event else 0.0) - rate) / (m + 1.0)


def rate_update_ref(rate: float, n: float, event: bool) -> float:
    return rate + (float(event) - rate) / (min(n, RATE_MEMORY) + 1.0)


@njit(cache=True)
def is_repeat(x, prev):
    """Equal to the previous value up to float noise."""
    return abs(x - prev) <= 1e-12 * (1.0 + abs(x))


def flatline_state(n_keys: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fresh ``(prev, run, rate, count)`` arrays."""
    return np.zeros(n_keys), np.zeros(n_keys), np.zeros(n_keys), np.zeros(n_keys)


@njit(cache=True)
def flatline_batch(keys, values, prev, run, rate, count):
    """Probability of each point's current run of repeated values; learns the repeat rate."""
    n = keys.shape[0]
    out = np.ones(n)
    for i in range(n):
        k = keys[i]
        x = values[i]
        if not math.isfinite(x):
            out[i] = np.nan
            continue
        c = count[k]
        if c > 0.0:
            rep = is_repeat(x, prev[k])
            run[k] = run[k] + 1.0 if rep else 0.0
            out[i] = run_pvalue(rate[k], c - 1.0, run[k])
            rate[k] = rate_update(rate[k], c - 1.0, rep)
        prev[k] = x
        count[k] = c + 1.0
    return out


def flatline_batch_ref(keys, values):
    """Plain-Python reference of :func:`flatline_batch` from fresh state."""
    st: dict[int, list] = {}
    out = []
    for k, x in zip(keys.tolist(), values.tolist()):
        if not math.isfinite(x):
            out.append(math.nan)
            continue
        if k not in st:
            st[k] = [x, 0.0, 0.0, 1.0]
            out.append(1.0)
            continue
        prev, run, rate, c = st[k]
        rep = abs(x - prev) <= 1e-12 * (1.0 + abs(x))
        run = run + 1.0 if rep else 0.0
        out.append(run_pvalue_ref(rate, c - 1.0, run))
        st[k] = [x, run, rate_update_ref(rate, c - 1.0, rep), c + 1.0]
    return np.array(out)


@njit(cache=True)
def drift_z(level, level_long, drift_scale, noise_sigma):
    """Standardised gap between the fast and the slow level."""
    s = 1.2533141373155001 * drift_scale
    if s < noise_sigma:
        s = noise_sigma
    if s <= 0.0:
        return 0.0
    return (level - level_long) / s


def drift_z_ref(level: float, level_long: float, drift_scale: float, noise_sigma: float) -> float:
    s = max(1.2533141373155001 * drift_scale, noise_sigma)
    return 0.0 if s <= 0 else (level - level_long) / s


# --- drift against peers (see the module docstring) ---------------------------------------------
# State per key (one row of a float64 array): points seen, previous residual, mean absolute
# increment, fast centre, last bin number and a ring of PEER_DRIFT_BINS time bins (sum, count).
PEER_DRIFT_BIN_MS = 900_000  # 15 min
PEER_DRIFT_BINS = 16  # a 4 h window
PEER_DRIFT_MIN_BINS = 12  # at least 3 h of the window observed before testing
PEER_DRIFT_MIN_AFTER = 6  # a ramp lasts at least 1.5 h inside the window (shorter looks like a step)
#: the ramp must explain the window better than the best step by this much (sum of squares over
#: sigma^2 = 2 log-likelihood units): a recent step is otherwise too close to a short ramp to call
PEER_DRIFT_MARGIN = 4.0
PEER_DRIFT_MIN_N = 48.0  # residuals seen before the noise estimate is trusted
PEER_DRIFT_MEMORY = 100.0  # effective sample size of the noise estimate
PEER_DRIFT_CLIP = 5.0  # noise sigmas: spikes are clipped around the fast centre
PEER_DRIFT_CENTRE_ALPHA = 0.3
#: hinge positions tested: the look-elsewhere (Bonferroni) factor of the ramp p-value
PEER_DRIFT_N_HINGES = PEER_DRIFT_BINS - PEER_DRIFT_MIN_AFTER + 1
PD_N = 0
PD_PREV = 1
PD_ABSD = 2
PD_CENTRE = 3
PD_BIN = 4
PD_RING = 5
PD_COLS = PD_RING + 2 * PEER_DRIFT_BINS
#: mean |increment| of i.i.d. Gaussian noise -> its sigma (sqrt(pi) / 2)
ABS_INCREMENT_TO_SIGMA = 0.886226925452758


def peer_drift_state(n_keys: int) -> np.ndarray:
    """Fresh peer-drift state: ``(n_keys, PD_COLS)``."""
    return np.zeros((n_keys, PD_COLS))


@njit(cache=True)
def peer_drift_learn(PD, k, ts_ms, r):
    """Add residual ``r`` (e.g. ``log(value / peer)``, finite) of key ``k`` at ``ts_ms``."""
    n = PD[k, PD_N]
    sigma = ABS_INCREMENT_TO_SIGMA * PD[k, PD_ABSD]
    if n > 0.0:
        d = abs(r - PD[k, PD_PREV])
        if n > PEER_DRIFT_MIN_N and d > PEER_DRIFT_CLIP * PD[k, PD_ABSD]:
            d = PEER_DRIFT_CLIP * PD[k, PD_ABSD]
        m = n if n < PEER_DRIFT_MEMORY else PEER_DRIFT_MEMORY
        PD[k, PD_ABSD] += (d - PD[k, PD_ABSD]) / m
    PD[k, PD_PREV] = r
    if n == 0.0:
        PD[k, PD_CENTRE] = r
    rc = r
    if n > PEER_DRIFT_MIN_N:
        c = PD[k, PD_CENTRE]
        lim = PEER_DRIFT_CLIP * sigma
        if rc > c + lim:
            rc = c + lim
        elif rc < c - lim:
            rc = c - lim
    PD[k, PD_CENTRE] += PEER_DRIFT_CENTRE_ALPHA * (rc - PD[k, PD_CENTRE])
    b = float(ts_ms // PEER_DRIFT_BIN_MS)
    last = PD[k, PD_BIN]
    if n == 0.0 or b - last >= PEER_DRIFT_BINS:
        for j in range(2 * PEER_DRIFT_BINS):
            PD[k, PD_RING + j] = 0.0
        PD[k, PD_BIN] = b
    elif b > last:
        bb = last + 1.0
        while bb <= b:
            s = PD_RING + 2 * int(bb % PEER_DRIFT_BINS)
            PD[k, s] = 0.0
            PD[k, s + 1] = 0.0
            bb += 1.0
        PD[k, PD_BIN] = b
    if b > PD[k, PD_BIN] - PEER_DRIFT_BINS:  # late points older than the window are not binned
        s = PD_RING + 2 * int(b % PEER_DRIFT_BINS)
        PD[k, s] += rc
        PD[k, s + 1] += 1.0
    PD[k, PD_N] = n + 1.0


@njit(cache=True)
def peer_drift_z(PD, k):
    """``(z_ramp, z_step)`` of key ``k``'s window: the best hinge's and the best step's signed z.

    Both are 0 until the noise is learned and ``PEER_DRIFT_MIN_BINS`` bins hold data. The noise
    of a bin mean is ``sigma / sqrt(count)`` with ``sigma`` the larger of the increment-based noise
    and the scatter left around the better model (so correlated noise inflates it, never deflates).
    """
    if PD[k, PD_N] <= PEER_DRIFT_MIN_N:
        return 0.0, 0.0
    first = int(PD[k, PD_BIN] - PEER_DRIFT_BINS + 1.0)
    filled = 0
    sw = 0.0
    swm = 0.0
    swmm = 0.0
    for i in range(PEER_DRIFT_BINS):
        s = PD_RING + 2 * ((first + i) % PEER_DRIFT_BINS)
        c = PD[k, s + 1]
        if c > 0.0:
            mi = PD[k, s] / c
            filled += 1
            sw += c
            swm += c * mi
            swmm += c * mi * mi
    if filled < PEER_DRIFT_MIN_BINS:
        return 0.0, 0.0
    mbar = swm / sw
    sse0 = swmm - swm * mbar
    # suffix sums from bin j on: weight, weight x t, weight x t^2, weight x m, weight x t x m (t = bin centre)
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    b0 = 0.0
    b1 = 0.0
    best_h = 0.0
    c_h = 0.0
    g_h = 1.0
    best_s = 0.0
    c_s = 0.0
    g_s = 1.0
    for j in range(PEER_DRIFT_BINS - 1, -1, -1):
        s = PD_RING + 2 * ((first + j) % PEER_DRIFT_BINS)
        wj = PD[k, s + 1]
        mj = PD[k, s] / wj if wj > 0.0 else 0.0
        t = j + 0.5
        a0 += wj
        a1 += wj * t
        a2 += wj * t * t
        b0 += wj * mj
        b1 += wj * t * mj
        if j >= 1:  # a jump at the start of bin j
            g = a0 - a0 * a0 / sw
            if g > 1e-12:
                cov = b0 - a0 * mbar
                red = cov * cov / g
                if red > best_s:
                    best_s, c_s, g_s = red, cov, g
        if j <= PEER_DRIFT_BINS - PEER_DRIFT_MIN_AFTER:  # a ramp from the start of bin j on
            sg = a1 - j * a0
            g = a2 - 2.0 * j * a1 + j * j * a0 - sg * sg / sw
            if g > 1e-12:
                cov = b1 - j * b0 - sg * mbar
                red = cov * cov / g
                if red > best_h:
                    best_h, c_h, g_h = red, cov, g
    sigma = ABS_INCREMENT_TO_SIGMA * PD[k, PD_ABSD]
    if filled > 3:
        left = sse0 - (best_h if best_h > best_s else best_s)
        fit = math.sqrt(left / (filled - 3)) if left > 0.0 else 0.0
        if fit > sigma:
            sigma = fit
    if sigma <= 0.0:
        return 0.0, 0.0
    return c_h / math.sqrt(g_h) / sigma, c_s / math.sqrt(g_s) / sigma


@njit(cache=True)
def peer_drift_pvalue(z_ramp, z_step):
    """Tail probability of the ramp, Bonferroni over the hinge positions; 1 unless the ramp beats the
    best step by ``PEER_DRIFT_MARGIN``."""
    if z_ramp * z_ramp - z_step * z_step <= PEER_DRIFT_MARGIN:
        return 1.0
    p = PEER_DRIFT_N_HINGES * math.erfc(abs(z_ramp) / _SQRT2)
    return p if p < 1.0 else 1.0


@njit(cache=True)
def peer_drift_batch(keys, ts_ms, residual, PD):
    """Learn each finite residual, then return ``(z_ramp, z_step)`` per point (0 for non-finite ones)."""
    n = keys.shape[0]
    zr = np.zeros(n)
    zs = np.zeros(n)
    for i in range(n):
        if math.isfinite(residual[i]):
            peer_drift_learn(PD, keys[i], ts_ms[i], residual[i])
            zr[i], zs[i] = peer_drift_z(PD, keys[i])
    return zr, zs


# plain-Python reference ----------------------------------------------------------------------------
def peer_drift_learn_ref(row: list, ts_ms: int, r: float) -> None:
    n = row[PD_N]
    sigma = ABS_INCREMENT_TO_SIGMA * row[PD_ABSD]
    if n > 0:
        d = abs(r - row[PD_PREV])
        if n > PEER_DRIFT_MIN_N:
            d = min(d, PEER_DRIFT_CLIP * row[PD_ABSD])
        row[PD_ABSD] += (d - row[PD_ABSD]) / min(n, PEER_DRIFT_MEMORY)
    row[PD_PREV] = r
    if n == 0:
        row[PD_CENTRE] = r
    rc = r
    if n > PEER_DRIFT_MIN_N:
        lim = PEER_DRIFT_CLIP * sigma
        rc = min(max(r, row[PD_CENTRE] - lim), row[PD_CENTRE] + lim)
    row[PD_CENTRE] += PEER_DRIFT_CENTRE_ALPHA * (rc - row[PD_CENTRE])
    b = ts_ms // PEER_DRIFT_BIN_MS
    last = int(row[PD_BIN])
    if n == 0 or b - last >= PEER_DRIFT_BINS:
        row[PD_RING:] = [0.0] * (2 * PEER_DRIFT_BINS)
        row[PD_BIN] = float(b)
    elif b > last:
        for bb in range(last + 1, b + 1):
            s = PD_RING + 2 * (bb % PEER_DRIFT_BINS)
            row[s] = row[s + 1] = 0.0
        row[PD_BIN] = float(b)
    if b > row[PD_BIN] - PEER_DRIFT_BINS:
        s = PD_RING + 2 * (b % PEER_DRIFT_BINS)
        row[s] += rc
        row[s + 1] += 1.0
    row[PD_N] = n + 1.0


def peer_drift_z_ref(row: list) -> tuple[float, float]:
    if row[PD_N] <= PEER_DRIFT_MIN_N:
        return 0.0, 0.0
    first = int(row[PD_BIN]) - PEER_DRIFT_BINS + 1
    w, m = [], []
    for i in range(PEER_DRIFT_BINS):
        s = PD_RING + 2 * ((first + i) % PEER_DRIFT_BINS)
        w.append(row[s + 1])
        m.append(row[s] / row[s + 1] if row[s + 1] > 0 else 0.0)
    filled = sum(c > 0 for c in w)
    if filled < PEER_DRIFT_MIN_BINS:
        return 0.0, 0.0
    sw = swm = swmm = 0.0
    for c, x in zip(w, m):
        if c > 0:
            sw += c
            swm += c * x
            swmm += c * x * x
    mbar = swm / sw
    sse0 = swmm - swm * mbar
    a0 = a1 = a2 = b0 = b1 = 0.0
    best_h, c_h, g_h = 0.0, 0.0, 1.0
    best_s, c_s, g_s = 0.0, 0.0, 1.0
    for j in reversed(range(PEER_DRIFT_BINS)):
        t = j + 0.5
        a0 += w[j]
        a1 += w[j] * t
        a2 += w[j] * t * t
        b0 += w[j] * m[j]
        b1 += w[j] * t * m[j]
        if j >= 1:
            g = a0 - a0 * a0 / sw
            if g > 1e-12:
                cov = b0 - a0 * mbar
                if cov * cov / g > best_s:
                    best_s, c_s, g_s = cov * cov / g, cov, g
        if j <= PEER_DRIFT_BINS - PEER_DRIFT_MIN_AFTER:
            sg = a1 - j * a0
            g = a2 - 2.0 * j * a1 + j * j * a0 - sg * sg / sw
            if g > 1e-12:
                cov = b1 - j * b0 - sg * mbar
                if cov * cov / g > best_h:
                    best_h, c_h, g_h = cov * cov / g, cov, g
    sigma = ABS_INCREMENT_TO_SIGMA * row[PD_ABSD]
    if filled > 3:
        left = sse0 - max(best_h, best_s)
        sigma = max(sigma, math.sqrt(left / (filled - 3)) if left > 0 else 0.0)
    if sigma <= 0:
        return 0.0, 0.0
    return c_h / math.sqrt(g_h) / sigma, c_s / math.sqrt(g_s) / sigma


def peer_drift_pvalue_ref(z_ramp: float, z_step: float) -> float:
    if z_ramp * z_ramp - z_step * z_step <= PEER_DRIFT_MARGIN:
        return 1.0
    return min(1.0, PEER_DRIFT_N_HINGES * math.erfc(abs(z_ramp) / math.sqrt(2.0)))


def peer_drift_batch_ref(keys, ts_ms, residual):
    """Plain-Python reference of :func:`peer_drift_batch` from fresh state."""
    rows: dict[int, list] = {}
    zr, zs = [], []
    for k, t, r in zip(keys.tolist(), ts_ms.tolist(), residual.tolist()):
        if not math.isfinite(r):
            zr.append(0.0)
            zs.append(0.0)
            continue
        row = rows.setdefault(k, [0.0] * PD_COLS)
        peer_drift_learn_ref(row, t, r)
        a, b = peer_drift_z_ref(row)
        zr.append(a)
        zs.append(b)
    return np.array(zr), np.array(zs)
