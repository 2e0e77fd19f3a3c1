"""City vital signs (城市生命体征): traffic, environment, grid cases, utilities, emergency, sensor health.

Pure, vectorised formulas over numpy arrays and polars frames, one module per family, with the
standards' tables kept as versioned data in ``brain/vitals/tables/``:

* :mod:`brain.vitals.air`: IAQI / AQI after HJ 633-2012 (1 h and 24 h rules, primary pollutant, level, colour),
  real-time (hourly) and daily reports, daily-report inputs from hourly means.
* :mod:`brain.vitals.traffic`: TTI, TPI 0-10 and levels, speed bands, congested road-km share.
* :mod:`brain.vitals.noise`: day/night period, GB 3096-2008 limits, exceedance, night sudden-maximum rule.
* :mod:`brain.vitals.grid`: grid-case lifecycle metrics (new, backlog, overdue, on-time rate, time to close),
  and :func:`case_state` to fold case update records into the per-case state those metrics read
  (likewise :func:`incident_state` and :func:`outage_state`).
* :mod:`brain.vitals.utilities`: deviation from nominal, active outages and customers affected.
* :mod:`brain.vitals.emergency`: active incidents by type and severity, dispatch and arrival delays.
* :mod:`brain.vitals.sensors`: fresh / stale / silent shares and registry completeness.
* :mod:`brain.vitals.health`: the composite 0-100 district health index.
* :func:`compute_vitals`: everything for one window end, from the streaming core's per-window frames;
  :func:`compute_vitals_batch`: the same for K window ends in one vectorised pass.

Example:
    >>> iaqi("pm25", [80.0], "24h").tolist()
    [107.0]
    >>> tpi_from_tti([1.5]).tolist()
    [4.0]
"""
from brain.vitals.air import aqi, aqi_level, aqi_table, component_iaqis, daily_concentrations, iaqi
from brain.vitals.batch import compute_vitals_batch, split_ticks
from brain.vitals.compute import compute_vitals
from brain.vitals.config import VitalsConfig
from brain.vitals.inputs import INPUT_SCHEMAS
from brain.vitals.emergency import incident_metrics, incident_state
from brain.vitals.grid import case_metrics, case_state
from brain.vitals.health import HealthScoring, health_index, normalised_weights
from brain.vitals.noise import energy_mean_db, exceedance_db, is_night, limit_db, night_max_exceedance_db
from brain.vitals.sensors import freshness, metadata_complete, metadata_problems
from brain.vitals.traffic import (
    congested_share,
    space_mean_speed_kmh,
    speed_level,
    tpi_from_tti,
    tpi_level,
    tpi_level_names,
    tti_from_speed,
    tti_from_travel_time,
)
from brain.vitals.utilities import active_outages, deviation_pct, outage_state

__all__ = [
    "INPUT_SCHEMAS", "HealthScoring", "VitalsConfig", "active_outages", "aqi", "aqi_level", "aqi_table", "case_metrics",
    "case_state", "incident_state", "outage_state",
    "component_iaqis", "compute_vitals", "compute_vitals_batch", "split_ticks", "daily_concentrations", "congested_share", "deviation_pct", "energy_mean_db", "exceedance_db",
    "freshness", "health_index", "iaqi", "incident_metrics", "is_night", "limit_db", "metadata_complete",
    "metadata_problems", "night_max_exceedance_db", "normalised_weights", "space_mean_speed_kmh", "speed_level",
    "tpi_from_tti", "tpi_level", "tpi_level_names", "tti_from_speed", "tti_from_travel_time",
]
