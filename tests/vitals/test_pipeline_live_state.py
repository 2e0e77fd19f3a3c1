"""The pipeline's incremental lifecycle state (grid cases tallied by :class:`CaseTally`, incidents and
outages read from :class:`LiveRows`) gives the vital signs of the recount over every row kept, to the
last bit, through a simulated day of many incidents, outages and grid cases.

The day is the simulator's own lifecycles at raised rates, roughened: some incidents never close and
some outages never end, some incidents change severity on scene (a field change of a known entity,
which cuts a stacked pass into runs of ticks), some grid cases are reclassified or moved to another
cell on dispatch, and the retention is short so entities expire (prune) mid-day. It is fed in batches
of random spans (one tick to several hours: stacked passes with several runs) to two pipelines: the
default one (incremental) and a peer whose tally and live rows are switched off (the recount). The
incremental one is checkpointed and restored into a fresh pipeline half-way. Every pass's vital-sign
tables must be equal.
"""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from brain.city import demo_city_path, load_city
from brain.pipeline import CityPipeline
from streams.sim.clock import local_time
from streams.sim.events import GridCaseGen, IncidentGen, OutageGen
from zoneinfo import ZoneInfo

HOUR = 3_600_000
T0 = 1_763_337_600_000  # 2025-11-17 00:00 UTC
RETENTION_MS = 5 * HOUR  # short: entities expire and are pruned within the day


@pytest.fixture(scope="module")
def city():
    return load_city(demo_city_path())


def _day(city, seed: int, hours: int) -> dict[str, pl.DataFrame]:
    """``hours`` of grid cases, incidents and outages at raised rates, roughened (see the module docstring)."""
    rng = np.random.default_rng(seed)
    inc, out, cas = IncidentGen(city, seed), OutageGen(city, seed), GridCaseGen(city, seed)
    inc.RATE_PER_DISTRICT_HOUR, out.RATE_PER_DAY, cas.rate_per_cell_hour = 12.0, 400.0, 3.0
    tz = ZoneInfo(city.timezone)
    parts: dict[str, list[pl.DataFrame]] = {"incident": [], "outage": [], "grid_case": []}
    for h in range(hours):
        a = T0 + h * HOUR
        for kind, gen in (("incident", inc), ("outage", out), ("grid_case", cas)):
            df = gen.arrivals(a, a + HOUR, local_time(a, tz), seed)
            if df is not None:
                parts[kind].append(df)
    frames = {k: pl.concat(v) for k, v in parts.items()}
    i = frames["incident"]
    drop = rng.random(i.height) < 0.15  # never closed (the close row dropped), never on scene...
    i = i.filter(~(pl.Series(drop) & pl.col("status").is_in(["closed", "on_scene"])))
    resev = pl.Series(rng.integers(1, 5, i.height))
    i = i.with_columns(pl.when((pl.col("status") == "on_scene") & pl.Series(rng.random(i.height) < 0.3))
                       .then(resev).otherwise(pl.col("severity")).alias("severity"))
    o = frames["outage"]
    o = o.filter(~(pl.Series(rng.random(o.height) < 0.2) & (pl.col("status") == "end")))
    c = frames["grid_case"]
    cells = [x.id for x in city.cells]
    moved = pl.Series([cells[k] for k in rng.integers(len(cells), size=c.height)])
    c = c.with_columns(
        pl.when((pl.col("status") == "dispatched") & pl.Series(rng.random(c.height) < 0.1)).then(moved).otherwise(pl.col("cell_id")).alias("cell_id"),
        pl.when((pl.col("status") == "dispatched") & pl.Series(rng.random(c.height) < 0.1)).then(pl.lit("other")).otherwise(pl.col("category")).alias("category"),
    )
    c = c.filter(~(pl.Series(rng.random(c.height) < 0.1) & (pl.col("status") == "closed")))
    return {"incident": i.sort("ts_ms", maintain_order=True), "outage": o.sort("ts_ms", maintain_order=True),
            "grid_case": c.sort("ts_ms", maintain_order=True)}


def _pipe(city, recount: bool) -> CityPipeline:
    pipe = CityPipeline(city)
    for table in pipe.lifecycle.values():
        table.retention_ms = RETENTION_MS
    if recount:
        pipe.case_tally, pipe.live_rows = None, {}
    return pipe


def _same(got: pl.DataFrame, want: pl.DataFrame, what: str) -> None:
    try:
        assert_frame_equal(got, want, check_exact=True)
    except AssertionError as e:
        raise AssertionError(f"{what}: {e}") from None


def _passes(result) -> list[dict[str, pl.DataFrame]]:
    seen, out = set(), []
    for w in result.windows:
        if id(w.batch) not in seen:
            seen.add(id(w.batch))
            out.append(dict(w.batch.vitals))
    return out


@pytest.mark.parametrize("seed", [11, 2024])
def test_incremental_state_equals_the_recount_over_a_day(city, seed):
    hours = 24
    day = _day(city, seed, hours)
    assert day["incident"].filter(pl.col("status") == "reported").height > 500
    assert day["outage"].filter(pl.col("status") == "start").height > 200
    rng = np.random.default_rng(seed + 1)
    cuts = [T0]
    while cuts[-1] < T0 + hours * HOUR:  # batch spans: a tick to five hours
        cuts.append(cuts[-1] + int(rng.choice([5, 5, 15, 60, 180, 300])) * 60_000 + int(rng.integers(0, 60_000)))
    fast, slow = _pipe(city, recount=False), _pipe(city, recount=True)
    restored_at = len(cuts) // 2
    n_passes = runs_cut = 0
    live_seen = 0
    for k, (a, b) in enumerate(zip(cuts, cuts[1:])):
        if k == restored_at:  # checkpoint and restore into a fresh pipeline
            blob = fast.snapshot()
            fast = _pipe(city, recount=False)
            fast.restore(blob)
        batch = {kind: f.filter((pl.col("ts_ms") >= a) & (pl.col("ts_ms") < b)) for kind, f in day.items()}
        batch = {kind: f for kind, f in batch.items() if f.height}
        got, want = _passes(fast.ingest_frames(batch)), _passes(slow.ingest_frames(batch))
        runs_cut += len(fast.states.field_changes) > 0
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.keys() == w.keys()
            for name in w:
                _same(g[name], w[name], f"{name} (batch {k})")
            n_passes += 1
        live_seen = max(live_seen, fast.live_rows["incidents"].size)
        kept = fast.lifecycle["incident"].frame
        assert fast.live_rows["incidents"].size <= (kept.height if kept is not None else 0)
    got, want = _passes(fast.flush()), _passes(slow.flush())
    for g, w in zip(got, want):
        for name in w:
            _same(g[name], w[name], f"{name} (flush)")
    assert fast.counters["applied"] == slow.counters["applied"] > 0
    assert fast.counters["windows_closed"] == slow.counters["windows_closed"] >= 250
    # the test reached what it is about: stacked passes cut into runs, entities pruned, live rows far fewer than kept
    assert runs_cut > 0 and n_passes > 10
    assert 0 < live_seen
    # outages ended within the retention are kept but no longer read (incidents: all recent, a day's lookback)
    assert 0 < fast.live_rows["outages"].size < fast.lifecycle["outage"].frame.height
