"""The local engine on the demo city, a 10x and a 100x city: as fast as possible and at real time
(issue 14, deliverable 6), with the raw JSON decode ceiling of the same lines as the peer, same run.

    .venv/bin/python bench/scale.py                          # demo, 10x, 100x; random seed
    .venv/bin/python bench/scale.py --sizes 1 100 --minutes 30 --realtime-s 120 --seed 7

Per city (the demo city; ``citybrain city generate``-style cities of 10x and 100x its sensors, the 100x
one >= 50k sensors and >= 300k grid cases a day), in a fresh process each (so RSS is the city's own):

1. the simulator writes ``--minutes`` of the city's records as JSON lines (from a random daytime hour,
   one batch per simulated minute; not timed);
2. **ceiling**: msgspec decodes every batch to Python objects (``bench/ingest.py``'s raw decode
   ceiling) — the peer;
3. **fast**: ``CityPipeline`` with the anomaly, green-wave and sensor-fault operators (what ``citybrain
   replay`` runs; alert rules are not part of the pipeline) ingests the batches back to back:
   records/s (wall, and per CPU-second), the share of the ceiling, window-close latency (wall time of
   the ingest calls that closed a window, p50/p99), checkpoint size, snapshot and restore time;
4. **real time**: a second pipeline catches up fast to just before a window end, then gets the rest a
   simulated second at a time at 1x wall speed for ``--realtime-s`` seconds: CPU share of one core,
   window-close latency, records/s (the city's own rate);
5. peak RSS of the process.

Runs are bounded: each city's child is killed after ``--timeout`` seconds (reported, the others go on).
Progress goes to stderr. The machine is shared (2 cores): read ratios, not absolute times.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MIN_MS, HOUR_MS = 60_000, 3_600_000


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _city(size: int, seed: int, tmp: Path):
    from brain.city import demo_city_path, load_city
    from brain.city.synth import write

    demo = load_city(demo_city_path())
    if size == 1:
        return demo
    sensors = max(len(demo.sensors) * size, 50_000 if size >= 100 else 0)
    districts = 16 if size >= 100 else 4
    out = tmp / f"city{size}x"
    write(out, sensors, districts, seed % 997)
    return load_city(out)


def _pipeline(city, out: Path):
    from brain.pipeline import CityPipeline, PipelineConfig
    from streams.anomaly_operator import maybe_anomaly_operator
    from streams.fault_operator import fault_operator
    from streams.greenwave_operator import maybe_greenwave_operator

    config = PipelineConfig()
    ops = [op for op in (maybe_anomaly_operator(city, config), maybe_greenwave_operator(city, str(out), fresh=True)) if op is not None]
    ops.append(fault_operator(city))
    return CityPipeline(city, config, window_operators=ops)


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def child(size: int, minutes: int, realtime_s: float, seed: int) -> dict:
    import msgspec

    from streams.sim.simulator import Simulator

    tmp = Path(tempfile.mkdtemp(prefix=f"bench-scale-{size}x-"))
    city = _city(size, seed, tmp)
    rng = random.Random(seed)
    day0 = 1_780_243_200_000  # a midnight, Asia/Shanghai
    start = day0 + rng.randrange(8, 17) * HOUR_MS + rng.randrange(0, 60) * MIN_MS
    _log(f"{size}x: {len(city.sensors):,} sensors, {len(city.cells):,} cells; simulating {minutes} min")
    sim = Simulator(city, seed=seed, start_ms=start)
    t = time.perf_counter()
    batches = list(sim.jsonl_batches(start + minutes * MIN_MS, batch_s=60))
    n_lines = sum(b.count(b"\n") for b in batches)
    sim_s = time.perf_counter() - t
    res: dict = {"size": size, "sensors": len(city.sensors), "cells": len(city.cells), "minutes": minutes,
                 "records": n_lines, "simulate_s": sim_s, "records_per_sim_minute": n_lines / minutes}
    # Grid cases a day at this city's rate (the generator's own expectation over a day's profile).
    from streams.sim.events import GridCaseGen
    from streams.sim.profiles import case_rate

    gen = GridCaseGen(city, seed)
    res["grid_cases_per_day"] = gen.rate_per_cell_hour * len(gen.cells) * sum(float(case_rate(h + 0.5)) for h in range(24))

    _log(f"{size}x: {n_lines:,} records in {sim_s:.1f} s; ceiling")
    dec = msgspec.json.Decoder()
    w, c = time.perf_counter(), time.process_time()
    for b in batches:
        dec.decode_lines(b)
    res["ceiling"] = {"wall_s": time.perf_counter() - w, "cpu_s": time.process_time() - c}

    _log(f"{size}x: warm-up (a throwaway pipeline to its first window close: kernels compiled or loaded)")
    warm = _pipeline(city, tmp / "warm")
    for b in batches:
        if warm.ingest_jsonl(b).windows:
            break
    del warm
    _log(f"{size}x: fast")
    pipe = _pipeline(city, tmp / "fast")
    pipe.ingest_jsonl(batches[0])  # (its city indexes are built here: not timed)
    closes = []
    windows = 0
    w, c = time.perf_counter(), time.process_time()
    for b in batches[1:]:
        t = time.perf_counter()
        out = pipe.ingest_jsonl(b)
        if out.windows:
            closes.append(time.perf_counter() - t)
            windows += len(out.windows)
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    timed = n_lines - batches[0].count(b"\n")
    res["fast"] = {"records": timed, "wall_s": wall, "cpu_s": cpu, "windows": windows,
                   "close_p50_ms": (_pct(closes, 0.5) or 0) * 1000, "close_p99_ms": (_pct(closes, 0.99) or 0) * 1000}
    from brain import checkpoint

    t, c = time.perf_counter(), time.process_time()
    blob = pipe.snapshot()
    snap_s, snap_cpu = time.perf_counter() - t, time.process_time() - c
    fresh = _pipeline(city, tmp / "restore")
    t, c = time.perf_counter(), time.process_time()
    fresh.restore(blob)
    res["checkpoint"] = {"bytes": len(blob), "snapshot_s": snap_s, "restore_s": time.perf_counter() - t,
                         "snapshot_cpu_s": snap_cpu, "restore_cpu_s": time.process_time() - c,
                         "operators_bytes": {type(op).__name__: len(checkpoint.encode(op.snapshot())) for op in pipe.window_operators if hasattr(op, "snapshot")},
                         "cases_kept": pipe.lifecycle["grid_case"].frame.height if pipe.lifecycle["grid_case"].frame is not None else 0}
    del fresh, blob, pipe

    _log(f"{size}x: real time ({realtime_s:.0f} s at 1x)")
    pipe = _pipeline(city, tmp / "rt")
    # Catch up fast, then 1x for the last realtime_s of the recording, chosen so that the watermark
    # passes a window end (its allowed lateness after it) within the real-time part.
    window_ms, lateness_ms = pipe.config.window_ms, int(pipe.config.allowed_lateness_s * 1000)
    per_s = [line for b in batches for line in b.splitlines(keepends=True)]
    ts = [_ts(line) for line in per_s]
    end_sim = max(ts) if ts else start
    last_end = (end_sim - lateness_ms - 15_000) // window_ms * window_ms
    rt_from = max(start, last_end + lateness_ms + 15_000 - int(realtime_s * 1000))
    head = [line for line, t_ in zip(per_s, ts) if t_ < rt_from]
    tail = [(line, t_) for line, t_ in zip(per_s, ts) if t_ >= rt_from]
    for k in range(0, len(head), 50_000):
        pipe.ingest_jsonl(b"".join(head[k:k + 50_000]))
    by_second: dict[int, list[bytes]] = {}
    for line, t_ in tail:
        by_second.setdefault((t_ - rt_from) // 1000, []).append(line)
    rt_closes, rt_records = [], 0
    w0, c0 = time.perf_counter(), time.process_time()
    sec = 0
    while time.perf_counter() - w0 < realtime_s:
        lines = by_second.get(sec)
        if lines:
            t = time.perf_counter()
            out = pipe.ingest_jsonl(b"".join(lines))
            rt_records += len(lines)
            if out.windows:
                rt_closes.append(time.perf_counter() - t)
        sec += 1
        wait = w0 + sec - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        if sec > max(by_second, default=0) + 1:
            break
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    res["realtime"] = {"wall_s": wall, "cpu_s": cpu, "records": rt_records, "closes": len(rt_closes),
                       "close_p50_ms": (_pct(rt_closes, 0.5) or 0) * 1000, "close_p99_ms": (_pct(rt_closes, 0.99) or 0) * 1000}
    res["rss_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return res


def _ts(line: bytes) -> int:
    i = line.find(b'"ts_ms":')
    if i < 0:
        return 0
    j = i + 8
    while line[j:j + 1] == b" ":
        j += 1
    k = j
    while line[k:k + 1].isdigit():
        k += 1
    return int(line[j:k] or 0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100], help="city sizes as multiples of the demo city")
    ap.add_argument("--minutes", type=int, default=20, help="simulated minutes per city for the fast run")
    ap.add_argument("--realtime-s", type=float, default=90.0, help="wall seconds at 1x per city")
    ap.add_argument("--timeout", type=float, default=1500.0, help="seconds per city before its run is killed")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    if args.child is not None:
        print(json.dumps(child(args.child, args.minutes, args.realtime_s, seed)))
        return 0
    print(f"seed {seed}; {args.minutes} simulated min fast, {args.realtime_s:.0f} s at 1x; cpu {os.cpu_count()}; "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    results = []
    for size in args.sizes:
        cmd = [sys.executable, __file__, "--child", str(size), "--minutes", str(args.minutes), "--realtime-s", str(args.realtime_s),
               "--seed", str(seed)]
        try:
            # (the child's progress goes straight to our stderr)
            done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            print(f"{size}x: killed after {args.timeout:.0f} s", flush=True)
            continue
        if done.returncode:
            print(f"{size}x: failed (exit {done.returncode})", flush=True)
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        results.append(r)
        _report(r)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def _report(r: dict) -> None:
    f, ce, rt, cp = r["fast"], r["ceiling"], r["realtime"], r["checkpoint"]
    rate, rate_cpu = f["records"] / f["wall_s"], f["records"] / f["cpu_s"]
    ceil = r["records"] / ce["cpu_s"]
    print(f"\n{r['size']}x city: {r['sensors']:,} sensors, {r['cells']:,} cells, {r['records_per_sim_minute']:,.0f} records per "
          f"simulated minute, ~{r['grid_cases_per_day']:,.0f} grid cases a day (simulated {r['minutes']} min in {r['simulate_s']:.0f} s)")
    print(f"  ceiling (msgspec decode)  {ceil:>12,.0f} records per CPU-s")
    print(f"  fast                      {rate:>12,.0f} records/s wall, {rate_cpu:,.0f} per CPU-s = {rate_cpu / ceil:.3f} of the ceiling; "
          f"{f['windows']} windows, close p50 {f['close_p50_ms']:.0f} ms, p99 {f['close_p99_ms']:.0f} ms")
    print(f"  real time (1x)            {rt['records'] / max(rt['wall_s'], 1e-9):>12,.0f} records/s, CPU {100 * rt['cpu_s'] / rt['wall_s']:.1f} % "
          f"of one core over {rt['wall_s']:.0f} s; {rt['closes']} closes, p50 {rt['close_p50_ms']:.0f} ms, p99 {rt['close_p99_ms']:.0f} ms")
    print(f"  checkpoint CPU            snapshot {cp.get('snapshot_cpu_s', 0):.2f} CPU-s, restore {cp.get('restore_cpu_s', 0):.2f} CPU-s; "
          f"operators' share: {', '.join(f'{k} {v / 1e6:.1f} MB' for k, v in cp.get('operators_bytes', {}).items())}")
    print(f"  checkpoint                {cp['bytes'] / 1e6:>12,.1f} MB, snapshot {cp['snapshot_s']:.2f} s, restore {cp['restore_s']:.2f} s "
          f"({cp['cases_kept']:,} cases kept)")
    print(f"  RSS peak                  {r['rss_peak_mb']:>12,.0f} MB", flush=True)


if __name__ == "__main__":
    sys.exit(main())
