"""Grid-case vital signs per tick against the number of cases kept (issue 14, deliverable 3): the tally
kept up to date by the cases that change against recounting (and re-sorting) every case, same run.

    .venv/bin/python bench/vitals_cases.py                               # 10k, 300k, 2M cases kept
    .venv/bin/python bench/vitals_cases.py --kept 2000000 --repeat 7 --city /tmp/city50k

For each size: a grid-case lifecycle table (as the pipeline keeps it, with its CaseTally) holding that
many cases (reported over the last 7 days, most closed, random categories and cells of the city), then
`--repeat` rounds of one 14-row update followed by one tick of `compute_vitals_batch` (only the case
table as input, so the figures measured are the case figures plus the fixed cost of an empty tick):

  tally     ``compute_vitals_batch(..., cases=tally)`` (what the pipeline runs now)
  recount   ``compute_vitals_batch(...)`` without it: ``_codes``/``np.unique`` over every case's cell
            and category strings and the case kernel over every case (the previous per-tick cost)

Both get the same frame; their tables are checked equal each round. Then the cockpit's ``grid_unit``
table (one row per unit and category) the same way:

  unit tally    ``grid_unit_frame(UnitCaseTally.snapshots(...))`` (what CockpitTables runs now)
  unit recount  ``CockpitTables._grid_unit_recount``: ``case_metrics`` over every case kept per tick

Also the 14-row update with both tallies watching (the pipeline's update). Seeds are random unless --seed is given; medians printed.
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import lifecycle_bench_city  # noqa: E402 (beside this script)
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from brain.lifecycle import LifecycleTable  # noqa: E402
from brain.pipeline import LIFECYCLE_KINDS, _lifecycle_schema  # noqa: E402
from brain.vitals import compute_vitals_batch  # noqa: E402
from brain.vitals.batch import warm_up  # noqa: E402
from brain.vitals.config import VitalsConfig  # noqa: E402
from brain.vitals.stack.casetally import CaseTally  # noqa: E402
from brain.vitals.stack.unittally import UnitCaseTally, grid_unit_frame  # noqa: E402
from streams.cockpit_tables import CockpitTables  # noqa: E402

ID, STAGES, FIELDS, _ = LIFECYCLE_KINDS["grid_case"]
DAY, MIN = 86_400_000, 60_000
T0 = 1_780_000_000_000 - 1_780_000_000_000 % (5 * MIN)
CATEGORIES = [f"cat{i:02d}" for i in range(40)]
UNITS = [f"unit{i:02d}" for i in range(30)] + [None]


def _cases(rng, ids: list[str], cells: list[str], start_ms: np.ndarray, closed: np.ndarray) -> pl.DataFrame:
    """Case table rows as updates: one reported row per case, a closed row for the closed ones."""
    n = len(ids)
    cell = [cells[i] for i in rng.integers(0, len(cells), n)]
    cat = [CATEGORIES[i] for i in rng.integers(0, len(CATEGORIES), n)]
    deadline = start_ms + rng.integers(2, 48, n) * 3_600_000
    rep = pl.DataFrame({ID: ids, "status": ["reported"] * n, "ts_ms": start_ms, "category": cat, "cell_id": cell,
                        "unit": [UNITS[i] for i in rng.integers(0, len(UNITS), n)], "deadline_ms": deadline, "sensor_id": ["GI-1"] * n})
    close_at = start_ms + rng.integers(10, 2 * 24 * 60, n) * MIN
    done = closed & (close_at < T0)
    cl = rep.filter(pl.Series(done)).with_columns(status=pl.lit("closed"), ts_ms=pl.Series(close_at[done]))
    return pl.concat([rep, cl])


def main() -> int:
    args = lifecycle_bench_city.parse(__doc__, [10_000, 300_000, 2_000_000], 7)
    seed, rng, city = lifecycle_bench_city.city_and_rng(args, "bench-vitals-cases-")
    cells = [c.id for c in city.cells]
    cfg = VitalsConfig()
    warm_up()
    print(f"seed {seed}; city {city.name!r}: {len(cells)} cells; {args.rows}-row update + 1 tick, median of {args.repeat}", flush=True)
    print(f"{'cases kept':>12} {'update ms':>10} {'tick (tally) ms':>16} {'tick (recount) ms':>18} {'ratio':>7} {'pending events':>15}"
          f" {'grid_unit (tally) ms':>21} {'grid_unit (recount) ms':>23} {'ratio':>7}")
    cockpit = CockpitTables(city, cfg)
    schema = _lifecycle_schema("grid_case")
    for kept in args.kept:
        table = LifecycleTable(ID, STAGES, FIELDS)
        tally = CaseTally(table, int(cfg.case_lookback_s * 1000))
        unit_tally = UnitCaseTally(table, int(cfg.case_lookback_s * 1000))
        ids = [f"GC-{i}" for i in range(kept)]
        start = np.sort(T0 - rng.integers(0, 7 * DAY, kept))
        table.update(_cases(rng, ids, cells, start, rng.random(kept) < 0.97))
        frame = table.current(schema)
        tally.snapshots([T0])  # the table read whole once (as after a start or a restore)
        unit_tally.snapshots([T0])
        ups, fast, slow, ufast, uslow = [], [], [], [], []
        next_id = kept
        for r in range(args.repeat):
            now = T0 + (r + 1) * 5 * MIN
            old = [ids[i] for i in rng.integers(0, kept, args.rows // 2)]
            new = [f"GC-{next_id + i}" for i in range(args.rows - len(old))]
            next_id += len(new)
            upd = _cases(rng, old + new, cells, np.full(len(old) + len(new), now - MIN), np.zeros(len(old) + len(new), bool))
            del frame
            t = time.perf_counter()
            table.update(upd)
            ups.append(time.perf_counter() - t)
            frame = table.current(schema)
            t = time.perf_counter()
            got = compute_vitals_batch({"cases": frame}, city, [now], cfg, cases=tally)
            fast.append(time.perf_counter() - t)
            t = time.perf_counter()
            want = compute_vitals_batch({"cases": frame}, city, [now], cfg)
            slow.append(time.perf_counter() - t)
            for name in ("grid_cell", "grid_category", "district", "city"):
                assert got[name].equals(want[name]), f"{name} differs at {kept} cases"
            t = time.perf_counter()
            got = grid_unit_frame(unit_tally.snapshots([now]), [now])
            ufast.append(time.perf_counter() - t)
            t = time.perf_counter()
            want = cockpit._grid_unit_recount(frame, [now])
            uslow.append(time.perf_counter() - t)
            assert got.equals(want), f"grid_unit differs at {kept} cases"
        med = lambda xs: statistics.median(xs) * 1000  # noqa: E731
        print(f"{kept:>12,} {med(ups):>10.2f} {med(fast):>16.1f} {med(slow):>18.1f} {med(slow) / med(fast):>6.1f}x {tally.pending_events():>15,}"
              f" {med(ufast):>21.2f} {med(uslow):>23.1f} {med(uslow) / med(ufast):>6.1f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
