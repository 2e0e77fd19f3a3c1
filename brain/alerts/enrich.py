"""Registry enrichment of sensor-keyed tables before rule evaluation (一终端一标识: every row has an owner).

Rules can then filter and label by what the sensor registry knows even when the vital-sign table
does not carry it: ``type``, ``family``, ``district``, ``cell_id``, ``lon``, ``lat``, ``unit``,
``owner``, and for hazard sensors their source's ``hazard`` id, ``hazard_name`` and ``alarm_high``.
Tables with a ``cell_id`` (grid cases, outages) get the cell's ``district``, ``street`` and centre
``lon``/``lat``. Columns a table already has are left as they are.

Example:
    >>> from brain.city.model import City, District, GridCell, Sensor, Street
    >>> city = City(name="c", admin_code="330100", timezone="Asia/Shanghai", center=[120.0, 30.0],
    ...     districts=[District(id="D", name="d", admin_code="330101", center=[120.0, 30.0])],
    ...     streets=[Street(id="ST", name="s", district="D")],
    ...     cells=[GridCell(id="C", district="D", street="ST", center=[120.0, 30.0])], segments=[],
    ...     intersections=[], corridors=[], sensors=[Sensor(id="N1", type="noise", lon=120.01, lat=30.0,
    ...     district="D", cell="C", owner="EPB", unit="dB(A)", valid_min=0, valid_max=140)])
    >>> out = Enricher(city).apply({"sensor_last_seen": pl.DataFrame({"sensor_id": ["N1", "X"], "last_seen_ms": [1, 2]})})
    >>> out["sensor_last_seen"].select("sensor_id", "type", "family", "cell_id", "street").rows()
    [('N1', 'noise', 'environment', 'C', 'ST'), ('X', None, None, None, None)]
"""
from __future__ import annotations

import polars as pl

from brain.city.model import SENSOR_FAMILY


_PLACED = ("cell_id", "lon", "lat", "segment_id")
_LOCATION = ("district", "cell_id", "lon", "lat")


class Enricher:
    """Joins registry columns onto every table that has a ``sensor_id`` column."""

    def __init__(self, city=None):
        self.registry: pl.DataFrame | None = None
        self.cells: pl.DataFrame | None = None
        if city is None:
            return
        self.cells = pl.DataFrame({
            "cell_id": [c.id for c in city.cells], "district": [c.district for c in city.cells],
            "street": [c.street for c in city.cells],
            "lon": [float(c.center[0]) for c in city.cells], "lat": [float(c.center[1]) for c in city.cells],
        }, schema={"cell_id": pl.String, "district": pl.String, "street": pl.String, "lon": pl.Float64, "lat": pl.Float64})
        hz = {h.id: h for h in city.hazards}
        sens = city.sensors
        self.registry = pl.DataFrame({
            "sensor_id": [s.id for s in sens],
            "type": [s.type for s in sens],
            "family": [SENSOR_FAMILY.get(s.type, "unknown") for s in sens],
            "district": [s.district for s in sens],
            "cell_id": [s.cell for s in sens],
            "lon": [s.lon for s in sens],
            "lat": [s.lat for s in sens],
            "unit": [s.unit for s in sens],
            "owner": [s.owner for s in sens],
            "hazard": [s.hazard for s in sens],
            "hazard_name": [hz[s.hazard].name if s.hazard in hz else None for s in sens],
            "alarm_high": [hz[s.hazard].alarm_high if s.hazard in hz else None for s in sens],
        }, schema={"sensor_id": pl.String, "type": pl.String, "family": pl.String, "district": pl.String,
                   "cell_id": pl.String, "lon": pl.Float64, "lat": pl.Float64, "unit": pl.String, "owner": pl.String,
                   "hazard": pl.String, "hazard_name": pl.String, "alarm_high": pl.Float64})

    def apply(self, tables: dict[str, pl.DataFrame], needs: dict[str, set[str]] | None = None) -> dict[str, pl.DataFrame]:
        """Enriched copies of the tables; with ``needs`` (table → columns the rules read), only the
        tables lacking a needed column are joined (joins are most of the cost of a window's rules)."""
        if self.registry is None:
            return tables
        out = dict(tables)
        for name, df in tables.items():
            if not isinstance(df, pl.DataFrame):
                continue
            if needs is not None and not (needs.get(name, set()) - set(df.columns)):
                continue
            if "sensor_id" in df.columns:
                extra = [c for c in self.registry.columns if c != "sensor_id" and c not in df.columns]
                if any(c in df.columns for c in _PLACED):
                    # an event frame (case, incident, outage) is placed by its own cell/position/segment;
                    # the registry's location is the reporting terminal's (a dispatch centre), not the event's
                    extra = [c for c in extra if c not in _LOCATION]
                if extra:
                    reg = self.registry.select(["sensor_id", *extra])
                    df = df.with_columns(pl.col("sensor_id").cast(pl.String)).join(reg, on="sensor_id", how="left",
                                                                                   maintain_order="left")
            if "cell_id" in df.columns and self.cells is not None:
                # rows placed by grid cell (cases, outages) get the cell's centre, district and street
                extra = [c for c in self.cells.columns if c != "cell_id" and c not in df.columns]
                if extra:
                    df = df.with_columns(pl.col("cell_id").cast(pl.String)).join(
                        self.cells.select(["cell_id", *extra]), on="cell_id", how="left", maintain_order="left")
            out[name] = df
        return out


