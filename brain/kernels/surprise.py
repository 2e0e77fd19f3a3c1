"""From a detector's surprise ``-ln p`` to a score a threshold can use: calibrated per key,
conservative while young, reported at the onset of an episode, never saturated.

* :func:`calibrate` — a key's raw surprise against the key's own 99.5th percentile ``q`` of it. An
  i.i.d. surprise has that percentile at ``Q_S = -ln 0.005``; real series (heavy tails, bursts,
  autocorrelation) sit higher. Below ``q`` the surprise is scaled by ``Q_S / q`` (never up).
  Above ``q`` the tail is *not* assumed exponential (a heavy-tailed residual's surprise has a
  power-law tail, so a linear map would flag far too often): it is extrapolated as a power law,
  ``Q_S + a ln(s / q)``, whose index ``a`` comes from the key's 95th and 99.5th percentiles
  (:func:`tail_index`); the linear map bounds it (never less conservative than that).
* :func:`hill_step` / :func:`calibrate_far` — the spike surprise's far tail beyond the 99.5th
  percentile is also estimated directly (a Hill estimate, the mean log-excess over that percentile)
  and replaces the 95th-to-99.5th index when it is materially heavier: a lognormal body with 1 %
  of power-law bursts reads light in its body and flagged its normal bursts at ~2x the promise.
* :func:`young_factor` — the surprise is shrunk by ``n / (n + N_YOUNG)`` while the key has seen
  few points: its noise and tail estimates are still guesses, so it must be conservative, not a
  storm, from its first scored point.
* :func:`onset_step` — episode semantics: the score is the confidence that an anomaly *starts or
  is still news* here. An episode remembers its peak surprise ``H`` (decaying by ``EPI_DECAY``
  per point); a point inside an episode reports only what exceeds ``H`` plus a margin that halves
  every point since the last reported onset (``S_ALARM / 2`` at the next point), so a level shift or a drift pages once and is quiet
  after unless its evidence grows materially (``S_ALARM`` nats beyond the episode's peak). A quiet
  point right after a huge reported onset (``EPI_HUGE``) ends the episode (it was a one-point
  spike): a huge spike does not mask a second anomaly a few points later.
* :func:`score_of` — ``1 - 4 exp(-s)`` (Bonferroni over the detector's four statistics: a
  calibrated ``1 - p``) up to ``S_EXACT`` nats, then ``p`` keeps falling as a power of ``s``,
  so scores stay strictly ordered and below 1.0 for every finite surprise the kernels produce.

Example:
    >>> round(score_of(8.294049640102028), 6)     # the surprise of p = 0.001 / 4
    0.999
    >>> score_of(40.0) < score_of(400.0) < score_of(4e6) < 1.0
    True
    >>> gauss_surprise(40.0) < gauss_surprise(400.0)      # no underflow to a cap
    True
    >>> s, H, margin = onset_step(20.0, 0.0, 0.0)   # a shift starts: reported
    >>> s
    20.0
    >>> s, H, margin = onset_step(20.0, H, margin)  # the same evidence next point: not news
    >>> s < 8.29
    True
"""
from __future__ import annotations

import math

from numba import njit

Q_S = 5.298317366548036  # -ln(0.005): the 99.5th percentile of a calibrated surprise
S_ALARM = 8.294049640102028  # -ln(0.001 / 4): the surprise of a score of 0.999
QLO_S = 2.995732273553991  # -ln(0.05): the 95th percentile of a calibrated surprise
LN_QLO_RATIO = 2.302585092994046  # ln(0.05 / 0.005): the tail probability falls tenfold between them
A_MIN = 0.25  # the heaviest tail assumed: P(surprise > s) ~ s^-0.25 (a Cauchy-like residual is ~ s^-0.5)
N_COMPONENTS = 4.0
S_EXACT = 30.0  # below this the score is exactly 1 - 4 exp(-s) (p ~ 4e-13)
TAIL_POWER = 0.5  # above it p falls as s^-0.5: 1 - p stays below 1.0 up to s ~ 1e7
N_YOUNG = 40.0
SQRT2 = 1.4142135623730951
HALF_LN_PI = 0.5723649429247001
GAUSS_ASYMPTOTIC_X = 25.0  # erfc(25) ~ 8e-274: still a normal float
EPI_DECAY = 0.9  # the episode's remembered peak keeps 90 % per point
EPI_MARGIN_HALVING = 0.5
EPI_HUGE = 3.0 * S_ALARM  # an onset this large followed by a quiet point was a one-point spike: it ends there
# the far tail's Hill estimate (calibrate_far): its prior is an exponential tail's (1 / Q_S), worth
# HILL_PRIOR exceedances; its memory is at most 1 / HILL_W_MIN exceedances (~10,000 points)
HILL0 = 1.0 / Q_S
HILL_PRIOR = 5.0
HILL_W_MIN = 0.02
TAIL_P = 0.005  # the share of points above the 99.5th percentile
HILL_CLIP = 3.0  # one exceedance counts at most as s = e^3 q (~20 q)
HILL_MIN_N = 2000.0  # points seen before the Hill index may replace the other
HILL_GATE = 2.0  # the Hill index replaces the 95th-to-99.5th one only when this much heavier


