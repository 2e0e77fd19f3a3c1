"""Cost of one small grid-case update against the number of cases the table keeps (issue 14, deliverable 3).

    .venv/bin/python bench/lifecycle_update.py                     # 10k, 100k, 1M cases kept
    .venv/bin/python bench/lifecycle_update.py --kept 2000000 --rows 14

For each size: a LifecycleTable holding that many cases (open and closed, random categories and
cells), then `--repeat` updates of `--rows` rows (half progress existing cases, half report new
ones), timed per update (the first update, which builds the id index once, is left out). Peers in
the same run, over the same rows: the previous update — the whole table merged with the update
rows by the numba kernel (`merge`) —, polars' group-by formulation of it (`merge_reference`, with
--polars), and a `vstack` of the table with the update rows. As in the pipeline, a CaseTally (the grid-case
vital signs kept up to date by the rows that change) watches the table and gets every update (--no-tally:
without it). With --previous REF, the LifecycleTable of commit REF (its brain/lifecycle.py, read from git)
gets the same updates in the same run (no tally: it had none). With --hold each table's frame as it
stood before the update is held during it, as the pipeline holds the previous tick's state (a
TickBatch, a live view): an update then has to leave that frame's values alone (polars copies a
shared buffer before writing into it). Seeds are random unless --seed is given.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from brain.lifecycle import LifecycleTable, merge, merge_reference  # noqa: E402
from brain.pipeline import CASE_STAGES, LIFECYCLE_KINDS  # noqa: E402
from brain.vitals.stack.casetally import CaseTally  # noqa: E402

ID, STAGES, FIELDS, _ = LIFECYCLE_KINDS["grid_case"]
STATUSES = list(CASE_STAGES)


def _updates(rng: np.random.Generator, ids: list[str], ts0: int) -> pl.DataFrame:
    n = len(ids)
    return pl.DataFrame({
        ID: ids,
        "status": [STATUSES[i] for i in rng.integers(0, len(STATUSES), n)],
        "ts_ms": (ts0 + rng.integers(0, 60_000, n)).astype(np.int64),
        "category": [f"cat{i}" for i in rng.integers(0, 40, n)],
        "cell_id": [f"cell{i}" for i in rng.integers(0, 5000, n)],
        "unit": [f"unit{i}" for i in rng.integers(0, 30, n)],
        "deadline_ms": (ts0 + 86_400_000 + rng.integers(0, 3_600_000, n)).astype(np.int64),
        "sensor_id": [f"GI-{i}" for i in rng.integers(0, 2000, n)],
    })


def _previous(ref: str):
    """``LifecycleTable`` as commit ``ref`` had it (its module executed from git's copy)."""
    import subprocess
    import types

    text = subprocess.run(["git", "show", f"{ref}:brain/lifecycle.py"], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1]).stdout
    module = types.ModuleType("_previous_lifecycle")
    sys.modules[module.__name__] = module
    exec(compile(text, f"{ref}:brain/lifecycle.py", "exec"), module.__dict__)
    return module.LifecycleTable


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kept", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--rows", type=int, default=14)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--polars", action="store_true", help="also time polars' group-by over the whole table (slow)")
    ap.add_argument("--no-tally", action="store_true", help="no CaseTally watching the table")
    ap.add_argument("--previous", default=None, metavar="REF", help="also time the LifecycleTable of git commit REF")
    ap.add_argument("--recent", type=float, default=None, metavar="SHARE",
                    help="existing cases updated are drawn from the newest SHARE of the table (a real city's: cases "
                         "progress within hours of their report, the table keeps 7 days); default: any case")
    ap.add_argument("--no-merge", action="store_true", help="leave out the whole-table merge peer (seconds per update at 2M)")
    ap.add_argument("--hold", action="store_true", help="hold each table's previous frame during its update (as the pipeline does)")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    rng = np.random.default_rng(seed)
    print(f"seed {seed}; {args.rows}-row updates, median of {args.repeat}" + ("; the previous frame held during each update" if args.hold else "")
          + (f"; existing cases from the newest {args.recent:.0%}" if args.recent is not None else ""))
    previous = _previous(args.previous) if args.previous else None
    print(f"{'cases kept':>12} {'update ms':>10} {'whole-table merge ms':>21} {'ratio':>8} {'polars ref ms':>14} {'vstack ms':>10}"
          + (f" {'previous ms':>12} {'ratio':>6}" if previous else ""))
    for kept in args.kept:
        table = LifecycleTable(ID, STAGES, FIELDS)
        ids = [f"case-{i}" for i in range(kept)]
        table.update(_updates(rng, ids, 1_700_000_000_000))  # one row per case: the table as it stands
        assert table.frame.height == kept
        if not args.no_tally:
            tally = CaseTally(table, 86_400_000)
            tally.snapshots([1_700_000_000_000])  # counting from here on
        times, whole_times, ref_times, floor, prev_times = [], [], [], [], []
        table.update(_updates(rng, [ids[0]], 1_700_000_000_000))  # builds the id index (once per table)
        if previous is not None:
            prev = previous(ID, STAGES, FIELDS)
            prev.frame = table.frame
            prev._positions()  # noqa: SLF001 - its id index built before timing, as this table's
        next_id = kept
        for r in range(args.repeat):
            low = 0 if args.recent is None else max(0, kept - max(1, int(args.recent * kept)))
            old = [ids[i] for i in rng.integers(low, kept, args.rows // 2)]
            new = [f"case-{next_id + i}" for i in range(args.rows - len(old))]
            next_id += len(new)
            upd = _updates(rng, old + new, 1_700_000_000_000 + (r + 1) * 60_000)
            rows = table._as_rows(upd)  # noqa: SLF001 - the peers merge exactly the rows update() merges
            t = time.perf_counter()
            stacked = table.frame.vstack(rows)
            floor.append(time.perf_counter() - t)
            if not args.no_merge:
                t = time.perf_counter()
                merge(stacked, ID, list(STAGES.values()), FIELDS)
                whole_times.append(time.perf_counter() - t)
            if args.polars:
                t = time.perf_counter()
                merge_reference(stacked, ID, list(STAGES.values()), FIELDS)
                ref_times.append(time.perf_counter() - t)
            del stacked  # it shares the table's columns: held, it would make the in-place write copy them
            held = table.frame if args.hold else None
            t = time.perf_counter()
            table.update(upd)
            times.append(time.perf_counter() - t)
            if previous is not None:
                held = prev.frame if args.hold else None
                t = time.perf_counter()
                prev.update(upd)
                prev_times.append(time.perf_counter() - t)
            del held
        med = lambda xs: statistics.median(xs) * 1000  # noqa: E731
        ref = f"{med(ref_times):>14.1f}" if ref_times else f"{'-':>14}"
        extra = f" {med(prev_times):>12.2f} {med(prev_times) / med(times):>5.1f}x" if prev_times else ""
        whole = f"{med(whole_times):>21.1f} {med(whole_times) / med(times):>7.0f}x" if whole_times else f"{'-':>21} {'-':>8}"
        print(f"{kept:>12,} {med(times):>10.2f} {whole} {ref} {med(floor):>10.3f}{extra}", flush=True)
        if prev_times:
            assert prev.frame.equals(table.frame), "the previous table and this one differ"
            del prev
    return 0


if __name__ == "__main__":
    sys.exit(main())
