"""``compute_vitals``: the city's vital signs (城市生命体征) for one window end, from per-window aggregates.

Input (``window_frames``, polars DataFrames keyed by name; a missing name or empty frame means no
data; times are Unix epoch ms UTC):

================ ==========================================================================================
name             columns
================ ==========================================================================================
traffic          segment_id, window_start_ms, window_end_ms, volume_veh, speed_kmh, occupancy_pct, n_readings
probe            segment_id, window_start_ms, window_end_ms, travel_time_s, n_readings
air_1h           sensor_id, window_start_ms, window_end_ms, pm25_ugm3, pm10_ugm3, so2_ugm3, no2_ugm3, o3_ugm3,
                 co_mgm3
air_24h          as air_1h, 24-hour moving means ending at window_end_ms
air_8h_o3        sensor_id, window_end_ms, o3_8h_ugm3
noise            sensor_id, window_start_ms, window_end_ms, laeq_db, lamax_db
utility          sensor_id, window_start_ms, window_end_ms, pressure_kpa, flow_m3h, load_kw
outages          outage_id, utility, cell_id, customers, started_ms, ended_ms (null while active)
cases            case_id, category, cell_id, unit, reported_ms, dispatched_ms, closed_ms, deadline_ms, status
incidents        incident_id, type, severity, lon, lat, reported_ms, dispatched_ms, on_scene_ms, closed_ms,
                 status, segment_id, units
sensor_last_seen sensor_id, last_seen_ms (null = never seen)
================ ==========================================================================================

``compute_vitals`` runs :func:`brain.vitals.compute_vitals_batch` (which computes many window
ends in one vectorised pass) for the one window end.

For windowed frames the value used per key is the latest window ending at or before
``window_end_ms`` and no older than the family's ``*_max_age_s`` (so hourly air windows and
minute traffic windows can be combined at any window end). State frames (outages, cases,
incidents) are evaluated at ``window_end_ms``.

Output (``dict[str, polars.DataFrame]``):

* ``segment_traffic``: per segment with data: ``segment_id, district, cell_id, road_class,
  length_km, window_end_ms, volume_veh, occupancy_pct, speed_kmh, speed_source`` (probe speed =
  length / travel time when a probe time exists, else the detector speed; a detector window with
  no vehicle gives no speed) ``, travel_time_s, tti, tpi, tpi_level, tpi_level_name, speed_level,
  speed_level_name, congestion_level`` (speed level, or the TPI level when no speed) ``, vkm``
  (vehicle-km = volume x length; a segment without detector volume is given the mean volume
  per lane of the observed segments times its lanes, so probe-only segments still weigh in).
* ``air_station``: per air station: ``sensor_id, district, cell_id, window_end_ms`` and the
  concentrations (``<pollutant>_1h_<unit>``, ``<pollutant>_24h_<unit>``, ``o3_8h_ugm3``), then the
  columns of :func:`brain.vitals.air.aqi` (hourly report).
* ``noise_sensor``: per noise sensor: ``sensor_id, district, cell_id, noise_class,
  window_start_ms, window_end_ms, laeq_db, lamax_db, period`` (day/night)``, limit_db,
  exceedance_db, night_max_exceedance_db, laeq_day_db, laeq_night_db`` (energy means over the
  trailing ``noise_period_lookback_s`` by period) ``, day_exceedance_db, night_exceedance_db``.
* ``utility_sensor``: ``sensor_id, type, district, cell_id, window_end_ms, unit, quantity``
  (pressure_kpa / flow_m3h / load_kw, from the unit) ``, value, nominal, deviation_pct,
  within_tolerance`` (``|deviation| <=`` the quantity's ``utility_tolerance_pct``).
* ``utility_outages``: active outages by ``district, utility``: ``active_outages, customers_affected``.
* ``grid_cell``: ``cell_id, district`` + :data:`brain.vitals.grid.METRIC_COLUMNS`;
  ``grid_category``: ``category`` + the same metrics (whole city).
* ``emergency``: ``district, type, severity`` + :data:`brain.vitals.emergency.METRIC_COLUMNS`
  over incidents active at the window end or reported within ``incident_lookback_s``. An
  incident is placed in its segment's district, or else in the district of the nearest grid cell centre.
* ``sensor_health``: per ``district, family``: ``registered, fresh, stale, silent, never,
  fresh_share, stale_share, silent_share`` (never-seen counted as silent) ``, reported_share,
  metadata_complete_share``. Without a ``sensor_last_seen`` frame the freshness shares are null
  (unknown); with one, a registered sensor missing from it has never been seen.
* ``district``: one row per district of the city (also those without data), and ``city``: one
  row for the whole city (``district`` = null, figures computed over all the city's data, not
  averaged over districts). Columns: ``district, name, window_end_ms``; traffic ``tpi, tpi_level,
  tpi_level_name, tti, mean_speed_kmh, congested_km_share, vkm, road_km_observed``; air ``aqi,
  aqi_level, aqi_category_zh, aqi_colour_hex, primary_pollutant`` (AQI of the mean concentrations
  of the area's stations, as HJ 633 does for a city); noise ``noise_sensors, noise_laeq_db,
  noise_within_limit_share, noise_max_exceedance_db``; grid ``cases_new_last_hour, cases_open,
  cases_overdue, cases_on_time_rate, cases_mean_time_to_close_h``; utilities
  ``utility_within_tolerance_share, utility_max_abs_deviation_pct, outages_active,
  outage_customers``; emergency ``incidents_active, incidents_active_sev1..4,
  mean_dispatch_delay_s, mean_arrival_delay_s``; sensors ``sensors_registered,
  sensors_fresh_share, sensors_silent_share, registry_reported_share, registry_metadata_share``;
  health ``score_traffic, score_environment, score_grid, score_utilities, score_emergency,
  score_sensors, health_index`` (see :mod:`brain.vitals.health`; weights from ``city.health_weights``).

Example (a one-district city with one arterial segment: 800 m at free flow 60 km/h, 48 s; its
detector window saw 120 vehicles at 30 km/h -> TTI 60/30 = 2.0 -> TPI 6 + (2.0-1.8)/0.3*2 = 7.33,
中度拥堵; by speed band 30 km/h is in the arterial (20, 30] band, 轻度拥堵):
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
    ...     "volume_veh": [120.0], "speed_kmh": [30.0], "occupancy_pct": [18.0], "n_readings": [5]})
    >>> out = compute_vitals({"traffic": traffic}, city, 300_000)
    >>> out["segment_traffic"].select("tti", "speed_level_name").row(0)
    (2.0, '轻度拥堵')
    >>> d = out["district"].row(0, named=True)
    >>> round(d["tpi"], 2), d["tpi_level_name"], d["score_traffic"] == 100 - 10 * d["tpi"]
    (7.33, '中度拥堵', True)
"""
from __future__ import annotations