SURPRISE_OF_ZERO = 690.7755278982137  # -ln(1e-300): p = 0 counts as this surprise


@njit(cache=True)
def surprise(p):
    """``-ln p``, finite for ``p = 0``."""
    return -math.log(p) if p > 1e-300 else SURPRISE_OF_ZERO


def surprise_ref(p: float) -> float:
    return -math.log(p) if p > 1e-300 else SURPRISE_OF_ZERO


@njit(cache=True)
def z_calibration(q):
    """Factor bringing a key's standardised residual to its i.i.d. size, from the key's 99.5th
    percentile ``q`` of the spike surprise (never up): what ``z`` columns report."""
    return Q_S / q if q > Q_S else 1.0


def z_calibration_ref(q: float) -> float:
    return Q_S / q if q > Q_S else 1.0


@njit(cache=True)
def gauss_surprise(z):
    """``-ln`` of the two-sided Gaussian tail of ``z``, without underflow: past ``|z| ~ 35`` the
    tail is ``exp(-x^2) / (x sqrt(pi))`` (``x = |z| / sqrt 2``), so the surprise keeps growing
    as ``z^2 / 2`` instead of stopping where ``erfc`` reaches 0."""
    x = abs(z) / SQRT2
    if x < GAUSS_ASYMPTOTIC_X:
        return -math.log(math.erfc(x))
    return x * x + math.log(x) + HALF_LN_PI - math.log1p(-0.5 / (x * x))


def gauss_surprise_ref(z: float) -> float:
    x = abs(z) / math.sqrt(2.0)
    if x < GAUSS_ASYMPTOTIC_X:
        return -math.log(math.erfc(x))
    return x * x + math.log(x) + 0.5 * math.log(math.pi) - math.log1p(-0.5 / (x * x))


@njit(cache=True)
def score_of(s):
    """Score in ``[0, 1)`` of a surprise ``s`` (strictly increasing for ``s > ln 4``)."""
    if s <= S_EXACT:
        q = N_COMPONENTS * math.exp(-s)
        return 1.0 - (q if q < 1.0 else 1.0)
    return 1.0 - N_COMPONENTS * math.exp(-S_EXACT) * (S_EXACT / s) ** TAIL_POWER


def score_of_ref(s: float) -> float:
    if s <= S_EXACT:
        return 1.0 - min(1.0, N_COMPONENTS * math.exp(-s))
    return 1.0 - N_COMPONENTS * math.exp(-S_EXACT) * (S_EXACT / s) ** TAIL_POWER


@njit(cache=True)
def tail_index(q, qlo):
    """Power-law index of the surprise's tail from its 99.5th and 95th percentiles (a tenfold
    drop in probability between them), kept in ``[A_MIN, q]``."""
    # a statistic that is mostly zero (drift, flatline) has an uninformative body: its 95th
    # percentile is taken as at least the i.i.d. value
    qlo = qlo if qlo > QLO_S else QLO_S
    if q <= qlo * 1.0000001:
        return q
    a = LN_QLO_RATIO / math.log(q / qlo)
    # at most q: the log extrapolation then leaves q with slope 1, an exponential tail's (the
    # linear map in calibrate() is the binding one for light tails)
    a = a if a < q else q
    return a if a > A_MIN else A_MIN


def tail_index_ref(q: float, qlo: float) -> float:
    qlo = max(qlo, QLO_S)
    if q <= qlo * 1.0000001:
        return q
    return max(min(LN_QLO_RATIO / math.log(q / qlo), q), A_MIN)


@njit(cache=True)
def calibrate(s, q, qlo):
    """Raw surprise ``s`` of a key whose 99.5th / 95th percentiles of it are ``q`` / ``qlo``
    -> calibrated surprise (see the module docstring)."""
    if q <= Q_S:
        return s
    lin = s * (Q_S / q)
    if s <= q:
        return lin
    tail = Q_S + tail_index(q, qlo) * math.log(s / q)
    return tail if tail < lin else lin


def calibrate_ref(s: float, q: float, qlo: float) -> float:
    if q <= Q_S:
        return s
    lin = s * (Q_S / q)
    return lin if s <= q else min(lin, Q_S + tail_index_ref(q, qlo) * math.log(s / q))


