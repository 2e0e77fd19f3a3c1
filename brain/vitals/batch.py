"""``compute_vitals_batch``: the vital signs of K ticks in one vectorised pass.

:func:`brain.vitals.compute_vitals` costs a fixed few tens of ms per call in polars overhead
(hundreds of small eager operations). This computes the same tables for K tick ends at once, so
that overhead is paid once per batch instead of once per tick, and runs only a handful of polars
operations per batch (Enum casts placing ids, the time-zone conversion of noise windows, gathers
and the output frames), none of them a group-by or a join (but for the first lookup of a new
block of registry ids): rows are placed by dense integer keys (a
segment's or sensor's rank, a tick's position, a (tick, area) grid row) with numpy instead of joins,
state tables are evaluated as (ticks x rows) masks, and the per-row formulas and aggregations of
:mod:`brain.vitals.compute` are evaluated in numpy and in the numba kernels of ``brain/kernels``
(``latest``: each key's current window; ``segments``: the per-segment traffic figures;
``groupsum``: the area sums; ``freshness``: the registry counts) with the floating-point
operations polars and numpy do, in the same order, so with the same bits: ``+ - * /`` (polars
divides by a literal as a multiply by its reciprocal, so that is done the same way here), polars'
``pow`` (numpy's), ``log10`` (``ln(x) / ln(10)``), linear quantile, numpy's ``interp``, and polars'
grouped float sums and ``sum().over()``, which are Kahan-compensated sums in row order
(:mod:`brain.kernels.groupsum`; its tests check that against polars). The tables are the
one-window formulation's tick by tick (the tests allow 1e-9 relative), and
``bench/vitals_batch_speed.py`` checks them bit for bit against an earlier version on the ingest
benchmark's day.

Input (``frames``): the names and columns of :data:`brain.vitals.INPUT_SCHEMAS`, with

* per-window tables (``traffic, probe, air_1h, air_24h, air_8h_o3, noise, utility``): the rows of
  all K ticks stacked, each row tagged with the tick it belongs to in a ``tick_end_ms`` column
  (required when K > 1; an hourly air row's ``window_end_ms`` is its hour's end, not the tick).
  Each tick sees only its own rows, exactly as if they had been passed to ``compute_vitals``
  (rows tagged with a tick not in ``window_ends_ms`` are ignored).
* ``sensor_last_seen``: ``sensor_id, tick_end_ms, last_seen_ms`` (last seen as of each tick); without
  ``tick_end_ms`` one table applies to every tick.
* state tables (``outages, cases, incidents``): the current state after the last tick, evaluated
  as of each tick end from their timestamps (a case or incident exists from ``reported_ms``, an
  outage from ``started_ms``; a close / end after the tick counts as still open).

Output: the tables of ``compute_vitals``, stacked over the ticks (ordered by tick, then as
``compute_vitals`` orders them), each with one extra last column ``tick_end_ms``; the tables that
have no ``window_end_ms`` in ``compute_vitals`` (:data:`TICK_ONLY_TABLES`) also get
``window_end_ms`` = the tick. For the per-sensor tables ``window_end_ms`` stays the data window's
end (an air station's hour), so group by ``tick_end_ms``; :func:`split_ticks` gives exactly what
``compute_vitals`` returns per tick. A tick without any input row still gets its district and city rows.

Example: two ticks of the one-segment city of :mod:`brain.vitals.compute`, the second one quiet:
    >>> import polars as pl
    >>> from brain.city.model import City, District, GridCell, RoadSegment, Street
    >>> city = City(name="Demo", admin_code="110000", timezone="Asia/Shanghai", center=[116.4, 39.9],
    ...     districts=[District(id="D1", name="East", admin_code="110101", center=[116.4, 39.9])],
    ...     streets=[Street(id="ST1", name="s", district="D1")],
    ...     cells=[GridCell(id="C1", district="D1", street="ST1", center=[116.4, 39.9])],
    ...     segments=[RoadSegment(id="S1", name="Ring", district="D1", cell="C1", road_class="arterial",
    ...         length_m=800.0, free_flow_kmh=60.0, lanes=2, line=[[116.4, 39.9], [116.41, 39.9]])],
    ...     intersections=[], corridors=[], sensors=[])
    >>> traffic = pl.DataFrame({"segment_id": ["S1"], "window_start_ms": [0], "window_end_ms": [300_000],
    ...     "volume_veh": [120.0], "speed_kmh": [30.0], "occupancy_pct": [18.0], "n_readings": [5],
    ...     "tick_end_ms": [300_000]})
    >>> out = compute_vitals_batch({"traffic": traffic}, city, [300_000, 600_000])
    >>> out["segment_traffic"].select("tick_end_ms", "tti").rows()
    [(300000, 2.0)]
    >>> [(t, tpi and round(tpi, 2)) for t, tpi in out["district"].select("tick_end_ms", "tpi").rows()]
    [(300000, 7.33), (600000, None)]
    >>> per_tick = split_ticks(out, [300_000, 600_000])
    >>> per_tick[1]["segment_traffic"].height, per_tick[1]["district"].height
    (0, 1)
"""
from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import polars as pl

from brain import series
from brain.city.model import City
from brain.kernels import cases as case_kernel
from brain.kernels.cases import case_counts
from brain.kernels.freshness import freshness_counts
from brain.kernels.latest import latest_rows
from brain.kernels.groupsum import group_sums, multi_group_sums
from brain.kernels.segments import segment_figures
from brain.vitals import air, emergency, grid, health, noise, sensors, traffic, utilities
from brain.vitals.compute import (
    _POLLUTANTS,
    INPUT_SCHEMAS,
    VitalsConfig,
    _health_arrays,
    _conform,
    _nearest_cell,
    _Refs,
    _refs,
    _unit,
)

S, I64, F64 = pl.String, pl.Int64, pl.Float64
T = "tick_end_ms"
WINDOW_TABLES = ("traffic", "probe", "air_1h", "air_24h", "air_8h_o3", "noise", "utility")
HOUR_MS = grid.HOUR_MS


