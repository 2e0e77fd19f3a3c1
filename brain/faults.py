"""The ``sensor_faults`` table: one row per sensor fault suspected in a window.

Written by the sensor-fault window operator (``streams/fault_operator.py``, kernels in
:mod:`brain.kernels.sensorfault`) and read by the ``sensor_fault`` rule (``rules/sensor_faults.yaml``).
The schema lives here, in the pure core, so the rule checks (``citybrain rules check
--against-vitals``) know the table without importing the operator.

Columns: ``sensor_id``, ``type``, ``family`` (traffic, noise, utility, water_quality, weather,
hazard, air), ``district``, ``cell_id``, ``segment_id``, ``lon``, ``lat``, ``fault`` (one of
:data:`FAULTS`), ``score`` (1.0 while suspected), ``evidence`` (what was seen, in words),
``window_end_ms``.

Example:
    >>> import polars as pl
    >>> pl.DataFrame(schema=SENSOR_FAULTS_SCHEMA).columns[:3], FAULTS
    (['sensor_id', 'type', 'family'], ('stuck', 'spikes', 'drift', 'dropout'))
"""
from __future__ import annotations

import polars as pl

FAULTS = ("stuck", "spikes", "drift", "dropout")

SENSOR_FAULTS_SCHEMA: dict[str, pl.DataType] = {
    "sensor_id": pl.Utf8, "type": pl.Utf8, "family": pl.Utf8, "district": pl.Utf8, "cell_id": pl.Utf8,
    "segment_id": pl.Utf8, "lon": pl.Float64, "lat": pl.Float64, "fault": pl.Utf8, "score": pl.Float64,
    "evidence": pl.Utf8, "window_end_ms": pl.Int64,
}
