"""``compute_vitals_batch`` on the ingest benchmark's day: this checkout vs an older commit, same run.

    POLARS_MAX_THREADS=1 .venv/bin/python bench/vitals_batch_speed.py [--old-ref baee90e] [--repeat 7]
        [--data /tmp/vb/day6.jsonl] [--batch-minutes 360] [--reuse] [--pipeline] [--profile] [--split]

The ingest benchmark's data (``bench/ingest.py``'s generator: a simulated day of the demo city as
JSON lines, 1 % damaged, cut in ``--batch-minutes`` batches) goes through ``CityPipeline.ingest_jsonl``
once, and the exact arguments of every ``compute_vitals_batch`` call it makes are captured (not
timed). Then both implementations run on those same inputs, interleaved, ``--repeat`` times:

  old   ``brain/vitals/batch.py``, ``compute.py``, the formula modules (air, noise, traffic, ...) and
        the ``brain/kernels`` modules batch.py imports, as of ``--old-ref`` (default baee90e: before the
        vectorised rewrite), loaded from git as modules
  new   this checkout's ``brain.vitals.compute_vitals_batch``

Prints seconds per day (all calls of one replay; best of the repeats, CPU and wall), the ratio, and
checks every table of every call is identical (``assert_frame_equal``, exact) between the two, or
else says how far apart the values are (polars picks its float-summation algorithm by frame size and
query shape, so another batching can round an area sum differently in the last bit).
The captured inputs are kept next to ``--data`` (``--reuse`` skips the replay that captures them).
``--pipeline`` also times the whole ingest chain once with each; ``--profile`` prints a cProfile of
one replay of the new implementation; ``--split`` times a call of the most common K with K = 1 (its first tick)
and with all its K ticks, which separates the fixed cost of a call from the cost of a tick. The machine is shared: compare the two in one run, never
across runs.
"""
from __future__ import annotations

import argparse
import copy
import os
import pickle
import re
import subprocess
import sys
import time
import types
from pathlib import Path

