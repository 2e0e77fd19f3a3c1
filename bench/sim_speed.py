"""Simulator speed: events/s and the ratio to real time, against a per-record peer in the same run.

    .venv/bin/python bench/sim_speed.py [--hours 24] [--batch-s 3600] [--city DIR] [--seed 0]

Measures, on the demo city (or --city):
1. generation of ``--hours`` simulated hours into polars frames (columnar, hour-sized batches);
2. the same with one batch per 60 s step (what a live driver pulls);
3. JSONL encoding of the generated frames (:func:`streams.sim.to_jsonl`);
4. peers: (a) the same records of one hour built as per-event msgspec structs and encoded one by one
   (what a per-record design spends on just materialising and encoding events); (b) a per-event
   Python generator of the detector readings alone (same BPR physics, ``random`` draws, one struct
   and one encode per event), against the columnar simulator's rate over all kinds.

Rates are printed per wall second and per CPU second of this process (``time.process_time``): on a
shared machine the CPU figure is the one that does not depend on what else is running.
"""
from __future__ import annotations

import argparse
import time
from contextlib import contextmanager
from pathlib import Path

import msgspec

from brain.city import demo_city_path, load_city
from brain.schemas import RECORD_TYPES, TrafficReading
from streams.sim.profiles import traffic_demand
from streams.sim.traffic import BPR_ALPHA, BPR_BETA, CAPACITY_VPHPL, OCC_PCT_PER_VEH_KM
from streams.sim import Simulator, to_jsonl

HOUR_MS = 3_600_000


class Timer:
    wall = cpu = 0.0


@contextmanager
def timed():
    t = Timer()
    w0, c0 = time.perf_counter(), time.process_time()
    yield t
    t.wall, t.cpu = time.perf_counter() - w0, time.process_time() - c0


def rate(n: float, t: Timer) -> str:
    return f"{n / t.wall:,.0f}/s wall, {n / t.cpu:,.0f}/s CPU"


def per_event_detectors(city, start_ms: int, hours: float) -> int:
    """Peer (b): detector readings generated one event at a time in plain Python."""
    import math
    import random

    rnd = random.Random(0)
    enc = msgspec.json.Encoder()
    segs = {s.id: s for s in city.segments}
    dets = [(s.id, segs[s.segment]) for s in city.sensors if s.type in ("loop", "video", "radar") and s.segment in segs]
    peak = {sid: rnd.uniform(0.75, 1.2) for sid in segs}
    n = 0
    out = []
    for minute in range(int(hours * 60)):
        ts = start_ms + minute * 60_000
        hour = (minute / 60.0) % 24
        demand = float(traffic_demand(hour, False))
        for sid, seg in dets:
            cap = CAPACITY_VPHPL[seg.road_class]
            q = peak[seg.id] * demand * cap * math.exp(0.07 * rnd.gauss(0, 1))
            v = max(seg.free_flow_kmh / (1 + BPR_ALPHA[seg.road_class] * (q / cap) ** BPR_BETA), 3.0)
            volume = float(max(0, round(q * seg.lanes / 60 + math.sqrt(q * seg.lanes / 60 + 1e-9) * rnd.gauss(0, 1))))
            occ = min(98.0, OCC_PCT_PER_VEH_KM * q / v * (1 + 0.06 * rnd.gauss(0, 1)))
            rec = TrafficReading(sensor_id=sid, ts_ms=ts, volume_veh=volume, occupancy_pct=round(occ, 1),
                                 speed_kmh=round(v * (1 + 0.04 * rnd.gauss(0, 1)), 1))
            out.append(enc.encode(rec))
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--batch-s", type=int, default=3600)
    ap.add_argument("--city", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    city = load_city(args.city or demo_city_path())
    span_ms = int(args.hours * HOUR_MS)

    sim = Simulator(city, seed=args.seed)
    with timed() as gen:
        batches = list(sim.batches(sim.start_ms + span_ms, batch_s=args.batch_s))
    n = sum(b.n_events for b in batches)

    with timed() as enc:
        data = [to_jsonl(b.frames) for b in batches]
    n_bytes = sum(len(d) for d in data)

    step_hours = min(args.hours, 6.0)
    sim_step = Simulator(city, seed=args.seed)
    with timed() as step:
        n_step = sum(b.n_events for b in sim_step.batches(sim_step.start_ms + int(step_hours * HOUR_MS)))

    # Peer: one hour of the same records as per-event structs, encoded one by one.
    hour = Simulator(city, seed=args.seed).run(1)
    enc_one = msgspec.json.Encoder()
    n_peer = 0
    with timed() as peer:
        out = []
        for kind, df in hour.items():
            t = RECORD_TYPES[kind]
            for row in df.iter_rows(named=True):
                out.append(enc_one.encode(t(**row)))
                n_peer += 1

    with timed() as naive:
        n_naive = per_event_detectors(city, sim.start_ms, min(args.hours, 6.0))

    sim_seconds = span_ms / 1000
    print(f"city: {city.name} ({len(city.sensors)} sensors, {len(city.segments)} segments), {args.hours:g} simulated h, seed {args.seed}")
    print(f"generate (batches of {args.batch_s} s): {n:,} events in {gen.wall:.2f} s wall / {gen.cpu:.2f} s CPU: "
          f"{rate(n, gen)} events; {sim_seconds / gen.wall:,.0f}x real time")
    print(f"generate (one batch per 60 s step, {step_hours:g} h): {rate(n_step, step)} events; "
          f"{step_hours * 3600 / step.wall:,.0f}x real time")
    print(f"encode JSONL: {rate(n, enc)} events ({n_bytes / enc.cpu / 1e6:,.0f} MB per CPU s)")
    both = Timer()
    both.wall, both.cpu = gen.wall + enc.wall, gen.cpu + enc.cpu
    print(f"generate + encode: {rate(n, both)} events; a simulated day in {both.wall * 86400 / sim_seconds:.1f} s wall, "
          f"{both.cpu * 86400 / sim_seconds:.1f} s CPU")
    print(f"peer (per-event structs + encode, 1 h): {rate(n_peer, peer)} events")
    print(f"ratio columnar generate+encode / per-event encode only (CPU): {(n / both.cpu) / (n_peer / peer.cpu):.1f}x")
    print(f"peer (per-event Python generator, detectors only, {min(args.hours, 6.0):g} h): {rate(n_naive, naive)} events")
    print(f"ratio columnar generate+encode / per-event generate+encode (CPU): {(n / both.cpu) / (n_naive / naive.cpu):.1f}x")


if __name__ == "__main__":
    main()
