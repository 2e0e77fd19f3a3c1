"""Composite health index 0-100 per district (and city) from six sub-scores, each 0-100 (100 = healthy).

How each sub-score maps to 0-100 (parameters in :class:`HealthScoring`, defaults in brackets):

* **traffic** = ``100 - 10 * TPI`` (TPI 0 -> 100, TPI 10 -> 0); TPI is the vehicle-km weighted network TPI.
* **environment** = ``air_share * air + (1 - air_share) * noise`` [air_share 0.7], where
  ``air = 100`` for AQI <= 50, falling linearly to 0 at ``aqi_zero`` [300] (AQI 175 -> 50), and
  ``noise = 100 * share of noise sensors within their limit``. If only one is measured it is used alone.
* **grid** = mean of ``100 * (1 - overdue / open backlog)`` (100 with no backlog) and
  ``100 * on-time closure rate`` (left out when nothing closed in the lookback).
* **utilities** = ``100 * share of utility sensors within tolerance`` of nominal (per quantity,
  :data:`brain.vitals.utilities.DEFAULT_TOLERANCE_PCT`: pressure ±10 %, flow and load ±60 %), times
  ``max(0, 1 - customers_affected / customers_full_penalty)`` [10 000] (missing part = 1).
* **emergency** = ``max(0, 100 - Σ severity_penalty[s] * active incidents of severity s)``
  [I 40, II 20, III 10, IV 5]: no active incident = 100, one red (I) incident = 60.
* **sensors** = ``100 * fresh share`` of registered sensors.

The index is ``Σ w_k * score_k / Σ w_k`` over the sub-scores that are measured (not NaN), with the
weights of :class:`brain.city.model.HealthWeights` (normalised; a sub-score with no data does not
pull the index down, its weight is spread over the others). No measured sub-score -> NaN.

Example: traffic TPI 4 -> 60; everything else 100; weights 0.25/0.25/0.15/0.1/0.15/0.1:
0.25 * 60 + 0.75 * 100 = 90.
    >>> from brain.city.model import HealthWeights
    >>> s = {"traffic": traffic_score([4.0]), "environment": [100.0], "grid": [100.0],
    ...      "utilities": [100.0], "emergency": [100.0], "sensors": [100.0]}
    >>> health_index(s, HealthWeights()).tolist()
    [90.0]
"""
from __future__ import annotations

from collections.abc import Mapping

import msgspec
import numpy as np

from brain.city.model import HealthWeights

SUBSCORES: tuple[str, ...] = ("traffic", "environment", "grid", "utilities", "emergency", "sensors")


