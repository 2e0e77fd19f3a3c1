"""Air quality: IAQI and AQI after HJ 633-2012 (or another edition of the breakpoint table).

The individual index of pollutant P is linear between the two breakpoints around its concentration::

    IAQI_P = (IAQI_hi - IAQI_lo) / (BP_hi - BP_lo) * (C_P - BP_lo) + IAQI_lo

rounded up to an integer (HJ 633: 全部进位取整数). AQI is the largest IAQI; the pollutant(s) with
that IAQI are the primary pollutant(s) (首要污染物), named only when AQI > 50. Two rules of the
standard's Table 1 notes replace a value that may not be scored on its own table:

* SO2 1-hour mean above 800 µg/m³: the SO2 IAQI is the one of its 24-hour mean.
* O3 8-hour mean above 800 µg/m³: the O3 8-hour IAQI is replaced by the O3 1-hour IAQI.

Above the last breakpoint of a complete row (e.g. PM2.5 > 500 µg/m³) the standard stops scoring;
we report the top IAQI, 500, so the index stays within [0, 500].

Breakpoints, levels and colours come from the versioned table ``brain/vitals/tables/hj633_2012.yaml``;
pass ``standard=`` to use another edition.

Example (PM2.5 24-h mean 80 µg/m³: (150-100)/(115-75)*(80-75)+100 = 106.25, rounded up to 107):
    >>> iaqi("pm25", [80.0], "24h").tolist()
    [107.0]
    >>> import polars as pl
    >>> out = aqi(pl.DataFrame({"pm25_24h_ugm3": [80.0], "no2_24h_ugm3": [30.0]}), report="daily")
    >>> out.select("aqi", "primary_pollutant", "level", "category_zh", "colour_hex").row(0)
    (107.0, 'pm25', 'III', '轻度污染', '#FF7E00')
"""
from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from brain.kernels.iaqi import piecewise_linear
from brain.vitals.tables import load_table

DEFAULT_STANDARD = "hj633-2012"

#: Pollutant keys and the concentration unit suffix of their columns.
POLLUTANT_UNITS: dict[str, str] = {"so2": "ugm3", "no2": "ugm3", "pm10": "ugm3", "pm25": "ugm3", "co": "mgm3", "o3": "ugm3"}

#: IAQI components of an AQI, in output order (O3 has a 1-hour and an 8-hour index).
COMPONENTS: tuple[str, ...] = ("so2", "no2", "pm10", "pm25", "co", "o3_1h", "o3_8h")

Report = Literal["hourly", "daily"]


@dataclass(frozen=True)
class _Row:
    conc: np.ndarray
    iaqi: np.ndarray
    fallback: str | None  # row whose IAQI is reported above the last breakpoint; None = cap

    @functools.cached_property
    def slope(self) -> np.ndarray:
        """IAQI per unit of concentration on each segment."""
        return np.diff(self.iaqi) / np.diff(self.conc)


@dataclass(frozen=True)
class AqiTable:
    """One edition of the breakpoint table, parsed and checked (see :func:`aqi_table`).

    >>> aqi_table("hj633-2012").level_names
    ('I', 'II', 'III', 'IV', 'V', 'VI')
    """

    standard: str
    rows: dict[str, _Row]
    rounding: str
    primary_above: float
    realtime_pm_basis: str
    level_max: np.ndarray  # inclusive upper AQI of levels 1..n-1
    level_names: tuple[str, ...]
    category_zh: tuple[str, ...]
    category_en: tuple[str, ...]
    colour: tuple[str, ...]
    colour_hex: tuple[str, ...]


