"""Utility lifelines (power, water, gas, heat): deviation from nominal and active outages.

* ``deviation_pct = (value - nominal) / nominal * 100`` where ``nominal`` is the registered expected
  value of the sensor (:attr:`brain.city.model.Sensor.nominal`) and ``value`` the window mean of the
  quantity named by the sensor's unit: kPa -> ``pressure_kpa``, m3/h -> ``flow_m3h``, kW -> ``load_kw``.
* An outage is active at ``t`` when ``started_ms <= t`` and it has not ended by ``t``
  (``ended_ms`` null or later than ``t``); customers affected are summed over active outages.

Example: water pressure 270 kPa against a nominal 300 kPa is -10 %; of two outages at t = 5 h,
the one that ended at 4 h is over, so 1 active outage with 120 customers.
    >>> deviation_pct([270.0], [300.0]).tolist()
    [-10.0]
    >>> import polars as pl
    >>> H = 3_600_000
    >>> out = pl.DataFrame({"outage_id": ["o1", "o2"], "utility": ["water", "power"], "cell_id": ["C1", "C2"],
    ...     "customers": [120, 40], "started_ms": [H, 2 * H], "ended_ms": [None, 4 * H]})
    >>> active_outages(out, 5 * H).row(0)
    (1, 120)
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

#: The measured quantities (window-mean columns of the ``utility`` frame).
QUANTITIES: tuple[str, ...] = ("pressure_kpa", "flow_m3h", "load_kw")

#: Default tolerance (± % of nominal) per quantity. Pressure is a regulated set-point, so 10 % is
#: already a fault; flow and load follow demand (night flow is often half the nominal), so only a
#: gross departure (a burst main doubling flow, a feeder dropping to nothing) counts.
DEFAULT_TOLERANCE_PCT: dict[str, float] = {"pressure_kpa": 10.0, "flow_m3h": 60.0, "load_kw": 60.0}

#: Measured column for each (lower-cased) sensor unit.
UNIT_COLUMN: dict[str, str] = {
    "kpa": "pressure_kpa",
    "m3/h": "flow_m3h",
    "m³/h": "flow_m3h",
    "m3h": "flow_m3h",
    "kw": "load_kw",
}

OUTAGE_COLUMNS: tuple[str, ...] = ("outage_id", "utility", "cell_id", "customers", "started_ms", "ended_ms")


def deviation_pct(value, nominal) -> np.ndarray:
    """Relative deviation from nominal in percent (NaN where value is missing or nominal is not > 0).

    >>> deviation_pct([330.0, 5.0, 1.0], [300.0, float("nan"), 0.0]).tolist()
    [10.0, nan, nan]
    """
    v = np.asarray(value, dtype=np.float64)
    n = np.asarray(nominal, dtype=np.float64)
    ok = np.isfinite(n) & (n > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, (v - n) / np.where(ok, n, 1.0) * 100.0, np.nan)


def measured_quantity(frame: pl.DataFrame, unit_column: str = "unit") -> pl.Series:
    """Which quantity each row measures: by its unit, else its first non-null column (null if none).

    >>> import polars as pl
    >>> f = pl.DataFrame({"unit": ["kPa", "?", "?"], "pressure_kpa": [300.0, None, None],
    ...                   "flow_m3h": [None, 7.0, None], "load_kw": [None, None, None]})
    >>> measured_quantity(f).to_list()
    ['pressure_kpa', 'flow_m3h', None]
    """
    f = frame.with_columns([pl.lit(None, dtype=pl.Float64).alias(c) for c in QUANTITIES if c not in frame.columns])
    unit = pl.col(unit_column).str.to_lowercase()
    expr = pl.lit(None, dtype=pl.String)
    for c in reversed(QUANTITIES):
        expr = pl.when(pl.col(c).is_not_null()).then(pl.lit(c)).otherwise(expr)
    for u, c in UNIT_COLUMN.items():
        expr = pl.when(unit == u).then(pl.lit(c)).otherwise(expr)
    return f.select(expr.alias("quantity")).to_series()


def within_tolerance(deviation, quantity, tolerance_pct=None) -> np.ndarray:
    """``|deviation| <= tolerance of the row's quantity`` (:data:`DEFAULT_TOLERANCE_PCT`); None where unknown.

    Example: pressure -16.7 % is out of its ±10 %; flow -48 % (a night minimum) is within ±60 %.

    >>> within_tolerance([-16.7, -48.0, float("nan")], ["pressure_kpa", "flow_m3h", "load_kw"]).tolist()
    [False, True, None]
    """
    tol = DEFAULT_TOLERANCE_PCT if tolerance_pct is None else tolerance_pct
    dev = np.asarray(deviation, dtype=np.float64)
    q = np.asarray(quantity, dtype=object)
    limit = np.full(dev.shape, np.nan)
    for name, pct in tol.items():
        limit[q == name] = pct
    known = np.isfinite(dev) & np.isfinite(limit)
    return np.where(known, np.abs(dev) <= np.where(known, limit, 0.0), None)


def measured_value(frame: pl.DataFrame, unit_column: str = "unit") -> pl.Series:
    """The value of each row in the quantity its sensor's unit names (first non-null if the unit is unknown).

    >>> import polars as pl
    >>> f = pl.DataFrame({"unit": ["kPa", "kW", "?"], "pressure_kpa": [300.0, None, None],
    ...                   "flow_m3h": [None, None, 7.0], "load_kw": [None, 50.0, None]})
    >>> measured_value(f).to_list()
    [300.0, 50.0, 7.0]
    """
    cols = ("pressure_kpa", "flow_m3h", "load_kw")
    f = frame.with_columns([pl.lit(None, dtype=pl.Float64).alias(c) for c in cols if c not in frame.columns])
    unit = pl.col(unit_column).str.to_lowercase()
    expr = pl.coalesce([pl.col(c).cast(pl.Float64) for c in cols])
    for u, c in UNIT_COLUMN.items():
        expr = pl.when(unit == u).then(pl.col(c).cast(pl.Float64)).otherwise(expr)
    return f.select(expr.alias("value")).to_series()


def active_outages(outages: pl.DataFrame, t_ms: int, by: Sequence[str] = ()) -> pl.DataFrame:
    """Active outages and customers affected at ``t_ms``, grouped by ``by`` (e.g. utility, cell_id).

    Output: the ``by`` columns, ``active_outages`` (i64), ``customers_affected`` (i64). With
    ``by=()`` one row is always returned; grouped output lists only groups with an active outage.

    >>> import polars as pl
    >>> out = pl.DataFrame({"outage_id": ["a", "b"], "utility": ["gas", "gas"], "cell_id": ["C1", "C2"],
    ...     "customers": [10, 5], "started_ms": [0, 0], "ended_ms": [None, None]})
    >>> active_outages(out, 1, by=["utility"]).rows()
    [('gas', 2, 15)]
    """
    missing = [c for c in OUTAGE_COLUMNS if c not in outages.columns]
    if missing:
        raise ValueError(f"outages frame lacks column(s) {missing}; needs {list(OUTAGE_COLUMNS)}")
    t = int(t_ms)
    active = (pl.col("started_ms") <= t) & (pl.col("ended_ms").is_null() | (pl.col("ended_ms") > t))
    aggs = [pl.len().cast(pl.Int64).alias("active_outages"), pl.col("customers").sum().cast(pl.Int64).alias("customers_affected")]
    live = outages.filter(active)
    if by:
        return live.group_by(list(by)).agg(aggs).sort(list(by))
    return live.select(aggs)


def outage_state(updates: pl.DataFrame) -> pl.DataFrame:
    """Fold outage records (``brain.schemas.UtilityOutage``: start / end) into one row per outage.

    Input columns: ``outage_id, utility, status, cell_id, customers, ts_ms``. ``started_ms`` = first
    ``start`` (else the first record); ``ended_ms`` = last record's time if it is ``end`` (a
    restart after an end makes the outage active again); ``customers`` = the largest count
    reported; utility and cell from the latest record.

    Example: o1 starts at 10 (80 customers, revised to 120 at 20) and ends at 90:
        >>> import polars as pl
        >>> up = pl.DataFrame({"outage_id": ["o1"] * 3, "utility": ["water"] * 3, "status": ["start", "end", "start"],
        ...     "cell_id": ["C1"] * 3, "customers": [80, 0, 120], "ts_ms": [10, 90, 20]})
        >>> outage_state(up).row(0)
        ('o1', 'water', 'C1', 120, 10, 90)
    """
    need = ("outage_id", "utility", "status", "cell_id", "customers", "ts_ms")
    missing = [c for c in need if c not in updates.columns]
    if missing:
        raise ValueError(f"outage updates lack column(s) {missing}; need {list(need)}")
    bad = set(updates["status"].unique().to_list()) - {"start", "end"}
    if bad:
        raise ValueError(f"unknown outage status(es) {sorted(map(str, bad))}; known: start, end")
    # 'start' before 'end' at the same instant, so a zero-length outage ends.
    u = updates.with_columns(pl.col("ts_ms").cast(pl.Int64), (pl.col("status") == "end").alias("_end")).sort("ts_ms", "_end")
    status, ts = pl.col("status"), pl.col("ts_ms")
    out = u.group_by("outage_id").agg(
        pl.col("utility").last(), pl.col("cell_id").last(), pl.col("customers").max().cast(pl.Int64),
        pl.coalesce(ts.filter(status == "start").min(), ts.min()).alias("started_ms"),
        pl.when(status.last() == "end").then(ts.last()).otherwise(None).alias("ended_ms"),
    )
    return out.select(*OUTAGE_COLUMNS).sort("outage_id")
