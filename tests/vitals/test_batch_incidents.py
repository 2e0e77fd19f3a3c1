"""The batch's incident figures (numpy masks, grouped sums and quantiles instead of polars group-bys)
== the one-window reference (emergency.incident_metrics per tick), on many incidents per group so
that means and linearly interpolated p90s of several delays are exercised, with null types and
severities (their own groups, ordered first) and incidents outside every district."""
from __future__ import annotations

import numpy as np
import polars as pl
from polars.testing import assert_frame_equal

from brain.vitals import compute_vitals_batch, split_ticks
from brain.vitals.reference import compute_vitals_reference

M5 = 300_000
T0 = 1_780_000_000_000 - 1_780_000_000_000 % M5


def random_incidents(city, n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    reported = T0 - rng.integers(0, 30 * 3_600_000, n)
    dispatched = reported + rng.integers(1, 900_000, n)  # odd ms: delays that are not round seconds
    on_scene = dispatched + rng.integers(1, 1_800_000, n)
    closed = on_scene + rng.integers(1, 3 * 3_600_000, n)
    cells = city.cells
    pick = rng.integers(0, len(cells), n)

    def some(values, p_null):
        return [None if rng.random() < p_null else v for v in values]

    return pl.DataFrame({
        "incident_id": [f"i{i}" for i in range(n)],
        "type": some(rng.choice(["fire", "medical", "traffic"], n).tolist(), 0.1),
        "severity": pl.Series(some(rng.integers(1, 5, n).tolist(), 0.1), dtype=pl.Int64),
        "lon": [cells[i].center[0] + (50.0 if j % 17 == 0 else 0.0) for j, i in enumerate(pick)],  # some far away
        "lat": [cells[i].center[1] for i in pick],
        "reported_ms": reported.tolist(), "dispatched_ms": some(dispatched.tolist(), 0.2),
        "on_scene_ms": some(on_scene.tolist(), 0.3), "closed_ms": some(closed.tolist(), 0.4),
        "status": ["reported"] * n, "segment_id": [None] * n, "units": pl.Series(some(rng.integers(1, 6, n).tolist(), 0.1), dtype=pl.Int64),
    })


def test_incident_tables_equal_the_reference(city):
    incidents = random_incidents(city, 300, seed=5)
    ends = [T0 + i * M5 for i in range(0, 48, 4)]
    out = compute_vitals_batch({"incidents": incidents}, city, ends)
    emergency = out["emergency"]
    # the figures this test is about are there: groups with several delays, interpolated p90s
    assert (emergency["active_incidents"] >= 3).any() and emergency["severity"].null_count() and emergency["type"].null_count()
    p90 = emergency["p90_dispatch_delay_s"].drop_nulls()
    assert (p90 != emergency.filter(pl.col("p90_dispatch_delay_s").is_not_null())["mean_dispatch_delay_s"]).any()
    for t, got in zip(ends, split_ticks(out, ends)):
        want = compute_vitals_reference({"incidents": incidents}, city, t)
        assert_frame_equal(got["emergency"], want["emergency"], check_exact=True)  # integer delays / 1000: the same bits
        for table in ("district", "city"):
            cols = [c for c in want[table].columns if c.startswith("incidents_") or c.endswith("_delay_s")]
            assert_frame_equal(got[table].select(cols), want[table].select(cols), check_exact=True)
