"""Emergency incidents: active incidents by type and severity, dispatch and arrival delays.

From the current state of each incident (``incident_id, type, severity, reported_ms,
dispatched_ms, on_scene_ms, closed_ms, units``) at time ``t``:

* active: ``reported_ms <= t`` and not closed by ``t`` (``closed_ms`` null or later).
* ``dispatch delay = dispatched_ms - reported_ms`` and ``arrival delay = on_scene_ms - dispatched_ms``
  (seconds), over incidents reported in (t - lookback, t] whose step had happened by ``t``.
* Severity 1 (I, red, most severe) .. 4 (IV, blue); ``active_sev1`` .. ``active_sev4`` count the active ones.

Example: two incidents at t = 1 h; a fire (severity 2) reported at 0, dispatched at 60 s and on
scene at 600 s is active; a medical call (4) closed at 30 min is not. Mean dispatch delay over
both: (60 + 120) / 2 = 90 s; arrival only for the fire, 540 s.
    >>> import polars as pl
    >>> inc = pl.DataFrame({"incident_id": ["f", "m"], "type": ["fire", "medical"], "severity": [2, 4],
    ...     "reported_ms": [0, 0], "dispatched_ms": [60_000, 120_000], "on_scene_ms": [600_000, None],
    ...     "closed_ms": [None, 1_800_000], "units": [3, 1]})
    >>> incident_metrics(inc, 3_600_000).select("active_incidents", "active_sev2", "mean_dispatch_delay_s",
    ...     "mean_arrival_delay_s").row(0)
    (1, 1, 90.0, 540.0)
"""
from __future__ import annotations

from collections.abc import Sequence

import polars as pl

INCIDENT_COLUMNS: tuple[str, ...] = ("incident_id", "type", "severity", "reported_ms", "dispatched_ms", "on_scene_ms", "closed_ms")

METRIC_COLUMNS: tuple[str, ...] = (
    "active_incidents", "active_sev1", "active_sev2", "active_sev3", "active_sev4", "active_units",
    "reported_recent", "mean_dispatch_delay_s", "p90_dispatch_delay_s", "mean_arrival_delay_s", "p90_arrival_delay_s",
)


def dispatch_delay_s() -> pl.Expr:
    """Polars expression: dispatched - reported, in seconds (null until dispatched).

    >>> import polars as pl
    >>> pl.DataFrame({"reported_ms": [0, 0], "dispatched_ms": [45_000, None]}).select(dispatch_delay_s()).to_series().to_list()
    [45.0, None]
    """
    return ((pl.col("dispatched_ms") - pl.col("reported_ms")).cast(pl.Float64) / 1000.0).alias("dispatch_delay_s")


def arrival_delay_s() -> pl.Expr:
    """Polars expression: on scene - dispatched, in seconds (null until on scene).

    >>> import polars as pl
    >>> pl.DataFrame({"dispatched_ms": [45_000], "on_scene_ms": [465_000]}).select(arrival_delay_s()).to_series().to_list()
    [420.0]
    """
    return ((pl.col("on_scene_ms") - pl.col("dispatched_ms")).cast(pl.Float64) / 1000.0).alias("arrival_delay_s")


def active_at(t_ms: int) -> pl.Expr:
    """Polars predicate: reported by ``t_ms`` and not closed by then.

    >>> import polars as pl
    >>> pl.DataFrame({"reported_ms": [0, 0, 9], "closed_ms": [None, 3, None]}).select(active_at(5)).to_series().to_list()
    [True, False, False]
    """
    return (pl.col("reported_ms") <= t_ms) & (pl.col("closed_ms").is_null() | (pl.col("closed_ms") > t_ms))


