"""Solve time of the numba MAXBAND kernel against scipy.optimize.milp (HiGHS) at equal bandwidth.

    .venv/bin/python bench/greenwave_speed.py [--sizes 8 20 40] [--instances 5] [--milp-time-limit 120]
    .venv/bin/python bench/greenwave_speed.py --sizes --delay-sizes --plan-instances 20   # the whole-plan table only

For each corridor size, random realistic corridors (greens 20-70 % of the cycle, links 150-900 m,
30-60 km/h, unequal directional demand) are solved by both; the table shows median solve times,
the speed ratio, and the largest relative gap between the two objectives (must be ~0: equal
bandwidth). The numba kernel is warmed up first, so compile time is not counted. The last two
columns time the kernel with the optional progression refinement (3 sweeps), which the MILP
does not do at all (same bands, different placement inside the greens).

A second table times the whole delay-judged offset choice (:func:`brain.greenwave.delay.delay_offsets`:
four MAXBAND starts and a subsystem cut, platoon-model coordinate descent, 60 s cycle) on random
two-phase corridors with side-street joins and exits, against the MILP on the same corridor, in
wall time and in CPU time of this process (what one core spends: the machine is shared, and the
CPU ratio is what survives its load), and the modelled all-vehicle delay (with stop losses) of
ours against the MILP's offsets, and how many subsystem cuts each of our plans has.

A third table times the whole ``citybrain plan`` path as users run it
(:func:`brain.greenwave.optimizer.optimize_corridor` on a corridor with cycle bounds 60-150 s and no
fixed cycle: the cycle choice by modelled delay, Webster's splits, delay-model offsets and
subsystems, the safety check) on random arterials (flows drawn per corridor, so Webster's cycle
and the pick vary), in CPU seconds of this process, median and p95 over the instances, against
scipy's milp MAXBAND on the same corridor at the picked cycle and splits, and against the same
path with the cycle scan judging every candidate (``--full-scan``: what it did before the scan
stopped early), which must pick the same cycle.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from brain.greenwave.milp import maxband_milp  # noqa: E402
from brain.kernels.bandwidth import max_bandwidth  # noqa: E402
from brain.greenwave.band import band_problem  # noqa: E402
from brain.greenwave.delay import TRAVEL_SCALES, delay_offsets, modelled  # noqa: E402
from brain.kernels.platoon import warm_up  # noqa: E402
from tests.greenwave.helpers import random_problem  # noqa: E402
from tests.greenwave.test_platoon import corridor  # noqa: E402


def _timed(fn):
    """(wall s, CPU s of this process) of one call: CPU time is what one core spends, whatever the
    load of the shared machine (the wall time is printed too)."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out


def delay_table(sizes, instances: int, rng, time_limit_s: float) -> None:
    warm_up()
    delay_offsets(corridor(4, 0), 60.0, [np.array([33.0, 17.0])] * 4)
    print(f"\n{'n':>3} {'delay plan ms wall/CPU':>22} {'milp ms wall/CPU':>17} {'CPU ratio':>9} "
          f"{'model delay s/veh ours':>23} {'milp':>6} {'zero':>6}  subsystem cuts")
    for n in sizes:
        wo, co, wm, cm, do, dm, dz, cuts = [], [], [], [], [], [], [], []
        for _ in range(instances):
            spec = corridor(n, int(rng.integers(1, 2**31)))
            greens = [np.array([33.0, 17.0])] * n
            prob = band_problem(spec, 60.0, greens)
            runs = [_timed(lambda: delay_offsets(spec, 60.0, greens)) for _ in range(3)]  # best of 3: shared machine
            mruns = [_timed(lambda: maxband_milp(*prob.args(), time_limit_s=time_limit_s)) for _ in range(3)]
            res, ref = runs[0][2], mruns[0][2]
            wo.append(min(r[0] for r in runs))
            co.append(min(r[1] for r in runs))
            wm.append(min(r[0] for r in mruns))
            cm.append(min(r[1] for r in mruns))
            do.append(res.delay_s_per_veh)
            cuts.append(len(res.cuts))
            # judged like ours: mean over the link travel-time scenarios delay_offsets minimises
            dm.append(modelled(spec, 60.0, greens, ref["green_start_s"], TRAVEL_SCALES)["delay_s_per_veh"])
            dz.append(modelled(spec, 60.0, greens, [0.0] * n, TRAVEL_SCALES)["delay_s_per_veh"])
        med = statistics.median
        print(f"{n:>3} {med(wo) * 1e3:>11.1f}/{med(co) * 1e3:<10.1f} {med(wm) * 1e3:>8.1f}/{med(cm) * 1e3:<8.1f} "
              f"{med(cm) / max(med(co), 1e-9):>8.1f}x {statistics.mean(do):>23.1f} {statistics.mean(dm):>6.1f} "
              f"{statistics.mean(dz):>6.1f}  {cuts}")


