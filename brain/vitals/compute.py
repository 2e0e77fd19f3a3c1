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

import numpy as np
import polars as pl

from brain.city.model import City
from brain.vitals.batch import TICK_ONLY_TABLES, _compute
from brain.vitals.config import VitalsConfig
from brain.vitals.inputs import INPUT_SCHEMAS


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
    t = int(window_end_ms)
    tables = _compute(window_frames, city, [t], t, cfg)
    return {name: frame.drop("tick_end_ms", *(("window_end_ms",) if name in TICK_ONLY_TABLES else ()))
            for name, frame in tables.items()}
