"""The per-segment and per-sensor tables of :mod:`brain.vitals.batch` (segment traffic, air stations,
noise and utility sensors), each with its rows' tick and district positions for the area figures.

Example: a family's row positions as NumPy, a table and the columns the area figures read:
    >>> import numpy as np, polars as pl
    >>> f = _Family(pl.DataFrame({"x": [1.0]}), np.array([0]), np.array([-1]), {})
    >>> f.table.height, f.ti.tolist(), f.area.tolist()
    (1, [0], [-1])
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import polars as pl

from brain import series
from brain.kernels.groupsum import multi_group_sums
from brain.kernels.segments import segment_figures
from brain.vitals import air, noise, traffic, utilities
from brain.vitals.config import VitalsConfig
from brain.vitals.inputs import POLLUTANTS, pollutant_unit
from brain.vitals.stack.keys import F64, I64, T, _Index, _Rows, _f64, _i64, _nulled, _pick, _place, _take, _union


# --- families ---------------------------------------------------------------------------------------
#: A family's output table, and of each row its tick position and district position (-1: none).
class _Family(NamedTuple):
    """A family's output table; of each row its tick position and district position (-1: none); and
    the columns the area figures read, as numpy (values, where not null, dtype)."""

    table: pl.DataFrame
    ti: np.ndarray
    area: np.ndarray
    columns: dict[str, tuple[np.ndarray, np.ndarray, pl.DataType]]


def _column(name: str, v: np.ndarray, ok: np.ndarray, dtype: pl.DataType) -> pl.Series:
    if dtype == F64:
        return _f64(name, v, ok)
    if dtype == I64:
        return _i64(name, v, ok)
    return _nulled(name, np.where(ok, v, np.nan)).cast(dtype)


def _nan_ok(v: np.ndarray) -> np.ndarray:
    return ~np.isnan(v)


def _segment_traffic(rows: Mapping[str, _Rows], ix: _Index, ticks, cfg: VitalsConfig) -> _Family:
    det, prb = rows["traffic"], rows["probe"]
    d_rows, d_keys = det.latest(ticks, cfg.traffic_max_age_s)
    p_rows, p_keys = prb.latest(ticks, cfg.traffic_max_age_s)
    nk = det.n_keys
    n = len(ticks) * nk
    keys = _union(n, d_keys, p_keys)  # the full join of the two, in (tick, _k) order
    d_at, p_at = _place(n, d_keys, d_rows, keys), _place(n, p_keys, p_rows, keys)
    ti, k = keys // nk, keys % nk
    det_end, det_end_ok = det.values("window_end_ms", d_at)
    vol, vol_ok = det.values("volume_veh", d_at)
    spd, spd_ok = det.values("speed_kmh", d_at)
    occ, occ_ok = det.values("occupancy_pct", d_at)
    prb_end, prb_end_ok = prb.values("window_end_ms", p_at)
    tt, tt_ok = prb.values("travel_time_s", p_at)
    end_ok = det_end_ok | prb_end_ok
    end = np.where(det_end_ok & prb_end_ok, np.fmax(det_end, prb_end), np.where(det_end_ok, det_end, prb_end))
    end = np.where(end_ok, end, 0).astype(np.int64)
    std = cfg.congestion_standard
    all_edges, unknown = ix.speed_edges(std)
    if unknown.any() and unknown[k].any():
        bad = sorted(set(ix.segments["road_class"].to_numpy()[k[unknown[k]]].tolist()))
        raise ValueError(f"unknown road class(es) {bad}; known: {', '.join(traffic.congestion_table(std).road_classes)}")
    table = traffic.congestion_table(std)
    # speed, travel time, TTI, TPI, levels and vehicle-km of every row: compute.py's formulas, one pass
    speed, speed_ok, travel_time, tti, tpi, tpi_lvl, sp_lvl, source, vkm, bad = segment_figures(
        ti, k, vol, vol_ok, spd, spd_ok, tt, tt_ok, ix.length_km, ix.free_flow_kmh, ix.lanes_f64, all_edges, len(ticks),
        table.tti_points, table.tpi_points, table.level_tpi_min)
    if bad & 1:
        raise ValueError("free-flow travel times must be > 0")  # as traffic.tti_from_travel_time
    if bad & 2:
        raise ValueError("travel times must be >= 0")
    n_edges = all_edges.shape[1]
    length = ix.length_km[k]
    names = tuple(traffic.tpi_level_names(np.arange(n_edges + 2), std))  # level 0..5 -> name
    ref = _take(ix.segments, ("segment_id", "district", "cell_id", "road_class", "length_km"), k)
    out = series.frame([
        *ref,
        _i64("window_end_ms", end, end_ok),
        _f64("volume_veh", vol, vol_ok), _f64("occupancy_pct", occ, occ_ok), _f64("speed_kmh", speed, speed_ok),
        _pick(("probe", "detector", None), source).alias("speed_source"), _f64("travel_time_s", travel_time, speed_ok),
        _nulled("tti", tti), _nulled("tpi", tpi),
        _i64("tpi_level", tpi_lvl), _pick(names, tpi_lvl).alias("tpi_level_name"),
        _i64("speed_level", sp_lvl), _pick(names, sp_lvl).alias("speed_level_name"),
        _i64("congestion_level", np.where(sp_lvl > 0, sp_lvl, tpi_lvl)),
        _f64("vkm", vkm), _i64(T, ticks[ti]),
    ])
    every = np.ones(len(k), dtype=bool)
    return _Family(out, ti, ix.segment_area[k], {
        "tpi": (tpi, _nan_ok(tpi), F64), "tti": (tti, _nan_ok(tti), F64), "speed_kmh": (speed, speed_ok, F64),
        "vkm": (vkm, every, F64), "length_km": (length, every, F64),
        "congestion_level": (np.where(sp_lvl > 0, sp_lvl, tpi_lvl), every, I64),
    })


def _air_station(rows: Mapping[str, _Rows], ix: _Index, ticks, cfg: VitalsConfig) -> _Family:
    age = cfg.air_max_age_s
    tables = [rows[name] for name in ("air_1h", "air_24h", "air_8h_o3")]
    latest = [t.latest(ticks, age) for t in tables]
    nk = tables[0].n_keys
    n = len(ticks) * nk
    keys = _union(n, *[key for _, key in latest])  # the full join of the three
    at = [_place(n, key, rows, keys) for rows, key in latest]
    ends = [t.values("window_end_ms", a) for t, a in zip(tables, at)]
    end_ok = ends[0][1] | ends[1][1] | ends[2][1]
    end = np.fmax(np.fmax(ends[0][0], ends[1][0]), ends[2][0])  # NaN where null: the max of the others
    cols = [*_take(ix.sensors, ("sensor_id", "district", "cell_id"), keys % nk),
            _i64("window_end_ms", np.where(end_ok, end, 0).astype(np.int64), end_ok)]
    conc = {}
    for table, a, avg, pollutants in ((tables[0], at[0], "1h", POLLUTANTS), (tables[1], at[1], "24h", [p for p in POLLUTANTS if p != "o3"])):
        for p in pollutants:
            conc[f"{p}_{avg}_{pollutant_unit(p)}"] = (*table.values(f"{p}_{pollutant_unit(p)}", a), F64)
    conc["o3_8h_ugm3"] = (*tables[2].values("o3_8h_ugm3", at[2]), F64)
    cols += [_f64(name, v, ok) for name, (v, ok, _) in conc.items()]
    # air.aqi's columns, from the concentrations as arrays (NaN: not measured)
    aqi_cols = air._aqi_columns({name: np.where(ok, v, np.nan) for name, (v, ok, _) in conc.items()}, "hourly",
                                cfg.aqi_standard, cfg.pm_basis)
    out = series.frame([*cols, *aqi_cols.values(), _i64(T, ticks[keys // nk])])
    return _Family(out, keys // nk, ix.sensor_area[keys % nk], conc)


def _noise_sensor(window_rows: Mapping[str, _Rows], ix: _Index, ticks, cfg: VitalsConfig, tz: str) -> _Family:
    rows = window_rows["noise"]
    valid = np.flatnonzero((rows.ti >= 0) & (rows.k >= 0))
    ti, k = rows.ti[valid], rows.k[valid]
    start, start_ok = rows.values("window_start_ms", valid)
    end, end_ok = rows.values("window_end_ms", valid)
    laeq, laeq_ok = rows.values("laeq_db", valid)
    # the night flag of each distinct window start (a batch has one start per tick, not per row)
    starts, start_of = np.unique(rows.frame["window_start_ms"].to_numpy()[valid], return_inverse=True)
    night = noise.is_night(starts, tz, cfg.noise_standard)[start_of.reshape(-1)]
    # Trailing-period energy means (Ld, Ln) weighted by window duration, summed by polars as the
    # one-window formulation sums them.
    tick = ticks[ti]
    trail = np.flatnonzero((end <= tick) & (end > tick - int(cfg.noise_period_lookback_s * 1000)) & end_ok & laeq_ok)
    nk = rows.n_keys
    # polars' pow (and divide by a literal: a multiply by its reciprocal), exactly as numpy's
    dur = np.maximum(end[trail] - np.where(start_ok[trail], start[trail], np.nan), 1.0)  # null start: null duration
    dur_ok = start_ok[trail]
    energy = dur * 10.0 ** (laeq[trail] * (1.0 / 10.0))
    is_n = night[trail].astype(bool)
    g = ti[trail] * nk + k[trail]
    day_ok, night_ok = dur_ok & ~is_n, dur_ok & is_n
    values = np.stack([energy, dur, energy, dur])
    ok = np.stack([day_ok, day_ok, night_ok, night_ok])
    groups, group = np.unique(g, return_inverse=True)
    total, _ = multi_group_sums(values, ok, group.reshape(-1, 1), len(groups))
    with np.errstate(invalid="ignore", divide="ignore"):
        # polars' log10 is ln(x) / ln(10)
        period_db = 10.0 * (np.log(total[:, [0, 2]] / total[:, [1, 3]]) / np.log(10.0))
    latest, keys = rows.latest(ticks, cfg.noise_max_age_s)
    at = np.minimum(np.searchsorted(groups, keys), max(len(groups) - 1, 0))
    has = (groups[at] == keys) if len(groups) else np.zeros(len(keys), dtype=bool)
    day = np.where(has, period_db[at, 0], np.nan) if len(groups) else np.full(len(keys), np.nan)
    nite = np.where(has, period_db[at, 1], np.nan) if len(groups) else np.full(len(keys), np.nan)
    # the latest row of each (tick, sensor) among the valid rows
    pos = np.searchsorted(valid, latest)
    cur_k, cur_ti = k[pos], ti[pos]
    place = _take(ix.sensor_places, ("sensor_id", "district", "cell_id"), cur_k)
    is_n = night[pos].astype(bool)
    std = cfg.noise_standard
    # noise.limit_db per sensor, looked up once per city and standard
    lim_day, lim_night, known_class = ix.noise_limits(std)
    if not known_class[cur_k].all():
        noise.limit_db(ix.noise_class[cur_k], is_n, std)  # raises: unknown acoustic zone class
    lim_day, lim_night = lim_day[cur_k], lim_night[cur_k]
    lim = np.where(is_n, lim_night, lim_day)
    lamax, lamax_ok = rows.values("lamax_db", latest)
    cur_laeq, cur_laeq_ok = laeq[pos], laeq_ok[pos]
    exceedance = noise.exceedance_db(np.where(cur_laeq_ok, cur_laeq, np.nan), lim)
    out = series.frame([
        *place[:3], series.take(ix.noise_class_series, cur_k),
        _i64("window_start_ms", np.where(start_ok[pos], start[pos], 0).astype(np.int64), start_ok[pos]),
        _i64("window_end_ms", np.where(end_ok[pos], end[pos], 0).astype(np.int64), end_ok[pos]),
        _f64("laeq_db", cur_laeq, cur_laeq_ok), _f64("lamax_db", lamax, lamax_ok),
        _pick(("day", "night"), is_n.astype(np.int64)).alias("period"),
        _f64("limit_db", lim),
        _nulled("exceedance_db", exceedance),
        _nulled("night_max_exceedance_db", noise.night_max_exceedance_db(np.where(lamax_ok, lamax, np.nan), lim, is_n, std)),
        _nulled("laeq_day_db", day), _nulled("laeq_night_db", nite),
        _nulled("day_exceedance_db", noise.exceedance_db(day, lim_day)),
        _nulled("night_exceedance_db", noise.exceedance_db(nite, lim_night)),
        _i64(T, ticks[cur_ti]),
    ])
    return _Family(out, cur_ti, ix.sensor_area[cur_k], {
        "laeq_db": (cur_laeq, cur_laeq_ok, F64), "exceedance_db": (exceedance, _nan_ok(exceedance), F64)})


def _utility_sensor(window_rows: Mapping[str, _Rows], ix: _Index, ticks, cfg: VitalsConfig) -> _Family:
    rows = window_rows["utility"]
    latest, keys = rows.latest(ticks, cfg.utility_max_age_s)
    nk = rows.n_keys
    ti, k = keys // nk, keys % nk
    measured = [rows.values(q, latest) for q in utilities.QUANTITIES]
    # utilities.measured_value / measured_quantity: the unit's column (even when null), else the first
    # non-null column; the sensor's unit is a property of the city.
    unit_col = ix.unit_column[k]
    value, value_ok = np.full(len(k), np.nan), np.zeros(len(k), dtype=bool)
    quantity = np.full(len(k), -1, dtype=np.int64)
    for j in reversed(range(len(measured))):
        v, ok = measured[j]
        first = (unit_col < 0) & ok
        value, value_ok, quantity = np.where(first, v, value), np.where(first, True, value_ok), np.where(first, j, quantity)
    for j, (v, ok) in enumerate(measured):
        mine = unit_col == j
        value, value_ok, quantity = np.where(mine, v, value), np.where(mine, ok, value_ok), np.where(mine, j, quantity)
    sensor_id, sensor_type, district, cell_id, unit, nominal_s = _take(
        ix.sensor_utility, ("sensor_id", "type", "district", "cell_id", "unit", "nominal"), k)
    nominal = nominal_s.to_numpy()
    dev = utilities.deviation_pct(np.where(value_ok, value, np.nan), nominal)
    # utilities.within_tolerance on quantity codes: known where the deviation and the quantity's limit are
    tol = utilities.DEFAULT_TOLERANCE_PCT if cfg.utility_tolerance_pct is None else cfg.utility_tolerance_pct
    limit = np.asarray([float(tol.get(q, np.nan)) for q in utilities.QUANTITIES] + [np.nan])[quantity]
    within_ok = np.isfinite(dev) & np.isfinite(limit)
    with np.errstate(invalid="ignore"):
        within = (within_ok & (np.abs(dev) <= limit)).astype(np.float64)
    out = series.frame([
        sensor_id, sensor_type, district, cell_id, _i64("window_end_ms", *_int_at(rows, "window_end_ms", latest)),
        unit, _pick((*utilities.QUANTITIES, None), quantity).alias("quantity"), _f64("value", value, value_ok),
        nominal_s, _nulled("deviation_pct", dev),
        _column("within_tolerance", within, within_ok, pl.Boolean),
        _i64(T, ticks[ti]),
    ])
    return _Family(out, ti, ix.sensor_area[k], {
        "within_tolerance": (within, within_ok, pl.Boolean),
        "deviation_pct": (dev, _nan_ok(dev), F64)})


def _int_at(rows: _Rows, name: str, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v, ok = rows.values(name, at)
    return np.where(ok, v, 0).astype(np.int64), ok