class HealthScoring(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Parameters of the sub-score mappings (see the module docstring); validated at construction.

    >>> HealthScoring(aqi_zero=40)
    Traceback (most recent call last):
    ...
    ValueError: aqi_zero must be > 50 (the top of level I), got 40
    """

    aqi_zero: float = 300.0
    air_share: float = 0.7
    customers_full_penalty: float = 10_000.0
    severity_penalty: tuple[float, float, float, float] = (40.0, 20.0, 10.0, 5.0)

    def __post_init__(self) -> None:
        if not self.aqi_zero > 50:
            raise ValueError(f"aqi_zero must be > 50 (the top of level I), got {self.aqi_zero}")
        if not 0.0 <= self.air_share <= 1.0:
            raise ValueError(f"air_share must be in [0, 1], got {self.air_share}")
        if not self.customers_full_penalty > 0:
            raise ValueError(f"customers_full_penalty must be > 0, got {self.customers_full_penalty}")
        if len(self.severity_penalty) != 4 or any(p < 0 for p in self.severity_penalty):
            raise ValueError(f"severity_penalty needs 4 values >= 0 (severity I..IV), got {self.severity_penalty}")


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def traffic_score(tpi) -> np.ndarray:
    """``100 - 10 * TPI`` clipped to [0, 100].

    >>> traffic_score([0.0, 2.5, 10.0, float("nan")]).tolist()
    [100.0, 75.0, 0.0, nan]
    """
    return np.clip(100.0 - 10.0 * _arr(tpi), 0.0, 100.0)


def air_score(aqi, scoring: HealthScoring = HealthScoring()) -> np.ndarray:
    """100 up to AQI 50, then linear to 0 at ``aqi_zero``.

    Example: AQI 175 with aqi_zero 300: 100 * (300 - 175) / (300 - 50) = 50.

    >>> air_score([30.0, 175.0, 400.0]).tolist()
    [100.0, 50.0, 0.0]
    """
    a = _arr(aqi)
    return np.clip(100.0 * (scoring.aqi_zero - a) / (scoring.aqi_zero - 50.0), 0.0, 100.0)


def environment_score(aqi, noise_ok_share, scoring: HealthScoring = HealthScoring()) -> np.ndarray:
    """Weighted mix of the air score and ``100 * noise_ok_share``; either alone when the other is NaN.

    Example: AQI 175 (air 50) and 80 % of noise sensors within limits: 0.7 * 50 + 0.3 * 80 = 59.

    >>> environment_score([175.0, float("nan")], [0.8, 0.5]).round(6).tolist()
    [59.0, 50.0]
    """
    air = air_score(aqi, scoring)
    noise = 100.0 * np.clip(_arr(noise_ok_share), 0.0, 1.0)
    return _mix([air, noise], [scoring.air_share, 1.0 - scoring.air_share])


def grid_score(open_backlog, overdue, on_time_rate) -> np.ndarray:
    """Mean of ``100 * (1 - overdue/open)`` and ``100 * on_time_rate`` (NaN parts left out).

    Example: 10 open, 2 overdue -> 80; on-time rate 0.6 -> 60; score 70. No backlog and no
    closures -> 100 (nothing is late).

    >>> grid_score([10, 0], [2, 0], [0.6, float("nan")]).tolist()
    [70.0, 100.0]
    """
    backlog = _arr(open_backlog)
    late = _arr(overdue)
    with np.errstate(invalid="ignore", divide="ignore"):
        not_late = np.where(backlog > 0, 100.0 * (1.0 - late / np.where(backlog > 0, backlog, 1.0)), 100.0)
    not_late = np.where(np.isnan(backlog), np.nan, not_late)
    return _mix([not_late, 100.0 * _arr(on_time_rate)], [0.5, 0.5])


def utilities_score(within_share, customers_affected, scoring: HealthScoring = HealthScoring()) -> np.ndarray:
    """``100 * within_share * max(0, 1 - customers / customers_full_penalty)``; a NaN factor counts as 1.

    Example: 90 % of meters within tolerance and 2 500 customers out (of a 10 000 full penalty):
    100 * 0.9 * 0.75 = 67.5. No meter and no outage data at all -> NaN.

    >>> utilities_score([0.9, float("nan"), float("nan")], [2500, 0, float("nan")]).tolist()
    [67.5, 100.0, nan]
    """
    share = _arr(within_share)
    cust = _arr(customers_affected)
    outage_factor = np.clip(1.0 - cust / scoring.customers_full_penalty, 0.0, 1.0)
    both_missing = np.isnan(share) & np.isnan(cust)
    out = 100.0 * np.where(np.isnan(share), 1.0, share) * np.where(np.isnan(outage_factor), 1.0, outage_factor)
    return np.where(both_missing, np.nan, np.clip(out, 0.0, 100.0))


def emergency_score(active_by_severity, scoring: HealthScoring = HealthScoring()) -> np.ndarray:
    """``max(0, 100 - Σ penalty[s] * active[s])`` with ``active_by_severity`` shaped (n, 4) for I..IV.

    Example: one severity-II and two severity-IV incidents: 100 - 20 - 2 * 5 = 70.

    >>> emergency_score([[0, 1, 0, 2], [0, 0, 0, 0], [3, 0, 0, 0]]).tolist()
    [70.0, 100.0, 0.0]
    """
    counts = np.atleast_2d(_arr(active_by_severity))
    if counts.shape[1] != 4:
        raise ValueError(f"active_by_severity needs 4 columns (severity I..IV), got shape {counts.shape}")
    return np.clip(100.0 - counts @ np.asarray(scoring.severity_penalty, dtype=np.float64), 0.0, 100.0)


def sensors_score(fresh_share) -> np.ndarray:
    """``100 * fresh share``.

    >>> sensors_score([0.95]).tolist()
    [95.0]
    """
    return 100.0 * np.clip(_arr(fresh_share), 0.0, 1.0)


def normalised_weights(weights: HealthWeights) -> dict[str, float]:
    """Weights per sub-score scaled to sum 1.

    Example: weights 2, 1, 1, 0, 0, 0 -> 0.5, 0.25, 0.25, 0, 0, 0.

    >>> w = normalised_weights(HealthWeights(traffic=2, environment=1, grid=1, utilities=0, emergency=0, sensors=0))
    >>> [w[k] for k in SUBSCORES]
    [0.5, 0.25, 0.25, 0.0, 0.0, 0.0]
    """
    raw = {k: float(getattr(weights, k)) for k in SUBSCORES}
    bad = {k: v for k, v in raw.items() if not np.isfinite(v) or v < 0}
    if bad:
        raise ValueError(f"health weights must be finite and >= 0, got {bad}")
    total = sum(raw.values())
    if total <= 0:
        raise ValueError("health weights sum to 0; at least one must be > 0")
    return {k: v / total for k, v in raw.items()}


def _mix(parts: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Weighted mean of the parts that are not NaN, per element; NaN when none is (or all weights 0)."""
    stack = np.vstack([np.atleast_1d(_arr(p)) for p in parts])
    w = np.asarray(weights, dtype=np.float64)[:, None] * np.isfinite(stack)
    total = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, np.nansum(np.where(np.isfinite(stack), stack, 0.0) * w, axis=0) / np.where(total > 0, total, 1.0), np.nan)


def health_index(subscores: Mapping[str, object], weights: HealthWeights = HealthWeights()) -> np.ndarray:
    """Composite index 0-100 from sub-score arrays (keys of :data:`SUBSCORES`; missing key = not measured).

    Example: only traffic (40) and environment (80) measured, default weights 0.25 each:
    (0.25 * 40 + 0.25 * 80) / 0.5 = 60.

    >>> health_index({"traffic": [40.0], "environment": [80.0]}).tolist()
    [60.0]
    """
    unknown = set(subscores) - set(SUBSCORES)
    if unknown:
        raise ValueError(f"unknown sub-score(s) {sorted(unknown)}; known: {', '.join(SUBSCORES)}")
    w = normalised_weights(weights)
    present = [k for k in SUBSCORES if k in subscores]
    if not present:
        raise ValueError("no sub-scores given")
    parts = [np.clip(np.atleast_1d(_arr(subscores[k])), 0.0, 100.0) for k in present]
    # The clip only removes float rounding (100.00000000000001); the mix of [0, 100] parts is within it.
    return np.clip(_mix(parts, [w[k] for k in present]), 0.0, 100.0)
