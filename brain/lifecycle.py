"""Current state of lifecycle entities (grid cases, incidents, outages) built from their updates.

Each update names an entity, a status and its event time. The table keeps, per entity, the
first time each status was reached (``<status>_ms``), the latest descriptive fields and the latest
status. Updates may arrive out of order: stage times take the minimum, fields follow the newest
update, so applying the same updates in any order or batching gives the same table.

Example:
    >>> import polars as pl
    >>> t = LifecycleTable("case_id", {"reported": "reported_ms", "closed": "closed_ms"}, ["category"])
    >>> t.update(pl.DataFrame({"case_id": ["c1", "c1"], "status": ["closed", "reported"],
    ...                        "ts_ms": [500, 100], "category": ["litter", "litter"]}))
    >>> t.frame.select("case_id", "reported_ms", "closed_ms", "status").rows()
    [('c1', 100, 500, 'closed')]
"""
from __future__ import annotations

import polars as pl


class LifecycleTable:
    """Entity id -> first time of each stage, newest fields and status."""

    def __init__(self, id_col: str, stages: dict[str, str], fields: list[str], retention_ms: int = 7 * 86_400_000):
        if not stages:
            raise ValueError("need at least one stage")
        self.id_col = id_col
        self.stages = dict(stages)
        self.fields = list(fields)
        self.retention_ms = int(retention_ms)
        self.final_stage_col = list(self.stages.values())[-1]
        self.frame: pl.DataFrame | None = None

    def _as_rows(self, updates: pl.DataFrame) -> pl.DataFrame:
        """Each update as a row of the table: its stage's time, its fields and when they were set."""
        ts = pl.col("ts_ms")
        return updates.select(
            [pl.col(self.id_col)]
            + [pl.when(pl.col("status") == s).then(ts).alias(col) for s, col in self.stages.items()]
            + [pl.col(f) for f in self.fields]
            + [pl.when(pl.col(f).is_not_null()).then(ts).alias(_time_of(f)) for f in self.fields]
            + [pl.col("status"), ts.alias("updated_ms")]
        )

    def update(self, updates: pl.DataFrame) -> None:
        if updates.height == 0:
            return
        rows = self._as_rows(updates)
        both = rows if self.frame is None or self.frame.height == 0 else pl.concat([self.frame, rows], how="vertical_relaxed")
        newest = pl.col("updated_ms")
        # Stages keep their first time; each field the value of its own newest update (the time it
        # was set is kept beside it) and the status that of the newest update, so how the updates were
        # cut into batches does not matter. Ties go to the later row.
        self.frame = both.group_by(self.id_col, maintain_order=True).agg(
            [pl.col(col).min() for col in self.stages.values()]
            + [pl.col(f).sort_by(_time_of(f), maintain_order=True, nulls_last=False).drop_nulls().last() for f in self.fields]
            + [pl.col(_time_of(f)).max() for f in self.fields]
            + [pl.col("status").sort_by(newest, maintain_order=True).last(), newest.max()]
        )

    def prune(self, now_ms: int) -> None:
        """Forget entities that ended more than ``retention_ms`` ago."""
        if self.frame is not None and self.frame.height:
            ended = pl.col(self.final_stage_col)
            self.frame = self.frame.filter(ended.is_null() | (ended >= now_ms - self.retention_ms))

    def current(self, schema: dict[str, pl.DataType]) -> pl.DataFrame:
        """The table's columns ``schema`` (the fields' set times stay inside)."""
        if self.frame is None:
            return pl.DataFrame(schema=schema)
        return self.frame.select(list(schema))

    def state(self) -> dict:
        return {"frame": self.frame}

    def load(self, state: dict) -> None:
        self.frame = state["frame"]


def _time_of(field: str) -> str:
    """The column holding when ``field`` was last set."""
    return f"_{field}_set_ms"
