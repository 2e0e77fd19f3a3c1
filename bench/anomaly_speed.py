"""Anomaly detector throughput: CityBrain's numba detectors against River, measured in the same run.

Rows:
* ``default_detector().score_one`` one point at a time (Python call per point), vs River's
  ``HalfSpaceTrees`` (score_one + learn_one) and River's ``GaussianScorer``-free baseline
  ``anomaly.StandardAbsoluteDeviation`` on the same stream;
* ``BatchDetector.score_many`` over 100k keys (micro-batches of one point per key), the
  streaming path, against the same River detectors' per-point rate (River has no batch path).

Targets (issues 3 and 13): >= 1M points/s per core on the batch path and >= 50x River's
HalfSpaceTrees; one point at a time >= 1M points per CPU-second (ahead of River's
StandardAbsoluteDeviation); state per key small (printed: bytes per key of the batch detector).

Usage: ``.venv/bin/python bench/anomaly_speed.py [--keys 100000] [--steps 20] [--points 20000]``
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from brain.anomaly import BatchDetector, default_detector, warm_up
from models.simhistory import make_series


class _Clock:
    """Wall and CPU time of a block. The machine is shared, so the per-core figure is points per
    CPU-second of this process (what one dedicated core would do); wall-clock is printed too."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def rates(self, n: int) -> tuple[float, float]:
        return n / max(self.cpu, 1e-9), n / max(self.wall, 1e-9)


def bench_one_at_a_time(n_points: int) -> dict[str, tuple[float, float]]:
    s = make_series("speed_kmh", days=n_points * 60 / 86400 + 1e-9, step_s=60, seed=1)
    ts_s = (s.ts_ms / 1000.0).tolist()[:n_points]
    vals = s.values.tolist()[:n_points]
    out: dict[str, tuple[float, float]] = {}

    det = default_detector()
    with _Clock() as c:
        for t, v in zip(ts_s, vals):
            det.score_one(t, v)
    out["citybrain default_detector().score_one"] = c.rates(len(vals))

    from river import anomaly, stats

    lo, hi = min(vals), max(vals)
    hst = anomaly.HalfSpaceTrees(n_trees=10, height=8, window_size=250, limits={"x": (lo, hi)}, seed=1)
    with _Clock() as c:
        for v in vals:
            x = {"x": v}
            hst.score_one(x)
            hst.learn_one(x)
    out["river HalfSpaceTrees (10 trees)"] = c.rates(len(vals))

    sad = anomaly.StandardAbsoluteDeviation(sub_stat=stats.Mean())
    with _Clock() as c:
        for v in vals:
            sad.score_one({}, v)
            sad.learn_one({}, v)
    out["river StandardAbsoluteDeviation"] = c.rates(len(vals))
    return out


def bench_batch(n_keys: int, steps: int) -> tuple[tuple[float, float], int]:
    rng = np.random.default_rng(0)
    det = BatchDetector(n_keys_hint=n_keys)
    keys = np.arange(n_keys, dtype=np.int64)
    base = 20.0 + 80.0 * rng.random(n_keys)
    # one point per key per minute, the micro-batch shape of the streaming path
    batches = []
    for step in range(steps + 1):
        ts = np.full(n_keys, 1_767_571_200_000 + step * 60_000, dtype=np.int64)
        batches.append((keys, ts, base + rng.normal(0.0, 2.0, n_keys)))
    det.score_many(*batches[0])  # first touch of freshly allocated state: not the steady state
    with _Clock() as c:
        for b in batches[1:]:
            det.score_many(*b)
    return c.rates(n_keys * steps), det._S.nbytes + det._SEA.nbytes + det._PD.nbytes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--points", type=int, default=20_000)
    args = ap.parse_args()

    compile_s = warm_up()
    print(f"warm_up() (compile or load cached kernels): {compile_s * 1000:.0f} ms")
    one = bench_one_at_a_time(args.points)
    batch_rate, state_bytes = bench_batch(args.keys, args.steps)
    river_best = max(v[0] for k, v in one.items() if k.startswith("river"))
    river_hst = one["river HalfSpaceTrees (10 trees)"][0]

    rows = list(one.items())
    rows.append((f"citybrain BatchDetector.score_many ({args.keys:,} keys)", batch_rate))
    print(f"\n{'detector':<55} {'points/cpu-s':>13} {'points/wall-s':>14} {'x HST':>8} {'x best River':>13}")
    for name, (cpu_rate, wall_rate) in rows:
        print(f"{name:<55} {cpu_rate:>13,.0f} {wall_rate:>14,.0f} {cpu_rate / river_hst:>8.1f} {cpu_rate / river_best:>13.1f}")
    print(f"\nbatch state for {args.keys:,} keys: {state_bytes / 1e6:.0f} MB ({state_bytes / args.keys:,.0f} B per key; "
          f"50k sensors x 3 metrics: {150_000 * state_bytes / args.keys / 1e6:.0f} MB); ratios use CPU-seconds (shared machine)")
    ok_rate = batch_rate[0] >= 1e6
    print(f"target >= 1M points/s per core on the batch path: {'met' if ok_rate else 'NOT met'}; "
          f">= 50x River HalfSpaceTrees: {'met' if batch_rate[0] / river_hst >= 50 else 'NOT met'}; "
          f">= 50x the best River peer: {'met' if batch_rate[0] / river_best >= 50 else 'NOT met'}")
    single = one["citybrain default_detector().score_one"][0]
    print(f"target >= 1M points per CPU-second one point at a time: {'met' if single >= 1e6 else 'NOT met'} "
          f"({single / 1e6:.2f} M); ahead of River StandardAbsoluteDeviation: "
          f"{'yes' if single > one['river StandardAbsoluteDeviation'][0] else 'no'}; >= 50x HalfSpaceTrees: "
          f"{'met' if single / river_hst >= 50 else 'NOT met'}")


if __name__ == "__main__":
    main()
