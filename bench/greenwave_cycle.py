"""Cycle choice in SUMO: does the cycle the delay model picks give the least simulated delay?

    .venv/bin/python bench/greenwave_cycle.py [--signals 12] [--seeds 3] [--duration 900]
                                              [--cycles 60,70,80,90,100,120] [--corridor-seed N]

One corridor of the SUMO bench (:func:`bench.greenwave_sumo.default_corridor`: spacings 200-600 m,
two lanes each way, side streets with through and turning traffic, cycle bounds 60-120 s; geometry
seed random and printed). For every candidate cycle, Webster's splits at that cycle (whole seconds)
and our delay-judged offsets (:func:`brain.greenwave.optimizer.optimize_corridor`) run on the same
Poisson demand and SUMO seeds. Printed per cycle: the model's all-vehicle delay
(:func:`brain.greenwave.delay.cycle_delay_s`, what ``optimize_corridor`` minimises when it picks the
cycle) against SUMO's all-vehicle, arterial, side-street and turning delay; then which cycle the
model picks, which one SUMO finds best, and what the model's pick costs or saves against the
bench's fixed 60 s cycle. A cycle changes the splits, so every vehicle's delay moves: this is the
choice ``optimize_corridor(choose_cycle=True)`` makes in production.

Needs the ``sumo`` extra: ``pip install eclipse-sumo sumolib traci``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.greenwave_sumo import ARTERIAL_KMH, default_corridor, summarise  # noqa: E402
from bench.sumo_net.arterial import (build_arterial, free_flow_speeds_kmh, integer_timings, run,  # noqa: E402
                                     write_offsets, write_routes)
from brain.greenwave.delay import cycle_delay_s  # noqa: E402
from brain.greenwave.optimizer import optimize_corridor  # noqa: E402
from brain.kernels.platoon import warm_up  # noqa: E402


def timing_at(spec, cycle_s: float):
    """The bandwidth plan at this cycle (its splits go into SUMO's programs) and its whole-second greens."""
    plan = optimize_corridor(spec, cycle_s=cycle_s, objective="bandwidth")
    return plan, [np.array([g for g, _, _ in row]) for row in integer_timings(plan)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--signals", type=int, default=12)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=900.0)
    ap.add_argument("--cycles", default="60,70,80,90,100,120")
    ap.add_argument("--corridor-seed", type=int, default=None, help="default: random (printed)")
    a = ap.parse_args()
    cseed = a.corridor_seed if a.corridor_seed is not None else int(np.random.default_rng().integers(1, 10_000))
    print(f"corridor seed {cseed} (rerun with --corridor-seed {cseed})", flush=True)
    warm_up()
    spec, side, turns_out, turns_in = default_corridor(a.signals, cseed, cycle_s=None)
    root = Path(tempfile.mkdtemp(prefix="greenwave_cycle_"))
    cycles = [float(c) for c in a.cycles.split(",")]
    speeds_known = False
    rows = []
    for C in cycles:
        plan_bw, greens = timing_at(spec, C)
        art = build_arterial(spec, plan_bw, root / f"c{C:.0f}", arterial_kmh=ARTERIAL_KMH)
        if not speeds_known:  # signals off: the same for every cycle
            v_out, v_in = free_flow_speeds_kmh(art, spec, spec.volume_out_vph, spec.volume_in_vph)
            spec.speed_out_kmh, spec.speed_in_kmh = round(v_out, 1), round(v_in, 1)
            speeds_known = True
            plan_bw, greens = timing_at(spec, C)
        ours = optimize_corridor(spec, cycle_s=C, greens_s=greens)
        add = write_offsets(art, ours.offsets_s(), art.workdir / "ours.add.xml")
        routes = write_routes(art, art.workdir / "demand.rou.xml", spec.volume_out_vph, spec.volume_in_vph, side,
                              a.duration, turns_out=turns_out, turns_in=turns_in)
        end_s = a.duration + 600 + 4 * spec.intersections[-1].position_m / (ARTERIAL_KMH / 3.6)
        runs = [summarise([run(art, routes, [add], seed, end_s, tag="ours")]) for seed in range(1, a.seeds + 1)]
        r = {k: float(np.mean([x[k] for x in runs])) for k in runs[0]}
        r.update(cycle_s=C, model_s=cycle_delay_s(spec, C, greens), per_seed=[x["delay_all_s"] for x in runs])
        rows.append(r)
        print(f"  cycle {C:.0f} s done: SUMO {r['delay_all_s']:.1f} s, model {r['model_s']:.1f} s", flush=True)
    print(f"\n== {spec.id}: {spec.n} signals over {spec.intersections[-1].position_m:.0f} m, volumes "
          f"{spec.volume_out_vph:.0f}/{spec.volume_in_vph:.0f} veh/h, SUMO seeds {a.seeds}, demand {a.duration:.0f} s")
    print(f"{'cycle s':>7} {'model all s':>11} {'SUMO all s':>10} {'arterial s':>10} {'side s':>7} {'turn s':>7}  per seed")
    for r in rows:
        print(f"{r['cycle_s']:>7.0f} {r['model_s']:>11.1f} {r['delay_all_s']:>10.1f} {r['delay_arterial_s']:>10.1f} "
              f"{r['delay_side_s']:>7.1f} {r['delay_turn_s']:>7.1f}  " + " ".join(f"{x:.1f}" for x in r["per_seed"]))
    pick = min(rows, key=lambda r: r["model_s"])
    best = min(rows, key=lambda r: r["delay_all_s"])
    base = next((r for r in rows if r["cycle_s"] == 60.0), rows[0])
    prod = optimize_corridor(spec)  # what the planner itself picks (Webster's cycle and the candidates above it)
    print(f"model picks {pick['cycle_s']:.0f} s (SUMO {pick['delay_all_s']:.1f} s); SUMO's best {best['cycle_s']:.0f} s "
          f"({best['delay_all_s']:.1f} s); the pick vs {base['cycle_s']:.0f} s: "
          f"{100 * (pick['delay_all_s'] / base['delay_all_s'] - 1):+.1f} %; optimize_corridor picks {prod.cycle_s:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
