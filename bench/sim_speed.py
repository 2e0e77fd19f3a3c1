"""Simulator speed: events/s and the ratio to real time, against a per-record peer in the same run.

    .venv/bin/python bench/sim_speed.py [--hours 24] [--batch-s 3600] [--city DIR] [--seed 0]

Measures, on the demo city (or --city):
1. generation of ``--hours`` simulated hours into polars frames (columnar, hour-sized batches);
2. the same with one batch per 60 s step (what a live driver pulls);
3. JSONL encoding of the generated frames (:func:`streams.sim.to_jsonl`);
4. the peer: the same records of one hour built as per-event msgspec structs and encoded one by one,
   i.e. what a per-record Python simulator would spend on just materialising and encoding events.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import msgspec

from brain.city import demo_city_path, load_city
from brain.schemas import RECORD_TYPES
from streams.sim import Simulator, to_jsonl

HOUR_MS = 3_600_000


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
    t0 = time.perf_counter()
    batches = list(sim.batches(sim.start_ms + span_ms, batch_s=args.batch_s))
    gen_s = time.perf_counter() - t0
    n = sum(b.n_events for b in batches)

    t0 = time.perf_counter()
    data = [to_jsonl(b.frames) for b in batches]
    enc_s = time.perf_counter() - t0
    n_bytes = sum(len(d) for d in data)

    step_hours = min(args.hours, 6.0)
    sim_step = Simulator(city, seed=args.seed)
    t0 = time.perf_counter()
    n_step = sum(b.n_events for b in sim_step.batches(sim_step.start_ms + int(step_hours * HOUR_MS)))
    step_s = time.perf_counter() - t0

    # Peer: one hour of the same records as per-event structs, encoded one by one.
    hour = Simulator(city, seed=args.seed).run(1)
    t0 = time.perf_counter()
    enc = msgspec.json.Encoder()
    n_peer = 0
    out = []
    for kind, df in hour.items():
        t = RECORD_TYPES[kind]
        for row in df.iter_rows(named=True):
            out.append(enc.encode(t(**row)))
            n_peer += 1
    peer_s = time.perf_counter() - t0

    sim_seconds = span_ms / 1000
    print(f"city: {city.name} ({len(city.sensors)} sensors, {len(city.segments)} segments), {args.hours:g} simulated h, seed {args.seed}")
    print(f"generate (batches of {args.batch_s} s): {n:,} events in {gen_s:.2f} s = {n / gen_s:,.0f} events/s, "
          f"{sim_seconds / gen_s:,.0f}x real time")
    print(f"generate (one batch per 60 s step, {step_hours:g} h): {n_step / step_s:,.0f} events/s, "
          f"{step_hours * 3600 / step_s:,.0f}x real time")
    print(f"encode JSONL: {n / enc_s:,.0f} events/s ({n_bytes / enc_s / 1e6:,.0f} MB/s)")
    total = gen_s + enc_s
    print(f"generate + encode: {n / total:,.0f} events/s, a simulated day in {total * 86400 / sim_seconds:.1f} s")
    print(f"peer (per-event structs + encode, 1 h): {n_peer / peer_s:,.0f} events/s")
    print(f"ratio columnar generate+encode / per-event encode only: {(n / total) / (n_peer / peer_s):.1f}x")


if __name__ == "__main__":
    main()