@functools.cache
def aqi_table(standard: str = DEFAULT_STANDARD) -> AqiTable:
    """The parsed, validated breakpoint table of ``standard``.

    >>> t = aqi_table()
    >>> t.rows["so2_1h"].conc.tolist(), t.rows["so2_1h"].fallback
    ([0.0, 150.0, 500.0, 650.0, 800.0], 'so2_24h')
    """
    raw = load_table(standard)
    for key in ("iaqi", "breakpoints", "levels", "rounding"):
        if key not in raw:
            raise ValueError(f"AQI table {standard!r} lacks {key!r}")
    if raw["rounding"] not in ("ceil", "none"):
        raise ValueError(f"AQI table {standard!r}: rounding must be 'ceil' or 'none', not {raw['rounding']!r}")
    iaqi_values = np.asarray(raw["iaqi"], dtype=np.float64)
    rows: dict[str, _Row] = {}
    for name, spec in raw["breakpoints"].items():
        conc = np.asarray(spec["conc"], dtype=np.float64)
        if len(conc) < 2 or len(conc) > len(iaqi_values) or np.any(np.diff(conc) <= 0):
            raise ValueError(f"AQI table {standard!r}: row {name!r} needs 2..{len(iaqi_values)} increasing breakpoints")
        above = str(spec.get("above_top", "cap"))
        fallback = above.removeprefix("use:") if above.startswith("use:") else None
        if above != "cap" and fallback is None:
            raise ValueError(f"AQI table {standard!r}: row {name!r} above_top must be 'cap' or 'use:<row>'")
        rows[name] = _Row(conc, iaqi_values[: len(conc)].copy(), fallback)
    for name, row in rows.items():
        if row.fallback is not None and row.fallback not in rows:
            raise ValueError(f"AQI table {standard!r}: row {name!r} falls back to unknown row {row.fallback!r}")
    levels = raw["levels"]
    return AqiTable(
        standard=standard,
        rows=rows,
        rounding=raw["rounding"],
        primary_above=float(raw.get("primary_above", 50)),
        realtime_pm_basis=str(raw.get("realtime_pm_basis", "1h")),
        level_max=np.asarray([lv["max_aqi"] for lv in levels[:-1]], dtype=np.float64),
        level_names=tuple(str(lv["level"]) for lv in levels),
        category_zh=tuple(lv["category_zh"] for lv in levels),
        category_en=tuple(lv["category_en"] for lv in levels),
        colour=tuple(lv["colour"] for lv in levels),
        colour_hex=tuple(lv["hex"] for lv in levels),
    )


def _score(row: _Row, c: np.ndarray, rounding: str) -> np.ndarray:
    """Piecewise-linear IAQI on one row; NaN where c is NaN or above a truncated row's top (one numba
    pass, :mod:`brain.kernels.iaqi`)."""
    return piecewise_linear(np.ascontiguousarray(c, dtype=np.float64), row.conc, row.iaqi, row.slope, row.fallback is None,
                            rounding == "ceil")


def _as_conc(conc) -> np.ndarray:
    c = np.asarray(conc, dtype=np.float64)
    if np.any(c < 0):
        raise ValueError(f"concentrations must be >= 0; got minimum {np.nanmin(c)}")
    return c


def iaqi(pollutant: str, conc, averaging: str, standard: str = DEFAULT_STANDARD) -> np.ndarray:
    """Individual AQI of ``pollutant`` at concentrations ``conc`` averaged over ``averaging``.

    ``pollutant`` is one of so2, no2, pm10, pm25, co, o3 (µg/m³; CO in mg/m³), ``averaging`` one of
    ``1h``, ``8h``, ``24h`` with a breakpoint row in the table. NaN (missing) stays NaN. Where the
    standard says the value is not scored on this row (SO2 1 h > 800, O3 8 h > 800) the result is
    NaN: :func:`aqi` then applies the replacement rule.

    Example: NO2 1-h mean 250 µg/m³ lies between 200 (IAQI 100) and 700 (150):
    (150-100)/(700-200)*(250-200)+100 = 105. SO2 1-h 900 µg/m³ is not scored (NaN).

    >>> iaqi("no2", [250.0, 0.0, float("nan")], "1h").tolist()
    [105.0, 0.0, nan]
    >>> iaqi("so2", [900.0], "1h").tolist()
    [nan]
    >>> iaqi("pm25", [600.0], "24h").tolist()  # above the top: capped at 500
    [500.0]
    """
    table = aqi_table(standard)
    key = f"{pollutant}_{averaging}"
    if key not in table.rows:
        raise ValueError(f"{standard} has no breakpoints for {pollutant!r} over {averaging!r}; rows: {', '.join(sorted(table.rows))}")
    return _score(table.rows[key], _as_conc(conc), table.rounding)


