"""Validate green-wave plans in SUMO: ours against all-zero offsets, SUMO's tlsCoordinator and the MILP plan.

    .venv/bin/python bench/greenwave_sumo.py [--seeds 5] [--duration 1800] [--corridor-json FILE]

Builds a SUMO arterial from a corridor definition (default: an 8-signal arterial with uneven
spacing, two-phase signals), measures the free-flow progression speed (signals off, as probe data would give it) and hands
it to every strategy, computes one cycle and one set of splits (Webster, rounded to whole
seconds) shared by every strategy, and runs the same Poisson demand on the same seeds with four
offset sets: all zero, SUMO's ``tools/tlsCoordinator.py``, the offsets of the MAXBAND MILP
(``scipy.optimize.milp``), and ours (the numba kernel; "ours+refine" is the same bands with the
optional progression refinement). Reported: stops per vehicle and travel
time per arterial direction, and mean delay (SUMO timeLoss) over all vehicles including side
streets. Then an ambulance crosses the corridor outbound with and without emergency priority
(:class:`brain.greenwave.priority.EmergencyPriority` driving the signals through TraCI).

Needs the ``sumo`` extra: ``pip install eclipse-sumo sumolib traci``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.sumo_net.arterial import (  # noqa: E402
    build_arterial,
    free_flow_speeds_kmh,
    integer_timings,
    run,
    tls_coordinator_offsets,
    write_offsets,
    write_routes,
)
from brain.greenwave.milp import maxband_milp  # noqa: E402
from brain.greenwave.model import CorridorSpec, IntersectionSpec, PhaseSpec  # noqa: E402
from brain.greenwave.optimizer import band_problem, optimize_corridor  # noqa: E402

ARTERIAL_KMH = 50.0


def default_corridor(n: int = 8, seed: int = 4) -> tuple[CorridorSpec, list[float]]:
    rng = np.random.default_rng(seed)
    positions = np.concatenate([[0.0], np.cumsum(rng.uniform(250, 650, n - 1))]).round(0)
    side = rng.uniform(150, 320, n).round(0)
    vol_out, vol_in = 900.0, 600.0
    inters = []
    for i, (x, s) in enumerate(zip(positions, side)):
        inters.append(IntersectionSpec(id=f"J{i}", position_m=float(x), phases=[
            PhaseSpec(name="arterial", min_green_s=15, ped_clearance_s=12, coordinated=True, flow_vph=vol_out / 2),
            PhaseSpec(name="side", min_green_s=12, ped_clearance_s=15, flow_vph=float(s)),
        ]))
    v = ARTERIAL_KMH * 0.9  # replaced by the measured free-flow speed before planning
    spec = CorridorSpec(id="sumo-arterial", intersections=inters, speed_out_kmh=v, speed_in_kmh=v,
                        cycle_min_s=70, cycle_max_s=120, volume_out_vph=vol_out, volume_in_vph=vol_in)
    return spec, [float(s) for s in side]


def shared_timing(spec: CorridorSpec):
    """Webster cycle and splits rounded to whole seconds: the common ground of every strategy."""
    plan = optimize_corridor(spec)
    ints = integer_timings(plan)
    greens = [np.array([g for g, _, _ in row]) for row in ints]
    return round(plan.cycle_s), greens


def strategies(spec: CorridorSpec, art, routes: Path, workdir: Path) -> dict[str, tuple[Path, dict]]:
    C, greens = shared_timing(spec)
    ours = optimize_corridor(spec, cycle_s=C, greens_s=greens)
    refined = optimize_corridor(spec, cycle_s=C, greens_s=greens, refine_sweeps=3)
    prob = band_problem(spec, C, greens)
    t0 = time.perf_counter()
    milp = maxband_milp(*prob.args())
    t_milp = time.perf_counter() - t0
    milp_off = (milp["green_start_s"] - milp["green_start_s"][0]) % C
    out = {
        "zero offsets": (write_offsets(art, [0.0] * spec.n, workdir / "zero.add.xml"), {}),
        "tlsCoordinator": (tls_coordinator_offsets(art, spec.volume_out_vph or 800, spec.volume_in_vph or 800,
                                                    0.5 * (spec.speed_out_kmh + spec.speed_in_kmh) / ARTERIAL_KMH,
                                                    workdir / "coord.add.xml"), {}),
        "MILP (scipy)": (write_offsets(art, milp_off, workdir / "milp.add.xml"),
                         {"band_out_s": milp["b_out_s"], "band_in_s": milp["b_in_s"], "solve_ms": t_milp * 1e3}),
        "ours (numba)": (write_offsets(art, ours.offsets_s(), workdir / "ours.add.xml"),
                         {"band_out_s": ours.band_out_s, "band_in_s": ours.band_in_s}),
        "ours+refine": (write_offsets(art, refined.offsets_s(), workdir / "refined.add.xml"),
                        {"band_out_s": refined.band_out_s, "band_in_s": refined.band_in_s}),
    }
    return out, ours, C


def summarise(runs: list[dict]) -> dict:
    def mean_of(group, key):
        vals = [np.mean(r[group][key]) for r in runs if group in r and r[group][key]]
        return float(np.mean(vals)) if vals else float("nan")

    all_delay = []
    for r in runs:
        d = [x for g in ("out", "in", "side") for x in r.get(g, {}).get("delay_s", [])]
        all_delay.append(np.mean(d))
    return {
        "stops_out": mean_of("out", "stops"),
        "stops_in": mean_of("in", "stops"),
        "travel_out_s": mean_of("out", "travel_s"),
        "travel_in_s": mean_of("in", "travel_s"),
        "delay_all_s": float(np.mean(all_delay)),
        "delay_side_s": mean_of("side", "delay_s"),
        "n_vehicles": int(np.mean([sum(len(r[g]["stops"]) for g in r) for r in runs])),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=1800.0, help="demand period (s); the run lasts 600 s longer")
    ap.add_argument("--corridor-json", help="a two-phase corridor (docs/greenwave.md); default: built-in 8 signals")
    ap.add_argument("--workdir", help="keep SUMO files here (default: a temporary folder)")
    ap.add_argument("--json", help="also write the results to this JSON file")
    a = ap.parse_args()
    if a.corridor_json:
        spec = CorridorSpec.from_json(Path(a.corridor_json).read_bytes())
        side = [float(it.phases[1].flow_vph or 200.0) for it in spec.intersections]
    else:
        spec, side = default_corridor()
    workdir = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="greenwave_sumo_"))
    C, greens = shared_timing(spec)
    art = build_arterial(spec, optimize_corridor(spec, cycle_s=C, greens_s=greens), workdir, arterial_kmh=ARTERIAL_KMH)
    # progression speed as probes measure it (free flow, signals off), the same for every strategy
    v_out, v_in = free_flow_speeds_kmh(art, spec, spec.volume_out_vph or 800, spec.volume_in_vph or 800)
    spec.speed_out_kmh, spec.speed_in_kmh = round(v_out, 1), round(v_in, 1)
    print(f"measured free-flow progression speed: outbound {spec.speed_out_kmh} km/h, inbound {spec.speed_in_kmh} km/h")
    routes = write_routes(art, workdir / "demand.rou.xml", spec.volume_out_vph or 800, spec.volume_in_vph or 800,
                          side, a.duration)
    strat, ours_plan, C = strategies(spec, art, routes, workdir)
    print(f"corridor {spec.id}: {spec.n} signals over {spec.intersections[-1].position_m:.0f} m, cycle {C} s, "
          f"seeds {a.seeds}, demand {a.duration:.0f} s")
    results = {}
    for name, (add, info) in strat.items():
        runs = [run(art, routes, [add], seed, a.duration + 600, tag=name.split()[0]) for seed in range(1, a.seeds + 1)]
        results[name] = summarise(runs) | info
    hdr = f"{'strategy':<16} {'stops/veh out':>13} {'in':>6} {'worse':>6} {'travel out s':>12} {'in s':>7} {'delay all s':>11} {'side s':>7} {'band out/in s':>13}"
    print(hdr)
    for name, r in results.items():
        band = f"{r['band_out_s']:.1f}/{r['band_in_s']:.1f}" if "band_out_s" in r else "-"
        print(f"{name:<16} {r['stops_out']:>13.2f} {r['stops_in']:>6.2f} {max(r['stops_out'], r['stops_in']):>6.2f} "
              f"{r['travel_out_s']:>12.1f} {r['travel_in_s']:>7.1f} {r['delay_all_s']:>11.1f} {r['delay_side_s']:>7.1f} {band:>13}")
    ours = results["ours (numba)"]
    for name, r in results.items():
        if name.startswith("ours"):
            continue
        print(f"  vs {name:<15}: all-vehicle delay x{r['delay_all_s'] / ours['delay_all_s']:.2f}, "
              f"worse-direction stops x{max(r['stops_out'], r['stops_in']) / max(ours['stops_out'], ours['stops_in']):.2f} "
              f"(baseline / ours)")
    try:
        from bench.sumo_net.ambulance import ambulance_trial
    except ImportError:
        amb = None
    else:
        amb = ambulance_trial(spec, art, routes, strat["ours (numba)"][0], ours_plan, seeds=range(1, a.seeds + 1))
        print(json.dumps(amb, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps({"results": results, "ambulance": amb, "cycle_s": C}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
