"""Grid-management case metrics (网格化管理 / 12345) at a time ``t`` from the current state of each case.

Input: one row per case with ``case_id, category, cell_id, reported_ms, closed_ms (null while
open), deadline_ms`` (more columns are ignored). Cases reported after ``t`` do not exist yet at
``t``; a ``closed_ms`` after ``t`` counts as still open at ``t``, so the metrics can be replayed for
any past instant from the final state.

Per group (e.g. category, cell, district or nothing = whole city):

* ``new_last_hour``: cases reported in (t - 1 h, t] (the new-per-hour rate).
* ``open_backlog``: reported <= t and not closed by t.
* ``overdue``: open at t and ``deadline_ms < t``.
* ``closed_recent``: cases closed in (t - lookback, t]; ``closed_on_time``: of those, closed at or
  before their deadline.
* ``on_time_closure_rate`` = closed_on_time / closed_recent (null when nothing closed).
* ``mean_time_to_close_h``: mean of (closed - reported) over closed_recent, in hours (a case
  closed before its report time, from clock skew between sources, counts as 0 h).

Example: at t = 10 h, lookback 24 h: case a (reported 9.5 h, open, due 12 h) is new and open;
b (reported 1 h, due 5 h, open) is open and overdue; c (reported 2 h, closed 4 h, due 6 h) closed
on time in 2 h; d (reported 3 h, closed 9 h, due 8 h) closed late in 6 h.
So on-time rate 1/2 and mean time to close (2 + 6) / 2 = 4 h.
    >>> import polars as pl
    >>> H = 3_600_000
    >>> cases = pl.DataFrame({"case_id": list("abcd"), "category": ["road", "road", "litter", "litter"],
    ...     "cell_id": ["C1"] * 4, "reported_ms": [int(9.5 * H), 1 * H, 2 * H, 3 * H],
    ...     "closed_ms": [None, None, 4 * H, 9 * H], "deadline_ms": [12 * H, 5 * H, 6 * H, 8 * H]})
    >>> m = case_metrics(cases, 10 * H)
    >>> m.select("new_last_hour", "open_backlog", "overdue", "on_time_closure_rate", "mean_time_to_close_h").row(0)
    (1, 2, 1, 0.5, 4.0)
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

HOUR_MS = 3_600_000

#: Columns :func:`case_metrics` needs.
CASE_COLUMNS: tuple[str, ...] = ("case_id", "category", "cell_id", "reported_ms", "closed_ms", "deadline_ms")

#: Metric columns :func:`case_metrics` adds, in order.
METRIC_COLUMNS: tuple[str, ...] = (
    "new_last_hour", "open_backlog", "overdue", "closed_recent", "closed_on_time",
    "on_time_closure_rate", "mean_time_to_close_h",
)


def _check(cases: pl.DataFrame) -> None:
    missing = [c for c in CASE_COLUMNS if c not in cases.columns]
    if missing:
        raise ValueError(f"cases frame lacks column(s) {missing}; needs {list(CASE_COLUMNS)}")


def open_at(t_ms: int) -> pl.Expr:
    """Polars predicate: the case exists and is not closed at ``t_ms``.

    >>> import polars as pl
    >>> f = pl.DataFrame({"reported_ms": [0, 0, 50], "closed_ms": [None, 10, None]})
    >>> f.select(open_at(20)).to_series().to_list()
    [True, False, False]
    """
    return (pl.col("reported_ms") <= t_ms) & (pl.col("closed_ms").is_null() | (pl.col("closed_ms") > t_ms))


def overdue_at(t_ms: int) -> pl.Expr:
    """Polars predicate: open at ``t_ms`` and past its deadline.

    >>> import polars as pl
    >>> f = pl.DataFrame({"reported_ms": [0, 0], "closed_ms": [None, None], "deadline_ms": [10, 30]})
    >>> f.select(overdue_at(20)).to_series().to_list()
    [True, False]
    """
    return open_at(t_ms) & (pl.col("deadline_ms") < t_ms)


def case_metrics(cases: pl.DataFrame, t_ms: int, by: Sequence[str] = (), lookback_s: float = 86_400.0) -> pl.DataFrame:
    """Case lifecycle metrics at ``t_ms`` grouped by the columns ``by`` (none = one row).

    Groups with no case at all do not appear; with ``by=()`` the single row is always returned
    (zeros and nulls for an empty frame). Output columns: the ``by`` columns then
    :data:`METRIC_COLUMNS` (counts as i64, rate and hours as f64).

    Example: the same cases by category (see the module example); litter has no open case.
        >>> import polars as pl
        >>> H = 3_600_000
        >>> cases = pl.DataFrame({"case_id": ["b", "c", "d"], "category": ["road", "litter", "litter"],
        ...     "cell_id": ["C1"] * 3, "reported_ms": [H, 2 * H, 3 * H], "closed_ms": [None, 4 * H, 9 * H],
        ...     "deadline_ms": [5 * H, 6 * H, 8 * H]})
        >>> case_metrics(cases, 10 * H, by=["category"]).select("category", "open_backlog", "closed_recent").rows()
        [('litter', 0, 2), ('road', 1, 0)]
    """
    if lookback_s <= 0:
        raise ValueError(f"lookback_s must be > 0, got {lookback_s}")
    _check(cases)
    t = int(t_ms)
    since = t - int(lookback_s * 1000)
    closed_recent = pl.col("closed_ms").is_not_null() & (pl.col("closed_ms") > since) & (pl.col("closed_ms") <= t) & (pl.col("reported_ms") <= t)
    duration_ms = (pl.col("closed_ms") - pl.col("reported_ms")).clip(lower_bound=0).cast(pl.Float64)
    aggs = [
        ((pl.col("reported_ms") > t - HOUR_MS) & (pl.col("reported_ms") <= t)).sum().cast(pl.Int64).alias("new_last_hour"),
        open_at(t).sum().cast(pl.Int64).alias("open_backlog"),
        overdue_at(t).sum().cast(pl.Int64).alias("overdue"),
        closed_recent.sum().cast(pl.Int64).alias("closed_recent"),
        (closed_recent & (pl.col("closed_ms") <= pl.col("deadline_ms"))).sum().cast(pl.Int64).alias("closed_on_time"),
        duration_ms.filter(closed_recent).mean().alias("mean_time_to_close_h"),
    ]
    frame = cases.with_columns(pl.col("closed_ms").cast(pl.Int64), pl.col("reported_ms").cast(pl.Int64), pl.col("deadline_ms").cast(pl.Int64))
    if by:
        out = frame.group_by(list(by)).agg(aggs).sort(list(by))
    else:
        out = frame.select(aggs)
    rate = pl.when(pl.col("closed_recent") > 0).then(pl.col("closed_on_time") / pl.col("closed_recent")).otherwise(None)
    # ms -> h in numpy: polars divides by a literal as a multiply by its reciprocal (7.2e6 / 3.6e6 = 1.9999999999999998).
    hours = pl.Series("mean_time_to_close_h", out["mean_time_to_close_h"].cast(pl.Float64).fill_null(np.nan).to_numpy() / HOUR_MS)
    out = out.with_columns(rate.cast(pl.Float64).alias("on_time_closure_rate"), hours.fill_nan(None))
    return out.select(*by, *METRIC_COLUMNS)


#: Lifecycle order of case statuses, to order updates that share a timestamp.
CASE_STATUS_RANK: dict[str, int] = {"reported": 0, "dispatched": 1, "handling": 2, "closed": 3}


def case_state(updates: pl.DataFrame) -> pl.DataFrame:
    """Fold grid-case update records (``brain.schemas.GridCase``) into one current-state row per case.

    Input columns: ``case_id, status, ts_ms, category, cell_id, unit, deadline_ms``. Updates may
    arrive in any order; they are ordered by ``ts_ms`` (then lifecycle rank). Per case:
    ``reported_ms`` = earliest update; ``dispatched_ms`` = first ``dispatched`` update, else first
    ``handling`` (handling implies dispatch), null if neither (e.g. settled on the spot);
    ``closed_ms`` = time of the last update if that update is ``closed`` (a case reopened after
    closing is open again); category, cell, unit, deadline and status from the latest update.

    Example: case k reported at 10, handled at 30 (no explicit dispatch), closed at 50;
    case m closed at 20 then reopened (handling) at 40, so it is open.
        >>> import polars as pl
        >>> up = pl.DataFrame({"case_id": ["k", "k", "m", "k", "m", "m"],
        ...     "status": ["closed", "reported", "reported", "handling", "closed", "handling"],
        ...     "ts_ms": [50, 10, 5, 30, 20, 40], "category": ["road"] * 6, "cell_id": ["C1"] * 6,
        ...     "unit": ["u"] * 6, "deadline_ms": [100] * 6})
        >>> case_state(up).select("case_id", "reported_ms", "dispatched_ms", "closed_ms", "status").rows()
        [('k', 10, 30, 50, 'closed'), ('m', 5, 40, None, 'handling')]
    """
    need = ("case_id", "status", "ts_ms", "category", "cell_id", "unit", "deadline_ms")
    missing = [c for c in need if c not in updates.columns]
    if missing:
        raise ValueError(f"case updates lack column(s) {missing}; need {list(need)}")
    rank = pl.col("status").replace_strict(CASE_STATUS_RANK, default=None, return_dtype=pl.Int64)
    u = updates.with_columns(rank.alias("_rank"), pl.col("ts_ms").cast(pl.Int64))
    bad = u.filter(pl.col("_rank").is_null())
    if bad.height:
        raise ValueError(f"unknown case status(es) {sorted(set(bad['status'].to_list()))}; known: {', '.join(CASE_STATUS_RANK)}")
    u = u.sort("ts_ms", "_rank")
    status = pl.col("status")
    ts = pl.col("ts_ms")
    out = u.group_by("case_id").agg(
        pl.col("category").last(), pl.col("cell_id").last(), pl.col("unit").last(),
        ts.min().alias("reported_ms"),
        pl.coalesce(ts.filter(status == "dispatched").min(), ts.filter(status == "handling").min()).alias("dispatched_ms"),
        pl.when(status.last() == "closed").then(ts.last()).otherwise(None).alias("closed_ms"),
        pl.col("deadline_ms").last().cast(pl.Int64), status.last().alias("status"),
    )
    return out.select("case_id", "category", "cell_id", "unit", "reported_ms", "dispatched_ms", "closed_ms", "deadline_ms", "status").sort("case_id")
