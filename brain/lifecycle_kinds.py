"""The lifecycle kinds: grid cases, incidents and outages are entities whose records move them
through stages (reported, dispatched, ... closed). Per kind: the id column, the time column each
stage sets, the fields a record carries, and the name of its table in the tick's inputs.

Example:
    >>> LIFECYCLE_KINDS["outage"][0], list(OUTAGE_STAGES.values())
    ('outage_id', ['started_ms', 'ended_ms'])
    >>> list(lifecycle_schema("outage"))[:3]
    ['outage_id', 'started_ms', 'ended_ms']
"""
from __future__ import annotations

import polars as pl

from brain.ingest import KIND_DTYPES

CASE_STAGES = {"reported": "reported_ms", "dispatched": "dispatched_ms", "handling": "handling_ms", "closed": "closed_ms"}
INCIDENT_STAGES = {"reported": "reported_ms", "dispatched": "dispatched_ms", "on_scene": "on_scene_ms", "closed": "closed_ms"}
OUTAGE_STAGES = {"start": "started_ms", "end": "ended_ms"}
LIFECYCLE_KINDS = {
    "grid_case": ("case_id", CASE_STAGES, ["category", "cell_id", "unit", "deadline_ms", "sensor_id"], "cases"),
    "incident": ("incident_id", INCIDENT_STAGES, ["type", "severity", "lon", "lat", "units", "segment_id", "sensor_id"], "incidents"),
    "outage": ("outage_id", OUTAGE_STAGES, ["utility", "cell_id", "customers", "sensor_id"], "outages"),
}


def lifecycle_schema(kind: str) -> dict[str, pl.DataType]:
    """The columns of the lifecycle table of ``kind``: id, a time per stage, the kind's fields, status."""
    id_col, stages, fields, _ = LIFECYCLE_KINDS[kind]
    dtypes = KIND_DTYPES[kind]
    return (
        {id_col: pl.Utf8}
        | {c: pl.Int64 for c in stages.values()}
        | {f: dtypes[f] for f in fields}
        | {"status": pl.Utf8, "updated_ms": pl.Int64}
    )