class _Index:
    """Per-city reference frames keyed by a small integer ``_k`` (the rank of the id, so ordering by it
    orders by id), built once per City: rows of a family are placed by gathers on ``_k``, not joins."""

    def __init__(self, refs: _Refs) -> None:
        self.segments = refs.segments.sort("segment_id").with_row_index("_k").with_columns(pl.col("_k").cast(I64))
        self.sensors = refs.sensors.sort("sensor_id").with_row_index("_k").with_columns(pl.col("_k").cast(I64))
        # id -> _k of segments and of sensors: an Enum of the ids in _k order (its physical code is _k);
        # a cast places a window table's ids faster than a join
        self.id_enums = tuple(pl.Enum(ids.to_list()) if ids.n_unique() == ids.len() and not ids.null_count() else None
                              for ids in (self.segments["segment_id"], self.sensors["sensor_id"]))
        self.id_key = pl.DataFrame([
            pl.Series("_kind", np.r_[np.zeros(self.segments.height), np.ones(self.sensors.height)], dtype=pl.Int8),
            pl.concat([self.segments["segment_id"], self.sensors["sensor_id"]]).alias("_id"),
            pl.concat([self.segments["_k"], self.sensors["_k"]]),
        ]).unique(subset=["_kind", "_id"], keep="first", maintain_order=True)  # a repeated id: its first row
        # Sensor attributes in _k order, with the noise class of the sensor's cell (null: unknown cell).
        self.sensor_places = self.sensors.select("sensor_id", "district", "cell_id").join(
            refs.cells.select("cell_id", "noise_class"), on="cell_id", how="left", maintain_order="left")
        self.sensor_utility = self.sensors.select("sensor_id", "type", "district", "cell_id", "unit", "nominal")
        # unknown cell: GB 3096's mixed zone
        self.noise_class = np.asarray([c if c is not None else "2" for c in self.sensor_places["noise_class"].to_list()], dtype=object)
        self.noise_class_series = pl.Series("noise_class", self.noise_class.tolist(), dtype=S)
        self.length_km = self.segments["length_km"].to_numpy()
        self.free_flow_kmh = self.segments["free_flow_kmh"].to_numpy()
        self.lanes = self.segments["lanes"].to_numpy()
        self.lanes_f64 = self.lanes.astype(np.float64)
        units = [(u or "").lower() if u is not None else None for u in self.sensors["unit"].to_list()]
        columns = {u: utilities.QUANTITIES.index(c) for u, c in utilities.UNIT_COLUMN.items()}
        self.unit_column = np.asarray([columns.get(u, -1) if u is not None else -1 for u in units], dtype=np.int64)
        self.district_ids = refs.districts["district"].to_list()
        self.cell_position = {c: i for i, c in enumerate(refs.cells["cell_id"].to_list())}
        self.district_position = {d: i for i, d in enumerate(self.district_ids)}
        self.segment_position = {sid: i for i, sid in enumerate(self.segments["segment_id"].to_list())}
        self.segment_district = np.asarray([*self.segments["district"].to_list(), None], dtype=object)
        cell_district = refs.cells["cell_district"].to_list()
        self.cell_district = np.asarray([*cell_district, None], dtype=object)  # the last: no cell of the city
        self.cell_district_series = pl.Series("district", [*cell_district, None], dtype=S)
        self.cell_area = np.asarray([*[{d: i for i, d in enumerate(self.district_ids)}.get(d, -1) for d in cell_district], -1],
                                    dtype=np.int64)
        position = {d: i for i, d in enumerate(self.district_ids)}
        self.segment_area = np.asarray([position.get(d, -1) for d in self.segments["district"].to_list()], dtype=np.int64)
        self.sensor_area = np.asarray([position.get(d, -1) for d in self.sensors["district"].to_list()], dtype=np.int64)
        self._edges: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def noise_limits(self, standard: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Day and night LAeq limits of each sensor's zone class (rows in ``_k`` order) and where the
        standard knows the class."""
        key = ("noise", standard)
        if key not in self._edges:
            table = noise.noise_table(standard)
            known = np.isin(self.noise_class, np.asarray(table.classes, dtype=object))
            cls = np.where(known, self.noise_class, table.classes[0])
            self._edges[key] = (noise.limit_db(cls, np.zeros(len(cls), bool), standard),
                                noise.limit_db(cls, np.ones(len(cls), bool), standard), known)
        return self._edges[key]

    def speed_edges(self, standard: str) -> tuple[np.ndarray, np.ndarray]:
        """Speed-band edges of each segment's road class (rows in ``_k`` order; NaN for a class the
        standard does not know) and where the class is unknown."""
        if standard not in self._edges:
            table = traffic.congestion_table(standard)
            rc = self.segments["road_class"].to_list()
            padded = np.vstack([table.speed_edges_kmh, np.full((1, table.speed_edges_kmh.shape[1]), np.nan)])
            rows = np.asarray([table.road_classes.index(c) if c in table.road_classes else -1 for c in rc], dtype=np.int64)
            self._edges[standard] = (padded[rows], rows < 0)
        return self._edges[standard]


def _index(city: City, refs: _Refs) -> _Index:
    cache = city.__dict__.setdefault("_indexes", {})
    if "vitals_batch_index" not in cache:
        cache["vitals_batch_index"] = _Index(refs)
    return cache["vitals_batch_index"]


class _Rows:
    """A per-window input (conformed to its schema; input order) with, as numpy, each row's tick position
    ``ti`` in the batch and key ``k`` (-1 for a row of another tick or of an unknown id)."""

    def __init__(self, frame: pl.DataFrame, ti: np.ndarray, k: np.ndarray, n_keys: int) -> None:
        self.frame, self.ti, self.k, self.n_keys = frame, ti, k, n_keys

    def latest(self, ticks: np.ndarray, max_age_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Per (tick, key) the row of the latest window ending in (tick - max_age, tick] (of equal
        ends the last row): row positions and their keys ``ti * n_keys + k``, in key order."""
        end = self.frame["window_end_ms"].to_numpy()  # float with NaN where null: no comparison holds
        if not len(end):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return latest_rows(self.ti, self.k, np.asarray(end, dtype=np.float64), ticks, int(max_age_s * 1000), self.n_keys)

    def values(self, name: str, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Column ``name`` at ``rows`` (-1: no row) as float64 and where it is not null."""
        col = self.frame.get_column(name)
        if not col.len():
            return np.full(len(rows), np.nan), np.zeros(len(rows), dtype=bool)
        at = np.maximum(rows, 0)
        if not col.null_count():  # (the common case: no null to look up)
            v = col.to_numpy()
            return (v if v.dtype == np.float64 else v.astype(np.float64))[at], rows >= 0
        v, ok = _values(col)
        return v[at], ok[at] & (rows >= 0)


def _conformed(frames: Mapping[str, pl.DataFrame], name: str) -> pl.DataFrame:
    """:func:`brain.vitals.compute._conform`, except that a frame already in shape (its columns of the
    schema have their dtypes; others may be there too) is used as it is."""
    schema, _ = INPUT_SCHEMAS[name]
    frame = frames.get(name)
    if isinstance(frame, pl.DataFrame) and frame.width:
        have = frame.schema
        if all(have.get(col) == dtype for col, dtype in schema.items()):
            return frame.rechunk() if frame.n_chunks() > 1 else frame
    return _conform(frames, name)


def _tick_positions(frames: Mapping[str, pl.DataFrame], name: str, n: int, ticks: np.ndarray, single: int | None) -> np.ndarray:
    """The position in ``ticks`` of each row's ``tick_end_ms`` (-1: not one of them)."""
    raw = frames.get(name)
    if raw is not None and n and T in raw.columns:
        tick = raw[T]
        if tick.dtype != I64:
            try:
                tick = tick.cast(I64)
            except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError):
                raise ValueError(f"window frame {name!r}: tick_end_ms must be integer epoch ms") from None
        t, t_ok = _ints(tick)
        if not len(ticks):
            return np.full(n, -1, dtype=np.int64)
        at = _tick_index(ticks, t)
        return at if t_ok.all() else np.where(t_ok, at, -1)
    if single is not None:
        return np.zeros(n, dtype=np.int64)
    if n:
        raise ValueError(f"window frame {name!r} needs a tick_end_ms column to batch more than one tick")
    return np.zeros(0, dtype=np.int64)