os.environ.setdefault("POLARS_MAX_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]


LEAVES = ("air", "emergency", "grid", "health", "noise", "sensors", "traffic", "utilities")


def load_old(ref: str):
    """``compute_vitals_batch`` of commit ``ref``: its batch.py, compute.py and formula modules, each
    loaded from git as a module of its own and wired to the others."""
    def module(path: str, name: str, replace: tuple[str, str] | None = None) -> types.ModuleType:
        text = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:{path}"], check=True, capture_output=True, text=True).stdout
        if replace:
            text = text.replace(*replace)
        mod = types.ModuleType(name)
        sys.modules[name] = mod
        exec(compile(text, f"{ref}:{path}", "exec"), mod.__dict__)
        return mod

    leaves = {leaf: module(f"brain/vitals/{leaf}.py", f"_old_vitals_{leaf}") for leaf in LEAVES}
    compute = module("brain/vitals/compute.py", "_old_vitals_compute")
    batch_path = "brain/vitals/batch.py"
    batch_text = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:{batch_path}"], check=True, capture_output=True, text=True).stdout
    # The numba kernels the batch module of that commit imports, from that commit too (their API may
    # have changed since); compiled without numba's on-disk cache, which needs a source file.
    for kernel in sorted(set(re.findall(r"^from brain\.kernels\.(\w+) import", batch_text, flags=re.M))):
        module(f"brain/kernels/{kernel}.py", f"_old_kernels_{kernel}", ("cache=True", "cache=False"))
        batch_text = batch_text.replace(f"from brain.kernels.{kernel} import", f"from _old_kernels_{kernel} import")
    batch_text = batch_text.replace("from brain.vitals.compute import", "from _old_vitals_compute import")
    batch = types.ModuleType("_old_vitals_batch")
    sys.modules["_old_vitals_batch"] = batch
    exec(compile(batch_text, f"{ref}:{batch_path}", "exec"), batch.__dict__)
    for mod in (compute, batch):
        mod.__dict__.update(leaves)  # the formula modules of that commit, not this checkout's
    return batch.compute_vitals_batch


def capture(data: Path, batch_minutes: int):
    """The city and the (frames, ends) of every compute_vitals_batch call of one replay."""
    import ingest_data

    from brain.city import demo_city_path, load_city
    from brain.kernels.window import warm_up
    from brain.pipeline import CityPipeline

    if not data.exists() or not data.with_suffix(".cuts").exists():
        data.parent.mkdir(parents=True, exist_ok=True)
        ingest_data.make_data(data, 24, 0.01, batch_minutes)
    city = load_city(demo_city_path())
    warm_up()
    calls = []
    pipe = CityPipeline(city)
    real = pipe.vitals_batch_fn

    def keep(frames, city, ends):
        calls.append((dict(frames), list(ends)))
        return real(frames, city, ends)

    pipe.vitals_batch_fn = keep
    for b in ingest_data.read_batches(data):
        pipe.ingest_jsonl(b)
    pipe.flush()
    return city, calls


def pipeline_day(data: Path, city, fns: dict) -> None:
    """The whole ingest chain (``CityPipeline.ingest_jsonl`` over the day) with each vitals function."""
    import ingest_data

    from brain.pipeline import CityPipeline

    batches = ingest_data.read_batches(data)
    for name, fn in fns.items():
        warm = CityPipeline(city)
        warm.vitals_batch_fn = fn
        warm.ingest_jsonl(batches[0])
    seconds = {}
    for name, fn in fns.items():
        pipe = CityPipeline(city)
        pipe.vitals_batch_fn = fn
        c0 = time.process_time()
        for b in batches:
            pipe.ingest_jsonl(b)
        pipe.flush()
        seconds[name] = time.process_time() - c0
    print("whole ingest chain, CPU s per day: " + ", ".join(f"{k} vitals {v:.3f}" for k, v in seconds.items()))


def replay(fn, city, calls) -> tuple[float, float, list]:
    outs = []
    c0, w0 = time.process_time(), time.perf_counter()
    for frames, ends in calls:
        outs.append(fn(frames, city, ends))
    return time.process_time() - c0, time.perf_counter() - w0, outs


def fixed_and_per_tick(fns: dict, city, calls, repeat: int) -> None:
    """One call of the replay (of the most common K) with K = 1 (its first tick's rows only) and with all its K ticks, for each
    implementation: CPU ms per call, best of ``repeat`` (x 5 calls each); the difference over K - 1
    is the marginal cost of a tick, K = 1 about the fixed cost of a call."""
    import polars as pl

    sizes = [len(e) for _, e in calls]
    frames, ends = calls[sizes.index(max(set(sizes), key=lambda k: (sizes.count(k), k)))]  # the most common K
    one = {name: f.filter(pl.col("tick_end_ms") == ends[0]) if "tick_end_ms" in f.columns else f for name, f in frames.items()}
    cases = {"K=1": (one, ends[:1]), f"K={len(ends)}": (frames, ends)}
    best = {(name, case): 1e9 for name in fns for case in cases}
    for _ in range(repeat):
        for case, (f, e) in cases.items():
            for name, fn in fns.items():
                c0 = time.process_time()
                for _ in range(5):
                    fn(f, city, e)
                best[name, case] = min(best[name, case], (time.process_time() - c0) / 5)
    k = len(ends)
    for name in fns:
        one_ms, all_ms = best[name, "K=1"] * 1e3, best[name, f"K={k}"] * 1e3
        print(f"{name:4s} K=1 {one_ms:6.2f} ms   K={k} {all_ms:6.2f} ms   per extra tick {(all_ms - one_ms) / (k - 1):.3f} ms")


def compare(old_outs: list, new_outs: list) -> None:
    """Every table of every call: same names, schema and rows; values identical, or else the largest
    relative difference of a float column (it must stay below 1e-9, the tests' tolerance)."""
    import numpy as np
    import polars as pl
    from polars.testing import assert_frame_equal

    tables, exact, worst, differing = 0, 0, (0.0, ""), set()
    for i, (a, b) in enumerate(zip(old_outs, new_outs)):
        assert list(a) == list(b), f"call {i}: table names differ"
        for name in a:
            tables += 1
            try:
                assert_frame_equal(b[name], a[name], check_exact=True)
                exact += 1
                continue
            except AssertionError:
                assert_frame_equal(b[name], a[name], check_exact=False, rel_tol=1e-9, abs_tol=0.0)
            for col, dtype in a[name].schema.items():
                if dtype == pl.Float64:
                    x, y = a[name][col].to_numpy(), b[name][col].to_numpy()
                    with np.errstate(invalid="ignore", divide="ignore"):
                        rel = np.nanmax(np.abs(x - y) / np.maximum(np.abs(x), np.abs(y)), initial=0.0)
                    if rel > 0:
                        differing.add(f"{name}.{col}")
                    if rel > worst[0]:
                        worst = (float(rel), f"call {i} {name}.{col}")
    if exact == tables:
        print(f"identical: every table of every call ({tables} tables)")
    else:
        print(f"identical: {exact} of {tables} tables; the others differ in the last bits of polars' float sums "
              f"(largest relative difference {worst[0]:.1e}, {worst[1]}; columns: {', '.join(sorted(differing))})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old-ref", default="baee90e", help="git commit of the old implementation (default baee90e)")
    ap.add_argument("--repeat", type=int, default=7, help="replays of each, interleaved (best reported)")
    ap.add_argument("--data", type=Path, default=Path("/tmp/vb/day6.jsonl"), help="JSON lines (made if missing)")
    ap.add_argument("--batch-minutes", type=int, default=360, help="batch size when the data is made")
    ap.add_argument("--reuse", action="store_true", help="reuse the inputs captured by an earlier run (next to --data)")
    ap.add_argument("--pipeline", action="store_true", help="also time the whole ingest chain once with each (slow: ~6 s)")
    ap.add_argument("--profile", action="store_true", help="cProfile one replay of the new implementation")
    ap.add_argument("--split", action="store_true", help="also time a call with K=1 and with all its ticks (fixed vs per-tick cost)")
    args = ap.parse_args()

    from brain.vitals import compute_vitals_batch as new

    old = load_old(args.old_ref)
    cache = args.data.with_suffix(".vitals_calls.pkl")
    if args.reuse and cache.exists():
        from brain.city import demo_city_path, load_city

        city, calls = load_city(demo_city_path()), pickle.loads(cache.read_bytes())
    else:
        city, calls = capture(args.data, args.batch_minutes)
        cache.write_bytes(pickle.dumps(calls))
    # The old implementation gets a city of its own: both keep per-city indexes in the City object,
    # under keys that may be the same while their classes differ.
    old_city = copy.deepcopy(city)
    old_city.__dict__.pop("_indexes", None)
    old_impl = old

    def old(frames, _city, ends):
        return old_impl(frames, old_city, ends)

    n_ticks = sum(len(e) for _, e in calls)
    print(f"{len(calls)} calls, {n_ticks} ticks; POLARS_MAX_THREADS={os.environ['POLARS_MAX_THREADS']}")
    replay(old, city, calls[:1])
    replay(new, city, calls[:1])  # warm both (per-city caches, lazy imports)
    best = {"old": (1e9, 1e9), "new": (1e9, 1e9)}
    outs = {}
    for _ in range(args.repeat):
        for name, fn in (("old", old), ("new", new)):
            cpu, wall, outs[name] = replay(fn, city, calls)
            best[name] = (min(best[name][0], cpu), min(best[name][1], wall))
    for name in ("old", "new"):
        print(f"{name:4s} {best[name][0]:.3f} s CPU  {best[name][1]:.3f} s wall per day")
    print(f"speed-up old/new: {best['old'][0] / best['new'][0]:.2f}x CPU, {best['old'][1] / best['new'][1]:.2f}x wall")
    compare(outs["old"], outs["new"])
    if args.split:
        fixed_and_per_tick({"old": old, "new": new}, city, calls, args.repeat)
    if args.pipeline:
        pipeline_day(args.data, city, {"old": old, "new": new})
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
        replay(new, city, calls)
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(35)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