def _height(frame: pl.DataFrame | Mapping[str, np.ndarray]) -> int:
    if isinstance(frame, pl.DataFrame):
        return frame.height
    return len(next(iter(frame.values()))) if frame else 0


def _col(frame: pl.DataFrame | Mapping[str, np.ndarray], name: str) -> np.ndarray:
    """A concentration column as float64, NaN where missing. ``frame`` may also be a mapping of float
    arrays (NaN: not measured), which saves building a frame only to read its columns back."""
    if not isinstance(frame, pl.DataFrame):
        v = frame.get(name)
        return np.full(_height(frame), np.nan) if v is None else np.asarray(v, dtype=np.float64)
    if name not in frame.columns:
        return np.full(frame.height, np.nan)
    col = frame.get_column(name)
    # A float Series converts its nulls to NaN itself; skipping no-op casts saves a polars call per column.
    return (col if col.dtype == pl.Float64 else col.cast(pl.Float64)).to_numpy()


def component_iaqis(frame: pl.DataFrame, report: Report = "hourly", standard: str = DEFAULT_STANDARD,
                    pm_basis: str | None = None) -> dict[str, np.ndarray]:
    """The IAQI of each component (:data:`COMPONENTS`) for a frame of concentrations.

    Columns are ``<pollutant>_<averaging>_<unit>``; a missing column counts as not measured.

    * ``report="hourly"`` (实时报): so2/no2/co/o3 from their ``_1h_`` columns, ``o3_8h`` from
      ``o3_8h_ugm3`` (the 8-hour moving mean), PM from ``pm25_1h_ugm3``/``pm10_1h_ugm3`` scored on
      the 24-hour rows when ``pm_basis="1h"``, or from the ``_24h_`` moving means when ``"24h"``
      (default: the table's ``realtime_pm_basis``). SO2 1 h > 800 takes the SO2 24-h IAQI.
    * ``report="daily"`` (日报): the ``_24h_`` columns; ``o3_1h_ugm3`` and ``o3_8h_ugm3`` hold the
      day's maximum 1-hour and 8-hour means.

    In both, O3 8 h > 800 takes the O3 1-hour IAQI.

    Example (hourly: SO2 1 h = 900 is replaced by its 24-h mean 100 -> (100-50)/(150-50)*50+50 = 75):
        >>> f = pl.DataFrame({"so2_1h_ugm3": [900.0], "so2_24h_ugm3": [100.0]})
        >>> component_iaqis(f)["so2"].tolist()
        [75.0]
    """
    table = aqi_table(standard)
    if report not in ("hourly", "daily"):
        raise ValueError(f"report must be 'hourly' or 'daily', not {report!r}")
    basis = pm_basis or table.realtime_pm_basis
    if basis not in ("1h", "24h"):
        raise ValueError(f"pm_basis must be '1h' or '24h', not {basis!r}")

    def score(row: str, column: str) -> np.ndarray:
        return _score(table.rows[row], _as_conc(_col(frame, column)), table.rounding)

    def with_fallback(row: str, column: str, replacement: np.ndarray) -> np.ndarray:
        val = score(row, column)
        c = _col(frame, column)
        replace = np.isfinite(c) & np.isnan(val)  # measured, but not scored on this row
        return np.where(replace, replacement, val)

    out: dict[str, np.ndarray] = {}
    if report == "hourly":
        out["so2"] = with_fallback("so2_1h", "so2_1h_ugm3", score("so2_24h", "so2_24h_ugm3"))
        out["no2"] = score("no2_1h", "no2_1h_ugm3")
        pm = "1h" if basis == "1h" else "24h"
        out["pm10"] = score("pm10_24h", f"pm10_{pm}_ugm3")
        out["pm25"] = score("pm25_24h", f"pm25_{pm}_ugm3")
        out["co"] = score("co_1h", "co_1h_mgm3")
    else:
        out["so2"] = score("so2_24h", "so2_24h_ugm3")
        out["no2"] = score("no2_24h", "no2_24h_ugm3")
        out["pm10"] = score("pm10_24h", "pm10_24h_ugm3")
        out["pm25"] = score("pm25_24h", "pm25_24h_ugm3")
        out["co"] = score("co_24h", "co_24h_mgm3")
    out["o3_1h"] = score("o3_1h", "o3_1h_ugm3")
    out["o3_8h"] = with_fallback("o3_8h", "o3_8h_ugm3", out["o3_1h"])
    return out