def _p95(xs):
    return float(np.percentile(xs, 95))


def plan_table(sizes, instances: int, rng, time_limit_s: float, full_scan: bool) -> None:
    """The whole ``citybrain plan`` path (cycle choice within bounds) against scipy's milp."""
    from brain.greenwave import delay as D
    from brain.greenwave.optimizer import optimize_corridor

    warm_up()
    optimize_corridor(corridor(4, 0))
    print(f"\nwhole plan (citybrain plan: cycle choice in 60-150 s, delay offsets, subsystems), CPU ms, "
          f"{instances} random corridors per size")
    print(f"{'n':>3} {'ours med':>9} {'p95':>7} {'milp med':>9} {'p95':>7} {'milp/ours':>9} "
          f"{'full scan med':>13} {'p95':>7} {'same cycle':>10}  cycles picked")
    for n in sizes:
        ours, milp, full, same, cycles = [], [], [], 0, []
        for _ in range(instances):
            seed = int(rng.integers(1, 2**31))
            spec = corridor(n, seed)
            frng = np.random.default_rng(seed)
            for it in spec.intersections:   # per-corridor flows: Webster's cycle and the pick vary
                it.phases[0].flow_vph = float(frng.uniform(250, 800))
                it.phases[1].flow_vph = float(frng.uniform(80, 450))
            _, cpu, plan = _timed(lambda: optimize_corridor(spec))
            ours.append(cpu)
            cycles.append(int(plan.cycle_s))
            greens = [np.array([p.green_s for p in it.phases]) for it in plan.intersections]
            prob = band_problem(spec, plan.cycle_s, greens)
            milp.append(_timed(lambda: maxband_milp(*prob.args(), time_limit_s=time_limit_s))[1])
            if full_scan:
                kw = D.choose_cycle_s.__kwdefaults__
                saved = kw["patience"]
                kw["patience"] = None   # judge every candidate cycle
                try:
                    _, cpu_full, plan_full = _timed(lambda: optimize_corridor(spec))
                finally:
                    kw["patience"] = saved
                full.append(cpu_full)
                same += plan_full.cycle_s == plan.cycle_s and plan_full.plan_id == plan.plan_id
        med = statistics.median
        fs = (f"{med(full) * 1e3:>13.0f} {_p95(full) * 1e3:>7.0f} {same:>6}/{instances:<3}" if full
              else f"{'-':>13} {'-':>7} {'-':>10}")
        print(f"{n:>3} {med(ours) * 1e3:>9.0f} {_p95(ours) * 1e3:>7.0f} {med(milp) * 1e3:>9.0f} {_p95(milp) * 1e3:>7.0f} "
              f"{med(milp) / max(med(ours), 1e-9):>8.2f}x {fs}  {cycles}")


def live_table(hours: int, seed: int) -> None:
    """The live re-planner on the simulated demo city (what the Faust merge and ``citybrain run``
    run every tick): the operator's CPU with the warm start (default) and cold, same windows."""
    from brain.city import demo_city_path, load_city
    from brain.greenwave.delay import modelled
    from brain.pipeline import CityPipeline
    from streams.greenwave_operator import GreenWaveOperator
    from streams.sim import Simulator

    class _Sink:
        def publish(self, plan):
            pass

        def latest(self, corridor):
            return None

    city = load_city(demo_city_path())
    start = Simulator(city).start_ms
    batches = [b.frames for b in Simulator(city, seed=seed, start_ms=start).batches(start + hours * 3_600_000, batch_s=1800)]
    print(f"\nlive re-planning, demo city ({', '.join(c.id for c in city.corridors)}), {hours} h simulated, "
          f"sim seed {seed}: GreenWaveOperator CPU, warm start vs cold")
    print(f"{'mode':>5} {'operator CPU ms':>15} {'per tick ms':>11} {'plans':>6} {'mean modelled s/veh of the plans (last flows)':>46}")
    class _Timed:  # the operator as the pipeline calls it, its own CPU summed
        def __init__(self, op):
            self.op, self.cpu_s = op, 0.0

        def __call__(self, batch):
            _, c, out = _timed(lambda: self.op(batch))
            self.cpu_s += c
            return out

        def __getattr__(self, name):
            return getattr(self.op, name)

    for warm in (True, False):
        op = GreenWaveOperator(city, _Sink(), warm_start=warm)
        timed = _Timed(op)
        pipe = CityPipeline(city, window_operators=[timed])
        ticks, figures = 0, []
        for frames in batches:
            ticks += len(pipe.ingest_frames(frames).windows)
        cpu = timed.cpu_s
        for rp in op.replanners.values():
            spec = rp._spec_now()
            for p in rp.history:
                greens = [np.array([ph.green_s for ph in it.phases]) for it in p.intersections]
                figures.append(modelled(spec, p.cycle_s, greens, [it.offset_s for it in p.intersections])["delay_s_per_veh"])
        n_plans = sum(len(rp.history) for rp in op.replanners.values())
        print(f"{'warm' if warm else 'cold':>5} {cpu * 1e3:>15.0f} {cpu * 1e3 / max(ticks, 1):>11.2f} {n_plans:>6} "
              f"{statistics.mean(figures) if figures else float('nan'):>46.2f}")