from collections.abc import Mapping

import msgspec
import numpy as np
import polars as pl

from brain.city.model import SENSOR_FAMILY, City
from brain.vitals import air, emergency, grid, health, noise, sensors, traffic, utilities

S, I64, F64 = pl.String, pl.Int64, pl.Float64
_WINDOW = {"window_start_ms": I64, "window_end_ms": I64}
_POLL = {"pm25_ugm3": F64, "pm10_ugm3": F64, "so2_ugm3": F64, "no2_ugm3": F64, "o3_ugm3": F64, "co_mgm3": F64}

#: Input frame schemas: name -> (column -> dtype, required columns).
INPUT_SCHEMAS: dict[str, tuple[dict[str, pl.DataType], tuple[str, ...]]] = {
    "traffic": ({"segment_id": S, **_WINDOW, "volume_veh": F64, "speed_kmh": F64, "occupancy_pct": F64, "n_readings": I64},
                ("segment_id", "window_end_ms", "volume_veh", "speed_kmh")),
    "probe": ({"segment_id": S, **_WINDOW, "travel_time_s": F64, "n_readings": I64}, ("segment_id", "window_end_ms", "travel_time_s")),
    "air_1h": ({"sensor_id": S, **_WINDOW, **_POLL}, ("sensor_id", "window_end_ms")),
    "air_24h": ({"sensor_id": S, **_WINDOW, **_POLL}, ("sensor_id", "window_end_ms")),
    "air_8h_o3": ({"sensor_id": S, "window_end_ms": I64, "o3_8h_ugm3": F64}, ("sensor_id", "window_end_ms", "o3_8h_ugm3")),
    "noise": ({"sensor_id": S, **_WINDOW, "laeq_db": F64, "lamax_db": F64}, ("sensor_id", "window_start_ms", "window_end_ms", "laeq_db")),
    "utility": ({"sensor_id": S, **_WINDOW, "pressure_kpa": F64, "flow_m3h": F64, "load_kw": F64}, ("sensor_id", "window_end_ms")),
    "outages": ({"outage_id": S, "utility": S, "cell_id": S, "customers": I64, "started_ms": I64, "ended_ms": I64},
                ("outage_id", "utility", "cell_id", "started_ms", "ended_ms")),
    "cases": ({"case_id": S, "category": S, "cell_id": S, "unit": S, "reported_ms": I64, "dispatched_ms": I64,
               "closed_ms": I64, "deadline_ms": I64, "status": S}, grid.CASE_COLUMNS),
    "incidents": ({"incident_id": S, "type": S, "severity": I64, "lon": F64, "lat": F64, "reported_ms": I64,
                   "dispatched_ms": I64, "on_scene_ms": I64, "closed_ms": I64, "status": S, "segment_id": S, "units": I64},
                  emergency.INCIDENT_COLUMNS + ("lon", "lat")),
    "sensor_last_seen": ({"sensor_id": S, "last_seen_ms": I64}, ("sensor_id", "last_seen_ms")),
}


class VitalsConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Settings of :func:`compute_vitals`; validated at construction.

    >>> VitalsConfig(traffic_max_age_s=0)
    Traceback (most recent call last):
    ...
    ValueError: traffic_max_age_s must be > 0, got 0
    """

    aqi_standard: str = air.DEFAULT_STANDARD
    noise_standard: str = noise.DEFAULT_STANDARD
    congestion_standard: str = traffic.DEFAULT_STANDARD
    pm_basis: str | None = None  # None: the AQI table's realtime_pm_basis
    traffic_max_age_s: float = 900.0
    air_max_age_s: float = 7200.0
    noise_max_age_s: float = 900.0
    utility_max_age_s: float = 900.0
    noise_period_lookback_s: float = 86_400.0
    case_lookback_s: float = 86_400.0
    incident_lookback_s: float = 86_400.0
    congested_min_level: int = 4
    fresh_factor: float = 2.0
    silent_factor: float = 10.0
    expected_interval_s: dict[str, float] = msgspec.field(default_factory=lambda: dict(sensors.DEFAULT_EXPECTED_INTERVAL_S))
    utility_tolerance_pct: dict[str, float] = msgspec.field(default_factory=lambda: dict(utilities.DEFAULT_TOLERANCE_PCT))
    scoring: health.HealthScoring = msgspec.field(default_factory=health.HealthScoring)

    def __post_init__(self) -> None:
        for name in ("traffic_max_age_s", "air_max_age_s", "noise_max_age_s", "utility_max_age_s",
                     "noise_period_lookback_s", "case_lookback_s", "incident_lookback_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not 1 <= self.congested_min_level <= 5:
            raise ValueError(f"congested_min_level must be in 1..5, got {self.congested_min_level}")
        if not 0 < self.fresh_factor <= self.silent_factor:
            raise ValueError(f"need 0 < fresh_factor <= silent_factor, got {self.fresh_factor}, {self.silent_factor}")
        if self.pm_basis not in (None, "1h", "24h"):
            raise ValueError(f"pm_basis must be None, '1h' or '24h', not {self.pm_basis!r}")
        bad = {k: v for k, v in self.expected_interval_s.items() if not v > 0}
        if bad:
            raise ValueError(f"expected_interval_s values must be > 0, got {bad}")
        bad = {k: v for k, v in self.utility_tolerance_pct.items() if k not in utilities.QUANTITIES or not v > 0}
        if bad:
            raise ValueError(f"utility_tolerance_pct needs quantities {utilities.QUANTITIES} with values > 0, got {bad}")
        # Load the tables now so a wrong standard name fails here, not mid-stream.
        air.aqi_table(self.aqi_standard)
        noise.noise_table(self.noise_standard)
        traffic.congestion_table(self.congestion_standard)


# --- inputs and reference frames ------------------------------------------------------------------
def _conform(frames: Mapping[str, pl.DataFrame], name: str) -> pl.DataFrame:
    schema, required = INPUT_SCHEMAS[name]
    frame = frames.get(name)
    if frame is None:
        return pl.DataFrame(schema=schema)
    if not isinstance(frame, pl.DataFrame):
        raise ValueError(f"window frame {name!r} must be a polars DataFrame, got {type(frame).__name__}")
    if frame.height == 0 and not frame.columns:
        return pl.DataFrame(schema=schema)
    have = frame.schema
    if all(have.get(col) == dtype for col, dtype in schema.items()):
        # Already in shape (the streaming core's frames): no per-column cast expressions to build.
        return frame if list(have) == list(schema) else frame.select(list(schema))
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"window frame {name!r} lacks column(s) {missing}")
    exprs = []
    for col, dtype in schema.items():
        if col not in frame.columns:
            exprs.append(pl.lit(None, dtype=dtype).alias(col))
        elif col.endswith("_ms") and isinstance(frame.schema[col], pl.Datetime):
            # A plain cast would give the datetime's own unit (often µs), not epoch ms.
            exprs.append(pl.col(col).dt.epoch("ms").alias(col))
        else:
            exprs.append(pl.col(col).cast(dtype))
    try:
        return frame.select(exprs)
    except (pl.exceptions.InvalidOperationError, pl.exceptions.ComputeError) as exc:
        raise ValueError(f"window frame {name!r}: a column has the wrong type ({exc})") from None


def _latest(frame: pl.DataFrame, key: str, t_ms: int, max_age_s: float) -> pl.DataFrame:
    """Latest window per key ending in (t - max_age, t]."""
    since = t_ms - int(max_age_s * 1000)
    recent = frame.filter((pl.col("window_end_ms") <= t_ms) & (pl.col("window_end_ms") > since))
    return recent.sort("window_end_ms").unique(subset=[key], keep="last").sort(key)


class _Refs:
    """Columnar views of the city model, built once per City."""

    def __init__(self, city: City) -> None:
        segs = city.segments
        self.segments = pl.DataFrame({
            "segment_id": [s.id for s in segs], "district": [s.district for s in segs], "cell_id": [s.cell for s in segs],
            "road_class": [s.road_class for s in segs], "length_km": [s.length_m / 1000.0 for s in segs],
            "free_flow_kmh": [s.free_flow_kmh for s in segs], "lanes": [s.lanes for s in segs],
        }, schema={"segment_id": S, "district": S, "cell_id": S, "road_class": S, "length_km": F64, "free_flow_kmh": F64, "lanes": I64})
        cells = city.cells
        self.cells = pl.DataFrame({
            "cell_id": [c.id for c in cells], "cell_district": [c.district for c in cells], "noise_class": [c.noise_class for c in cells],
            "lon": [c.center[0] for c in cells], "lat": [c.center[1] for c in cells],
        }, schema={"cell_id": S, "cell_district": S, "noise_class": S, "lon": F64, "lat": F64})
        sens = city.sensors
        self.sensors = pl.DataFrame({
            "sensor_id": [s.id for s in sens], "type": [s.type for s in sens],
            "family": [SENSOR_FAMILY.get(s.type, "unknown") for s in sens], "district": [s.district for s in sens],
            "cell_id": [s.cell for s in sens], "unit": [s.unit for s in sens], "nominal": [s.nominal for s in sens],
            "metadata_complete": sensors.metadata_complete(city).tolist(),
        }, schema={"sensor_id": S, "type": S, "family": S, "district": S, "cell_id": S, "unit": S, "nominal": F64, "metadata_complete": pl.Boolean})
        self.districts = pl.DataFrame({"district": [d.id for d in city.districts], "name": [d.name for d in city.districts]},
                                      schema={"district": S, "name": S})


def _refs(city: City) -> _Refs:
    cache = city.__dict__.setdefault("_indexes", {})
    if "vitals_refs" not in cache:
        cache["vitals_refs"] = _Refs(city)
    return cache["vitals_refs"]


def _nearest_cell(lon: np.ndarray, lat: np.ndarray, cells: pl.DataFrame) -> np.ndarray:
    """Index of the nearest cell centre (equirectangular distance; cities are small)."""
    if len(lon) == 0 or cells.height == 0:
        return np.full(len(lon), -1, dtype=np.int64)
    clon = cells["lon"].to_numpy()
    clat = cells["lat"].to_numpy()
    k = np.cos(np.radians(np.nanmean(clat)))
    out = np.empty(len(lon), dtype=np.int64)
    step = max(1, 2_000_000 // len(clon))  # bound the distance block to ~16 MB
    for i in range(0, len(lon), step):
        d2 = ((lon[i:i + step, None] - clon[None, :]) * k) ** 2 + (lat[i:i + step, None] - clat[None, :]) ** 2
        out[i:i + step] = np.argmin(np.nan_to_num(d2, nan=np.inf), axis=1)
    return np.where(np.isfinite(lon) & np.isfinite(lat), out, -1)


# --- families ---------------------------------------------------------------------------------------
def _segment_traffic(frames, refs: _Refs, t: int, cfg: VitalsConfig) -> pl.DataFrame:
    det = _latest(_conform(frames, "traffic"), "segment_id", t, cfg.traffic_max_age_s)
    prb = _latest(_conform(frames, "probe"), "segment_id", t, cfg.traffic_max_age_s)
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


_POLLUTANTS = ("pm25", "pm10", "so2", "no2", "o3", "co")


def _unit(p: str) -> str:
    return "mgm3" if p == "co" else "ugm3"


def _air_station(frames, refs: _Refs, t: int, cfg: VitalsConfig) -> pl.DataFrame:
    a1 = _latest(_conform(frames, "air_1h"), "sensor_id", t, cfg.air_max_age_s)
    a24 = _latest(_conform(frames, "air_24h"), "sensor_id", t, cfg.air_max_age_s)
    o8 = _latest(_conform(frames, "air_8h_o3"), "sensor_id", t, cfg.air_max_age_s)
    a1 = a1.select("sensor_id", "window_end_ms", *[pl.col(f"{p}_{_unit(p)}").alias(f"{p}_1h_{_unit(p)}") for p in _POLLUTANTS])
    a24 = a24.select("sensor_id", pl.col("window_end_ms").alias("_end24"),
                     *[pl.col(f"{p}_{_unit(p)}").alias(f"{p}_24h_{_unit(p)}") for p in _POLLUTANTS if p != "o3"])
    o8 = o8.select("sensor_id", pl.col("window_end_ms").alias("_end8"), "o3_8h_ugm3")
    st = a1.join(a24, on="sensor_id", how="full", coalesce=True).join(o8, on="sensor_id", how="full", coalesce=True)
    st = st.with_columns(pl.max_horizontal("window_end_ms", "_end24", "_end8").alias("window_end_ms")).drop("_end24", "_end8")
    st = st.join(refs.sensors.select("sensor_id", "district", "cell_id"), on="sensor_id", how="inner")
    conc_cols = [c for c in st.columns if c.endswith(("_ugm3", "_mgm3"))]
    st = st.select("sensor_id", "district", "cell_id", "window_end_ms", *conc_cols).sort("sensor_id")
    return air.aqi(st, "hourly", cfg.aqi_standard, cfg.pm_basis)


def _noise_sensor(frames, refs: _Refs, t: int, cfg: VitalsConfig, tz: str) -> pl.DataFrame:
    allrows = _conform(frames, "noise").join(
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


def _utility_sensor(frames, refs: _Refs, t: int, cfg: VitalsConfig) -> pl.DataFrame:
    cur = _latest(_conform(frames, "utility"), "sensor_id", t, cfg.utility_max_age_s)
    cur = cur.join(refs.sensors.select("sensor_id", "type", "district", "cell_id", "unit", "nominal"), on="sensor_id", how="inner")
    value = utilities.measured_value(cur)
    quantity = utilities.measured_quantity(cur)
    dev = utilities.deviation_pct(value.fill_null(np.nan).to_numpy(), cur["nominal"].fill_null(np.nan).to_numpy())
    ok = utilities.within_tolerance(dev, quantity.to_numpy(), cfg.utility_tolerance_pct)
    cur = cur.with_columns(value, quantity, pl.Series("deviation_pct", dev, dtype=F64, nan_to_null=True),
                           pl.Series("within_tolerance", ok.tolist(), dtype=pl.Boolean))
    return cur.select("sensor_id", "type", "district", "cell_id", "window_end_ms", "unit", "quantity", "value", "nominal",
                      "deviation_pct", "within_tolerance").sort("sensor_id")


def _with_cell_district(frame: pl.DataFrame, refs: _Refs) -> pl.DataFrame:
    return frame.join(refs.cells.select("cell_id", pl.col("cell_district").alias("district")), on="cell_id", how="left")


def _incidents_with_district(frames, refs: _Refs, t: int, cfg: VitalsConfig) -> pl.DataFrame:
    inc = _conform(frames, "incidents")
    since = t - int(cfg.incident_lookback_s * 1000)
    inc = inc.filter(emergency.active_at(t) | ((pl.col("reported_ms") > since) & (pl.col("reported_ms") <= t)))
    inc = inc.join(refs.segments.select("segment_id", pl.col("district").alias("seg_district")), on="segment_id", how="left")
    near = _nearest_cell(inc["lon"].fill_null(np.nan).to_numpy(), inc["lat"].fill_null(np.nan).to_numpy(), refs.cells)
    cell_d = refs.cells["cell_district"].to_numpy()
    near_d = np.where(near >= 0, cell_d[np.clip(near, 0, None)] if len(cell_d) else None, None) if len(near) else np.empty(0, dtype=object)
    return inc.with_columns(pl.coalesce(pl.col("seg_district"), pl.Series("near", near_d.tolist(), dtype=S)).alias("district")).drop("seg_district")


def _sensor_status(frames, refs: _Refs, t: int, cfg: VitalsConfig) -> pl.DataFrame:
    seen = _conform(frames, "sensor_last_seen").group_by("sensor_id").agg(pl.col("last_seen_ms").max())
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


def _health_arrays(arr, n_rows: int, city: City, cfg: VitalsConfig) -> dict[str, np.ndarray]:
    """TPI level (0: unknown), the six sub-scores and the health index (NaN: not measured), from
    ``arr(column) -> array`` over the assembled district/city rows (shared by the one-window and the batch paths)."""
    sc = cfg.scoring
    out = {"tpi_level": traffic.tpi_level(arr("tpi"), cfg.congestion_standard)}
    scores = {
        "traffic": health.traffic_score(arr("tpi")),
        "environment": health.environment_score(arr("aqi"), arr("noise_within_limit_share"), sc),
        "grid": health.grid_score(arr("cases_open"), arr("cases_overdue"), arr("cases_on_time_rate")),
        "utilities": health.utilities_score(arr("utility_within_tolerance_share"), arr("outage_customers"), sc),
        "emergency": health.emergency_score(np.column_stack([arr(f"incidents_active_sev{s}") for s in (1, 2, 3, 4)]), sc)
        if n_rows else np.empty(0),
        "sensors": health.sensors_score(arr("sensors_fresh_share")),
    }
    out.update({f"score_{k}": v for k, v in scores.items()})
    out["health_index"] = health.health_index(scores, city.health_weights) if n_rows else np.empty(0)
    return out


def _health_columns(arr, n_rows: int, city: City, cfg: VitalsConfig) -> list[pl.Series]:
    """:func:`_health_arrays` as the columns ``tpi_level, tpi_level_name, score_*, health_index``."""
    h = _health_arrays(arr, n_rows, city, cfg)
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


#: Columns of the ``district`` table, in order (the batch path in ``brain.vitals.stack`` builds the same).
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


def compute_vitals(window_frames: Mapping[str, pl.DataFrame], city: City, window_end_ms: int,
                   config: VitalsConfig | None = None) -> dict[str, pl.DataFrame]:
    """All vital-sign frames for the window ending at ``window_end_ms`` (see the module docstring).

    ``window_frames`` maps input names (:data:`INPUT_SCHEMAS`) to polars frames; missing names are
    empty. ``config`` defaults to :class:`VitalsConfig` ().

    >>> from brain.city import demo_city_path, load_city
    >>> out = compute_vitals({}, load_city(demo_city_path()), 0)
    >>> sorted(out)[:4], out["city"].height
    (['air_station', 'city', 'district', 'emergency'], 1)
    """
    cfg = config or VitalsConfig()
    unknown = set(window_frames) - set(INPUT_SCHEMAS)
    if unknown:
        raise ValueError(f"unknown window frame(s) {sorted(unknown)}; expected some of {', '.join(INPUT_SCHEMAS)}")
    if isinstance(window_end_ms, bool) or not isinstance(window_end_ms, (int, np.integer)):
        raise ValueError(f"window_end_ms must be an integer epoch time in ms, got {window_end_ms!r}")
    if not isinstance(city, City):
        raise ValueError(f"city must be a brain.city.model.City, got {type(city).__name__}")
    from brain.vitals.batch import TICK_ONLY_TABLES, _compute

    t = int(window_end_ms)
    tables = _compute(window_frames, city, [t], t, cfg)
    return {name: frame.drop("tick_end_ms", *(("window_end_ms",) if name in TICK_ONLY_TABLES else ()))
            for name, frame in tables.items()}


def _compute_vitals_reference(window_frames: Mapping[str, pl.DataFrame], city: City, window_end_ms: int,
                              config: VitalsConfig | None = None) -> dict[str, pl.DataFrame]:
    """The plain one-window formulation of :func:`compute_vitals` (one polars step after another),
    kept as the reference the vectorised :func:`brain.vitals.compute_vitals_batch` is tested against."""
    cfg = config or VitalsConfig()
    t = int(window_end_ms)
    refs = _refs(city)

    seg = _segment_traffic(window_frames, refs, t, cfg)
    air_st = _air_station(window_frames, refs, t, cfg)
    noise_st = _noise_sensor(window_frames, refs, t, cfg, city.timezone)
    util_st = _utility_sensor(window_frames, refs, t, cfg)
    outages = _with_cell_district(_conform(window_frames, "outages"), refs)
    # A case reported after t does not exist yet at t (no zero row for its cell or category).
    cases = _with_cell_district(_conform(window_frames, "cases"), refs).filter(pl.col("reported_ms") <= t)
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
