"""The SUMO bench's own-cycle mode: our planner picks its cycle, the baselines run as a city runs them.

:func:`own_cycle_plan` is what the planner does when the corridor gives cycle bounds instead of a
cycle (``optimize_corridor`` with ``cycle_s=None``): among the candidate cycles in the bounds
(Webster's cycle and :data:`brain.greenwave.optimizer.CYCLE_CANDIDATES` above it) it keeps the one
with the least modelled all-vehicle delay (:func:`brain.greenwave.delay.cycle_delay_s`: platoon
model for arterial and joining traffic, Webster for side streets), with **Webster's splits at that
cycle** (:func:`brain.greenwave.webster.corridor_greens_s`, rounded to whole seconds exactly as the
shared timing is), then places the offsets by modelled delay at that cycle and those splits. Like
the planner, it sees the side lanes' effective saturation flows (joins turning left on a
permissive green from one shared lane: :mod:`brain.greenwave.side_streets`), so its splits give
the side streets more green than the given timing's (Webster from the nominal 1800 veh/h).

:func:`own_cycle_rows` runs that plan in SUMO on a network carrying its cycle and splits, and, on the
same network, the three baselines (zero offsets, tlsCoordinator, MAXBAND MILP) at ours' cycle and
splits: so a reader sees how much of the gain is the timing (cycle and splits: best baseline at
ours' timing against best baseline at the given one) and how much the offsets (ours against the
best baseline at ours' timing). The headline compares ours at its own timing against the baselines
at the corridor's given timing (60 s, nominal Webster splits in the bench): what a city running
those today would see.

Example (no SUMO needed for the choice; a 4-signal corridor of the bench):
    >>> from bench.greenwave_sumo import default_corridor
    >>> spec, *_ = default_corridor(4, seed=5, cycle_s=60.0)
    >>> ch = own_cycle_plan(spec)
    >>> spec.cycle_min_s <= ch.cycle_s <= spec.cycle_max_s and ch.plan.cycle_s == ch.cycle_s
    True
    >>> ch.cycle_s == min(ch.modelled_s, key=ch.modelled_s.get)
    True
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import numpy as np

from brain.greenwave.delay import cycle_delay_s
from brain.greenwave.optimizer import CYCLE_CANDIDATES, optimize_corridor
from brain.greenwave.plan import Plan
from brain.greenwave.side_streets import with_effective_side_saturation
from brain.greenwave.webster import corridor_cycle_s, corridor_greens_s

#: the baselines every table compares against, as in ``bench/greenwave_sumo.py``
BASELINES = ("zero offsets", "tlsCoordinator", "MAXBAND MILP")
OURS = "ours (own cycle)"


@dataclass
class CycleChoice:
    """Our cycle, whole-second Webster splits at it, the plan, and the model's figure per candidate.

    ``plan_cpu_ms`` is the process CPU time of the whole choice (every candidate's model run and
    the final offset search). Example: see the module docstring.
    """

    cycle_s: float
    greens_s: list[np.ndarray]
    plan: Plan
    plan_cpu_ms: float
    modelled_s: dict[float, float] = field(default_factory=dict)


def whole_second_greens(spec, cycle_s: float) -> list[np.ndarray]:
    """Webster's splits at ``cycle_s`` rounded to whole seconds summing to the cycle (the bench's
    ``shared_timing`` rule, so ours and the baselines at a cycle get the very same splits)."""
    from bench.sumo_net.arterial import integer_timings

    spec = with_effective_side_saturation(spec)  # the planner's splits: the side lanes' real saturation
    bw = optimize_corridor(spec, cycle_s=cycle_s, greens_s=corridor_greens_s(spec, cycle_s), objective="bandwidth")
    return [np.array([g for g, _, _ in row]) for row in integer_timings(bw)]


def candidates_s(spec) -> list[float]:
    """The cycles the planner compares: Webster's (within the bounds) and the candidates above it
    in the bounds, never below the phases' minimum (``optimize_corridor``'s own rule)."""
    free = with_effective_side_saturation(msgspec.structs.replace(spec, cycle_s=None))
    webster = corridor_cycle_s(free)
    need = max(it.min_cycle_s() for it in spec.intersections)
    return sorted({webster} | {c for c in CYCLE_CANDIDATES if webster < c <= spec.cycle_max_s and c >= need})


def own_cycle_plan(spec) -> CycleChoice:
    """Our cycle within ``spec``'s bounds (its fixed ``cycle_s`` ignored) by modelled all-vehicle
    delay, Webster's splits at it (whole seconds), offsets by modelled delay. What the planner
    does: cycle, splits and model see the side lanes' effective saturation flows when the
    corridor's joins turn left permissively (:mod:`brain.greenwave.side_streets`)."""
    free = with_effective_side_saturation(msgspec.structs.replace(spec, cycle_s=None))
    t0 = time.process_time()
    cands = candidates_s(spec)
    figures = {c: cycle_delay_s(free, c, corridor_greens_s(free, c)) for c in cands}
    cycle = min(cands, key=lambda c: figures[c])
    greens = whole_second_greens(free, cycle)
    plan = optimize_corridor(free, cycle_s=cycle, greens_s=greens)
    cpu_ms = (time.process_time() - t0) * 1e3
    return CycleChoice(cycle_s=float(cycle), greens_s=greens, plan=plan, plan_cpu_ms=cpu_ms, modelled_s=figures)


