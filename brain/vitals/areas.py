"""The district and city rows of the vital signs: their columns, and the health figures computed over
them (shared by the vectorised path and the one-window reference).

Example:
    >>> AREA_COLUMNS[:3], AREA_COLUMNS[-1]
    (('district', 'name', 'window_end_ms'), 'health_index')
"""
from __future__ import annotations

import numpy as np

from brain.city.model import City
from brain.vitals import health, traffic
from brain.vitals.config import VitalsConfig

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


def area_health_arrays(arr, n_rows: int, city: City, cfg: VitalsConfig) -> dict[str, np.ndarray]:
    """TPI level (0: unknown), the six sub-scores and the health index (NaN: not measured), from
    ``arr(column) -> array`` over the assembled district/city rows (shared by the one-window and the batch paths).

    >>> import numpy as np
    >>> from brain.city import demo_city_path, load_city
    >>> rows = {"tpi": np.array([7.33]), "sensors_fresh_share": np.array([1.0])}
    >>> h = area_health_arrays(lambda c: rows.get(c, np.array([np.nan])), 1, load_city(demo_city_path()), VitalsConfig())
    >>> int(h["tpi_level"][0]), round(float(h["score_traffic"][0]), 1)
    (4, 26.7)
    """
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
