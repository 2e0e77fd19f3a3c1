"""Two arterials crossing at a shared signal, in SUMO: one plan for both against the alternatives.

    .venv/bin/python bench/greenwave_crossing.py [--signals 8,8] [--seeds 3] [--duration 900] [--seed N] [--ambulance]

Corridor A (west-east) and corridor B (south-north) share their middle signal ``X``
(:mod:`bench.sumo_net.crossing`; geometry seed random and printed). Every strategy runs the same
60 s cycle and splits (X runs corridor A's splits) on the same Poisson demand and SUMO seeds:

* zero offsets;
* SUMO's ``tools/tlsCoordinator.py`` on the whole network (routes of both arterials, weighted by volume);
* independent plans: each corridor planned on its own (ours), X run by A's plan — what two
  corridor plans give when nobody reconciles the shared signal: B's offsets ignore X's timing;
* MAXBAND (shared X): each corridor's exact MAXBAND optimum (the numba kernel, the bands of the
  MILP), B's shifted to agree with A at X by the same rule as ours;
* ours: :func:`brain.greenwave.network.plan_crossing` — B's plan shifted to agree with A at X;
* ours (own cycle): the same at the cycle the planner picks within both corridors' bounds by
  modelled delay (Webster's splits at it), the other rows staying at the given 60 s.

Reported: mean delay (SUMO timeLoss) of all vehicles, of each arterial's through traffic and of
the side streets, per strategy and per seed, and ours against the best of the others.
``--ambulance`` adds 一键护航 across both corridors (A eastbound to X, left, B northbound) on our
plans: the escort's requests, signed through the controller hub, bend SUMO's signals via TraCI
(:func:`bench.sumo_net.crossing.run_escort_crossing`).

Needs the ``sumo`` extra: ``pip install eclipse-sumo sumolib traci``.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import msgspec
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.sumo_net.arterial import _run, integer_timings, sumo_home  # noqa: E402
from bench.sumo_net.crossing import (build_crossing, crossing_specs, run_crossing, write_crossing_programs,  # noqa: E402
                                     write_crossing_routes)
from brain.greenwave.network import plan_crossing, shared_timing  # noqa: E402
from brain.greenwave.optimizer import optimize_corridor  # noqa: E402


OWN = "ours (own cycle)"


def whole_second_greens(plan) -> list[np.ndarray]:
    return [np.array([g for g, _, _ in row]) for row in integer_timings(plan)]


def tls_coordinator(cr, spec_a, spec_b, programs: Path, speed_factor: float) -> dict[str, float]:
    """SUMO's tlsCoordinator on the network, with our (offset-0) programs as the plans to coordinate."""
    root = ET.Element("routes")
    for c, spec in (("a", spec_a), ("b", spec_b)):
        for d, v in (("out", spec.volume_out_vph), ("in", spec.volume_in_vph)):
            for _ in range(max(1, int(round(v / 100)))):
                ET.SubElement(root, "route", {"edges": " ".join(cr.chain(c, d))})
    rfile = cr.workdir / "coord.rou.xml"
    ET.ElementTree(root).write(rfile)
    out = cr.workdir / "coord.add.xml"
    _run([sys.executable, str(Path(sumo_home()) / "tools" / "tlsCoordinator.py"), "-n", str(cr.net), "-r", str(rfile),
          "-a", str(programs), "-o", str(out), "--speed-factor", f"{speed_factor}"])
    found = {el.get("id"): float(el.get("offset", 0.0)) for el in ET.parse(out).getroot().iter("tlLogic")}
    return {iid: found.get(iid, 0.0) for iid in cr.ids_a + cr.ids_b}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--signals", default="8,8", help="signals on corridor A and B (X counts on both)")
    ap.add_argument("--seeds", type=int, default=3, help="SUMO seeds")
    ap.add_argument("--duration", type=float, default=900.0, help="demand period (s)")
    ap.add_argument("--seed", type=int, default=None, help="geometry seed (default random, printed)")
    ap.add_argument("--ambulance", action="store_true", help="also the 一键护航 trial across both corridors")
    a = ap.parse_args()
    na, nb = (int(x) for x in a.signals.split(","))
    seed = a.seed if a.seed is not None else int(np.random.default_rng().integers(1, 10_000))
    print(f"geometry seed {seed} (rerun with --seed {seed})", flush=True)
    spec_a, spec_b, side = crossing_specs(na, nb, seed)
    wd = Path(tempfile.mkdtemp(prefix="greenwave_crossing_"))
    cr = build_crossing(spec_a, spec_b, wd)
    # one cycle, whole-second splits; X runs A's splits (what plan_crossing gives B there too)
    pa, pb = plan_crossing(spec_a, spec_b, "X", cycle_s=60.0)
    ga, gb = whole_second_greens(pa), whole_second_greens(pb)
    pa, pb = plan_crossing(spec_a, spec_b, "X", cycle_s=60.0, greens_a_s=ga, greens_b_s=gb)
    assert shared_timing(pa, "X") == shared_timing(pb, "X")
    # the same B plan without the shift: B's own offsets, blind to how A runs X
    indep_b = optimize_corridor(spec_b, cycle_s=60.0, greens_s=[np.array([p.green_s for p in it.phases])
                                                                 for it in pb.intersections])
    offs = {
        "zero offsets": {iid: 0.0 for iid in cr.ids_a + cr.ids_b},
        "independent plans": {it.id: it.offset_s for it in indep_b.intersections} | {it.id: it.offset_s for it in pa.intersections},
        "ours (shared X)": {it.id: it.offset_s for it in pb.intersections} | {it.id: it.offset_s for it in pa.intersections},
    }
    ma, mb = plan_crossing(spec_a, spec_b, "X", cycle_s=60.0, greens_a_s=ga, greens_b_s=gb, objective="bandwidth")
    offs["MAXBAND (shared X)"] = {it.id: it.offset_s for it in mb.intersections} | {it.id: it.offset_s for it in ma.intersections}
    # ours at its own cycle (in both corridors' bounds, by modelled delay; Webster's splits at it, whole
    # seconds); every other row keeps the given 60 s timing
    fa, fb = (msgspec.structs.replace(s, cycle_s=None) for s in (spec_a, spec_b))
    oa, ob = plan_crossing(fa, fb, "X")
    oa, ob = plan_crossing(fa, fb, "X", cycle_s=oa.cycle_s, greens_a_s=whole_second_greens(oa),
                           greens_b_s=whole_second_greens(ob))
    offs[OWN] = {it.id: it.offset_s for it in ob.intersections} | {it.id: it.offset_s for it in oa.intersections}
    zero_prog = write_crossing_programs(cr, pa, indep_b, offs["zero offsets"], wd / "zero.add.xml")
    offs["tlsCoordinator"] = tls_coordinator(cr, spec_a, spec_b, zero_prog, spec_a.speed_out_kmh / 50.0)
    length_m = max(spec_a.intersections[-1].position_m, spec_b.intersections[-1].position_m)
    routes = write_crossing_routes(cr, spec_a, spec_b, side, a.duration, wd / "demand.rou.xml")
    end_s = a.duration + 600 + 4 * length_m / (50 / 3.6)
    print(f"A: {na} signals over {spec_a.intersections[-1].position_m:.0f} m, {spec_a.volume_out_vph:.0f}/"
          f"{spec_a.volume_in_vph:.0f} veh/h; B: {nb} over {spec_b.intersections[-1].position_m:.0f} m, "
          f"{spec_b.volume_out_vph:.0f}/{spec_b.volume_in_vph:.0f} veh/h; shared X; cycle 60 s; SUMO seeds {a.seeds}",
          flush=True)
    res: dict[str, list[dict]] = {}
    for name in ("zero offsets", "tlsCoordinator", "independent plans", "MAXBAND (shared X)", "ours (shared X)", OWN):
        plans = (oa, ob) if name == OWN else (pa, indep_b)
        tag = "own" if name == OWN else name.split()[0]
        prog = write_crossing_programs(cr, *plans, offs[name], wd / f"{tag}.add.xml")
        for s in range(1, a.seeds + 1):
            st = run_crossing(cr, routes, prog, s, end_s, tag)
            res.setdefault(name, []).append({"all": float(np.mean(st["A"] + st["B"] + st["side"])),
                                             "A": float(np.mean(st["A"])), "B": float(np.mean(st["B"])),
                                             "side": float(np.mean(st["side"]))})
        print(f"  {name} done", flush=True)
    print(f"\n{'strategy':<18} {'delay all s':>11} {'A arterial s':>12} {'B arterial s':>12} {'side s':>7}  per seed (all)")
    for name, runs in res.items():
        m = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
        print(f"{name:<18} {m['all']:>11.1f} {m['A']:>12.1f} {m['B']:>12.1f} {m['side']:>7.1f}  "
              + " ".join(f"{r['all']:.1f}" for r in runs))
    others = [k for k in res if k not in ("ours (shared X)", OWN)]
    best = min(others, key=lambda k: np.mean([r["all"] for r in res[k]]))
    b = np.mean([r["all"] for r in res[best]])
    for mine, when in (("ours (shared X)", "same 60 s timing"), (OWN, f"own cycle {oa.cycle_s:.0f} s vs the others at 60 s")):
        ours = np.mean([r["all"] for r in res[mine]])
        wins = sum(res[mine][s]["all"] < min(res[k][s]["all"] for k in others) for s in range(a.seeds))
        print(f"{mine} ({when}) vs best other ({best}): all-vehicle delay {100 * (ours / b - 1):+.1f} %, "
              f"lowest on {wins}/{a.seeds} seeds", flush=True)
    if a.ambulance:
        ambulance(cr, spec_a, spec_b, pa, pb, offs["ours (shared X)"], side, wd, a.seeds)
    return 0


