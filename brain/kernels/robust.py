"""Robust per-key location/scale (online Huber M-estimate) and an online quantile tracker.

The location moves towards each point by a decaying weight, but the residual is clipped at
``clip`` scales first, so a spike moves it little; the scale is the clipped mean absolute
deviation converted to a Gaussian sigma (x 1.2533). The quantile tracker is the stochastic
gradient estimate of a fixed quantile, used to recalibrate heavy-tailed scores per key.

Example:
    >>> import numpy as np
    >>> keys = np.zeros(6, dtype=np.int64)
    >>> vals = np.array([10.0, 11.0, 9.0, 10.0, 1000.0, 10.0])
    >>> loc, scale, count = np.zeros(1), np.zeros(1), np.zeros(1)
    >>> z = robust_batch(keys, vals, 0.05, 3.0, loc, scale, count)
    >>> bool(z[4] > 50), bool(loc[0] < 15)
    (True, True)
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

#: mean absolute deviation -> standard deviation for a Gaussian (sqrt(pi/2))
MAD_TO_SIGMA = 1.2533141373155001


@njit(cache=True)
def clip(r, c):
    """Clip ``r`` to ``[-c, c]``."""
    if r > c:
        return c
    if r < -c:
        return -c
    return r


@njit(cache=True)
def quantile_step(q, x, tau, eta):
    """One stochastic-gradient step of the ``tau`` quantile estimate ``q`` towards sample ``x``."""
    if x > q:
        return q + eta * tau
    return q - eta * (1.0 - tau)


@njit(cache=True)
def exp_step(x):
    """``exp(x)`` to third order, for the quantile trackers' step factors (``|x| <= 0.6``): a
    step size needs no more, and four exponentials per point are a tenth of the detector's cost."""
    return 1.0 + x * (1.0 + x * (0.5 + x * (1.0 / 6.0)))


def exp_step_ref(x: float) -> float:
    return 1.0 + x * (1.0 + x * (0.5 + x * (1.0 / 6.0)))


@njit(cache=True)
def quantile_step_log(q, x, up, down):
    """Multiplicative stochastic-gradient step of a positive quantile (scale-free).

    ``up = exp(eta * tau)``, ``down = exp(-eta * (1 - tau))`` for quantile ``tau`` and step ``eta``.
    """
    return q * up if x > q else q * down


def quantile_step_log_ref(q: float, x: float, up: float, down: float) -> float:
    return q * up if x > q else q * down


def clip_ref(r: float, c: float) -> float:
    return max(-c, min(c, r))


def quantile_step_ref(q: float, x: float, tau: float, eta: float) -> float:
    return q + eta * tau if x > q else q - eta * (1.0 - tau)


@njit(cache=True)
def robust_batch(keys, values, alpha_min, clip_sigmas, loc, scale, count):
    """Score each point's robust z against its key's state, then learn it. Returns the z values.

    ``alpha_min`` is the long-run learning rate; warm-up uses ``1/(n+1)``.
    """
    n = keys.shape[0]
    out = np.empty(n)
    for i in range(n):
        k = keys[i]
        x = values[i]
        if not math.isfinite(x):
            out[i] = np.nan
            continue
        c = count[k]
        if c == 0.0:
            loc[k] = x
            scale[k] = 0.0
            count[k] = 1.0
            out[i] = 0.0
            continue
        sigma = MAD_TO_SIGMA * scale[k]
        r = x - loc[k]
        if sigma > 0.0:
            out[i] = r / sigma
            rc = clip(r, clip_sigmas * sigma)
        else:
            out[i] = 0.0 if r == 0.0 else math.copysign(math.inf, r)
            rc = r
        a = 1.0 / (c + 1.0)
        if a < alpha_min:
            a = alpha_min
        loc[k] += a * rc
        scale[k] += a * (abs(rc) - scale[k])
        count[k] = c + 1.0
    return out


def robust_batch_ref(keys, values, alpha_min, clip_sigmas):
    """Plain-Python reference of :func:`robust_batch` from fresh state."""
    st: dict[int, list] = {}
    out = []
    for k, x in zip(keys.tolist(), values.tolist()):
        if not math.isfinite(x):
            out.append(math.nan)
            continue
        if k not in st:
            st[k] = [x, 0.0, 1.0]
            out.append(0.0)
            continue
        m, s, c = st[k]
        sigma = MAD_TO_SIGMA * s
        r = x - m
        if sigma > 0:
            out.append(r / sigma)
            rc = clip_ref(r, clip_sigmas * sigma)
        else:
            out.append(0.0 if r == 0 else math.copysign(math.inf, r))
            rc = r
        a = max(1.0 / (c + 1.0), alpha_min)
        st[k] = [m + a * rc, s + a * (abs(rc) - s), c + 1.0]
    return np.array(out)