def aqi_level(aqi_values, standard: str = DEFAULT_STANDARD) -> np.ndarray:
    """Level index 0..5 (I..VI) of AQI values; -1 where AQI is NaN.

    >>> aqi_level([0, 50, 51, 100, 101, 300, 301, float("nan")]).tolist()
    [0, 0, 1, 1, 2, 4, 5, -1]
    """
    table = aqi_table(standard)
    a = np.asarray(aqi_values, dtype=np.float64)
    idx = np.searchsorted(table.level_max, a, side="left")
    return np.where(np.isnan(a), -1, idx)


def _joined_names(flags: np.ndarray) -> pl.Series:
    """Per row (column of ``flags``, components x rows) the flagged components' names joined by ","
    in :data:`COMPONENTS` order, null if none: built once per distinct combination, not per row."""
    code = (flags.astype(np.int64) << np.arange(len(COMPONENTS))[:, None]).sum(axis=0)
    distinct, inverse = np.unique(code, return_inverse=True)
    return _combination_names(tuple(distinct.tolist()))[pl.Series(inverse.reshape(-1).astype(np.uint32))]


@functools.lru_cache(maxsize=64)
def _choices(values: tuple[str | None, ...]) -> pl.Series:
    """Level names and the like as a Series to gather from (built once per table)."""
    return pl.Series(list(values), dtype=pl.String)


@functools.lru_cache(maxsize=1024)
def _combination_names(codes: tuple[int, ...]) -> pl.Series:
    """The names of component combinations (bit k: component k), as a Series to gather from."""
    return pl.Series([",".join(c for k, c in enumerate(COMPONENTS) if d >> k & 1) or None for d in codes], dtype=pl.String)


def _aqi_columns(frame: pl.DataFrame, report: Report, standard: str, pm_basis: str | None,
                 only: tuple[str, ...] | None = None) -> dict[str, pl.Series]:
    """The columns :func:`aqi` adds (or ``only`` those of them), by name."""
    table = aqi_table(standard)
    comps = component_iaqis(frame, report, standard, pm_basis)
    stacked = np.vstack([comps[c] for c in COMPONENTS]) if _height(frame) else np.empty((len(COMPONENTS), 0))
    measured = np.any(np.isfinite(stacked), axis=0)
    agg = np.where(measured, np.nanmax(np.where(np.isfinite(stacked), stacked, -np.inf), axis=0), np.nan) if _height(frame) else np.empty(0)
    lvl = aqi_level(agg, standard)
    # one index Series for the level lookups (a numpy index is checked and converted per gather)
    at = pl.Series(np.where(lvl < 0, len(table.level_names), lvl).astype(np.uint32))

    def pick(values: tuple[str, ...]) -> pl.Series:
        return _choices(values + (None,))[at]

    # (float64 arrays: no dtype given, which would cost a cast per column)
    build = {f"iaqi_{c}": (lambda c=c: pl.Series(f"iaqi_{c}", np.asarray(comps[c], dtype=np.float64), nan_to_null=True)) for c in COMPONENTS}
    build["aqi"] = lambda: pl.Series("aqi", np.asarray(agg, dtype=np.float64), nan_to_null=True)
    build["primary_pollutant"] = lambda: _joined_names(
        np.isfinite(stacked) & (stacked == agg[None, :]) & (agg > table.primary_above)[None, :]).alias("primary_pollutant")
    # 超标污染物: every component whose IAQI is above 100 (HJ 633 3.5).
    build["exceeding_pollutants"] = lambda: _joined_names(np.isfinite(stacked) & (stacked > 100)).alias("exceeding_pollutants")
    build["level"] = lambda: pick(table.level_names).alias("level")
    for name in ("category_zh", "category_en", "colour", "colour_hex"):
        build[name] = lambda name=name: pick(getattr(table, name)).alias(name)
    return {name: make() for name, make in build.items() if only is None or name in only}


