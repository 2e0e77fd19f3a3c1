"""Vital signs of a simulated day: ``compute_vitals`` once per window vs ``compute_vitals_batch`` once.

    POLARS_MAX_THREADS=1 .venv/bin/python bench/vitals_speed.py [--hours 24] [--per-call-sample 48] [--repeat 3]

The real streaming pipeline (``CityPipeline``) runs over the demo city's simulated day and its
per-tick vital-sign inputs are captured (not timed). Then, on one core, time per window of:
  reference   the one-window formulation (``brain/vitals/reference.py``'s ``compute_vitals_reference``: what
              ``compute_vitals`` was), one call per window on ``--per-call-sample`` windows spread
              over the day (0 = all);
  per-call    ``compute_vitals`` (now the batch with one window), one call per window;
  batch       ``compute_vitals_batch`` over all the day's windows at once (best of ``--repeat``).
Wall and CPU time are both printed: the machine is shared, so wall time swings with other load.
Prints the ratios and checks the batch agrees with the reference on the sampled windows.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("POLARS_MAX_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

STATE_TABLES = ("cases", "incidents", "outages")


def capture(hours: float):
    from brain.city import demo_city_path, load_city
    from brain.pipeline import CityPipeline
    from streams.sim import Simulator

    city = load_city(demo_city_path())
    ticks = []

    def keep(inputs, city, window_end_ms):
        ticks.append((window_end_ms, dict(inputs)))
        return {}

    sim = Simulator(city, seed=7)
    pipe = CityPipeline(city, vitals_fn=keep)
    for batch in sim.batches(sim.start_ms + int(hours * 3_600_000), batch_s=300):
        pipe.ingest_frames(batch.frames)
    pipe.flush()
    return city, ticks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24: 288 five-minute windows)")
    ap.add_argument("--per-call-sample", type=int, default=48, help="windows timed with one compute_vitals call each (0 = all)")
    ap.add_argument("--repeat", type=int, default=3, help="batch runs (the best is reported)")
    args = ap.parse_args()

    import polars as pl
    from polars.testing import assert_frame_equal

    from brain.vitals import compute_vitals, compute_vitals_batch, split_ticks
    from brain.vitals.batch import WINDOW_TABLES
    from brain.vitals.reference import compute_vitals_reference

    t0 = time.perf_counter()
    city, ticks = capture(args.hours)
    print(f"captured {len(ticks)} windows of the demo city in {time.perf_counter() - t0:.1f} s "
          f"(POLARS_MAX_THREADS={os.environ['POLARS_MAX_THREADS']})")
    state = {k: ticks[-1][1][k] for k in STATE_TABLES}  # the state after the last tick, as the batch gets it
    ends = [t for t, _ in ticks]
    frames = {name: pl.concat([inp[name].with_columns(pl.lit(t, dtype=pl.Int64).alias("tick_end_ms"))
                               for t, inp in ticks if name in inp], how="vertical_relaxed")
              for name in (*WINDOW_TABLES, "sensor_last_seen")}
    frames.update(state)
    per_tick_inputs = [{**{k: v for k, v in inp.items() if k not in STATE_TABLES}, **state} for _, inp in ticks]

    # warm-up (imports, YAML tables, per-city caches)
    compute_vitals(per_tick_inputs[0], city, ends[0])
    compute_vitals_reference(per_tick_inputs[0], city, ends[0])
    compute_vitals_batch(frames, city, ends[:2])

    n = len(ticks) if args.per_call_sample <= 0 else min(args.per_call_sample, len(ticks))
    sample = sorted({round(i * (len(ticks) - 1) / max(n - 1, 1)) for i in range(n)})

    def per_window(fn) -> tuple[float, float, dict]:
        """(wall s, cpu s) per window of one call per sampled window, and the outputs."""
        outs = {}
        w0, c0 = time.perf_counter(), time.process_time()
        for i in sample:
            outs[i] = fn(per_tick_inputs[i], city, ends[i])
        return (time.perf_counter() - w0) / len(sample), (time.process_time() - c0) / len(sample), outs

    ref_wall, ref_cpu, reference = per_window(compute_vitals_reference)
    cv_wall, cv_cpu, _ = per_window(compute_vitals)

    best_wall = best_cpu = float("inf")
    for _ in range(max(args.repeat, 1)):
        w0, c0 = time.perf_counter(), time.process_time()
        out = compute_vitals_batch(frames, city, ends)
        best_wall, best_cpu = min(best_wall, time.perf_counter() - w0), min(best_cpu, time.process_time() - c0)
    split = split_ticks(out, ends)
    for i in sample:
        for name, want in reference[i].items():
            assert_frame_equal(split[i][name], want, check_exact=False, rel_tol=1e-9, abs_tol=0.0)

    k = len(ends)
    print(f"{'':44s} {'wall ms/window':>15s} {'cpu ms/window':>14s}")
    print(f"{'reference: one-window formulation, per call':44s} {ref_wall * 1e3:15.2f} {ref_cpu * 1e3:14.2f}   ({len(sample)} windows)")
    print(f"{'compute_vitals (batch of 1), per call':44s} {cv_wall * 1e3:15.2f} {cv_cpu * 1e3:14.2f}   ({len(sample)} windows)")
    print(f"{f'compute_vitals_batch, all {k} windows at once':44s} {best_wall * 1e3 / k:15.2f} {best_cpu * 1e3 / k:14.2f}"
          f"   (total {best_wall:.3f} s wall, {best_cpu:.3f} s cpu; best of {args.repeat})")
    print(f"ratio reference / batch: {ref_wall / (best_wall / k):.1f}x wall, {ref_cpu / (best_cpu / k):.1f}x cpu; "
          f"compute_vitals / batch: {cv_wall / (best_wall / k):.1f}x wall, {cv_cpu / (best_cpu / k):.1f}x cpu "
          f"(outputs agree on the timed windows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