def _tick_index(ticks: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The position in ``ticks`` (ascending) of each value of ``t`` (-1: not a tick), looked up once
    per run of equal values (stacked tables come in tick blocks)."""
    if not len(t):
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], t[1:] != t[:-1]]))
    values = t[starts]
    at = np.minimum(np.searchsorted(ticks, values), len(ticks) - 1)
    return np.repeat(np.where(ticks[at] == values, at, -1), np.diff(np.append(starts, len(t))))


def _window_rows(frames: Mapping[str, pl.DataFrame], ix: _Index, ticks: np.ndarray, single: int | None) -> dict[str, _Rows]:
    """Every per-window input as :class:`_Rows`, the ids of each family placed by one Enum cast."""
    families = ([("traffic", "segment_id"), ("probe", "segment_id")],
                [(name, "sensor_id") for name in ("air_1h", "air_24h", "air_8h_o3", "noise", "utility")])
    out = {}
    for kind, tables in enumerate(families):
        bases = [_conformed(frames, name) for name, _ in tables]
        ids = [base.get_column(col) for base, (_, col) in zip(bases, tables) if base.height]
        k = _keys(pl.concat(ids) if len(ids) > 1 else ids[0], kind, ix) if ids else np.zeros(0, dtype=np.int64)
        n_keys = ix.segments.height if kind == 0 else ix.sensors.height
        start = 0
        for base, (name, _) in zip(bases, tables):
            n = base.height
            out[name] = _Rows(base, _tick_positions(frames, name, n, ticks, single), k[start:start + n], n_keys)
            start += n
    return out


def _keys(ids: pl.Series, kind: int, ix: _Index) -> np.ndarray:
    """The ``_k`` of each id of a family (0: segments, 1: sensors); -1 for null or unknown."""
    if not ids.len():
        return np.zeros(0, dtype=np.int64)
    enum = ix.id_enums[kind]
    if enum is not None:
        k, ok = _ints(ids.cast(enum, strict=False).to_physical())
    else:  # ids not unique in the city (an Enum needs unique names): a join on the first row of each id
        keys = pl.DataFrame([pl.Series("_kind", np.full(ids.len(), kind), dtype=pl.Int8), ids.alias("_id")])
        k, ok = _ints(keys.join(ix.id_key, on=["_kind", "_id"], how="left", maintain_order="left")["_k"])
    return np.where(ok, k, -1)


def _values(col: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """A numeric column as float64 (NaN where null) and where it is not null (a NaN value is not null)."""
    v = col.to_numpy()
    if v.dtype != np.float64:
        v = v.astype(np.float64)
    return v, series.not_null(col, v)


def _ints(col: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """An integer column as int64 (0 where null) and where it is not null."""
    if not col.null_count():
        return col.to_numpy().astype(np.int64, copy=False), np.ones(col.len(), dtype=bool)
    v = col.to_numpy()  # float64 with NaN for nulls: exact for epoch ms (< 2**53)
    ok = ~np.isnan(v)
    return np.where(ok, v, 0).astype(np.int64), ok


_SERIES = series.CONSTRUCTORS  # numpy -> Series without the public constructor's per-call checks


def _f64(name: str, v: np.ndarray, ok: np.ndarray | None = None) -> pl.Series:
    """A Float64 Series from values and where they are not null (a NaN there stays NaN)."""
    v = v if v.dtype == np.float64 else v.astype(np.float64)  # (a float64 array needs no cast in polars)
    if ok is None or ok.all():
        return _SERIES["f64"](name, v)
    if not (np.isnan(v) & ok).any():
        return _SERIES["f64"](name, np.where(ok, v, np.nan), True)
    nulls = _SERIES["f64"](name, np.full(len(v), np.nan), True)
    return _SERIES["f64"](name, v).zip_with(pl.Series(ok), nulls)


def _nulled(name: str, v: np.ndarray) -> pl.Series:
    """A Float64 Series, NaN as null."""
    return _SERIES["f64"](name, v, True)


def _i64(name: str, v: np.ndarray, ok: np.ndarray | None = None) -> pl.Series:
    """An Int64 Series from values and where they are not null."""
    if ok is None or ok.all():
        return _SERIES["i64"](name, v)
    return _SERIES["i64"](name, np.where(ok, v, 0)).set(pl.Series(~ok), None)  # (faster than a float -> Int64 cast)


def _gt0(v: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """polars' ``> 0`` of a non-null value (NaN is above every number there)."""
    with np.errstate(invalid="ignore"):
        return ok & ((v > 0) | np.isnan(v))


def _union(n: int, *key_sets: np.ndarray) -> np.ndarray:
    """The sorted union of key sets in ``range(n)`` (a full join's keys)."""
    hit = np.zeros(n, dtype=bool)
    for keys in key_sets:
        hit[keys] = True
    return np.flatnonzero(hit)


def _place(n: int, keys: np.ndarray, rows: np.ndarray, at: np.ndarray) -> np.ndarray:
    """For each key of ``at``, the row of that key (``keys`` -> ``rows``, keys in ``range(n)``); -1 where absent."""
    where = np.full(n, -1, dtype=np.int64)
    where[keys] = rows
    return where[at]


def _take(frame: pl.DataFrame, names, rows: np.ndarray) -> list[pl.Series]:
    """Columns of ``frame`` at row positions (Series gathers: no polars query)."""
    return [series.take(frame.get_column(name), rows) for name in names]


@functools.lru_cache(maxsize=256)
def _choices(values: tuple) -> pl.Series:
    return pl.Series(list(values), dtype=S)


def _frame(cols: Mapping[str, pl.Series]) -> pl.DataFrame:
    """A frame of named columns (from a list of Series: a dict costs polars a conversion per column)."""
    return series.frame([s if s.name == name else s.alias(name) for name, s in cols.items()])


def _pick(values: tuple, idx: np.ndarray) -> pl.Series:
    """String values by index (the last entry of ``values`` may be None)."""
    return series.take(_choices(values), idx)


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
    for table, a, avg, pollutants in ((tables[0], at[0], "1h", _POLLUTANTS), (tables[1], at[1], "24h", [p for p in _POLLUTANTS if p != "o3"])):
        for p in pollutants:
            conc[f"{p}_{avg}_{_unit(p)}"] = (*table.values(f"{p}_{_unit(p)}", a), F64)
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


def _cell_district(ix: _Index, cell: np.ndarray) -> pl.Series:
    """The district of cell positions (-1: not a cell of the city -> null)."""
    return series.take(ix.cell_district_series, np.where(cell < 0, len(ix.cell_district) - 1, cell))


class _IncidentState:
    """Incident rows per tick, as numpy, in (incident, tick) order: those reported by the tick and still
    active at it or reported within the lookback, each placed in its segment's district, else in the
    district of the nearest grid cell centre; with the masks and delays of
    :func:`brain.vitals.emergency.incident_metrics` as of each row's tick."""

    def __init__(self, frames, ix: _Index, refs: _Refs, ticks: np.ndarray, cfg: VitalsConfig) -> None:
        inc = _conformed(frames, "incidents")
        seg_district = ix.segment_district[_lookup(inc["segment_id"], ix.segment_position)]
        # The nearest cell is a property of the incident, not of the tick: computed once.
        near = _nearest_cell(inc["lon"].to_numpy(), inc["lat"].to_numpy(), refs.cells)
        district = np.where(seg_district != None, seg_district, ix.cell_district[near])  # noqa: E711 (elementwise)
        rep, rep_ok = _ints(inc["reported_ms"])
        closed, closed_ok = _ints(inc["closed_ms"])
        lookback_ms = int(cfg.incident_lookback_s * 1000)
        t = ticks[:, None]
        active = ~closed_ok | (closed > t)
        keep = rep_ok & (rep <= t) & (active | (rep > t - lookback_ms))
        row, ti = np.nonzero(keep.T)  # (incident, tick) order, as a cross join of incidents and ticks
        self.ti, self.tick = ti, ticks[ti]
        area = np.asarray([ix.district_position.get(d, -1) for d in district.tolist()], dtype=np.int64)
        self.area = area[row]
        self.district = pl.Series("district", district.tolist(), dtype=S)  # per incident
        self.district_code, self.districts = _codes(self.district)
        self.type_code, self.types = _codes(inc["type"])
        self.type_series, self.severity_series = inc["type"], inc["severity"]
        sev, sev_ok = _ints(inc["severity"])
        self.row = row
        t = self.tick
        rep, dispatched_ms, on_scene_ms = rep[row], *(_ints(inc[c]) for c in ("dispatched_ms", "on_scene_ms"))
        (disp, disp_ok), (scene, scene_ok) = ((v[row], ok[row]) for v, ok in (dispatched_ms, on_scene_ms))
        self.severity, self.severity_ok = sev[row], sev_ok[row]
        self.active = rep <= t  # (reported: kept rows only)
        self.active &= ~closed_ok[row] | (closed[row] > t)
        self.recent = (rep > t - lookback_ms) & (rep <= t)
        self.dispatched = self.recent & disp_ok & (disp <= t)
        self.arrived = self.dispatched & scene_ok & (scene <= t)
        # polars divides by a literal as a multiply by its reciprocal
        self.dispatch_delay_s = (disp - rep).astype(np.float64) * (1.0 / 1000.0)
        self.arrival_delay_s = (scene - disp).astype(np.float64) * (1.0 / 1000.0)
        self.units = _ints(inc["units"])[0][row]  # a null count adds nothing, as polars' sum

    def figures(self, rows: np.ndarray, group: np.ndarray, n_groups: int, p90: bool = True) -> dict[str, np.ndarray]:
        """:data:`brain.vitals.emergency.METRIC_COLUMNS` per group of the rows ``rows`` (in that order),
        NaN for a delay no row of the group has (without the p90 delays unless ``p90``)."""
        act = self.active[rows]
        out = {"active_incidents": np.bincount(group[act], minlength=n_groups)}
        sev, sev_ok = self.severity[rows], self.severity_ok[rows]
        for s in (1, 2, 3, 4):
            out[f"active_sev{s}"] = np.bincount(group[act & sev_ok & (sev == s)], minlength=n_groups)
        out["active_units"] = np.bincount(group[act], weights=self.units[rows][act], minlength=n_groups).round().astype(np.int64)
        out["reported_recent"] = np.bincount(group[self.recent[rows]], minlength=n_groups)
        for name, mask, delay in (("dispatch", self.dispatched, self.dispatch_delay_s), ("arrival", self.arrived, self.arrival_delay_s)):
            m, v = mask[rows], delay[rows]
            total, n = group_sums(v, m, group, n_groups)
            with np.errstate(invalid="ignore", divide="ignore"):
                out[f"mean_{name}_delay_s"] = np.where(n > 0, total / n, np.nan)
            if p90:
                out[f"p90_{name}_delay_s"] = _quantile_linear(v[m], group[m], n, 0.9)
        return out

    def table(self) -> pl.DataFrame:
        """The ``emergency`` table: :func:`brain.vitals.emergency.incident_metrics` by district, type and
        severity per tick, in (tick, district, type, severity) order (nulls first, as polars sorts)."""
        sev, sev_ok = _ints(self.severity_series)
        distinct_sev = np.unique(sev[sev_ok])
        has_null = int(not sev_ok.all())
        sev_code = np.where(sev_ok, np.searchsorted(distinct_sev, sev) + has_null, 0)
        n_t, n_s = max(self.types.len(), 1), len(distinct_sev) + has_null
        per_incident = (self.district_code * n_t + self.type_code) * max(n_s, 1) + sev_code
        n_keys = max(self.districts.len(), 1) * n_t * max(n_s, 1)
        keys, group = np.unique(self.ti * n_keys + per_incident[self.row], return_inverse=True)
        group = group.reshape(-1)
        figures = self.figures(np.arange(len(self.ti)), group, len(keys))
        first = np.zeros(len(keys), dtype=np.int64)  # a row of each group: its district, type, severity, tick
        first[group[::-1]] = np.arange(len(group))[::-1]
        at = self.row[first]
        cols = [series.take(self.district, at), series.take(self.type_series, at), series.take(self.severity_series, at)]
        for name in emergency.METRIC_COLUMNS:
            v = figures[name]
            cols.append(_nulled(name, v) if v.dtype == np.float64 else _i64(name, v))
        cols.append(_i64(T, self.tick[first]))
        return series.frame(cols)


def _quantile_linear(values: np.ndarray, group: np.ndarray, counts: np.ndarray, q: float) -> np.ndarray:
    """Per group, polars' ``quantile(q, "linear")`` of its values (NaN: no value): index ``(n - 1) q`` in
    the sorted values, interpolated as polars does (``frac * (upper - lower) + lower``)."""
    out = np.full(len(counts), np.nan)
    has = np.flatnonzero(counts > 0)
    if not len(has):
        return out
    order = np.lexsort((values, group))
    v = values[order]
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])[has]
    f_idx = (counts[has] - 1).astype(np.float64) * q
    idx = f_idx.astype(np.int64)
    top = np.ceil(f_idx).astype(np.int64)
    lower = v[start + idx]
    upper = v[start + np.minimum(idx + 1, counts[has] - 1)]
    with np.errstate(invalid="ignore"):
        mixed = (f_idx - idx) * (upper - lower) + lower
    out[has] = np.where((idx == top) | (lower == upper), lower, mixed)
    return out