def incident_metrics(incidents: pl.DataFrame, t_ms: int, by: Sequence[str] = (), lookback_s: float = 86_400.0) -> pl.DataFrame:
    """Active counts and delay statistics at ``t_ms`` grouped by ``by`` (none = one row, always present).

    Output: the ``by`` columns then :data:`METRIC_COLUMNS`; counts i64, delays f64 seconds (null
    when no incident in the lookback has reached that step). ``p90`` is the 90th percentile
    (linear interpolation).

    Example: dispatch delays 30, 60 and 90 s: mean 60 s; p90 at rank 0.9 * 2 = 1.8 -> 60 + 0.8 * 30 = 84 s.
        >>> import polars as pl
        >>> inc = pl.DataFrame({"incident_id": ["a", "b", "c"], "type": ["fire"] * 3, "severity": [1, 2, 2],
        ...     "reported_ms": [0, 0, 0], "dispatched_ms": [30_000, 60_000, 90_000], "on_scene_ms": [None] * 3,
        ...     "closed_ms": [None] * 3})
        >>> m = incident_metrics(inc, 100_000).row(0, named=True)
        >>> m["active_incidents"], m["active_sev2"], m["mean_dispatch_delay_s"], round(m["p90_dispatch_delay_s"], 6)
        (3, 2, 60.0, 84.0)
    """
    missing = [c for c in INCIDENT_COLUMNS if c not in incidents.columns]
    if missing:
        raise ValueError(f"incidents frame lacks column(s) {missing}; needs {list(INCIDENT_COLUMNS)}")
    if lookback_s <= 0:
        raise ValueError(f"lookback_s must be > 0, got {lookback_s}")
    t = int(t_ms)
    frame = incidents
    if "units" not in frame.columns:
        frame = frame.with_columns(pl.lit(0, dtype=pl.Int64).alias("units"))
    recent = (pl.col("reported_ms") > t - int(lookback_s * 1000)) & (pl.col("reported_ms") <= t)
    dispatched = recent & pl.col("dispatched_ms").is_not_null() & (pl.col("dispatched_ms") <= t)
    arrived = dispatched & pl.col("on_scene_ms").is_not_null() & (pl.col("on_scene_ms") <= t)
    act = active_at(t)
    d = dispatch_delay_s().filter(dispatched)
    a = arrival_delay_s().filter(arrived)
    aggs = [
        act.sum().cast(pl.Int64).alias("active_incidents"),
        *[(act & (pl.col("severity") == s)).sum().cast(pl.Int64).alias(f"active_sev{s}") for s in (1, 2, 3, 4)],
        pl.col("units").filter(act).sum().cast(pl.Int64).alias("active_units"),
        recent.sum().cast(pl.Int64).alias("reported_recent"),
        d.mean().cast(pl.Float64).alias("mean_dispatch_delay_s"),
        d.quantile(0.9, "linear").cast(pl.Float64).alias("p90_dispatch_delay_s"),
        a.mean().cast(pl.Float64).alias("mean_arrival_delay_s"),
        a.quantile(0.9, "linear").cast(pl.Float64).alias("p90_arrival_delay_s"),
    ]
    if by:
        return frame.group_by(list(by)).agg(aggs).sort(list(by)).select(*by, *METRIC_COLUMNS)
    return frame.select(aggs).select(*METRIC_COLUMNS)


#: Lifecycle order of incident statuses, to order updates that share a timestamp.
INCIDENT_STATUS_RANK: dict[str, int] = {"reported": 0, "dispatched": 1, "on_scene": 2, "closed": 3}


def incident_state(updates: pl.DataFrame) -> pl.DataFrame:
    """Fold incident update records (``brain.schemas.Incident``) into one current-state row per incident.

    Input columns: ``incident_id, status, ts_ms, type, severity, lon, lat`` (``units`` and
    ``segment_id`` optional). Per incident: ``reported_ms`` = earliest update; ``dispatched_ms`` =
    first ``dispatched``, else first ``on_scene`` (arrival implies dispatch); ``on_scene_ms`` =
    first ``on_scene``; ``closed_ms`` = last update's time if it is ``closed``; other fields from
    the latest update (severity may be raised or lowered while the incident runs).

    Example: reported at 0, on scene at 400 without a separate dispatch record, upgraded to
    severity 1 at 500:
        >>> import polars as pl
        >>> up = pl.DataFrame({"incident_id": ["x"] * 3, "status": ["reported", "on_scene", "on_scene"],
        ...     "ts_ms": [0, 400, 500], "type": ["fire"] * 3, "severity": [3, 3, 1], "lon": [116.4] * 3, "lat": [39.9] * 3})
        >>> incident_state(up).select("reported_ms", "dispatched_ms", "on_scene_ms", "closed_ms", "severity").row(0)
        (0, 400, 400, None, 1)
    """
    need = ("incident_id", "status", "ts_ms", "type", "severity", "lon", "lat")
    missing = [c for c in need if c not in updates.columns]
    if missing:
        raise ValueError(f"incident updates lack column(s) {missing}; need {list(need)}")
    u = updates
    if "units" not in u.columns:
        u = u.with_columns(pl.lit(0, dtype=pl.Int64).alias("units"))
    if "segment_id" not in u.columns:
        u = u.with_columns(pl.lit(None, dtype=pl.String).alias("segment_id"))
    u = u.with_columns(pl.col("status").replace_strict(INCIDENT_STATUS_RANK, default=None, return_dtype=pl.Int64).alias("_rank"),
                       pl.col("ts_ms").cast(pl.Int64))
    bad = u.filter(pl.col("_rank").is_null())
    if bad.height:
        raise ValueError(f"unknown incident status(es) {sorted(set(bad['status'].to_list()))}; known: {', '.join(INCIDENT_STATUS_RANK)}")
    u = u.sort("ts_ms", "_rank")
    status, ts = pl.col("status"), pl.col("ts_ms")
    on_scene = ts.filter(status == "on_scene").min()
    out = u.group_by("incident_id").agg(
        pl.col("type").last(), pl.col("severity").last().cast(pl.Int64), pl.col("lon").last(), pl.col("lat").last(),
        ts.min().alias("reported_ms"),
        pl.coalesce(ts.filter(status == "dispatched").min(), on_scene).alias("dispatched_ms"),
        on_scene.alias("on_scene_ms"),
        pl.when(status.last() == "closed").then(ts.last()).otherwise(None).alias("closed_ms"),
        status.last().alias("status"), pl.col("segment_id").last(), pl.col("units").last().cast(pl.Int64),
    )
    return out.select("incident_id", "type", "severity", "lon", "lat", "reported_ms", "dispatched_ms", "on_scene_ms", "closed_ms",
                      "status", "segment_id", "units").sort("incident_id")
