"""Placing rows by dense integer keys: the per-city index of :mod:`brain.vitals.batch`, the window
inputs with each row's tick position and key, and numpy <-> Series helpers (no joins per batch).

Example: the tick position of each row's ``tick_end_ms``, looked up once per run of equal values:
    >>> import numpy as np
    >>> _tick_index(np.array([300_000, 600_000]), np.array([300_000, 300_000, 600_000, 900_000])).tolist()
    [0, 0, 1, -1]
"""
from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np
import polars as pl

from brain import series
from brain.city.model import City
from brain.kernels.latest import latest_rows
from brain.vitals import grid, noise, traffic, utilities
from brain.vitals.inputs import INPUT_SCHEMAS, CityRefs, conform_frame


S, I64, F64 = pl.String, pl.Int64, pl.Float64
T = "tick_end_ms"
WINDOW_TABLES = ("traffic", "probe", "air_1h", "air_24h", "air_8h_o3", "noise", "utility")
HOUR_MS = grid.HOUR_MS


class _Index:
    """Per-city reference frames keyed by a small integer ``_k`` (the rank of the id, so ordering by it
    orders by id), built once per City: rows of a family are placed by gathers on ``_k``, not joins."""

    def __init__(self, refs: CityRefs) -> None:
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


def _index(city: City, refs: CityRefs) -> _Index:
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
    """:func:`brain.vitals.inputs.conform_frame`, except that a frame already in shape (its columns of the
    schema have their dtypes; others may be there too) is used as it is."""
    schema, _ = INPUT_SCHEMAS[name]
    frame = frames.get(name)
    if isinstance(frame, pl.DataFrame) and frame.width:
        have = frame.schema
        if all(have.get(col) == dtype for col, dtype in schema.items()):
            return frame.rechunk() if frame.n_chunks() > 1 else frame
    return conform_frame(frames, name)


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