class _SensorGroups:
    """The registry grouped by (district, family), built once per City: the group of each sensor."""

    def __init__(self, refs: _Refs) -> None:
        reg = refs.sensors.with_row_index("_i")
        groups = reg.select("district", "family").unique().sort("district", "family", nulls_last=False)
        self.groups = groups.with_row_index("_g").with_columns(pl.col("_g").cast(I64))
        self.index = pl.DataFrame({"sensor_id": refs.sensors["sensor_id"], "_i": np.arange(refs.sensors.height, dtype=np.int64)})
        g = reg.join(self.groups, on=["district", "family"], how="left", nulls_equal=True).sort("_i")["_g"].to_numpy()
        self.group_of = g.astype(np.int64)
        n_groups = self.groups.height
        self.registered = np.bincount(self.group_of, minlength=n_groups).astype(np.int64)
        self.metadata = np.bincount(self.group_of, weights=refs.sensors["metadata_complete"].cast(F64).to_numpy(), minlength=n_groups)
        self.types = refs.sensors["type"]
        self._intervals: dict[tuple, np.ndarray] = {}
        self.last_lookup: tuple[pl.Series | None, np.ndarray] = (None, np.zeros(0, dtype=np.int64))
        position = {d: i for i, d in enumerate(refs.districts["district"].to_list())}
        self.group_area = np.asarray([position.get(d, -1) for d in self.groups["district"].to_list()], dtype=np.int64)

    def thresholds_ms(self, cfg: VitalsConfig) -> tuple[np.ndarray, np.ndarray]:
        """Each sensor's fresh and silent age limits in ms, as :func:`brain.vitals.sensors.freshness`
        computes them (factor x interval in ms)."""
        key = ("thresholds", cfg.fresh_factor, cfg.silent_factor, *sorted(cfg.expected_interval_s.items()))
        if key not in self._intervals:
            if not 0 < cfg.fresh_factor <= cfg.silent_factor:
                raise ValueError(f"need 0 < fresh_factor <= silent_factor, got {cfg.fresh_factor}, {cfg.silent_factor}")
            interval_ms = self.interval(cfg) * 1000.0
            if np.any(~(interval_ms > 0)):
                raise ValueError("expected reporting intervals must be > 0")
            self._intervals[key] = (cfg.fresh_factor * interval_ms, cfg.silent_factor * interval_ms)
        return self._intervals[key]

    def interval(self, cfg: VitalsConfig) -> np.ndarray:
        """Each sensor's expected reporting interval in seconds (3600 for a type the config does not name)."""
        key = tuple(sorted(cfg.expected_interval_s.items()))
        if key not in self._intervals:
            self._intervals[key] = self.types.replace_strict(cfg.expected_interval_s, default=3600.0, return_dtype=F64).to_numpy()
        return self._intervals[key]