def aqi(frame: pl.DataFrame, report: Report = "hourly", standard: str = DEFAULT_STANDARD,
        pm_basis: str | None = None) -> pl.DataFrame:
    """AQI, primary pollutant, level and colour for each row of a concentration frame.

    Input columns as in :func:`component_iaqis`; other columns are kept. Added columns:
    ``iaqi_<component>`` (f64, null when not measured), ``aqi`` (f64, the max IAQI; null when
    nothing measured), ``primary_pollutant`` (str: the components with IAQI == AQI joined by ",",
    null when AQI <= 50), ``exceeding_pollutants`` (str: components with IAQI > 100, 超标污染物,
    null if none), ``level`` (I..VI), ``category_zh`` (优 .. 严重污染), ``category_en``,
    ``colour`` and ``colour_hex``.

    Example (hourly; PM2.5 1 h = 80 scored on the 24-h row -> 107; O3 1 h = 180 ->
    (100-50)/(200-160)*(180-160)+50 = 75; primary PM2.5. Second row: PM2.5 10 -> 50/35*10 = 14.3
    -> 15, O3 20 -> 50/160*20 = 6.25 -> 7; AQI 15 <= 50 so no primary pollutant):
        >>> f = pl.DataFrame({"pm25_1h_ugm3": [80.0, 10.0], "o3_1h_ugm3": [180.0, 20.0]})
        >>> aqi(f).select("aqi", "primary_pollutant", "level", "colour").rows()
        [(107.0, 'pm25', 'III', 'orange'), (15.0, None, 'I', 'green')]
    """
    new = _aqi_columns(frame, report, standard, pm_basis)
    if any(name in frame.columns for name in new):
        return frame.with_columns(list(new.values()))
    return frame.hstack(list(new.values()))


#: Data validity (GB 3095-2012 Table 4 / HJ 663): minimum hourly values for a 24-hour mean, for an
#: 8-hour moving mean, and minimum valid 8-hour means for the day's maximum 8-hour mean.
MIN_HOURS_24H = 20
MIN_HOURS_8H = 6
MIN_WINDOWS_8H = 14


