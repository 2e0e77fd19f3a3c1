"""Grid-case figures per (responsible ``unit``, ``category``) kept up to date by the rows that change:
the cockpit's ``grid_unit`` table (:class:`streams.cockpit_tables.CockpitTables`) without recounting
every case kept per tick.

Every figure of :func:`brain.vitals.grid.case_metrics` is a running sum of interval events (see
:mod:`brain.vitals.stack.casetally`; the rate and the mean time to close are ratios of such sums), so
:class:`UnitCaseTally` is a :class:`~brain.vitals.stack.casetally.CaseTally` whose first counter group
is the (unit, category) pair instead of the cell (null unit or category: "", as the cockpit groups
them). :func:`grid_unit_frame` turns its snapshots into the rows ``case_metrics(cases with reported_ms
<= t, t, by=["unit", "category"])`` gives per tick ``t``: the pairs with a case reported by ``t``,
sorted by unit then category.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from brain import series
from brain.vitals import grid
from brain.vitals.stack.casetally import CaseSnapshots, CaseTally, _figures


class UnitCaseTally(CaseTally):
    """A :class:`~brain.vitals.stack.casetally.CaseTally` counting per (unit, category) pair
    (``snapshots(...).cells`` are ``(unit, category)`` tuples, nulls as ""); the table needs a ``unit``
    column too.

    >>> import polars as pl
    >>> from brain.lifecycle import LifecycleTable
    >>> table = LifecycleTable("case_id", {"reported": "reported_ms", "closed": "closed_ms"}, ["category", "cell_id", "unit", "deadline_ms"])
    >>> tally = UnitCaseTally(table, lookback_ms=3_600_000)
    >>> table.update(pl.DataFrame({"case_id": ["a", "b"], "status": ["reported", "reported"], "ts_ms": [0, 0],
    ...     "category": ["litter", None], "cell_id": ["C1", "C1"], "unit": ["U1", None], "deadline_ms": [60_000, None]}))
    >>> grid_unit_frame(tally.snapshots([120_000]), [120_000]).select("unit", "category", "open_backlog", "overdue").rows()
    [('', '', 1, 0), ('U1', 'litter', 1, 1)]
    """

    FIELDS = ("unit", "category", "deadline_ms")

    def _cell_codes(self, rows: pl.DataFrame) -> np.ndarray:
        # The pair interned in order of appearance; null -> "" first (the cockpit merges the two).
        pairs = rows.select(pl.col("unit").cast(pl.Utf8).fill_null(""), pl.col("category").cast(pl.Utf8).fill_null(""))
        table = self.cells
        if pairs.height <= 4096:  # the rows of an update: a dict lookup each
            return np.fromiter((table.setdefault(p, len(table)) for p in zip(*(pairs.get_column(c).to_list() for c in pairs.columns))),
                               dtype=np.int64, count=pairs.height)
        for p in pairs.unique(maintain_order=True).iter_rows():  # a whole table: one join
            table.setdefault(p, len(table))
        lookup = pl.DataFrame({"unit": [u for u, _ in table], "category": [c for _, c in table],
                               "code": np.arange(len(table), dtype=np.int64)}, schema={"unit": pl.Utf8, "category": pl.Utf8, "code": pl.Int64})
        return pairs.join(lookup, on=["unit", "category"], how="left", maintain_order="left")["code"].to_numpy()


#: The ``grid_unit`` table's columns and dtypes.
GRID_UNIT_SCHEMA = {"unit": pl.Utf8, "category": pl.Utf8, **{c: pl.Int64 for c in grid.METRIC_COLUMNS[:5]},
                    "on_time_closure_rate": pl.Float64, "mean_time_to_close_h": pl.Float64, "window_end_ms": pl.Int64}


def grid_unit_frame(snap: CaseSnapshots, ticks) -> pl.DataFrame:
    """``grid_unit`` rows of each tick from a :class:`UnitCaseTally`'s snapshots at ``ticks``:
    O(pairs) per tick.

    >>> import numpy as np
    >>> grid_unit_frame(CaseSnapshots([("U", "x")], np.zeros((1, 1, 7), dtype=np.int64), [], np.zeros((1, 0, 7), dtype=np.int64)), [0]).height
    0
    """
    pairs = snap.cells
    order = sorted(range(len(pairs)), key=lambda i: pairs[i])  # code point order, as polars sorts strings
    counts = snap.cell_counts[:, order] if order else snap.cell_counts[:, :0]
    m = _figures(counts)
    ti, g = np.nonzero(counts[:, :, 0] > 0)  # the pairs with a case reported by the tick
    cols = {"unit": pl.Series("unit", [pairs[order[i]][0] for i in g.tolist()], dtype=pl.Utf8),
            "category": pl.Series("category", [pairs[order[i]][1] for i in g.tolist()], dtype=pl.Utf8)}
    for name in grid.METRIC_COLUMNS:
        v = m[name][ti, g]
        cols[name] = (series.f64(name, v, nan_to_null=True) if v.dtype == np.float64
                      else pl.Series(name, v, dtype=pl.Int64))
    cols["window_end_ms"] = pl.Series("window_end_ms", np.asarray(ticks, dtype=np.int64)[ti], dtype=pl.Int64)
    return pl.DataFrame(cols, schema=GRID_UNIT_SCHEMA)
