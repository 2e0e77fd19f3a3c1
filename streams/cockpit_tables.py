"""Two tables the cockpit needs that the vital signs do not carry: grid cases by responsible unit,
and the freshness of every single sensor.

:class:`CockpitTables` is a window operator (see :class:`brain.pipeline.CityPipeline`); its tables go
to the Parquet history like any vital sign, so ``citybrain serve`` beside a remote engine reads
them too:

* ``grid_unit`` — per tick, one row per (``unit``, ``category``) of the grid / 12345 cases with
  :data:`brain.vitals.grid.METRIC_COLUMNS` (backlog, overdue, closed on time, ...), from the
  engine's case state (the ``unit`` a case was dispatched to; "" when the source named none).
* ``sensor_freshness`` — for the last tick of each batch only (one row per registered sensor
  would otherwise repeat 500 rows per 5 min of replay): ``sensor_id, type, district, lon, lat,
  last_seen_ms`` (null: never), ``age_s`` and ``freshness`` (fresh / stale / silent / never, the
  thresholds of :mod:`brain.vitals.sensors`).

Example (two hours of the demo city):
    >>> from brain.city import demo_city_path, load_city
    >>> from brain.pipeline import CityPipeline
    >>> from streams.sim import Simulator
    >>> city = load_city(demo_city_path())
    >>> pipe = CityPipeline(city, window_operators=[CockpitTables(city)])
    >>> sim = Simulator(city, seed=1)
    >>> out = [w for b in sim.batches(sim.start_ms + 7_200_000, batch_s=600)
    ...        for w in pipe.ingest_frames(b.frames).windows + pipe.advance_to(b.end_ms).windows]
    >>> fresh = out[-1].batch.vitals["sensor_freshness"]
    >>> fresh.height == len(city.sensors), set(fresh["freshness"]) <= {"fresh", "stale", "silent", "never"}
    (True, True)
    >>> units = out[-1].batch.vitals["grid_unit"]
    >>> {"unit", "category", "open_backlog", "overdue", "on_time_closure_rate", "window_end_ms"} <= set(units.columns)
    True
"""
from __future__ import annotations

import numpy as np
import polars as pl

from brain import series
from brain.city.model import City
from brain.pipeline import TickBatch
from brain.vitals import grid, sensors
from brain.vitals.config import VitalsConfig
from brain.vitals.stack.unittally import GRID_UNIT_SCHEMA, UnitCaseTally, grid_unit_frame  # noqa: F401 (GRID_UNIT_SCHEMA re-exported)


class CockpitTables:
    """Window operator making ``grid_unit`` and ``sensor_freshness`` (see the module docstring)."""

    def __init__(self, city: City, config: VitalsConfig | None = None):
        self.config = config or VitalsConfig()
        self.registry = pl.DataFrame({
            "sensor_id": [s.id for s in city.sensors], "type": [s.type for s in city.sensors],
            "district": [s.district for s in city.sensors], "lon": [float(s.lon) for s in city.sensors],
            "lat": [float(s.lat) for s in city.sensors]})
        self.interval_s = np.asarray([self.config.expected_interval_s.get(s.type, 3600.0) for s in city.sensors])
        self.tally: UnitCaseTally | None = None  # set by watch_lifecycle (no tally: recount every case per tick)

    def watch_lifecycle(self, tables: dict) -> None:
        """Keep the ``grid_unit`` figures up to date from the pipeline's grid-case table (``tables``:
        :attr:`brain.pipeline.CityPipeline.lifecycle`), whose state as of a batch's last tick is the
        batch's ``cases`` input: O(rows changed) per update, O(pairs) per tick, not O(cases kept)."""
        self.tally = UnitCaseTally(tables["grid_case"], int(self.config.case_lookback_s * 1000))

    def __call__(self, batch: TickBatch) -> dict[str, pl.DataFrame]:
        return {"grid_unit": self._grid_unit(batch), "sensor_freshness": self._freshness(batch, batch.ends[-1])}

    def _grid_unit(self, batch: TickBatch) -> pl.DataFrame:
        cases = batch.inputs.get("cases")
        if cases is None or cases.height == 0 or "unit" not in cases.columns:
            return pl.DataFrame(schema=GRID_UNIT_SCHEMA)
        if self.tally is not None:
            return grid_unit_frame(self.tally.snapshots(batch.ends), batch.ends)
        return self._grid_unit_recount(cases, batch.ends)

    def _grid_unit_recount(self, cases: pl.DataFrame, ends: list[int]) -> pl.DataFrame:
        """Every case kept recounted per tick (no tally; the differential tests' peer)."""
        cases = cases.with_columns(pl.col("unit").fill_null(""), pl.col("category").fill_null(""))
        parts = [grid.case_metrics(cases.filter(pl.col("reported_ms") <= end), end, by=["unit", "category"],
                                   lookback_s=self.config.case_lookback_s).with_columns(pl.lit(end, pl.Int64).alias("window_end_ms"))
                 for end in ends]
        return pl.concat(parts).cast(GRID_UNIT_SCHEMA)

    def _freshness(self, batch: TickBatch, end: int) -> pl.DataFrame:
        seen = batch.tick_table("inputs", "sensor_last_seen", end) if "sensor_last_seen" in batch.inputs else None
        if seen is None or seen.height == 0:
            seen = pl.DataFrame(schema={"sensor_id": pl.Utf8, "last_seen_ms": pl.Int64})
        seen = seen.group_by("sensor_id").agg(pl.col("last_seen_ms").max())
        # a sensor never heard from has last_seen_ms -1 in the engine's clock table: null here
        frame = self.registry.join(seen, on="sensor_id", how="left").with_columns(
            pl.when(pl.col("last_seen_ms") >= 0).then(pl.col("last_seen_ms")).otherwise(None).alias("last_seen_ms"))
        last = series.floats(frame["last_seen_ms"])
        code = sensors.freshness(last, end, self.interval_s, self.config.fresh_factor, self.config.silent_factor)
        age_s = (end - last) / 1000.0
        return frame.with_columns(
            series.f64("age_s", age_s, nan_to_null=True),
            pl.Series("freshness", [sensors.FRESHNESS_NAMES[c] for c in code], dtype=pl.Utf8),
            pl.lit(end, pl.Int64).alias("window_end_ms"))