def daily_concentrations(hourly: pl.DataFrame, timezone: str) -> pl.DataFrame:
    """Daily-report (日报) inputs per station and local calendar day, from hourly means.

    ``hourly`` has ``sensor_id, window_start_ms`` (the hour's start, epoch ms UTC) and the hourly
    columns ``pm25_ugm3, pm10_ugm3, so2_ugm3, no2_ugm3, o3_ugm3, co_mgm3`` (missing = null). Per
    (sensor, local date) it returns ``sensor_id, date, n_hours`` and the columns :func:`aqi` reads
    with ``report="daily"``:

    * ``<p>_24h_<unit>``: mean of the day's hourly values for SO2, NO2, PM10, PM2.5, CO, null with
      fewer than 20 hourly values;
    * ``o3_1h_ugm3``: the day's maximum hourly O3;
    * ``o3_8h_ugm3``: the day's maximum 8-hour moving mean, over the 17 windows inside the day
      (00-08 .. 16-24), each needing 6 hourly values; null with fewer than 14 valid windows.

    Example: a station with PM2.5 80 µg/m³ every hour and O3 rising 10 -> 240 over the day:
    daily PM2.5 80 -> IAQI 107; O3 1 h max 240 -> 100 + 50/100*40 = 120; O3 8 h max = mean of
    hours 16-23 = (170 + ... + 240)/8 = 205 -> 100 + 50/55*45 = 140.9 -> 141. AQI 141, O3 8 h primary.
        >>> import polars as pl
        >>> day0 = 1_767_196_800_000  # 2026-01-01 00:00 Asia/Shanghai
        >>> h = pl.DataFrame({"sensor_id": ["A"] * 24, "window_start_ms": [day0 + i * 3_600_000 for i in range(24)],
        ...                   "pm25_ugm3": [80.0] * 24, "o3_ugm3": [10.0 * (i + 1) for i in range(24)]})
        >>> d = daily_concentrations(h, "Asia/Shanghai")
        >>> d.select("date", "n_hours", "pm25_24h_ugm3", "o3_1h_ugm3", "o3_8h_ugm3").row(0)
        (datetime.date(2026, 1, 1), 24, 80.0, 240.0, 205.0)
        >>> aqi(d, report="daily").select("aqi", "primary_pollutant").row(0)
        (141.0, 'o3_8h')
    """
    for col in ("sensor_id", "window_start_ms"):
        if col not in hourly.columns:
            raise ValueError(f"hourly frame lacks column {col!r}")
    cols = {p: f"{p}_{POLLUTANT_UNITS[p]}" for p in ("so2", "no2", "pm10", "pm25", "co", "o3")}
    f = hourly.with_columns([pl.lit(None, dtype=pl.Float64).alias(c) for c in cols.values() if c not in hourly.columns])
    try:
        local = pl.col("window_start_ms").cast(pl.Int64).cast(pl.Datetime("ms", "UTC")).dt.convert_time_zone(timezone)
        f = f.with_columns(local.dt.date().alias("date"), local.dt.hour().cast(pl.Int64).alias("_hour"))
    except pl.exceptions.ComputeError as exc:
        raise ValueError(f"unknown time zone {timezone!r}") from exc
    # One value per (sensor, date, hour): duplicates of an hour are averaged.
    f = f.group_by("sensor_id", "date", "_hour").agg([pl.col(c).cast(pl.Float64).mean() for c in cols.values()])
    day_cols = []
    for p in ("so2", "no2", "pm10", "pm25", "co"):
        c = cols[p]
        n = pl.col(c).is_not_null().sum()
        day_cols.append(pl.when(n >= MIN_HOURS_24H).then(pl.col(c).mean()).otherwise(None).alias(f"{p}_24h_{POLLUTANT_UNITS[p]}"))
    daily = f.group_by("sensor_id", "date").agg(
        pl.len().cast(pl.Int64).alias("n_hours"), *day_cols, pl.col(cols["o3"]).max().alias("o3_1h_ugm3"),
    ).sort("sensor_id", "date")
    # O3 8-hour moving means on a (day x 24 hours) grid, vectorised over station-days.
    keys = daily.select("sensor_id", "date").with_row_index("_row")
    grid = np.full((keys.height, 24), np.nan)
    placed = f.join(keys, on=["sensor_id", "date"]).select("_row", "_hour", cols["o3"])
    rows, hours = placed["_row"].to_numpy(), placed["_hour"].to_numpy()
    grid[rows, hours] = placed[cols["o3"]].cast(pl.Float64).fill_null(np.nan).to_numpy()
    valid = np.isfinite(grid)
    csum = np.concatenate([np.zeros((keys.height, 1)), np.cumsum(np.where(valid, grid, 0.0), axis=1)], axis=1)
    ccnt = np.concatenate([np.zeros((keys.height, 1)), np.cumsum(valid, axis=1)], axis=1)
    starts = np.arange(17)
    sums = csum[:, starts + 8] - csum[:, starts]
    counts = ccnt[:, starts + 8] - ccnt[:, starts]
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts >= MIN_HOURS_8H, sums / np.maximum(counts, 1), np.nan)
    n_ok = np.isfinite(means).sum(axis=1)
    best = np.where(n_ok >= MIN_WINDOWS_8H, np.nanmax(np.where(np.isfinite(means), means, -np.inf), axis=1), np.nan) if keys.height else np.empty(0)
    return daily.with_columns(pl.Series("o3_8h_ugm3", best, dtype=pl.Float64, nan_to_null=True)).select(
        "sensor_id", "date", "n_hours", "so2_24h_ugm3", "no2_24h_ugm3", "pm10_24h_ugm3", "pm25_24h_ugm3", "co_24h_mgm3",
        "o3_1h_ugm3", "o3_8h_ugm3",
    )