def own_cycle_rows(spec, side, turns_out, turns_in, workdir: Path, a, end_s: float, via_controllers,
                   summarise, given: dict | None = None) -> dict:
    """SUMO runs at ours' own cycle: ours and the three baselines on a network with that cycle and
    its splits, the same demand and SUMO seeds as the given-cycle runs. Returns ``{"choice",
    "per_seed", "results"}`` (``results`` as the bench's: means over seeds plus plan figures)."""
    from bench.greenwave_sumo import ARTERIAL_KMH
    from bench.sumo_net.arterial import (build_arterial, run, tls_coordinator_offsets, write_offsets,
                                         write_routes)
    from brain.greenwave.band import band_problem
    from brain.greenwave.milp import maxband_milp

    ch = own_cycle_plan(spec)
    C = ch.cycle_s
    if given is not None and C == given["cycle_s"]:
        # ours picked the given cycle: its baselines are the given-cycle rows; ours is re-run only
        # if its offsets differ from the given-cycle plan's (same cycle and splits: they should not)
        per_seed = {f"{k} @{C:.0f}": given["per_seed"][k] for k in BASELINES}
        given_plan = given["_art"][3]
        same = np.allclose(ch.plan.offsets_s(), given_plan.offsets_s()) and all(
            np.allclose(g, [p.green_s for p in it.phases]) for g, it in zip(ch.greens_s, given_plan.intersections))
        if same:
            per_seed[OURS] = given["per_seed"]["ours (delay)"]
            results = {name: {k: float(np.mean([r[k] for r in runs])) for k in runs[0]} for name, runs in per_seed.items()}
            results[OURS] |= {"plan_cpu_ms": ch.plan_cpu_ms, "start": ch.plan.method}
            print(f"  own cycle: ours picks the given {C:.0f} s and the same offsets: rows reused", flush=True)
            return {"choice": ch, "per_seed": per_seed, "results": results}
    free = with_effective_side_saturation(msgspec.structs.replace(spec, cycle_s=None))
    bw = optimize_corridor(free, cycle_s=C, greens_s=ch.greens_s, objective="bandwidth")
    art = build_arterial(free, bw, workdir / f"own-c{C:.0f}", arterial_kmh=ARTERIAL_KMH)
    routes = write_routes(art, art.workdir / "demand.rou.xml", spec.volume_out_vph or 800, spec.volume_in_vph or 800,
                          side, a.duration, turns_out=turns_out, turns_in=turns_in)
    milp = maxband_milp(*band_problem(free, C, ch.greens_s).args())
    strat = {
        f"zero @{C:.0f}": (write_offsets(art, [0.0] * spec.n, art.workdir / "zero.add.xml"), {}),
        f"tlsCoord @{C:.0f}": (tls_coordinator_offsets(art, spec.volume_out_vph or 800, spec.volume_in_vph or 800,
                                                       0.5 * (spec.speed_out_kmh + spec.speed_in_kmh) / ARTERIAL_KMH,
                                                       art.workdir / "coord.add.xml"), {}),
        f"MILP @{C:.0f}": (write_offsets(art, (milp["green_start_s"] - milp["green_start_s"][0]) % C,
                                         art.workdir / "milp.add.xml"), {}),
        OURS: (write_offsets(art, via_controllers(ch.plan, art.workdir), art.workdir / "ours.add.xml"),
               {"plan_cpu_ms": ch.plan_cpu_ms, "start": ch.plan.method}),
    }
    per_seed: dict[str, list[dict]] = {}
    for name, (add, _info) in strat.items():
        for seed in range(1, a.seeds + 1):
            per_seed.setdefault(name, []).append(
                summarise([run(art, routes, [add], seed, end_s, tag=name.split()[0].strip("@"))]))
        print(f"  own cycle {C:.0f} s: {name} done", flush=True)
    results = {name: {k: float(np.mean([r[k] for r in runs])) for k in runs[0]} | strat[name][1]
               for name, runs in per_seed.items()}
    return {"choice": ch, "per_seed": per_seed, "results": results}


