"""The plain one-window formulation of :func:`brain.vitals.compute_vitals` (one polars step after
another), kept as the reference the vectorised :func:`brain.vitals.compute_vitals_batch` is tested
against (``tests/vitals/test_batch*.py``) and measured against (``bench/vitals_speed.py``).

Example:
    >>> from brain.city import demo_city_path, load_city
    >>> out = compute_vitals_reference({}, load_city(demo_city_path()), 0)
    >>> out["city"].height, out["district"]["district"].n_unique() == out["district"].height
    (1, True)
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from brain.city.model import City
from brain.vitals import air, emergency, grid, noise, sensors, traffic, utilities
from brain.vitals.areas import AREA_COLUMNS, area_health_arrays
from brain.vitals.config import VitalsConfig
from brain.vitals.inputs import POLLUTANTS, CityRefs, city_refs, conform_frame, nearest_cell, pollutant_unit

S, I64, F64 = pl.String, pl.Int64, pl.Float64


def compute_vitals_reference(window_frames: Mapping[str, pl.DataFrame], city: City, window_end_ms: int,
                              config: VitalsConfig | None = None) -> dict[str, pl.DataFrame]:
    """The plain one-window formulation of :func:`compute_vitals` (one polars step after another),
    kept as the reference the vectorised :func:`brain.vitals.compute_vitals_batch` is tested against.

    >>> from brain.city import demo_city_path, load_city
    >>> out = compute_vitals_reference({}, load_city(demo_city_path()), 0)
    >>> out["city"].height
    1
    """
    cfg = config or VitalsConfig()
    t = int(window_end_ms)
    refs = city_refs(city)

    seg = _segment_traffic(window_frames, refs, t, cfg)
    air_st = _air_station(window_frames, refs, t, cfg)
    noise_st = _noise_sensor(window_frames, refs, t, cfg, city.timezone)
    util_st = _utility_sensor(window_frames, refs, t, cfg)
    outages = _with_cell_district(conform_frame(window_frames, "outages"), refs)
    # A case reported after t does not exist yet at t (no zero row for its cell or category).
    cases = _with_cell_district(conform_frame(window_frames, "cases"), refs).filter(pl.col("reported_ms") <= t)
    incidents = _incidents_with_district(window_frames, refs, t, cfg)
    status = _sensor_status(window_frames, refs, t, cfg)

    frames = (seg, air_st, noise_st, util_st, outages, cases, incidents, status)
    district_parts = _area_figures(pl.col("district"), *frames, t, cfg)
    district = _assemble(refs.districts.rename({"district": "area"}), district_parts, city, t, cfg)
    city_parts = _area_figures(pl.lit("__city__", dtype=S), *frames, t, cfg)
    city_row = _assemble(pl.DataFrame({"area": ["__city__"], "name": [city.name]}), city_parts, city, t, cfg)
    city_row = city_row.with_columns(pl.lit(None, dtype=S).alias("district"))

    grid_cell = grid.case_metrics(cases.filter(pl.col("cell_id").is_not_null()), t, by=["cell_id"], lookback_s=cfg.case_lookback_s)
    grid_cell = grid_cell.join(refs.cells.select("cell_id", pl.col("cell_district").alias("district")), on="cell_id", how="left")
    grid_cell = grid_cell.select("cell_id", "district", *grid.METRIC_COLUMNS)
    grid_category = grid.case_metrics(cases, t, by=["category"], lookback_s=cfg.case_lookback_s)

    util_out = utilities.active_outages(outages, t, by=["district", "utility"])
    emerg = emergency.incident_metrics(incidents, t, by=["district", "type", "severity"], lookback_s=cfg.incident_lookback_s)
    health_rows = status.group_by("district", "family").agg(_sensor_aggs()).sort("district", "family")

    return {
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
        "city": city_row,
    }


def _latest(frame: pl.DataFrame, key: str, t_ms: int, max_age_s: float) -> pl.DataFrame:
    """Latest window per key ending in (t - max_age, t]."""
    since = t_ms - int(max_age_s * 1000)
    recent = frame.filter((pl.col("window_end_ms") <= t_ms) & (pl.col("window_end_ms") > since))
    return recent.sort("window_end_ms").unique(subset=[key], keep="last").sort(key)


# --- families ---------------------------------------------------------------------------------------
def _segment_traffic(frames, refs: CityRefs, t: int, cfg: VitalsConfig) -> pl.DataFrame:
    det = _latest(conform_frame(frames, "traffic"), "segment_id", t, cfg.traffic_max_age_s)
    prb = _latest(conform_frame(frames, "probe"), "segment_id", t, cfg.traffic_max_age_s)
    det = det.select("segment_id", pl.col("window_end_ms").alias("det_end_ms"), "volume_veh", "occupancy_pct",
                     pl.when(pl.col("volume_veh") > 0).then(pl.col("speed_kmh")).otherwise(None).alias("det_speed_kmh"))
    # A zero probe time is no measurement (a vehicle cannot cross a segment in no time).
    prb = prb.select("segment_id", pl.col("window_end_ms").alias("probe_end_ms"),
                     pl.when(pl.col("travel_time_s") > 0).then(pl.col("travel_time_s")).otherwise(None).alias("probe_tt_s"))
    seg = det.join(prb, on="segment_id", how="full", coalesce=True).join(refs.segments, on="segment_id", how="inner")
    probe_speed = pl.col("length_km") / (pl.col("probe_tt_s") / 3600.0)
    seg = seg.with_columns(
        pl.max_horizontal("det_end_ms", "probe_end_ms").alias("window_end_ms"),
        pl.coalesce(probe_speed, pl.col("det_speed_kmh")).alias("speed_kmh"),
        pl.when(pl.col("probe_tt_s").is_not_null()).then(pl.lit("probe"))
        .when(pl.col("det_speed_kmh").is_not_null()).then(pl.lit("detector")).otherwise(None).alias("speed_source"),
        (pl.col("length_km") * 3600.0 / pl.col("free_flow_kmh")).alias("free_flow_time_s"),
    )
    seg = seg.with_columns(
        pl.coalesce(pl.col("probe_tt_s"), pl.col("length_km") * 3600.0 / pl.col("speed_kmh")).alias("travel_time_s"),
    )
    tti = traffic.tti_from_travel_time(seg["travel_time_s"].fill_null(np.nan).to_numpy(), seg["free_flow_time_s"].to_numpy())
    tpi = traffic.tpi_from_tti(tti, cfg.congestion_standard)
    tpi_lvl = traffic.tpi_level(tpi, cfg.congestion_standard)
    sp_lvl = traffic.speed_level(seg["speed_kmh"].fill_null(np.nan).to_numpy(), seg["road_class"].to_numpy(), cfg.congestion_standard)
    # Vehicle-km weights; probe-only segments get the observed mean volume per lane.
    observed = seg.filter(pl.col("volume_veh").is_not_null())
    per_lane = (observed["volume_veh"].sum() / observed["lanes"].sum()) if observed.height and observed["lanes"].sum() > 0 else 1.0
    seg = seg.with_columns(
        pl.Series("tti", tti, dtype=F64, nan_to_null=True),
        pl.Series("tpi", tpi, dtype=F64, nan_to_null=True),
        pl.Series("tpi_level", tpi_lvl, dtype=I64),
        pl.Series("tpi_level_name", traffic.tpi_level_names(tpi_lvl, cfg.congestion_standard), dtype=S),
        pl.Series("speed_level", sp_lvl, dtype=I64),
        pl.Series("speed_level_name", traffic.tpi_level_names(sp_lvl, cfg.congestion_standard), dtype=S),
        pl.Series("congestion_level", np.where(sp_lvl > 0, sp_lvl, tpi_lvl), dtype=I64),
        (pl.coalesce(pl.col("volume_veh"), pl.col("lanes") * per_lane) * pl.col("length_km")).alias("vkm"),
    )
    return seg.select(
        "segment_id", "district", "cell_id", "road_class", "length_km", "window_end_ms", "volume_veh", "occupancy_pct",
        "speed_kmh", "speed_source", "travel_time_s", "tti", "tpi", "tpi_level", "tpi_level_name", "speed_level",
        "speed_level_name", "congestion_level", "vkm",
    ).sort("segment_id")

def _air_station(frames, refs: CityRefs, t: int, cfg: VitalsConfig) -> pl.DataFrame:
    a1 = _latest(conform_frame(frames, "air_1h"), "sensor_id", t, cfg.air_max_age_s)
    a24 = _latest(conform_frame(frames, "air_24h"), "sensor_id", t, cfg.air_max_age_s)
    o8 = _latest(conform_frame(frames, "air_8h_o3"), "sensor_id", t, cfg.air_max_age_s)
    a1 = a1.select("sensor_id", "window_end_ms", *[pl.col(f"{p}_{pollutant_unit(p)}").alias(f"{p}_1h_{pollutant_unit(p)}") for p in POLLUTANTS])
    a24 = a24.select("sensor_id", pl.col("window_end_ms").alias("_end24"),
                     *[pl.col(f"{p}_{pollutant_unit(p)}").alias(f"{p}_24h_{pollutant_unit(p)}") for p in POLLUTANTS if p != "o3"])
    o8 = o8.select("sensor_id", pl.col("window_end_ms").alias("_end8"), "o3_8h_ugm3")
    st = a1.join(a24, on="sensor_id", how="full", coalesce=True).join(o8, on="sensor_id", how="full", coalesce=True)
    st = st.with_columns(pl.max_horizontal("window_end_ms", "_end24", "_end8").alias("window_end_ms")).drop("_end24", "_end8")
    st = st.join(refs.sensors.select("sensor_id", "district", "cell_id"), on="sensor_id", how="inner")
    conc_cols = [c for c in st.columns if c.endswith(("_ugm3", "_mgm3"))]
    st = st.select("sensor_id", "district", "cell_id", "window_end_ms", *conc_cols).sort("sensor_id")
    return air.aqi(st, "hourly", cfg.aqi_standard, cfg.pm_basis)


def _noise_sensor(frames, refs: CityRefs, t: int, cfg: VitalsConfig, tz: str) -> pl.DataFrame:
    allrows = conform_frame(frames, "noise").join(
        refs.sensors.select("sensor_id", "district", "cell_id"), on="sensor_id", how="inner"
    ).join(refs.cells.select("cell_id", "noise_class"), on="cell_id", how="left")
    allrows = allrows.with_columns(pl.col("noise_class").fill_null("2"))  # unknown cell: GB 3096's mixed zone
    night = noise.is_night(allrows["window_start_ms"].to_numpy(), tz, cfg.noise_standard)
    allrows = allrows.with_columns(pl.Series("is_night", night, dtype=pl.Boolean))
    # Trailing-period energy means (Ld, Ln) weighted by window duration.
    since = t - int(cfg.noise_period_lookback_s * 1000)
    trail = allrows.filter((pl.col("window_end_ms") <= t) & (pl.col("window_end_ms") > since) & pl.col("laeq_db").is_not_null())
    dur = (pl.col("window_end_ms") - pl.col("window_start_ms")).clip(lower_bound=1).cast(F64)
    energy = (dur * (10.0 ** (pl.col("laeq_db") / 10.0)))
    periods = trail.group_by("sensor_id").agg(
        (10.0 * (energy.filter(~pl.col("is_night")).sum() / dur.filter(~pl.col("is_night")).sum()).log10()).alias("laeq_day_db"),
        (10.0 * (energy.filter(pl.col("is_night")).sum() / dur.filter(pl.col("is_night")).sum()).log10()).alias("laeq_night_db"),
    ).with_columns(pl.col("laeq_day_db").fill_nan(None), pl.col("laeq_night_db").fill_nan(None))
    cur = _latest(allrows, "sensor_id", t, cfg.noise_max_age_s).join(periods, on="sensor_id", how="left")
    cls = cur["noise_class"].to_numpy()
    is_n = cur["is_night"].to_numpy().astype(bool)
    lim = noise.limit_db(cls, is_n, cfg.noise_standard)
    lim_day = noise.limit_db(cls, np.zeros(len(cls), bool), cfg.noise_standard)
    lim_night = noise.limit_db(cls, np.ones(len(cls), bool), cfg.noise_standard)

    def col(name: str) -> np.ndarray:
        return cur[name].cast(F64).fill_null(np.nan).to_numpy()

    cur = cur.with_columns(
        pl.Series("period", np.where(is_n, "night", "day"), dtype=S),
        pl.Series("limit_db", lim, dtype=F64),
        pl.Series("exceedance_db", noise.exceedance_db(col("laeq_db"), lim), dtype=F64, nan_to_null=True),
        pl.Series("night_max_exceedance_db", noise.night_max_exceedance_db(col("lamax_db"), lim, is_n, cfg.noise_standard), dtype=F64, nan_to_null=True),
        pl.Series("day_exceedance_db", noise.exceedance_db(col("laeq_day_db"), lim_day), dtype=F64, nan_to_null=True),
        pl.Series("night_exceedance_db", noise.exceedance_db(col("laeq_night_db"), lim_night), dtype=F64, nan_to_null=True),
    )
    return cur.select(
        "sensor_id", "district", "cell_id", "noise_class", "window_start_ms", "window_end_ms", "laeq_db", "lamax_db", "period",
        "limit_db", "exceedance_db", "night_max_exceedance_db", "laeq_day_db", "laeq_night_db", "day_exceedance_db", "night_exceedance_db",
    ).sort("sensor_id")


def _utility_sensor(frames, refs: CityRefs, t: int, cfg: VitalsConfig) -> pl.DataFrame:
    cur = _latest(conform_frame(frames, "utility"), "sensor_id", t, cfg.utility_max_age_s)
    cur = cur.join(refs.sensors.select("sensor_id", "type", "district", "cell_id", "unit", "nominal"), on="sensor_id", how="inner")
    value = utilities.measured_value(cur)
    quantity = utilities.measured_quantity(cur)
    dev = utilities.deviation_pct(value.fill_null(np.nan).to_numpy(), cur["nominal"].fill_null(np.nan).to_numpy())
    ok = utilities.within_tolerance(dev, quantity.to_numpy(), cfg.utility_tolerance_pct)
    cur = cur.with_columns(value, quantity, pl.Series("deviation_pct", dev, dtype=F64, nan_to_null=True),
                           pl.Series("within_tolerance", ok.tolist(), dtype=pl.Boolean))
    return cur.select("sensor_id", "type", "district", "cell_id", "window_end_ms", "unit", "quantity", "value", "nominal",
                      "deviation_pct", "within_tolerance").sort("sensor_id")


def _with_cell_district(frame: pl.DataFrame, refs: CityRefs) -> pl.DataFrame:
    return frame.join(refs.cells.select("cell_id", pl.col("cell_district").alias("district")), on="cell_id", how="left")


def _incidents_with_district(frames, refs: CityRefs, t: int, cfg: VitalsConfig) -> pl.DataFrame:
    inc = conform_frame(frames, "incidents")
    since = t - int(cfg.incident_lookback_s * 1000)
    inc = inc.filter(emergency.active_at(t) | ((pl.col("reported_ms") > since) & (pl.col("reported_ms") <= t)))
    inc = inc.join(refs.segments.select("segment_id", pl.col("district").alias("seg_district")), on="segment_id", how="left")
    near = nearest_cell(inc["lon"].fill_null(np.nan).to_numpy(), inc["lat"].fill_null(np.nan).to_numpy(), refs.cells)
    cell_d = refs.cells["cell_district"].to_numpy()
    near_d = np.where(near >= 0, cell_d[np.clip(near, 0, None)] if len(cell_d) else None, None) if len(near) else np.empty(0, dtype=object)
    return inc.with_columns(pl.coalesce(pl.col("seg_district"), pl.Series("near", near_d.tolist(), dtype=S)).alias("district")).drop("seg_district")


def _sensor_status(frames, refs: CityRefs, t: int, cfg: VitalsConfig) -> pl.DataFrame:
    seen = conform_frame(frames, "sensor_last_seen").group_by("sensor_id").agg(pl.col("last_seen_ms").max())
    reg = refs.sensors.join(seen, on="sensor_id", how="left")
    interval = np.asarray([cfg.expected_interval_s.get(tp, 3600.0) for tp in reg["type"].to_list()], dtype=np.float64)
    code = sensors.freshness(reg["last_seen_ms"].cast(F64).fill_null(np.nan).to_numpy(), t, interval, cfg.fresh_factor, cfg.silent_factor)
    if "sensor_last_seen" not in frames:
        # No last-seen table at all: freshness is unknown (null shares), not "everything silent".
        code = np.full(len(code), -1, dtype=np.int64)
    return reg.with_columns(pl.Series("freshness", code, dtype=I64))


def _sensor_aggs() -> list[pl.Expr]:
    n = pl.len()
    code = pl.col("freshness")
    known = (code >= 0).sum()

    def share(pred: pl.Expr, name: str) -> pl.Expr:
        return pl.when(known > 0).then(pred.sum() / known).otherwise(None).alias(name)

    return [
        n.cast(I64).alias("registered"),
        *[(code == k).sum().cast(I64).alias(name) for k, name in enumerate(sensors.FRESHNESS_NAMES)],
        share(code == sensors.FRESH, "fresh_share"),
        share(code == sensors.STALE, "stale_share"),
        share((code == sensors.SILENT) | (code == sensors.NEVER), "silent_share"),
        share((code >= 0) & (code != sensors.NEVER), "reported_share"),
        (pl.col("metadata_complete").sum() / n).alias("metadata_complete_share"),
    ]


# --- areas (districts and the whole city) -----------------------------------------------------------
def _area_figures(key: pl.Expr, seg, air_st, noise_st, util_st, outages, cases, incidents, status, t: int, cfg: VitalsConfig) -> pl.DataFrame:
    """One row per area value of ``key`` (a district column, or a literal for the city)."""

    def by_area(frame: pl.DataFrame, aggs) -> pl.DataFrame:
        return frame.with_columns(key.alias("area")).filter(pl.col("area").is_not_null()).group_by("area").agg(aggs)

    parts = []
    parts.append(by_area(seg, traffic.network_aggregations(cfg.congested_min_level)))
    conc_cols = [c for c in air_st.columns if c.endswith(("_ugm3", "_mgm3"))]
    air_area = by_area(air_st, [pl.col(c).mean() for c in conc_cols])
    air_area = air.aqi(air_area, "hourly", cfg.aqi_standard, cfg.pm_basis).select(
        "area", "aqi", pl.col("level").alias("aqi_level"), pl.col("category_zh").alias("aqi_category_zh"),
        pl.col("colour_hex").alias("aqi_colour_hex"), "primary_pollutant")
    parts.append(air_area)
    measured = pl.col("laeq_db").is_not_null()
    parts.append(by_area(noise_st, [
        measured.sum().cast(I64).alias("noise_sensors"),
        (10.0 * (10.0 ** (pl.col("laeq_db") / 10.0)).filter(measured).mean().log10()).alias("noise_laeq_db"),
        (pl.col("exceedance_db").filter(measured) <= 0).mean().alias("noise_within_limit_share"),
        pl.col("exceedance_db").max().alias("noise_max_exceedance_db"),
    ]))
    g = grid.case_metrics(cases.with_columns(key.alias("area")).filter(pl.col("area").is_not_null()), t, by=["area"], lookback_s=cfg.case_lookback_s)
    parts.append(g.select("area", pl.col("new_last_hour").alias("cases_new_last_hour"), pl.col("open_backlog").alias("cases_open"),
                          pl.col("overdue").alias("cases_overdue"), pl.col("on_time_closure_rate").alias("cases_on_time_rate"),
                          pl.col("mean_time_to_close_h").alias("cases_mean_time_to_close_h")))
    parts.append(by_area(util_st, [
        pl.col("within_tolerance").filter(pl.col("within_tolerance").is_not_null()).mean().alias("utility_within_tolerance_share"),
        pl.col("deviation_pct").abs().max().alias("utility_max_abs_deviation_pct"),
    ]))
    o = utilities.active_outages(outages.with_columns(key.alias("area")).filter(pl.col("area").is_not_null()), t, by=["area"])
    parts.append(o.select("area", pl.col("active_outages").alias("outages_active"), pl.col("customers_affected").alias("outage_customers")))
    e = emergency.incident_metrics(incidents.with_columns(key.alias("area")).filter(pl.col("area").is_not_null()), t, by=["area"],
                                   lookback_s=cfg.incident_lookback_s)
    parts.append(e.select("area", pl.col("active_incidents").alias("incidents_active"),
                          *[pl.col(f"active_sev{s}").alias(f"incidents_active_sev{s}") for s in (1, 2, 3, 4)],
                          "mean_dispatch_delay_s", "mean_arrival_delay_s"))
    s = by_area(status, _sensor_aggs())
    parts.append(s.select("area", pl.col("registered").alias("sensors_registered"), pl.col("fresh_share").alias("sensors_fresh_share"),
                          pl.col("silent_share").alias("sensors_silent_share"), pl.col("reported_share").alias("registry_reported_share"),
                          pl.col("metadata_complete_share").alias("registry_metadata_share")))
    return parts



def _health_columns(arr, n_rows: int, city: City, cfg: VitalsConfig) -> list[pl.Series]:
    """:func:`area_health_arrays` as the columns ``tpi_level, tpi_level_name, score_*, health_index``."""
    h = area_health_arrays(arr, n_rows, city, cfg)
    lvl = h.pop("tpi_level")
    return [
        pl.Series("tpi_level", lvl, dtype=I64).replace(0, None),
        pl.Series("tpi_level_name", traffic.tpi_level_names(lvl, cfg.congestion_standard), dtype=S),
        *[pl.Series(k, v, dtype=F64, nan_to_null=True) for k, v in h.items()],
    ]


def _assemble(areas: pl.DataFrame, parts: list[pl.DataFrame], city: City, t: int, cfg: VitalsConfig) -> pl.DataFrame:
    out = areas
    for p in parts:
        out = out.join(p.with_columns(pl.col("area").cast(S)), on="area", how="left")
    zero_cols = ["cases_new_last_hour", "cases_open", "cases_overdue", "outages_active", "outage_customers", "incidents_active",
                 "incidents_active_sev1", "incidents_active_sev2", "incidents_active_sev3", "incidents_active_sev4",
                 "noise_sensors", "sensors_registered"]
    out = out.with_columns([pl.col(c).fill_null(0) for c in zero_cols])
    out = out.with_columns([pl.col(c).fill_nan(None) for c, dt in out.schema.items() if dt == F64])

    def arr(name: str) -> np.ndarray:
        return out[name].cast(F64).fill_null(np.nan).to_numpy()

    out = out.with_columns(
        pl.lit(t, dtype=I64).alias("window_end_ms"),
        *_health_columns(arr, out.height, city, cfg),
    )
    return out.rename({"area": "district"}).select(*AREA_COLUMNS)
