"""``compute_vitals_batch``: the vital signs of K ticks in one vectorised pass.

:func:`brain.vitals.compute_vitals` costs a fixed few tens of ms per call in polars overhead
(hundreds of small eager operations). This computes the same tables for K tick ends at once, so
that overhead is paid once per batch instead of once per tick: every formula of
:mod:`brain.vitals.compute` is applied to frames stacked over the ticks and grouped by a
``tick_end_ms`` column.

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

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from brain.city.model import City
from brain.vitals import air, emergency, grid, health, noise, sensors, traffic, utilities
from brain.vitals.compute import (
    _POLLUTANTS,
    INPUT_SCHEMAS,
    VitalsConfig,
    _health_columns,
    _conform,
    _nearest_cell,
    _Refs,
    _refs,
    _unit,
)

S, I64, F64 = pl.String, pl.Int64, pl.Float64
T = "tick_end_ms"
_TICK = pl.col(T)
WINDOW_TABLES = ("traffic", "probe", "air_1h", "air_24h", "air_8h_o3", "noise", "utility")
HOUR_MS = grid.HOUR_MS


class _Index:
    """Per-city reference frames keyed by a small integer ``_k`` (joins and uniques on integers, not
    strings), built once per City. ``_k`` is the rank of the id, so ordering by it orders by id."""

    def __init__(self, refs: _Refs) -> None:
        self.segments = refs.segments.sort("segment_id").with_row_index("_k").with_columns(pl.col("_k").cast(I64))
        self.sensors = refs.sensors.sort("sensor_id").with_row_index("_k").with_columns(pl.col("_k").cast(I64))
        self.segment_key = self.segments.select("segment_id", "_k")
        self.sensor_key = self.sensors.select("sensor_id", "_k")
        self._edges: dict[str, tuple[np.ndarray, np.ndarray]] = {}

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


def _stacked(frames: Mapping[str, pl.DataFrame], name: str, ticks: pl.DataFrame, single: int | None,
             key: pl.DataFrame) -> pl.DataFrame:
    """A per-window input conformed to its schema, with its ``tick_end_ms`` and the integer ``_k`` of
    its id (rows of unknown ids or of other ticks dropped)."""
    base = _conform(frames, name)
    raw = frames.get(name)
    if raw is not None and base.height and T in raw.columns:
        try:
            base = base.with_columns(raw[T].cast(I64).alias(T))
        except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError):
            raise ValueError(f"window frame {name!r}: tick_end_ms must be integer epoch ms") from None
    elif single is not None:
        base = base.with_columns(pl.lit(single, dtype=I64).alias(T))
    elif base.height:
        raise ValueError(f"window frame {name!r} needs a tick_end_ms column to batch more than one tick")
    else:
        base = base.with_columns(pl.lit(None, dtype=I64).alias(T))
    if base.n_chunks() > 1:
        base = base.rechunk()  # stacked per tick: hundreds of chunks make every later step slow
    if base.height and T in (raw.columns if raw is not None else ()):
        base = base.join(ticks, on=T, how="semi")
    return base.join(key, on=key.columns[0], how="inner")


def _latest(frame: pl.DataFrame, max_age_s: float) -> pl.DataFrame:
    """Per tick, the latest window per key ``_k`` ending in (tick - max_age, tick]."""
    age_ms = int(max_age_s * 1000)
    end = pl.col("window_end_ms")
    recent = frame.filter((end <= _TICK) & (end > _TICK - age_ms))
    return recent.sort("window_end_ms").unique(subset=[T, "_k"], keep="last")


# --- families ---------------------------------------------------------------------------------------
def _segment_traffic(frames, ix: _Index, ticks, single, cfg: VitalsConfig) -> pl.DataFrame:
    det = _latest(_stacked(frames, "traffic", ticks, single, ix.segment_key), cfg.traffic_max_age_s)
    prb = _latest(_stacked(frames, "probe", ticks, single, ix.segment_key), cfg.traffic_max_age_s)
    det = det.select(T, "_k", pl.col("window_end_ms").alias("det_end_ms"), "volume_veh", "occupancy_pct",
                     pl.when(pl.col("volume_veh") > 0).then(pl.col("speed_kmh")).otherwise(None).alias("det_speed_kmh"))
    # A zero probe time is no measurement (a vehicle cannot cross a segment in no time).
    prb = prb.select(T, "_k", pl.col("window_end_ms").alias("probe_end_ms"),
                     pl.when(pl.col("travel_time_s") > 0).then(pl.col("travel_time_s")).otherwise(None).alias("probe_tt_s"))
    seg = det.join(prb, on=[T, "_k"], how="full", coalesce=True).sort(T, "_k").join(ix.segments, on="_k", how="left", maintain_order="left")
    probe_speed = pl.col("length_km") / (pl.col("probe_tt_s") / 3600.0)
    observed = pl.col("volume_veh").is_not_null()
    vol_sum = pl.col("volume_veh").sum().over(T)
    lanes_sum = pl.when(observed).then(pl.col("lanes")).otherwise(0).sum().over(T)
    speed = pl.coalesce(probe_speed, pl.col("det_speed_kmh"))
    seg = seg.with_columns(
        pl.max_horizontal("det_end_ms", "probe_end_ms").alias("window_end_ms"),
        speed.alias("speed_kmh"),
        pl.when(pl.col("probe_tt_s").is_not_null()).then(pl.lit("probe"))
        .when(pl.col("det_speed_kmh").is_not_null()).then(pl.lit("detector")).otherwise(None).alias("speed_source"),
        (pl.col("length_km") * 3600.0 / pl.col("free_flow_kmh")).alias("free_flow_time_s"),
        pl.coalesce(pl.col("probe_tt_s"), pl.col("length_km") * 3600.0 / speed).alias("travel_time_s"),
        # Vehicle-km weights: probe-only segments get the tick's observed mean volume per lane.
        pl.when(lanes_sum > 0).then(vol_sum / lanes_sum).otherwise(1.0).alias("_per_lane"),
    )
    std = cfg.congestion_standard
    tti = traffic.tti_from_travel_time(seg["travel_time_s"].to_numpy(), seg["free_flow_time_s"].to_numpy())
    tpi = traffic.tpi_from_tti(tti, std)
    tpi_lvl = traffic.tpi_level(tpi, std)
    # traffic.speed_level, with each segment's band edges looked up once per city
    v = seg["speed_kmh"].to_numpy()
    all_edges, unknown = ix.speed_edges(std)
    k = seg["_k"].to_numpy()
    if unknown[k].any():
        bad = sorted(set(ix.segments["road_class"].to_numpy()[k[unknown[k]]].tolist()))
        raise ValueError(f"unknown road class(es) {bad}; known: {', '.join(traffic.congestion_table(std).road_classes)}")
    edges = all_edges[k]
    sp_lvl = np.where(np.isnan(v), 0, edges.shape[1] + 1 - np.sum(v[:, None] > edges, axis=1)).astype(np.int64)
    names = pl.Series(traffic.tpi_level_names(np.arange(edges.shape[1] + 2), std), dtype=S)  # level 0..5 -> name
    seg = seg.with_columns(
        pl.Series("tti", tti, dtype=F64, nan_to_null=True),
        pl.Series("tpi", tpi, dtype=F64, nan_to_null=True),
        pl.Series("tpi_level", tpi_lvl, dtype=I64),
        names.gather(tpi_lvl).alias("tpi_level_name"),
        pl.Series("speed_level", sp_lvl, dtype=I64),
        names.gather(sp_lvl).alias("speed_level_name"),
        pl.Series("congestion_level", np.where(sp_lvl > 0, sp_lvl, tpi_lvl), dtype=I64),
        (pl.coalesce(pl.col("volume_veh"), pl.col("lanes") * pl.col("_per_lane")) * pl.col("length_km")).alias("vkm"),
    )
    return seg.select(
        "segment_id", "district", "cell_id", "road_class", "length_km", "window_end_ms", "volume_veh", "occupancy_pct",
        "speed_kmh", "speed_source", "travel_time_s", "tti", "tpi", "tpi_level", "tpi_level_name", "speed_level",
        "speed_level_name", "congestion_level", "vkm", T,
    )


def _air_station(frames, ix: _Index, ticks, single, cfg: VitalsConfig) -> pl.DataFrame:
    age = cfg.air_max_age_s
    a1 = _latest(_stacked(frames, "air_1h", ticks, single, ix.sensor_key), age)
    a24 = _latest(_stacked(frames, "air_24h", ticks, single, ix.sensor_key), age)
    o8 = _latest(_stacked(frames, "air_8h_o3", ticks, single, ix.sensor_key), age)
    a1 = a1.select(T, "_k", "window_end_ms", *[pl.col(f"{p}_{_unit(p)}").alias(f"{p}_1h_{_unit(p)}") for p in _POLLUTANTS])
    a24 = a24.select(T, "_k", pl.col("window_end_ms").alias("_end24"),
                     *[pl.col(f"{p}_{_unit(p)}").alias(f"{p}_24h_{_unit(p)}") for p in _POLLUTANTS if p != "o3"])
    o8 = o8.select(T, "_k", pl.col("window_end_ms").alias("_end8"), "o3_8h_ugm3")
    key = [T, "_k"]
    st = a1.join(a24, on=key, how="full", coalesce=True).join(o8, on=key, how="full", coalesce=True)
    st = st.with_columns(pl.max_horizontal("window_end_ms", "_end24", "_end8").alias("window_end_ms")).drop("_end24", "_end8")
    st = st.sort(key).join(ix.sensors.select("_k", "sensor_id", "district", "cell_id"), on="_k", how="left", maintain_order="left")
    conc_cols = [c for c in st.columns if c.endswith(("_ugm3", "_mgm3"))]
    st = st.select("sensor_id", "district", "cell_id", "window_end_ms", *conc_cols, T)
    out = air.aqi(st, "hourly", cfg.aqi_standard, cfg.pm_basis)
    return out.select(pl.exclude(T), T)


def _noise_sensor(frames, ix: _Index, refs: _Refs, ticks, single, cfg: VitalsConfig, tz: str) -> pl.DataFrame:
    allrows = _stacked(frames, "noise", ticks, single, ix.sensor_key).drop("sensor_id").join(
        ix.sensors.select("_k", "sensor_id", "district", "cell_id"), on="_k", how="left"
    ).join(refs.cells.select("cell_id", "noise_class"), on="cell_id", how="left")
    allrows = allrows.with_columns(pl.col("noise_class").fill_null("2"))  # unknown cell: GB 3096's mixed zone
    night = noise.is_night(allrows["window_start_ms"].to_numpy(), tz, cfg.noise_standard)
    allrows = allrows.with_columns(pl.Series("is_night", night, dtype=pl.Boolean))
    # Trailing-period energy means (Ld, Ln) weighted by window duration.
    lookback_ms = int(cfg.noise_period_lookback_s * 1000)
    end = pl.col("window_end_ms")
    trail = allrows.filter((end <= _TICK) & (end > _TICK - lookback_ms) & pl.col("laeq_db").is_not_null())
    dur = (pl.col("window_end_ms") - pl.col("window_start_ms")).clip(lower_bound=1).cast(F64)
    energy = (dur * (10.0 ** (pl.col("laeq_db") / 10.0)))
    periods = trail.group_by(T, "_k").agg(
        (10.0 * (energy.filter(~pl.col("is_night")).sum() / dur.filter(~pl.col("is_night")).sum()).log10()).alias("laeq_day_db"),
        (10.0 * (energy.filter(pl.col("is_night")).sum() / dur.filter(pl.col("is_night")).sum()).log10()).alias("laeq_night_db"),
    ).with_columns(pl.col("laeq_day_db").fill_nan(None), pl.col("laeq_night_db").fill_nan(None))
    cur = _latest(allrows, cfg.noise_max_age_s).join(periods, on=[T, "_k"], how="left").sort(T, "_k")
    std = cfg.noise_standard
    cls = cur["noise_class"].to_numpy()
    is_n = cur["is_night"].to_numpy().astype(bool)
    lim = noise.limit_db(cls, is_n, std)
    lim_day = noise.limit_db(cls, np.zeros(len(cls), bool), std)
    lim_night = noise.limit_db(cls, np.ones(len(cls), bool), std)

    def col(name: str) -> np.ndarray:
        return cur[name].cast(F64).to_numpy()

    cur = cur.with_columns(
        pl.Series("period", np.where(is_n, "night", "day"), dtype=S),
        pl.Series("limit_db", lim, dtype=F64),
        pl.Series("exceedance_db", noise.exceedance_db(col("laeq_db"), lim), dtype=F64, nan_to_null=True),
        pl.Series("night_max_exceedance_db", noise.night_max_exceedance_db(col("lamax_db"), lim, is_n, std), dtype=F64, nan_to_null=True),
        pl.Series("day_exceedance_db", noise.exceedance_db(col("laeq_day_db"), lim_day), dtype=F64, nan_to_null=True),
        pl.Series("night_exceedance_db", noise.exceedance_db(col("laeq_night_db"), lim_night), dtype=F64, nan_to_null=True),
    )
    return cur.select(
        "sensor_id", "district", "cell_id", "noise_class", "window_start_ms", "window_end_ms", "laeq_db", "lamax_db", "period",
        "limit_db", "exceedance_db", "night_max_exceedance_db", "laeq_day_db", "laeq_night_db", "day_exceedance_db",
        "night_exceedance_db", T,
    )


def _utility_sensor(frames, ix: _Index, ticks, single, cfg: VitalsConfig) -> pl.DataFrame:
    cur = _latest(_stacked(frames, "utility", ticks, single, ix.sensor_key), cfg.utility_max_age_s).drop("sensor_id")
    cur = cur.sort(T, "_k").join(ix.sensors.select("_k", "sensor_id", "type", "district", "cell_id", "unit", "nominal"),
                                 on="_k", how="left", maintain_order="left")
    value = utilities.measured_value(cur)
    quantity = utilities.measured_quantity(cur)
    dev = utilities.deviation_pct(value.cast(F64).to_numpy(), cur["nominal"].to_numpy())
    ok = utilities.within_tolerance(dev, quantity.to_numpy(), cfg.utility_tolerance_pct)
    cur = cur.with_columns(value, quantity, pl.Series("deviation_pct", dev, dtype=F64, nan_to_null=True),
                           pl.Series("within_tolerance", ok.tolist(), dtype=pl.Boolean))
    return cur.select("sensor_id", "type", "district", "cell_id", "window_end_ms", "unit", "quantity", "value", "nominal",
                      "deviation_pct", "within_tolerance", T)


def _with_cell_district(frame: pl.DataFrame, refs: _Refs) -> pl.DataFrame:
    return frame.join(refs.cells.select("cell_id", pl.col("cell_district").alias("district")), on="cell_id", how="left")


def _as_of(state: pl.DataFrame, ticks: pl.DataFrame, since: str) -> pl.DataFrame:
    """State rows repeated for every tick at or after their ``since`` time (they did not exist before)."""
    return state.join(ticks, how="cross").filter(pl.col(since) <= _TICK)


def _incidents(frames, refs: _Refs, ticks, cfg: VitalsConfig) -> pl.DataFrame:
    inc = _conform(frames, "incidents")
    inc = inc.join(refs.segments.select("segment_id", pl.col("district").alias("seg_district")), on="segment_id", how="left")
    # The nearest cell is a property of the incident, not of the tick: computed once.
    near = _nearest_cell(inc["lon"].to_numpy(), inc["lat"].to_numpy(), refs.cells)
    cell_d = refs.cells["cell_district"].to_numpy()
    near_d = np.where(near >= 0, cell_d[np.clip(near, 0, None)] if len(cell_d) else None, None) if len(near) else np.empty(0, dtype=object)
    inc = inc.with_columns(pl.coalesce(pl.col("seg_district"), pl.Series("near", near_d.tolist(), dtype=S)).alias("district")).drop("seg_district")
    lookback_ms = int(cfg.incident_lookback_s * 1000)
    active = pl.col("closed_ms").is_null() | (pl.col("closed_ms") > _TICK)
    return _as_of(inc, ticks, "reported_ms").filter(active | (pl.col("reported_ms") > _TICK - lookback_ms))


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


def _sensor_groups(city: City, refs: _Refs) -> _SensorGroups:
    cache = city.__dict__.setdefault("_indexes", {})
    if "vitals_sensor_groups" not in cache:
        cache["vitals_sensor_groups"] = _SensorGroups(refs)
    return cache["vitals_sensor_groups"]


def _sensor_counts(frames, city: City, refs: _Refs, ends: list[int], cfg: VitalsConfig) -> pl.DataFrame:
    """Per (tick, district, family): the registry's freshness counts (``registered, fresh, stale, silent,
    never, known, metadata_complete``), from a (tick x sensor) freshness matrix."""
    sg = _sensor_groups(city, refs)
    k, n, n_groups = len(ends), len(sg.group_of), sg.groups.height
    tick_arr = np.asarray(ends, dtype=np.int64)
    if "sensor_last_seen" not in frames:
        # No last-seen table at all: freshness is unknown (null shares), not "everything silent".
        code = np.full((k, n), -1, dtype=np.int64)
    else:
        raw = frames["sensor_last_seen"]
        seen = _conform(frames, "sensor_last_seen")
        stacked = T in raw.columns and seen.height > 0
        if stacked:
            seen = seen.with_columns(raw[T].cast(I64).alias(T))
        seen = seen.join(sg.index, on="sensor_id", how="inner")
        last = np.full((k, n), np.nan)
        if seen.height:
            vals = seen["last_seen_ms"].cast(F64).to_numpy()
            cols = seen["_i"].to_numpy()
            if stacked:
                tick_of = seen[T].to_numpy()
                rows = np.minimum(np.searchsorted(tick_arr, tick_of), k - 1)
                ok = tick_arr[rows] == tick_of
                np.fmax.at(last, (rows[ok], cols[ok]), vals[ok])
            else:
                one = np.full(n, np.nan)
                np.fmax.at(one, cols, vals)
                last[:] = one
        interval = sg.types.replace_strict(cfg.expected_interval_s, default=3600.0, return_dtype=F64).to_numpy()
        code = sensors.freshness(last, tick_arr[:, None], interval[None, :], cfg.fresh_factor, cfg.silent_factor)
    # counts[tick, group, code + 1] in one bincount
    flat = (np.arange(k)[:, None] * n_groups + sg.group_of[None, :]) * 5 + (code + 1)
    counts = np.bincount(flat.ravel(), minlength=k * n_groups * 5).reshape(k * n_groups, 5).astype(np.int64)
    out = pl.DataFrame({
        T: np.repeat(tick_arr, n_groups), "_g": np.tile(np.arange(n_groups, dtype=np.int64), k),
        "registered": np.tile(sg.registered, k), "fresh": counts[:, 1], "stale": counts[:, 2], "silent": counts[:, 3],
        "never": counts[:, 4], "known": counts[:, 1:].sum(axis=1), "metadata_complete": np.tile(sg.metadata, k),
    })
    return out.join(sg.groups, on="_g", how="left").drop("_g")


def _sensor_shares(by: list[str]) -> list[pl.Expr]:
    """Registry figures of :func:`brain.vitals.compute._sensor_aggs` from summed freshness counts."""
    known = pl.col("known")

    def share(num: pl.Expr, name: str) -> pl.Expr:
        return pl.when(known > 0).then(num / known).otherwise(None).alias(name)

    return [
        *by, "registered", *sensors.FRESHNESS_NAMES,
        share(pl.col("fresh"), "fresh_share"),
        share(pl.col("stale"), "stale_share"),
        share(pl.col("silent") + pl.col("never"), "silent_share"),
        share(known - pl.col("never"), "reported_share"),
        (pl.col("metadata_complete") / pl.col("registered")).alias("metadata_complete_share"),
    ]


_COUNT_COLS = ("registered", *sensors.FRESHNESS_NAMES, "known", "metadata_complete")


# --- grouped metrics with a per-row tick ---------------------------------------------------------
def _case_metrics(cases: pl.DataFrame, by: list[str], cfg: VitalsConfig) -> pl.DataFrame:
    """:func:`brain.vitals.grid.case_metrics` per tick (rows already repeated per tick, as of it)."""
    t = _TICK
    since = t - int(cfg.case_lookback_s * 1000)
    closed, reported = pl.col("closed_ms"), pl.col("reported_ms")
    is_open = (reported <= t) & (closed.is_null() | (closed > t))
    closed_recent = closed.is_not_null() & (closed > since) & (closed <= t) & (reported <= t)
    duration_ms = (closed - reported).clip(lower_bound=0).cast(F64)
    keys = [T, *by]
    out = cases.group_by(keys).agg(
        ((reported > t - HOUR_MS) & (reported <= t)).sum().cast(I64).alias("new_last_hour"),
        is_open.sum().cast(I64).alias("open_backlog"),
        (is_open & (pl.col("deadline_ms") < t)).sum().cast(I64).alias("overdue"),
        closed_recent.sum().cast(I64).alias("closed_recent"),
        (closed_recent & (closed <= pl.col("deadline_ms"))).sum().cast(I64).alias("closed_on_time"),
        duration_ms.filter(closed_recent).mean().alias("mean_time_to_close_h"),
    ).sort(keys)
    rate = pl.when(pl.col("closed_recent") > 0).then(pl.col("closed_on_time") / pl.col("closed_recent")).otherwise(None)
    # ms -> h in numpy, as case_metrics does (polars divides by a literal as a multiply by its reciprocal).
    hours = pl.Series("mean_time_to_close_h", out["mean_time_to_close_h"].cast(F64).to_numpy() / HOUR_MS, nan_to_null=True)
    out = out.with_columns(rate.cast(F64).alias("on_time_closure_rate"), hours)
    return out.select(*keys, *grid.METRIC_COLUMNS)


def _incident_metrics(incidents: pl.DataFrame, by: list[str], cfg: VitalsConfig) -> pl.DataFrame:
    """:func:`brain.vitals.emergency.incident_metrics` per tick."""
    t = _TICK
    recent = (pl.col("reported_ms") > t - int(cfg.incident_lookback_s * 1000)) & (pl.col("reported_ms") <= t)
    dispatched = recent & pl.col("dispatched_ms").is_not_null() & (pl.col("dispatched_ms") <= t)
    arrived = dispatched & pl.col("on_scene_ms").is_not_null() & (pl.col("on_scene_ms") <= t)
    act = (pl.col("reported_ms") <= t) & (pl.col("closed_ms").is_null() | (pl.col("closed_ms") > t))
    d = emergency.dispatch_delay_s().filter(dispatched)
    a = emergency.arrival_delay_s().filter(arrived)
    keys = [T, *by]
    return incidents.group_by(keys).agg(
        act.sum().cast(I64).alias("active_incidents"),
        *[(act & (pl.col("severity") == s)).sum().cast(I64).alias(f"active_sev{s}") for s in (1, 2, 3, 4)],
        pl.col("units").filter(act).sum().cast(I64).alias("active_units"),
        recent.sum().cast(I64).alias("reported_recent"),
        d.mean().cast(F64).alias("mean_dispatch_delay_s"),
        d.quantile(0.9, "linear").cast(F64).alias("p90_dispatch_delay_s"),
        a.mean().cast(F64).alias("mean_arrival_delay_s"),
        a.quantile(0.9, "linear").cast(F64).alias("p90_arrival_delay_s"),
    ).sort(keys).select(*keys, *emergency.METRIC_COLUMNS)


def _active_outages(outages: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """:func:`brain.vitals.utilities.active_outages` per tick (groups with an active outage only)."""
    live = outages.filter(pl.col("ended_ms").is_null() | (pl.col("ended_ms") > _TICK))
    keys = [T, *by]
    return live.group_by(keys).agg(pl.len().cast(I64).alias("active_outages"),
                                   pl.col("customers").sum().cast(I64).alias("customers_affected")).sort(keys)


# --- areas (districts and the whole city) -----------------------------------------------------------
CITY_AREA = "__city__"


def _area_parts(seg, air_st, noise_st, util_st, outages, cases, incidents, status, cfg: VitalsConfig) -> list:
    """Per (tick, area) figures of each family, the areas being the districts and the whole city
    (``area`` = :data:`CITY_AREA`, figures over all the city's rows, not over the districts')."""
    district = pl.col("district")
    city = pl.lit(CITY_AREA, dtype=S)

    def with_area(frame: pl.DataFrame) -> pl.DataFrame:
        """Each row twice: in its district (if it has one) and in the city."""
        return pl.concat([frame.filter(district.is_not_null()).with_columns(district.alias("area")),
                          frame.with_columns(city.alias("area"))])

    def by_area(frame: pl.DataFrame, aggs) -> pl.DataFrame:
        return pl.concat([frame.group_by(T, district.alias("area")).agg(aggs).filter(pl.col("area").is_not_null()),
                          frame.group_by(T, city.alias("area")).agg(aggs)])

    parts = [by_area(seg, traffic.network_aggregations(cfg.congested_min_level))]
    conc_cols = [c for c in air_st.columns if c.endswith(("_ugm3", "_mgm3"))]
    air_area = by_area(air_st, [pl.col(c).mean() for c in conc_cols])
    parts.append(air.aqi(air_area, "hourly", cfg.aqi_standard, cfg.pm_basis).select(
        T, "area", "aqi", pl.col("level").alias("aqi_level"), pl.col("category_zh").alias("aqi_category_zh"),
        pl.col("colour_hex").alias("aqi_colour_hex"), "primary_pollutant"))
    measured = pl.col("laeq_db").is_not_null()
    parts.append(by_area(noise_st, [
        measured.sum().cast(I64).alias("noise_sensors"),
        (10.0 * (10.0 ** (pl.col("laeq_db") / 10.0)).filter(measured).mean().log10()).alias("noise_laeq_db"),
        (pl.col("exceedance_db").filter(measured) <= 0).mean().alias("noise_within_limit_share"),
        pl.col("exceedance_db").max().alias("noise_max_exceedance_db"),
    ]))
    g = _case_metrics(with_area(cases), ["area"], cfg)
    parts.append(g.select(T, "area", pl.col("new_last_hour").alias("cases_new_last_hour"), pl.col("open_backlog").alias("cases_open"),
                          pl.col("overdue").alias("cases_overdue"), pl.col("on_time_closure_rate").alias("cases_on_time_rate"),
                          pl.col("mean_time_to_close_h").alias("cases_mean_time_to_close_h")))
    parts.append(by_area(util_st, [
        pl.col("within_tolerance").filter(pl.col("within_tolerance").is_not_null()).mean().alias("utility_within_tolerance_share"),
        pl.col("deviation_pct").abs().max().alias("utility_max_abs_deviation_pct"),
    ]))
    o = _active_outages(with_area(outages), ["area"])
    parts.append(o.select(T, "area", pl.col("active_outages").alias("outages_active"), pl.col("customers_affected").alias("outage_customers")))
    e = _incident_metrics(with_area(incidents), ["area"], cfg)
    parts.append(e.select(T, "area", pl.col("active_incidents").alias("incidents_active"),
                          *[pl.col(f"active_sev{s}").alias(f"incidents_active_sev{s}") for s in (1, 2, 3, 4)],
                          "mean_dispatch_delay_s", "mean_arrival_delay_s"))
    s = with_area(status).group_by(T, "area").agg([pl.col(c).sum() for c in _COUNT_COLS]).select(_sensor_shares([T, "area"]))
    parts.append(s.select(T, "area", pl.col("registered").alias("sensors_registered"), pl.col("fresh_share").alias("sensors_fresh_share"),
                          pl.col("silent_share").alias("sensors_silent_share"), pl.col("reported_share").alias("registry_reported_share"),
                          pl.col("metadata_complete_share").alias("registry_metadata_share")))
    return parts


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


def _assemble(areas: pl.DataFrame, parts: list[pl.DataFrame], ticks: pl.DataFrame, city: City, cfg: VitalsConfig) -> pl.DataFrame:
    """One row per (tick, area): the families' figures, the health scores and the index."""
    out = ticks.join(areas, how="cross")
    for p in parts:
        out = out.join(p if p.schema["area"] == S else p.with_columns(pl.col("area").cast(S)), on=[T, "area"], how="left")
    fill = []
    for c, dt in out.schema.items():
        e = pl.col(c).fill_null(0) if c in _ZERO_COLS else pl.col(c)
        if dt == F64:
            e = e.fill_nan(None)
        if c in _ZERO_COLS or dt == F64:
            fill.append(e)
    out = out.with_columns(fill)

    def arr(name: str) -> np.ndarray:
        col = out[name]
        return (col if col.dtype == F64 else col.cast(F64)).to_numpy()

    out = out.with_columns(
        pl.col(T).alias("window_end_ms"),
        *_health_columns(arr, out.height, city, cfg),
    )
    return out.rename({"area": "district"}).select(*AREA_COLUMNS, T)