@njit(cache=True)
def hill_step(h, s, q, n):
    """The key's Hill estimate ``h`` of ``1 / a`` (the far tail's power-law index) after a surprise
    ``s`` against its 99.5th percentile ``q``, ``n`` points seen: an exceedance ``s > q`` moves
    ``h`` towards ``ln(s / q)`` (for a tail ``P(S > s) ~ s^-a`` the mean of ``ln(S / q)`` over
    exceedances is ``1 / a``, whatever ``q``: each exceedance is a full observation, so this
    converges in tens of exceedances where a 99.9th-percentile tracker needs hundreds)."""
    if s <= q:
        return h
    w = 1.0 / (HILL_PRIOR + TAIL_P * n)
    w = w if w > HILL_W_MIN else HILL_W_MIN
    # clipped: one anomaly hundreds of times the percentile must not make the key's tail heavy
    e = math.log(s / q)
    e = e if e < HILL_CLIP else HILL_CLIP
    return h + w * (e - h)


def hill_step_ref(h: float, s: float, q: float, n: float) -> float:
    if s <= q:
        return h
    return h + max(1.0 / (HILL_PRIOR + TAIL_P * n), HILL_W_MIN) * (min(math.log(s / q), HILL_CLIP) - h)


@njit(cache=True)
def calibrate_far(s, q, qlo, h, n):
    """:func:`calibrate` with the far tail's Hill estimate ``h`` (:func:`hill_step`): the tail is
    extrapolated with the Hill index ``1 / h`` instead of the 95th-to-99.5th one when it is
    materially heavier (``HILL_GATE`` times) and the key has seen ``HILL_MIN_N`` points: a mixture
    whose body is lognormal-like and whose far tail is a few percent of power-law bursts reads light between the 95th and 99.5th percentiles
    and flagged its normal bursts at several times the promised rate. Before ``HILL_MIN_N`` points
    (~10 exceedances) one anomaly would weigh as much as the prior: a young key's first huge spike
    must not make it deaf to a second anomaly."""
    if q <= Q_S:
        return s
    lin = s * (Q_S / q)
    if s <= q:
        return lin
    a = tail_index(q, qlo)
    ah = 1.0 / h if h > 1.0 / q else q
    ah = ah if ah > A_MIN else A_MIN
    if ah * HILL_GATE < a and n >= HILL_MIN_N:
        a = ah
    tail = Q_S + a * math.log(s / q)
    return tail if tail < lin else lin


def calibrate_far_ref(s: float, q: float, qlo: float, h: float, n: float) -> float:
    if q <= Q_S:
        return s
    lin = s * (Q_S / q)
    if s <= q:
        return lin
    a = tail_index_ref(q, qlo)
    ah = max(1.0 / h if h > 1.0 / q else q, A_MIN)
    if ah * HILL_GATE < a and n >= HILL_MIN_N:
        a = ah
    return min(lin, Q_S + a * math.log(s / q))


@njit(cache=True)
def young_factor(n):
    """Shrinkage of the surprise of a key that has seen ``n`` points."""
    return n / (n + N_YOUNG)


def young_factor_ref(n: float) -> float:
    return n / (n + N_YOUNG)


@njit(cache=True)
def onset_step(best, H, margin, huge=EPI_HUGE):
    """``(reported surprise, new episode peak, new margin)`` for a point of surprise ``best`` after
    an episode peak ``H``; ``margin`` (``S_ALARM / 2`` after a reported onset, halving every point)
    is what a point inside the episode reports on top of its news."""
    if H < S_ALARM:
        rep = best
    else:
        news = best - H
        news = news if news > 0.0 else 0.0
        rep = news + margin
        rep = rep if rep < best else best
    if best < Q_S and margin == S_ALARM * EPI_MARGIN_HALVING and H > huge:
        # quiet (below the 99.5th percentile) right after a huge reported onset: that episode was one
        # point, a spike, and it is over; a second anomaly right after it must be news
        Hd = 0.0
    else:
        Hd = H * EPI_DECAY
    H_new = best if best > Hd else Hd
    margin_new = S_ALARM * EPI_MARGIN_HALVING if rep >= S_ALARM else margin * EPI_MARGIN_HALVING
    return rep, H_new, margin_new


def onset_step_ref(best: float, H: float, margin: float, huge: float = EPI_HUGE) -> tuple[float, float, float]:
    rep = best if H < S_ALARM else min(best, max(0.0, best - H) + margin)
    quiet_after_huge = best < Q_S and margin == S_ALARM * EPI_MARGIN_HALVING and H > huge
    Hd = 0.0 if quiet_after_huge else H * EPI_DECAY
    return rep, max(best, Hd), (S_ALARM if rep >= S_ALARM else margin) * EPI_MARGIN_HALVING