def time_kernel(args, refine_sweeps: int = 0, repeat: int = 100) -> tuple[float, np.ndarray]:
    bands, _ = max_bandwidth(*args, refine_sweeps)
    best = float("inf")
    for _ in range(5):  # best of 5 batches: the machine is shared
        t0 = time.perf_counter()
        for _ in range(repeat):
            max_bandwidth(*args, refine_sweeps)
        best = min(best, (time.perf_counter() - t0) / repeat)
    return best, bands


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[8, 20, 40])
    ap.add_argument("--instances", type=int, default=5)
    ap.add_argument("--milp-time-limit", type=float, default=120.0)
    ap.add_argument("--seed", type=int, default=None, help="default: random (printed)")
    ap.add_argument("--delay-sizes", type=int, nargs="*", default=[8, 12, 20, 30, 40])
    ap.add_argument("--plan-sizes", type=int, nargs="*", default=[8, 12, 20, 30, 40],
                    help="sizes of the whole-plan table (empty: skip it)")
    ap.add_argument("--plan-instances", type=int, default=12, help="random corridors per size in the whole-plan table")
    ap.add_argument("--full-scan", action=argparse.BooleanOptionalAction, default=True,
                    help="also time the plan with the cycle scan judging every candidate (default on)")
    ap.add_argument("--live-hours", type=int, default=24,
                    help="simulated demo-city hours of the live re-planning table (0: skip it)")
    a = ap.parse_args()
    if a.seed is None:
        a.seed = int(np.random.default_rng().integers(1, 100_000))
    print(f"seed {a.seed}")
    rng = np.random.default_rng(a.seed)
    max_bandwidth(*random_problem(rng, 4), 3)  # warm-up / load the compiled kernel
    if a.sizes:
        print(f"{'n':>3} {'numba (ms)':>11} {'milp (ms)':>11} {'speed-up':>9} {'max gap':>9} {'milp status':>12} "
              f"{'+refine (ms)':>12} {'speed-up':>9}")
    for n in a.sizes:
        tk, tm, tr, gaps, statuses = [], [], [], [], set()
        done = 0
        while done < a.instances:
            args = random_problem(rng, n)
            t_kernel, bands = time_kernel(args)
            t_refine, _ = time_kernel(args, 3, repeat=10)
            t_milp = float("inf")
            for _ in range(3):  # best of 3, as for the kernel
                t0 = time.perf_counter()
                ref = maxband_milp(*args, time_limit_s=a.milp_time_limit)
                t_milp = min(t_milp, time.perf_counter() - t0)
            if ref["status"] == "infeasible":
                continue  # no common window at all: nothing to compare
            statuses.add(ref["status"])
            ours = args[6] * bands[0] + args[7] * bands[1]
            gaps.append(abs(ours - ref["objective"]) / max(ref["objective"], 1e-9))
            tk.append(t_kernel)
            tr.append(t_refine)
            tm.append(t_milp)
            done += 1
        k, m, r = statistics.median(tk), statistics.median(tm), statistics.median(tr)
        print(f"{n:>3} {k * 1e3:>11.4f} {m * 1e3:>11.1f} {m / k:>8.0f}x {max(gaps):>9.2e} {','.join(sorted(statuses)):>12} "
              f"{r * 1e3:>12.3f} {m / r:>8.0f}x")
    if a.delay_sizes:
        delay_table(a.delay_sizes, a.instances, rng, a.milp_time_limit)
    if a.plan_sizes:
        plan_table(a.plan_sizes, a.plan_instances, rng, a.milp_time_limit, a.full_scan)
    if a.live_hours:
        live_table(a.live_hours, int(rng.integers(1, 100_000)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
