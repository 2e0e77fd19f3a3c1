"""Count-aware evidence for low-rate integer series (incidents per window: 0, 1, 2, 3 ...).

On such a series the detector's continuous robust residual reads quantisation as signal or as
nothing: the median absolute deviation of Poisson(0.3) counts is 0, so a 0 -> 2 jump is many
"sigmas", or, once the quantum floor takes over, a burst of the *rate* (x4 for an hour) is a run of
1s and 2s each no larger than normal ones and never adds up. This module keeps, per key, what a
count model needs and turns it into one surprise (``-ln p``) the detector takes the maximum with
(reported as a level shift):

* the gate, detected per key with no parameters: every value so far a non-negative integer (at most
  ``COUNT_NONINT_MAX`` of them not), at least ``COUNT_MIN_N`` points, a running mean in
  ``(0, COUNT_MAX_MEAN]``. Otherwise the surprise is -1 and the detector is unchanged;
* the expected count ``mu`` at this time of day (12 two-hour bins, linear between their centres,
  each blended with the key's global mean until it holds ``COUNT_BIN_WARM`` visits): a daily
  rhythm of the rate is normal;
* the overdispersion from the running variance of ``x - mu``: negative binomial with
  ``r = m^2 / (var - m)`` when the variance exceeds the mean, Poisson otherwise;
* a CUSUM of the log-likelihood ratio of "the rate is ``COUNT_RATE_X`` times ``mu``" against
  ``mu``. Its increments' exponential has mean 1 when ``mu`` and the dispersion are right, so the
  CUSUM exceeds ``s`` with probability at most ``e^-s`` (Wald): the CUSUM *is* a calibrated surprise,
  however quantised the counts. It restarts once it reaches the alarm (the onset is reported, a
  sustained burst re-alarms every few points while it lasts), and the points whose surprise reaches
  the alarm are not learned.

State: ``COUNT_COLS`` floats per key from column ``c0`` of the detector's scalar row.

Example (Poisson counts at 0.4 a window, then the rate x4):
    >>> import numpy as np
    >>> S = np.zeros((1, COUNT_COLS))
    >>> rng = np.random.default_rng(1)
    >>> x = np.concatenate([rng.poisson(0.4, 3000), rng.poisson(1.6, 60)]).astype(float)
    >>> s = [count_step(S, 0, 0, 300_000 * i, x[i], float(i)) for i in range(x.size)]
    >>> bool(max(s[:3000]) < 8.29), bool(max(s[3000:]) >= 8.29)
    (True, True)
"""
from __future__ import annotations

import math

from numba import njit

COUNT_RATE_X = 4.0  # the alternative: the rate multiplied by this (a burst worth paging)
COUNT_MIN_N = 100.0  # points before the count model speaks
COUNT_MAX_MEAN = 8.0  # a larger mean is continuous enough for the robust residual
COUNT_NONINT_MAX = 0.01  # share of non-integer (or negative) values a count series may have
COUNT_BIN_WARM = 20.0  # visits before a time-of-day bin's own mean is used alone
COUNT_BIN_MEMORY = 300.0  # visits a time-of-day bin's mean remembers
COUNT_BIN_MS = 7_200_000  # two-hour bins: a daily rhythm, in half the state of hour bins
COUNT_MEMORY = 2000.0  # points the global mean and the variance remember
COUNT_MU_MIN = 0.02  # expected count floor: an hour never seen non-zero is not "impossible"
COUNT_ALARM = 8.294049640102028  # -ln(0.001 / 4): the detector's alarm surprise (S_ALARM)
DISP_MIN = 1.05  # variance / mean above which the counts are read as negative binomial

CT_NONINT = 0
CT_MEAN = 1
CT_VAR = 2
CT_CUSUM = 3
CT_BIN = 4  # 12 time-of-day means
CT_VIS = 16  # 12 time-of-day visit counts
COUNT_COLS = 28


def _llr(x, m, gm, var, rate_x):
    # log-likelihood ratio of mean rate_x * m against m; the dispersion from the key's global
    # mean and variance (the size r of a negative binomial is a property of the key, not the hour)
    if var > gm * DISP_MIN:
        r = gm * gm / (var - gm)
        return x * math.log(rate_x * (r + m) / (r + rate_x * m)) + r * math.log((r + m) / (r + rate_x * m))
    return x * math.log(rate_x) - (rate_x - 1.0) * m


_llr_nb = njit(cache=True)(_llr)


