"""Anomaly-state checkpoints of a 50k-sensor city: the whole state each time against a delta since a
base file (issue 14, deliverable 3), measured in the same run on the same state.

    .venv/bin/python bench/anomaly_checkpoint.py [--sensors 50000] [--warm-ticks 24] [--repeat 5] [--seed N]

Two :class:`streams.anomaly_operator.AnomalyOperator` get the same 5-minute ticks of a synthetic city
(segments with speed/occupancy/volume, detectors, utility meters, noise monitors: ~1.4 keys per
sensor, as the generated 100x city) with random readings. Then, ``--repeat`` times, one more tick
and a checkpoint of each, written as the drivers write theirs (:class:`streams.checkpoint_file.CheckpointFile`:
encode, SHA-256, fsync, rename):

  whole   ``snapshot()`` as today: every key's state, every checkpoint
  delta   ``keep_bases_in(BaseStore(...))``: what changed since the base (the base itself is written
          once, at the first checkpoint: its cost is printed apart)

and a restore of each from its file into a fresh operator (the delta reads its base too). The two
restored states are checked equal to the running ones, bit for bit. CPU seconds are the process's
(``time.process_time``), medians of the repeats.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402

from brain.anomaly import warm_up  # noqa: E402
from brain.pipeline import TickBatch  # noqa: E402
from streams.anomaly_operator import AnomalyOperator  # noqa: E402
from streams.anomaly_store import BaseStore  # noqa: E402
from streams.checkpoint_file import CheckpointFile  # noqa: E402

TICK_MS = 300_000
T0 = 1_780_000_000_000 - 1_780_000_000_000 % TICK_MS


def _tick(rng: np.random.Generator, end: int, n: dict[str, int]) -> TickBatch:
    def ids(prefix: str, k: int) -> pl.Series:
        return pl.Series([f"{prefix}-{i}" for i in range(k)])

    seg, det, util, noise = n["segments"], n["detectors"], n["utility"], n["noise"]
    hour = (end // 3_600_000) % 24
    rush = 1.0 + 0.5 * np.sin(hour / 24 * 2 * np.pi)
    vitals = {
        "segment_traffic": pl.DataFrame({"segment_id": ids("S", seg), "window_end_ms": [end] * seg,
                                         "speed_kmh": rng.normal(40 / rush, 5, seg), "occupancy_pct": rng.normal(20 * rush, 3, seg),
                                         "volume_veh": rng.poisson(60 * rush, seg).astype(np.float64)}),
        "detector_sensor": pl.DataFrame({"sensor_id": ids("D", det), "window_end_ms": [end] * det, "speed_kmh": rng.normal(40, 6, det)}),
        "utility_sensor": pl.DataFrame({"sensor_id": ids("U", util), "window_end_ms": [end] * util, "value": rng.normal(300, 10, util)}),
        "noise_sensor": pl.DataFrame({"sensor_id": ids("N", noise), "window_end_ms": [end] * noise, "laeq_db": rng.normal(60, 3, noise)}),
    }
    return TickBatch([end], {}, vitals)


def _timed(fn):
    c, w = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.process_time() - c, time.perf_counter() - w


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sensors", type=int, default=50_000)
    ap.add_argument("--warm-ticks", type=int, default=24, help="ticks scored before the first checkpoint (default 24: 2 h)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(2**31)
    rng = np.random.default_rng(seed)
    s = args.sensors
    n = {"detectors": int(0.4 * s), "segments": int(0.2 * s), "utility": int(0.2 * s), "noise": int(0.2 * s)}
    warm_up()
    tmp = Path(tempfile.mkdtemp(prefix="anomaly-ckpt-"))
    whole, delta = AnomalyOperator(), AnomalyOperator().keep_bases_in(BaseStore(tmp / "bases"))
    files = {"whole": CheckpointFile(tmp / "whole.ckpt"), "delta": CheckpointFile(tmp / "delta.ckpt")}
    end = T0
    for _ in range(args.warm_ticks):
        end += TICK_MS
        batch = _tick(rng, end, n)
        whole(batch)
        delta(batch)
    keys = whole.detector.n_keys
    print(f"seed {seed}; {s:,} sensors, {keys:,} keys; {args.warm_ticks} ticks scored first; medians of {args.repeat}")
    _, base_cpu, base_wall = _timed(lambda: files["delta"].save({"anomaly": delta.snapshot()}))
    base_bytes = sum(p.stat().st_size for p in (tmp / "bases").glob("base-*.bin"))
    print(f"delta's first checkpoint (writes the base, {base_bytes / 1e6:,.1f} MB): {base_cpu:.2f} CPU-s, {base_wall:.2f} s")
    rows = {k: {"cpu": [], "wall": [], "bytes": [], "rcpu": [], "rwall": []} for k in files}
    idle = []
    for _ in range(args.repeat):
        end += TICK_MS
        batch = _tick(rng, end, n)
        whole(batch)
        delta(batch)
        for name, op in (("whole", whole), ("delta", delta)):
            _, cpu, wall = _timed(lambda: files[name].save({"anomaly": op.snapshot()}))
            r = rows[name]
            r["cpu"].append(cpu)
            r["wall"].append(wall)
            r["bytes"].append(files[name].path.stat().st_size)
            fresh = AnomalyOperator() if name == "whole" else AnomalyOperator().keep_bases_in(BaseStore(tmp / "bases"))
            _, rcpu, rwall = _timed(lambda: fresh.restore(files[name].load()["anomaly"]))
            r["rcpu"].append(rcpu)
            r["rwall"].append(rwall)
            got, want = fresh.detector.state(), op.detector.state()
            assert got[0] == want[0] and all(got[1][k].tobytes() == want[1][k].tobytes() for k in want[1]), f"{name}: restored state differs"
        _, cpu, _ = _timed(lambda: files["delta"].save({"anomaly": delta.snapshot()}))  # no tick since: the same bytes
        idle.append(cpu)
    med = statistics.median
    print(f"\n{'':<7} {'checkpoint MB':>14} {'write CPU-s':>12} {'write s':>8} {'restore CPU-s':>14} {'restore s':>10}")
    for name, r in rows.items():
        print(f"{name:<7} {med(r['bytes']) / 1e6:>14,.1f} {med(r['cpu']):>12.3f} {med(r['wall']):>8.2f} {med(r['rcpu']):>14.2f} {med(r['rwall']):>10.2f}")
    w, d = rows["whole"], rows["delta"]
    print(f"\nwhole / delta: {med(w['bytes']) / med(d['bytes']):.1f}x the bytes, {med(w['cpu']) / med(d['cpu']):.1f}x the CPU per checkpoint after a tick; "
          f"a checkpoint with no tick since (most of them at real time: one tick per 5 min, one checkpoint per 10 s): {med(idle):.3f} CPU-s")
    print("restored states equal to the running ones: yes (bit for bit, both)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