def _registry_positions(ids: pl.Series, sg: _SensorGroups, tick_of: np.ndarray | None) -> np.ndarray:
    """The registry position of each sensor id (-1: not registered). A stacked last-seen table that
    repeats one block of ids per tick (as the pipeline builds it) is looked up once per block."""
    n = ids.len()
    block = n
    if tick_of is not None and n:
        change = np.flatnonzero(tick_of != tick_of[0])
        block = int(change[0]) if len(change) else n
    nulls = ids.null_count()  # (a null compares as neither equal nor unequal: no fast path then)
    if 0 < block < n and n % block == 0 and not nulls:
        first = ids.slice(0, block)
        if (ids == pl.concat([first] * (n // block))).all():
            return np.tile(_registry_positions(first, sg, None), n // block)
    last_ids, last_positions = sg.last_lookup
    if last_ids is not None and last_ids.len() == n and not nulls and (last_ids == ids).all():
        return last_positions  # the pipeline's registry block, as in the previous call
    k, ok = _ints(ids.to_frame("sensor_id").join(sg.index, on="sensor_id", how="left", maintain_order="left")["_i"])
    positions = np.where(ok, k, -1)
    if not nulls:
        sg.last_lookup = (ids, positions)
    return positions


def _sensor_groups(city: City, refs: _Refs) -> _SensorGroups:
    cache = city.__dict__.setdefault("_indexes", {})
    if "vitals_batch_registry" not in cache:
        cache["vitals_batch_registry"] = _SensorGroups(refs)
    return cache["vitals_batch_registry"]


def _sensor_counts(frames, sg: _SensorGroups, tick_arr: np.ndarray, cfg: VitalsConfig) -> dict[str, np.ndarray]:
    """Per (tick, district, family) group, as (ticks x groups) arrays: the registry's freshness counts
    (``registered, fresh, stale, silent, never, known, metadata_complete``) of
    :func:`brain.vitals.sensors.freshness` as of each tick, counted in one kernel pass
    (:mod:`brain.kernels.freshness`)."""
    k, n_groups = len(tick_arr), sg.groups.height
    if "sensor_last_seen" not in frames:
        # No last-seen table at all: freshness is unknown (null shares), not "everything silent".
        counts = np.zeros((k, n_groups, 4), dtype=np.int64)
        known = counts[:, :, 0]
    else:
        raw = frames["sensor_last_seen"]
        seen = _conformed(frames, "sensor_last_seen")
        stacked = T in raw.columns and seen.height > 0
        tick_of = _ints(raw[T] if raw[T].dtype == I64 else raw[T].cast(I64))[0] if stacked else None
        cols = _registry_positions(seen["sensor_id"], sg, tick_of)
        vals = seen["last_seen_ms"].cast(F64).to_numpy()
        if stacked:
            rows = _tick_index(tick_arr, tick_of)
        else:  # one table for every tick
            rows, cols, vals = np.repeat(np.arange(k), len(cols)), np.tile(cols, k), np.tile(vals, k)
        fresh_ms, silent_ms = sg.thresholds_ms(cfg)
        counts = freshness_counts(rows.astype(np.int64), cols.astype(np.int64), np.ascontiguousarray(vals, dtype=np.float64), k,
                                  tick_arr.astype(np.float64), fresh_ms, silent_ms, sg.group_of, n_groups)
        known = counts.sum(axis=2)
    return {
        "registered": np.tile(sg.registered, (k, 1)), "fresh": counts[:, :, 0], "stale": counts[:, :, 1],
        "silent": counts[:, :, 2], "never": counts[:, :, 3], "known": known,
        "metadata_complete": np.tile(sg.metadata, (k, 1)),
    }


# --- state tables as of each tick (numpy: ticks x rows) ----------------------------------------------
def _codes(values: pl.Series) -> tuple[np.ndarray, pl.Series]:
    """Dense codes of a string column in sorted order (nulls first, as polars' ``sort`` orders them:
    code point order is UTF-8 byte order) and the sorted distinct values."""
    arr = values.to_numpy()
    present = arr != None  # noqa: E711 (elementwise)
    distinct, inverse = np.unique(arr[present].astype(str), return_inverse=True)
    has_null = not present.all()
    codes = np.zeros(len(arr), dtype=np.int64)
    codes[present] = inverse.reshape(-1) + has_null
    return codes, pl.Series(values.name, [None] * has_null + distinct.tolist(), dtype=S)


def _lookup(values: pl.Series, table: Mapping[str, int]) -> np.ndarray:
    """The position of each string in ``table`` (-1 for null or unknown)."""
    arr = values.to_numpy()
    present = arr != None  # noqa: E711 (elementwise)
    out = np.full(len(arr), -1, dtype=np.int64)
    if present.any():
        distinct, inverse = np.unique(arr[present].astype(str), return_inverse=True)
        out[present] = np.asarray([table.get(v, -1) for v in distinct.tolist()], dtype=np.int64)[inverse.reshape(-1)]
    return out


def _group_counts(masks: Mapping[str, np.ndarray], group: np.ndarray, n_groups: int,
                  weights: Mapping[str, tuple[str, np.ndarray]] = {}) -> dict[str, np.ndarray]:
    """Per (tick, group): how many rows of each (ticks x rows) mask hold, and the sums of weights over
    a mask (``name: (mask name, ticks x rows values)``). Rows of group -1 count nowhere."""
    k, n = next(iter(masks.values())).shape
    flat = (np.arange(k, dtype=np.int64)[:, None] * n_groups + group[None, :])
    inside = np.broadcast_to(group >= 0, (k, n))
    out = {name: np.bincount(flat[m & inside], minlength=k * n_groups).reshape(k, n_groups) for name, m in masks.items()}
    for name, (mask, values) in weights.items():
        m = masks[mask] & inside
        # Integer-valued ms durations: the float sum is exact in any order (below 2**53).
        out[name] = np.bincount(flat[m], weights=values[m], minlength=k * n_groups).reshape(k, n_groups)
    return out


class _CaseState:
    """Cases as of each tick (a case exists from ``reported_ms``; a close after the tick is still
    open): the counts of :func:`brain.vitals.grid.case_metrics` per (tick, group) by a kernel
    (:mod:`brain.kernels.cases`)."""

    def __init__(self, cases: pl.DataFrame, area: np.ndarray, ticks: np.ndarray, cfg: VitalsConfig) -> None:
        self.frame, self.area, self.ticks = cases, area, ticks
        # Writable arrays always: a column without nulls comes zero-copy (read-only) from polars, and
        # numba compiles (or loads) the kernel once more for a read-only signature, in the middle of a run.
        self.times = [a if a.flags.writeable else a.copy() for col in ("reported_ms", "closed_ms", "deadline_ms")
                      for a in _ints(cases[col])]
        self.lookback_ms = int(cfg.case_lookback_s * 1000)

    def metrics(self, group: np.ndarray, n_groups: int) -> dict[str, np.ndarray]:
        """(ticks x groups) arrays of :data:`brain.vitals.grid.METRIC_COLUMNS` and ``exists`` (cases in the group)."""
        counts, duration = case_counts(*self.times, self.ticks, self.lookback_ms, HOUR_MS, group.astype(np.int64), n_groups)
        c = {name: counts[:, :, j] for j, name in enumerate(case_kernel.NAMES)}
        n = c["closed_recent"]
        with np.errstate(invalid="ignore", divide="ignore"):
            c["on_time_closure_rate"] = np.where(n > 0, c["closed_on_time"] / n, np.nan)
            # The mean in ms, then ms -> h (as case_metrics does).
            c["mean_time_to_close_h"] = np.where(n > 0, duration / n, np.nan) / HOUR_MS
        return c

    def table(self, column: str, ticks: np.ndarray, nulls: bool) -> pl.DataFrame:
        """:func:`brain.vitals.grid.case_metrics` by ``column`` per tick, in (tick, value) order (only the
        groups with a case at the tick; null values a group of their own when ``nulls``, else dropped)."""
        codes, distinct = _codes(self.frame[column])
        if not nulls and distinct.null_count():
            codes, distinct = codes - 1, distinct[1:]  # the null group (code 0) is dropped
        m = self.metrics(codes, distinct.len())
        ti, g = np.nonzero(m["exists"] > 0)
        cols = {column: series.take(distinct, g)}
        for name in grid.METRIC_COLUMNS:
            v = m[name][ti, g]
            cols[name] = _nulled(name, v) if v.dtype == np.float64 else _i64(name, v)
        cols[T] = _i64(T, ticks[ti])
        return _frame(cols)


class _OutageState:
    """Outages as of each tick: live from ``started_ms`` until an ``ended_ms`` after the tick."""

    def __init__(self, outages: pl.DataFrame, area: np.ndarray, district: pl.Series, ticks: np.ndarray) -> None:
        self.frame, self.area, self.district = outages, area, district
        start, start_ok = _ints(outages["started_ms"])
        end, end_ok = _ints(outages["ended_ms"])
        t = ticks[:, None]
        self.live = start_ok & (start <= t) & (~end_ok | (end > t))
        customers, _ = _ints(outages["customers"])  # a null count adds nothing, as polars' sum
        self.customers = np.broadcast_to(customers, self.live.shape)

    def counts(self, group: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
        c = _group_counts({"live": self.live}, group, n_groups)["live"]
        flat = (np.arange(self.live.shape[0])[:, None] * n_groups + group[None, :])
        m = self.live & (group >= 0)[None, :]
        cust = np.bincount(flat[m], weights=self.customers[m], minlength=c.size).reshape(c.shape)
        return c, np.rint(cust).astype(np.int64)

    def table(self, ticks: np.ndarray) -> pl.DataFrame:
        """:func:`brain.vitals.utilities.active_outages` by district, utility per tick, in (tick, district,
        utility) order (live groups only)."""
        d_code, districts = _codes(self.district)
        u_code, utils = _codes(self.frame["utility"])
        n_u = max(utils.len(), 1)
        groups, code = np.unique(d_code * n_u + u_code, return_inverse=True)
        n, cust = self.counts(code.reshape(-1).astype(np.int64), len(groups))
        ti, g = np.nonzero(n > 0)
        return _frame({
            "district": series.take(districts, groups[g] // n_u), "utility": series.take(utils, groups[g] % n_u),
            "active_outages": _i64("active_outages", n[ti, g]), "customers_affected": _i64("customers_affected", cust[ti, g]),
            T: _i64(T, ticks[ti]),
        })


def _shares(c: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Registry shares of :func:`brain.vitals.compute._sensor_aggs` from summed freshness counts (NaN: null)."""
    known = c["known"]
    with np.errstate(invalid="ignore", divide="ignore"):
        def share(num: np.ndarray) -> np.ndarray:
            return np.where(known > 0, num / known, np.nan)

        return {
            "fresh_share": share(c["fresh"]), "stale_share": share(c["stale"]), "silent_share": share(c["silent"] + c["never"]),
            "reported_share": share(known - c["never"]), "metadata_complete_share": c["metadata_complete"] / c["registered"],
        }


def _sensor_health(counts: Mapping[str, np.ndarray], sg: "_SensorGroups", ticks: np.ndarray) -> pl.DataFrame:
    """The ``sensor_health`` table: per (tick, district, family), in that order."""
    k, n_groups = len(ticks), sg.groups.height
    g = np.tile(np.arange(n_groups), k)
    cols = {"district": series.take(sg.groups["district"], g), "family": series.take(sg.groups["family"], g)}
    cols.update({name: _i64(name, counts[name].reshape(-1)) for name in ("registered", *sensors.FRESHNESS_NAMES)})
    cols.update({name: _nulled(name, v.reshape(-1)) for name, v in _shares(counts).items()})
    cols["window_end_ms"] = cols[T] = _i64(T, np.repeat(ticks, n_groups))
    return _frame(cols)


# --- areas (districts and the whole city) -----------------------------------------------------------
class _AreaGrid:
    """The (tick, area) rows of the district and city tables: row ``_r = tick position * A + area``,
    the areas being the city's districts in order, then the city (``A`` = districts + 1)."""

    def __init__(self, ticks: np.ndarray, ix: _Index) -> None:
        self.ticks = ticks
        self.n_districts = len(ix.district_ids)
        self.n_areas = self.n_districts + 1
        self.n_rows = len(ticks) * self.n_areas
        self.district_position = ix.district_position
        self.district_ids = ix.district_ids
        self.area_position = {**ix.district_position, "__city__": self.n_districts}

    def rows(self, ti: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row (tick position ``ti``, district position ``a``) twice: in its district (if any) and in
        the city. Row positions (input order kept within each area) and their ``_r``."""
        placed = np.flatnonzero(a >= 0)
        rows = np.concatenate([placed, np.arange(len(a))])
        r = np.concatenate([ti[placed] * self.n_areas + a[placed], ti * self.n_areas + self.n_districts])
        return rows, r

    def spread(self, by_district: np.ndarray, city: np.ndarray) -> np.ndarray:
        """(ticks x districts) and (ticks x 1) figures as one value per grid row."""
        return np.concatenate([by_district, city], axis=1).reshape(-1)

    def sums(self, family: _Family, terms: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per grid row, the sums (Kahan, in row order: polars' grouped sums) and counts of the terms
        ``(values, where summed)`` over the family's rows, each row in its district (if any) and in
        the city; and which grid rows have a row at all. Sums and counts are (grid rows x terms)."""
        n_d, n_areas = self.n_districts, self.n_areas
        groups = np.empty((len(family.ti), 2), dtype=np.int64)
        groups[:, 0] = np.where(family.area >= 0, family.ti * n_areas + family.area, -1)
        groups[:, 1] = family.ti * n_areas + n_d
        values = np.empty((len(terms), len(family.ti)))
        ok = np.empty((len(terms), len(family.ti)), dtype=bool)
        for j, (v, where) in enumerate(terms):
            values[j], ok[j] = v, where
        total, count = multi_group_sums(values, ok, groups, self.n_rows)
        present = np.zeros(self.n_rows, dtype=bool)
        present[groups[:, 1]] = True
        present[groups[:, 0][groups[:, 0] >= 0]] = True
        return total, count, present

    def plain_figures(self, *requests) -> list[dict[str, np.ndarray]]:
        """Sums, counts and maxima of per-row terms of several families per grid row. A request is
        ``(family, {term: (values, where not null, dtype)}, {term: "sum" | "count" | "max" or a tuple of
        them})``; the answer per request has ``"term:how"`` -> one value per grid row (NaN for a float
        where the area has no row, 0 for a count).

        Maxima and sums of booleans are exact in numpy. Float sums are polars' (one eager group-by per
        family), and polars picks its summation by the shape of the query and the frame (compensated
        in row order, or plain): the one-window formulation's aggregations took them with their
        counts or means, so a float sum asked with its count is taken with it, and one asked alone
        alone, as the stacked aggregations before this one did."""
        answers = []
        for family, terms, hows in requests:
            rows, r = self.rows(family.ti, family.area)
            got, polars_aggs = {}, {}
            for term, how in hows.items():
                values, ok, dtype = terms[term]
                ok_r = ok[rows]
                asked = (how,) if isinstance(how, str) else how
                for h in asked:
                    if h == "sum" and dtype == pl.Boolean:
                        got[f"{term}:{h}"] = np.bincount(r[ok_r & (values[rows] != 0)], minlength=self.n_rows)
                    elif h == "count" and "sum" not in asked:
                        got[f"{term}:{h}"] = np.bincount(r[ok_r], minlength=self.n_rows)
                    elif h == "max":
                        full = np.full(self.n_rows, np.nan)
                        np.fmax.at(full, r[ok_r], values[rows][ok_r])
                        got[f"{term}:{h}"] = full
                    else:
                        polars_aggs.setdefault(term, []).append(h)
            if polars_aggs:
                total, count, present = self.sums(family, [terms[term][:2] for term in polars_aggs])
                for j, (term, hs) in enumerate(polars_aggs.items()):
                    for h in hs:  # an area without rows: NaN
                        got[f"{term}:{h}"] = count[:, j] if h == "count" else np.where(present, total[:, j], np.nan)
            answers.append(got)
        return answers


_ZERO_COLS = ("cases_new_last_hour", "cases_open", "cases_overdue", "outages_active", "outage_customers", "incidents_active",
              "incidents_active_sev1", "incidents_active_sev2", "incidents_active_sev3", "incidents_active_sev4",
              "noise_sensors", "sensors_registered")
AREA_COLUMNS: tuple[str, ...] = (
    "district", "name", "window_end_ms",
    "tpi", "tpi_level", "tpi_level_name", "tti", "mean_speed_kmh", "congested_km_share", "vkm", "road_km_observed",
    "aqi", "aqi_level", "aqi_category_zh", "aqi_colour_hex", "primary_pollutant",
    "noise_sensors", "noise_laeq_db", "noise_within_limit_share", "noise_max_exceedance_db",
    "cases_new_last_hour", "cases_open", "cases_overdue", "cases_on_time_rate", "cases_mean_time_to_close_h",
    "utility_within_tolerance_share", "utility_max_abs_deviation_pct", "outages_active", "outage_customers",
    "incidents_active", "incidents_active_sev1", "incidents_active_sev2", "incidents_active_sev3", "incidents_active_sev4",
    "mean_dispatch_delay_s", "mean_arrival_delay_s",
    "sensors_registered", "sensors_fresh_share", "sensors_silent_share", "registry_reported_share", "registry_metadata_share",
    *[f"score_{k}" for k in health.SUBSCORES], "health_index",
)


def _traffic_area(seg: _Family, grid_ix: _AreaGrid, cfg: VitalsConfig) -> dict[str, np.ndarray]:
    """:func:`brain.vitals.traffic.network_aggregations` of the segment rows per grid row (NaN where
    an area has no segment row): the same filtered sums (taken in row order within each (tick, area)
    as polars' grouped sums take them, see :mod:`brain.kernels.groupsum`) and the same ratios."""
    col = seg.columns
    w, w_ok = col["vkm"][:2]
    w_pos = _gt0(w, w_ok)
    terms = []
    with np.errstate(invalid="ignore", divide="ignore"):
        for name in ("tpi", "tti"):  # vehicle-km weighted means
            v, v_ok = col[name][:2]
            ok = v_ok & ~np.isnan(v) & w_pos
            terms += [(v * w, ok), (w, ok)]
        speed, speed_ok = col["speed_kmh"][:2]
        sp_ok = _gt0(speed, speed_ok) & w_pos
        terms += [(w, sp_ok), (w / speed, sp_ok)]
    length = col["length_km"][0]
    level = col["congestion_level"][0]
    known = level > 0
    terms += [(length, known), (length, known & (level >= cfg.congested_min_level)), (np.where(w_ok, w, 0.0), np.ones(len(w), dtype=bool))]
    total, _, present = grid_ix.sums(seg, terms)
    out = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        out["tpi"], out["tti"] = total[:, 0] / total[:, 1], total[:, 2] / total[:, 3]
        out["mean_speed_kmh"] = total[:, 4] / total[:, 5]
        known_km = total[:, 6]
        out["congested_km_share"] = np.where(known_km > 0, total[:, 7] / known_km, np.nan)
    out["vkm"], out["road_km_observed"] = total[:, 8], known_km
    return {name: np.where(present, v, np.nan) for name, v in out.items()}


def _incident_area(incidents: _IncidentState, grid_ix: _AreaGrid) -> dict[str, np.ndarray]:
    """:meth:`_IncidentState.figures` per grid row: the incident rows in their district (if any), then
    all of them in the city."""
    rows, r = grid_ix.rows(incidents.ti, incidents.area)
    return incidents.figures(rows, r, grid_ix.n_rows, p90=False)  # (the area tables have no p90)


def _area_tables(seg, air_st, noise_st, util_st, outages: _OutageState, cases: _CaseState, incidents: _IncidentState,
                 status: Mapping[str, np.ndarray], sg: "_SensorGroups", grid_ix: _AreaGrid, refs: _Refs, city: City,
                 cfg: VitalsConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The district and city tables: per (tick, area) the families' figures, the health scores and the
    index. Columns are built as numpy over the grid (NaN: null), then cut into the two tables."""
    k, n_d, n_areas = len(grid_ix.ticks), grid_ix.n_districts, grid_ix.n_areas
    cols: dict[str, np.ndarray] = {}
    # Traffic: traffic.network_aggregations over the segment table, per (tick, district) and per tick,
    # the very queries of the one-window formulation (their float sums are polars', whose algorithm
    # depends on the query's shape and the frame's size).
    cols.update(_traffic_area(seg, grid_ix, cfg))
    # Air, noise, utilities and incidents: plain per-row terms (numpy, exact) whose sums, counts and
    # maxima are taken per grid row; the ratios are then taken in numpy (compute._area_figures).
    air_terms = {name: (x, ok, F64) for name, (x, ok, _) in air_st.columns.items()}
    laeq, laeq_ok, _ = noise_st.columns["laeq_db"]
    exceed, exceed_ok, _ = noise_st.columns["exceedance_db"]
    with np.errstate(invalid="ignore", over="ignore"):
        # polars' pow of a divide by a literal (a multiply by its reciprocal), as the one-window figure
        energy = np.where(laeq_ok, 10.0 ** (laeq * (1.0 / 10.0)), np.nan)
    noise_terms = {"_energy": (energy, laeq_ok, F64), "_le0": ((exceed <= 0).astype(np.float64), laeq_ok & exceed_ok, pl.Boolean),
                   "_exceed": (exceed, exceed_ok, F64)}
    within, within_ok, _ = util_st.columns["within_tolerance"]
    dev, dev_ok, _ = util_st.columns["deviation_pct"]
    util_terms = {"_within": (within, within_ok, pl.Boolean), "_absdev": (np.abs(dev), dev_ok, F64)}
    a, n, u = grid_ix.plain_figures(
        (air_st, air_terms, {c: ("sum", "count") for c in air_terms}),
        (noise_st, noise_terms, {"_energy": ("sum", "count"), "_le0": ("sum", "count"), "_exceed": "max"}),
        (util_st, util_terms, {"_within": ("sum", "count"), "_absdev": "max"}),
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        air_means = {c: np.where(a[f"{c}:count"] > 0, a[f"{c}:sum"] / a[f"{c}:count"], np.nan) for c in air_terms}
        cols["noise_sensors"] = n["_energy:count"].astype(np.int64)
        mean_energy = np.where(n["_energy:count"] > 0, n["_energy:sum"] / n["_energy:count"], np.nan)
        cols["noise_laeq_db"] = 10.0 * (np.log(mean_energy) / np.log(10.0))  # polars' log10: ln(x) / ln(10)
        cols["noise_within_limit_share"] = np.where(n["_le0:count"] > 0, n["_le0:sum"] / n["_le0:count"], np.nan)
        cols["noise_max_exceedance_db"] = n["_exceed:max"]
        cols["utility_within_tolerance_share"] = np.where(u["_within:count"] > 0, u["_within:sum"] / u["_within:count"], np.nan)
        cols["utility_max_abs_deviation_pct"] = u["_absdev:max"]
    air_area = air._aqi_columns(air_means, "hourly",
                                cfg.aqi_standard, cfg.pm_basis, only=("aqi", "level", "category_zh", "colour_hex", "primary_pollutant"))
    cols["aqi"] = air_area["aqi"].to_numpy()
    for name, out in (("level", "aqi_level"), ("category_zh", "aqi_category_zh"), ("colour_hex", "aqi_colour_hex"),
                      ("primary_pollutant", "primary_pollutant")):
        cols[out] = air_area[name]  # strings stay polars: gathered per table
    # Incidents: emergency.incident_metrics per (tick, area) by the one-window formulation's query
    e = _incident_area(incidents, grid_ix)
    cols["incidents_active"] = e["active_incidents"]
    cols.update({f"incidents_active_sev{s}": e[f"active_sev{s}"] for s in (1, 2, 3, 4)})
    cols["mean_dispatch_delay_s"], cols["mean_arrival_delay_s"] = e["mean_dispatch_delay_s"], e["mean_arrival_delay_s"]

    def per_area(fn, group: np.ndarray):
        return fn(group, n_d), fn(np.zeros(len(group), dtype=np.int64), 1)

    by_d, whole = per_area(cases.metrics, cases.area)
    for name, out in (("new_last_hour", "cases_new_last_hour"), ("open_backlog", "cases_open"), ("overdue", "cases_overdue"),
                      ("on_time_closure_rate", "cases_on_time_rate"), ("mean_time_to_close_h", "cases_mean_time_to_close_h")):
        cols[out] = grid_ix.spread(by_d[name], whole[name])
    (n_out_d, cust_d), (n_out_c, cust_c) = per_area(outages.counts, outages.area)
    cols["outages_active"], cols["outage_customers"] = grid_ix.spread(n_out_d, n_out_c), grid_ix.spread(cust_d, cust_c)
    # Registry figures: the (district, family) groups' counts summed per area (null for an area without sensors).
    onehot = (sg.group_area[:, None] == np.arange(n_d)[None, :]).astype(np.int64)
    has = grid_ix.spread(np.broadcast_to(onehot.sum(axis=0) > 0, (k, n_d)), np.full((k, 1), sg.groups.height > 0))
    summed = {name: grid_ix.spread(v @ onehot if v.dtype != np.float64 else v @ onehot.astype(np.float64), v.sum(axis=1, keepdims=True))
              for name, v in status.items()}
    shares = _shares(summed)
    cols["sensors_registered"] = summed["registered"]
    for name, out in (("fresh_share", "sensors_fresh_share"), ("silent_share", "sensors_silent_share"),
                      ("reported_share", "registry_reported_share"), ("metadata_complete_share", "registry_metadata_share")):
        cols[out] = np.where(has, shares[name], np.nan)

    def arr(name: str) -> np.ndarray:
        v = cols[name]
        return v if v.dtype == np.float64 else v.astype(np.float64)

    h = _health_arrays(arr, grid_ix.n_rows, city, cfg)
    lvl = h.pop("tpi_level")
    cols["tpi_level"] = np.where(lvl == 0, np.nan, lvl)  # 0: unknown -> null
    cols["tpi_level_name"] = _pick(tuple(traffic.tpi_level_names(np.arange(lvl.max(initial=0) + 1), cfg.congestion_standard)), lvl)
    cols.update(h)
    cols[T] = cols["window_end_ms"] = np.repeat(grid_ix.ticks, n_areas)
    area_of_row = np.tile(np.arange(n_areas), k)
    cols["name"] = _pick((*refs.districts["name"].to_list(), city.name), area_of_row)
    cols["district"] = _pick((*refs.districts["district"].to_list(), None), area_of_row)

    # The district rows and the city rows of every column, cut from the grid as numpy (strings
    # gathered) before any Series is made: no gather of a whole frame twice.
    grid_rows = np.arange(grid_ix.n_rows).reshape(k, n_areas)
    tables = []
    for rows in (grid_rows[:, :n_d].reshape(-1), grid_rows[:, n_d]):
        columns = []
        for name in (*AREA_COLUMNS, T):
            v = cols[name]
            if name in _AREA_STRINGS:
                columns.append(series.take(v, rows).alias(name))
                continue
            v = v[rows]
            if name in _AREA_INTS:
                columns.append(_i64(name, np.where(np.isnan(v), 0, v).astype(np.int64), ~np.isnan(v)) if v.dtype.kind == "f" else _i64(name, v))
            else:
                columns.append(_nulled(name, v))
        tables.append(series.frame(columns))
    return tables[0], tables[1]


_AREA_STRINGS = frozenset({"district", "name", "tpi_level_name", "aqi_level", "aqi_category_zh", "aqi_colour_hex", "primary_pollutant"})
_AREA_INTS = frozenset({*_ZERO_COLS, "tpi_level", "window_end_ms", T})


def _tick_list(window_ends_ms) -> list[int]:
    if isinstance(window_ends_ms, (str, bytes)) or not isinstance(window_ends_ms, Sequence | np.ndarray | pl.Series):
        raise ValueError(f"window_ends_ms must be a sequence of integer epoch times in ms, got {window_ends_ms!r}")
    values = list(window_ends_ms)
    if any(isinstance(t, bool) or not isinstance(t, (int, np.integer)) for t in values):
        raise ValueError(f"window_ends_ms must hold integer epoch times in ms, got {values[:5]!r}")
    ends = [int(t) for t in values]
    if not ends:
        raise ValueError("window_ends_ms is empty: give at least one tick end")
    if any(b <= a for a, b in zip(ends, ends[1:])):
        raise ValueError("window_ends_ms must be strictly ascending")
    return ends


def compute_vitals_batch(frames: Mapping[str, pl.DataFrame], city: City, window_ends_ms: Sequence[int],
                         config: VitalsConfig | None = None) -> dict[str, pl.DataFrame]:
    """All vital-sign frames for each of the tick ends ``window_ends_ms`` (see the module docstring).

    >>> from brain.city import demo_city_path, load_city
    >>> out = compute_vitals_batch({}, load_city(demo_city_path()), [300_000, 600_000])
    >>> out["city"].select("tick_end_ms", "window_end_ms").rows()
    [(300000, 300000), (600000, 600000)]
    """
    cfg = config or VitalsConfig()
    unknown = set(frames) - set(INPUT_SCHEMAS)
    if unknown:
        raise ValueError(f"unknown window frame(s) {sorted(unknown)}; expected some of {', '.join(INPUT_SCHEMAS)}")
    if not isinstance(city, City):
        raise ValueError(f"city must be a brain.city.model.City, got {type(city).__name__}")
    ends = _tick_list(window_ends_ms)
    return _compute(frames, city, ends, ends[0] if len(ends) == 1 else None, cfg)


def _compute(frames, city: City, ends: list[int], single: int | None, cfg: VitalsConfig) -> dict[str, pl.DataFrame]:
    refs = _refs(city)
    ix = _index(city, refs)
    ticks = np.asarray(ends, dtype=np.int64)
    window_rows = _window_rows(frames, ix, ticks, single)
    seg = _segment_traffic(window_rows, ix, ticks, cfg)
    air_st = _air_station(window_rows, ix, ticks, cfg)
    noise_st = _noise_sensor(window_rows, ix, ticks, cfg, city.timezone)
    util_st = _utility_sensor(window_rows, ix, ticks, cfg)
    out_frame = _conformed(frames, "outages")
    out_cell = _lookup(out_frame["cell_id"], ix.cell_position)
    outages = _OutageState(out_frame, ix.cell_area[out_cell], _cell_district(ix, out_cell), ticks)
    case_frame = _conformed(frames, "cases")
    cases = _CaseState(case_frame, ix.cell_area[_lookup(case_frame["cell_id"], ix.cell_position)], ticks, cfg)
    incidents = _IncidentState(frames, ix, refs, ticks, cfg)
    sg = _sensor_groups(city, refs)
    status = _sensor_counts(frames, sg, ticks, cfg)

    grid_ix = _AreaGrid(ticks, ix)
    district, city_rows = _area_tables(seg, air_st, noise_st, util_st, outages, cases, incidents, status, sg, grid_ix, refs, city, cfg)

    grid_cell = cases.table("cell_id", ticks, nulls=False)
    grid_cell.insert_column(1, _cell_district(ix, _lookup(grid_cell["cell_id"], ix.cell_position)))
    grid_category = cases.table("category", ticks, nulls=True)
    util_out = outages.table(ticks)
    emerg = incidents.table()
    tables = {
        "segment_traffic": seg[0],
        "air_station": air_st[0],
        "noise_sensor": noise_st[0],
        "utility_sensor": util_st[0],
        "utility_outages": util_out,
        "grid_cell": grid_cell,
        "grid_category": grid_category,
        "emergency": emerg,
        "district": district,
        "city": city_rows,
    }
    # Stacked tables also say their tick as window_end_ms where compute_vitals has no such column.
    for name in ("utility_outages", "grid_cell", "grid_category", "emergency"):
        frame = tables[name]
        tables[name] = frame[[c for c in frame.columns if c != T]].hstack([frame[T].alias("window_end_ms"), frame[T]])
    tables["sensor_health"] = _sensor_health(status, sg, ticks)
    return {name: tables[name] for name in TABLE_ORDER}


TABLE_ORDER = ("segment_traffic", "air_station", "noise_sensor", "utility_sensor", "utility_outages", "grid_cell",
               "grid_category", "emergency", "sensor_health", "district", "city")


#: Tables that compute_vitals gives without a ``window_end_ms`` column (the batch adds it = the tick).
TICK_ONLY_TABLES: tuple[str, ...] = ("utility_outages", "grid_cell", "grid_category", "emergency", "sensor_health")


def warm_up() -> None:
    """Compile (or load from numba's cache) the kernels of this module and :mod:`brain.vitals.air`, so
    that the first batch does not pay for it.

    >>> warm_up()  # then a first compute_vitals_batch runs compiled code
    """
    from brain.kernels import cases, freshness, groupsum, iaqi, latest, segments

    for kernel in (cases, freshness, groupsum, iaqi, latest, segments):
        kernel.warm_up()


def split_ticks(batch: Mapping[str, pl.DataFrame], window_ends_ms: Sequence[int]) -> list[dict[str, pl.DataFrame]]:
    """Per tick, the tables of a :func:`compute_vitals_batch` result without ``tick_end_ms``, as
    :func:`brain.vitals.compute_vitals` returns them (same order as ``window_ends_ms``).

    >>> import polars as pl
    >>> b = {"city": pl.DataFrame({"health_index": [90.0, 80.0], "tick_end_ms": [1, 2]})}
    >>> [t["city"].rows() for t in split_ticks(b, [1, 2])]
    [[(90.0,)], [(80.0,)]]
    """
    ends = [int(t) for t in window_ends_ms]
    pos = {t: i for i, t in enumerate(ends)}
    out: list[dict[str, pl.DataFrame]] = [{} for _ in ends]
    for name, frame in batch.items():
        if name in TICK_ONLY_TABLES and "window_end_ms" in frame.columns:
            frame = frame.drop("window_end_ms")
        parts = frame.partition_by(T, as_dict=True, include_key=False, maintain_order=True)
        empty = frame.clear().drop(T)
        for i in range(len(ends)):
            out[i][name] = empty
        for (t,), part in parts.items():
            if t in pos:
                out[pos[t]][name] = part
    return out