@njit(cache=True)
def count_step(S, k, c0, ts_ms, x, n):
    """The count surprise of finite ``x`` at ``ts_ms`` for key ``k`` (``n`` points seen before it),
    and learn it; -1 unless the key reads as low-rate counts. State: ``S[k, c0:c0 + COUNT_COLS]``."""
    gm = S[k, c0 + CT_MEAN]
    gate = n >= COUNT_MIN_N and S[k, c0 + CT_NONINT] <= COUNT_NONINT_MAX * n and 0.0 < gm <= COUNT_MAX_MEAN
    if not (x >= 0.0 and x == math.floor(x)):
        # not a count: cheap for continuous keys (nothing else to learn)
        S[k, c0 + CT_NONINT] += 1.0
        S[k, c0 + CT_CUSUM] = 0.0
        return 0.0 if gate else -1.0
    hour = int((ts_ms // COUNT_BIN_MS) % 12)
    vis = S[k, c0 + CT_VIS + hour]
    # linear between bin centres: a steep daily ramp is not a step every two hours
    p = (ts_ms % 86_400_000) / COUNT_BIN_MS - 0.5
    fl = math.floor(p)
    f = p - fl
    i0 = int(fl) % 12
    i1 = (i0 + 1) % 12
    a = S[k, c0 + CT_VIS + i0] / COUNT_BIN_WARM
    a = a if a < 1.0 else 1.0
    m0 = a * S[k, c0 + CT_BIN + i0] + (1.0 - a) * gm
    a = S[k, c0 + CT_VIS + i1] / COUNT_BIN_WARM
    a = a if a < 1.0 else 1.0
    m1 = a * S[k, c0 + CT_BIN + i1] + (1.0 - a) * gm
    mu = (1.0 - f) * m0 + f * m1
    s = 0.0 if gate else -1.0
    if gate:
        m = mu if mu > COUNT_MU_MIN else COUNT_MU_MIN
        c = S[k, c0 + CT_CUSUM] + _llr_nb(x, m, gm, S[k, c0 + CT_VAR], COUNT_RATE_X)
        s = c if c > 0.0 else 0.0
        # restart once it pages: the onset is reported, a sustained burst pages again as it grows
        S[k, c0 + CT_CUSUM] = 0.0 if s >= COUNT_ALARM else s
    if s < COUNT_ALARM:
        # learn (not the points that page: a burst must not become its key's normal)
        w = 1.0 / (n + 1.0)
        w = w if w > 1.0 / COUNT_MEMORY else 1.0 / COUNT_MEMORY
        S[k, c0 + CT_MEAN] = gm + w * (x - gm)
        e = x - mu
        S[k, c0 + CT_VAR] += w * (e * e - S[k, c0 + CT_VAR])
        vis += 1.0
        S[k, c0 + CT_VIS + hour] = vis
        S[k, c0 + CT_BIN + hour] += (x - S[k, c0 + CT_BIN + hour]) / (vis if vis < COUNT_BIN_MEMORY else COUNT_BIN_MEMORY)
    return s


def count_step_ref(row, c0, ts_ms, x, n):
    """Plain-Python twin of :func:`count_step` on one key's row (a list or a 1-D array)."""
    hour = (int(ts_ms) // COUNT_BIN_MS) % 12
    gm = row[c0 + CT_MEAN]
    vis = row[c0 + CT_VIS + hour]
    p = (int(ts_ms) % 86_400_000) / COUNT_BIN_MS - 0.5
    f = p - math.floor(p)
    i0 = int(math.floor(p)) % 12

    def bin_mean(i):
        a = min(row[c0 + CT_VIS + i] / COUNT_BIN_WARM, 1.0)
        return a * row[c0 + CT_BIN + i] + (1.0 - a) * gm

    mu = (1.0 - f) * bin_mean(i0) + f * bin_mean((i0 + 1) % 12)
    is_int = x >= 0.0 and float(x).is_integer()
    counts_like = n >= COUNT_MIN_N and row[c0 + CT_NONINT] <= COUNT_NONINT_MAX * n and 0.0 < gm <= COUNT_MAX_MEAN
    s = 0.0 if counts_like else -1.0
    if counts_like and is_int:
        s = max(0.0, row[c0 + CT_CUSUM] + _llr(x, max(mu, COUNT_MU_MIN), gm, row[c0 + CT_VAR], COUNT_RATE_X))
        row[c0 + CT_CUSUM] = 0.0 if s >= COUNT_ALARM else s
    if not is_int:
        row[c0 + CT_NONINT] += 1.0
        row[c0 + CT_CUSUM] = 0.0
    elif s < COUNT_ALARM:
        w = max(1.0 / (n + 1.0), 1.0 / COUNT_MEMORY)
        row[c0 + CT_MEAN] = gm + w * (x - gm)
        e = x - mu
        row[c0 + CT_VAR] += w * (e * e - row[c0 + CT_VAR])
        vis += 1.0
        row[c0 + CT_VIS + hour] = vis
        row[c0 + CT_BIN + hour] += (x - row[c0 + CT_BIN + hour]) / min(vis, COUNT_BIN_MEMORY)
    return s