def driver_table_columns(city) -> dict[str, set[str]]:
    """Table → columns the rules see in ``citybrain run`` for this city: the vital signs of
    :func:`brain.vitals.compute_vitals`, the per-window frames the driver passes along (``cases``,
    ``incidents``, ``outages``, ``sensor_last_seen``, ``<kind>_sensor`` pass-through tables), the
    ``anomaly`` scores, all after registry enrichment. Used by ``citybrain rules check --against-vitals``."""
    from brain.pipeline import LIFECYCLE_KINDS, PASS_THROUGH, TICK_SCHEMAS
    from brain.vitals import INPUT_SCHEMAS, compute_vitals

    tables = dict(compute_vitals({}, city, 3_600_000))
    for _, (id_col, stages, fields, name) in LIFECYCLE_KINDS.items():
        cols = [id_col, *stages.values(), *fields, "status", "updated_ms"]
        tables[name] = pl.DataFrame(schema={c: pl.String if c in (id_col, "status") else pl.Float64 for c in cols})
    tables["sensor_last_seen"] = pl.DataFrame(schema=dict(INPUT_SCHEMAS["sensor_last_seen"][0]))
    for kind in PASS_THROUGH:
        tables[f"{kind}_sensor"] = pl.DataFrame(schema=TICK_SCHEMAS[kind])
    # KeyedDetector.score_learn_many rows; the key column is named after what was scored
    tables["anomaly"] = pl.DataFrame(schema={"key": pl.String, "sensor_id": pl.String, "segment_id": pl.String,
                                             "metric": pl.String, "ts_ms": pl.Int64, "window_end_ms": pl.Int64,
                                             "value": pl.Float64, "expected": pl.Float64, "z": pl.Float64,
                                             "score": pl.Float64, "reason": pl.String, "ongoing": pl.Float64})
    from brain.faults import SENSOR_FAULTS_SCHEMA  # the sensor-fault operator's table

    tables["sensor_faults"] = pl.DataFrame(schema=SENSOR_FAULTS_SCHEMA)
    from brain.greenwave.problems import CONTROLLER_PROBLEMS_SCHEMA  # the controller hub's problems

    tables["controller_problems"] = pl.DataFrame(schema=CONTROLLER_PROBLEMS_SCHEMA)
    return {name: set(df.columns) for name, df in Enricher(city).apply(tables).items()}