def own_cycle_report(r: dict, own: dict, seeds: int) -> dict:
    """Print the own-cycle table of one corridor and return its figures: ours (own cycle) against
    the best baseline at the given cycle (headline) and at ours' cycle (the offsets' part)."""
    ch: CycleChoice = own["choice"]
    res, given = own["results"], r["results"]
    C0, C = r["cycle_s"], ch.cycle_s
    print(f"  own cycle: ours picks {C:.0f} s (corridor bounds {r['spec']['cycle_min_s']:.0f}-"
          f"{r['spec']['cycle_max_s']:.0f} s; modelled all-vehicle s/veh per candidate: "
          + ", ".join(f"{c:.0f}: {d:.1f}" for c, d in ch.modelled_s.items())
          + f"); splits: Webster at {C:.0f} s from the side lanes' effective saturation, whole seconds: "
          + " ".join(f"{g[1]:.0f}" for g in ch.greens_s[:8]) + (" ..." if len(ch.greens_s) > 8 else "")
          + f" s side green; choice + offsets {ch.plan_cpu_ms:.0f} ms CPU")
    print(f"  {'strategy':<17} {'stops out':>9} {'in':>5} {'worse':>6} {'delay all s':>11} {'arterial s':>10} "
          f"{'side s':>7} {'turn s':>7}  per seed all")
    for name, x in res.items():
        print(f"  {name:<17} {x['stops_out']:>9.2f} {x['stops_in']:>5.2f} {max(x['stops_out'], x['stops_in']):>6.2f} "
              f"{x['delay_all_s']:>11.1f} {x['delay_arterial_s']:>10.1f} {x['delay_side_s']:>7.1f} "
              f"{x['delay_turn_s']:>7.1f}  " + " ".join(f"{s['delay_all_s']:.1f}" for s in own["per_seed"][name]))
    ours = res[OURS]
    best0 = min(BASELINES, key=lambda k: given[k]["delay_all_s"])
    at_c = [k for k in res if k != OURS]
    best_c = min(at_c, key=lambda k: res[k]["delay_all_s"])
    wins = sum(own["per_seed"][OURS][s]["delay_all_s"] < min(r["per_seed"][b][s]["delay_all_s"] for b in BASELINES)
               for s in range(seeds))
    wins_c = sum(own["per_seed"][OURS][s]["delay_all_s"] < min(own["per_seed"][b][s]["delay_all_s"] for b in at_c)
                 for s in range(seeds))
    worst0 = max(max(given[k]["stops_out"], given[k]["stops_in"]) for k in BASELINES)
    out = {
        "cycle_s": C, "given_cycle_s": C0, "plan_cpu_ms": ch.plan_cpu_ms,
        "modelled_s": {str(c): d for c, d in ch.modelled_s.items()},
        "vs_best_given_pct": 100 * (ours["delay_all_s"] / given[best0]["delay_all_s"] - 1), "best_given": best0,
        "vs_best_at_own_pct": 100 * (ours["delay_all_s"] / res[best_c]["delay_all_s"] - 1), "best_at_own": best_c,
        "cycle_part_pct": 100 * (res[best_c]["delay_all_s"] / given[best0]["delay_all_s"] - 1),
        "wins_given": wins, "wins_at_own": wins_c,
        "stops_worse": max(ours["stops_out"], ours["stops_in"]), "worst_baseline_stops_given": worst0,
        "side_s": ours["delay_side_s"], "side_given_best_s": given[best0]["delay_side_s"],
        "results": res, "per_seed": own["per_seed"],
    }
    print(f"  ours (own cycle {C:.0f} s) vs best baseline at the given {C0:.0f} s ({best0}): "
          f"{out['vs_best_given_pct']:+.1f} %, lowest on {wins}/{seeds} seeds; vs best baseline at {C:.0f} s "
          f"({best_c}): {out['vs_best_at_own_pct']:+.1f} %, lowest on {wins_c}/{seeds}; the timing alone (cycle + splits: best baseline "
          f"at {C:.0f} s vs at {C0:.0f} s): {out['cycle_part_pct']:+.1f} %; worse-direction stops {out['stops_worse']:.2f} "
          f"(worst baseline at {C0:.0f} s {worst0:.2f}); side street {ours['delay_side_s']:.1f} s "
          f"(best baseline at {C0:.0f} s: {given[best0]['delay_side_s']:.1f} s)", flush=True)
    return out