def ambulance(cr, spec_a, spec_b, pa, pb, offsets, side, wd: Path, seeds: int) -> None:
    """一键护航 across the two corridors on our plans: special rights, without and with priority."""
    from bench.sumo_net.crossing import ambulance_edges, run_escort_crossing
    from bench.sumo_net.escort_sumo import print_escort_table

    prog = write_crossing_programs(cr, pa, pb, offsets, wd / "amb.add.xml")
    print(f"\n== ambulance across both corridors: {' '.join(ambulance_edges(cr))} (left turn at X); "
          f"special rights (bluelight device, reds crossed at <= 20 km/h); escort with preemption", flush=True)
    rows: dict[str, list[dict]] = {}
    for s in range(1, seeds + 1):
        for prio in (False, True):
            key = f"special rights, {'priority' if prio else 'no priority'}"
            r = run_escort_crossing(cr, spec_a, spec_b, pa, pb, prog, side, s, 600.0 + 17.0 * s, prio, True,
                                    max_cross_delay_s=30.0, pre_s=8.0, recover=True)
            rows.setdefault(key, []).append(r)
            print(f"  seed {s} {key:<30} travel {r['travel_s']:6.1f} s, red wait {r['red_wait_s']:5.1f} s, reds entered "
                  f"{r['reds_entered']}, others {r['others_delay_s']:5.2f} s"
                  + (f", green taken {r['cross_green_taken_s']:.1f} s (max {r['cross_green_max_s']:.1f}), {r['applied']} "
                     f"applied / {r['refused']} refused / {r['released']} released" if prio else ""), flush=True)
    print_escort_table(rows)


if __name__ == "__main__":
    sys.exit(main())