def _tick_list(window_ends_ms) -> list[int]:
    if isinstance(window_ends_ms, (str, bytes)) or not isinstance(window_ends_ms, Sequence | np.ndarray | pl.Series):
        raise ValueError(f"window_ends_ms must be a sequence of integer epoch times in ms, got {window_ends_ms!r}")
    values = list(window_ends_ms)
    if any(isinstance(t, bool) or not isinstance(t, (int, np.integer)) for t in values):
        raise ValueError(f"window_ends_ms must hold integer epoch times in ms, got {values[:5]!r}")
    ends = [int(t) for t in values]
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
    ticks = pl.DataFrame({T: ends}, schema={T: I64})
    seg = _segment_traffic(frames, ix, ticks, single, cfg)
    air_st = _air_station(frames, ix, ticks, single, cfg)
    noise_st = _noise_sensor(frames, ix, refs, ticks, single, cfg, city.timezone)
    util_st = _utility_sensor(frames, ix, ticks, single, cfg)
    outages = _as_of(_with_cell_district(_conform(frames, "outages"), refs), ticks, "started_ms")
    cases = _as_of(_with_cell_district(_conform(frames, "cases"), refs), ticks, "reported_ms")
    incidents = _incidents(frames, refs, ticks, cfg)
    status = _sensor_counts(frames, city, refs, ends, cfg)

    fams = (seg, air_st, noise_st, util_st, outages, cases, incidents, status)
    areas = pl.concat([refs.districts.rename({"district": "area"}),
                       pl.DataFrame({"area": [CITY_AREA], "name": [city.name]}, schema={"area": S, "name": S})])
    both = _assemble(areas, _area_parts(*fams, cfg), ticks, city, cfg)
    is_city = pl.col("district") == CITY_AREA
    district = both.filter(~is_city)
    city_rows = both.filter(is_city).with_columns(pl.lit(None, dtype=S).alias("district"))

    grid_cell = _case_metrics(cases.filter(pl.col("cell_id").is_not_null()), ["cell_id"], cfg)
    grid_cell = grid_cell.join(refs.cells.select("cell_id", pl.col("cell_district").alias("district")), on="cell_id", how="left")
    grid_cell = grid_cell.select("cell_id", "district", *grid.METRIC_COLUMNS, T)
    grid_category = _case_metrics(cases, ["category"], cfg).select("category", *grid.METRIC_COLUMNS, T)
    util_out = _active_outages(outages, ["district", "utility"]).select(pl.exclude(T), T)
    emerg = _incident_metrics(incidents, ["district", "type", "severity"], cfg).select(pl.exclude(T), T)
    health_rows = status.select(_sensor_shares(["district", "family", T])).sort(T, "district", "family")
    health_rows = health_rows.select(pl.exclude(T), T)
    tables = {
        "segment_traffic": seg,
        "air_station": air_st,
        "noise_sensor": noise_st,
        "utility_sensor": util_st,
        "utility_outages": util_out,
        "grid_cell": grid_cell,
        "grid_category": grid_category,
        "emergency": emerg,
        "sensor_health": health_rows,
        "district": district,
        "city": city_rows,
    }
    # Stacked tables also say their tick as window_end_ms where compute_vitals has no such column.
    for name in TICK_ONLY_TABLES:
        tables[name] = tables[name].select(pl.exclude(T), pl.col(T).alias("window_end_ms"), T)
    return tables


#: Tables that compute_vitals gives without a ``window_end_ms`` column (the batch adds it = the tick).
TICK_ONLY_TABLES: tuple[str, ...] = ("utility_outages", "grid_cell", "grid_category", "emergency", "sensor_health")


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