def own_cycle_summary(out: list[dict], seeds: int) -> None:
    """The run's own-cycle summary: per corridor and on average, ours at its own cycle against the
    best baseline at the given cycle, the cycle's part and the offsets' part."""
    rows = [r["own_cycle"] for r in out]
    print("\nown cycle: ours picks its cycle in the corridor's bounds and its splits (Webster from the side lanes' "
          "effective saturation); baselines at the given timing (Webster from nominal saturation, given cycle)")
    print(f"  {'corridor':<14} {'cycle':>5} {'vs best given':>13} {'lowest':>6} {'timing part':>11} {'offsets part':>12} "
          f"{'worse stops':>11} {'worst base':>10} {'side s':>6} {'plan CPU ms':>11}")
    for r, o in zip(out, rows):
        print(f"  {r['corridor']:<14} {o['cycle_s']:>5.0f} {o['vs_best_given_pct']:>+12.1f}% {o['wins_given']:>4}/{seeds} "
              f"{o['cycle_part_pct']:>+9.1f}% {o['vs_best_at_own_pct']:>+11.1f}% {o['stops_worse']:>11.2f} "
              f"{o['worst_baseline_stops_given']:>10.2f} {o['side_s']:>6.1f} {o['plan_cpu_ms']:>11.0f}")
    print(f"  mean {float(np.mean([o['vs_best_given_pct'] for o in rows])):+.1f} % vs the best baseline at the given "
          f"cycle; lowest on {sum(o['wins_given'] for o in rows)}/{len(rows) * seeds} corridor-seeds; the timing (cycle + splits) alone "
          f"{float(np.mean([o['cycle_part_pct'] for o in rows])):+.1f} %, the offsets at ours' cycle "
          f"{float(np.mean([o['vs_best_at_own_pct'] for o in rows])):+.1f} %", flush=True)
