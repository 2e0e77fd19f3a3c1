"""Incident and outage vital signs per tick against the rows kept (issue 14, deliverable 3): the live
rows (:class:`brain.vitals.stack.liverows.LiveRows`, kept up to date by the rows that change) against
evaluating every kept row at every tick, same run, same frames.

    .venv/bin/python bench/vitals_live.py                                 # 10k, 100k, 500k rows kept
    .venv/bin/python bench/vitals_live.py --kept 2000000 --repeat 5 --city /tmp/city50k

For each size: an incident table and an outage table (as the pipeline keeps them, each watched by its
LiveRows) holding that many entities each, reported/started over the last 7 days (the default
retention), most closed/ended within hours; then ``--repeat`` rounds of one ``--rows``-row update of
each table (half progressing kept entities, half new) and one tick of ``compute_vitals_batch`` with
only those two tables as input:

  live      ``compute_vitals_batch(..., incidents=live, outages=live)`` (what the pipeline runs now):
            only the rows that can still count (open, or reported within the day's lookback)
  recount   ``compute_vitals_batch(...)`` on the whole tables (the previous per-tick cost)

Their emergency, utility_outages, district and city tables are checked equal each round. The update is
timed with the LiveRows watching (as in the pipeline) and, as its peer, on a copy of the tables with no
watcher (both with the previous tick's frames still held, as the pipeline's tick states hold them). Seeds are random unless --seed is given; medians printed.
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
from brain.vitals.stack.liverows import LiveRows, incident_until, outage_until  # noqa: E402

INC_ID, INC_STAGES, INC_FIELDS, _ = LIFECYCLE_KINDS["incident"]
OUT_ID, OUT_STAGES, OUT_FIELDS, _ = LIFECYCLE_KINDS["outage"]
DAY, MIN = 86_400_000, 60_000
T0 = 1_780_000_000_000 - 1_780_000_000_000 % (5 * MIN)
TYPES = ["fire", "medical", "traffic_accident", "hazmat", "flood"]
COMPARED = ("emergency", "utility_outages", "district", "city")


def _incidents(rng, ids, centres, start_ms: np.ndarray, closed: np.ndarray) -> pl.DataFrame:
    n = len(ids)
    c = centres[rng.integers(0, len(centres), n)]
    rep = pl.DataFrame({INC_ID: ids, "status": ["reported"] * n, "ts_ms": start_ms,
                        "type": [TYPES[i] for i in rng.integers(0, len(TYPES), n)], "severity": rng.integers(1, 5, n),
                        "lon": c[:, 0] + rng.normal(0, 0.002, n), "lat": c[:, 1] + rng.normal(0, 0.002, n),
                        "units": np.zeros(n, np.int64), "segment_id": [None] * n, "sensor_id": ["CAD-1"] * n},
                       schema_overrides={"segment_id": pl.Utf8})
    disp = rep.with_columns(status=pl.lit("dispatched"), ts_ms=pl.Series(start_ms + rng.integers(1, 10, n) * MIN),
                            units=pl.Series(rng.integers(1, 8, n)))
    close_at = start_ms + rng.integers(20, 6 * 60, n) * MIN
    done = closed & (close_at < T0)
    cl = disp.filter(pl.Series(done)).with_columns(status=pl.lit("closed"), ts_ms=pl.Series(close_at[done]))
    return pl.concat([rep, disp.filter(pl.col("ts_ms") < T0), cl])


def _outages(rng, ids, cells, start_ms: np.ndarray, ended: np.ndarray) -> pl.DataFrame:
    n = len(ids)
    st = pl.DataFrame({OUT_ID: ids, "status": ["start"] * n, "ts_ms": start_ms,
                       "utility": [("power", "water", "gas")[i] for i in rng.integers(0, 3, n)],
                       "cell_id": [cells[i] for i in rng.integers(0, len(cells), n)],
                       "customers": rng.integers(10, 3000, n), "sensor_id": ["UT-1"] * n})
    end_at = start_ms + rng.integers(20, 6 * 60, n) * MIN
    done = ended & (end_at < T0)
    en = st.filter(pl.Series(done)).with_columns(status=pl.lit("end"), ts_ms=pl.Series(end_at[done]))
    return pl.concat([st, en])


def main() -> int:
    args = lifecycle_bench_city.parse(__doc__, [10_000, 100_000, 500_000], 5)
    seed, rng, city = lifecycle_bench_city.city_and_rng(args, "bench-vitals-live-")
    cells = [c.id for c in city.cells]
    centres = np.array([c.center for c in city.cells], dtype=np.float64)
    cfg = VitalsConfig()
    lookback = int(cfg.incident_lookback_s * 1000)
    inc_schema, out_schema = _lifecycle_schema("incident"), _lifecycle_schema("outage")
    warm_up()
    print(f"seed {seed}; city {city.name!r}: {len(city.sensors)} sensors, {len(cells)} cells; {args.rows}-row update of each "
          f"table + 1 tick, median of {args.repeat}", flush=True)
    print(f"{'rows kept':>10} {'live rows':>10} {'upd (live) ms':>14} {'upd (bare) ms':>14} "
          f"{'tick (live) ms':>15} {'tick (recount) ms':>18} {'ratio':>7}")
    for kept in args.kept:
        tables, bare = [], []
        for id_col, stages, fields in ((INC_ID, INC_STAGES, INC_FIELDS), (OUT_ID, OUT_STAGES, OUT_FIELDS)):
            tables.append(LifecycleTable(id_col, stages, fields))
            bare.append(LifecycleTable(id_col, stages, fields))
        inc, out = tables
        live_inc = LiveRows(inc, incident_until(lookback), list(inc_schema))
        live_out = LiveRows(out, outage_until, list(out_schema))
        inc_ids, out_ids = [f"IN-{i}" for i in range(kept)], [f"OU-{i}" for i in range(kept)]
        first = [_incidents(rng, inc_ids, centres, np.sort(T0 - rng.integers(0, 7 * DAY, kept)), rng.random(kept) < 0.97),
                 _outages(rng, out_ids, cells, np.sort(T0 - rng.integers(0, 7 * DAY, kept)), rng.random(kept) < 0.97)]
        for t, b, rows in zip(tables, bare, first):
            t.update(rows)
            b.update(rows)
        live_inc.frame(T0), live_out.frame(T0)  # the tables read whole once (as after a start or a restore)
        ups, ups_bare, fast, slow, n_live = [], [], [], [], []
        next_id = kept
        for r in range(args.repeat):
            now = T0 + (r + 1) * 5 * MIN
            half = args.rows // 2
            at = np.full(args.rows, now - MIN, dtype=np.int64)
            upd_inc = _incidents(rng, [inc_ids[i] for i in rng.integers(0, kept, half)] + [f"IN-{next_id + i}" for i in range(args.rows - half)],
                                 centres, at, np.zeros(args.rows, bool)).filter(pl.col("status") == "reported")
            upd_out = _outages(rng, [out_ids[i] for i in rng.integers(0, kept, half)] + [f"OU-{next_id + i}" for i in range(args.rows - half)],
                               cells, at, np.zeros(args.rows, bool))
            next_id += args.rows - half
            t = time.perf_counter()
            inc.update(upd_inc)
            out.update(upd_out)
            ups.append(time.perf_counter() - t)
            t = time.perf_counter()
            bare[0].update(upd_inc)
            bare[1].update(upd_out)
            ups_bare.append(time.perf_counter() - t)
            frames = {"incidents": inc.current(inc_schema), "outages": out.current(out_schema)}
            # the peer's tables are read too and their frames held until the next update, as the live
            # ones (and the pipeline's tick states): a held frame makes the next in-place write copy
            held = [bare[0].current(inc_schema), bare[1].current(out_schema)]  # noqa: F841
            t = time.perf_counter()
            got = compute_vitals_batch(frames, city, [now], cfg, incidents=live_inc, outages=live_out)
            fast.append(time.perf_counter() - t)
            t = time.perf_counter()
            want = compute_vitals_batch(frames, city, [now], cfg)
            slow.append(time.perf_counter() - t)
            for name in COMPARED:
                assert got[name].equals(want[name]), f"{name} differs at {kept} rows kept"
            n_live.append(live_inc.size + live_out.size)
        med = lambda xs: statistics.median(xs) * 1000  # noqa: E731
        print(f"{kept:>10,} {int(statistics.median(n_live)):>10,} {med(ups):>14.2f} {med(ups_bare):>14.2f} "
              f"{med(fast):>15.1f} {med(slow):>18.1f} {med(slow) / med(fast):>6.1f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
