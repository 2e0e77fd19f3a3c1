"""Side streets in SUMO against the model: measured waits per split, nominal vs side-lane-aware splits.

    .venv/bin/python bench/greenwave_splits.py [--signals 12] [--corridor-seed N] [--seeds 2]
                                               [--shifts 0,4,8,12] [--cycles 60,70]

On one bench corridor (``bench.greenwave_sumo.default_corridor``: one-lane side streets whose
joining traffic turns left on a permissive green) this runs, on the same Poisson demand and SUMO
seeds, our offsets re-planned for each timing:

* the peer: the corridor's given timing (cycle ``--cycles``' first, Webster's splits from the
  nominal 1800 veh/h), then the same with ``--shifts`` seconds of green moved from the arterial
  to the side street at every signal (never below the arterial's minimum);
* Webster's splits from the side lanes' effective saturation
  (:mod:`brain.greenwave.side_streets`) at each of ``--cycles``.

Per row: all-vehicle, arterial-through, side-through and turning delay (SUMO timeLoss) against
the model's side-street figure for the same plan with the nominal saturation and with the
effective one (:func:`brain.greenwave.delay.side_delay_s_per_veh`: where the model and SUMO part,
the model misjudges the side streets), and each row's all-vehicle delay as a ratio to the peer.
This is the measurement that found the side lanes' saturation term (notes of issue 15).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import msgspec
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.greenwave_sumo import ARTERIAL_KMH, default_corridor, shared_timing, summarise  # noqa: E402
from bench.sumo_net.arterial import build_arterial, free_flow_speeds_kmh, run, write_offsets, write_routes  # noqa: E402
from bench.sumo_net.own_cycle import whole_second_greens  # noqa: E402
from brain.greenwave.delay import side_delay_s_per_veh  # noqa: E402
from brain.greenwave.optimizer import optimize_corridor  # noqa: E402
from brain.greenwave.side_streets import with_effective_side_saturation  # noqa: E402


def shifted(greens, shift_s: float, arterial_min_s: float) -> list[np.ndarray]:
    """``shift_s`` seconds of green moved from the arterial (phase 0) to the side street (phase 1)."""
    out = []
    for g in greens:
        g = np.array(g, dtype=float)
        d = min(shift_s, g[0] - arterial_min_s)
        g[0] -= d
        g[1] += d
        out.append(g)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--signals", type=int, default=12)
    ap.add_argument("--corridor-seed", type=int, default=None, help="default: random, printed")
    ap.add_argument("--seeds", type=int, default=2, help="SUMO seeds")
    ap.add_argument("--shifts", default="0,4,8,12", help="side green added to the nominal splits (s)")
    ap.add_argument("--cycles", default="60,70", help="cycles of the side-lane-aware rows (s); the first is the given one")
    ap.add_argument("--duration", type=float, default=900.0)
    a = ap.parse_args()
    cseed = a.corridor_seed if a.corridor_seed is not None else int(np.random.default_rng().integers(1, 10_000))
    cycles = [float(c) for c in a.cycles.split(",")]
    spec, side, turns_out, turns_in = default_corridor(a.signals, cseed, cycle_s=cycles[0])
    nominal = msgspec.structs.replace(spec, joins_permissive_left=False)
    eff = with_effective_side_saturation(msgspec.structs.replace(spec, cycle_s=None))
    C, greens = shared_timing(spec)
    wd = Path(tempfile.mkdtemp(prefix="greenwave_splits_"))
    art0 = build_arterial(spec, optimize_corridor(nominal, cycle_s=C, greens_s=greens, objective="bandwidth"),
                          wd / "calib", arterial_kmh=ARTERIAL_KMH)
    v_out, v_in = free_flow_speeds_kmh(art0, spec, spec.volume_out_vph, spec.volume_in_vph)
    spec.speed_out_kmh, spec.speed_in_kmh = round(v_out, 1), round(v_in, 1)
    nominal = msgspec.structs.replace(spec, joins_permissive_left=False)
    eff = with_effective_side_saturation(msgspec.structs.replace(spec, cycle_s=None))
    print(f"corridor {spec.id} (rerun with --corridor-seed {cseed}), {spec.n} signals, given cycle {C} s, "
          f"SUMO seeds {a.seeds}; side saturation nominal 1800, effective "
          + " ".join(f"{it.phases[1].saturation_vph:.0f}" for it in eff.intersections[:8]) + " ... veh/h", flush=True)
    art_min = spec.intersections[0].phases[0].min_duration_green_s
    rows = [(f"nominal +{s:g} s", float(C), shifted(greens, float(s), art_min)) for s in
            (float(x) for x in a.shifts.split(","))]
    rows += [(f"side-lane-aware {c:.0f} s", c, whole_second_greens(eff, c)) for c in cycles]
    end_s = a.duration + 600 + 4 * spec.intersections[-1].position_m / (ARTERIAL_KMH / 3.6)
    print(f"{'timing':<24} {'side green s':>14} {'all s':>6} {'ratio':>6} {'arterial s':>10} {'side s':>7} "
          f"{'turn s':>7} {'model side nominal':>18} {'effective':>9}  per seed all")
    peer = None
    for k, (name, c, gs) in enumerate(rows):
        plan = optimize_corridor(msgspec.structs.replace(nominal, cycle_s=c), cycle_s=c, greens_s=gs)
        art = build_arterial(nominal, plan, wd / f"row{k}", arterial_kmh=ARTERIAL_KMH)
        routes = write_routes(art, art.workdir / "demand.rou.xml", spec.volume_out_vph, spec.volume_in_vph, side,
                              a.duration, turns_out=turns_out, turns_in=turns_in)
        add = write_offsets(art, plan.offsets_s(), art.workdir / "ours.add.xml")
        per = [summarise([run(art, routes, [add], s, end_s, tag="ours")]) for s in range(1, a.seeds + 1)]
        m = {key: float(np.mean([r[key] for r in per])) for key in per[0]}
        peer = m["delay_all_s"] if peer is None else peer
        side_nom, _ = side_delay_s_per_veh(nominal, c, gs)
        side_eff, _ = side_delay_s_per_veh(eff, c, gs)
        print(f"{name:<24} {np.mean([g[1] for g in gs]):>14.1f} {m['delay_all_s']:>6.1f} {m['delay_all_s'] / peer:>6.3f} "
              f"{m['delay_arterial_s']:>10.1f} {m['delay_side_s']:>7.1f} {m['delay_turn_s']:>7.1f} {side_nom:>18.1f} "
              f"{side_eff:>9.1f}  " + " ".join(f"{r['delay_all_s']:.1f}" for r in per), flush=True)
    print("ratio: all-vehicle delay over the peer (the given timing, first row), same demand and SUMO seeds; "
          "'model side' is the model's side-street figure (both approaches, turning traffic included, stops counted) "
          "while SUMO's 'side s' is side-street through traffic only")
    return 0


if __name__ == "__main__":
    sys.exit(main())
