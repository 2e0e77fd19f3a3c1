"""Anomaly detector throughput: CityBrain's numba detectors against River, measured in the same run.

Rows:
* ``default_detector().score_learn_one`` one point at a time (Python call per point), vs River's
  ``HalfSpaceTrees`` (score_one + learn_one) and River's ``GaussianScorer``-free baseline
  ``anomaly.StandardAbsoluteDeviation`` on the same stream;
* ``BatchDetector.score_many`` over 100k keys (micro-batches of one point per key), the
  streaming path, against the same River detectors' per-point rate (River has no batch path).

Targets (issues 3 and 13): >= 1M points/s per core on the batch path and >= 50x River's
HalfSpaceTrees; one point at a time >= 1M points per CPU-second (ahead of River's
StandardAbsoluteDeviation); state per key small (printed: bytes per key of the batch detector);
the anomaly operator's checkpoint for a 50k-sensor city well under a second and well under 1 GB.

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
            det.score_learn_one(t, v)
    out["citybrain default_detector().score_learn_one"] = c.rates(len(vals))

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
    det.score_learn_many(*batches[0])  # first touch of freshly allocated state: not the steady state
    with _Clock() as c:
        for b in batches[1:]:
            det.score_learn_many(*b)
    return c.rates(n_keys * steps), det._S.nbytes + det._SEA.nbytes + det._PD.nbytes


def bench_checkpoint(n_sensors: int) -> dict[str, float]:
    """The anomaly operator's checkpoint for a city of ``n_sensors`` sensors: one key per sensor
    metric as the operator names them (a quarter of the sensors are segments with three metrics, a
    sixth are traffic detectors with a peer), a day of 5-minute windows learned, then
    ``AnomalyOperator.snapshot()`` timed and sized, and restored."""
    import polars as pl

    from streams.anomaly_operator import AnomalyOperator

    rng = np.random.default_rng(1)
    op = AnomalyOperator(n_keys_hint=4 * n_sensors)
    n_seg = n_sensors // 4
    n_util = n_sensors - n_seg
    seg_ids = [f"S{i}" for i in range(n_seg)]
    util_ids = [f"U{i}" for i in range(n_util)]
    for step in range(12):  # an hour of 5-minute windows: every key has state (what a checkpoint holds)
        end = np.full(n_seg, 1_767_571_200_000 + step * 300_000, dtype=np.int64)
        seg = pl.DataFrame({"segment_id": seg_ids, "window_end_ms": end,
                            **{m: 40 + rng.normal(0, 3, n_seg) for m in ("speed_kmh", "occupancy_pct", "volume_veh")}})
        op.detector.score_learn_many(seg, "speed_kmh", key="segment_id", ts="window_end_ms")
        op.detector.score_learn_many(seg, "occupancy_pct", key="segment_id", ts="window_end_ms")
        op.detector.score_learn_many(seg, "volume_veh", key="segment_id", ts="window_end_ms")
        util = pl.DataFrame({"sensor_id": util_ids, "window_end_ms": np.full(n_util, end[0]),
                             "value": 300 + rng.normal(0, 5, n_util)})
        op.detector.score_learn_many(util, "value", key="sensor_id", ts="window_end_ms")
    with _Clock() as snap:
        blob = op.snapshot()
    with _Clock() as rest:
        AnomalyOperator().restore(blob)
    return {"keys": op.detector.n_keys, "bytes": len(blob), "snapshot_s": snap.cpu, "restore_s": rest.cpu,
            "snapshot_wall_s": snap.wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--points", type=int, default=20_000)
    ap.add_argument("--only-checkpoint", action="store_true")
    ap.add_argument("--city-sensors", type=int, default=50_000, help="checkpoint of the anomaly operator for a city this size")
    args = ap.parse_args()

    compile_s = warm_up()
    print(f"warm_up() (compile or load cached kernels): {compile_s * 1000:.0f} ms")
    if args.only_checkpoint:
        ck = bench_checkpoint(args.city_sensors)
        print(ck)
        return
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
    single = one["citybrain default_detector().score_learn_one"][0]
    print(f"target >= 1M points per CPU-second one point at a time: {'met' if single >= 1e6 else 'NOT met'} "
          f"({single / 1e6:.2f} M); ahead of River StandardAbsoluteDeviation: "
          f"{'yes' if single > one['river StandardAbsoluteDeviation'][0] else 'no'}; >= 50x HalfSpaceTrees: "
          f"{'met' if single / river_hst >= 50 else 'NOT met'} ({single / river_hst:.1f}x)")
    ck = bench_checkpoint(args.city_sensors)
    print(f"\nanomaly operator checkpoint, {args.city_sensors:,}-sensor city ({ck['keys']:,} keys): "
          f"{ck['bytes'] / 1e6:.0f} MB ({ck['bytes'] / args.city_sensors:,.0f} B per sensor, {ck['bytes'] / ck['keys']:,.0f} B per key), "
          f"snapshot {ck['snapshot_s']:.2f} CPU-s ({ck['snapshot_wall_s']:.2f} s wall), restore {ck['restore_s']:.2f} CPU-s; "
          f"target well under 1 s and 1 GB: {'met' if ck['snapshot_s'] < 0.5 and ck['bytes'] < 5e8 else 'NOT met'}")


if __name__ == "__main__":
    main()
