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
